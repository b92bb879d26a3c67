//! distest-checkers: the history model and every checker of distest.
//!
//! Pure by design: no I/O, no async runtime, no clock. A history goes in, a [`Verdict`]
//! comes out. Someone re-checking a Jepsen history needs this crate and nothing else.

pub mod checker;
pub mod convergence;
pub mod echo;
pub mod elle;
pub mod format;
mod fxhash;
pub mod history;
pub mod kafka;
pub mod linear;
pub mod net;
pub mod online;
pub mod op;
pub mod registry;
pub mod stats;
pub mod verdict;

pub use checker::{Cancel, CheckContext, Checker};
pub use history::{History, HistoryError, Pair, Pairing};
pub use online::{Anomaly, OnlineCheck, OnlineChecker};
pub use op::{Op, OpType, Process};
pub use registry::{build, registry, CheckerOptions, CheckerSpec, RegistryError};
pub use verdict::{Results, Validity, Verdict, RECOVERY};

/// Runs several checkers on one history and composes their verdicts.
pub fn check_all(history: &History, checkers: &[Box<dyn Checker>], ctx: &CheckContext) -> Results {
    let verdicts = checkers
        .iter()
        .map(|c| (c.name().to_string(), c.check(history, ctx)))
        .collect();
    Results::from_verdicts(verdicts)
}
