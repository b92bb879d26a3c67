//! The `Nemesis` trait the run orchestrator drives, the `FaultOp` it speaks, and the
//! `NemesisContext` every fault is built from.
//!
//! The orchestrator asks [`Nemesis::next_op`] for an op, records it as a nemesis `info`
//! invoke, performs it with [`Nemesis::invoke`] and records the returned value (or error)
//! as the `info` completion. At the end of every run, also on Ctrl-C, it calls
//! [`Nemesis::heal`] and records each op heal performed the same way. Before the run
//! starts it asks [`Nemesis::preflight`] whether the faults can be applied at all.

use crate::error::NemesisError;
use crate::node::{NodeShell, TargetControl};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

/// One fault op: `f` is one of the fault names in ARCHITECTURE.md (`start-partition`,
/// `kill`, `bump-clock`, ...), `value` says what to do (which nodes, grudge, offsets).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultOp {
    pub f: String,
    pub value: Value,
}

impl FaultOp {
    pub fn new(f: impl Into<String>, value: Value) -> FaultOp {
        FaultOp { f: f.into(), value }
    }
}

/// What heal did: each op it performed with its outcome, in order.
pub type HealLog = Vec<(FaultOp, Result<Value, NemesisError>)>;

/// Everything a nemesis acts through. `seed` makes the schedule replayable: the same seed
/// and the same node names give the same sequence of ops.
#[derive(Clone)]
pub struct NemesisContext {
    pub nodes: Vec<Arc<dyn NodeShell>>,
    pub target: Arc<dyn TargetControl>,
    pub seed: u64,
}

/// A source of faults that can undo all of them.
pub trait Nemesis: Send {
    /// The name it was built from (`partition`, `all`, ...).
    fn name(&self) -> &str;

    /// The fault op names it performs (`start-partition`, `stop-partition`, ...); empty
    /// for `none`, which the orchestrator should then not schedule at all.
    fn performs(&self) -> Vec<&'static str>;

    /// The next fault op to perform, drawn from the seeded RNG: alternates start/stop of
    /// the enabled faults. Depends only on the seed, the node names and the ops drawn
    /// before, never on whether they succeeded, so a schedule replays exactly.
    fn next_op(&mut self) -> FaultOp;

    /// Performs `op`; the returned value goes into the history's completion op and says
    /// what exactly was done (which nodes, grudge, offsets). On an error the fault may
    /// have partly taken effect; [`heal`](Self::heal) still undoes that part.
    fn invoke(&mut self, op: &FaultOp) -> Result<Value, NemesisError>;

    /// Undoes everything still in effect (ends partitions, loss and latency, restarts
    /// killed nodes, resumes paused ones, resets clocks) and returns the ops it performed
    /// with their outcomes, for the history. Idempotent: once all succeeded, a second call
    /// performs nothing. Keeps going past individual failures; what failed stays on the
    /// books, so a later call retries it.
    fn heal(&mut self) -> HealLog;

    /// Human names of the faults in effect now ("partition majorities-ring",
    /// "n2 killed"), for the progress line. Only faults whose start op succeeded: a start
    /// that failed is undone where it took effect (what cannot be undone stays for heal)
    /// and is never listed here.
    fn active(&self) -> Vec<String>;

    /// Whether its drawn ops alternate between putting a fault in place and removing it,
    /// so that a composite counts it open in between. False for faults that are over when
    /// their op completes (`lose-unsynced`, `corrupt-file`): they never hold a slot.
    fn alternates(&self) -> bool {
        true
    }

    /// Whether the faults can be applied on these nodes and this target at all, asked
    /// before the run starts (and before anything is changed): tools present and usable,
    /// kernel support, a target whose clock or processes can be reached. The error is one
    /// sentence naming the fault and what is missing where, e.g. "latency needs NFQUEUE
    /// (nfnetlink_queue) with queue 17492 free, which this machine lacks (...)". May run
    /// commands on the nodes, never one that changes what the run will see.
    fn preflight(&self) -> Result<(), NemesisError>;
}
