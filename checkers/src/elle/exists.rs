//! Which models' forbidden cycles exist: Elle's `cycle-exists` proofs.
//!
//! Finding a *shortest* cycle of a given shape can take many searches; knowing that
//! *some* cycle a model forbids exists takes one Tarjan pass over that model's
//! subgraph. Each [`Spec`] is Elle's subgraph for one model: a history satisfies the
//! model only if that subgraph is acyclic (Adya for PL-1/PL-2/PL-2.99/PL-3, Cerone and
//! Gotsman's characterisation for snapshot isolation, plus process or realtime edges for
//! the strong variants). Snapshot isolation's subgraph is an *extension*: `A ∪ A;B`,
//! steps through ww/wr edges that may each be followed by one rw edge, so every rw
//! edge of a cycle in it has a ww or wr edge right before it. We never build that
//! product graph: Tarjan runs over (transaction, "just took an A edge") pairs, where an
//! rw edge may only leave the second phase.
//!
//! A cycle in a spec's subgraph proves the model (and every stronger one) violated even
//! when no cycle of a named class could be shown in time; an acyclic subgraph proves
//! every cycle class the model proscribes absent, so those searches are skipped.

use super::consistency;
use super::cycle::{tarjan, Sets, CLASSES};
use super::graph::{kind_name, Graph, KINDS, PROCESS, REALTIME, RW, WR, WW};
use super::scc::Tarjan;
use std::collections::BTreeSet;

/// One model's cycle-existence subgraph: edges of kinds `a`, each optionally followed
/// by one edge of kinds `b` (`b == 0`: just the union of `a`).
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// The canonical model name.
    pub model: &'static str,
    /// `{model}-cycle-exists`.
    pub exists: &'static str,
    /// `{model}-cycle-forced`: the exact version-order search's anomaly.
    pub forced: &'static str,
    pub a: u8,
    pub b: u8,
}

const fn spec(
    model: &'static str,
    exists: &'static str,
    forced: &'static str,
    a: u8,
    b: u8,
) -> Spec {
    Spec {
        model,
        exists,
        forced,
        a,
        b,
    }
}

/// Elle's `cycle-exists-specs`, in Elle's order (weakest first within each family).
pub const SPECS: [Spec; 13] = [
    spec("PL-1", "PL-1-cycle-exists", "PL-1-cycle-forced", WW, 0),
    spec("PL-2", "PL-2-cycle-exists", "PL-2-cycle-forced", WW | WR, 0),
    spec(
        "PL-SI",
        "PL-SI-cycle-exists",
        "PL-SI-cycle-forced",
        WW | WR,
        RW,
    ),
    spec(
        "PL-2.99",
        "PL-2.99-cycle-exists",
        "PL-2.99-cycle-forced",
        WW | WR | RW,
        0,
    ),
    spec(
        "PL-3",
        "PL-3-cycle-exists",
        "PL-3-cycle-forced",
        WW | WR | RW,
        0,
    ),
    spec(
        "strong-session-PL-1",
        "strong-session-PL-1-cycle-exists",
        "strong-session-PL-1-cycle-forced",
        WW | PROCESS,
        0,
    ),
    spec(
        "strong-session-PL-2",
        "strong-session-PL-2-cycle-exists",
        "strong-session-PL-2-cycle-forced",
        WW | WR | PROCESS,
        0,
    ),
    spec(
        "strong-session-snapshot-isolation",
        "strong-session-snapshot-isolation-cycle-exists",
        "strong-session-snapshot-isolation-cycle-forced",
        WW | WR | PROCESS,
        RW,
    ),
    spec(
        "strong-session-serializable",
        "strong-session-serializable-cycle-exists",
        "strong-session-serializable-cycle-forced",
        WW | WR | RW | PROCESS,
        0,
    ),
    spec(
        "strong-PL-1",
        "strong-PL-1-cycle-exists",
        "strong-PL-1-cycle-forced",
        WW | REALTIME,
        0,
    ),
    spec(
        "strong-PL-2",
        "strong-PL-2-cycle-exists",
        "strong-PL-2-cycle-forced",
        WW | WR | REALTIME,
        0,
    ),
    spec(
        "strong-snapshot-isolation",
        "strong-snapshot-isolation-cycle-exists",
        "strong-snapshot-isolation-cycle-forced",
        WW | WR | REALTIME,
        RW,
    ),
    spec(
        "PL-SS",
        "PL-SS-cycle-exists",
        "PL-SS-cycle-forced",
        WW | WR | RW | REALTIME,
        0,
    ),
];

impl Spec {
    /// The subgraph as Elle prints it: `ww, wr` or `ww, wr; then rw` for extensions.
    pub fn subgraph_text(&self) -> String {
        let names = |mask: u8| {
            KINDS
                .iter()
                .filter(|&&k| mask & k != 0)
                .map(|&k| kind_name(k))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if self.b == 0 {
            names(self.a)
        } else {
            format!(
                "{}, each maybe followed by {}",
                names(self.a),
                names(self.b)
            )
        }
    }

    /// Whether a cycle in `other`'s subgraph always is one in this spec's too (so an
    /// acyclic graph for this spec is acyclic for `other`).
    pub fn covers(&self, other: &Spec) -> bool {
        let mine = self.a | self.b;
        match (self.b, other.b) {
            // A union covers a union of fewer kinds and any extension within it.
            (0, _) => (other.a | other.b) & !mine == 0,
            // An extension covers unions and extensions of fewer first-step kinds.
            (b, 0) => other.a & !self.a == 0 && b != 0,
            (b, ob) => other.a & !self.a == 0 && ob & !b == 0,
        }
    }
}

/// In one component: the smallest strongly connected part of `spec`'s subgraph.
#[derive(Clone, Debug)]
pub struct ExistsCase {
    /// Index into [`SPECS`].
    pub spec: usize,
    /// Its transactions, sorted.
    pub txns: Vec<u32>,
}

impl ExistsCase {
    pub fn spec(&self) -> &'static Spec {
        &SPECS[self.spec]
    }
}

/// The weakest specs with a cycle inside component `scc` (Elle's `cycle-exists-cases`:
/// once a model's cycle exists, stronger models' are not looked for).
pub(super) fn cases_in(g: &Graph, scc: &[u32], sets: &mut Sets) -> Vec<ExistsCase> {
    let mut cases = Vec::new();
    let mut redundant: BTreeSet<&'static str> = BTreeSet::new();
    for (i, spec) in SPECS.iter().enumerate() {
        if redundant.contains(spec.model) {
            continue;
        }
        let comps = components(g, scc, spec.a, spec.b, sets);
        if let Some(smallest) = comps.into_iter().min_by_key(Vec::len) {
            cases.push(ExistsCase {
                spec: i,
                txns: smallest,
            });
            redundant.extend(consistency::impossible_closure(&[spec.model]));
        }
    }
    cases
}

/// The cycle classes that cannot occur in a component given its complete existence
/// cases: those proscribed by a model whose subgraph there is acyclic (Elle's
/// `cycle-exists-cases->impossible-cycle-anomalies`).
pub(super) fn impossible_classes(cases: &[ExistsCase]) -> BTreeSet<&'static str> {
    let violated: Vec<&'static str> = cases.iter().map(|c| c.spec().model).collect();
    let impossible = consistency::impossible_closure(&violated);
    let possible: Vec<&'static str> = SPECS
        .iter()
        .map(|s| s.model)
        .filter(|m| !impossible.contains(m))
        .collect();
    let prohibited = consistency::prohibited_by_models(&possible);
    CLASSES
        .iter()
        .map(|c| c.name)
        .filter(|n| prohibited.contains(n))
        .collect()
}

/// Nontrivial strongly connected components (as sorted transaction lists) of the
/// subgraph "edges of kinds `a`, each maybe followed by one of kinds `b`" induced by
/// `nodes`.
pub(super) fn components(g: &Graph, nodes: &[u32], a: u8, b: u8, sets: &mut Sets) -> Vec<Vec<u32>> {
    if b == 0 {
        let mut out = tarjan(g, nodes, a, sets);
        for c in &mut out {
            c.sort_unstable();
        }
        return out;
    }
    phased_tarjan(g, nodes, a, b, sets)
}

/// Tarjan over (node, phase) pairs: phase 1 = "arrived by an `a` edge". `a` edges lead
/// to phase 1, `b` edges leave only phase 1 and lead to phase 0.
fn phased_tarjan(g: &Graph, nodes: &[u32], a: u8, b: u8, sets: &mut Sets) -> Vec<Vec<u32>> {
    sets.enter(nodes);
    let mut out = Vec::new();
    Tarjan::default().run(
        nodes.len() * 2,
        |x, cursor| {
            let (v, phase) = (x / 2, x % 2);
            let (targets, kinds) = g.row(nodes[v]);
            // The cursor counts 2 per row entry: its `a` step, then its `b` step.
            while (*cursor as usize) < targets.len() * 2 {
                let i = *cursor as usize / 2;
                let second = *cursor % 2 == 1;
                *cursor += 1;
                let Some(w) = sets.local_of(targets[i]) else {
                    continue;
                };
                if !second && kinds[i] & a != 0 {
                    return Some(w * 2 + 1);
                }
                if second && phase == 1 && kinds[i] & b != 0 {
                    return Some(w * 2);
                }
            }
            None
        },
        |comp| {
            let mut txns: Vec<u32> = comp.iter().map(|&y| nodes[y as usize / 2]).collect();
            txns.sort_unstable();
            txns.dedup();
            out.push(txns);
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elle::graph::EdgeList;

    fn graph(n: usize, edges: &[(u32, u32, u8)]) -> Graph {
        let mut e = EdgeList::default();
        for &(x, y, k) in edges {
            e.add(x, y, k);
        }
        Graph::build(n, e)
    }

    fn names(g: &Graph) -> Vec<&'static str> {
        let all: Vec<u32> = (0..g.node_count() as u32).collect();
        let mut sets = Sets::new(g.node_count());
        cases_in(g, &all, &mut sets)
            .iter()
            .map(|c| c.spec().exists)
            .collect()
    }

    #[test]
    fn each_model_family_reports_its_weakest_violated_model() {
        // A ww cycle: read uncommitted already fails, nothing stronger is reported.
        assert_eq!(
            names(&graph(2, &[(0, 1, WW), (1, 0, WW)])),
            vec!["PL-1-cycle-exists"]
        );
        assert_eq!(
            names(&graph(2, &[(0, 1, WW), (1, 0, WR)])),
            vec!["PL-2-cycle-exists"]
        );
        // One rw edge after a wr edge: snapshot isolation's extension has the cycle, and
        // so does repeatable read's (neither implies the other: both are weakest).
        assert_eq!(
            names(&graph(2, &[(0, 1, RW), (1, 0, WR)])),
            vec!["PL-SI-cycle-exists", "PL-2.99-cycle-exists"]
        );
        // Two adjacent rw edges: allowed by snapshot isolation, not by repeatable read.
        assert_eq!(
            names(&graph(2, &[(0, 1, RW), (1, 0, RW)])),
            vec!["PL-2.99-cycle-exists"]
        );
        // A stale read: only the realtime subgraphs have it.
        assert_eq!(
            names(&graph(2, &[(0, 1, RW), (1, 0, REALTIME)])),
            vec!["strong-snapshot-isolation-cycle-exists"]
        );
        assert_eq!(
            names(&graph(3, &[(0, 1, RW), (1, 2, RW), (2, 0, REALTIME)])),
            vec!["PL-SS-cycle-exists"]
        );
        assert!(names(&graph(3, &[(0, 1, RW), (1, 2, WR)])).is_empty());
    }

    #[test]
    fn extension_needs_a_first_step_before_every_rw_edge() {
        // rw, rw, wr: the two rw edges are adjacent, so no snapshot-isolation cycle.
        let g = graph(3, &[(0, 1, RW), (1, 2, RW), (2, 0, WR)]);
        let all = [0, 1, 2];
        let mut sets = Sets::new(3);
        assert!(components(&g, &all, WW | WR, RW, &mut sets).is_empty());
        // rw, wr, rw, wr: non-adjacent, so there is one.
        let g = graph(4, &[(0, 1, RW), (1, 2, WR), (2, 3, RW), (3, 0, WR)]);
        let comps = components(&g, &[0, 1, 2, 3], WW | WR, RW, &mut Sets::new(4));
        assert_eq!(comps, vec![vec![0, 1, 2, 3]]);
    }

    #[test]
    fn acyclic_specs_rule_out_the_classes_their_models_proscribe() {
        // Only a G2-item cycle: snapshot isolation's subgraph is acyclic, so G-single
        // and G-nonadjacent cannot exist; G2-item can.
        let g = graph(2, &[(0, 1, RW), (1, 0, RW)]);
        let mut sets = Sets::new(2);
        let cases = cases_in(&g, &[0, 1], &mut sets);
        let imp = impossible_classes(&cases);
        assert!(
            imp.contains("G-single-item") && imp.contains("G-nonadjacent-item"),
            "{imp:?}"
        );
        assert!(imp.contains("G0") && imp.contains("G1c"));
        assert!(!imp.contains("G2-item"), "{imp:?}");
    }

    #[test]
    fn coverage_between_specs() {
        let by = |m: &str| SPECS.iter().find(|s| s.model == m).unwrap();
        assert!(by("PL-3").covers(by("PL-SI")));
        assert!(by("PL-SI").covers(by("PL-2")));
        assert!(!by("PL-SI").covers(by("PL-3")));
        assert!(by("PL-SS").covers(by("PL-3")));
        assert!(by("strong-snapshot-isolation").covers(by("PL-SI")));
        assert!(!by("PL-3").covers(by("PL-SS")));
    }
}
