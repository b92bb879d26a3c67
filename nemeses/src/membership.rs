//! Membership changes: remove nodes from the cluster while the workload runs, add them
//! back later, through the target's own reconfiguration (`TargetControl::remove_member`,
//! `add_member`; the bundled kv's `/admin/members`, a target file's `[membership]`
//! commands).
//!
//! Ops: `remove-member` `{"targets": mode, "nodes": [...]}` (`one`, `minority` or
//! `primaries`: removing the leader is the interesting case, resolved when the op runs)
//! and `add-member` `{"nodes": [...]}` or nothing, meaning every node this nemesis
//! removed. Nodes leave and join one at a time, in order: the single-server changes Raft
//! and most systems support. At most a minority of the run's nodes is out of the cluster
//! at once, so a majority of the original members always remains. Heal adds every
//! removed node back: the cluster ends the run at its original size.

use crate::error::NemesisError;
use crate::nemesis::{FaultOp, NemesisContext};
use crate::start_stop::{StartStop, Toggle};
use crate::targeting::{Reach, Targeting};
use crate::value;
use rand::Rng;
use serde_json::{json, Value};

pub const REMOVE: &str = "remove-member";
pub const ADD: &str = "add-member";

/// The membership nemesis.
pub type Membership = Toggle<MembershipFault>;

/// The membership fault's state: the nodes it took out of the cluster.
pub struct MembershipFault {
    reach: Reach,
    /// Nodes we removed (or tried to: a refused answer may still have committed), in the
    /// order they left, not yet added back.
    removed: Vec<String>,
}

impl MembershipFault {
    /// How many nodes may be out of the cluster at once: a minority of the run's nodes.
    fn max_removed(&self) -> usize {
        self.reach.cluster.len().saturating_sub(1) / 2
    }
}

impl StartStop for MembershipFault {
    const NAME: &'static str = "membership";
    const START: &'static str = REMOVE;
    const STOP: &'static str = ADD;

    fn new(ctx: &NemesisContext) -> Self {
        MembershipFault {
            reach: Reach::new(ctx, Self::NAME),
            removed: Vec::new(),
        }
    }

    /// One node, a minority or the leader (for a target that has one).
    fn draw_start(&mut self) -> Value {
        let mut modes = vec![Targeting::One, Targeting::Minority];
        if self.reach.target.has_primaries() {
            modes.push(Targeting::Primaries);
        }
        let mode = modes[self.reach.rng.gen_range(0..modes.len())];
        match mode.pick(&self.reach.cluster.names(), &mut self.reach.rng) {
            Some(nodes) => json!({"targets": mode.as_str(), "nodes": nodes}),
            None => json!({"targets": mode.as_str()}),
        }
    }

    fn start(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        let wanted = self.reach.resolve(op)?;
        let fresh: Vec<String> = wanted
            .into_iter()
            .filter(|n| !self.removed.contains(n))
            .collect();
        if self.removed.len() + fresh.len() > self.max_removed() {
            return Err(NemesisError::bad_value(
                REMOVE,
                format!(
                    "removing {} more node(s) would leave {} of {} out of the cluster, more than a minority ({} at most)",
                    fresh.len(),
                    self.removed.len() + fresh.len(),
                    self.reach.cluster.len(),
                    self.max_removed()
                ),
            ));
        }
        let mut outcomes = Vec::new();
        for node in fresh {
            // On the books before the attempt: a change whose answer was lost may still
            // have committed, and heal must then add the node back.
            self.removed.push(node.clone());
            let outcome = self
                .reach
                .target
                .remove_member(&node)
                .map_err(NemesisError::from);
            outcomes.push((node, outcome));
        }
        let done = NemesisError::collect(REMOVE, outcomes)?;
        let mode = value::opt_str(op, "targets")?;
        Ok(json!({
            "targets": mode,
            "nodes": done.into_iter().map(|(n, ())| n).collect::<Vec<_>>(),
            "out": self.removed,
        }))
    }

    fn stop(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        let nodes = match value::opt_names(op, "nodes")? {
            Some(nodes) => {
                self.reach.cluster.check_names(ADD, &nodes)?;
                nodes
            }
            None => self.removed.clone(),
        };
        let mut outcomes = Vec::new();
        for node in nodes {
            let outcome = self
                .reach
                .target
                .add_member(&node)
                .map_err(NemesisError::from);
            if outcome.is_ok() {
                self.removed.retain(|n| *n != node);
            }
            outcomes.push((node, outcome));
        }
        let done = NemesisError::collect(ADD, outcomes)?;
        Ok(json!({
            "nodes": done.into_iter().map(|(n, ())| n).collect::<Vec<_>>(),
            "out": self.removed,
        }))
    }

    /// Heal names the nodes it adds back, so the history says which.
    fn heal_value(&self) -> Value {
        json!({"nodes": self.removed})
    }

    fn in_place(&self) -> bool {
        !self.removed.is_empty()
    }

    fn describe(&self) -> Vec<String> {
        self.removed
            .iter()
            .map(|n| format!("{n} removed"))
            .collect()
    }

    /// The target can change its membership at all (kv, a target file with a
    /// `[membership]` table).
    fn preflight(&self) -> Result<(), NemesisError> {
        if self.reach.target.has_membership() {
            return Ok(());
        }
        Err(NemesisError::TargetUnsupported {
            fault: Self::NAME.to_string(),
            why: "it has no way to add or remove members (the bundled raft-kv has; a target file needs a [membership] table with add and remove)".to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake;
    use crate::nemesis::Nemesis;
    use std::sync::Arc;

    fn ctx(n: u8, seed: u64) -> (NemesisContext, Arc<fake::FakeTarget>) {
        let (nodes, target) = fake::cluster(n);
        *target.members.lock().unwrap() = Some((1..=n).map(|i| format!("n{i}")).collect());
        *target.primaries.lock().unwrap() = vec!["n1".to_string()];
        let ctx = NemesisContext {
            nodes: fake::shells(&nodes),
            target: target.clone(),
            seed,
        };
        (ctx, target)
    }

    fn members(target: &fake::FakeTarget) -> Vec<String> {
        let mut m = target.members.lock().unwrap().clone().unwrap();
        m.sort();
        m
    }

    #[test]
    fn removed_nodes_come_back_at_heal_and_the_cluster_regains_its_size() {
        for seed in 0..20 {
            let (ctx, target) = ctx(5, seed);
            let mut m = Membership::new(&ctx);
            let op = m.next_op();
            assert_eq!(op.f, REMOVE);
            let done = m.invoke(&op).unwrap();
            let out = done["out"].as_array().unwrap().len();
            assert!((1..=2).contains(&out), "seed {seed}: {done}");
            assert_eq!(members(&target).len(), 5 - out);
            let healed = m.heal();
            assert_eq!(healed.len(), 1);
            assert!(healed[0].1.is_ok(), "{healed:?}");
            assert_eq!(members(&target), ["n1", "n2", "n3", "n4", "n5"]);
            assert!(m.active().is_empty());
            assert!(m.heal().is_empty(), "a second heal does nothing");
        }
    }

    #[test]
    fn never_more_than_a_minority_is_out() {
        let (ctx, target) = ctx(5, 1);
        let mut m = Membership::new(&ctx);
        m.invoke(&FaultOp::new(REMOVE, json!({"nodes": ["n2", "n3"]})))
            .unwrap();
        let err = m
            .invoke(&FaultOp::new(REMOVE, json!({"nodes": ["n4"]})))
            .unwrap_err();
        assert!(err.to_string().contains("more than a minority"), "{err}");
        assert_eq!(members(&target), ["n1", "n4", "n5"]);
        // Removing one already out is not a second removal.
        m.invoke(&FaultOp::new(REMOVE, json!({"nodes": ["n3"]})))
            .unwrap();
        let done = m.invoke(&FaultOp::new(ADD, Value::Null)).unwrap();
        assert_eq!(done["nodes"], json!(["n2", "n3"]));
    }

    #[test]
    fn the_leader_is_resolved_when_the_op_runs() {
        let (ctx, target) = ctx(3, 1);
        let mut m = Membership::new(&ctx);
        *target.primaries.lock().unwrap() = vec!["n2".to_string()];
        let done = m
            .invoke(&FaultOp::new(REMOVE, json!({"targets": "primaries"})))
            .unwrap();
        assert_eq!(done["nodes"], json!(["n2"]));
        assert_eq!(target.calls(), vec!["remove-member n2"]);
    }

    #[test]
    fn a_failed_removal_is_still_added_back_at_heal() {
        let (ctx, target) = ctx(5, 1);
        let mut m = Membership::new(&ctx);
        target.broken.lock().unwrap().push("n4".to_string());
        assert!(m
            .invoke(&FaultOp::new(REMOVE, json!({"nodes": ["n4"]})))
            .is_err());
        assert_eq!(m.active(), vec!["n4 removed"]);
        target.broken.lock().unwrap().clear();
        let healed = m.heal();
        assert!(healed[0].1.is_ok());
        assert!(target.calls().contains(&"add-member n4".to_string()));
    }

    #[test]
    fn a_target_without_membership_refuses_with_a_sentence() {
        let (nodes, target) = fake::cluster(3);
        let ctx = NemesisContext {
            nodes: fake::shells(&nodes),
            target,
            seed: 1,
        };
        let mut m = Membership::new(&ctx);
        let refused = m.preflight().unwrap_err().to_string();
        assert!(
            refused.starts_with(
                "membership cannot act on this target: it has no way to add or remove members"
            ),
            "{refused}"
        );
        let err = m
            .invoke(&FaultOp::new(REMOVE, json!({"nodes": ["n2"]})))
            .unwrap_err();
        assert!(err.to_string().contains("no membership"), "{err}");
    }

    #[test]
    fn a_target_with_membership_passes_preflight() {
        let (ctx, _target) = ctx(3, 1);
        assert!(Membership::new(&ctx).preflight().is_ok());
    }
}
