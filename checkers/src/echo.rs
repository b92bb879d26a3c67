//! The `echo` checker (Maelstrom's echo workload): every acknowledged echo returns exactly
//! the payload it was sent.
//!
//! Op shape: `f = "echo"`, the invocation value is the payload, the `ok` completion value
//! is what came back. Echoes that failed or ended `info` returned nothing to compare.

use crate::checker::{CheckContext, Checker};
use crate::convergence::{capped, conclude, ok_value};
use crate::history::History;
use crate::verdict::Verdict;
use serde_json::json;

pub struct Echo;

impl Checker for Echo {
    fn name(&self) -> &str {
        "echo"
    }

    fn check(&self, history: &History, _ctx: &CheckContext) -> Verdict {
        let mut attempted = 0usize;
        let mut acknowledged = 0usize;
        let mut wrong = Vec::new();
        for pair in history.pairs().filter(|p| p.invoke.f == "echo") {
            attempted += 1;
            let Some(got) = ok_value(&pair) else { continue };
            acknowledged += 1;
            if *got != pair.invoke.value {
                wrong.push(json!({
                    "index": pair.completion.map_or(pair.invoke.index, |c| c.index),
                    "sent": pair.invoke.value, "returned": got,
                }));
            }
        }
        let summary = format!(
            "{acknowledged} of {attempted} echo(s) acknowledged; {} returned something else than was sent.",
            wrong.len()
        );
        let explanation = wrong
            .iter()
            .take(8)
            .map(|w| {
                format!(
                    "Op {} sent {} but got back {}.",
                    w["index"], w["sent"], w["returned"]
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        let anomalies = if wrong.is_empty() {
            vec![]
        } else {
            vec!["wrong-echo".to_string()]
        };
        let unknown = (acknowledged == 0)
            .then(|| "No echo was acknowledged, so nothing was checked.".to_string());
        let evidence = json!({
            "attempted_count": attempted, "acknowledged_count": acknowledged,
            "wrong_count": wrong.len(), "wrong": capped(wrong),
        });
        conclude(anomalies, unknown, summary, explanation, evidence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convergence::testkit::history;
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
        assert_eq!(
            Echo.check(&good, &CheckContext::default()).valid,
            Validity::Valid
        );
        let bad = history(&[
            (0, Invoke, "echo", json!("hi 1"), "n1"),
            (0, Ok, "echo", json!("hi 2"), "n1"),
        ]);
        let v = Echo.check(&bad, &CheckContext::default());
        assert_eq!(v.anomalies, vec!["wrong-echo"]);
        assert_eq!(v.evidence["wrong"][0]["index"], 1);
        let none = history(&[(0, Invoke, "echo", json!(1), "n1")]);
        assert_eq!(
            Echo.check(&none, &CheckContext::default()).valid,
            Validity::Unknown
        );
    }
}
