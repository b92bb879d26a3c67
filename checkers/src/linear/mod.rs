//! The linearizability checker (`linearizable`): an exact search in the Wing & Gong /
//! Lowe / Porcupine family, with per-key partitioning (P-compositionality) checked in
//! parallel across cores.
//!
//! Semantics are Jepsen's: a `fail` did not happen; an `info` or missing completion may
//! have happened at any time after its invocation, or not at all; a read whose result is
//! unknown constrains nothing and is dropped; nemesis ops are ignored. The verdict is
//! `unknown` only when the [`Cancel`](crate::Cancel) flag is raised or the memory bound
//! is reached, never a guess.
//!
//! # Evidence (`Verdict.evidence` of an invalid verdict)
//!
//! ```text
//! {
//!   "model": "cas-register",
//!   "key": <the key's JSON, null for unkeyed histories>,
//!   "failing_op": <OP>,            // the earliest op whose ok result cannot be justified
//!   "observed": <JSON>,            // what it returned
//!   "possible_states": [<JSON>],   // model states it could have seen (≤ 16)
//!   "possible_states_truncated": bool,
//!   "ops": [<OP>],                 // the window: failing op, ops concurrent with it,
//!                                  // the last op placed before it (≤ 64, by invocation)
//!   "linearizable_prefix": {
//!     "length": n,                 // ops in the longest partial linearization found
//!     "shown_from": k,             // steps[0] is step k of it (the last 16 are kept)
//!     "steps": [<OP> + {"state_after": <JSON>}]
//!   },
//!   "minimized": bool              // false when a limit cut the search for the earliest op
//! }
//! <OP> = {"index": invocation index, "completion_index": index or null (unknown outcome),
//!         "process", "f", "value": invocation value, "outcome": "ok"|"unknown",
//!         "display": "p3 cas [1 2] → ok [1 2] (#9–#12)"}
//! ```

mod explain;
mod hash;

pub mod models;
mod prepare;
mod search;

pub use models::ModelKind;
pub use models::{Interner, Model, OpInput};

use crate::checker::{CheckContext, Checker};
use crate::history::History;
use crate::registry::{pick_option, CheckerOptions, RegistryError};
use crate::verdict::Verdict;
use models::ModelVisitor;
use prepare::Partition;
use search::{GaveUp, Limits, Outcome, Scratch};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::sync::OnceLock;

/// The registry name.
pub const NAME: &str = "linearizable";
/// The model used when none is given.
pub const DEFAULT_MODEL: &str = "cas-register";
/// Steps each search for a counterexample may take (a few tenths of a second).
const EXPLAIN_MAX_STEPS: u64 = 1 << 22;
/// The anomaly an invalid verdict reports.
pub const ANOMALY: &str = "nonlinearizable";

/// The linearizability checker for one model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linearizable {
    pub model: ModelKind,
}

impl Linearizable {
    pub fn new(model: ModelKind) -> Linearizable {
        Linearizable { model }
    }

    /// Builds the checker from `--model` (default `cas-register`).
    pub fn from_options(options: &CheckerOptions) -> Result<Linearizable, RegistryError> {
        let name = pick_option(
            NAME,
            "model",
            options.model.as_deref(),
            Some(DEFAULT_MODEL),
            ModelKind::NAMES,
        )?;
        let model = ModelKind::from_name(name).expect("pick_option returns a listed name");
        Ok(Linearizable { model })
    }
}

/// The registry's build function.
pub fn build(options: &CheckerOptions) -> Result<Box<dyn Checker>, RegistryError> {
    Ok(Box::new(Linearizable::from_options(options)?))
}

impl Checker for Linearizable {
    fn name(&self) -> &str {
        NAME
    }

    fn check(&self, history: &History, ctx: &CheckContext) -> Verdict {
        check_history(history, self.model, ctx)
    }
}

/// Checks `history` for linearizability under `model`.
pub fn check_history(history: &History, model: ModelKind, ctx: &CheckContext) -> Verdict {
    model.visit(Check {
        history,
        ctx,
        model_name: model.name(),
    })
}

struct Check<'a> {
    history: &'a History,
    ctx: &'a CheckContext,
    model_name: &'static str,
}

impl ModelVisitor for Check<'_> {
    type Output = Verdict;

    fn visit<M: Model>(self, model: &M) -> Verdict {
        check_with(model, self.model_name, self.history, self.ctx)
    }
}

fn check_with<M: Model>(
    model: &M,
    model_name: &str,
    history: &History,
    ctx: &CheckContext,
) -> Verdict {
    let parts = match prepare::partition(model, history) {
        Ok(parts) => parts,
        Err(e) => {
            return Verdict::unknown(format!(
                "Cannot check linearizability: op {} does not fit the {model_name} model: {}; pick the model matching the workload with --model ({}).",
                e.op,
                e.reason,
                ModelKind::NAMES.join(", ")
            ))
        }
    };
    let op_count: usize = parts.iter().map(|p| p.ops.len()).sum();
    let keys = parts.len();
    let memory_used_bytes = AtomicUsize::new(0);
    // The lowest partition index found not linearizable: partitions after it are
    // abandoned, partitions before it still finish, so the reported key is always the
    // bad key used first in the history, whatever the thread timing.
    let first_bad = AtomicUsize::new(usize::MAX);
    // Each worker takes its partitions out and frees them when done (in parallel, and
    // early); only a partition found not linearizable comes back, for the counterexample.
    let parts: Vec<Mutex<Option<Partition<M::Op>>>> =
        parts.into_iter().map(|p| Mutex::new(Some(p))).collect();
    let results = run_parallel(parts.len(), Scratch::default, |scratch, i| {
        let part = parts[i]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
            .expect("each partition is searched once");
        let abandon = || first_bad.load(Ordering::Relaxed) < i;
        let limits = Limits {
            cancel: &ctx.cancel,
            memory_limit_bytes: ctx.memory_limit_bytes,
            memory_used_bytes: &memory_used_bytes,
            abandon: &abandon,
            max_steps: u64::MAX,
        };
        let outcome = search::search_in(scratch, model, &part.ops, &limits, None);
        if outcome == Outcome::NotLinearizable {
            first_bad.fetch_min(i, Ordering::Relaxed);
            return (outcome, Some(part));
        }
        (outcome, None)
    });
    let (outcomes, mut kept): (Vec<Outcome>, Vec<_>) = results.into_iter().unzip();
    let bad = outcomes.iter().position(|o| *o == Outcome::NotLinearizable);
    if let Some(part) = bad.and_then(|bad| kept[bad].take()) {
        let abandon = || false;
        // The verdict is known: finding the earliest, smallest counterexample is best
        // effort. Each of its searches (on truncated histories, where every op completing
        // later has an unknown outcome) may cost as much as the verdict's search again;
        // past the budget it reports what it found, marked not minimized.
        let limits = Limits {
            cancel: &ctx.cancel,
            memory_limit_bytes: ctx.memory_limit_bytes,
            memory_used_bytes: &memory_used_bytes,
            abandon: &abandon,
            max_steps: EXPLAIN_MAX_STEPS,
        };
        let example = explain::explain(model, model_name, history, &part, &limits);
        let key = explain::subject(&part.key);
        let scope = if keys == 1 {
            format!("{op_count} op(s) checked")
        } else {
            format!("{op_count} ops over {keys} keys checked; of the keys that are not linearizable, the one used first is reported")
        };
        return Verdict::invalid(
            vec![ANOMALY.to_string()],
            format!("{key} is not linearizable under the {model_name} model ({scope})."),
        )
        .with_explanation(example.text)
        .with_evidence(example.evidence);
    }
    let gave_up = outcomes.iter().find_map(|o| match o {
        Outcome::GaveUp(why) if *why != GaveUp::Abandoned => Some(*why),
        _ => None,
    });
    if let Some(why) = gave_up {
        let done = outcomes
            .iter()
            .filter(|o| **o == Outcome::Linearizable)
            .count();
        return Verdict::unknown(format!(
            "Linearizability under the {model_name} model is unknown: {} after {done} of {keys} key(s) were found linearizable; raise the limit or check a shorter history.",
            explain::gave_up_reason(why)
        ));
    }
    Verdict::valid(format!(
        "{op_count} op(s) over {keys} key(s) are linearizable under the {model_name} model."
    ))
}

/// The cores this process may use (asking the OS reads cgroup files: once is enough).
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| {
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
    })
}

/// Runs `job(worker state, i)` for every `i < count` on up to one thread per core, each
/// thread with its own state made by `init`; results by index.
fn run_parallel<W, R: Send>(
    count: usize,
    init: impl Fn() -> W + Sync,
    job: impl Fn(&mut W, usize) -> R + Sync,
) -> Vec<R> {
    let serial = || {
        let mut state = init();
        (0..count).map(|i| job(&mut state, i)).collect()
    };
    if count <= 1 {
        return serial();
    }
    let threads = cores().min(count);
    if threads <= 1 {
        return serial();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut state = init();
        let mut mine = Vec::new();
        // Bounded: each turn takes a fresh index below `count`.
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= count {
                break mine;
            }
            mine.push((i, job(&mut state, i)));
        }
    };
    // The calling thread works too: a spawned thread may start milliseconds late (an
    // idle virtual CPU wakes slowly), and then the caller has taken its share already.
    let mut results: Vec<(usize, R)> = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut all = work();
        for helper in helpers {
            all.extend(helper.join().expect("a linearizability worker panicked"));
        }
        all
    });
    results.sort_unstable_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}
