//! Nodes: local network namespaces and SSH hosts behind one `Remote`.
