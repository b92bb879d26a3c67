//! distest-maelstrom: Maelstrom node programs on a real network.
//!
//! Maelstrom (Jepsen's workbench) runs node programs that speak JSON on stdin/stdout and
//! simulates the network between them. Here the same unchanged programs run as real
//! processes, each under a [`router`] in its node's network namespace, so every nemesis
//! of distest — partitions, loss, latency, kill, pause, clocks — acts on real traffic.
//!
//! - [`protocol`]: messages, bodies, Maelstrom's error codes.
//! - [`wire`]: one UDP datagram per message between routers.
//! - [`router`]: the per-node router (the `maelstrom-router` multicall of distest).
//! - [`services`]: `lin-kv`, `seq-kv`, `lww-kv`, `lin-tso`, hosted by one router.
//! - [`journal`]: the router's side of the message journal (`distest_checkers::net`).
//! - [`client`]: the control node's clients, turning workload ops into RPCs.
//! - [`topology`]: the broadcast workload's topologies.

pub mod client;
pub mod journal;
pub mod protocol;
pub mod router;
pub mod services;
pub mod topology;
pub mod wire;
