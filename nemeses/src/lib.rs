//! distest-nemeses: faults on nodes, and how to heal every one of them.
//!
//! This crate may not depend on the `distest` binary crate, yet faults act on nodes. So it
//! declares the two small traits it acts through — [`NodeShell`] (run a command on a node)
//! and [`TargetControl`] (what the system under test offers: kill, start, pause, primaries,
//! clock) — and `src/` implements them for local namespaces and SSH. Tests use fakes that
//! record the commands they would run.

pub mod node;

mod cluster;
pub mod clock;
pub mod error;
pub mod iptables;
pub mod kill;
pub mod latency;
pub mod loss;
pub mod nemesis;
pub mod partition;
pub mod pause;
pub mod process;
pub mod schedule;
pub mod targets;
mod value;

#[cfg(test)]
mod fake;

pub use error::{NemesisError, NodeFailure};
pub use nemesis::{FaultOp, HealLog, Nemesis, NemesisContext};
pub use node::{ClockSupport, ExecOutput, NodeError, NodeShell, TargetControl};
