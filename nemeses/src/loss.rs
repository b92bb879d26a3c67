//! Packet loss: some nodes drop a random share of the packets their peers send them, with
//! iptables' `statistic` match in our own `DISTEST-LOSS` chain (see `iptables.rs`).
//!
//! Only traffic from the other nodes is dropped: the control node's own connections (SSH,
//! the nemesis' commands) stay reliable, so heal always gets through. Ops: `start-loss`
//! `{"targets": mode, "nodes": [...], "probability": 0.2}` and `stop-loss`.

use crate::cluster::Cluster;
use crate::error::NemesisError;
use crate::iptables::{self, ChainOnNodes, Rule};
use crate::nemesis::{FaultOp, HealLog, Nemesis, NemesisContext};
use crate::node::TargetControl;
use crate::preflight;
use crate::schedule::{rng_for, FlipFlop};
use crate::targets;
use crate::value;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const START: &str = "start-loss";
pub const STOP: &str = "stop-loss";

/// Drop probabilities the schedule draws from: mild to severe.
const PROBABILITIES: [f64; 4] = [0.05, 0.1, 0.2, 0.5];
/// Used when a hand-written op gives none.
const DEFAULT_PROBABILITY: f64 = 0.2;

pub struct Loss {
    cluster: Cluster,
    target: Arc<dyn TargetControl>,
    rng: StdRng,
    flip: FlipFlop,
    chain: ChainOnNodes,
    current: Option<(Vec<String>, f64)>,
}

impl Loss {
    pub fn new(ctx: &NemesisContext) -> Loss {
        Loss {
            cluster: Cluster::new(ctx.nodes.clone()),
            target: ctx.target.clone(),
            rng: rng_for(ctx.seed, "loss"),
            flip: FlipFlop::default(),
            chain: ChainOnNodes::new(iptables::LOSS),
            current: None,
        }
    }

    fn start(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        let probability = value::opt_f64(op, "probability")?.unwrap_or(DEFAULT_PROBABILITY);
        if !(probability > 0.0 && probability <= 1.0) {
            return Err(NemesisError::bad_value(
                START,
                format!("`probability` is {probability}, outside (0, 1]"),
            ));
        }
        let nodes = targets::resolve(op, &self.cluster, self.target.as_ref(), &mut self.rng)?;
        self.stop()?;
        let matches = statistic(probability);
        let plans: BTreeMap<String, Vec<Rule>> = nodes
            .iter()
            .map(|node| {
                let rules = self
                    .cluster
                    .all()
                    .iter()
                    .filter(|peer| peer.name() != node)
                    .map(|peer| Rule::drop_from(peer.address(), matches.clone()))
                    .collect();
                (node.clone(), rules)
            })
            .collect();
        if let Err(e) = self.chain.install(&self.cluster, START, &plans) {
            // Loss on some of the nodes asked for is not the fault asked for: undo it.
            if let Err(undo) = self.stop() {
                tracing::warn!("undoing a failed start-loss failed (heal retries it): {undo}");
            }
            return Err(e);
        }
        self.current = Some((nodes.clone(), probability));
        Ok(json!({"nodes": nodes, "probability": probability}))
    }

    fn stop(&mut self) -> Result<Value, NemesisError> {
        self.current = None;
        let healed = self.chain.remove_all(&self.cluster, STOP);
        Ok(json!({"healed": healed?}))
    }
}

/// The iptables match that picks a random `probability` share of packets.
fn statistic(probability: f64) -> String {
    format!("-m statistic --mode random --probability {probability}")
}

impl Nemesis for Loss {
    fn name(&self) -> &str {
        "loss"
    }

    fn performs(&self) -> Vec<&'static str> {
        vec![START, STOP]
    }

    fn next_op(&mut self) -> FaultOp {
        if !self.flip.next_is_start() {
            return FaultOp::new(STOP, Value::Null);
        }
        let mut value = targets::draw(self.target.as_ref(), &self.cluster.names(), &mut self.rng);
        let probability = *PROBABILITIES
            .choose(&mut self.rng)
            .expect("PROBABILITIES is not empty");
        value["probability"] = json!(probability);
        FaultOp::new(START, value)
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
        vec![(FaultOp::new(STOP, Value::Null), self.stop())]
    }

    fn active(&self) -> Vec<String> {
        self.current
            .iter()
            .map(|(nodes, p)| format!("loss {:.0}% on {}", p * 100.0, nodes.join(",")))
            .collect()
    }

    /// iptables on every node takes a random-drop rule (the `statistic` match) in a chain
    /// of ours.
    fn preflight(&self) -> Result<(), NemesisError> {
        preflight::require_nodes(self.name(), &self.cluster, 2)?;
        preflight::check_nodes(self.name(), &self.cluster, |node| {
            iptables::FILTER_PROBE.probe(node, &self.cluster, &statistic(0.5), "DROP")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{self, FakeTarget};
    use crate::partition::Partition;

    #[test]
    fn loss_drops_a_share_from_every_peer_and_heal_leaves_partitions_alone() {
        let (nodes, _) = fake::cluster(3);
        let ctx = NemesisContext {
            nodes: fake::shells(&nodes),
            target: Arc::new(FakeTarget::default()),
            seed: 3,
        };
        let mut loss = Loss::new(&ctx);
        let mut partition = Partition::new(&ctx);
        let done = loss
            .invoke(&FaultOp::new(
                START,
                json!({"nodes": ["n1"], "probability": 0.2}),
            ))
            .unwrap();
        assert_eq!(done, json!({"nodes": ["n1"], "probability": 0.2}));
        partition
            .invoke(&FaultOp::new(
                crate::partition::START,
                json!({"grudge": {"n1": ["n3"]}}),
            ))
            .unwrap();
        let install = nodes[0].commands()[0].clone();
        for peer in ["10.0.0.2", "10.0.0.3"] {
            assert!(install.contains(&format!(
                "-A DISTEST-LOSS -s {peer} -m statistic --mode random --probability 0.2 -m comment --comment distest -j DROP"
            )), "{install}");
        }
        assert!(
            !install.contains("10.0.0.1 "),
            "a node never drops itself: {install}"
        );
        assert_eq!(loss.active(), vec!["loss 20% on n1"]);
        let healed = loss.heal();
        assert_eq!(healed[0].1.as_ref().unwrap(), &json!({"healed": ["n1"]}));
        let last = nodes[0].commands().last().cloned().unwrap();
        assert_eq!(last, iptables::LOSS.remove_command(iptables::Family::V4));
        assert!(!last.contains("PARTITION"));
        assert!(loss.heal().is_empty());
        assert_eq!(partition.active(), vec!["partition custom"]);
    }

    #[test]
    fn probabilities_outside_zero_to_one_are_refused() {
        let (nodes, _) = fake::cluster(2);
        let ctx = NemesisContext {
            nodes: fake::shells(&nodes),
            target: Arc::new(FakeTarget::default()),
            seed: 3,
        };
        let mut loss = Loss::new(&ctx);
        for p in [0.0, -0.1, 1.5] {
            let op = FaultOp::new(START, json!({"nodes": ["n1"], "probability": p}));
            assert!(
                matches!(loss.invoke(&op), Err(NemesisError::BadValue { .. })),
                "{p}"
            );
        }
        assert!(nodes.iter().all(|n| n.commands().is_empty()));
    }
}
