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

use crate::cluster::Cluster;
use crate::error::NemesisError;
use crate::iptables::{self, ChainOnNodes, DropRule};
use crate::nemesis::{FaultOp, HealLog, Nemesis, NemesisContext};
use crate::node::TargetControl;
use crate::schedule::{rng_for, FlipFlop};
use crate::value;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

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
    let rest: Vec<String> = names.iter().filter(|n| !isolated.contains(n)).cloned().collect();
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
    let map = v
        .as_object()
        .ok_or_else(|| NemesisError::bad_value(f, "`grudge` must map node names to lists of peers"))?;
    map.iter()
        .map(|(node, peers)| {
            let peers = value::names_of(f, "grudge", peers)?;
            Ok((node.clone(), peers.into_iter().collect()))
        })
        .collect()
}

/// The partition nemesis.
pub struct Partition {
    cluster: Cluster,
    target: Arc<dyn TargetControl>,
    rng: StdRng,
    flip: FlipFlop,
    /// Where our chain may be: exactly what heal must remove.
    chain: ChainOnNodes,
    current: Option<Shape>,
}

impl Partition {
    pub fn new(ctx: &NemesisContext) -> Partition {
        Partition {
            cluster: Cluster::new(ctx.nodes.clone()),
            target: ctx.target.clone(),
            rng: rng_for(ctx.seed, "partition"),
            flip: FlipFlop::default(),
            chain: ChainOnNodes::new(iptables::PARTITION),
            current: None,
        }
    }

    fn feasible_shapes(&self) -> Vec<Shape> {
        Shape::EVERY
            .into_iter()
            .filter(|s| s.min_nodes() <= self.cluster.len())
            .collect()
    }

    /// The grudge for `shape`, drawn now; `isolate-leader` asks the target.
    fn draw_grudge(&mut self, shape: Shape) -> Result<Grudge, NemesisError> {
        let names = self.cluster.names();
        require(shape, names.len())?;
        match shape {
            Shape::Halves => Ok(halves(&names, &mut self.rng)),
            Shape::IsolateOne => {
                let one = names[self.rng.gen_range(0..names.len())].clone();
                Ok(isolate(&names, &[one]))
            }
            Shape::IsolateLeader => {
                let primaries: Vec<String> = self
                    .target
                    .primaries()
                    .into_iter()
                    .filter(|p| names.contains(p))
                    .collect();
                if primaries.is_empty() {
                    return Err(NemesisError::NoPrimaries { f: START.to_string() });
                }
                Ok(isolate(&names, &primaries))
            }
            Shape::MajoritiesRing => majorities_ring(&names, &mut self.rng),
            Shape::Bridge => bridge(&names, &mut self.rng),
        }
    }

    fn start(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        let shape_name = value::opt_str(op, "shape")?.unwrap_or("halves");
        let shape = Shape::parse(shape_name).ok_or_else(|| {
            NemesisError::bad_value(
                START,
                format!("`shape` is `{shape_name}`, not one of halves, isolate-one, isolate-leader, majorities-ring, bridge"),
            )
        })?;
        let grudge = match op.value.get("grudge").filter(|g| !g.is_null()) {
            Some(g) => grudge_from_json(START, g)?,
            None => self.draw_grudge(shape)?,
        };
        for (node, peers) in &grudge {
            self.cluster.check_names(START, std::slice::from_ref(node))?;
            self.cluster.check_names(START, &peers.iter().cloned().collect::<Vec<_>>())?;
            if peers.contains(node) {
                return Err(NemesisError::bad_value(START, format!("`grudge` has {node} drop itself")));
            }
        }
        // A new partition replaces the old one rather than stacking on it.
        self.stop()?;
        let mut plans = BTreeMap::new();
        for (node, peers) in &grudge {
            let rules: Vec<DropRule> = peers
                .iter()
                .map(|peer| -> Result<DropRule, NemesisError> {
                    Ok(DropRule {
                        source: self.cluster.node(START, peer)?.address(),
                        matches: String::new(),
                    })
                })
                .collect::<Result<_, _>>()?;
            plans.insert(node.clone(), rules);
        }
        self.current = Some(shape);
        self.chain.install(&self.cluster, START, &plans)?;
        Ok(json!({"shape": shape.as_str(), "grudge": grudge_to_json(&grudge)}))
    }

    fn stop(&mut self) -> Result<Value, NemesisError> {
        let healed = self.chain.remove_all(&self.cluster, STOP);
        if self.chain.is_empty() {
            self.current = None;
        }
        Ok(json!({"healed": healed?}))
    }
}

impl Nemesis for Partition {
    fn name(&self) -> &str {
        "partition"
    }

    fn performs(&self) -> Vec<&'static str> {
        vec![START, STOP]
    }

    fn next_op(&mut self) -> FaultOp {
        if !self.flip.next_is_start() {
            return FaultOp::new(STOP, Value::Null);
        }
        let shapes = self.feasible_shapes();
        if shapes.is_empty() {
            // One node cannot be partitioned; invoking this reports that clearly.
            return FaultOp::new(START, json!({"shape": Shape::Halves.as_str()}));
        }
        let shape = shapes[self.rng.gen_range(0..shapes.len())];
        if shape == Shape::IsolateLeader {
            return FaultOp::new(START, json!({"shape": shape.as_str()}));
        }
        let grudge = self
            .draw_grudge(shape)
            .expect("feasible shapes other than isolate-leader always draw a grudge");
        FaultOp::new(START, json!({"shape": shape.as_str(), "grudge": grudge_to_json(&grudge)}))
    }

    fn invoke(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        match op.f.as_str() {
            START => self.start(op),
            STOP => self.stop(),
            _ => Err(NemesisError::unknown_op(self, op)),
        }
    }

    fn heal(&mut self) -> HealLog {
        self.flip.reset();
        if self.chain.is_empty() {
            return Vec::new();
        }
        let op = FaultOp::new(STOP, Value::Null);
        let outcome = self.stop();
        vec![(op, outcome)]
    }

    fn active(&self) -> Vec<String> {
        match self.current {
            Some(shape) => vec![format!("partition {}", shape.as_str())],
            None if !self.chain.is_empty() => vec!["partition (heal pending)".to_string()],
            None => Vec::new(),
        }
    }
}
