//! The `echo` checker (Maelstrom's echo workload): every acknowledged echo returns exactly
//! the payload it was sent.
//!
//! Op shape: `f = "echo"`, the invocation value is the payload, the `ok` completion value
//! is what came back. Echoes that failed or ended `info` returned nothing to compare.

use crate::checker::{CheckContext, Checker};
use crate::convergence::{capped, conclude, ok_value, EVIDENCE_LIST_CAP};
use crate::history::History;
use crate::online::{Anomaly, OnlineChecker};
use crate::op::{Op, OpType};
use crate::verdict::Verdict;
use serde_json::{json, Value};

pub struct Echo;

impl Checker for Echo {
    fn name(&self) -> &str {
        "echo"
    }

    fn check(&self, history: &History, _ctx: &CheckContext) -> Verdict {
        let mut tally = Tally::default();
        for pair in history.pairs().filter(|p| p.invoke.f == "echo") {
            tally.attempted += 1;
            if let (Some(got), Some(c)) = (ok_value(&pair), pair.completion) {
                tally.returned(&pair.invoke.value, got, c.index);
            }
        }
        tally.verdict()
    }

    fn online(&self) -> Box<dyn OnlineChecker> {
        Box::new(OnlineEcho::default())
    }
}

/// What the verdict is made of. Wrong echoes are listed in completion order (the order
/// an online check sees them), at most [`EVIDENCE_LIST_CAP`] of them: memory is bounded.
#[derive(Default)]
struct Tally {
    attempted: usize,
    acknowledged: usize,
    wrong_count: usize,
    /// `(completion index, case)`, the first cases by completion index.
    wrong: Vec<(u64, Value)>,
}

impl Tally {
    /// An `ok` echo (completion `index`) that returned `got` for `sent`; the case when it
    /// is wrong.
    fn returned(&mut self, sent: &Value, got: &Value, index: u64) -> Option<Value> {
        self.acknowledged += 1;
        if got == sent {
            return None;
        }
        self.wrong_count += 1;
        let case = json!({"index": index, "sent": sent, "returned": got});
        // Offline pairs come in invocation order: keep the first by completion index.
        let at = self.wrong.partition_point(|(i, _)| *i < index);
        if at < EVIDENCE_LIST_CAP {
            self.wrong.insert(at, (index, case.clone()));
            self.wrong.truncate(EVIDENCE_LIST_CAP);
        }
        Some(case)
    }

    fn verdict(self) -> Verdict {
        let Tally {
            attempted,
            acknowledged,
            wrong_count,
            wrong,
        } = self;
        let summary = format!(
            "{acknowledged} of {attempted} echo(s) acknowledged; {wrong_count} returned something else than was sent."
        );
        let explanation = wrong
            .iter()
            .take(8)
            .map(|(_, w)| {
                format!(
                    "Op {} sent {} but got back {}.",
                    w["index"], w["sent"], w["returned"]
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        let anomalies = if wrong_count == 0 {
            vec![]
        } else {
            vec!["wrong-echo".to_string()]
        };
        let unknown = (acknowledged == 0)
            .then(|| "No echo was acknowledged, so nothing was checked.".to_string());
        let evidence = json!({
            "attempted_count": attempted, "acknowledged_count": acknowledged,
            "wrong_count": wrong_count, "wrong": capped(wrong.into_iter().map(|(_, w)| w)),
        });
        conclude(anomalies, unknown, summary, explanation, evidence)
    }
}

/// Echo online: every echo is judged when it completes (a wrong one is reported at
/// once); memory is the counts and at most [`EVIDENCE_LIST_CAP`] wrong cases.
#[derive(Default)]
struct OnlineEcho {
    tally: Tally,
}

impl OnlineChecker for OnlineEcho {
    fn name(&self) -> &str {
        "echo"
    }

    fn invoked(&mut self, invoke: &Op, _ctx: &CheckContext, _out: &mut Vec<Anomaly>) {
        if invoke.f == "echo" {
            self.tally.attempted += 1;
        }
    }

    fn completed(
        &mut self,
        invoke: &Op,
        completion: &Op,
        _ctx: &CheckContext,
        out: &mut Vec<Anomaly>,
    ) {
        if invoke.f != "echo" || completion.kind != OpType::Ok {
            return;
        }
        if let Some(case) = self
            .tally
            .returned(&invoke.value, &completion.value, completion.index)
        {
            out.push(Anomaly {
                checker: "echo".to_string(),
                index: completion.index,
                time: completion.time,
                text: format!(
                    "op {} sent {} but got back {}",
                    completion.index, case["sent"], case["returned"]
                ),
                reported_time: None,
            });
        }
    }

    fn held_ops(&self) -> usize {
        0
    }

    fn finish(self: Box<Self>, _ctx: &CheckContext) -> Verdict {
        self.tally.verdict()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convergence::testkit::history;
    use crate::online::testkit::checked;
    use crate::op::OpType::*;
    use crate::verdict::Validity;

    #[test]
    fn echoes_must_come_back_unchanged() {
        let good = history(&[
            (0, Invoke, "echo", json!("hi 1"), "n1"),
            (0, Ok, "echo", json!("hi 1"), "n1"),
            (1, Invoke, "echo", json!({"x": [1]}), "n2"),
            (1, Info, "echo", json!(null), "n2"),
        ]);
        assert_eq!(checked(Box::new(Echo), &good).valid, Validity::Valid);
        let bad = history(&[
            (0, Invoke, "echo", json!("hi 1"), "n1"),
            (0, Ok, "echo", json!("hi 2"), "n1"),
        ]);
        let v = checked(Box::new(Echo), &bad);
        assert_eq!(v.anomalies, vec!["wrong-echo"]);
        assert_eq!(v.evidence["wrong"][0]["index"], 1);
        let none = history(&[(0, Invoke, "echo", json!(1), "n1")]);
        assert_eq!(checked(Box::new(Echo), &none).valid, Validity::Unknown);
    }

    #[test]
    fn wrong_echoes_are_listed_in_completion_order_online_and_offline() {
        let h = history(&[
            (0, Invoke, "echo", json!("a"), "n1"),
            (1, Invoke, "echo", json!("b"), "n2"),
            (1, Ok, "echo", json!("B"), "n2"),
            (0, Ok, "echo", json!("A"), "n1"),
        ]);
        let v = checked(Box::new(Echo), &h);
        assert_eq!(v.evidence["wrong_count"], 2);
        assert_eq!(v.evidence["wrong"][0]["sent"], "b");
        assert_eq!(v.evidence["wrong"][1]["sent"], "a");
    }
}
