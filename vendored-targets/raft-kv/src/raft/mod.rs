//! The pure Raft core: a deterministic state machine with no I/O (see `core`), its log,
//! its durable-state model, and the data types it exchanges with the shell.

pub mod core;
pub mod durable;
pub mod log;
pub mod types;

pub use self::core::{Config, CoreBugs, Raft, RaftError, ReadMode, Status};
pub use durable::{DurableError, DurableState};
pub use types::*;
