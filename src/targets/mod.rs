//! Target adapters: how to install, start, stop and talk to each system under test.

/// When this binary was invoked under a bundled target's name (`raft-kv`, `crdt-store`),
/// runs that target and returns its exit code; otherwise `None`.
pub fn multicall() -> Option<u8> {
    None
}
