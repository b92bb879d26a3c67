//! distest: the control node. CLI wiring, the run orchestrator, nodes, targets and the store.

pub mod commands;
pub mod duration;
pub mod nodes;
pub mod run;
pub mod store;
pub mod targets;
