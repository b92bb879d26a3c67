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
//!         "process", "node": the node it went to or null, "f", "value": invocation value,
//!         "outcome": "ok"|"unknown", "display": "p3@n2 cas [1 2] → ok [1 2] (#9–#12)"}
//! ```

mod explain;
mod hash;

pub mod models;
mod online;
mod prepare;
mod search;

pub use models::ModelKind;
pub use models::{Interner, Model, OpInput};

use crate::checker::{CheckContext, Checker};
use crate::history::History;
use crate::online::OnlineChecker;
use crate::registry::{pick_option, CheckerOptions, RegistryError};
use crate::verdict::Verdict;
use models::ModelVisitor;
use prepare::Partition;
use search::{GaveUp, Limits, Outcome, Scratch};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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

    /// Online, each key's prefix is searched as it grows (see `linear/online.rs`).
    fn online(&self) -> Box<dyn OnlineChecker> {
        struct Online(&'static str);
        impl ModelVisitor for Online {
            type Output = Box<dyn OnlineChecker>;
            fn visit<M: Model>(self, model: &M) -> Box<dyn OnlineChecker> {
                Box::new(online::OnlineLinear::new(model.clone(), self.0))
            }
        }
        self.model.visit(Online(self.model.name()))
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
    model_name: &'static str,
    history: &History,
    ctx: &CheckContext,
) -> Verdict {
    let mut tally = Tally::new(model_name);
    match prepare::partition(model, history) {
        Ok(parts) => {
            let jobs = parts
                .into_iter()
                .map(|part| Job {
                    history,
                    first_use: history.ops()[part.first_use as usize].index,
                    part,
                    known_bad: false,
                })
                .collect();
            search_keys(model, jobs, ctx, &AtomicUsize::new(0), &mut tally);
        }
        Err(e) => tally.misfit(e),
    }
    tally.verdict()
}

/// One key to search: its partition, the history its positions refer to (the whole
/// history, or the key's own ops online), and the index of its first op.
pub(crate) struct Job<'h, O> {
    pub history: &'h History,
    pub part: Partition<O>,
    pub first_use: u64,
    /// A prefix of it was found not linearizable already (online): no search needed.
    pub known_bad: bool,
}

/// A key found not linearizable, with its counterexample.
pub(crate) struct Bad {
    pub first_use: u64,
    pub key: Option<serde_json::Value>,
    pub example: explain::Counterexample,
}

/// What the keys of a history came to, added up key by key (in any order: the verdict
/// depends only on the set of keys, which is what lets online checking judge keys as
/// they are retired), then turned into the verdict.
pub(crate) struct Tally {
    model_name: &'static str,
    op_count: usize,
    keys: usize,
    linearizable: usize,
    /// Of the keys not linearizable, the one used first.
    pub bad: Option<Bad>,
    /// Of the keys whose search gave up, the one used first, and why.
    gave_up: Option<(u64, GaveUp)>,
    /// The op invoked first among those that do not fit the model.
    misfit: Option<prepare::PrepareError>,
}

impl Tally {
    pub fn new(model_name: &'static str) -> Tally {
        Tally {
            model_name,
            op_count: 0,
            keys: 0,
            linearizable: 0,
            bad: None,
            gave_up: None,
            misfit: None,
        }
    }

    /// An op that does not fit the model: the verdict is unknown, naming the first.
    pub fn misfit(&mut self, e: prepare::PrepareError) {
        if self.misfit.as_ref().is_none_or(|m| e.index < m.index) {
            self.misfit = Some(e);
        }
    }

    pub fn model_name(&self) -> &'static str {
        self.model_name
    }

    pub fn has_misfit(&self) -> bool {
        self.misfit.is_some()
    }

    /// The first use of the bad key used first, if any.
    pub fn bad_first_use(&self) -> Option<u64> {
        self.bad.as_ref().map(|b| b.first_use)
    }

    pub fn verdict(self) -> Verdict {
        let model_name = self.model_name;
        if let Some(e) = self.misfit {
            return Verdict::unknown(format!(
                "Cannot check linearizability: op {} does not fit the {model_name} model: {}; pick the model matching the workload with --model ({}).",
                e.op,
                e.reason,
                ModelKind::NAMES.join(", ")
            ));
        }
        let (op_count, keys) = (self.op_count, self.keys);
        if let Some(bad) = self.bad {
            let key = explain::subject(&bad.key);
            let scope = if keys == 1 {
                format!("{op_count} op(s) checked")
            } else {
                format!("{op_count} ops over {keys} keys checked; of the keys that are not linearizable, the one used first is reported")
            };
            return Verdict::invalid(
                vec![ANOMALY.to_string()],
                format!("{key} is not linearizable under the {model_name} model ({scope})."),
            )
            .with_explanation(bad.example.text)
            .with_evidence(bad.example.evidence);
        }
        if let Some((_, why)) = self.gave_up {
            return Verdict::unknown(format!(
                "Linearizability under the {model_name} model is unknown: {} after {} of {keys} key(s) were found linearizable; raise the limit or check a shorter history.",
                explain::gave_up_reason(why),
                self.linearizable
            ));
        }
        Verdict::valid(format!(
            "{op_count} op(s) over {keys} key(s) are linearizable under the {model_name} model."
        ))
    }
}

/// Searches the keys of `jobs` in parallel and adds what they came to into `tally`.
/// Keys used after a key found not linearizable are abandoned (in `tally` already, or
/// among `jobs`: the reported key is always the bad key used first, whatever the thread
/// timing); the bad key used first gets its counterexample. Returns the first uses of
/// the keys found not linearizable here, and whether each was explained.
pub(crate) fn search_keys<M: Model>(
    model: &M,
    mut jobs: Vec<Job<'_, M::Op>>,
    ctx: &CheckContext,
    memory_used_bytes: &AtomicUsize,
    tally: &mut Tally,
) -> Vec<u64> {
    jobs.sort_by_key(|j| j.first_use);
    let first_bad = AtomicU64::new(tally.bad_first_use().unwrap_or(u64::MAX));
    for job in &jobs {
        tally.op_count += job.part.ops.len();
        tally.keys += 1;
        if job.known_bad {
            first_bad.fetch_min(job.first_use, Ordering::Relaxed);
        }
    }
    // Each worker takes its partitions out and frees them when done (in parallel, and
    // early); only a partition found not linearizable comes back, for the counterexample.
    let first_uses: Vec<u64> = jobs.iter().map(|j| j.first_use).collect();
    let slots: Vec<Mutex<Option<Job<'_, M::Op>>>> =
        jobs.into_iter().map(|j| Mutex::new(Some(j))).collect();
    let results = run_parallel(slots.len(), Scratch::default, |scratch, i| {
        let job = slots[i]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
            .expect("each partition is searched once");
        let mine = job.first_use;
        if job.known_bad {
            return (Outcome::NotLinearizable, Some(job));
        }
        let abandon = || first_bad.load(Ordering::Relaxed) < mine;
        let limits = Limits {
            cancel: &ctx.cancel,
            memory_limit_bytes: ctx.memory_limit_bytes,
            memory_used_bytes,
            abandon: &abandon,
            max_steps: u64::MAX,
        };
        let outcome = search::search_in(scratch, model, &job.part.ops, &limits, None);
        if outcome == Outcome::NotLinearizable {
            first_bad.fetch_min(mine, Ordering::Relaxed);
            return (outcome, Some(job));
        }
        (outcome, None)
    });
    let mut found_bad = Vec::new();
    for ((outcome, job), first_use) in results.into_iter().zip(first_uses) {
        match outcome {
            Outcome::Linearizable => tally.linearizable += 1,
            Outcome::NotLinearizable => {
                found_bad.push(first_use);
                let job = job.expect("a bad key comes back");
                if tally.bad_first_use().is_none_or(|b| first_use < b) {
                    let model_name = tally.model_name;
                    tally.bad = Some(explain_key(model, model_name, &job, ctx, memory_used_bytes));
                }
            }
            Outcome::GaveUp(GaveUp::Abandoned) => {}
            Outcome::GaveUp(why) => {
                if tally.gave_up.is_none_or(|(f, _)| first_use < f) {
                    tally.gave_up = Some((first_use, why));
                }
            }
        }
    }
    found_bad
}

/// The counterexample of a key known not to be linearizable.
pub(crate) fn explain_key<M: Model>(
    model: &M,
    model_name: &str,
    job: &Job<'_, M::Op>,
    ctx: &CheckContext,
    memory_used_bytes: &AtomicUsize,
) -> Bad {
    let abandon = || false;
    // The verdict is known: finding the earliest, smallest counterexample is best
    // effort. Each of its searches (on truncated histories, where every op completing
    // later has an unknown outcome) may cost as much as the verdict's search again;
    // past the budget it reports what it found, marked not minimized.
    let limits = Limits {
        cancel: &ctx.cancel,
        memory_limit_bytes: ctx.memory_limit_bytes,
        memory_used_bytes,
        abandon: &abandon,
        max_steps: EXPLAIN_MAX_STEPS,
    };
    Bad {
        first_use: job.first_use,
        key: job.part.key.clone(),
        example: explain::explain(model, model_name, job.history, &job.part, &limits),
    }
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
