//! Consistency models and the anomalies each one proscribes: Elle's lattice
//! (`elle.consistency-model`), table for table, so that a model or anomaly name means
//! here exactly what it means to Elle (Adya, Bailis, Cerone, Daudjee, Zuikeviciute ...;
//! see Elle's sources for the citations of each edge).
//!
//! Four tables carry the reasoning, each copied from Elle:
//! - [`ALIASES`]: friendly model names and their canonical (Adya) names, e.g.
//!   `serializable` and `conflict-serializable` are `PL-3`, `strict-serializable` and
//!   `strong-serializable` are `PL-SS`.
//! - [`MODEL_EDGES`]: which model implies which (a history that satisfies the first
//!   satisfies the second).
//! - [`PROSCRIBES`]: the anomalies a model proscribes beyond those of the models it
//!   implies.
//! - [`IMPLIES`]: which anomaly implies which (a G0 cycle is also G1c, G1a is a case of
//!   G1, a G-single-item cycle is also a G-nonadjacent-item one ...).
//!
//! A model is ruled out when an anomaly it (or a model it implies) proscribes is found,
//! or implied by one that is found.
//!
//! Our additions, each only ever making a model stricter where Elle has no opinion:
//! - `garbage-read` (a read of a value no transaction wrote) is proscribed by
//!   read-uncommitted: no database at any isolation level may invent values. Elle has
//!   no such anomaly (its list-append checker fails on such a read, its rw-register
//!   checker ignores it).
//! - `X-cycle-forced` for each of Elle's `X-cycle-exists`: the exact search over version
//!   orders (see `exact`) proved that every possible version order closes a cycle in
//!   X's dependency graph. It implies `X-cycle-exists`, so it rules out the same models.
//!
//! Where Elle's own spelling is inconsistent we keep it: models proscribe `G-SI` and
//! `G-SIb`, while the anomaly graph names `GSIa`, `GSIb` and `GSI`; none of these is
//! ever detected by a list-append or rw-register checker (they need predicates or
//! start timestamps), in Elle as here. The one naming difference: Elle prints `PL-SS`
//! as `strong-serializable`, we print it as `strict-serializable` (the same model, and
//! the name both accept).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

/// The model judged against when neither a model nor anomalies are given, as in Elle.
pub const DEFAULT_MODEL: &str = "strict-serializable";

/// Friendly name -> canonical name (Elle's `canonical-model-names`).
pub const ALIASES: &[(&str, &str)] = &[
    ("consistent-view", "PL-2+"),
    ("conflict-serializable", "PL-3"),
    ("cursor-stability", "PL-CS"),
    ("forward-consistent-view", "PL-FCV"),
    ("monotonic-snapshot-read", "PL-MSR"),
    ("monotonic-view", "PL-2L"),
    ("read-committed", "PL-2"),
    ("read-uncommitted", "PL-1"),
    ("repeatable-read", "PL-2.99"),
    ("serializable", "PL-3"),
    ("snapshot-isolation", "PL-SI"),
    ("strict-serializable", "PL-SS"),
    ("strong-serializable", "PL-SS"),
    ("update-serializable", "PL-3U"),
    ("strong-session-read-uncommitted", "strong-session-PL-1"),
    ("strong-session-read-committed", "strong-session-PL-2"),
    ("strong-read-uncommitted", "strong-PL-1"),
    ("strong-read-committed", "strong-PL-2"),
];

/// Canonical name -> the name we print (Elle's `friendly-model-names`).
const FRIENDLY: &[(&str, &str)] = &[
    ("PL-2+", "consistent-view"),
    ("PL-3", "serializable"),
    ("PL-CS", "cursor-stability"),
    ("PL-FCV", "forward-consistent-view"),
    ("PL-MSR", "monotonic-snapshot-read"),
    ("PL-2L", "monotonic-view"),
    ("PL-2", "read-committed"),
    ("PL-1", "read-uncommitted"),
    ("PL-2.99", "repeatable-read"),
    ("PL-SI", "snapshot-isolation"),
    ("PL-SS", "strict-serializable"),
    ("PL-3U", "update-serializable"),
    ("strong-session-PL-1", "strong-session-read-uncommitted"),
    ("strong-session-PL-2", "strong-session-read-committed"),
    ("strong-PL-1", "strong-read-uncommitted"),
    ("strong-PL-2", "strong-read-committed"),
];

/// Stronger model -> models it implies (Elle's `models`; names as Elle writes them,
/// canonicalized when read).
pub const MODEL_EDGES: &[(&str, &[&str])] = &[
    ("causal-cerone", &["read-atomic"]),
    ("consistent-view", &["cursor-stability", "monotonic-view"]),
    ("conflict-serializable", &["view-serializable"]),
    ("cursor-stability", &["read-committed", "PL-2"]),
    ("forward-consistent-view", &["consistent-view"]),
    ("PL-2", &["PL-1"]),
    ("PL-3", &["repeatable-read", "update-serializable"]),
    ("update-serializable", &["forward-consistent-view"]),
    ("monotonic-atomic-view", &["read-committed"]),
    ("monotonic-view", &["PL-2"]),
    ("monotonic-snapshot-read", &["PL-2"]),
    (
        "parallel-snapshot-isolation",
        &["causal-cerone", "update-atomic"],
    ),
    ("prefix", &["causal-cerone"]),
    ("read-atomic", &["monotonic-atomic-view"]),
    ("read-committed", &["read-uncommitted"]),
    (
        "repeatable-read",
        &["cursor-stability", "monotonic-atomic-view"],
    ),
    ("update-atomic", &["read-atomic"]),
    (
        "serializable",
        &["repeatable-read", "snapshot-isolation", "view-serializable"],
    ),
    ("session-serializable", &["1SR"]),
    (
        "snapshot-isolation",
        &[
            "forward-consistent-view",
            "monotonic-atomic-view",
            "monotonic-snapshot-read",
            "parallel-snapshot-isolation",
            "prefix",
        ],
    ),
    (
        "strict-serializable",
        &[
            "PL-3",
            "serializable",
            "linearizable",
            "snapshot-isolation",
            "strong-snapshot-isolation",
            "strong-session-serializable",
        ],
    ),
    ("strong-session-PL-1", &["PL-1"]),
    ("strong-session-PL-2", &["PL-2", "strong-session-PL-1"]),
    ("strong-PL-1", &["strong-session-PL-1"]),
    ("strong-PL-2", &["strong-session-PL-2", "strong-PL-1"]),
    (
        "strong-session-serializable",
        &["serializable", "strong-session-snapshot-isolation"],
    ),
    (
        "strong-session-snapshot-isolation",
        &["snapshot-isolation", "strong-session-PL-2"],
    ),
    ("strong-serializable", &["session-serializable"]),
    (
        "strong-snapshot-isolation",
        &["strong-session-snapshot-isolation", "strong-PL-2"],
    ),
    ("linearizable", &["sequential"]),
    ("sequential", &["causal"]),
    ("causal", &["writes-follow-reads", "PRAM"]),
    (
        "PRAM",
        &["monotonic-reads", "monotonic-writes", "read-your-writes"],
    ),
];

/// Model -> anomalies it proscribes directly (Elle's `direct-proscribed-anomalies`,
/// plus our `garbage-read`, see the module doc).
pub const PROSCRIBES: &[(&str, &[&str])] = &[
    ("causal-cerone", &["internal", "G1a"]),
    ("cursor-stability", &["G1", "G-cursor", "lost-update"]),
    ("monotonic-view", &["G1", "G-monotonic"]),
    ("monotonic-snapshot-read", &["G1", "G-MSR"]),
    ("consistent-view", &["G1", "G-single"]),
    ("forward-consistent-view", &["G1", "G-SIb"]),
    ("parallel-snapshot-isolation", &["internal", "G1a"]),
    (
        "PL-3",
        &["G1", "G2", "predicate-read-miss", "PL-3-cycle-exists"],
    ),
    ("PL-2", &["G1", "PL-2-cycle-exists"]),
    (
        "PL-1",
        &[
            "G0",
            "duplicate-elements",
            "cyclic-versions",
            "PL-1-cycle-exists",
            "garbage-read",
        ],
    ),
    ("prefix", &["internal", "G1a"]),
    ("serializable", &["internal"]),
    (
        "snapshot-isolation",
        &[
            "internal",
            "G1",
            "G-SI",
            "G-nonadjacent",
            "PL-SI-cycle-exists",
        ],
    ),
    ("read-atomic", &["internal", "G1a", "future-read"]),
    (
        "repeatable-read",
        &["G1", "G2-item", "PL-2.99-cycle-exists", "lost-update"],
    ),
    ("update-atomic", &["lost-update"]),
    (
        "strict-serializable",
        &["G1", "G1c-realtime", "G2-realtime", "PL-SS-cycle-exists"],
    ),
    (
        "strong-session-PL-1",
        &["strong-session-PL-1-cycle-exists", "G0-process"],
    ),
    (
        "strong-session-PL-2",
        &["strong-session-PL-2-cycle-exists", "G1c-process"],
    ),
    ("strong-PL-1", &["strong-PL-1-cycle-exists", "G0-realtime"]),
    ("strong-PL-2", &["strong-PL-2-cycle-exists", "G1c-realtime"]),
    (
        "strong-session-snapshot-isolation",
        &[
            "internal",
            "G1-process",
            "G-nonadjacent-process",
            "strong-session-snapshot-isolation-cycle-exists",
        ],
    ),
    (
        "strong-snapshot-isolation",
        &[
            "internal",
            "G1-realtime",
            "G-nonadjacent-realtime",
            "strong-snapshot-isolation-cycle-exists",
        ],
    ),
    (
        "strong-session-serializable",
        &[
            "G1-process",
            "G2-process",
            "strong-session-serializable-cycle-exists",
        ],
    ),
    ("update-serializable", &["G1", "G-update"]),
];

/// Anomaly -> anomalies it implies (Elle's `implied-anomalies`).
pub const IMPLIES: &[(&str, &[&str])] = &[
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
    (
        "G-single-item",
        &["G-single", "G-single-item-process", "G-nonadjacent-item"],
    ),
    (
        "G-single-item-process",
        &[
            "G-single-process",
            "G-single-item-realtime",
            "G-nonadjacent-item-process",
        ],
    ),
    (
        "G-single-item-realtime",
        &["G-single-realtime", "G-nonadjacent-item-realtime"],
    ),
    ("G-single", &["G-nonadjacent", "GSIb", "G-single-process"]),
    (
        "G-single-process",
        &["G-nonadjacent-process", "G-single-realtime"],
    ),
    ("G-single-realtime", &["G-nonadjacent-realtime"]),
    (
        "G-nonadjacent-item",
        &["G-nonadjacent", "G2-item", "G-nonadjacent-item-process"],
    ),
    (
        "G-nonadjacent-item-process",
        &[
            "G-nonadjacent-process",
            "G2-item-process",
            "G-nonadjacent-item-realtime",
        ],
    ),
    (
        "G-nonadjacent-item-realtime",
        &["G2-item-realtime", "G-nonadjacent-realtime"],
    ),
    ("G-nonadjacent", &["G2", "G-nonadjacent-process"]),
    (
        "G-nonadjacent-process",
        &["G2-process", "G-nonadjacent-realtime"],
    ),
    ("G-nonadjacent-realtime", &["G2-realtime"]),
    ("G2", &["G2-process"]),
    ("G2-item", &["G2", "G2-item-process"]),
    ("G2-item-process", &["G2-process", "G2-item-realtime"]),
    ("G2-item-realtime", &["G2-realtime"]),
    ("G2-process", &["G2-realtime"]),
    ("GSIa", &["GSI"]),
    ("GSIb", &["GSI"]),
    ("incompatible-order", &["G1a"]),
    ("future-read", &["G1c"]),
    ("dirty-update", &["G1a"]),
    ("lost-update", &["write-skew", "G2-item"]),
    ("write-skew", &["G2"]),
    // Ours: a forced cycle is an existing one, whatever the version order.
    ("PL-1-cycle-forced", &["PL-1-cycle-exists"]),
    ("PL-2-cycle-forced", &["PL-2-cycle-exists"]),
    ("PL-SI-cycle-forced", &["PL-SI-cycle-exists"]),
    ("PL-2.99-cycle-forced", &["PL-2.99-cycle-exists"]),
    ("PL-3-cycle-forced", &["PL-3-cycle-exists"]),
    (
        "strong-session-PL-1-cycle-forced",
        &["strong-session-PL-1-cycle-exists"],
    ),
    (
        "strong-session-PL-2-cycle-forced",
        &["strong-session-PL-2-cycle-exists"],
    ),
    (
        "strong-session-snapshot-isolation-cycle-forced",
        &["strong-session-snapshot-isolation-cycle-exists"],
    ),
    (
        "strong-session-serializable-cycle-forced",
        &["strong-session-serializable-cycle-exists"],
    ),
    ("strong-PL-1-cycle-forced", &["strong-PL-1-cycle-exists"]),
    ("strong-PL-2-cycle-forced", &["strong-PL-2-cycle-exists"]),
    (
        "strong-snapshot-isolation-cycle-forced",
        &["strong-snapshot-isolation-cycle-exists"],
    ),
    ("PL-SS-cycle-forced", &["PL-SS-cycle-exists"]),
];

/// Anomalies that make a verdict unknown rather than valid (Elle's
/// `unknown-anomaly-types`); reported as reasons, never as violations.
pub const UNKNOWN_REASONS: &[&str] = &["cycle-search-timeout", "empty-transaction-graph"];

/// The canonical name of model `name` (an alias or a canonical name), `None` when Elle's
/// lattice does not know it.
pub fn canonical(name: &str) -> Option<&'static str> {
    if let Some((_, c)) = ALIASES.iter().find(|(a, _)| *a == name) {
        return Some(c);
    }
    lattice().models.get(name).map(|m| m.name)
}

/// The name we print for a canonical model.
pub fn friendly(canonical: &str) -> &'static str {
    FRIENDLY
        .iter()
        .find(|(c, _)| *c == canonical)
        .map(|(_, f)| *f)
        .or_else(|| lattice().models.get(canonical).map(|m| m.name))
        .unwrap_or("unknown-model")
}

/// Every model name accepted (canonical names and aliases), sorted.
pub fn model_names() -> &'static [&'static str] {
    &lattice().all_names
}

/// Every anomaly name the lattice knows, sorted (including the reasons for unknown).
pub fn anomaly_names() -> &'static [&'static str] {
    &lattice().all_anomalies
}

/// The static spelling of anomaly `name`, `None` when the lattice does not know it.
pub fn anomaly(name: &str) -> Option<&'static str> {
    let all = &lattice().all_anomalies;
    all.binary_search(&name).ok().map(|i| all[i])
}

struct ModelNode {
    name: &'static str,
    weaker: Vec<&'static str>,
    stronger: Vec<&'static str>,
    proscribes: Vec<&'static str>,
}

struct Lattice {
    /// canonical name -> node
    models: BTreeMap<&'static str, ModelNode>,
    /// anomaly -> (implied, implied-by)
    anomalies: BTreeMap<&'static str, (Vec<&'static str>, Vec<&'static str>)>,
    all_names: Vec<&'static str>,
    all_anomalies: Vec<&'static str>,
}

fn canonical_static(name: &'static str) -> &'static str {
    ALIASES
        .iter()
        .find(|(a, _)| *a == name)
        .map_or(name, |(_, c)| c)
}

fn lattice() -> &'static Lattice {
    static LATTICE: OnceLock<Lattice> = OnceLock::new();
    LATTICE.get_or_init(|| {
        let mut models: BTreeMap<&'static str, ModelNode> = BTreeMap::new();
        let node = |models: &mut BTreeMap<&'static str, ModelNode>, n: &'static str| {
            models.entry(n).or_insert_with(|| ModelNode {
                name: n,
                weaker: Vec::new(),
                stronger: Vec::new(),
                proscribes: Vec::new(),
            });
        };
        for (from, tos) in MODEL_EDGES {
            let a = canonical_static(from);
            node(&mut models, a);
            for to in *tos {
                let b = canonical_static(to);
                node(&mut models, b);
                let m = models.get_mut(a).expect("inserted");
                if !m.weaker.contains(&b) {
                    m.weaker.push(b);
                }
                let m = models.get_mut(b).expect("inserted");
                if !m.stronger.contains(&a) {
                    m.stronger.push(a);
                }
            }
        }
        let mut anomalies: BTreeMap<&'static str, (Vec<&'static str>, Vec<&'static str>)> =
            BTreeMap::new();
        for (m, list) in PROSCRIBES {
            let c = canonical_static(m);
            node(&mut models, c);
            let n = models.get_mut(c).expect("inserted");
            for a in *list {
                if !n.proscribes.contains(a) {
                    n.proscribes.push(a);
                }
                anomalies.entry(a).or_default();
            }
        }
        for (a, implied) in IMPLIES {
            anomalies.entry(a).or_default().0.extend(implied.iter());
            for b in *implied {
                anomalies.entry(b).or_default().1.push(a);
            }
        }
        for r in UNKNOWN_REASONS {
            anomalies.entry(r).or_default();
        }
        for c in super::cycle::CLASSES {
            anomalies.entry(c.name).or_default();
        }
        let mut all_names: Vec<&'static str> = models.keys().copied().collect();
        all_names.extend(ALIASES.iter().map(|(a, _)| *a));
        all_names.sort_unstable();
        all_names.dedup();
        let all_anomalies = anomalies.keys().copied().collect();
        Lattice {
            models,
            anomalies,
            all_names,
            all_anomalies,
        }
    })
}

/// Breadth-first closure of `start` under `next` (start included).
fn closure(
    start: impl IntoIterator<Item = &'static str>,
    next: impl Fn(&'static str) -> Vec<&'static str>,
) -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    let mut todo: Vec<&'static str> = start.into_iter().collect();
    // Bounded: each name enters `out` once and the tables are finite.
    while let Some(x) = todo.pop() {
        if out.insert(x) {
            todo.extend(next(x));
        }
    }
    out
}

/// `models` and every model reachable from them along the model graph: the models they
/// imply (`stronger: false`), or the models implying them (`stronger: true`).
fn models_along(models: &[&'static str], stronger: bool) -> BTreeSet<&'static str> {
    let l = lattice();
    closure(models.iter().copied(), |m| {
        l.models
            .get(m)
            .map(|n| if stronger { &n.stronger } else { &n.weaker }.clone())
            .unwrap_or_default()
    })
}

/// `anomalies` and every anomaly reachable along the anomaly graph: those they imply
/// (`implying: false`), or those implying them (`implying: true`).
fn anomalies_along(anomalies: &[&'static str], implying: bool) -> BTreeSet<&'static str> {
    let l = lattice();
    closure(anomalies.iter().copied(), |a| {
        l.anomalies
            .get(a)
            .map(|e| if implying { &e.1 } else { &e.0 }.clone())
            .unwrap_or_default()
    })
}

/// Canonical `models` and every model they imply.
pub fn implied_models(models: &[&'static str]) -> BTreeSet<&'static str> {
    models_along(models, false)
}

/// Canonical `models` and every model that implies one of them (all ruled out too).
pub fn impossible_closure(models: &[&'static str]) -> BTreeSet<&'static str> {
    models_along(models, true)
}

/// `found` plus every anomaly they imply.
pub fn implied_anomalies(found: &[&'static str]) -> BTreeSet<&'static str> {
    anomalies_along(found, false)
}

/// `anomalies` plus every anomaly that implies one of them.
pub fn anomalies_implying(anomalies: &[&'static str]) -> BTreeSet<&'static str> {
    anomalies_along(anomalies, true)
}

/// Every anomaly whose presence rules out one of the (canonical) `models`: what they
/// and the models they imply proscribe, and everything implying those (Elle's
/// `anomalies-prohibited-by`).
pub fn prohibited_by_models(models: &[&'static str]) -> BTreeSet<&'static str> {
    let l = lattice();
    let direct: Vec<&'static str> = implied_models(models)
        .into_iter()
        .filter_map(|m| l.models.get(m))
        .flat_map(|n| n.proscribes.iter().copied())
        .collect();
    anomalies_implying(&direct)
}

/// The anomalies that fail a check asked for `models` and `anomalies` (Elle's
/// `prohibited-anomaly-types`).
pub fn prohibited(models: &[&'static str], anomalies: &[&'static str]) -> BTreeSet<&'static str> {
    let mut out = prohibited_by_models(models);
    out.extend(anomalies_implying(anomalies));
    out
}

/// The canonical models that cannot hold given `anomalies` (Elle's
/// `anomalies->impossible-models`).
pub fn impossible_models(anomalies: &[&'static str]) -> BTreeSet<&'static str> {
    let l = lattice();
    let implied = implied_anomalies(anomalies);
    let direct: Vec<&'static str> = l
        .models
        .values()
        .filter(|n| n.proscribes.iter().any(|a| implied.contains(a)))
        .map(|n| n.name)
        .collect();
    impossible_closure(&direct)
}

/// The models `anomalies` rule out, as friendly names: `not` = the weakest of them,
/// `also_not` = the rest, both sorted (Elle's `friendly-boundary`).
pub fn boundary(anomalies: &[&'static str]) -> (Vec<&'static str>, Vec<&'static str>) {
    let l = lattice();
    let impossible = impossible_models(anomalies);
    let weakest: BTreeSet<&'static str> = impossible
        .iter()
        .copied()
        .filter(|m| {
            // Weakest: no other ruled-out model is implied by this one.
            l.models[m]
                .weaker
                .iter()
                .all(|w| implied_models(&[w]).is_disjoint(&impossible))
        })
        .collect();
    let mut not: Vec<&'static str> = weakest.iter().map(|m| friendly(m)).collect();
    let mut also: Vec<&'static str> = impossible
        .iter()
        .filter(|m| !weakest.contains(*m))
        .map(|m| friendly(m))
        .collect();
    not.sort_unstable();
    not.dedup();
    also.sort_unstable();
    also.dedup();
    (not, also)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn friendly_set(s: &BTreeSet<&'static str>) -> BTreeSet<&'static str> {
        s.iter().map(|m| friendly(m)).collect()
    }

    #[test]
    fn every_table_name_is_known() {
        for (a, c) in ALIASES {
            assert!(lattice().models.contains_key(c), "{a} -> {c}");
        }
        for (c, _) in FRIENDLY {
            assert!(lattice().models.contains_key(c), "{c}");
        }
        for name in model_names() {
            assert!(canonical(name).is_some(), "{name}");
        }
        assert_eq!(canonical("strong-serializable"), Some("PL-SS"));
        assert_eq!(canonical("PL-2.99"), Some("PL-2.99"));
        assert_eq!(canonical("serialisable"), None);
        assert_eq!(friendly("PL-SS"), "strict-serializable");
        assert_eq!(friendly("read-atomic"), "read-atomic");
    }

    // The expectations below are Elle's own (test/elle/consistency_model_test.clj),
    // with `strong-serializable` printed as `strict-serializable` and our extras added.

    #[test]
    fn read_committed_prohibits_what_elle_says() {
        let got = prohibited_by_models(&["PL-2"]);
        let want: BTreeSet<&str> = [
            "dirty-update",
            "G1a",
            "G1b",
            "G1c",
            "G1",
            "G0",
            "PL-1-cycle-exists",
            "PL-2-cycle-exists",
            "cyclic-versions",
            "duplicate-elements",
            "incompatible-order",
            "future-read",
            // ours
            "garbage-read",
            "PL-1-cycle-forced",
            "PL-2-cycle-forced",
        ]
        .into_iter()
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn impossible_models_match_elle() {
        assert_eq!(
            friendly_set(&impossible_models(&["G-single"])),
            [
                "consistent-view",
                "forward-consistent-view",
                "strict-serializable",
                "serializable",
                "snapshot-isolation",
                "strong-session-serializable",
                "strong-session-snapshot-isolation",
                "strong-snapshot-isolation",
                "update-serializable",
            ]
            .into_iter()
            .collect()
        );
        assert_eq!(
            friendly_set(&impossible_models(&["G-SI"])),
            [
                "snapshot-isolation",
                "serializable",
                "strict-serializable",
                "strong-session-serializable",
                "strong-session-snapshot-isolation",
                "strong-snapshot-isolation",
            ]
            .into_iter()
            .collect()
        );
        assert_eq!(
            friendly_set(&impossible_models(&["internal"])),
            [
                "causal-cerone",
                "parallel-snapshot-isolation",
                "prefix",
                "read-atomic",
                "update-atomic",
                "serializable",
                "snapshot-isolation",
                "strict-serializable",
                "strong-session-serializable",
                "strong-session-snapshot-isolation",
                "strong-snapshot-isolation",
            ]
            .into_iter()
            .collect()
        );
        assert_eq!(
            friendly_set(&impossible_models(&["dirty-update"])).len(),
            22
        );
    }

    #[test]
    fn boundaries_match_elle() {
        assert_eq!(boundary(&[]), (vec![], vec![]));
        let sorted = |mut v: Vec<&'static str>| {
            v.sort_unstable();
            v
        };
        let (not, also) = boundary(&["cyclic-versions"]);
        assert_eq!(not, vec!["read-uncommitted"]);
        assert_eq!(
            also,
            sorted(vec![
                "read-committed",
                "snapshot-isolation",
                "causal-cerone",
                "consistent-view",
                "cursor-stability",
                "forward-consistent-view",
                "monotonic-atomic-view",
                "monotonic-snapshot-read",
                "monotonic-view",
                "parallel-snapshot-isolation",
                "prefix",
                "read-atomic",
                "repeatable-read",
                "update-atomic",
                "serializable",
                "strong-read-committed",
                "strong-read-uncommitted",
                "strict-serializable",
                "strong-session-read-committed",
                "strong-session-read-uncommitted",
                "strong-session-serializable",
                "strong-session-snapshot-isolation",
                "strong-snapshot-isolation",
                "update-serializable",
            ])
        );
        assert_eq!(boundary(&["internal"]).0, vec!["read-atomic"]);
        let (not, also) = boundary(&["G1a"]);
        assert_eq!(not, vec!["read-committed"]);
        assert_eq!(
            also,
            sorted(vec![
                "read-atomic",
                "update-atomic",
                "causal-cerone",
                "consistent-view",
                "cursor-stability",
                "forward-consistent-view",
                "monotonic-atomic-view",
                "monotonic-snapshot-read",
                "monotonic-view",
                "parallel-snapshot-isolation",
                "prefix",
                "repeatable-read",
                "serializable",
                "snapshot-isolation",
                "strong-read-committed",
                "strong-snapshot-isolation",
                "strict-serializable",
                "strong-session-read-committed",
                "strong-session-serializable",
                "strong-session-snapshot-isolation",
                "update-serializable",
            ])
        );
        assert_eq!(boundary(&["G-single"]).0, vec!["consistent-view"]);
        assert_eq!(boundary(&["G2", "internal"]).0, vec!["read-atomic"]);
        assert_eq!(
            boundary(&["lost-update"]).0,
            vec!["cursor-stability", "update-atomic"]
        );
        assert_eq!(
            boundary(&["G-single-realtime"]),
            (
                vec!["strong-snapshot-isolation"],
                vec!["strict-serializable"]
            )
        );
        assert_eq!(
            boundary(&["G-single-item"]).0,
            vec!["consistent-view", "repeatable-read"]
        );
        assert_eq!(
            boundary(&["G-nonadjacent-item"]).0,
            vec!["repeatable-read", "snapshot-isolation"]
        );
    }

    #[test]
    fn anomalies_asked_for_include_everything_implying_them() {
        let p = prohibited(&[], &["G2"]);
        for a in [
            "G2",
            "G2-item",
            "G-single-item",
            "G-nonadjacent",
            "lost-update",
        ] {
            assert!(p.contains(a), "{a} in {p:?}");
        }
        assert!(!p.contains("G0") && !p.contains("G1c"), "{p:?}");
        assert_eq!(
            prohibited(&[], &["G0"]).into_iter().collect::<Vec<_>>(),
            vec!["G0"]
        );
    }

    #[test]
    fn single_object_models_proscribe_nothing() {
        for m in ["linearizable", "sequential", "causal", "PRAM", "1SR"] {
            assert!(prohibited_by_models(&[m]).is_empty(), "{m}");
        }
        assert!(implied_models(&["PL-SS"]).contains("linearizable"));
    }
}
