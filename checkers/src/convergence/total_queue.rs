//! The `total-queue` checker (Jepsen's): what goes into a queue must come out, once.
//!
//! Counted as multisets of values: *attempted* enqueues (every one that did not fail),
//! *acknowledged* enqueues (`ok`), and *dequeued* values (`ok` dequeues, plus every value
//! listed by an `ok` drain). Then:
//!
//! - *unexpected*: dequeued but never attempted (the queue made it up, or its enqueue
//!   definitely failed);
//! - *duplicated*: dequeued more often than it was attempted;
//! - *lost*: acknowledged more often than dequeued;
//! - *recovered*: dequeued although its enqueue was indeterminate.
//!
//! Unexpected and duplicated values make the history invalid. Lost ones do too, with one
//! care Jepsen does not take: a dequeue that ended `info` may have taken a value that
//! nobody saw. So with `k` indeterminate dequeues, `lost > k` is invalid (at least
//! `lost - k` are gone for sure) while `0 < lost <= k`, or any indeterminate drain, makes
//! the verdict unknown.

use super::online::{AtRetirement, OnlineByKey};
use super::{capped, check_by_key, conclude, ok_value, Elem, Malformed};
use crate::checker::{CheckContext, Checker};
use crate::history::{History, Pair};
use crate::online::OnlineChecker;
use crate::op::OpType;
use crate::verdict::Verdict;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Judges `enqueue`/`dequeue`/`drain` histories; see the module docs.
pub struct TotalQueue;

impl Checker for TotalQueue {
    fn name(&self) -> &str {
        "total-queue"
    }

    fn check(&self, history: &History, _ctx: &CheckContext) -> Verdict {
        check_by_key(history, check_pairs)
    }

    /// Online, nothing is proven before a key is done: a value dequeued twice or never
    /// enqueued may still be enqueued later, and a lost one dequeued.
    fn online(&self) -> Box<dyn OnlineChecker> {
        Box::new(OnlineByKey::new(
            "total-queue",
            Box::new(check_pairs),
            AtRetirement,
        ))
    }
}

/// A multiset of values, remembering the first op index at which each was counted.
#[derive(Default)]
struct Bag(BTreeMap<Elem, (u64, u64)>);

impl Bag {
    fn add(&mut self, elem: Elem, index: u64) {
        self.0.entry(elem).or_insert((0, index)).0 += 1;
    }

    fn count(&self, elem: &Elem) -> u64 {
        self.0.get(elem).map_or(0, |c| c.0)
    }

    fn total(&self) -> u64 {
        self.0.values().map(|c| c.0).sum()
    }

    /// Every element with how far its count exceeds `other`'s (only positive excesses).
    fn excess_over<'a>(
        &'a self,
        other: &'a Bag,
    ) -> impl Iterator<Item = (&'a Elem, u64, u64)> + 'a {
        self.0.iter().filter_map(move |(e, &(n, first))| {
            let extra = n.saturating_sub(other.count(e));
            (extra > 0).then_some((e, extra, first))
        })
    }
}

fn listed(items: &[(&Elem, u64, u64)]) -> Value {
    capped(
        items
            .iter()
            .map(|(e, n, first)| json!({"value": e.to_value(), "count": n, "first_index": first})),
    )
}

fn is_empty_dequeue(v: &Value) -> bool {
    v.is_null() || v.as_array().is_some_and(Vec::is_empty)
}

fn check_pairs(pairs: &[Pair<'_>]) -> Verdict {
    let mut malformed = Malformed::default();
    let mut attempted = Bag::default();
    let mut acknowledged = Bag::default();
    let mut dequeued = Bag::default();
    let mut indeterminate_dequeues = 0u64;
    let mut indeterminate_drains = 0u64;
    for pair in pairs {
        let outcome = pair.outcome();
        match pair.invoke.f.as_str() {
            "enqueue" => {
                if outcome == OpType::Fail {
                    continue;
                }
                let elem = Elem::of(&pair.invoke.value);
                attempted.add(elem.clone(), pair.invoke.index);
                if let (OpType::Ok, Some(c)) = (outcome, pair.completion) {
                    acknowledged.add(elem, c.index);
                }
            }
            "dequeue" | "drain" => {
                let drain = pair.invoke.f == "drain";
                match (ok_value(pair), pair.completion) {
                    (Some(v), Some(c)) if drain => match v.as_array() {
                        Some(values) => values
                            .iter()
                            .for_each(|x| dequeued.add(Elem::of(x), c.index)),
                        None => malformed.note(c, "a drain must return a list of values"),
                    },
                    (Some(v), Some(c)) => {
                        if !is_empty_dequeue(v) {
                            dequeued.add(Elem::of(v), c.index);
                        }
                    }
                    _ if outcome == OpType::Fail => {}
                    _ if drain => indeterminate_drains += 1,
                    _ => indeterminate_dequeues += 1,
                }
            }
            _ => {}
        }
    }
    let unexpected: Vec<_> = dequeued
        .0
        .iter()
        .filter(|(e, _)| attempted.count(e) == 0)
        .map(|(e, &(n, first))| (e, n, first))
        .collect();
    let duplicated: Vec<_> = dequeued
        .excess_over(&attempted)
        .filter(|(e, _, _)| attempted.count(e) > 0)
        .collect();
    let lost: Vec<_> = acknowledged.excess_over(&dequeued).collect();
    let lost_total: u64 = lost.iter().map(|l| l.1).sum();
    let recovered: u64 = dequeued
        .0
        .iter()
        .map(|(e, &(n, _))| {
            n.min(attempted.count(e))
                .saturating_sub(acknowledged.count(e))
        })
        .sum();
    let evidence = json!({
        "attempt_count": attempted.total(),
        "acknowledged_count": acknowledged.total(),
        "dequeued_count": dequeued.total(),
        "indeterminate_dequeue_count": indeterminate_dequeues,
        "indeterminate_drain_count": indeterminate_drains,
        "lost_count": lost_total,
        "lost": listed(&lost),
        "unexpected_count": unexpected.iter().map(|u| u.1).sum::<u64>(),
        "unexpected": listed(&unexpected),
        "duplicated_count": duplicated.iter().map(|d| d.1).sum::<u64>(),
        "duplicated": listed(&duplicated),
        "recovered_count": recovered,
        "malformed": malformed.evidence(),
    });
    let mut anomalies = Vec::new();
    let mut found = Vec::new();
    if !unexpected.is_empty() {
        anomalies.push("unexpected".to_string());
        found.push(format!(
            "{} value(s) were dequeued that were never enqueued (e.g. {} at op {})",
            unexpected.len(),
            unexpected[0].0,
            unexpected[0].2
        ));
    }
    if !duplicated.is_empty() {
        anomalies.push("duplicated".to_string());
        found.push(format!(
            "{} value(s) were dequeued more often than enqueued (e.g. {})",
            duplicated.len(),
            duplicated[0].0
        ));
    }
    let mut unknown_reason = malformed.reason();
    if lost_total > 0 {
        if indeterminate_drains == 0 && lost_total > indeterminate_dequeues {
            anomalies.push("lost".to_string());
            found.push(format!(
                "{lost_total} acknowledged value(s) never came out, more than the {indeterminate_dequeues} indeterminate dequeue(s) could have taken (e.g. {}, enqueued at op {})",
                lost[0].0, lost[0].2
            ));
        } else {
            unknown_reason.get_or_insert(format!(
                "{lost_total} acknowledged value(s) never came out, but {indeterminate_dequeues} dequeue(s) and {indeterminate_drains} drain(s) ended indeterminate and may have taken them."
            ));
        }
    }
    if acknowledged.total() == 0 {
        unknown_reason
            .get_or_insert("No enqueue was acknowledged, so nothing was checked.".to_string());
    }
    let tally = format!(
        "{} enqueue(s) attempted, {} acknowledged, {} value(s) dequeued, {} recovered.",
        attempted.total(),
        acknowledged.total(),
        dequeued.total(),
        recovered
    );
    let summary = if found.is_empty() {
        tally
    } else {
        format!("{}. {tally}", found.join("; "))
    };
    conclude(anomalies, unknown_reason, summary, String::new(), evidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convergence::testkit::history;
    use crate::op::OpType::*;
    use crate::verdict::Validity;

    fn check(h: &History) -> Verdict {
        crate::online::testkit::checked(Box::new(TotalQueue), h)
    }

    #[test]
    fn everything_enqueued_comes_out_once_through_dequeue_and_drain() {
        let h = history(&[
            (0, Invoke, "enqueue", json!(1), ""),
            (0, Ok, "enqueue", json!(1), ""),
            (0, Invoke, "enqueue", json!(2), ""),
            (0, Ok, "enqueue", json!(2), ""),
            (1, Invoke, "dequeue", json!(null), ""),
            (1, Ok, "dequeue", json!(1), ""),
            (1, Invoke, "dequeue", json!(null), ""),
            (1, Ok, "dequeue", json!(null), ""),
            (1, Invoke, "drain", json!(null), ""),
            (1, Ok, "drain", json!([2]), ""),
        ]);
        let v = check(&h);
        assert_eq!(v.valid, Validity::Valid, "{v:?}");
        assert_eq!(v.evidence["dequeued_count"], 2);
    }

    #[test]
    fn an_acknowledged_value_that_never_comes_out_is_lost() {
        let h = history(&[
            (0, Invoke, "enqueue", json!(1), ""),
            (0, Ok, "enqueue", json!(1), ""),
            (1, Invoke, "drain", json!(null), ""),
            (1, Ok, "drain", json!([]), ""),
        ]);
        let v = check(&h);
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.anomalies, vec!["lost"]);
        assert_eq!(v.evidence["lost"][0]["first_index"], 1);
    }

    #[test]
    fn a_lost_value_an_indeterminate_dequeue_may_have_taken_is_unknown() {
        let h = history(&[
            (0, Invoke, "enqueue", json!(1), ""),
            (0, Ok, "enqueue", json!(1), ""),
            (1, Invoke, "dequeue", json!(null), ""),
            (1, Info, "dequeue", json!(null), ""),
            (2, Invoke, "drain", json!(null), ""),
            (2, Ok, "drain", json!([]), ""),
        ]);
        assert_eq!(check(&h).valid, Validity::Unknown);
    }

    #[test]
    fn unexpected_and_duplicated_dequeues_are_invalid_and_info_enqueues_recover() {
        let h = history(&[
            (0, Invoke, "enqueue", json!(1), ""),
            (0, Info, "enqueue", json!(1), ""),
            (1, Invoke, "enqueue", json!(9), ""),
            (1, Fail, "enqueue", json!(9), ""),
            (2, Invoke, "drain", json!(null), ""),
            (2, Ok, "drain", json!([1, 1, 9]), ""),
        ]);
        let v = check(&h);
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.anomalies, vec!["duplicated", "unexpected"]);
        assert_eq!(v.evidence["recovered_count"], 1);
        assert_eq!(v.evidence["unexpected"][0]["value"], 9);
    }
}
