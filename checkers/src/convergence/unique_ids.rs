//! The `unique-ids` checker: a unique id generator never hands out the same id twice.
//!
//! Only `ok` `generate` ops count: an `info` generate returned no id to anyone, so it
//! cannot collide with anything observable.

use super::online::{Detector, OnlineByKey};
use super::{capped, check_by_key, conclude, ok_value, Elem};
use crate::checker::{CheckContext, Checker};
use crate::history::{History, Pair};
use crate::online::keyed::KeyText;
use crate::online::OnlineChecker;
use crate::op::Op;
use crate::verdict::Verdict;
use serde_json::json;
use std::collections::BTreeMap;
use std::collections::HashMap;

/// Judges `generate` histories; see the module docs.
pub struct UniqueIds;

impl Checker for UniqueIds {
    fn name(&self) -> &str {
        "unique-ids"
    }

    fn check(&self, history: &History, _ctx: &CheckContext) -> Verdict {
        check_by_key(history, check_pairs)
    }

    /// Online, an id handed out a second time is reported at once.
    fn online(&self) -> Box<dyn OnlineChecker> {
        Box::new(OnlineByKey::new(
            "unique-ids",
            Box::new(check_pairs),
            SecondHandout::default(),
        ))
    }
}

/// Proves `duplicated`: the ids handed out so far, per live key.
#[derive(Default)]
struct SecondHandout {
    ids: HashMap<KeyText, HashMap<Elem, u64>>,
}

impl Detector for SecondHandout {
    fn completed(&mut self, key: &KeyText, invoke: &Op, completion: &Op) -> Option<String> {
        let pair = Pair {
            invoke,
            completion: Some(completion),
        };
        if invoke.f != "generate" {
            return None;
        }
        let id = Elem::of(ok_value(&pair)?);
        let first = *self
            .ids
            .entry(key.clone())
            .or_default()
            .entry(id.clone())
            .or_insert(completion.index);
        (first != completion.index).then(|| {
            format!(
                "id {id} was handed out twice, by ops {first} and {}",
                completion.index
            )
        })
    }

    fn forget(&mut self, key: &KeyText) {
        self.ids.remove(key);
    }
}

fn check_pairs(pairs: &[Pair<'_>]) -> Verdict {
    let mut attempted = 0usize;
    // id -> completion indices of the ops that returned it
    let mut ids: BTreeMap<Elem, Vec<u64>> = BTreeMap::new();
    for pair in pairs.iter().filter(|p| p.invoke.f == "generate") {
        attempted += 1;
        if let (Some(value), Some(c)) = (ok_value(pair), pair.completion) {
            ids.entry(Elem::of(value)).or_default().push(c.index);
        }
    }
    let acknowledged: usize = ids.values().map(Vec::len).sum();
    let mut duplicated: Vec<(&Elem, &Vec<u64>)> =
        ids.iter().filter(|(_, at)| at.len() > 1).collect();
    // In the order they were first handed out a second time, the order an observer
    // (and the online checker's first-anomaly line) met them.
    duplicated.sort_by_key(|(_, at)| at[1]);
    let range = match (ids.keys().next(), ids.keys().next_back()) {
        (Some(lo), Some(hi)) => json!([lo.to_value(), hi.to_value()]),
        _ => json!(null),
    };
    let evidence = json!({
        "attempted_count": attempted,
        "acknowledged_count": acknowledged,
        "duplicated_count": duplicated.len(),
        "duplicated": capped(duplicated.iter().map(|(id, at)| json!({
            "id": id.to_value(), "count": at.len(), "indices": capped(at.iter().copied()),
        }))),
        "range": range,
    });
    let explanation = duplicated
        .iter()
        .take(8)
        .map(|(id, at)| format!("Id {id} was returned {} times, by ops {:?}.", at.len(), at))
        .collect::<Vec<_>>()
        .join("\n");
    if duplicated.is_empty() {
        let unknown = (acknowledged == 0)
            .then(|| "No generate op succeeded, so nothing was checked.".to_string());
        let summary = format!(
            "All {acknowledged} acknowledged id(s) of {attempted} attempt(s) were distinct."
        );
        conclude(vec![], unknown, summary, explanation, evidence)
    } else {
        let (id, at) = duplicated[0];
        let summary = format!(
            "{} id(s) were handed out more than once; the first: {id}, by ops {} and {}.",
            duplicated.len(),
            at[0],
            at[1]
        );
        conclude(
            vec!["duplicated".into()],
            None,
            summary,
            explanation,
            evidence,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convergence::testkit::history;
    use crate::op::OpType::*;
    use crate::verdict::Validity;

    #[test]
    fn distinct_ids_are_valid_and_info_generates_are_ignored() {
        let h = history(&[
            (0, Invoke, "generate", json!(null), ""),
            (0, Ok, "generate", json!(1), ""),
            (1, Invoke, "generate", json!(null), ""),
            (1, Info, "generate", json!(null), ""),
            (2, Invoke, "generate", json!(null), ""),
            (2, Ok, "generate", json!(2), ""),
        ]);
        let v = crate::online::testkit::checked(Box::new(UniqueIds), &h);
        assert_eq!(v.valid, Validity::Valid, "{v:?}");
        assert_eq!(v.evidence["range"], json!([1, 2]));
        assert_eq!(v.evidence["attempted_count"], 3);
    }

    #[test]
    fn a_repeated_id_is_invalid_and_names_both_ops() {
        let h = history(&[
            (0, Invoke, "generate", json!(null), ""),
            (1, Invoke, "generate", json!(null), ""),
            (0, Ok, "generate", json!("x"), ""),
            (1, Ok, "generate", json!("x"), ""),
        ]);
        let v = crate::online::testkit::checked(Box::new(UniqueIds), &h);
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.anomalies, vec!["duplicated"]);
        assert_eq!(v.evidence["duplicated"][0]["indices"], json!([2, 3]));
    }

    #[test]
    fn the_summary_names_the_duplicate_met_first_not_the_most_repeated() {
        let mut ops = vec![
            (0, Invoke, "generate", json!(null), ""),
            (0, Ok, "generate", json!("a"), ""),
            (0, Invoke, "generate", json!(null), ""),
            (0, Ok, "generate", json!("a"), ""),
        ];
        for _ in 0..3 {
            ops.push((1, Invoke, "generate", json!(null), ""));
            ops.push((1, Ok, "generate", json!("b"), ""));
        }
        let v = UniqueIds.check(&history(&ops), &CheckContext::default());
        assert!(
            v.summary.contains("the first: \"a\", by ops 1 and 3"),
            "{}",
            v.summary
        );
        assert_eq!(v.evidence["duplicated"][0]["id"], json!("a"));
    }

    #[test]
    fn no_acknowledged_id_is_unknown() {
        let h = history(&[(0, Invoke, "generate", json!(null), "")]);
        assert_eq!(
            crate::online::testkit::checked(Box::new(UniqueIds), &h).valid,
            Validity::Unknown
        );
    }
}
