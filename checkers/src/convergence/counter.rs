//! The `counter` checker: every read of a counter lies within the bounds the adds allow.
//!
//! A read runs over [invoke, complete]; it may reflect any add that could have taken
//! effect by then. For each read:
//!
//! - an add that completed `ok` before the read was invoked is definitely included;
//! - an add that failed is definitely excluded, and so is one invoked after the read
//!   completed;
//! - every other add (concurrent with the read, or `info`/in flight) may or may not be.
//!
//! So `lower = definite + Σ min(δ, 0) over maybes` and `upper = definite + Σ max(δ, 0)
//! over maybes`. Unlike Jepsen's counter, negative deltas are allowed. Bounds are computed
//! with sorted prefix sums in O((adds + reads) log adds).

use super::online::{Detector, OnlineByKey};
use super::{capped, check_by_key, conclude, is_read, ok_value, replica, Malformed};
use crate::checker::{CheckContext, Checker};
use crate::history::{History, Pair};
use crate::online::keyed::KeyText;
use crate::online::OnlineChecker;
use crate::op::Op;
use crate::op::OpType;
use crate::verdict::Verdict;
use serde_json::json;
use std::collections::HashMap;

/// Judges `add`/`read` counter histories; see the module docs.
pub struct CounterChecker;

impl Checker for CounterChecker {
    fn name(&self) -> &str {
        "counter"
    }

    fn check(&self, history: &History, _ctx: &CheckContext) -> Verdict {
        check_by_key(history, check_pairs)
    }

    /// Online, a read outside the bounds of the adds so far is reported at once. Adds in
    /// flight count as possible, so the bounds used are at least as wide as the final
    /// ones (an add that fails later only narrows them): what is out now stays out.
    fn online(&self) -> Box<dyn OnlineChecker> {
        Box::new(OnlineByKey::new(
            "counter",
            Box::new(check_pairs),
            Bounds::default(),
        ))
    }
}

/// Running sums of deltas: all, positive parts, negative parts.
#[derive(Clone, Copy, Default)]
struct Sums {
    total: i128,
    positive: i128,
    negative: i128,
}

impl Sums {
    /// Adds (`sign` 1) or takes away (`sign` -1) one delta.
    fn add(&mut self, delta: i64, sign: i128) {
        self.total += i128::from(delta) * sign;
        self.positive += i128::from(delta.max(0)) * sign;
        self.negative += i128::from(delta.min(0)) * sign;
    }
}

/// One live key's sums for [`Bounds`].
#[derive(Default)]
struct KeySums {
    /// `ok` adds so far.
    definite: Sums,
    /// Adds invoked so far that have not failed (yet).
    possible: Sums,
    /// The definite sums when each read in flight was invoked, by invocation index.
    reads: HashMap<u64, Sums>,
    /// A value of the wrong shape was seen: the key's verdict cannot be invalid.
    malformed: bool,
}

/// Proves `out-of-bounds-read`, with the bounds of [`Adds::bounds`] over what is known so far.
#[derive(Default)]
struct Bounds {
    keys: HashMap<KeyText, KeySums>,
}

impl Detector for Bounds {
    fn invoked(&mut self, key: &KeyText, invoke: &Op) {
        let k = self.keys.entry(key.clone()).or_default();
        if invoke.f == "add" {
            match invoke.value.as_i64() {
                Some(delta) => k.possible.add(delta, 1),
                None => k.malformed = true,
            }
        } else if invoke.f == "read" || invoke.f == "final-read" {
            k.reads.insert(invoke.index, k.definite);
        }
    }

    fn completed(&mut self, key: &KeyText, invoke: &Op, completion: &Op) -> Option<String> {
        let k = self.keys.get_mut(key)?;
        if invoke.f == "add" {
            let delta = invoke.value.as_i64()?;
            match completion.kind {
                OpType::Ok => k.definite.add(delta, 1),
                OpType::Fail => k.possible.add(delta, -1),
                _ => {}
            }
            return None;
        }
        let at_invoke = k.reads.remove(&invoke.index)?;
        if completion.kind != OpType::Ok {
            return None;
        }
        let Some(read) = completion.value.as_i64() else {
            k.malformed = true;
            return None;
        };
        let lower = at_invoke.total + (k.possible.negative - at_invoke.negative);
        let upper = at_invoke.total + (k.possible.positive - at_invoke.positive);
        let read = i128::from(read);
        (!k.malformed && (read < lower || read > upper)).then(|| {
            let pair = Pair {
                invoke,
                completion: Some(completion),
            };
            format!(
                "read op {} on {} returned {read}, but the adds allow only [{lower}, {upper}]",
                completion.index,
                replica(&pair)
            )
        })
    }

    fn forget(&mut self, key: &KeyText) {
        self.keys.remove(key);
    }
}

/// Sums of deltas over events sorted by history index, queried by "events before index i".
#[derive(Default)]
pub(crate) struct PrefixSums {
    events: Vec<(u64, i64)>,
    /// `total[k]`, `positive[k]`, `negative[k]`: sums over the first k events.
    total: Vec<i128>,
    positive: Vec<i128>,
    negative: Vec<i128>,
}

impl PrefixSums {
    pub(crate) fn new(mut events: Vec<(u64, i64)>) -> PrefixSums {
        events.sort_unstable();
        let mut s = PrefixSums {
            total: vec![0],
            positive: vec![0],
            negative: vec![0],
            events: Vec::new(),
        };
        for &(_, d) in &events {
            let d = i128::from(d);
            s.total.push(s.total.last().copied().unwrap_or(0) + d);
            s.positive
                .push(s.positive.last().copied().unwrap_or(0) + d.max(0));
            s.negative
                .push(s.negative.last().copied().unwrap_or(0) + d.min(0));
        }
        s.events = events;
        s
    }

    /// (total, positive part, negative part) of the events strictly before `index`.
    pub(crate) fn before(&self, index: u64) -> (i128, i128, i128) {
        let k = self.events.partition_point(|&(i, _)| i < index);
        (self.total[k], self.positive[k], self.negative[k])
    }
}

/// The adds of a counter history: definite ones by completion, possible ones by invocation.
pub(crate) struct Adds {
    /// `ok` adds, keyed by their completion index.
    pub(crate) definite: PrefixSums,
    /// Every add that did not fail, keyed by its invocation index.
    pub(crate) possible: PrefixSums,
}

impl Adds {
    /// Collects the `add` ops among `pairs`; deltas that are not integers are malformed.
    pub(crate) fn collect(pairs: &[Pair<'_>], malformed: &mut Malformed) -> Adds {
        let mut definite = Vec::new();
        let mut possible = Vec::new();
        for pair in pairs.iter().filter(|p| p.invoke.f == "add") {
            let Some(delta) = pair.invoke.value.as_i64() else {
                malformed.note(pair.invoke, "an add's value must be an integer delta");
                continue;
            };
            match pair.completion {
                Some(c) if c.kind == OpType::Fail => continue,
                Some(c) if c.kind == OpType::Ok => definite.push((c.index, delta)),
                _ => {}
            }
            possible.push((pair.invoke.index, delta));
        }
        Adds {
            definite: PrefixSums::new(definite),
            possible: PrefixSums::new(possible),
        }
    }

    /// The (lower, upper) bounds for a read invoked at `invoke_index` and completed at
    /// `complete_index`.
    pub(crate) fn bounds(&self, invoke_index: u64, complete_index: u64) -> (i128, i128) {
        let (def, def_pos, def_neg) = self.definite.before(invoke_index);
        let (_, pos, neg) = self.possible.before(complete_index);
        // Definite adds are a subset of possible ones (ok adds completing before the read's
        // invocation were invoked before its completion), so the differences are the maybes.
        (def + (neg - def_neg), def + (pos - def_pos))
    }
}

fn check_pairs(pairs: &[Pair<'_>]) -> Verdict {
    let mut malformed = Malformed::default();
    let adds = Adds::collect(pairs, &mut malformed);
    let mut read_count = 0usize;
    let mut errors = Vec::new();
    let mut max_error: i128 = 0;
    for pair in pairs.iter().filter(|p| is_read(p)) {
        let Some(value) = ok_value(pair) else {
            continue;
        };
        let completion = pair.completion.unwrap_or(pair.invoke);
        let Some(read) = value.as_i64() else {
            malformed.note(completion, "a counter read must return an integer");
            continue;
        };
        read_count += 1;
        let (lower, upper) = adds.bounds(pair.invoke.index, completion.index);
        let read = i128::from(read);
        if read < lower || read > upper {
            let error = if read < lower {
                lower - read
            } else {
                read - upper
            };
            max_error = max_error.max(error);
            errors.push(json!({
                "index": completion.index,
                "invoke_index": pair.invoke.index,
                "node": replica(pair),
                "value": read as i64,
                "lower": lower as i64,
                "upper": upper as i64,
            }));
        }
    }
    let explanation = errors
        .iter()
        .take(8)
        .map(|e| {
            format!(
                "Read op {} on {} returned {}, but the adds allow only [{}, {}] at that time.",
                e["index"], e["node"], e["value"], e["lower"], e["upper"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let evidence = json!({
        "read_count": read_count,
        "error_count": errors.len(),
        "errors": capped(errors.iter().cloned()),
        "max_absolute_error": max_error as i64,
        "malformed": malformed.evidence(),
    });
    let (anomalies, summary) = if errors.is_empty() {
        (
            vec![],
            format!("All {read_count} read(s) lay within the bounds of the adds."),
        )
    } else {
        (
            vec!["out-of-bounds-read".to_string()],
            format!(
                "{} of {read_count} read(s) returned a value no order of the adds allows (largest error {max_error}); the first is op {}.",
                errors.len(),
                errors[0]["index"]
            ),
        )
    };
    // A malformed add makes every bound doubtful, so it also voids an invalid verdict.
    let (anomalies, unknown_reason) = if malformed.is_empty() {
        let none_read =
            (read_count == 0).then(|| "No read succeeded, so nothing was checked.".to_string());
        (anomalies, none_read)
    } else {
        (vec![], malformed.reason())
    };
    conclude(anomalies, unknown_reason, summary, explanation, evidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convergence::testkit::history;
    use crate::op::OpType::*;
    use crate::verdict::Validity;

    fn check(h: &History) -> Verdict {
        crate::online::testkit::checked(Box::new(CounterChecker), h)
    }

    #[test]
    fn reads_within_bounds_are_valid_including_concurrent_and_negative_adds() {
        let h = history(&[
            (0, Invoke, "add", json!(5), "n1"),
            (0, Ok, "add", json!(5), "n1"),
            (1, Invoke, "add", json!(-2), "n2"),
            (2, Invoke, "read", json!(null), "n1"),
            (2, Ok, "read", json!(3), "n1"), // -2 concurrent: 3 or 5 both fine
            (1, Ok, "add", json!(-2), "n2"),
            (2, Invoke, "read", json!(null), "n1"),
            (2, Ok, "read", json!(3), "n1"),
        ]);
        let v = check(&h);
        assert_eq!(v.valid, Validity::Valid, "{v:?}");
    }

    #[test]
    fn a_read_missing_an_acknowledged_add_is_out_of_bounds() {
        let h = history(&[
            (0, Invoke, "add", json!(5), "n1"),
            (0, Ok, "add", json!(5), "n1"),
            (1, Invoke, "read", json!(null), "n2"),
            (1, Ok, "read", json!(0), "n2"),
        ]);
        let v = check(&h);
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.anomalies, vec!["out-of-bounds-read"]);
        assert_eq!(v.evidence["errors"][0]["index"], 3);
        assert_eq!(v.evidence["errors"][0]["lower"], 5);
        assert_eq!(v.evidence["errors"][0]["upper"], 5);
    }

    #[test]
    fn failed_adds_never_count_and_info_adds_may() {
        let h = history(&[
            (0, Invoke, "add", json!(7), "n1"),
            (0, Fail, "add", json!(7), "n1"),
            (1, Invoke, "add", json!(3), "n1"),
            (1, Info, "add", json!(3), "n1"),
            (2, Invoke, "read", json!(null), "n1"),
            (2, Ok, "read", json!(3), "n1"),
            (2, Invoke, "read", json!(null), "n1"),
            (2, Ok, "read", json!(0), "n1"),
        ]);
        assert_eq!(check(&h).valid, Validity::Valid);
        let h = history(&[
            (0, Invoke, "add", json!(7), "n1"),
            (0, Fail, "add", json!(7), "n1"),
            (2, Invoke, "read", json!(null), "n1"),
            (2, Ok, "read", json!(7), "n1"),
        ]);
        let v = check(&h);
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.evidence["errors"][0]["upper"], 0);
    }

    #[test]
    fn a_malformed_delta_makes_the_verdict_unknown() {
        let h = history(&[
            (0, Invoke, "add", json!("five"), "n1"),
            (0, Ok, "add", json!("five"), "n1"),
            (1, Invoke, "read", json!(null), "n2"),
            (1, Ok, "read", json!(5), "n2"),
        ]);
        let v = check(&h);
        assert_eq!(v.valid, Validity::Unknown);
        assert_eq!(v.evidence["malformed"]["count"], 1);
    }

    #[test]
    fn no_successful_read_is_unknown() {
        let h = history(&[
            (0, Invoke, "add", json!(1), "n1"),
            (0, Ok, "add", json!(1), "n1"),
        ]);
        assert_eq!(check(&h).valid, Validity::Unknown);
    }
}
