//! The online form of `linearizable` (see [`crate::online`]).
//!
//! Each key's ops are held while the key is live. On [`OnlineChecker::tick`], a key that
//! grew is searched as it stands: linearizability is prefix-closed, so if the ops so far
//! (those still in flight counted as indeterminate: they may have taken effect, or not)
//! have no linearization, the whole history has none, and the anomaly is reported with
//! its counterexample at once. When a key is retired and its last op is done, its whole
//! partition is searched exactly as offline and its ops dropped; what remains is a tally
//! (ops, keys, the bad key used first with its counterexample), composed at the end into
//! the verdict the offline check gives.

use super::explain::subject;
use super::models::Model;
use super::prepare::{self, PrepareError};
use super::search::{self, Limits, Outcome, Scratch};
use super::{explain_key, search_keys, Bad, Job, Tally};
use crate::checker::CheckContext;
use crate::fxhash::FxMap;
use crate::history::History;
use crate::online::keyed::{key_text, Done, KeyText, KeyedOps};
use crate::online::{Anomaly, OnlineChecker};
use crate::op::{Op, OpType};
use crate::verdict::Verdict;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::atomic::AtomicUsize;

/// Steps one search of a live key's prefix may take before it is left for a later tick
/// (a tick must not stall the run; the key's final search has no such budget).
const PREFIX_MAX_STEPS: u64 = 1 << 22;

/// See the module docs.
pub(crate) struct OnlineLinear<M: Model> {
    model: M,
    keys: KeyedOps,
    /// Invocations whose value carries no `[key value]` tuple: a misfit of the model,
    /// unless the op fails (offline drops failed ops before reading them).
    keyless: FxMap<u64, (Op, String)>,
    tally: Tally,
    /// Live keys whose prefix was found not linearizable (and reported).
    bad: HashSet<KeyText>,
    memory_used_bytes: AtomicUsize,
    scratch: Scratch<M::State>,
}

impl<M: Model + Send> OnlineLinear<M>
where
    M::State: Send,
{
    pub(crate) fn new(model: M, model_name: &'static str) -> Self {
        OnlineLinear {
            model,
            keys: KeyedOps::default(),
            keyless: FxMap::default(),
            tally: Tally::new(model_name),
            bad: HashSet::new(),
            memory_used_bytes: AtomicUsize::new(0),
            scratch: Scratch::default(),
        }
    }

    /// The key the checker files `invoke` under, as [`prepare::partition`] would.
    fn key_of(invoke: &Op) -> Result<KeyText, String> {
        prepare::split::<M>(invoke, None).map(|parts| parts.key.map(key_text))
    }

    /// Searches keys that are done, adds them to the tally, reports the ones found not
    /// linearizable that were not reported yet.
    fn judge(&mut self, dones: Vec<Done>, ctx: &CheckContext, out: &mut Vec<Anomaly>) {
        let mut histories: Vec<(KeyText, History)> = Vec::with_capacity(dones.len());
        for Done { key, history } in dones {
            match history {
                Ok(h) => histories.push((key, h)),
                // The ops passed the history rules as they came: a key's share passes too.
                Err(e) => self.tally.misfit(PrepareError {
                    index: 0,
                    op: "(none)".to_string(),
                    reason: format!("the ops of one key do not form a history: {e}"),
                }),
            }
        }
        let mut jobs = Vec::new();
        // Per job: its first use, the history it came from, whether it was reported.
        let mut keys_of_jobs: Vec<(u64, usize, bool)> = Vec::new();
        for (at, (key, history)) in histories.iter().enumerate() {
            let was_bad = self.bad.remove(key);
            match prepare::partition(&self.model, history) {
                Err(e) => self.tally.misfit(e),
                Ok(parts) => {
                    for part in parts {
                        let first_use = history.ops()[part.first_use as usize].index;
                        keys_of_jobs.push((first_use, at, was_bad));
                        jobs.push(Job {
                            history,
                            part,
                            first_use,
                            known_bad: was_bad,
                        });
                    }
                }
            }
        }
        if self.tally.has_misfit() {
            // The verdict is unknown whatever the searches find.
            return;
        }
        let found = search_keys(
            &self.model,
            jobs,
            ctx,
            &self.memory_used_bytes,
            &mut self.tally,
        );
        for first_use in found {
            let Some(&(_, at, reported)) = keys_of_jobs.iter().find(|k| k.0 == first_use) else {
                continue;
            };
            if reported {
                continue;
            }
            // Only the bad key used first keeps its counterexample; its text is what
            // the anomaly says. Another bad key is named at its last op.
            let model_name = self.tally.model_name();
            match self.tally.bad.as_ref().filter(|b| b.first_use == first_use) {
                Some(bad) => out.extend(anomaly_of(bad, model_name)),
                None => {
                    let (key, history) = &histories[at];
                    let last = history.ops().last().expect("a key has ops");
                    out.push(Anomaly {
                        checker: super::NAME.to_string(),
                        index: last.index,
                        time: last.time,
                        text: format!(
                            "{} is not linearizable under the {model_name} model.",
                            key.as_ref()
                                .map_or("The history".to_string(), |k| format!("Key {k}"))
                        ),
                        reported_time: None,
                    });
                }
            }
        }
    }

    /// Searches the ops of live `key` so far; reports it when they are not linearizable.
    fn search_prefix(&mut self, key: &KeyText, ctx: &CheckContext, out: &mut Vec<Anomaly>) {
        let Some(ops) = self.keys.ops(key) else {
            return;
        };
        let Ok(history) = History::subsequence(ops.to_vec()) else {
            return;
        };
        // An op may not fit the model only once its result is known: that is for the
        // final check to say, so a prefix that does not parse is left alone.
        let Ok(mut parts) = prepare::partition(&self.model, &history) else {
            return;
        };
        let Some(part) = parts.pop() else {
            return;
        };
        let never = || false;
        let limits = Limits {
            cancel: &ctx.cancel,
            memory_limit_bytes: ctx.memory_limit_bytes,
            memory_used_bytes: &self.memory_used_bytes,
            abandon: &never,
            max_steps: PREFIX_MAX_STEPS,
        };
        let outcome = search::search_in(&mut self.scratch, &self.model, &part.ops, &limits, None);
        if outcome != Outcome::NotLinearizable {
            return;
        }
        self.bad.insert(key.clone());
        let job = Job {
            history: &history,
            first_use: history.ops()[part.first_use as usize].index,
            part,
            known_bad: true,
        };
        let bad = explain_key(
            &self.model,
            self.tally.model_name(),
            &job,
            ctx,
            &self.memory_used_bytes,
        );
        if let Some(anomaly) = anomaly_of(&bad, self.tally.model_name()) {
            out.push(anomaly);
        }
    }
}

/// The anomaly record of a bad key: at the failing op's completion, in a sentence.
fn anomaly_of(bad: &Bad, model_name: &str) -> Option<Anomaly> {
    let (index, time) = bad.example.at?;
    let mut lines = bad.example.text.lines();
    let failing = lines
        .next()
        .and_then(|l| l.split_once(": "))
        .map_or("", |(_, op)| op);
    let why = lines.next().map_or("", str::trim);
    Some(Anomaly {
        checker: super::NAME.to_string(),
        index,
        time,
        text: format!(
            "{} is not linearizable under the {model_name} model: {failing}. {why}",
            subject(&bad.key)
        ),
        reported_time: None,
    })
}

impl<M: Model + Send> OnlineChecker for OnlineLinear<M>
where
    M::State: Send,
{
    fn name(&self) -> &str {
        super::NAME
    }

    fn invoked(&mut self, invoke: &Op, _ctx: &CheckContext, _out: &mut Vec<Anomaly>) {
        match Self::key_of(invoke) {
            Ok(key) => self.keys.invoked(key, invoke),
            Err(reason) => {
                self.keyless.insert(invoke.index, (invoke.clone(), reason));
            }
        }
    }

    fn completed(
        &mut self,
        invoke: &Op,
        completion: &Op,
        ctx: &CheckContext,
        out: &mut Vec<Anomaly>,
    ) {
        if let Some((invoke, reason)) = self.keyless.remove(&invoke.index) {
            if completion.kind != OpType::Fail {
                self.tally.misfit(PrepareError::at(&invoke, reason));
            }
            return;
        }
        let Ok(key) = Self::key_of(invoke) else {
            return;
        };
        if let Some(done) = self.keys.completed(key, completion) {
            self.judge(vec![done], ctx, out);
        }
    }

    fn retire(&mut self, key: &Value, ended: bool, ctx: &CheckContext, out: &mut Vec<Anomaly>) {
        if let Some(done) = self.keys.retire(Some(key_text(key)), ended) {
            self.judge(vec![done], ctx, out);
        }
    }

    fn tick(&mut self, ctx: &CheckContext, out: &mut Vec<Anomaly>) {
        if self.tally.has_misfit() {
            return;
        }
        for key in self.keys.take_dirty() {
            if !self.bad.contains(&key) {
                self.search_prefix(&key, ctx, out);
            }
        }
    }

    fn held_ops(&self) -> usize {
        self.keys.held() + self.keyless.len()
    }

    fn finish(mut self: Box<Self>, ctx: &CheckContext) -> Verdict {
        // An invocation that never completed is read at its invocation, as offline.
        for (_, (invoke, reason)) in std::mem::take(&mut self.keyless) {
            self.tally.misfit(PrepareError::at(&invoke, reason));
        }
        let dones = self.keys.drain();
        let mut ignored = Vec::new();
        self.judge(dones, ctx, &mut ignored);
        self.tally.verdict()
    }
}
