//! Packet loss: some nodes drop a random share of the packets their peers send them, with
//! iptables' `statistic` match in our own `DISTEST-LOSS` chain (see `iptables.rs`).
//!
//! Only traffic from the other nodes is dropped: the control node's own connections (SSH,
//! the nemesis' commands) stay reliable, so heal always gets through. Ops: `start-loss`
//! `{"targets": mode, "nodes": [...], "probability": 0.2}` and `stop-loss`.

use crate::error::NemesisError;
use crate::iptables::{self, ChainOnNodes, Rule};
use crate::nemesis::{FaultOp, NemesisContext};
use crate::preflight;
use crate::start_stop::{StartStop, Toggle};
use crate::targeting::Reach;
use crate::value;
use rand::seq::SliceRandom;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub const START: &str = "start-loss";
pub const STOP: &str = "stop-loss";

/// Drop probabilities the schedule draws from: mild to severe.
const PROBABILITIES: [f64; 4] = [0.05, 0.1, 0.2, 0.5];
/// Used when a hand-written op gives none.
const DEFAULT_PROBABILITY: f64 = 0.2;

/// The packet loss nemesis.
pub type Loss = Toggle<LossFault>;

/// Packet loss's state: the chain it installed and the loss in effect.
pub struct LossFault {
    /// The nodes, the target and this fault's random stream.
    reach: Reach,
    chain: ChainOnNodes,
    /// The nodes and probability started last; in effect while the chain is in place.
    current: Option<(Vec<String>, f64)>,
}

impl StartStop for LossFault {
    const NAME: &'static str = "loss";
    const START: &'static str = START;
    const STOP: &'static str = STOP;

    fn new(ctx: &NemesisContext) -> LossFault {
        LossFault {
            reach: Reach::new(ctx, Self::NAME),
            chain: ChainOnNodes::new(iptables::LOSS),
            current: None,
        }
    }

    fn draw_start(&mut self) -> Value {
        let mut value = self.reach.draw();
        let probability = *PROBABILITIES
            .choose(&mut self.reach.rng)
            .expect("PROBABILITIES is not empty");
        value["probability"] = json!(probability);
        value
    }

    fn start(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        let probability = value::opt_f64(op, "probability")?.unwrap_or(DEFAULT_PROBABILITY);
        if !(probability > 0.0 && probability <= 1.0) {
            return Err(NemesisError::bad_value(
                START,
                format!("`probability` is {probability}, outside (0, 1]"),
            ));
        }
        let nodes = self.reach.resolve(op)?;
        self.stop(op)?;
        let matches = statistic(probability);
        let plans: BTreeMap<String, Vec<Rule>> = nodes
            .iter()
            .map(|node| {
                let rules = self
                    .reach
                    .cluster
                    .all()
                    .iter()
                    .filter(|peer| peer.name() != node)
                    .map(|peer| Rule::drop_from(peer.address(), matches.clone()))
                    .collect();
                (node.clone(), rules)
            })
            .collect();
        self.current = None;
        if let Err(e) = self.chain.install(&self.reach.cluster, START, &plans) {
            // Loss on some of the nodes asked for is not the fault asked for: undo it.
            if let Err(undo) = self.stop(op) {
                tracing::warn!("undoing a failed start-loss failed (heal retries it): {undo}");
            }
            return Err(e);
        }
        self.current = Some((nodes.clone(), probability));
        Ok(json!({"nodes": nodes, "probability": probability}))
    }

    fn stop(&mut self, _op: &FaultOp) -> Result<Value, NemesisError> {
        Ok(json!({"healed": self.chain.remove_all(&self.reach.cluster, STOP)?}))
    }

    fn in_place(&self) -> bool {
        !self.chain.is_empty()
    }

    /// What was started last, while any of its chain may still be in place.
    fn describe(&self) -> Vec<String> {
        self.current
            .iter()
            .filter(|_| self.in_place())
            .map(|(nodes, p)| format!("loss {:.0}% on {}", p * 100.0, nodes.join(",")))
            .collect()
    }

    /// iptables on every node takes a random-drop rule (the `statistic` match) in a chain
    /// of ours.
    fn preflight(&self) -> Result<(), NemesisError> {
        let cluster = &self.reach.cluster;
        preflight::require_nodes(Self::NAME, cluster, 2)?;
        preflight::check_nodes(Self::NAME, cluster, |node| {
            iptables::FILTER_PROBE.probe(node, cluster, &statistic(0.5), "DROP")
        })
    }
}

/// The iptables match that picks a random `probability` share of packets.
fn statistic(probability: f64) -> String {
    format!("-m statistic --mode random --probability {probability}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{self, FakeTarget};
    use crate::nemesis::Nemesis;
    use crate::partition::Partition;
    use std::sync::Arc;

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
