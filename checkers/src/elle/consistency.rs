//! Consistency models and the anomalies each one proscribes, after Elle's
//! `consistency-model` namespace (Adya, Cerone, Bailis, Daudjee; see Elle's sources).
//!
//! Two graphs carry the reasoning. The anomaly graph says which anomalies imply which
//! (a G-single cycle is also a G-nonadjacent one, G1a is a case of G1, a G0 cycle also
//! shows G0-process ...). The model graph says which models imply which (serializable
//! implies repeatable read and snapshot isolation). A model is ruled out when one of
//! the anomalies it, or any weaker model it implies, proscribes is found or implied.
//!
//! One deliberate difference from Elle: every rw edge we infer is an item anti-dependency
//! (there are no predicate reads in list-append or rw-register), so G-single and
//! G-nonadjacent cycles are also G2-item cycles here, and rule out repeatable read.

use std::collections::BTreeSet;

/// The consistency models a checker can be asked to hold to (`--consistency-model`).
pub const CONSISTENCY_MODELS: &[&str] = &[
    "read-uncommitted",
    "read-committed",
    "repeatable-read",
    "snapshot-isolation",
    "serializable",
    "strict-serializable",
    "strong-session-read-uncommitted",
    "strong-session-read-committed",
    "strong-session-snapshot-isolation",
    "strong-session-serializable",
    "strong-read-uncommitted",
    "strong-read-committed",
    "strong-snapshot-isolation",
];

/// The model assumed when none is given, as in Elle.
pub const DEFAULT_MODEL: &str = "strict-serializable";

/// anomaly -> anomalies it implies.
const IMPLIES: &[(&str, &[&str])] = &[
    ("G0", &["G1c", "G0-process"]),
    ("G0-process", &["G1c-process", "G0-realtime"]),
    ("G0-realtime", &["G1c-realtime"]),
    ("G1a", &["G1"]),
    ("G1b", &["G1"]),
    ("G1c", &["G1", "G1c-process"]),
    ("G1c-process", &["G1c-realtime", "G1-process"]),
    ("G1c-realtime", &["G1-realtime"]),
    ("G1", &["G1-process"]),
    ("G1-process", &["G1-realtime"]),
    ("G-single", &["G-nonadjacent", "G-single-process"]),
    (
        "G-single-process",
        &["G-nonadjacent-process", "G-single-realtime"],
    ),
    ("G-single-realtime", &["G-nonadjacent-realtime"]),
    ("G-nonadjacent", &["G2-item", "G-nonadjacent-process"]),
    (
        "G-nonadjacent-process",
        &["G2-item-process", "G-nonadjacent-realtime"],
    ),
    ("G-nonadjacent-realtime", &["G2-item-realtime"]),
    ("G2-item", &["G2", "G2-item-process"]),
    ("G2-item-process", &["G2-process", "G2-item-realtime"]),
    ("G2-item-realtime", &["G2-realtime"]),
    ("G2", &["G2-process"]),
    ("G2-process", &["G2-realtime"]),
    // Two committed reads that no single version order explains: someone read state
    // that was never committed in that order.
    ("incompatible-order", &["G1a"]),
    // A committed write applied on top of an aborted one is a dirty read by a writer.
    ("dirty-update", &["G1a"]),
    // Reading one's own later write is a trivial cycle T -wr-> T.
    ("future-read", &["G1c"]),
    // Lost update is a special case of write skew on one key.
    ("lost-update", &["G2-item"]),
];

/// Every anomaly name the checkers report or reason with.
pub const ANOMALIES: &[&str] = &[
    "G0",
    "G0-process",
    "G0-realtime",
    "G1",
    "G1-process",
    "G1-realtime",
    "G1a",
    "G1b",
    "G1c",
    "G1c-process",
    "G1c-realtime",
    "G-single",
    "G-single-process",
    "G-single-realtime",
    "G-nonadjacent",
    "G-nonadjacent-process",
    "G-nonadjacent-realtime",
    "G2",
    "G2-process",
    "G2-realtime",
    "G2-item",
    "G2-item-process",
    "G2-item-realtime",
    "dirty-update",
    "duplicate-elements",
    "future-read",
    "garbage-read",
    "incompatible-order",
    "internal",
    "lost-update",
];

struct Model {
    name: &'static str,
    /// Models this one implies (a history satisfying this one satisfies those).
    weaker: &'static [&'static str],
    /// Anomalies this model adds to what its weaker models already proscribe.
    proscribes: &'static [&'static str],
}

const MODELS: &[Model] = &[
    Model {
        name: "read-uncommitted",
        weaker: &[],
        // No history of a real database, even at the weakest level, duplicates list
        // elements or reads values nobody wrote.
        proscribes: &["G0", "duplicate-elements", "garbage-read"],
    },
    Model {
        name: "read-committed",
        weaker: &["read-uncommitted"],
        proscribes: &["G1"],
    },
    Model {
        name: "repeatable-read",
        weaker: &["read-committed"],
        proscribes: &["G2-item", "lost-update"],
    },
    Model {
        name: "snapshot-isolation",
        weaker: &["read-committed"],
        // Generalized SI forbids any cycle whose rw edges are all non-adjacent
        // (Cerone-SI, Gotsman), which includes G-single; and lost updates.
        proscribes: &["internal", "G-nonadjacent", "lost-update"],
    },
    Model {
        name: "serializable",
        weaker: &["repeatable-read", "snapshot-isolation"],
        proscribes: &["internal", "G2"],
    },
    Model {
        name: "strict-serializable",
        weaker: &[
            "serializable",
            "strong-session-serializable",
            "strong-snapshot-isolation",
        ],
        proscribes: &["G1c-realtime", "G2-realtime"],
    },
    Model {
        name: "strong-session-read-uncommitted",
        weaker: &["read-uncommitted"],
        proscribes: &["G0-process"],
    },
    Model {
        name: "strong-session-read-committed",
        weaker: &["read-committed", "strong-session-read-uncommitted"],
        proscribes: &["G1c-process"],
    },
    Model {
        name: "strong-session-snapshot-isolation",
        weaker: &["snapshot-isolation", "strong-session-read-committed"],
        proscribes: &["G1-process", "G-nonadjacent-process"],
    },
    Model {
        name: "strong-session-serializable",
        weaker: &["serializable", "strong-session-snapshot-isolation"],
        proscribes: &["G1-process", "G2-process"],
    },
    Model {
        name: "strong-read-uncommitted",
        weaker: &["strong-session-read-uncommitted"],
        proscribes: &["G0-realtime"],
    },
    Model {
        name: "strong-read-committed",
        weaker: &["strong-session-read-committed", "strong-read-uncommitted"],
        proscribes: &["G1c-realtime"],
    },
    Model {
        name: "strong-snapshot-isolation",
        weaker: &["strong-session-snapshot-isolation", "strong-read-committed"],
        proscribes: &["G1-realtime", "G-nonadjacent-realtime"],
    },
];

fn model(name: &str) -> Option<&'static Model> {
    MODELS.iter().find(|m| m.name == name)
}

fn static_name(name: &str) -> Option<&'static str> {
    ANOMALIES.iter().copied().find(|a| *a == name)
}

/// `found` plus every anomaly they imply.
pub fn implied_anomalies(found: &[&str]) -> BTreeSet<&'static str> {
    let mut out: BTreeSet<&'static str> = BTreeSet::new();
    let mut todo: Vec<&'static str> = found.iter().filter_map(|a| static_name(a)).collect();
    // Bounded: each anomaly enters `out` once and the table is finite.
    while let Some(a) = todo.pop() {
        if out.insert(a) {
            if let Some((_, next)) = IMPLIES.iter().find(|(k, _)| *k == a) {
                todo.extend(next.iter().copied());
            }
        }
    }
    out
}

/// `name` and every model it implies.
fn with_weaker(name: &str) -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    let mut todo: Vec<&'static str> = model(name).map(|m| m.name).into_iter().collect();
    while let Some(m) = todo.pop() {
        if out.insert(m) {
            todo.extend(model(m).map_or(&[][..], |m| m.weaker).iter().copied());
        }
    }
    out
}

/// Every anomaly that rules `model_name` out, including those implying a proscribed one.
pub fn proscribed_by(model_name: &str) -> BTreeSet<&'static str> {
    let direct: BTreeSet<&'static str> = with_weaker(model_name)
        .into_iter()
        .filter_map(model)
        .flat_map(|m| m.proscribes.iter().copied())
        .collect();
    ANOMALIES
        .iter()
        .copied()
        .filter(|a| !implied_anomalies(&[a]).is_disjoint(&direct))
        .collect()
}

/// The models the found anomalies rule out: `not` = the weakest of them, `also_not` =
/// the rest (stronger ones), both sorted, as in Elle's `boundary`.
pub fn boundary(found: &[&str]) -> (Vec<&'static str>, Vec<&'static str>) {
    let implied = implied_anomalies(found);
    let out: Vec<&'static str> = CONSISTENCY_MODELS
        .iter()
        .copied()
        .filter(|m| !proscribed_by(m).is_disjoint(&implied))
        .collect();
    let (mut not, mut also): (Vec<_>, Vec<_>) = out.iter().copied().partition(|m| {
        // weakest: no other ruled-out model is implied by this one
        !with_weaker(m).iter().any(|w| w != m && out.contains(w))
    });
    not.sort_unstable();
    also.sort_unstable();
    (not, also)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_name_is_known_and_every_table_name_is_an_anomaly() {
        for m in MODELS {
            assert!(CONSISTENCY_MODELS.contains(&m.name));
            for w in m.weaker {
                assert!(model(w).is_some(), "{w}");
            }
            for a in m.proscribes {
                assert!(ANOMALIES.contains(a), "{a}");
            }
        }
        assert_eq!(MODELS.len(), CONSISTENCY_MODELS.len());
        for (a, next) in IMPLIES {
            assert!(ANOMALIES.contains(a), "{a}");
            for n in *next {
                assert!(ANOMALIES.contains(n), "{n}");
            }
        }
    }

    #[test]
    fn g2_item_breaks_serializable_but_not_snapshot_isolation() {
        let (not, also) = boundary(&["G2-item"]);
        assert_eq!(not, vec!["repeatable-read"]);
        assert!(also.contains(&"serializable"));
        assert!(!also.contains(&"snapshot-isolation"));
    }

    #[test]
    fn g_single_breaks_snapshot_isolation_but_not_read_committed() {
        let (not, also) = boundary(&["G-single"]);
        assert_eq!(not, vec!["repeatable-read", "snapshot-isolation"]);
        assert!(!also.contains(&"read-committed"));
    }

    #[test]
    fn realtime_cycles_only_break_strong_models() {
        let (not, also) = boundary(&["G-single-realtime"]);
        assert_eq!(not, vec!["strong-snapshot-isolation"]);
        assert_eq!(also, vec!["strict-serializable"]);
    }
}
