//! What kill and pause share: act on the target's process on some nodes, remember which,
//! and undo exactly those on heal.
//!
//! Ops: the start op (`kill`, `pause`) takes `{"targets": mode, "nodes": [...]}` (see
//! `targets.rs`; `nodes` is absent for `primaries`, resolved when the op runs); the stop
//! op (`start`, `resume`) takes `{"nodes": [...]}` or nothing, meaning every node this
//! nemesis acted on.

use crate::cluster::{parallel, Cluster};
use crate::error::NemesisError;
use crate::nemesis::{FaultOp, HealLog, Nemesis, NemesisContext};
use crate::node::{NodeError, TargetControl};
use crate::schedule::{rng_for, FlipFlop};
use crate::targets::{self, Targeting};
use crate::value;
use rand::rngs::StdRng;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::sync::Arc;

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

pub struct ProcessNemesis<A: ProcessAction> {
    cluster: Cluster,
    target: Arc<dyn TargetControl>,
    rng: StdRng,
    flip: FlipFlop,
    /// Nodes we applied the fault to (or tried to: a failed SIGKILL may still have
    /// landed) and have not successfully undone.
    affected: BTreeSet<String>,
    action: PhantomData<A>,
}

impl<A: ProcessAction> ProcessNemesis<A> {
    pub fn new(ctx: &NemesisContext) -> Self {
        ProcessNemesis {
            cluster: Cluster::new(ctx.nodes.clone()),
            target: ctx.target.clone(),
            rng: rng_for(ctx.seed, A::NEMESIS),
            flip: FlipFlop::default(),
            affected: BTreeSet::new(),
            action: PhantomData,
        }
    }

    fn start(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        let nodes = targets::resolve(op, &self.cluster, self.target.as_ref(), &mut self.rng)?;
        self.affected.extend(nodes.iter().cloned());
        let target = self.target.as_ref();
        let outcomes = parallel(A::START_F, &nodes, |node| Ok(A::apply(target, node)?));
        NemesisError::collect(A::START_F, outcomes)?;
        let mode = value::opt_str(op, "targets")?;
        Ok(json!({"targets": mode, "nodes": nodes}))
    }

    fn stop(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        let nodes = match value::opt_names(op, "nodes")? {
            Some(nodes) => {
                self.cluster.check_names(A::STOP_F, &nodes)?;
                nodes
            }
            None => self.affected.iter().cloned().collect(),
        };
        let target = self.target.as_ref();
        let outcomes = parallel(A::STOP_F, &nodes, |node| Ok(A::undo(target, node)?));
        for (node, outcome) in &outcomes {
            if outcome.is_ok() {
                self.affected.remove(node);
            }
        }
        NemesisError::collect(A::STOP_F, outcomes)?;
        Ok(json!({"nodes": nodes}))
    }
}

impl<A: ProcessAction> Nemesis for ProcessNemesis<A> {
    fn name(&self) -> &str {
        A::NEMESIS
    }

    fn performs(&self) -> Vec<&'static str> {
        vec![A::START_F, A::STOP_F]
    }

    fn next_op(&mut self) -> FaultOp {
        if self.flip.next_is_start() {
            let value = targets::draw(&Targeting::EVERY, &self.cluster.names(), &mut self.rng);
            FaultOp::new(A::START_F, value)
        } else {
            FaultOp::new(A::STOP_F, Value::Null)
        }
    }

    fn invoke(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        if op.f == A::START_F {
            self.start(op)
        } else if op.f == A::STOP_F {
            self.stop(op)
        } else {
            Err(NemesisError::unknown_op(self, op))
        }
    }

    fn heal(&mut self) -> HealLog {
        self.flip.reset();
        if self.affected.is_empty() {
            return Vec::new();
        }
        let nodes: Vec<String> = self.affected.iter().cloned().collect();
        let op = FaultOp::new(A::STOP_F, json!({"nodes": nodes}));
        let outcome = self.stop(&op);
        vec![(op, outcome)]
    }

    fn active(&self) -> Vec<String> {
        self.affected
            .iter()
            .map(|node| format!("{node} {}", A::STATE))
            .collect()
    }
}
