//! The state-based CRDTs the store replicates, and the hybrid logical clock LWW uses.
//!
//! Pure data types: no I/O, no clock (callers pass the physical time in). Each type has
//! a `merge` that is commutative, associative and idempotent, which is what makes
//! anti-entropy converge whatever order and however often states are exchanged; the
//! property tests at the bottom check exactly those laws. The switchable [`Bugs`] break
//! them on purpose, the way real implementations get them wrong.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Convergence bugs that can be switched on (`--bug NAME`), each a real-world mistake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// LWW registers are stamped with the raw wall clock instead of the HLC: a node whose
    /// clock runs ahead wins over writes that happened after it.
    pub lww_wall_clock: bool,
    /// OR-set merges ignore the other side's tombstones: removes never spread, removed
    /// elements come back at other replicas and the replicas diverge.
    pub or_set_no_tombstone_merge: bool,
    /// PN-counter merges keep whichever whole state has the larger total instead of the
    /// per-replica maximum: concurrent increments on different replicas are lost.
    pub counter_max_merge: bool,
}

/// The names `--bug` accepts.
pub const BUG_NAMES: &[&str] = &[
    "lww-wall-clock",
    "or-set-no-tombstone-merge",
    "counter-max-merge",
];

impl Bugs {
    /// Switches on the bug called `name`; `None` when no bug has that name.
    pub fn enable(mut self, name: &str) -> Option<Bugs> {
        match name {
            "lww-wall-clock" => self.lww_wall_clock = true,
            "or-set-no-tombstone-merge" => self.or_set_no_tombstone_merge = true,
            "counter-max-merge" => self.counter_max_merge = true,
            _ => return None,
        }
        Some(self)
    }
}

/// A hybrid logical clock timestamp: physical milliseconds, a logical counter for events
/// within one millisecond (or while the physical clock lags), and the node id to break ties.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp {
    pub wall_ms: u64,
    pub logical: u32,
    pub node: String,
}

/// Kulkarni et al.'s hybrid logical clock: never behind the physical clock, never behind
/// any timestamp it has seen, so a write stamped after receiving another is ordered after it.
#[derive(Clone, Debug, Default)]
pub struct Hlc {
    wall_ms: u64,
    logical: u32,
}

impl Hlc {
    /// A timestamp for a local event at physical time `now_ms`.
    pub fn tick(&mut self, now_ms: u64, node: &str) -> Timestamp {
        if now_ms > self.wall_ms {
            self.wall_ms = now_ms;
            self.logical = 0;
        } else {
            self.logical = self.logical.saturating_add(1);
        }
        Timestamp {
            wall_ms: self.wall_ms,
            logical: self.logical,
            node: node.to_string(),
        }
    }

    /// Takes in a timestamp seen in a remote state, so later ticks order after it.
    pub fn observe(&mut self, seen: &Timestamp) {
        if (seen.wall_ms, seen.logical) > (self.wall_ms, self.logical) {
            self.wall_ms = seen.wall_ms;
            self.logical = seen.logical;
        }
    }
}

/// A PN-counter: per-replica totals of increments (`p`) and decrements (`n`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PnCounter {
    pub p: BTreeMap<String, u64>,
    pub n: BTreeMap<String, u64>,
}

impl PnCounter {
    pub fn add(&mut self, replica: &str, delta: i64) {
        let side = if delta >= 0 { &mut self.p } else { &mut self.n };
        let slot = side.entry(replica.to_string()).or_insert(0);
        *slot = slot.saturating_add(delta.unsigned_abs());
    }

    pub fn value(&self) -> i64 {
        let p: i128 = self.p.values().map(|v| i128::from(*v)).sum();
        let n: i128 = self.n.values().map(|v| i128::from(*v)).sum();
        (p - n).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    pub fn merge(&mut self, other: &PnCounter, bugs: Bugs) {
        if bugs.counter_max_merge {
            if other.value() > self.value() {
                *self = other.clone();
            }
            return;
        }
        for (side, theirs) in [(&mut self.p, &other.p), (&mut self.n, &other.n)] {
            for (replica, v) in theirs {
                let mine = side.entry(replica.clone()).or_insert(0);
                *mine = (*mine).max(*v);
            }
        }
    }
}

/// An observed-remove set with unique tags: an element is present while some tag that
/// added it has not been removed. Tags are `"<replica>#<sequence>"`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrSet {
    /// Element (as canonical JSON text) -> tags that added it.
    pub adds: BTreeMap<String, BTreeSet<String>>,
    /// Tombstones: tags whose add was removed.
    pub removed: BTreeSet<String>,
}

impl OrSet {
    /// Adds `element` under the fresh, globally unique `tag`.
    pub fn add(&mut self, element: &Value, tag: String) {
        self.adds
            .entry(element.to_string())
            .or_default()
            .insert(tag);
    }

    /// Removes every add of `element` this replica has seen; returns the tags it removed.
    pub fn remove(&mut self, element: &Value) -> Vec<String> {
        let observed: Vec<String> = self
            .adds
            .get(&element.to_string())
            .map(|tags| tags.difference(&self.removed).cloned().collect())
            .unwrap_or_default();
        self.removed.extend(observed.iter().cloned());
        observed
    }

    /// The elements present, in their canonical text order.
    pub fn elements(&self) -> Vec<Value> {
        self.adds
            .iter()
            .filter(|(_, tags)| tags.iter().any(|t| !self.removed.contains(t)))
            .filter_map(|(e, _)| serde_json::from_str(e).ok())
            .collect()
    }

    pub fn merge(&mut self, other: &OrSet, bugs: Bugs) {
        for (element, tags) in &other.adds {
            self.adds
                .entry(element.clone())
                .or_default()
                .extend(tags.iter().cloned());
        }
        if !bugs.or_set_no_tombstone_merge {
            self.removed.extend(other.removed.iter().cloned());
        }
    }
}

/// A last-writer-wins register: the value with the greatest timestamp.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LwwRegister {
    pub value: Option<Value>,
    pub timestamp: Timestamp,
}

impl LwwRegister {
    pub fn write(&mut self, value: Value, timestamp: Timestamp) {
        if self.value.is_none() || timestamp > self.timestamp {
            self.value = Some(value);
            self.timestamp = timestamp;
        }
    }

    pub fn merge(&mut self, other: &LwwRegister) {
        if let Some(v) = &other.value {
            self.write(v.clone(), other.timestamp.clone());
        }
    }
}

/// Everything one replica holds, exchanged whole by anti-entropy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub counters: BTreeMap<String, PnCounter>,
    #[serde(default)]
    pub sets: BTreeMap<String, OrSet>,
    #[serde(default)]
    pub registers: BTreeMap<String, LwwRegister>,
}

impl State {
    /// Merges `other` into `self`; returns whether anything changed.
    pub fn merge(&mut self, other: &State, bugs: Bugs) -> bool {
        let before = self.clone();
        for (name, c) in &other.counters {
            self.counters
                .entry(name.clone())
                .or_default()
                .merge(c, bugs);
        }
        for (name, s) in &other.sets {
            self.sets.entry(name.clone()).or_default().merge(s, bugs);
        }
        for (name, r) in &other.registers {
            self.registers.entry(name.clone()).or_default().merge(r);
        }
        *self != before
    }

    /// Every register timestamp, for the HLC to observe.
    pub fn timestamps(&self) -> impl Iterator<Item = &Timestamp> {
        self.registers
            .values()
            .filter(|r| r.value.is_some())
            .map(|r| &r.timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const NODES: &[&str] = &["n1", "n2", "n3"];

    fn counter() -> impl Strategy<Value = PnCounter> {
        prop::collection::vec((0..3usize, -5i64..=5), 0..8).prop_map(|ops| {
            let mut c = PnCounter::default();
            for (node, d) in ops {
                c.add(NODES[node], d);
            }
            c
        })
    }

    fn or_set() -> impl Strategy<Value = OrSet> {
        // Tags are drawn from a shared small space so that states overlap, as replicas do.
        prop::collection::vec((0..4i64, 0..12u32, any::<bool>()), 0..10).prop_map(|ops| {
            let mut s = OrSet::default();
            for (e, tag, remove) in ops {
                s.add(&json!(e), format!("t{tag}"));
                if remove {
                    s.remove(&json!(e));
                }
            }
            s
        })
    }

    fn register() -> impl Strategy<Value = LwwRegister> {
        (0..3u64, 0..3u32, 0..3usize).prop_map(|(wall_ms, logical, node)| {
            let mut r = LwwRegister::default();
            // The value is a function of the timestamp, as a unique write id would be.
            let value = json!(format!("{wall_ms}.{logical}.{node}"));
            r.write(
                value,
                Timestamp {
                    wall_ms,
                    logical,
                    node: NODES[node].into(),
                },
            );
            r
        })
    }

    fn state() -> impl Strategy<Value = State> {
        (counter(), or_set(), register()).prop_map(|(c, s, r)| State {
            counters: BTreeMap::from([("c".to_string(), c)]),
            sets: BTreeMap::from([("s".to_string(), s)]),
            registers: BTreeMap::from([("r".to_string(), r)]),
        })
    }

    fn merged(a: &State, b: &State, bugs: Bugs) -> State {
        let mut m = a.clone();
        m.merge(b, bugs);
        m
    }

    proptest! {
        #[test]
        fn merge_is_commutative(a in state(), b in state()) {
            prop_assert_eq!(merged(&a, &b, Bugs::default()), merged(&b, &a, Bugs::default()));
        }

        #[test]
        fn merge_is_associative(a in state(), b in state(), c in state()) {
            let bugs = Bugs::default();
            prop_assert_eq!(merged(&merged(&a, &b, bugs), &c, bugs), merged(&a, &merged(&b, &c, bugs), bugs));
        }

        #[test]
        fn merge_is_idempotent(a in state(), b in state()) {
            let once = merged(&a, &b, Bugs::default());
            prop_assert_eq!(merged(&once, &b, Bugs::default()), once.clone());
            prop_assert_eq!(merged(&a, &a, Bugs::default()), a);
        }

        #[test]
        fn counter_merge_keeps_every_replicas_increments(a in counter(), b in counter()) {
            let mut m = a.clone();
            m.merge(&b, Bugs::default());
            for (node, v) in a.p.iter().chain(b.p.iter()) {
                prop_assert!(m.p[node] >= *v);
            }
        }
    }

    #[test]
    fn hlc_orders_a_write_after_one_it_has_seen_even_from_a_clock_ahead() {
        let mut ahead = Hlc::default();
        let first = ahead.tick(10_000, "n1");
        let mut behind = Hlc::default();
        behind.observe(&first);
        let second = behind.tick(1_000, "n2");
        assert!(second > first, "{second:?} must order after {first:?}");
    }

    #[test]
    fn removed_elements_stay_removed_after_merge_unless_the_bug_drops_tombstones() {
        let mut a = OrSet::default();
        a.add(&json!(1), "n1#1".into());
        let mut b = a.clone();
        assert_eq!(b.remove(&json!(1)), vec!["n1#1".to_string()]);
        let mut good = a.clone();
        good.merge(&b, Bugs::default());
        assert!(good.elements().is_empty());
        let mut bad = a.clone();
        bad.merge(
            &b,
            Bugs::default().enable("or-set-no-tombstone-merge").unwrap(),
        );
        assert_eq!(bad.elements(), vec![json!(1)]);
    }

    #[test]
    fn a_concurrent_add_survives_a_remove_that_did_not_observe_it() {
        let mut a = OrSet::default();
        a.add(&json!("x"), "n1#1".into());
        let mut b = a.clone();
        b.remove(&json!("x"));
        a.add(&json!("x"), "n1#2".into());
        a.merge(&b, Bugs::default());
        assert_eq!(a.elements(), vec![json!("x")]);
    }

    #[test]
    fn max_merge_bug_loses_concurrent_increments() {
        let mut a = PnCounter::default();
        a.add("n1", 2);
        let mut b = PnCounter::default();
        b.add("n2", 3);
        let mut good = a.clone();
        good.merge(&b, Bugs::default());
        assert_eq!(good.value(), 5);
        let mut bad = a.clone();
        bad.merge(&b, Bugs::default().enable("counter-max-merge").unwrap());
        assert_eq!(bad.value(), 3);
    }

    #[test]
    fn unknown_bug_names_are_refused() {
        assert_eq!(Bugs::default().enable("split-brain"), None);
    }
}
