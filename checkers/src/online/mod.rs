//! Online checking: checkers that consume a history op by op while it is recorded.
//!
//! Jepsen-style tools check after the run, with the whole history in memory. Here every
//! checker also has an online form ([`Checker::online`]) fed by [`OnlineCheck`] as each
//! op is recorded. An online checker does two things:
//!
//! - It reports an [`Anomaly`] as soon as the ops so far *prove* one: an anomaly reported
//!   online is one the offline check of the whole history also finds (the proofs rely on
//!   properties that later ops cannot undo, e.g. linearizability is prefix-closed). The
//!   one exception is a later op that voids the checker's verdict altogether (an op that
//!   does not fit the linearizability model, a counter add that is not a number): the
//!   verdict is then `unknown`, as offline.
//! - At the end, [`OnlineCheck::finish`] gives exactly the verdict the offline checker
//!   gives on the same history (same validity, anomalies, summary, explanation and
//!   evidence), because the final verdict is computed by the offline code on the same
//!   ops: per key as keys are retired, the rest at the end.
//!
//! **Bounded memory.** Keyed workloads retire keys: [`OnlineCheck::retire`] says that no
//! op on a key will be invoked any more. Once its ops in flight have completed, the key's
//! ops are checked and dropped; only a few words per key remain (and, for a key found
//! invalid, what its evidence needs). Per checker:
//!
//! | checker | reports online | memory |
//! |---|---|---|
//! | `stats` | nothing (a `never-succeeded` f is known only at the end) | bounded: counts per `f` |
//! | `linearizable` | a non-linearizable prefix of a key (searched on [`OnlineCheck::tick`]; ops in flight at the cut count as indeterminate) | the ops of live keys; a retired key's are dropped. Not bounded for an unkeyed history or a key that is never retired: its counterexample needs all its ops |
//! | `set` | a read listing an element twice; lost and unexpected elements when the key retires (a later read or add can still change them) | the ops of live keys |
//! | `counter` | a read outside the bounds of the adds so far (adds in flight count as possible, so the bounds only narrow later) | the ops of live keys |
//! | `unique-ids` | an id handed out twice | the ops of live keys |
//! | `total-queue`, `crdt-convergence` | when the key retires: a value may still be enqueued, a replica still converge, until then | the ops of live keys |
//! | `list-append`, `rw-register` | a proscribed anomaly among transactions whose keys are all retired (a *part*: transactions closed under sharing a key), when the part's last op completes; its proof is final (`elle/online.rs` argues why a part can be judged alone under realtime order or none) | the ops of live parts; a settled part's are dropped. Bounded when transactions only share keys that retire together (distest's txn workloads retire keys in generations); not bounded for keys never retired, nor for parts that keep growing (keys retired one by one under multi-key transactions, as in Jepsen's histories), nor for `strong-session-*` checks (process order can close a cycle across parts: the whole history is held). The final verdict is composed from the parts when none showed anything (list-append: always then; rw-register: only without version orders left open, which blind writes nobody reads leave); otherwise it [needs the whole history](OnlineChecker::needs_history) again, read back from the recorded file at the end |
//!
//! Retired keys leave a few bytes each (a count and, for the convergence checkers, at
//! most [`crate::convergence::KEYS_LISTED`] keys' summaries per verdict kind); an
//! unkeyed history keeps its ops until the end, as an offline check would. A checker
//! whose final verdict cannot be composed from what it judged says so through
//! [`OnlineChecker::needs_history`]; [`OnlineCheck::finish_with`] then asks the caller,
//! once for all such checkers, for their offline verdicts of the recorded history (a
//! run reads `history.jsonl` back once).

pub(crate) mod keyed;
mod last_uses;

pub use last_uses::{fingerprint, LastUses, Retirements};

use crate::checker::{CheckContext, Checker};
use crate::fxhash::FxMap;
use crate::history::{HistoryError, Pairing};
use crate::op::Op;
use crate::verdict::{Results, Verdict};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// An anomaly found while the history was still being recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// The checker that found it.
    pub checker: String,
    /// The index of the op that completed it (the op whose result no valid history
    /// explains, or the op that made the proof whole).
    pub index: u64,
    /// That op's time, in nanoseconds since the run started.
    pub time: u64,
    /// One short sentence: what is wrong, with the key and node when known.
    pub text: String,
    /// When it was reported, in nanoseconds since the run started (set by a run, which
    /// has a clock; checkers have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_time: Option<u64>,
}

/// A checker's online form. The history arrives in recording order through
/// [`OnlineCheck`], which validates it and pairs completions with their invocations;
/// every method may push anomalies to `out`.
pub trait OnlineChecker: Send {
    /// The registry name, as the offline checker's.
    fn name(&self) -> &str;
    /// A client invocation.
    fn invoked(&mut self, _invoke: &Op, _ctx: &CheckContext, _out: &mut Vec<Anomaly>) {}
    /// A client completion (`ok`, `fail` or `info`) with its invocation.
    fn completed(
        &mut self,
        invoke: &Op,
        completion: &Op,
        ctx: &CheckContext,
        out: &mut Vec<Anomaly>,
    );
    /// A nemesis op.
    fn nemesis(&mut self, _op: &Op) {}
    /// No op on `key` will be invoked any more; with `ended`, no op in flight on it
    /// will complete either (a replay of a recorded history knows this; a run does not,
    /// and its ops in flight are waited for).
    fn retire(&mut self, _key: &Value, _ended: bool, _ctx: &CheckContext, _out: &mut Vec<Anomaly>) {
    }
    /// Deferred work (searches over what arrived since the last tick). The caller calls
    /// it every so often (the run: a few times a second); checkers have no clock.
    fn tick(&mut self, _ctx: &CheckContext, _out: &mut Vec<Anomaly>) {}
    /// The history is over: the verdict of the offline checker on it.
    fn finish(self: Box<Self>, ctx: &CheckContext) -> Verdict;
    /// The history is over: judges what is still held, and says whether the verdict
    /// needs the whole history again (the ops were dropped as they were judged, and what
    /// was found cannot be composed into the offline verdict: the isolation checkers
    /// after an anomaly, see `elle/online.rs`). The caller then checks the recorded
    /// history offline instead of calling [`Self::finish`].
    fn needs_history(&mut self, _ctx: &CheckContext) -> bool {
        false
    }
    /// Ops held now (copies kept for later checking): what memory grows with.
    fn held_ops(&self) -> usize;
}

/// The online form of a checker that judges only whole histories: it holds every op
/// and runs the offline check at the end. Reports nothing early; memory grows with the
/// history.
pub struct Buffered {
    checker: Box<dyn Checker>,
    ops: Vec<Op>,
}

impl Buffered {
    pub fn new(checker: Box<dyn Checker>) -> Buffered {
        Buffered {
            checker,
            ops: Vec::new(),
        }
    }
}

impl OnlineChecker for Buffered {
    fn name(&self) -> &str {
        self.checker.name()
    }

    fn invoked(&mut self, invoke: &Op, _ctx: &CheckContext, _out: &mut Vec<Anomaly>) {
        self.ops.push(invoke.clone());
    }

    fn completed(
        &mut self,
        _invoke: &Op,
        completion: &Op,
        _ctx: &CheckContext,
        _out: &mut Vec<Anomaly>,
    ) {
        self.ops.push(completion.clone());
    }

    fn nemesis(&mut self, op: &Op) {
        self.ops.push(op.clone());
    }

    fn held_ops(&self) -> usize {
        self.ops.len()
    }

    fn finish(self: Box<Self>, ctx: &CheckContext) -> Verdict {
        match crate::history::History::new(self.ops) {
            Ok(history) => self.checker.check(&history, ctx),
            // OnlineCheck took every op by the same rules, in order.
            Err(e) => Verdict::unknown(format!("The recorded ops do not form a history: {e}.")),
        }
    }
}

/// Feeds a history, op by op, to the online forms of several checkers.
pub struct OnlineCheck {
    checkers: Vec<Box<dyn OnlineChecker>>,
    pairing: Pairing<u64>,
    /// Client invocations in flight, by index.
    in_flight: FxMap<u64, Op>,
    next_index: u64,
    first: Option<Anomaly>,
    found: Vec<Anomaly>,
    anomaly_count: u64,
}

impl OnlineCheck {
    /// Online forms of `checkers`.
    pub fn new(checkers: &[Box<dyn Checker>]) -> OnlineCheck {
        OnlineCheck::of(checkers.iter().map(|c| c.online()).collect())
    }

    pub fn of(checkers: Vec<Box<dyn OnlineChecker>>) -> OnlineCheck {
        OnlineCheck {
            checkers,
            pairing: Pairing::default(),
            in_flight: FxMap::default(),
            next_index: 0,
            first: None,
            found: Vec::new(),
            anomaly_count: 0,
        }
    }

    /// The next op of the history (indices dense from 0, as distest records them).
    /// Returns the anomalies it completed. An op that breaks the rules of a history is
    /// an error, and the op is not taken.
    pub fn push(&mut self, op: Op, ctx: &CheckContext) -> Result<&[Anomaly], HistoryError> {
        if op.index != self.next_index {
            return Err(HistoryError::SparseIndex {
                position: self.next_index as usize,
                index: op.index,
            });
        }
        let in_flight = &self.in_flight;
        let paired = self
            .pairing
            .push(&op, op.index, |i| in_flight.get(&i).expect("in flight"))?;
        self.next_index += 1;
        self.found.clear();
        if !op.is_client() {
            for c in &mut self.checkers {
                c.nemesis(&op);
            }
        } else if let Some(invoke_index) = paired {
            let invoke = self.in_flight.remove(&invoke_index).expect("in flight");
            for c in &mut self.checkers {
                c.completed(&invoke, &op, ctx, &mut self.found);
            }
        } else {
            for c in &mut self.checkers {
                c.invoked(&op, ctx, &mut self.found);
            }
            self.in_flight.insert(op.index, op);
        }
        Ok(self.note_found())
    }

    /// No op on `key` will be invoked any more (keyed workloads retire keys): once its
    /// ops in flight complete, the checkers judge it and drop its ops. With `ended`, its
    /// ops in flight will not complete either (a recorded history replayed past the
    /// key's last op): it is judged now, those ops counting as indeterminate.
    pub fn retire(&mut self, key: &Value, ended: bool, ctx: &CheckContext) -> &[Anomaly] {
        self.found.clear();
        for c in &mut self.checkers {
            c.retire(key, ended, ctx, &mut self.found);
        }
        self.note_found()
    }

    /// Lets the checkers do their deferred work; the anomalies it found.
    pub fn tick(&mut self, ctx: &CheckContext) -> &[Anomaly] {
        self.found.clear();
        for c in &mut self.checkers {
            c.tick(ctx, &mut self.found);
        }
        self.note_found()
    }

    fn note_found(&mut self) -> &[Anomaly] {
        self.anomaly_count += self.found.len() as u64;
        if self.first.is_none() {
            // The earliest op among those found together.
            self.first = self.found.iter().min_by_key(|a| a.index).cloned();
        }
        &self.found
    }

    /// The first anomaly reported so far.
    pub fn first_anomaly(&self) -> Option<&Anomaly> {
        self.first.as_ref()
    }

    /// How many anomalies were reported so far (each checker reports a key at most once).
    pub fn anomaly_count(&self) -> u64 {
        self.anomaly_count
    }

    /// Ops the checkers hold now, over all of them: what memory grows with.
    pub fn held_ops(&self) -> usize {
        self.checkers.iter().map(|c| c.held_ops()).sum::<usize>() + self.in_flight.len()
    }

    /// Ops taken so far: the history is checked up to this index.
    pub fn op_count(&self) -> u64 {
        self.next_index
    }

    /// The history is over: every checker's verdict, as the offline check gives them.
    /// The checkers that [need the whole history](OnlineChecker::needs_history) get
    /// `offline(positions)` instead, called once (and only when there is one), with
    /// their positions among the checkers given to [`OnlineCheck::new`]: the caller
    /// checks the recorded history with all of them and returns their verdicts in that
    /// order (one read of the history feeds them all).
    pub fn finish_with(
        self,
        ctx: &CheckContext,
        offline: impl FnOnce(&[usize]) -> Vec<Verdict>,
    ) -> Results {
        let mut checkers = self.checkers;
        let needing: Vec<usize> = checkers
            .iter_mut()
            .enumerate()
            .filter_map(|(i, c)| c.needs_history(ctx).then_some(i))
            .collect();
        let mut rechecked = if needing.is_empty() {
            Vec::new()
        } else {
            offline(&needing)
        }
        .into_iter();
        debug_assert_eq!(rechecked.len(), needing.len(), "one verdict per position");
        let verdicts: BTreeMap<String, Verdict> = checkers
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let name = c.name().to_string();
                let verdict = if needing.contains(&i) {
                    rechecked.next().unwrap_or_else(|| {
                        Verdict::unknown(format!(
                            "The offline check of the recorded history gave no verdict for the {name} checker; check the history file offline."
                        ))
                    })
                } else {
                    c.finish(ctx)
                };
                (name, verdict)
            })
            .collect();
        Results::from_verdicts(verdicts)
    }

    /// [`OnlineCheck::finish_with`] for callers without the recorded history: a checker
    /// that needs it answers unknown, saying so.
    pub fn finish(self, ctx: &CheckContext) -> Results {
        let names: Vec<String> = self.checkers.iter().map(|c| c.name().to_string()).collect();
        self.finish_with(ctx, |needing| {
            needing.iter().map(|&i| {
                Verdict::unknown(format!(
                    "The {} checker needs the whole recorded history for its final verdict, and none was given; check the history file offline.",
                    names[i]
                ))
            }).collect()
        })
    }
}

/// What a replay of a recorded history through the online checkers gave.
pub struct Replay {
    pub results: Results,
    /// Every anomaly reported while the history was replayed, in order.
    pub anomalies: Vec<Anomaly>,
    /// The most ops the checkers held at once.
    pub max_held_ops: usize,
}

/// Checks a recorded history too large to hold, in two passes over `open()`: the first
/// finds where each key is used last (and what an import needs to number its ops), the
/// second feeds the ops to the online forms of `checkers`, retiring each key after its
/// last op and ticking every `tick_every` ops. Memory: the ops of the keys live at the
/// same time (all of them for an unkeyed history), never the file; besides, per key of
/// the history, 16 bytes and the hash table's slack in the first pass ([`LastUses`]) and
/// a byte or two in the second ([`Retirements`]), and about a bit per process retired by
/// an `info` op ([`Pairing`]). A checker that [needs the whole
/// history](OnlineChecker::needs_history) at the end (an isolation anomaly) reads it a
/// third time, whole. The results equal the offline check's. (`open` is the caller's
/// I/O: this crate opens nothing.) `uses` is the first pass: `LastUses::default()`, or
/// one with another fingerprint (tests force collisions with it).
pub fn replay_stream<R: std::io::Read + Send>(
    mut uses: LastUses,
    open: impl Fn() -> std::io::Result<R>,
    format: Option<crate::format::Format>,
    source_name: &str,
    checkers: &[Box<dyn Checker>],
    ctx: &CheckContext,
    tick_every: u64,
) -> Result<Replay, crate::format::ParseError> {
    use crate::format::{stream_history, ParseError};
    let opened = || {
        open().map_err(|e| ParseError::Io {
            source_name: source_name.to_string(),
            message: e.to_string(),
        })
    };
    let first = stream_history(opened()?, format, source_name, None, |op| {
        uses.push(&op);
        Ok(())
    })?;
    let mut retirements = uses.finish();
    let mut online = OnlineCheck::new(checkers);
    let mut anomalies = Vec::new();
    let mut max_held_ops = 0;
    // The second pass reads and parses on a thread of its own, a few batches of ops
    // ahead of the checking.
    let (to_check, batches) = std::sync::mpsc::sync_channel::<Vec<Op>>(BATCHES_AHEAD);
    let reader = opened()?;
    let hints = first.hints;
    let (read, failed) = std::thread::scope(|scope| {
        let reading = scope.spawn(move || {
            let mut batch = Vec::with_capacity(BATCH_OPS);
            let read = stream_history(reader, Some(first.format), source_name, Some(hints), |op| {
                batch.push(op);
                if batch.len() == BATCH_OPS {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_OPS));
                    if to_check.send(full).is_err() {
                        // The checking side failed and stopped: stop reading. This error
                        // is never shown; the checking side's is.
                        return Err(HistoryError::SparseIndex {
                            position: 0,
                            index: 0,
                        });
                    }
                }
                Ok(())
            });
            if read.is_ok() && !batch.is_empty() {
                let _ = to_check.send(batch);
            }
            read
        });
        // The refused op, counted from 0 in file order, and why.
        let mut failed = None;
        let mut taken = 0u64;
        'batches: for batch in batches {
            for op in batch {
                let index = op.index;
                let mut retired = Vec::new();
                retirements.push(&op, |key| retired.push(key.clone()));
                match online.push(op, ctx) {
                    Ok(found) => anomalies.extend_from_slice(found),
                    Err(e) => {
                        failed = Some((taken, e));
                        break 'batches;
                    }
                }
                taken += 1;
                for key in &retired {
                    anomalies.extend_from_slice(online.retire(key, true, ctx));
                }
                if tick_every > 0 && (index + 1) % tick_every == 0 {
                    anomalies.extend_from_slice(online.tick(ctx));
                    max_held_ops = max_held_ops.max(online.held_ops());
                }
            }
        }
        // (Leaving the loop drops the receiver: a reader still going stops.)
        let read = reading
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (read, failed)
    });
    if let Some((at, error)) = failed {
        // An op the checking side refused: read up to it again, for the file line the
        // error names (a cold path: bad input ends the check anyway).
        // A process reused after info: its last op before is the info, which the
        // error names as the offline check does.
        let reused = match error {
            HistoryError::ReusedAfterInfo { process, .. } => Some(process),
            _ => None,
        };
        let (mut seen, mut crashed) = (0u64, None);
        let mut error = error;
        let again = stream_history(
            opened()?,
            Some(first.format),
            source_name,
            Some(first.hints),
            |op| {
                seen += 1;
                if seen <= at {
                    if reused == Some(op.process) {
                        crashed = Some(op.index);
                    }
                    return Ok(());
                }
                if let HistoryError::ReusedAfterInfo { crashed: c, .. } = &mut error {
                    *c = crashed;
                }
                Err(error.clone())
            },
        );
        return Err(match again {
            Err(placed) => placed,
            Ok(_) => ParseError::Invalid {
                source_name: source_name.to_string(),
                error,
            },
        });
    }
    read?;
    max_held_ops = max_held_ops.max(online.held_ops());
    anomalies.extend_from_slice(online.tick(ctx));
    // The checkers whose verdict needs the whole history (after an anomaly) read it
    // again, once for all of them.
    let results = online.finish_with(ctx, |needing| {
        let history =
            opened().and_then(|r| crate::format::read_history(r, Some(first.format), source_name));
        needing
            .iter()
            .map(|&i| match &history {
                Ok(h) => checkers[i].check(h, ctx),
                Err(e) => Verdict::unknown(format!(
                    "The history could not be read again for the {} checker's final verdict: {e}.",
                    checkers[i].name()
                )),
            })
            .collect()
    });
    Ok(Replay {
        results,
        anomalies,
        max_held_ops,
    })
}

/// Ops the second pass of [`replay_stream`] hands from its reading thread to the checking
/// one at a time, and how many such batches may wait: a bound on what reading ahead holds.
const BATCH_OPS: usize = 4096;
const BATCHES_AHEAD: usize = 4;

/// Replays `history` through the online forms of `checkers`, ticking every
/// `tick_every` ops, and retiring each key after its last op when `retire` is set. The
/// results equal the offline check's; tests compare the two.
pub fn replay(
    history: &crate::History,
    checkers: &[Box<dyn Checker>],
    ctx: &CheckContext,
    retire: bool,
    tick_every: u64,
) -> Replay {
    let mut retirements = retire.then(|| {
        let mut uses = LastUses::default();
        history.ops().iter().for_each(|op| uses.push(op));
        uses.finish()
    });
    let mut online = OnlineCheck::new(checkers);
    let mut anomalies = Vec::new();
    let mut max_held_ops = 0;
    let mut retired = Vec::new();
    for op in history.ops() {
        let index = op.index;
        if let Some(r) = &mut retirements {
            r.push(op, |key| retired.push(key.clone()));
        }
        let found = online
            .push(op.clone(), ctx)
            .expect("a History keeps the rules OnlineCheck checks");
        anomalies.extend_from_slice(found);
        for key in retired.drain(..) {
            anomalies.extend_from_slice(online.retire(&key, true, ctx));
        }
        if tick_every > 0 && (index + 1) % tick_every == 0 {
            anomalies.extend_from_slice(online.tick(ctx));
        }
        max_held_ops = max_held_ops.max(online.held_ops());
    }
    anomalies.extend_from_slice(online.tick(ctx));
    Replay {
        results: online.finish_with(ctx, |needing| {
            needing
                .iter()
                .map(|&i| checkers[i].check(history, ctx))
                .collect()
        }),
        anomalies,
        max_held_ops,
    }
}

#[cfg(test)]
pub(crate) mod testkit {
    //! The unit tests' known-verdict histories go through the online form too: the
    //! same agreement `tests/online_support` asserts for the integration tests.

    use super::replay;
    use crate::checker::{CheckContext, Checker};
    use crate::history::History;
    use crate::verdict::{Validity, Verdict};

    /// The offline verdict of `checker`, after asserting that the online form agrees.
    pub(crate) fn checked(checker: Box<dyn Checker>, history: &History) -> Verdict {
        let ctx = CheckContext::default();
        let offline = checker.check(history, &ctx);
        let keyed = history
            .ops()
            .iter()
            .all(|op| !op.is_client() || op.key.is_some());
        let checkers = [checker];
        for (retire, tick_every) in [(false, 1), (true, 1), (true, 5)] {
            let online = replay(history, &checkers, &ctx, retire, tick_every);
            assert_eq!(
                online.results.checkers[checkers[0].name()],
                offline,
                "online (retire {retire}, tick every {tick_every}) and offline verdicts differ"
            );
            if !online.anomalies.is_empty() {
                assert_eq!(offline.valid, Validity::Invalid, "{:?}", online.anomalies);
            }
            if retire && keyed && offline.valid == Validity::Invalid {
                assert!(!online.anomalies.is_empty(), "{}", offline.summary);
            }
        }
        offline
    }
}
