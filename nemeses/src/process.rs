//! What kill and pause share: act on the target's process on some nodes, remember which,
//! and undo exactly those on heal.
//!
//! Ops: the start op (`kill`, `pause`) takes `{"targets": mode, "nodes": [...]}` (see
//! `targeting.rs`; `nodes` is absent for `primaries`, resolved when the op runs); the stop
//! op (`start`, `resume`) takes `{"nodes": [...]}` or nothing, meaning every node this
//! nemesis acted on.

use crate::cluster::parallel;
use crate::error::NemesisError;
use crate::nemesis::{FaultOp, NemesisContext};
use crate::node::{NodeError, TargetControl};
use crate::start_stop::{StartStop, Toggle};
use crate::targeting::Reach;
use crate::value;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::marker::PhantomData;

/// One kind of process fault: its names and the two `TargetControl` calls.
pub trait ProcessAction: Send + 'static {
    /// Nemesis name (`kill`).
    const NEMESIS: &'static str;
    /// Op that applies the fault (`kill`).
    const START_F: &'static str;
    /// Op that undoes it (`start`).
    const STOP_F: &'static str;
    /// What a node is while the fault holds (`killed`), for `active()`.
    const STATE: &'static str;
    fn apply(target: &dyn TargetControl, node: &str) -> Result<(), NodeError>;
    fn undo(target: &dyn TargetControl, node: &str) -> Result<(), NodeError>;
}

/// The nemesis of a process fault (`Kill`, `Pause`).
pub type ProcessNemesis<A> = Toggle<ProcessFault<A>>;

/// A process fault's state: the nodes it acted on.
pub struct ProcessFault<A: ProcessAction> {
    /// The nodes, the target and this fault's random stream.
    reach: Reach,
    /// Nodes we applied the fault to (or tried to: a failed SIGKILL may still have
    /// landed) and have not successfully undone: what heal undoes.
    affected: BTreeSet<String>,
    /// The nodes among them where a start op succeeded and no stop has succeeded since:
    /// what `describe` lists. A node of a failed start is never here.
    applied: BTreeSet<String>,
    action: PhantomData<A>,
}

impl<A: ProcessAction> ProcessFault<A> {
    /// Undoes the fault on `nodes`; those undone leave the books, the others stay for heal.
    fn undo(&mut self, nodes: &[String]) -> Result<(), NemesisError> {
        let target = self.reach.target.as_ref();
        let outcomes = parallel(A::STOP_F, nodes, |node| Ok(A::undo(target, node)?));
        for (node, outcome) in &outcomes {
            if outcome.is_ok() {
                self.affected.remove(node);
                self.applied.remove(node);
            }
        }
        NemesisError::collect(A::STOP_F, outcomes).map(|_| ())
    }
}

impl<A: ProcessAction> StartStop for ProcessFault<A> {
    const NAME: &'static str = A::NEMESIS;
    const START: &'static str = A::START_F;
    const STOP: &'static str = A::STOP_F;

    fn new(ctx: &NemesisContext) -> Self {
        ProcessFault {
            reach: Reach::new(ctx, A::NEMESIS),
            affected: BTreeSet::new(),
            applied: BTreeSet::new(),
            action: PhantomData,
        }
    }

    fn draw_start(&mut self) -> Value {
        self.reach.draw()
    }

    fn start(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        let mode = value::opt_str(op, "targets")?;
        let nodes = self.reach.resolve(op)?;
        let fresh: Vec<String> = nodes
            .iter()
            .filter(|n| !self.affected.contains(*n))
            .cloned()
            .collect();
        self.affected.extend(nodes.iter().cloned());
        let target = self.reach.target.as_ref();
        let outcomes = parallel(A::START_F, &nodes, |node| Ok(A::apply(target, node)?));
        if let Err(e) = NemesisError::collect(A::START_F, outcomes) {
            // Undo the nodes this op reached for the first time, so that a failed op leaves
            // nothing in effect; nodes an earlier op holds stay as they were.
            if let Err(undo) = self.undo(&fresh) {
                tracing::warn!(
                    "undoing a failed `{}` failed (heal retries it): {undo}",
                    A::START_F
                );
            }
            return Err(e);
        }
        self.applied.extend(nodes.iter().cloned());
        Ok(json!({"targets": mode, "nodes": nodes}))
    }

    fn stop(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        let nodes = match value::opt_names(op, "nodes")? {
            Some(nodes) => {
                self.reach.cluster.check_names(A::STOP_F, &nodes)?;
                nodes
            }
            None => self.affected.iter().cloned().collect(),
        };
        self.undo(&nodes)?;
        Ok(json!({"nodes": nodes}))
    }

    /// Heal names the nodes it brings back, so the history says which.
    fn heal_value(&self) -> Value {
        json!({"nodes": self.affected})
    }

    fn in_place(&self) -> bool {
        !self.affected.is_empty()
    }

    fn describe(&self) -> Vec<String> {
        self.applied
            .iter()
            .map(|node| format!("{node} {}", A::STATE))
            .collect()
    }

    /// The target's processes can be reached at all (an in-process target's cannot).
    fn preflight(&self) -> Result<(), NemesisError> {
        self.reach
            .target
            .process_faults()
            .map_err(|why| NemesisError::TargetUnsupported {
                fault: A::NEMESIS.to_string(),
                why,
            })
    }
}

#[cfg(test)]
mod tests {
    use crate::fake::{self, FakeTarget};
    use crate::kill::Kill;
    use crate::nemesis::{FaultOp, Nemesis, NemesisContext};
    use crate::pause::Pause;
    use crate::NemesisError;
    use serde_json::json;
    use std::sync::Arc;

    fn ctx(n: u8) -> (NemesisContext, Arc<FakeTarget>) {
        let (nodes, target) = fake::cluster(n);
        let ctx = NemesisContext {
            nodes: fake::shells(&nodes),
            target: target.clone(),
            seed: 9,
        };
        (ctx, target)
    }

    #[test]
    fn heal_starts_exactly_the_nodes_kill_killed() {
        let (ctx, target) = ctx(5);
        let mut kill = Kill::new(&ctx);
        let done = kill
            .invoke(&FaultOp::new(
                "kill",
                json!({"targets": "minority", "nodes": ["n2", "n4"]}),
            ))
            .unwrap();
        assert_eq!(done, json!({"targets": "minority", "nodes": ["n2", "n4"]}));
        assert_eq!(kill.active(), vec!["n2 killed", "n4 killed"]);
        let healed = kill.heal();
        assert_eq!(healed.len(), 1);
        assert_eq!(
            healed[0].0,
            FaultOp::new("start", json!({"nodes": ["n2", "n4"]}))
        );
        assert!(healed[0].1.is_ok());
        let mut calls = target.calls();
        // Nodes are acted on in parallel: order within each step is free.
        calls[..2].sort();
        calls[2..].sort();
        assert_eq!(calls, vec!["kill n2", "kill n4", "start n2", "start n4"]);
        assert!(kill.heal().is_empty(), "a second heal must do nothing");
        assert_eq!(target.calls().len(), 4);
    }

    #[test]
    fn kill_primaries_asks_the_target_when_it_runs() {
        let (ctx, target) = ctx(3);
        *target.primaries.lock().unwrap() = vec!["n3".to_string(), "not-a-node".to_string()];
        let mut kill = Kill::new(&ctx);
        let done = kill
            .invoke(&FaultOp::new("kill", json!({"targets": "primaries"})))
            .unwrap();
        assert_eq!(done["nodes"], json!(["n3"]));
        assert_eq!(target.calls(), vec!["kill n3"]);
    }

    #[test]
    fn kill_primaries_without_any_is_a_clear_error() {
        let (ctx, target) = ctx(3);
        let mut kill = Kill::new(&ctx);
        let err = kill
            .invoke(&FaultOp::new("kill", json!({"targets": "primaries"})))
            .unwrap_err();
        assert!(err.to_string().contains("reports none"), "{err}");
        assert!(target.calls().is_empty());
    }

    #[test]
    fn a_node_that_fails_to_restart_is_retried_by_the_next_heal() {
        let (ctx, target) = ctx(3);
        let mut kill = Kill::new(&ctx);
        kill.invoke(&FaultOp::new(
            "kill",
            json!({"targets": "all", "nodes": ["n1", "n2", "n3"]}),
        ))
        .unwrap();
        target.broken.lock().unwrap().push("n2".to_string());
        let first = kill.heal();
        let err = first[0].1.as_ref().unwrap_err();
        assert!(
            matches!(err, NemesisError::OnNodes { failures, .. } if failures.len() == 1 && failures[0].node == "n2")
        );
        assert_eq!(kill.active(), vec!["n2 killed"]);
        target.broken.lock().unwrap().clear();
        let second = kill.heal();
        assert_eq!(second[0].0.value, json!({"nodes": ["n2"]}));
        assert!(second[0].1.is_ok());
        assert!(kill.active().is_empty());
    }

    #[test]
    fn pause_is_undone_by_resume_of_the_same_nodes() {
        let (ctx, target) = ctx(3);
        let mut pause = Pause::new(&ctx);
        let op = pause.next_op();
        assert_eq!(op.f, "pause");
        if op.value["targets"] == "primaries" {
            *target.primaries.lock().unwrap() = vec!["n1".to_string()];
        }
        pause.invoke(&op).unwrap();
        let stop = pause.next_op();
        assert_eq!(stop.f, "resume");
        pause.invoke(&stop).unwrap();
        let calls = target.calls();
        let paused: Vec<&str> = calls
            .iter()
            .filter_map(|c| c.strip_prefix("pause "))
            .collect();
        let mut resumed: Vec<&str> = calls
            .iter()
            .filter_map(|c| c.strip_prefix("resume "))
            .collect();
        resumed.sort();
        assert!(!paused.is_empty());
        let mut paused_sorted = paused.clone();
        paused_sorted.sort();
        assert_eq!(paused_sorted, resumed);
        assert!(pause.heal().is_empty());
    }

    #[test]
    fn a_kill_that_fails_on_one_node_restarts_the_others_and_is_not_active() {
        let (ctx, target) = ctx(3);
        let mut kill = Kill::new(&ctx);
        kill.invoke(&FaultOp::new("kill", json!({"nodes": ["n3"]})))
            .unwrap();
        target.broken.lock().unwrap().push("n2".to_string());
        let err = kill
            .invoke(&FaultOp::new("kill", json!({"nodes": ["n1", "n2", "n3"]})))
            .unwrap_err();
        assert!(err.to_string().contains("n2"), "{err}");
        let mut calls = target.calls();
        calls[1..4].sort();
        calls[4..].sort();
        // n1 is restarted (this op killed it), n3 is left down (an earlier op did), n2's
        // restart fails too and stays for heal.
        assert_eq!(
            calls,
            vec!["kill n3", "kill n1", "kill n2", "kill n3", "start n1", "start n2"]
        );
        assert_eq!(kill.active(), vec!["n3 killed"]);
        target.broken.lock().unwrap().clear();
        let healed = kill.heal();
        assert_eq!(healed[0].0.value, json!({"nodes": ["n2", "n3"]}));
        assert!(kill.active().is_empty());
    }

    #[test]
    fn an_in_process_target_is_refused_before_the_run() {
        let (nodes, _) = fake::cluster(3);
        let target = Arc::new(FakeTarget {
            no_process: Some("the noop target runs in-process".to_string()),
            ..FakeTarget::default()
        });
        let ctx = NemesisContext {
            nodes: fake::shells(&nodes),
            target,
            seed: 1,
        };
        assert_eq!(
            Pause::new(&ctx).preflight().unwrap_err().to_string(),
            "pause cannot act on this target: the noop target runs in-process"
        );
        Kill::new(&ctx).preflight().unwrap_err();
        Kill::new(&self::ctx(3).0).preflight().unwrap();
    }

    #[test]
    fn unknown_nodes_and_ops_are_refused() {
        let (ctx, target) = ctx(3);
        let mut kill = Kill::new(&ctx);
        assert!(matches!(
            kill.invoke(&FaultOp::new("kill", json!({"nodes": ["n7"]}))),
            Err(NemesisError::UnknownNode { .. })
        ));
        assert!(matches!(
            kill.invoke(&FaultOp::new("pause", json!(null))),
            Err(NemesisError::UnknownOp { .. })
        ));
        assert!(target.calls().is_empty());
    }
}
