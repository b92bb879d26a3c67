//! The online form shared by the convergence checkers: each key's ops are held until the
//! key is retired, then judged by the checker's own per-key function and dropped; the
//! key verdicts compose exactly as [`super::check_by_key`] composes them. A [`Detector`]
//! may prove an anomaly earlier, from the ops so far.

use super::{Elem, KeyedVerdicts};
use crate::checker::CheckContext;
use crate::history::Pair;
use crate::online::keyed::{Done, KeyText, KeyedOps};
use crate::online::{Anomaly, OnlineChecker};
use crate::op::Op;
use crate::verdict::{Validity, Verdict};
use serde_json::Value;
use std::collections::HashSet;

/// A checker's per-key function, as [`super::check_by_key`] takes it.
pub(crate) type PerKey = Box<dyn Fn(&[Pair<'_>]) -> Verdict + Send>;

/// Proves anomalies from the ops of a key so far. Only what no later op can undo may be
/// reported: the offline verdict must agree.
pub(crate) trait Detector: Send {
    /// A completion on `key`; a short sentence when it completes an anomaly.
    fn completed(&mut self, key: &KeyText, invoke: &Op, completion: &Op) -> Option<String>;
    /// An invocation on `key`.
    fn invoked(&mut self, _key: &KeyText, _invoke: &Op) {}
    /// The key is done: drop what is kept for it.
    fn forget(&mut self, _key: &KeyText) {}
}

/// For checkers that prove nothing before a key is done.
pub(crate) struct AtRetirement;

impl Detector for AtRetirement {
    fn completed(&mut self, _key: &KeyText, _invoke: &Op, _completion: &Op) -> Option<String> {
        None
    }
}

/// The convergence checkers' key: the `key` field, as [`super::check_by_key`] groups.
fn key_of(op: &Op) -> KeyText {
    op.key.as_ref().map(|k| Elem::of(k).to_string())
}

/// See the module docs.
pub(crate) struct OnlineByKey<D> {
    name: &'static str,
    per_key: PerKey,
    keys: KeyedOps,
    verdicts: KeyedVerdicts,
    detector: D,
    /// Keys already reported (one anomaly per key).
    reported: HashSet<KeyText>,
}

impl<D: Detector> OnlineByKey<D> {
    pub(crate) fn new(name: &'static str, per_key: PerKey, detector: D) -> Self {
        OnlineByKey {
            name,
            per_key,
            keys: KeyedOps::default(),
            verdicts: KeyedVerdicts::default(),
            detector,
            reported: HashSet::new(),
        }
    }

    fn report(&mut self, key: &KeyText, at: &Op, text: String, out: &mut Vec<Anomaly>) {
        if self.reported.insert(key.clone()) {
            let subject = match key {
                Some(k) => format!("key {k}: "),
                None => String::new(),
            };
            out.push(Anomaly {
                checker: self.name.to_string(),
                index: at.index,
                time: at.time,
                text: format!("{subject}{text}"),
                reported_time: None,
            });
        }
    }

    /// Judges a key that is done and drops its ops.
    fn judge(&mut self, done: Done, out: &mut Vec<Anomaly>) {
        let Done { key, history } = done;
        self.detector.forget(&key);
        let verdict = match &history {
            Ok(history) => {
                let pairs: Vec<Pair<'_>> = history.pairs().collect();
                (self.per_key)(&pairs)
            }
            // The ops passed the history rules as they came: one key's share passes too.
            Err(e) => Verdict::unknown(format!("The ops of one key do not form a history: {e}.")),
        };
        if verdict.valid == Validity::Invalid {
            if let Some(last) = history.as_ref().ok().and_then(|h| h.ops().last()) {
                let text = verdict.summary.clone();
                self.report(&key, last, text, out);
            }
        }
        self.reported.remove(&key);
        self.verdicts.add(key, verdict);
    }
}

impl<D: Detector> OnlineChecker for OnlineByKey<D> {
    fn name(&self) -> &str {
        self.name
    }

    fn invoked(&mut self, invoke: &Op, _ctx: &CheckContext, _out: &mut Vec<Anomaly>) {
        let key = key_of(invoke);
        self.detector.invoked(&key, invoke);
        self.keys.invoked(key, invoke);
    }

    fn completed(
        &mut self,
        invoke: &Op,
        completion: &Op,
        _ctx: &CheckContext,
        out: &mut Vec<Anomaly>,
    ) {
        let key = key_of(invoke);
        if let Some(text) = self.detector.completed(&key, invoke, completion) {
            self.report(&key, completion, text, out);
        }
        if let Some(done) = self.keys.completed(key, completion) {
            self.judge(done, out);
        }
    }

    fn retire(&mut self, key: &Value, ended: bool, _ctx: &CheckContext, out: &mut Vec<Anomaly>) {
        if let Some(done) = self.keys.retire(Some(Elem::of(key).to_string()), ended) {
            self.judge(done, out);
        }
    }

    fn held_ops(&self) -> usize {
        self.keys.held()
    }

    fn finish(mut self: Box<Self>, _ctx: &CheckContext) -> Verdict {
        let mut ignored = Vec::new();
        for done in self.keys.drain() {
            self.judge(done, &mut ignored);
        }
        let per_key = &self.per_key;
        let verdicts = std::mem::take(&mut self.verdicts);
        verdicts.finish(|| per_key(&[]))
    }
}
