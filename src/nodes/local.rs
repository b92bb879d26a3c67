//! The local cluster: nodes n1..nN as network namespaces joined by a bridge on this machine.
//!
//! Each node is a namespace `dt-<id>-n<i>` with loopback and an `eth0` (a veth whose host end
//! sits on the bridge `dt<id>-br`), one address in the cluster's subnet and only the subnet
//! route: nothing is routed or NATed off the machine, and `ip_forward` is left alone. The
//! bridge holds `.1`, so the control node reaches every node directly. Node names resolve
//! inside the namespaces through `/etc/netns/<ns>/hosts`, which `ip netns exec` bind-mounts
//! over `/etc/hosts`. Filesystems are shared with the host: each node gets its own
//! `<base>/<id>/n<i>/{data,logs}`.
//!
//! [`LocalCluster`] is an RAII guard: dropping a cluster it created tears it down, and so
//! does SIGINT/SIGTERM once [`signals::install`](crate::signals::install) ran in
//! cleanup mode. A cluster that was already up (`distest env up`) is adopted and left up.

use super::cleanup::{self, CleanupGuard, Leftovers, Scope, TeardownReport, NETNS_ETC};
use super::exec::exec_for_node;
use super::names::{
    parse_namespace, ClusterNames, Subnet, DEFAULT_CLUSTER_ID, DEFAULT_SUBNET, MAX_LOCAL_NODES,
};
use super::{host, ExecOutput, Helper, NodeError, NodeShell, NodesError, Remote};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where clusters keep node directories unless told otherwise.
pub const DEFAULT_BASE_DIR: &str = "/var/lib/distest";
/// The file in `<base>/<id>/` recording a cluster's layout; written before anything else.
pub const STATE_FILE: &str = "cluster.json";
/// Name the host (bridge address) has in every node's hosts file.
pub const CONTROL_HOST_NAME: &str = "control";

/// The layout of a local cluster.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterSpec {
    /// 1..=5 of `[a-z0-9]`; distinct clusters (parallel tests) need distinct ids.
    pub cluster_id: String,
    pub node_count: usize,
    pub subnet: Subnet,
    /// Node directories live in `<base_dir>/<cluster_id>/n<i>/{data,logs}`.
    pub base_dir: PathBuf,
}

impl ClusterSpec {
    /// `node_count` nodes in the default cluster, subnet and base directory.
    pub fn new(node_count: usize) -> Self {
        ClusterSpec {
            cluster_id: DEFAULT_CLUSTER_ID.to_string(),
            node_count,
            subnet: DEFAULT_SUBNET.parse().expect("the default subnet is valid"),
            base_dir: PathBuf::from(DEFAULT_BASE_DIR),
        }
    }

    /// This cluster's directory: `<base_dir>/<cluster_id>`.
    pub fn cluster_dir(&self) -> PathBuf {
        self.base_dir.join(&self.cluster_id)
    }

    fn validate(&self) -> Result<ClusterNames, NodesError> {
        let names = ClusterNames::new(&self.cluster_id)?;
        if self.node_count == 0 || self.node_count > MAX_LOCAL_NODES {
            return Err(NodesError::BadSpec(format!(
                "a local cluster has 1 to {MAX_LOCAL_NODES} nodes, not {}",
                self.node_count
            )));
        }
        self.subnet.node_address(self.node_count)?;
        if !self.base_dir.is_absolute() {
            return Err(NodesError::BadSpec(format!(
                "the base directory {} must be an absolute path",
                self.base_dir.display()
            )));
        }
        Ok(names)
    }
}

/// One node of a local cluster: commands run in its namespace as root.
#[derive(Debug)]
pub struct LocalNode {
    name: String,
    namespace: String,
    address: Ipv4Addr,
    data_dir: PathBuf,
    log_dir: PathBuf,
}

impl LocalNode {
    /// A node in the existing namespace `namespace`, its data, logs and helper state under
    /// `node_dir`. A [`LocalCluster`] builds its own; tests and benchmarks that make their
    /// namespaces themselves use this.
    pub fn new(name: &str, namespace: &str, address: Ipv4Addr, node_dir: &Path) -> LocalNode {
        LocalNode {
            name: name.to_string(),
            namespace: namespace.to_string(),
            address,
            data_dir: node_dir.join("data"),
            log_dir: node_dir.join("logs"),
        }
    }

    /// The node's network namespace (`dt-<id>-n<i>`).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `<base>/<id>/nK`, which holds the node's data, logs and helper state.
    fn node_dir(&self) -> &Path {
        self.data_dir.parent().unwrap_or(&self.data_dir)
    }
}

impl NodeShell for LocalNode {
    fn name(&self) -> &str {
        &self.name
    }

    fn address(&self) -> IpAddr {
        IpAddr::V4(self.address)
    }

    fn exec(&self, command: &str, timeout: Duration) -> Result<ExecOutput, NodeError> {
        exec_in_namespace(&self.name, &self.namespace, command, timeout)
    }

    fn is_local(&self) -> bool {
        true
    }

    /// This very binary (namespaces share the machine's files); state in the node's own
    /// `<base>/<id>/nK/run`.
    fn helper(&self) -> Option<Helper> {
        self.install_helper().ok()
    }

    fn install_helper(&self) -> Result<Helper, NodeError> {
        Ok(Helper {
            program: super::helper::distest_binary()?
                .to_string_lossy()
                .into_owned(),
            state_dir: self.node_dir().join("run"),
        })
    }
}

impl Remote for LocalNode {
    fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    fn upload(&self, local: &Path, remote: &Path) -> Result<(), NodeError> {
        copy_file(local, remote).map_err(|message| NodeError::Unreachable {
            node: self.name.clone(),
            message: format!(
                "could not upload {} to {}: {message}",
                local.display(),
                remote.display()
            ),
        })
    }

    fn download(&self, remote: &Path, local: &Path) -> Result<(), NodeError> {
        copy_file(remote, local).map_err(|message| NodeError::Unreachable {
            node: self.name.clone(),
            message: format!(
                "could not download {} to {}: {message}",
                remote.display(),
                local.display()
            ),
        })
    }

    fn machine_id(&self) -> String {
        "localhost".to_string()
    }

    fn exec_machine(&self, command: &str, timeout: Duration) -> Result<ExecOutput, NodeError> {
        exec_for_node("localhost", &["sh", "-c", command], command, timeout)
    }
}

/// Runs `command` with `sh -c` in network namespace `namespace` as node `node`; a
/// namespace that does not exist is the node being unreachable, not the command failing.
pub fn exec_in_namespace(
    node: &str,
    namespace: &str,
    command: &str,
    timeout: Duration,
) -> Result<ExecOutput, NodeError> {
    let argv = ["ip", "netns", "exec", namespace, "sh", "-c", command];
    let out = exec_for_node(node, &argv, command, timeout)?;
    if out.status != 0 && out.stderr.starts_with("Cannot open network namespace") {
        return Err(NodeError::Unreachable {
            node: node.to_string(),
            message: format!(
                "its namespace {namespace} does not exist; bring the cluster up with `distest env up`"
            ),
        });
    }
    Ok(out)
}

/// Copies `from` to `to` through a temporary name and a rename, so a running program at
/// `to` is replaced rather than overwritten in place (no "text file busy", no torn reads).
fn copy_file(from: &Path, to: &Path) -> Result<(), String> {
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let file_name = to
        .file_name()
        .ok_or_else(|| format!("{} names no file", to.display()))?;
    let tmp = to.with_file_name(format!(
        ".{}.dt-copy-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::copy(from, &tmp).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, to).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        e.to_string()
    })
}

/// A local cluster of network namespaces; tears itself down when dropped if it created it.
#[derive(Debug)]
pub struct LocalCluster {
    spec: ClusterSpec,
    names: ClusterNames,
    nodes: Vec<Arc<LocalNode>>,
    /// Registered while this guard owns the cluster: runs the teardown on drop or on a signal.
    teardown: Option<CleanupGuard>,
    /// Held while building; the teardown takes it too, so a Ctrl-C teardown never races a
    /// build step (which would leave behind what it creates after the teardown looked).
    build_lock: Arc<Mutex<()>>,
}

impl LocalCluster {
    /// Creates the cluster, or adopts it when it is already up with the same layout (then
    /// dropping the guard leaves it up). Repairs missing pieces either way. Needs root.
    pub fn up(spec: ClusterSpec) -> Result<LocalCluster, NodesError> {
        host::require_root()?;
        let names = spec.validate()?;
        let lock = host::lock_base_dir(&spec.base_dir)?;
        let state_path = spec.cluster_dir().join(STATE_FILE);
        let existing = read_state(&state_path)?;
        let bridge_up = bridge_exists(&names)?;
        let any_objects = bridge_up
            || host::list_namespaces()?
                .iter()
                .any(|ns| names.owns_namespace(ns));
        let adopted = match &existing {
            // Same layout: adopt it when complete; otherwise it is what a killed `up` left,
            // which this `up` completes and then owns.
            Some(prev) if *prev == spec => bridge_up,
            // Objects under another layout, or built with another base directory: building
            // over them would mix two clusters.
            _ if any_objects => {
                return Err(NodesError::ClusterMismatch {
                    cluster: spec.cluster_id.clone(),
                    existing: match &existing {
                        Some(prev) => format!("{} nodes in {}", prev.node_count, prev.subnet),
                        None => format!("a layout not recorded under {}", spec.base_dir.display()),
                    },
                })
            }
            // Only a state file (an `up` killed before building anything): start afresh.
            _ => false,
        };
        if !adopted {
            check_subnet_free(&spec.subnet, &names)?;
        }
        let mut cluster = LocalCluster {
            names: names.clone(),
            nodes: Vec::new(),
            teardown: None,
            spec: spec.clone(),
            build_lock: Arc::new(Mutex::new(())),
        };
        if !adopted {
            let base_dir = spec.base_dir.clone();
            let scope = Scope::Cluster(names.clone());
            let build_lock = cluster.build_lock.clone();
            cluster.teardown = Some(cleanup::register_cleanup(move || {
                let _building = build_lock.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = cleanup::teardown(&scope, &base_dir) {
                    tracing::error!("tearing down the local cluster failed: {e}");
                }
            }));
        }
        // From here on, an error drops `cluster`, whose guard removes what was built (after
        // `_lock`, declared later, is released: the teardown takes the same lock).
        let _lock = lock;
        write_state(&state_path, &spec)?;
        cluster.build()?;
        tracing::info!(
            cluster = %spec.cluster_id,
            nodes = spec.node_count,
            subnet = %spec.subnet,
            adopted,
            "local cluster up"
        );
        Ok(cluster)
    }

    fn build(&mut self) -> Result<(), NodesError> {
        let lock = self.build_lock.clone();
        let _building = lock.lock().unwrap_or_else(|e| e.into_inner());
        let names = &self.names;
        let subnet = self.spec.subnet;
        let prefix = subnet.prefix_len;
        let bridge = names.bridge();
        if !bridge_exists(names)? {
            host::ok(&["ip", "link", "add", "name", &bridge, "type", "bridge"])?;
        }
        let bridge_cidr = format!("{}/{prefix}", subnet.bridge_address());
        host::ok(&["ip", "addr", "replace", &bridge_cidr, "dev", &bridge])?;
        host::ok(&["ip", "link", "set", &bridge, "up"])?;
        ensure_forward_rule(names)?;

        let hosts = self.hosts_file()?;
        let namespaces = host::list_namespaces()?;
        for i in 1..=self.spec.node_count {
            if cleanup::interrupted() {
                return Err(NodesError::Interrupted);
            }
            let ns = names.namespace(i);
            if !namespaces.contains(&ns) {
                host::ok(&["ip", "netns", "add", &ns])?;
            }
            let netns_dir = Path::new(NETNS_ETC).join(&ns);
            write_file(&netns_dir.join("hosts"), &hosts)?;
            self.wire_node(i, &ns)?;
            let node_dir = self.spec.cluster_dir().join(names.node(i));
            let node = LocalNode::new(&names.node(i), &ns, subnet.node_address(i)?, &node_dir);
            for dir in [&node.data_dir, &node.log_dir] {
                std::fs::create_dir_all(dir).map_err(|source| NodesError::Io {
                    what: "could not create".into(),
                    path: dir.clone(),
                    source,
                })?;
            }
            self.nodes.push(Arc::new(node));
        }
        Ok(())
    }

    /// Gives namespace `ns` its `eth0` on the bridge, its address and loopback.
    fn wire_node(&self, i: usize, ns: &str) -> Result<(), NodesError> {
        let names = &self.names;
        let veth = names.veth_host(i);
        let has_eth0 = host::run(&["ip", "-n", ns, "link", "show", "eth0"])?.status == 0;
        if !has_eth0 {
            // A half-built pair from an interrupted `up` is replaced whole.
            for stale in [veth.clone(), names.veth_peer(i)] {
                if host::list_links()?.contains(&stale) {
                    host::ok(&["ip", "link", "delete", &stale])?;
                }
            }
            let peer = names.veth_peer(i);
            host::ok(&[
                "ip", "link", "add", &veth, "type", "veth", "peer", "name", &peer,
            ])?;
            host::ok(&["ip", "link", "set", &peer, "netns", ns])?;
            host::ok(&["ip", "-n", ns, "link", "set", &peer, "name", "eth0"])?;
        }
        host::ok(&["ip", "link", "set", &veth, "master", &names.bridge(), "up"])?;
        let cidr = format!(
            "{}/{}",
            self.spec.subnet.node_address(i)?,
            self.spec.subnet.prefix_len
        );
        host::ok(&["ip", "-n", ns, "addr", "replace", &cidr, "dev", "eth0"])?;
        host::ok(&["ip", "-n", ns, "link", "set", "eth0", "up"])?;
        host::ok(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        Ok(())
    }

    fn hosts_file(&self) -> Result<String, NodesError> {
        let mut hosts = format!(
            "# written by distest for cluster {}\n127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n{} {CONTROL_HOST_NAME}\n",
            self.names.id(),
            self.spec.subnet.bridge_address()
        );
        for i in 1..=self.spec.node_count {
            hosts.push_str(&format!(
                "{} {}\n",
                self.spec.subnet.node_address(i)?,
                self.names.node(i)
            ));
        }
        Ok(hosts)
    }

    /// The nodes, n1 first, as the rest of distest uses them.
    pub fn nodes(&self) -> Vec<Arc<dyn Remote>> {
        self.nodes
            .iter()
            .map(|n| n.clone() as Arc<dyn Remote>)
            .collect()
    }

    /// The nodes with their namespace-specific accessors.
    pub fn local_nodes(&self) -> &[Arc<LocalNode>] {
        &self.nodes
    }

    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// True when this guard created the cluster and will remove it when dropped.
    pub fn owns_cluster(&self) -> bool {
        self.teardown.is_some()
    }

    /// Removes the cluster now, also when it was adopted rather than created.
    pub fn down(mut self) -> Result<TeardownReport, NodesError> {
        drop(self.teardown.take());
        down(&self.spec.cluster_id, &self.spec.base_dir)
    }

    /// Leaves the cluster up after this guard is gone (`distest env up`).
    pub fn keep(mut self) {
        drop(self.teardown.take());
    }

    /// From now on the cluster outlives this guard, as if `distest env up` had made it
    /// (a run rebuilding a cluster that was up before it).
    pub fn disown(&mut self) {
        drop(self.teardown.take());
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if let Some(guard) = self.teardown.take() {
            guard.run_now();
        }
        // On Ctrl-C the signal thread may be tearing this cluster down right now; do not let
        // the main thread end the process under it.
        cleanup::park_if_interrupted();
    }
}

/// Removes cluster `cluster_id` by name (namespaces and their processes, links, iptables
/// rules, `/etc/netns` dirs, `<base_dir>/<id>`), whatever state it was left in.
pub fn down(cluster_id: &str, base_dir: &Path) -> Result<TeardownReport, NodesError> {
    let names = ClusterNames::new(cluster_id)?;
    cleanup::teardown(&Scope::Cluster(names), base_dir)
}

/// What exists of cluster `names` on this machine right now.
pub fn leftovers(names: &ClusterNames) -> Result<Leftovers, NodesError> {
    cleanup::leftovers(&Scope::Cluster(names.clone()))
}

/// One node as `distest env status` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub namespace: String,
    /// `eth0`'s IPv4 address with prefix, if it has one.
    pub address: Option<String>,
    pub processes: usize,
}

/// One cluster as `distest env status` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClusterStatus {
    pub cluster_id: String,
    /// The layout recorded at `up`, if the state file is there.
    pub spec: Option<ClusterSpec>,
    pub bridge_up: bool,
    pub nodes: Vec<NodeStatus>,
}

/// Every local cluster found on this machine by name (layout read from `base_dir`).
pub fn status(base_dir: &Path) -> Result<Vec<ClusterStatus>, NodesError> {
    let namespaces = host::list_namespaces()?;
    let links = host::list_links()?;
    let mut ids: Vec<String> = namespaces
        .iter()
        .filter_map(|ns| parse_namespace(ns).map(|(id, _)| id.to_string()))
        .chain(
            links
                .iter()
                .filter_map(|l| super::names::parse_link(l).map(str::to_string)),
        )
        .collect();
    ids.sort();
    ids.dedup();
    let mut clusters = Vec::with_capacity(ids.len());
    for id in ids {
        let names = ClusterNames::new(&id)?;
        let mut nodes: Vec<(usize, &String)> = namespaces
            .iter()
            .filter_map(|ns| {
                parse_namespace(ns)
                    .filter(|(cid, _)| *cid == id)
                    .map(|(_, n)| (n, ns))
            })
            .collect();
        nodes.sort();
        let mut node_status = Vec::with_capacity(nodes.len());
        for (i, ns) in nodes {
            let out = host::run(&["ip", "-n", ns, "-o", "-4", "addr", "show", "dev", "eth0"])?;
            let address = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .skip_while(|w| *w != "inet")
                .nth(1)
                .map(str::to_string);
            node_status.push(NodeStatus {
                name: names.node(i),
                namespace: ns.clone(),
                address,
                processes: host::namespace_pids(ns)?.len(),
            });
        }
        clusters.push(ClusterStatus {
            spec: read_state(&base_dir.join(&id).join(STATE_FILE))
                .ok()
                .flatten(),
            bridge_up: links.contains(&names.bridge()),
            cluster_id: id,
            nodes: node_status,
        });
    }
    Ok(clusters)
}

fn bridge_exists(names: &ClusterNames) -> Result<bool, NodesError> {
    Ok(host::list_links()?.contains(&names.bridge()))
}

/// Lets bridged traffic between the nodes pass the host's FORWARD chain, which sees it when
/// `br_netfilter` is loaded and may have a DROP policy (Docker sets one). The rule matches
/// only bridge-to-same-bridge traffic, so nothing can leave the cluster through it.
fn ensure_forward_rule(names: &ClusterNames) -> Result<(), NodesError> {
    let bridge = names.bridge();
    let comment = names.iptables_comment();
    let rule = [
        "FORWARD",
        "-i",
        &bridge,
        "-o",
        &bridge,
        "-m",
        "comment",
        "--comment",
        &comment,
        "-j",
        "ACCEPT",
    ];
    // `-w 5`: wait for the xtables lock, which nemeses' iptables calls may hold.
    let mut check = vec!["iptables", "-w", "5", "-C"];
    check.extend(rule);
    if host::run(&check)?.status != 0 {
        let mut insert = vec!["iptables", "-w", "5", "-I"];
        insert.extend(rule);
        host::ok(&insert)?;
    }
    Ok(())
}

/// Refuses a subnet that overlaps an address already on this machine (other than this
/// cluster's own bridge): nodes must never shadow a real network.
fn check_subnet_free(subnet: &Subnet, names: &ClusterNames) -> Result<(), NodesError> {
    for (interface, address, prefix_len) in host::ipv4_addresses()? {
        if interface != names.bridge() && subnet.overlaps(address, prefix_len) {
            return Err(NodesError::SubnetInUse {
                subnet: subnet.to_string(),
                address: format!("{address}/{prefix_len}"),
                interface,
            });
        }
    }
    Ok(())
}

fn read_state(path: &Path) -> Result<Option<ClusterSpec>, NodesError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            NodesError::BadSpec(format!(
                "the cluster state file {} is unreadable ({e}); remove the cluster with `distest env down`",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(NodesError::Io {
            what: "could not read".into(),
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn write_state(path: &Path, spec: &ClusterSpec) -> Result<(), NodesError> {
    let json =
        serde_json::to_string_pretty(spec).map_err(|e| NodesError::BadSpec(e.to_string()))?;
    write_file(path, &json)
}

fn write_file(path: &Path, contents: &str) -> Result<(), NodesError> {
    let io = |source| NodesError::Io {
        what: "could not write".into(),
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(path, contents).map_err(io)
}
