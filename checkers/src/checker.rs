//! The `Checker` trait and the limits a check runs under. The registry of checkers is
//! `registry.rs`: checkers implement this trait and never import the registry.

use crate::history::History;
use crate::online::OnlineChecker;
use crate::verdict::Verdict;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A cooperative stop flag. Checkers have no clock: the caller (CLI, run orchestrator)
/// raises this flag when `--time-limit` expires, and a checker that sees it returns
/// `unknown` instead of guessing.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Limits a check runs under.
#[derive(Clone, Debug)]
pub struct CheckContext {
    pub cancel: Cancel,
    /// Soft bound on the memory a checker's search may use; past it the verdict is unknown.
    pub memory_limit_bytes: usize,
}

impl Default for CheckContext {
    fn default() -> Self {
        CheckContext {
            cancel: Cancel::new(),
            memory_limit_bytes: 4 << 30,
        }
    }
}

/// Judges a history. Implementations are pure: no I/O, no clock, no global state.
pub trait Checker: Send + Sync {
    /// The registry name, e.g. `linearizable`.
    fn name(&self) -> &str;
    fn check(&self, history: &History, ctx: &CheckContext) -> Verdict;
    /// The online form: fed op by op while the history is recorded, it reports anomalies
    /// as soon as they are certain and ends with the verdict [`Checker::check`] gives on
    /// the same history (see [`crate::online`]).
    fn online(&self) -> Box<dyn OnlineChecker>;
}
