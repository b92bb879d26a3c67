//! The `set` checker: Jepsen's `set-full` analysis of `add` and `read` ops.
//!
//! Every element gets a timeline of reads that did or did not contain it. Definitions
//! follow `jepsen.checker/set-full`:
//!
//! - *known*: the earlier of the element's `ok` add completion and the first read that
//!   contained it; from then on the element is known to exist.
//! - *stable*: the last read containing it began after the last read missing it; every
//!   later read saw it.
//! - *lost*: known, and the last read missing it began after the last read containing it
//!   and after it was known: it was there (or acknowledged) and then went away for good.
//! - *never-read*: neither stable nor lost, e.g. no read began after it was known.
//! - *stale*: stable, but some read that began after it was known missed it (normal for
//!   eventually consistent sets; the stable latency says how long visibility took).
//! - *recovered*: its add ended `info` (or never completed) yet reads saw it.
//! - *visibility latency*: 0 when the first read invoked after the `ok` add completed
//!   saw it, else the time until the first read that did was invoked (Jepsen's first
//!   read latency); reported as quantiles with the stable and lost latencies.
//!
//! Besides Jepsen's, two anomalies make the history invalid: *unexpected* elements (read
//! but never added, or whose every add failed) and *duplicated* elements (listed more
//! than once by one read of a set). Lost elements make it invalid too. With nothing
//! invalid and no stable element at all, the verdict is unknown: nothing was shown kept.

use super::online::{Detector, OnlineByKey};
use super::{
    capped, check_by_key, conclude, is_final_read, is_read, ok_value, quantiles_ms, replica, Elem,
    Malformed,
};
use crate::checker::{CheckContext, Checker};
use crate::history::{History, Pair};
use crate::online::keyed::KeyText;
use crate::online::OnlineChecker;
use crate::op::Op;
use crate::op::OpType;
use crate::verdict::Verdict;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// Jepsen's set-full checker; see the module docs.
pub struct SetChecker;

impl Checker for SetChecker {
    fn name(&self) -> &str {
        "set"
    }

    fn check(&self, history: &History, _ctx: &CheckContext) -> Verdict {
        check_by_key(history, check_pairs)
    }

    /// Online, a read that lists an element twice is reported at once (nothing undoes
    /// it); lost, unexpected and never-read elements only when the key retires, since a
    /// later read or add can still change them.
    fn online(&self) -> Box<dyn OnlineChecker> {
        Box::new(OnlineByKey::new(
            "set",
            Box::new(check_pairs),
            DuplicateInRead,
        ))
    }
}

/// Proves `duplicated` from one read.
struct DuplicateInRead;

impl Detector for DuplicateInRead {
    fn completed(&mut self, _key: &KeyText, invoke: &Op, completion: &Op) -> Option<String> {
        let pair = Pair {
            invoke,
            completion: Some(completion),
        };
        if !is_read(&pair) {
            return None;
        }
        let list = ok_value(&pair)?.as_array()?;
        let mut seen = std::collections::HashSet::with_capacity(list.len());
        let twice = list
            .iter()
            .map(Elem::of)
            .find(|e| !seen.insert(e.clone()))?;
        Some(format!(
            "read op {} on {} listed element {twice} more than once",
            completion.index,
            replica(&pair)
        ))
    }
}

/// One successful read: when it ran. Its contents are folded into [`Seen`] as it is read.
struct Read {
    invoke_index: u64,
    invoke_time_ns: u64,
    complete_index: u64,
    complete_time_ns: u64,
}

/// How the reads (numbered by their position in invocation order) saw one element.
/// Gathered in one pass, so memory is O(elements + reads), not O(total read size).
#[derive(Clone, Copy, Debug)]
struct Seen {
    /// The first read that listed it.
    first: usize,
    /// The last read that listed it.
    last: usize,
    /// The first read of the unbroken run of reads listing it that ends at `last`.
    run_start: usize,
}

impl Seen {
    fn new(read: usize) -> Seen {
        Seen {
            first: read,
            last: read,
            run_start: read,
        }
    }

    /// Notes that read `read` (reads come in order) listed the element; false when that
    /// read had listed it already, i.e. lists it twice.
    fn saw(&mut self, read: usize) -> bool {
        if self.last == read {
            return false;
        }
        if self.last + 1 != read {
            self.run_start = read;
        }
        self.last = read;
        true
    }

    /// The last read that missed the element, given `reads` reads in all.
    fn last_absent(&self, reads: usize) -> Option<usize> {
        if self.last + 1 == reads {
            self.run_start.checked_sub(1)
        } else {
            reads.checked_sub(1)
        }
    }
}

/// What the history says about adds of one element.
#[derive(Default)]
struct Adds {
    attempts: u32,
    first_invoke_index: Option<u64>,
    /// The earliest `ok` completion: (index, time).
    first_ok: Option<(u64, u64)>,
    /// Some add ended `info` or never completed.
    indeterminate: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    Stable,
    Lost,
    NeverRead,
}

struct ElementResult {
    elem: Elem,
    outcome: Outcome,
    /// The first add invocation of the element.
    add_index: Option<u64>,
    known_index: Option<u64>,
    last_present_index: Option<u64>,
    last_absent_index: Option<u64>,
    /// Stable: from known to the stable time. Lost: from known to the lost time.
    latency_ns: Option<u64>,
    /// The first read that listed it.
    first_seen_index: Option<u64>,
    /// Jepsen's first read latency: 0 when the first read invoked after the `ok` add
    /// completed saw it, else the time from that completion to the invocation of the
    /// first read that did. `None` when it has no `ok` add or was never seen.
    visibility_latency_ns: Option<u64>,
}

fn check_pairs(pairs: &[Pair<'_>]) -> Verdict {
    let mut malformed = Malformed::default();
    let mut adds: BTreeMap<Elem, Adds> = BTreeMap::new();
    let mut reads: Vec<Read> = Vec::new();
    let mut final_reads = 0usize;
    let mut seen: HashMap<Elem, Seen> = HashMap::new();
    let mut duplicated: Vec<Value> = Vec::new();
    let mut duplicated_count = 0usize;
    for pair in pairs {
        match pair.invoke.f.as_str() {
            "add" => {
                let a = adds.entry(Elem::of(&pair.invoke.value)).or_default();
                a.attempts += 1;
                a.first_invoke_index.get_or_insert(pair.invoke.index);
                match pair.completion {
                    Some(c) if c.kind == OpType::Ok => {
                        if a.first_ok.is_none_or(|(i, _)| c.index < i) {
                            a.first_ok = Some((c.index, c.time));
                        }
                    }
                    Some(c) if c.kind == OpType::Fail => {}
                    _ => a.indeterminate = true,
                }
            }
            _ if is_read(pair) => {
                let Some(value) = ok_value(pair) else {
                    continue;
                };
                let Some(list) = value.as_array() else {
                    malformed.note(
                        pair.completion.unwrap_or(pair.invoke),
                        "a read must return a list",
                    );
                    continue;
                };
                final_reads += usize::from(is_final_read(pair));
                let completion = pair.completion.unwrap_or(pair.invoke);
                let r = reads.len();
                // Elements this read listed more than once, with their multiplicity.
                let mut repeats: BTreeMap<Elem, u32> = BTreeMap::new();
                for v in list {
                    let elem = Elem::of(v);
                    match seen.get_mut(&elem) {
                        None => {
                            seen.insert(elem, Seen::new(r));
                        }
                        Some(s) => {
                            if !s.saw(r) {
                                *repeats.entry(elem).or_insert(1) += 1;
                            }
                        }
                    }
                }
                for (elem, n) in repeats {
                    duplicated_count += 1;
                    if duplicated.len() < super::EVIDENCE_LIST_CAP {
                        duplicated.push(json!({"element": elem.to_value(), "count": n, "read_index": completion.index}));
                    }
                }
                reads.push(Read {
                    invoke_index: pair.invoke.index,
                    invoke_time_ns: pair.invoke.time,
                    complete_index: completion.index,
                    complete_time_ns: completion.time,
                });
            }
            _ => {}
        }
    }
    // Pairs come in invocation order; keep reads sorted by it, which `last_absent` relies on.
    debug_assert!(reads
        .windows(2)
        .all(|w| w[0].invoke_index < w[1].invoke_index));

    let mut unexpected: Vec<Value> = Vec::new();
    let mut unexpected_count = 0usize;
    let mut sorted_seen: Vec<(&Elem, &Seen)> = seen.iter().collect();
    sorted_seen.sort_by(|a, b| a.0.cmp(b.0));
    for (elem, s) in sorted_seen {
        let why = match adds.get(elem) {
            None => "never added",
            Some(a) if a.first_ok.is_none() && !a.indeterminate => "every add of it failed",
            Some(_) => continue,
        };
        unexpected_count += 1;
        if unexpected.len() < super::EVIDENCE_LIST_CAP {
            let first = &reads[s.first];
            unexpected.push(
                json!({"element": elem.to_value(), "why": why, "read_index": first.complete_index}),
            );
        }
    }

    let mut results: Vec<ElementResult> = Vec::new();
    let mut recovered: Vec<Value> = Vec::new();
    for (elem, a) in &adds {
        let s = seen.get(elem);
        if a.first_ok.is_none() && !a.indeterminate && s.is_none() {
            continue; // every add failed and nobody saw it: it never existed, as promised
        }
        if a.first_ok.is_none() && s.is_some() {
            recovered.push(elem.to_value());
        }
        results.push(element_result(elem, a, s, &reads));
    }

    let by_outcome = |o: Outcome| results.iter().filter(move |r| r.outcome == o);
    let lost: Vec<&ElementResult> = by_outcome(Outcome::Lost).collect();
    let stable_count = by_outcome(Outcome::Stable).count();
    let never_read: Vec<Value> = by_outcome(Outcome::NeverRead)
        .map(|r| r.elem.to_value())
        .collect();
    let mut stale: Vec<&ElementResult> = by_outcome(Outcome::Stable)
        .filter(|r| r.latency_ns.unwrap_or(0) > 0)
        .collect();
    stale.sort_by_key(|r| std::cmp::Reverse(r.latency_ns));
    let mut stable_latencies: Vec<u64> = by_outcome(Outcome::Stable)
        .filter_map(|r| r.latency_ns)
        .collect();
    let mut lost_latencies: Vec<u64> = lost.iter().filter_map(|r| r.latency_ns).collect();
    let mut visibility_latencies: Vec<u64> = results
        .iter()
        .filter_map(|r| r.visibility_latency_ns)
        .collect();

    let describe = |r: &ElementResult| {
        json!({
            "element": r.elem.to_value(),
            "add_index": r.add_index,
            "known_index": r.known_index,
            "last_present_read_index": r.last_present_index,
            "last_absent_read_index": r.last_absent_index,
            "latency_ms": r.latency_ns.map(|ns| ns / 1_000_000),
            "first_seen_read_index": r.first_seen_index,
        })
    };
    let acknowledged = adds.values().filter(|a| a.first_ok.is_some()).count();
    let evidence = json!({
        "attempt_count": adds.len(),
        "acknowledged_count": acknowledged,
        "read_count": reads.len(),
        "final_read_count": final_reads,
        "stable_count": stable_count,
        "lost_count": lost.len(),
        "lost": capped(lost.iter().map(|r| describe(r))),
        "never_read_count": never_read.len(),
        "never_read": capped(never_read.iter().cloned()),
        "stale_count": stale.len(),
        "worst_stale": capped(stale.iter().take(8).map(|r| describe(r))),
        "recovered_count": recovered.len(),
        "recovered": capped(recovered.iter().cloned()),
        "unexpected_count": unexpected_count,
        "unexpected": unexpected,
        "duplicated_count": duplicated_count,
        "duplicated": duplicated,
        "stable_latencies_ms": quantiles_ms(&mut stable_latencies),
        "lost_latencies_ms": quantiles_ms(&mut lost_latencies),
        "visibility_latencies_ms": quantiles_ms(&mut visibility_latencies),
        "malformed": malformed.evidence(),
    });

    let mut anomalies = Vec::new();
    let mut found = Vec::new();
    if !lost.is_empty() {
        anomalies.push("lost".to_string());
        let first = &lost[0];
        found.push(format!(
            "{} acknowledged element(s) were lost (e.g. {} was known at op {} but missing from read {})",
            lost.len(),
            first.elem,
            first.known_index.unwrap_or(0),
            first.last_absent_index.unwrap_or(0)
        ));
    }
    if unexpected_count > 0 {
        anomalies.push("unexpected".to_string());
        found.push(format!(
            "{unexpected_count} element(s) were read that were never successfully added"
        ));
    }
    if duplicated_count > 0 {
        anomalies.push("duplicated".to_string());
        found.push(format!(
            "{duplicated_count} time(s) a read listed an element more than once"
        ));
    }
    let tally = format!(
        "{} element(s) attempted, {} acknowledged: {} stable ({} stale), {} lost, {} never read, {} recovered; {} read(s), {} final.",
        adds.len(), acknowledged, stable_count, stale.len(), lost.len(), never_read.len(), recovered.len(), reads.len(), final_reads
    );
    let summary = if found.is_empty() {
        tally.clone()
    } else {
        format!("{}. {tally}", found.join("; "))
    };
    let unknown_reason = malformed.reason().or_else(|| {
        (stable_count == 0).then(|| "No element was ever seen stable, so nothing shows the set keeps what it acknowledges.".to_string())
    });
    let explanation = lost
        .iter()
        .take(8)
        .map(|r| {
            format!(
                "Element {} was known from op {}; the last read containing it was op {}, but read op {} (invoked later) missed it and no later read saw it again.",
                r.elem,
                r.known_index.unwrap_or(0),
                r.last_present_index.map_or("none".to_string(), |i| i.to_string()),
                r.last_absent_index.unwrap_or(0)
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    conclude(anomalies, unknown_reason, summary, explanation, evidence)
}

/// Classifies one element from its adds and the reads that contained it (`positions`).
fn element_result(elem: &Elem, adds: &Adds, seen: Option<&Seen>, reads: &[Read]) -> ElementResult {
    // Known: the earlier (by index) of the first ok add and the first read containing it.
    let first_seen = seen.map(|s| {
        (
            reads[s.first].complete_index,
            reads[s.first].complete_time_ns,
        )
    });
    let known = match (adds.first_ok, first_seen) {
        (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
        (a, b) => a.or(b),
    };
    let last_present = seen.map(|s| s.last);
    let last_absent = match seen {
        Some(s) => s.last_absent(reads.len()),
        None => reads.len().checked_sub(1),
    };
    let stable = last_present.is_some() && last_absent.is_none_or(|a| Some(a) < last_present);
    let lost = match (known, last_absent) {
        (Some((known_index, _)), Some(a)) => {
            last_present.is_none_or(|pr| pr < a) && known_index < reads[a].invoke_index
        }
        _ => false,
    };
    let known_time = known.map(|k| k.1).unwrap_or(0);
    let (outcome, latency_ns) = if stable {
        let stable_time = last_absent.map_or(0, |a| reads[a].invoke_time_ns + 1);
        (
            Outcome::Stable,
            Some(stable_time.saturating_sub(known_time)),
        )
    } else if lost {
        let lost_time = last_present.map_or(0, |p| reads[p].invoke_time_ns + 1);
        (Outcome::Lost, Some(lost_time.saturating_sub(known_time)))
    } else {
        (Outcome::NeverRead, None)
    };
    ElementResult {
        elem: elem.clone(),
        outcome,
        add_index: adds.first_invoke_index,
        known_index: known.map(|k| k.0),
        last_present_index: last_present.map(|p| reads[p].complete_index),
        last_absent_index: last_absent.map(|a| reads[a].complete_index),
        latency_ns,
        first_seen_index: seen.map(|s| reads[s.first].complete_index),
        visibility_latency_ns: visibility_latency_ns(adds, seen, reads),
    }
}

fn visibility_latency_ns(adds: &Adds, seen: Option<&Seen>, reads: &[Read]) -> Option<u64> {
    let ((ok_index, ok_time), seen) = (adds.first_ok?, seen?);
    // The first read invoked after the add completed; reads are in invocation order.
    let after = reads.partition_point(|r| r.invoke_index < ok_index);
    Some(if seen.first <= after {
        0
    } else {
        reads[seen.first].invoke_time_ns.saturating_sub(ok_time)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convergence::testkit::history;
    use crate::op::OpType::*;
    use crate::verdict::Validity;

    fn check(h: &History) -> Verdict {
        crate::online::testkit::checked(Box::new(SetChecker), h)
    }

    fn add(p: u64, e: i64, kind: OpType) -> [crate::convergence::testkit::Line<'static>; 2] {
        [
            (p, Invoke, "add", json!(e), "n1"),
            (p, kind, "add", json!(e), "n1"),
        ]
    }

    fn read(p: u64, v: Value) -> [crate::convergence::testkit::Line<'static>; 2] {
        [
            (p, Invoke, "read", json!(null), "n2"),
            (p, Ok, "read", v, "n2"),
        ]
    }

    proptest::proptest! {
        #[test]
        fn streamed_last_absent_matches_a_brute_force_scan(present in proptest::collection::vec(proptest::bool::ANY, 1..40)) {
            let mut seen: Option<Seen> = None;
            for (r, _) in present.iter().enumerate().filter(|(_, p)| **p) {
                match &mut seen {
                    None => seen = Some(Seen::new(r)),
                    Some(s) => proptest::prop_assert!(s.saw(r)),
                }
            }
            let brute = present.iter().rposition(|p| !p);
            let streamed = match seen {
                Some(s) => s.last_absent(present.len()),
                None => present.len().checked_sub(1),
            };
            proptest::prop_assert_eq!(streamed, brute);
        }
    }

    #[test]
    fn acknowledged_elements_seen_by_the_final_reads_are_stable() {
        let lines = [
            add(0, 1, Ok),
            add(0, 2, Ok),
            read(1, json!([1, 2])),
            read(1, json!([2, 1])),
        ]
        .concat();
        let v = check(&history(&lines));
        assert_eq!(v.valid, Validity::Valid, "{v:?}");
        assert_eq!(v.evidence["stable_count"], 2);
        assert_eq!(v.evidence["stale_count"], 0);
    }

    #[test]
    fn an_element_that_disappears_for_good_is_lost() {
        let lines = [
            add(0, 1, Ok),
            add(0, 2, Ok),
            read(1, json!([1, 2])),
            read(1, json!([2])),
        ]
        .concat();
        let v = check(&history(&lines));
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.anomalies, vec!["lost"]);
        assert_eq!(v.evidence["lost"][0]["element"], 1);
        assert_eq!(v.evidence["lost"][0]["last_present_read_index"], 5);
        assert_eq!(v.evidence["lost"][0]["last_absent_read_index"], 7);
    }

    #[test]
    fn an_acknowledged_element_never_seen_by_later_reads_is_lost() {
        let lines = [add(0, 1, Ok), add(0, 2, Ok), read(1, json!([2]))].concat();
        let v = check(&history(&lines));
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.evidence["lost_count"], 1);
        assert_eq!(v.evidence["lost"][0]["latency_ms"], 0);
    }

    #[test]
    fn an_element_that_shows_up_late_is_stale_but_valid() {
        let lines = [add(0, 1, Ok), read(1, json!([])), read(1, json!([1]))].concat();
        let v = check(&history(&lines));
        assert_eq!(v.valid, Validity::Valid, "{v:?}");
        assert_eq!(v.evidence["stale_count"], 1);
        assert_eq!(v.evidence["worst_stale"][0]["element"], 1);
        assert_eq!(v.evidence["worst_stale"][0]["first_seen_read_index"], 5);
        // Added ok at 1 ms; the first read seeing it was invoked at 4 ms.
        assert_eq!(v.evidence["visibility_latencies_ms"]["1"], 3);
    }

    #[test]
    fn a_read_concurrent_with_the_add_may_miss_it() {
        // Element 2 is stable; element 1's add is concurrent with the only read missing it.
        let mut lines = add(2, 2, Ok).to_vec();
        lines.extend([
            (0, Invoke, "add", json!(1), "n1"),
            (1, Invoke, "read", json!(null), "n2"),
            (0, Ok, "add", json!(1), "n1"),
            (1, Ok, "read", json!([2]), "n2"),
        ]);
        let v = check(&history(&lines));
        assert_eq!(v.valid, Validity::Valid, "{v:?}");
        assert_eq!(v.evidence["never_read"], json!([1]));
        // A read invoked after the add completed and missing it makes it lost.
        lines.extend(read(3, json!([2])));
        let v = check(&history(&lines));
        assert_eq!(v.valid, Validity::Invalid, "{v:?}");
        assert_eq!(v.evidence["lost"][0]["element"], 1);
    }

    #[test]
    fn elements_nobody_added_or_whose_add_failed_are_unexpected() {
        let lines = [add(0, 1, Ok), add(0, 2, Fail), read(1, json!([1, 2, 3]))].concat();
        let v = check(&history(&lines));
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.anomalies, vec!["unexpected"]);
        assert_eq!(v.evidence["unexpected"][0]["why"], "every add of it failed");
        assert_eq!(v.evidence["unexpected"][1]["why"], "never added");
    }

    #[test]
    fn an_element_listed_twice_by_one_read_is_duplicated() {
        let lines = [add(0, 1, Ok), read(1, json!([1, 1]))].concat();
        let v = check(&history(&lines));
        assert_eq!(v.valid, Validity::Invalid);
        assert_eq!(v.anomalies, vec!["duplicated"]);
        assert_eq!(v.evidence["duplicated"][0]["count"], 2);
    }

    #[test]
    fn an_indeterminate_add_that_shows_up_is_recovered() {
        let lines = [add(0, 1, Info), read(1, json!([1]))].concat();
        let v = check(&history(&lines));
        assert_eq!(v.valid, Validity::Valid, "{v:?}");
        assert_eq!(v.evidence["recovered"], json!([1]));
    }

    #[test]
    fn a_set_never_read_is_unknown_and_a_malformed_read_is_reported() {
        let v = check(&history(&add(0, 1, Ok)));
        assert_eq!(v.valid, Validity::Unknown);
        let lines = [add(0, 1, Ok), read(1, json!([1])), read(1, json!(7))].concat();
        let v = check(&history(&lines));
        assert_eq!(v.valid, Validity::Unknown);
        assert_eq!(v.evidence["malformed"]["count"], 1);
    }
}
