//! Network partitions as grudges: for each node, the peers whose packets it drops.
//!
//! Shapes (Jepsen's names): `halves` (two random halves), `isolate-one` (one random node
//! alone), `isolate-leader` (the target's primaries alone, asked when the op runs),
//! `majorities-ring` (every node sees a majority, no two the same majority) and `bridge`
//! (two halves that only one node sees both of). A grudge is applied with DROP rules in
//! our own iptables chain on each node (see `iptables.rs`); healing deletes that chain.
//!
//! Ops: `start-partition` `{"shape": s, "grudge": {node: [peers it drops]}}` (the grudge is
//! drawn by `next_op`, except for `isolate-leader`; a hand-written op may give only the
//! shape) and `stop-partition` (value ignored).

use crate::error::NemesisError;
use crate::iptables::{self, ChainOnNodes, Rule};
use crate::nemesis::{FaultOp, NemesisContext};
use crate::preflight;
use crate::start_stop::{StartStop, Toggle};
use crate::targeting::Reach;
use crate::value;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

pub const START: &str = "start-partition";
pub const STOP: &str = "stop-partition";

/// For each node, the peers it drops traffic from. Nodes that drop nothing are absent.
pub type Grudge = BTreeMap<String, BTreeSet<String>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Halves,
    IsolateOne,
    IsolateLeader,
    MajoritiesRing,
    Bridge,
}

impl Shape {
    pub const EVERY: [Shape; 5] = [
        Shape::Halves,
        Shape::IsolateOne,
        Shape::IsolateLeader,
        Shape::MajoritiesRing,
        Shape::Bridge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Halves => "halves",
            Shape::IsolateOne => "isolate-one",
            Shape::IsolateLeader => "isolate-leader",
            Shape::MajoritiesRing => "majorities-ring",
            Shape::Bridge => "bridge",
        }
    }

    pub fn parse(s: &str) -> Option<Shape> {
        Shape::EVERY.into_iter().find(|shape| shape.as_str() == s)
    }

    /// The fewest nodes for which the shape cuts anything.
    pub fn min_nodes(self) -> usize {
        match self {
            Shape::Halves | Shape::IsolateOne | Shape::IsolateLeader => 2,
            Shape::MajoritiesRing | Shape::Bridge => 3,
        }
    }
}

/// Every node drops every node outside its own component.
pub fn complete(components: &[Vec<String>]) -> Grudge {
    let mut grudge = Grudge::new();
    for (i, component) in components.iter().enumerate() {
        let others: BTreeSet<String> = components
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .flat_map(|(_, c)| c.iter().cloned())
            .collect();
        if others.is_empty() {
            continue;
        }
        for node in component {
            grudge.insert(node.clone(), others.clone());
        }
    }
    grudge
}

/// `isolated` on one side, everyone else on the other.
pub fn isolate(names: &[String], isolated: &[String]) -> Grudge {
    let rest: Vec<String> = names
        .iter()
        .filter(|n| !isolated.contains(n))
        .cloned()
        .collect();
    complete(&[isolated.to_vec(), rest])
}

/// Two random halves; the first has `n/2` nodes, the second the rest.
pub fn halves(names: &[String], rng: &mut StdRng) -> Grudge {
    let mut order = names.to_vec();
    order.shuffle(rng);
    let second = order.split_off(order.len() / 2);
    complete(&[order, second])
}

/// Every node sees (does not drop) a majority including itself, and no two nodes see the
/// same set. Nodes sit on a random ring; each sees the `k` nearest on both sides, which
/// keeps the grudge symmetric. Where such a window would cover everyone (3 nodes), each
/// node sees itself and its next `majority - 1` successors instead, which is asymmetric.
pub fn majorities_ring(names: &[String], rng: &mut StdRng) -> Result<Grudge, NemesisError> {
    let n = names.len();
    require(Shape::MajoritiesRing, n)?;
    let majority = n / 2 + 1;
    let mut order = names.to_vec();
    order.shuffle(rng);
    let k = majority / 2;
    let window: Vec<isize> = if 2 * k + 1 < n {
        (-(k as isize)..=k as isize).collect()
    } else {
        (0..majority as isize).collect()
    };
    let all: BTreeSet<String> = order.iter().cloned().collect();
    let mut grudge = Grudge::new();
    for i in 0..n {
        let sees: BTreeSet<String> = window
            .iter()
            .map(|offset| order[(i as isize + offset).rem_euclid(n as isize) as usize].clone())
            .collect();
        grudge.insert(order[i].clone(), all.difference(&sees).cloned().collect());
    }
    Ok(grudge)
}

/// Two halves that drop each other, joined by one random node both sides still see.
pub fn bridge(names: &[String], rng: &mut StdRng) -> Result<Grudge, NemesisError> {
    require(Shape::Bridge, names.len())?;
    let mut order = names.to_vec();
    order.shuffle(rng);
    let mut sides = order.split_off(1);
    let right = sides.split_off(sides.len() / 2);
    Ok(complete(&[sides, right]))
}

fn require(shape: Shape, have: usize) -> Result<(), NemesisError> {
    if have < shape.min_nodes() {
        return Err(NemesisError::NotEnoughNodes {
            what: format!("partition {}", shape.as_str()),
            needed: shape.min_nodes(),
            have,
        });
    }
    Ok(())
}

pub fn grudge_to_json(grudge: &Grudge) -> Value {
    let map: Map<String, Value> = grudge
        .iter()
        .map(|(node, peers)| (node.clone(), json!(peers)))
        .collect();
    Value::Object(map)
}

fn grudge_from_json(f: &str, v: &Value) -> Result<Grudge, NemesisError> {
    let map = v.as_object().ok_or_else(|| {
        NemesisError::bad_value(f, "`grudge` must map node names to lists of peers")
    })?;
    map.iter()
        .map(|(node, peers)| {
            let peers = value::names_of(f, "grudge", peers)?;
            Ok((node.clone(), peers.into_iter().collect()))
        })
        .collect()
}

/// The partition nemesis.
pub type Partition = Toggle<PartitionFault>;

/// A partition's state: the chain it installed and the shape in effect.
pub struct PartitionFault {
    /// The nodes, the target and this fault's random stream.
    reach: Reach,
    /// Where our chain may be: exactly what heal must remove.
    chain: ChainOnNodes,
    /// The shape started last (`custom` for a hand-written grudge without one); in effect
    /// while the chain is in place.
    current: Option<String>,
}

impl PartitionFault {
    fn feasible_shapes(&self) -> Vec<Shape> {
        Shape::EVERY
            .into_iter()
            .filter(|s| s.min_nodes() <= self.reach.cluster.len())
            .filter(|s| *s != Shape::IsolateLeader || self.reach.target.has_primaries())
            .collect()
    }

    /// The grudge for `shape`, drawn now; `isolate-leader` asks the target.
    fn draw_grudge(&mut self, shape: Shape) -> Result<Grudge, NemesisError> {
        let names = self.reach.cluster.names();
        require(shape, names.len())?;
        match shape {
            Shape::Halves => Ok(halves(&names, &mut self.reach.rng)),
            Shape::IsolateOne => {
                let one = names[self.reach.rng.gen_range(0..names.len())].clone();
                Ok(isolate(&names, &[one]))
            }
            Shape::IsolateLeader => {
                let primaries: Vec<String> = self
                    .reach
                    .target
                    .primaries()
                    .into_iter()
                    .filter(|p| names.contains(p))
                    .collect();
                if primaries.is_empty() {
                    return Err(NemesisError::NoPrimaries {
                        f: START.to_string(),
                    });
                }
                Ok(isolate(&names, &primaries))
            }
            Shape::MajoritiesRing => majorities_ring(&names, &mut self.reach.rng),
            Shape::Bridge => bridge(&names, &mut self.reach.rng),
        }
    }
}

impl StartStop for PartitionFault {
    const NAME: &'static str = "partition";
    const START: &'static str = START;
    const STOP: &'static str = STOP;

    fn new(ctx: &NemesisContext) -> PartitionFault {
        PartitionFault {
            reach: Reach::new(ctx, Self::NAME),
            chain: ChainOnNodes::new(iptables::PARTITION),
            current: None,
        }
    }

    fn draw_start(&mut self) -> Value {
        let shapes = self.feasible_shapes();
        if shapes.is_empty() {
            // One node cannot be partitioned; invoking this reports that clearly.
            return json!({"shape": Shape::Halves.as_str()});
        }
        let shape = shapes[self.reach.rng.gen_range(0..shapes.len())];
        if shape == Shape::IsolateLeader {
            return json!({"shape": shape.as_str()});
        }
        let grudge = self
            .draw_grudge(shape)
            .expect("feasible shapes other than isolate-leader always draw a grudge");
        json!({"shape": shape.as_str(), "grudge": grudge_to_json(&grudge)})
    }

    fn start(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        let given = op.value.get("grudge").filter(|g| !g.is_null());
        let shape_name = match value::opt_str(op, "shape")? {
            Some(name) => name,
            None if given.is_some() => "custom",
            None => Shape::Halves.as_str(),
        };
        let grudge = match (given, Shape::parse(shape_name)) {
            (Some(g), _) => grudge_from_json(START, g)?,
            (None, Some(shape)) => self.draw_grudge(shape)?,
            (None, None) => {
                return Err(NemesisError::bad_value(
                    START,
                    format!("`shape` is `{shape_name}`, not one of halves, isolate-one, isolate-leader, majorities-ring, bridge, and no `grudge` is given"),
                ))
            }
        };
        for (node, peers) in &grudge {
            self.reach
                .cluster
                .check_names(START, std::slice::from_ref(node))?;
            self.reach
                .cluster
                .check_names(START, &peers.iter().cloned().collect::<Vec<_>>())?;
            if peers.contains(node) {
                return Err(NemesisError::bad_value(
                    START,
                    format!("`grudge` has {node} drop itself"),
                ));
            }
        }
        if grudge.values().all(BTreeSet::is_empty) {
            // E.g. isolate-leader when the target calls every node a primary: recording
            // a partition that cut nothing would mislead whoever reads the history.
            return Err(NemesisError::bad_value(
                START,
                format!("the `{shape_name}` grudge cuts no link between nodes"),
            ));
        }
        // A new partition replaces the old one rather than stacking on it.
        self.stop(op)?;
        let mut plans = BTreeMap::new();
        for (node, peers) in &grudge {
            let rules: Vec<Rule> = peers
                .iter()
                .map(|peer| -> Result<Rule, NemesisError> {
                    Ok(Rule::drop_from(
                        self.reach.cluster.node(START, peer)?.address(),
                        "",
                    ))
                })
                .collect::<Result<_, _>>()?;
            plans.insert(node.clone(), rules);
        }
        self.current = None;
        if let Err(e) = self.chain.install(&self.reach.cluster, START, &plans) {
            // A partition half in place is not the one asked for: undo it everywhere (what
            // cannot be undone now stays on the books for heal).
            if let Err(undo) = self.stop(op) {
                tracing::warn!("undoing a failed start-partition failed (heal retries it): {undo}");
            }
            return Err(e);
        }
        self.current = Some(shape_name.to_string());
        Ok(json!({"shape": shape_name, "grudge": grudge_to_json(&grudge)}))
    }

    fn stop(&mut self, _op: &FaultOp) -> Result<Value, NemesisError> {
        Ok(json!({"healed": self.chain.remove_all(&self.reach.cluster, STOP)?}))
    }

    fn in_place(&self) -> bool {
        !self.chain.is_empty()
    }

    /// What was started last (and succeeded), while any of its chain may still be in
    /// place.
    fn describe(&self) -> Vec<String> {
        self.current
            .iter()
            .filter(|_| self.in_place())
            .map(|shape| format!("partition {shape}"))
            .collect()
    }

    /// iptables on every node takes a DROP rule in a chain of ours.
    fn preflight(&self) -> Result<(), NemesisError> {
        let cluster = &self.reach.cluster;
        preflight::require_nodes(Self::NAME, cluster, 2)?;
        preflight::check_nodes(Self::NAME, cluster, |node| {
            iptables::FILTER_PROBE.probe(node, cluster, "", "DROP")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{self, failed, FakeNode};
    use crate::nemesis::Nemesis;
    use crate::node::ExecOutput;
    use rand::SeedableRng;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    /// The nodes `node` still receives from, itself included.
    fn sees(grudge: &Grudge, all: &[String], node: &str) -> BTreeSet<String> {
        let dropped = grudge.get(node).cloned().unwrap_or_default();
        all.iter()
            .filter(|n| !dropped.contains(*n))
            .cloned()
            .collect()
    }

    fn ctx(nodes: &[Arc<FakeNode>], target: &Arc<fake::FakeTarget>) -> NemesisContext {
        NemesisContext {
            nodes: fake::shells(nodes),
            target: target.clone(),
            seed: 42,
        }
    }

    #[test]
    fn halves_cut_every_link_between_the_two_sides_and_none_within() {
        let all = names(5);
        let grudge = halves(&all, &mut StdRng::seed_from_u64(1));
        let small: Vec<&String> = all
            .iter()
            .filter(|n| sees(&grudge, &all, n).len() == 2)
            .collect();
        assert_eq!(small.len(), 2, "{grudge:?}");
        for a in &all {
            for b in &all {
                let same_side = small.contains(&a) == small.contains(&b);
                assert_eq!(
                    grudge.get(a).is_some_and(|g| g.contains(b)),
                    !same_side,
                    "{a} {b}"
                );
            }
        }
    }

    #[test]
    fn majorities_ring_gives_every_node_a_different_majority() {
        for n in 3..=9 {
            let all = names(n);
            for seed in 0..20 {
                let grudge = majorities_ring(&all, &mut StdRng::seed_from_u64(seed)).unwrap();
                let views: Vec<BTreeSet<String>> =
                    all.iter().map(|node| sees(&grudge, &all, node)).collect();
                for (node, view) in all.iter().zip(&views) {
                    assert!(view.len() > n / 2, "n={n} {node} sees only {view:?}");
                    assert!(view.len() < n, "n={n} {node} sees everyone");
                    assert!(view.contains(node));
                }
                let distinct: BTreeSet<&BTreeSet<String>> = views.iter().collect();
                assert_eq!(distinct.len(), n, "n={n}: two nodes see the same majority");
            }
        }
    }

    #[test]
    fn majorities_ring_is_symmetric_from_four_nodes_on() {
        for n in 4..=9 {
            let grudge = majorities_ring(&names(n), &mut StdRng::seed_from_u64(3)).unwrap();
            for (a, peers) in &grudge {
                for b in peers {
                    assert!(grudge[b].contains(a), "n={n}: {a} drops {b} but not back");
                }
            }
        }
    }

    #[test]
    fn bridge_node_sees_both_sides_which_cannot_see_each_other() {
        for n in 3..=8 {
            let all = names(n);
            let grudge = bridge(&all, &mut StdRng::seed_from_u64(n as u64)).unwrap();
            let bridges: Vec<&String> = all
                .iter()
                .filter(|node| !grudge.contains_key(*node))
                .collect();
            assert_eq!(bridges.len(), 1, "n={n} {grudge:?}");
            assert!(grudge.values().all(|peers| !peers.contains(bridges[0])));
            assert!(grudge.values().all(|peers| !peers.is_empty()));
            assert_eq!(grudge.len(), n - 1);
        }
    }

    #[test]
    fn shapes_refuse_clusters_too_small_for_them() {
        let mut rng = StdRng::seed_from_u64(0);
        assert!(matches!(
            majorities_ring(&names(2), &mut rng),
            Err(NemesisError::NotEnoughNodes {
                needed: 3,
                have: 2,
                ..
            })
        ));
        assert!(bridge(&names(2), &mut rng).is_err());
    }

    #[test]
    fn leaderless_targets_never_get_leader_faults_drawn() {
        let (nodes, _) = fake::cluster(5);
        let target = Arc::new(fake::FakeTarget {
            leaderless: true,
            ..Default::default()
        });
        let names = vec!["all".to_string()];
        let mut nemesis = crate::build(&names, ctx(&nodes, &target)).unwrap();
        for _ in 0..400 {
            let op = nemesis.next_op();
            let text = op.value.to_string();
            assert!(
                !text.contains("isolate-leader") && !text.contains("primaries"),
                "{} {text}",
                op.f
            );
        }
    }

    #[test]
    fn isolate_leader_cuts_off_the_primary_the_target_reports() {
        let (nodes, target) = fake::cluster(3);
        *target.primaries.lock().unwrap() = vec!["n3".to_string()];
        let mut nemesis = Partition::new(&ctx(&nodes, &target));
        let done = nemesis
            .invoke(&FaultOp::new(START, json!({"shape": "isolate-leader"})))
            .unwrap();
        assert_eq!(
            done["grudge"],
            json!({"n1": ["n3"], "n2": ["n3"], "n3": ["n1", "n2"]})
        );
        let n3 = nodes[2].commands().join("\n");
        assert!(
            n3.contains("-A DISTEST-PARTITION -s 10.0.0.1 -m comment --comment distest -j DROP"),
            "{n3}"
        );
        assert!(n3.contains("-s 10.0.0.2 "), "{n3}");
        assert_eq!(nemesis.active(), vec!["partition isolate-leader"]);
    }

    #[test]
    fn a_grudge_that_cuts_nothing_is_refused() {
        let (nodes, target) = fake::cluster(3);
        *target.primaries.lock().unwrap() = vec!["n1".into(), "n2".into(), "n3".into()];
        let mut nemesis = Partition::new(&ctx(&nodes, &target));
        for value in [json!({"shape": "isolate-leader"}), json!({"grudge": {}})] {
            let err = nemesis.invoke(&FaultOp::new(START, value)).unwrap_err();
            assert!(err.to_string().contains("cuts no link"), "{err}");
        }
        assert!(nodes.iter().all(|n| n.commands().is_empty()));
    }

    #[test]
    fn isolate_leader_without_a_primary_fails_and_touches_nothing() {
        let (nodes, target) = fake::cluster(3);
        let mut nemesis = Partition::new(&ctx(&nodes, &target));
        let err = nemesis
            .invoke(&FaultOp::new(START, json!({"shape": "isolate-leader"})))
            .unwrap_err();
        assert!(matches!(err, NemesisError::NoPrimaries { .. }));
        assert!(nodes.iter().all(|n| n.commands().is_empty()));
        assert!(nemesis.heal().is_empty());
    }

    #[test]
    fn heal_removes_exactly_our_chain_and_a_second_heal_does_nothing() {
        let (nodes, target) = fake::cluster(5);
        let mut nemesis = Partition::new(&ctx(&nodes, &target));
        let op = FaultOp::new(
            START,
            json!({"shape": "halves", "grudge": {"n1": ["n2"], "n2": ["n1"]}}),
        );
        nemesis.invoke(&op).unwrap();
        let healed = nemesis.heal();
        assert_eq!(healed.len(), 1);
        assert_eq!(healed[0].0.f, STOP);
        assert_eq!(healed[0].1.as_ref().unwrap()["healed"], json!(["n1", "n2"]));
        for node in &nodes[..2] {
            let last = node.commands().last().cloned().unwrap();
            assert_eq!(
                last,
                iptables::PARTITION.remove_command(iptables::Family::V4)
            );
        }
        // Nodes the grudge did not involve were never touched.
        assert!(nodes[2..].iter().all(|n| n.commands().is_empty()));
        let before: usize = nodes.iter().map(|n| n.commands().len()).sum();
        assert!(nemesis.heal().is_empty());
        assert!(nemesis.active().is_empty());
        assert_eq!(
            nodes.iter().map(|n| n.commands().len()).sum::<usize>(),
            before
        );
    }

    #[test]
    fn a_failed_heal_stays_on_the_books_and_the_next_heal_retries_it() {
        let broken = Arc::new(AtomicBool::new(true));
        let flag = broken.clone();
        let n2 = Arc::new(FakeNode::with(2, move |cmd| {
            if cmd.contains("-X DISTEST") && flag.load(Ordering::SeqCst) {
                failed("iptables: Resource temporarily unavailable.")
            } else {
                ExecOutput::default()
            }
        }));
        let nodes = vec![Arc::new(FakeNode::ok(1)), n2];
        let target = Arc::new(fake::FakeTarget::default());
        let mut nemesis = Partition::new(&ctx(&nodes, &target));
        nemesis
            .invoke(&FaultOp::new(START, json!({"shape": "isolate-one"})))
            .unwrap();
        let first = nemesis.heal();
        let err = first[0].1.as_ref().unwrap_err().to_string();
        assert!(
            err.starts_with("`stop-partition` failed on 1 of 2 node(s): n2: "),
            "{err}"
        );
        assert!(!nemesis.active().is_empty());
        broken.store(false, Ordering::SeqCst);
        let second = nemesis.heal();
        assert_eq!(second[0].1.as_ref().unwrap()["healed"], json!(["n2"]));
        assert!(nemesis.heal().is_empty());
    }

    #[test]
    fn a_new_partition_replaces_the_old_one() {
        let (nodes, target) = fake::cluster(3);
        let mut nemesis = Partition::new(&ctx(&nodes, &target));
        nemesis
            .invoke(&FaultOp::new(
                START,
                json!({"grudge": {"n1": ["n2"], "n2": ["n1"]}}),
            ))
            .unwrap();
        nemesis
            .invoke(&FaultOp::new(
                START,
                json!({"grudge": {"n3": ["n2"], "n2": ["n3"]}}),
            ))
            .unwrap();
        let n1 = nodes[0].commands();
        assert_eq!(
            n1.last().unwrap(),
            &iptables::PARTITION.remove_command(iptables::Family::V4)
        );
        assert_eq!(nemesis.active(), vec!["partition custom"]);
        let healed = nemesis.heal();
        assert_eq!(healed[0].1.as_ref().unwrap()["healed"], json!(["n2", "n3"]));
    }

    #[test]
    fn hand_written_ops_with_bad_values_are_refused() {
        let (nodes, target) = fake::cluster(3);
        let mut nemesis = Partition::new(&ctx(&nodes, &target));
        for value in [
            json!({"shape": "triangle"}),
            json!({"shape": 3}),
            json!({"grudge": {"n1": ["n9"]}}),
            json!({"grudge": {"n1": ["n1"]}}),
            json!({"grudge": ["n1"]}),
        ] {
            let err = nemesis
                .invoke(&FaultOp::new(START, value.clone()))
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    NemesisError::BadValue { .. } | NemesisError::UnknownNode { .. }
                ),
                "{value}: {err}"
            );
        }
        assert!(nodes.iter().all(|n| n.commands().is_empty()));
        assert!(matches!(
            nemesis.invoke(&FaultOp::new("kill", Value::Null)),
            Err(NemesisError::UnknownOp { .. })
        ));
    }

    #[test]
    fn schedule_alternates_start_and_stop_and_draws_feasible_grudges() {
        let (nodes, target) = fake::cluster(5);
        let mut nemesis = Partition::new(&ctx(&nodes, &target));
        for i in 0..40 {
            let op = nemesis.next_op();
            if i % 2 == 0 {
                assert_eq!(op.f, START);
                let shape = Shape::parse(op.value["shape"].as_str().unwrap()).unwrap();
                assert_eq!(
                    op.value.get("grudge").is_some(),
                    shape != Shape::IsolateLeader
                );
            } else {
                assert_eq!(op.f, STOP);
            }
        }
    }
}
