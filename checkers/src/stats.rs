//! Jepsen's stats checker: how many ops of each f ended ok, fail or info.
//!
//! It catches runs that were green only because nothing worked: a history where some f
//! never succeeded once is invalid, since a workload that cannot complete its ops tests
//! nothing.
//!
//! Online it keeps the counts as ops complete (one entry per `f`); it reports nothing
//! before the end, since an `f` that has not succeeded yet still may.

use crate::checker::{CheckContext, Checker};
use crate::history::History;
use crate::online::{Anomaly, OnlineChecker};
use crate::op::{Op, OpType};
use crate::verdict::Verdict;
use serde_json::json;
use std::collections::BTreeMap;

/// Anomalies that say the run did not exercise the system (an f never succeeded), not
/// that the system misbehaved: a run cut short is not held to them.
pub const LIVENESS_ANOMALIES: &[&str] = &["never-succeeded"];

pub struct Stats;

#[derive(Default, Clone, Copy)]
struct Counts {
    ok: u64,
    fail: u64,
    info: u64,
}

impl Checker for Stats {
    fn name(&self) -> &str {
        "stats"
    }

    fn check(&self, history: &History, _ctx: &CheckContext) -> Verdict {
        let mut by_f: BTreeMap<String, Counts> = BTreeMap::new();
        for pair in history.pairs() {
            let c = match by_f.get_mut(pair.invoke.f.as_str()) {
                Some(c) => c,
                None => by_f.entry(pair.invoke.f.clone()).or_default(),
            };
            match pair.outcome() {
                OpType::Ok => c.ok += 1,
                OpType::Fail => c.fail += 1,
                _ => c.info += 1,
            }
        }
        verdict(&by_f)
    }

    fn online(&self) -> Box<dyn OnlineChecker> {
        Box::new(OnlineStats::default())
    }
}

/// Stats online: the counts, kept as ops complete. An invocation still in flight at the
/// end counts as `info`, as offline. Memory: one entry per `f`.
#[derive(Default)]
struct OnlineStats {
    by_f: BTreeMap<String, Counts>,
    /// Invocations in flight per `f`.
    in_flight: BTreeMap<String, u64>,
}

impl OnlineChecker for OnlineStats {
    fn name(&self) -> &str {
        "stats"
    }

    fn invoked(&mut self, invoke: &Op, _ctx: &CheckContext, _out: &mut Vec<Anomaly>) {
        match self.in_flight.get_mut(invoke.f.as_str()) {
            Some(n) => *n += 1,
            None => {
                self.in_flight.insert(invoke.f.clone(), 1);
            }
        }
    }

    fn completed(
        &mut self,
        invoke: &Op,
        completion: &Op,
        _ctx: &CheckContext,
        _out: &mut Vec<Anomaly>,
    ) {
        if let Some(n) = self.in_flight.get_mut(invoke.f.as_str()) {
            *n = n.saturating_sub(1);
        }
        let c = match self.by_f.get_mut(invoke.f.as_str()) {
            Some(c) => c,
            None => self.by_f.entry(invoke.f.clone()).or_default(),
        };
        match completion.kind {
            OpType::Ok => c.ok += 1,
            OpType::Fail => c.fail += 1,
            _ => c.info += 1,
        }
    }

    fn held_ops(&self) -> usize {
        0
    }

    fn finish(mut self: Box<Self>, _ctx: &CheckContext) -> Verdict {
        for (f, n) in std::mem::take(&mut self.in_flight) {
            if n > 0 {
                self.by_f.entry(f).or_default().info += n;
            }
        }
        verdict(&self.by_f)
    }
}

fn verdict(by_f: &BTreeMap<String, Counts>) -> Verdict {
    let total = by_f.values().fold(Counts::default(), |a, c| Counts {
        ok: a.ok + c.ok,
        fail: a.fail + c.fail,
        info: a.info + c.info,
    });
    let never_ok: Vec<&str> = by_f
        .iter()
        .filter(|(_, c)| c.ok == 0)
        .map(|(f, _)| f.as_str())
        .collect();
    let evidence = json!({
        "count": total.ok + total.fail + total.info,
        "ok": total.ok,
        "fail": total.fail,
        "info": total.info,
        "by_f": by_f.iter().map(|(f, c)| (f.to_string(), json!({
            "count": c.ok + c.fail + c.info, "ok": c.ok, "fail": c.fail, "info": c.info,
            "valid": c.ok > 0,
        }))).collect::<serde_json::Map<_, _>>(),
    });
    let table = by_f
        .iter()
        .map(|(f, c)| format!("{f}: {} ok, {} fail, {} info", c.ok, c.fail, c.info))
        .collect::<Vec<_>>()
        .join("\n");
    if by_f.is_empty() {
        return Verdict::unknown("The history has no client ops, so there is nothing to judge.")
            .with_evidence(evidence);
    }
    if never_ok.is_empty() {
        Verdict::valid(format!(
            "{} client ops: {} ok, {} fail, {} info; every f succeeded at least once.",
            total.ok + total.fail + total.info,
            total.ok,
            total.fail,
            total.info
        ))
        .with_explanation(table)
        .with_evidence(evidence)
    } else {
        Verdict::invalid(
            vec!["never-succeeded".into()],
            format!(
                "No {} op ever succeeded, so the run did not exercise it.",
                never_ok.join(", ")
            ),
        )
        .with_explanation(table)
        .with_evidence(evidence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{Op, Process};
    use crate::verdict::Validity;
    use serde_json::json;

    fn h(specs: &[(u64, OpType, &str)]) -> History {
        History::reindexed(
            specs
                .iter()
                .map(|(p, t, f)| {
                    let mut op = Op::invoke(Process::Client(*p), *f, json!(null));
                    op.kind = *t;
                    op
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn valid_when_every_f_succeeded_once() {
        let v = crate::online::testkit::checked(
            Box::new(Stats),
            &h(&[
                (0, OpType::Invoke, "read"),
                (0, OpType::Ok, "read"),
                (1, OpType::Invoke, "write"),
                (1, OpType::Fail, "write"),
                (1, OpType::Invoke, "write"),
                (1, OpType::Ok, "write"),
            ]),
        );
        assert_eq!(v.valid, Validity::Valid, "{v:?}");
        assert_eq!(v.evidence["by_f"]["write"]["fail"], 1);
    }

    #[test]
    fn invalid_when_an_f_never_succeeded() {
        let v = crate::online::testkit::checked(
            Box::new(Stats),
            &h(&[
                (0, OpType::Invoke, "read"),
                (0, OpType::Ok, "read"),
                (1, OpType::Invoke, "cas"),
                (1, OpType::Info, "cas"),
            ]),
        );
        assert_eq!(v.valid, Validity::Invalid);
        assert!(v.summary.contains("cas"), "{}", v.summary);
    }
}
