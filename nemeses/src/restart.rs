//! What the disk faults share: on each targeted node, stop the target's process, do
//! something to its data while nothing runs, start it again — all within one op, so the
//! fault needs no stop op of its own. A target may refuse to start on the changed data
//! (a checksum caught the corruption): that is how the system answered the fault, so the
//! op still completes, its node's result says `"restarted": false` with the start's
//! error, and the node stays down. The next fault op first brings it back (recorded as
//! `brought_back` in its completion): it puts back what the fault changed where it can
//! ([`DataFault::undo`]: the disk is "replaced") and starts the node; heal (op
//! `restart-…`) does the same. So at most one op's nodes (one, or a minority) are down.
//!
//! Not a [`Toggle`](crate::start_stop::Toggle): a toggle's schedule alternates its start
//! and stop ops, while these faults are over when their op completes; scheduling a stop
//! (the restart op) after each would only add ops that do nothing. What they share with
//! the toggles is [`Reach`] (nodes, target, their own random stream) and the draw of
//! targets.
//!
//! Ops: the fault op takes `{"targets": mode, "nodes": [...], ...fields of the fault}`
//! (see `targeting.rs`); its completion adds `{"<result>": {node: what was done}}`. The heal
//! op takes `{"nodes": [...]}` or nothing (every node left down).

use crate::cluster::parallel;
use crate::error::NemesisError;
use crate::nemesis::{FaultOp, HealLog, Nemesis, NemesisContext};
use crate::node::{DataDir, NodeError, NodeShell, TargetControl};
use crate::preflight::{check_nodes, Lack};
use crate::targeting::{Reach, Targeting};
use crate::value;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One fault done to a stopped target's data.
pub trait DataFault: Send + 'static {
    /// Nemesis name (`disk`).
    const NEMESIS: &'static str;
    /// The fault op (`lose-unsynced`).
    const FAULT_F: &'static str;
    /// The heal op that starts nodes the fault left down (`restart-disk`).
    const RESTART_F: &'static str;
    /// Key of the per-node results in the completion (`lost`).
    const RESULT_KEY: &'static str;
    /// The targeting modes the schedule draws from.
    const DRAWN_TARGETS: &'static [Targeting];
    /// The fault's own fields for the next scheduled op.
    fn draw(rng: &mut StdRng) -> Map<String, Value>;
    /// Checks the op's own fields; returns them as recorded in the completion.
    fn fields(op: &FaultOp) -> Result<Map<String, Value>, NemesisError>;
    /// Whether the fault can reach `dir` at all: checked before the target is stopped.
    fn check(_node: &str, _dir: &DataDir) -> Result<(), NemesisError> {
        Ok(())
    }
    /// What the node lacks for this fault on `dir`, asked before the run (the target is
    /// not set up yet, so nothing is mounted and `dir` may not exist); changes nothing.
    fn preflight(node: &dyn NodeShell, dir: &DataDir) -> Result<(), Lack>;
    /// Does the fault to the data of the (stopped) target on `node`; `seed` is this
    /// node's share of the schedule's randomness. Returns what was done.
    fn apply(
        node: &dyn NodeShell,
        dir: &DataDir,
        fields: &Map<String, Value>,
        seed: u64,
    ) -> Result<Value, NemesisError>;
    /// Puts back what [`apply`](Self::apply) changed (`done` is what it returned), for a
    /// stopped target that refused to start on the changed data. Returns what was put
    /// back; the default puts back nothing (dropped unsynced data is gone for good).
    fn undo(_node: &dyn NodeShell, _dir: &DataDir, _done: &Value) -> Result<Value, NemesisError> {
        Ok(Value::Null)
    }
    /// The target started on the changed data: forgets what [`undo`](Self::undo) would
    /// have needed.
    fn settle(_node: &dyn NodeShell, _dir: &DataDir, _done: &Value) {}
}

pub struct DataFaultNemesis<F: DataFault> {
    /// The nodes, the target and this fault's random stream.
    reach: Reach,
    /// Nodes stopped by a fault op and not (successfully) started since, with what the
    /// fault did to each (to put back before starting it again; null when it failed).
    down: Mutex<BTreeMap<String, Value>>,
    fault: PhantomData<F>,
}

impl<F: DataFault> DataFaultNemesis<F> {
    pub fn new(ctx: &NemesisContext) -> Self {
        DataFaultNemesis {
            reach: Reach::new(ctx, F::NEMESIS),
            down: Mutex::new(BTreeMap::new()),
            fault: PhantomData,
        }
    }

    fn fault(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        let fields = F::fields(op)?;
        let nodes = self.reach.resolve(op)?;
        // Nodes an earlier op left down come back first, their data put back: faults
        // never pile up into a majority down.
        let brought_back = if crate::cluster::lock(&self.down).is_empty() {
            None
        } else {
            Some(self.restart(&FaultOp::new(F::RESTART_F, Value::Null))?)
        };
        let seeds: Vec<u64> = nodes.iter().map(|_| self.reach.rng.gen()).collect();
        let target = self.reach.target.as_ref();
        let cluster = &self.reach.cluster;
        let down = &self.down;
        let outcomes = parallel(F::FAULT_F, &nodes, |name| {
            let seed = seeds[nodes.iter().position(|n| n == name).expect("a listed node")];
            let shell = cluster.node(F::FAULT_F, name)?;
            let dir = target
                .data_dir(name)
                .map_err(|why| NemesisError::NoDataDir {
                    node: name.to_string(),
                    why,
                })?;
            F::check(name, &dir)?;
            crate::cluster::lock(down).insert(name.to_string(), Value::Null);
            target.kill(name)?;
            // Started again even when the fault failed: a failed fault must not also
            // leave the node down.
            let done = F::apply(shell.as_ref(), &dir, &fields, seed);
            let started = start_and_stay(target, name);
            match (done, started) {
                (Ok(done), Ok(())) => {
                    F::settle(shell.as_ref(), &dir, &done);
                    crate::cluster::lock(down).remove(name);
                    Ok(done)
                }
                (Ok(done), Err(refused)) => {
                    crate::cluster::lock(down).insert(name.to_string(), done.clone());
                    let mut result = done;
                    if let Value::Object(map) = &mut result {
                        map.insert("restarted".into(), json!(false));
                        map.insert("start_error".into(), json!(start_error(&refused)));
                    }
                    Ok(result)
                }
                (Err(e), Ok(())) => {
                    crate::cluster::lock(down).remove(name);
                    Err(e)
                }
                (Err(e), Err(_)) => Err(e),
            }
        });
        let done = NemesisError::collect(F::FAULT_F, outcomes)?;
        let mut value = fields;
        value.insert("targets".into(), json!(value::opt_str(op, "targets")?));
        value.insert("nodes".into(), json!(nodes));
        let results: Map<String, Value> = done.into_iter().collect();
        value.insert(F::RESULT_KEY.into(), Value::Object(results));
        if let Some(back) = brought_back {
            value.insert("brought_back".into(), back);
        }
        Ok(Value::Object(value))
    }

    /// The next fault op, drawn from this fault's stream.
    fn draw_fault(&mut self) -> FaultOp {
        // `primaries` only for a target that has them (static for a run: same draws).
        let modes: Vec<Targeting> = F::DRAWN_TARGETS
            .iter()
            .copied()
            .filter(|m| *m != Targeting::Primaries || self.reach.target.has_primaries())
            .collect();
        let mode = *modes
            .choose(&mut self.reach.rng)
            .expect("a fault draws from at least one targeting mode besides primaries");
        let mut value = F::draw(&mut self.reach.rng);
        value.insert("targets".into(), json!(mode.as_str()));
        if let Some(nodes) = mode.pick(&self.reach.cluster.names(), &mut self.reach.rng) {
            value.insert("nodes".into(), json!(nodes));
        }
        FaultOp::new(F::FAULT_F, Value::Object(value))
    }

    fn restart(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        let nodes = match value::opt_names(op, "nodes")? {
            Some(nodes) => {
                self.reach.cluster.check_names(F::RESTART_F, &nodes)?;
                nodes
            }
            None => crate::cluster::lock(&self.down).keys().cloned().collect(),
        };
        let target = self.reach.target.as_ref();
        let cluster = &self.reach.cluster;
        let down = &self.down;
        let outcomes = parallel(F::RESTART_F, &nodes, |node| {
            let done = crate::cluster::lock(down).get(node).cloned();
            // Put back what the fault changed (once: an undone node is left with null).
            let restored = match &done {
                Some(done) if !done.is_null() => {
                    let shell = cluster.node(F::RESTART_F, node)?;
                    let dir = target
                        .data_dir(node)
                        .map_err(|why| NemesisError::NoDataDir {
                            node: node.to_string(),
                            why,
                        })?;
                    let restored = F::undo(shell.as_ref(), &dir, done)?;
                    // Only what was put back is forgotten: a node whose data nothing could
                    // put back stays marked by its fault, so that a later start that fails
                    // again is still known as the target's answer to it.
                    if !restored.is_null() {
                        crate::cluster::lock(down).insert(node.to_string(), Value::Null);
                    }
                    restored
                }
                _ => Value::Null,
            };
            start_and_stay(target, node).map_err(|e| match (&done, &restored) {
                // Down from the fault, on data nothing could put back: the target's own
                // answer to the fault.
                (Some(d), Value::Null) if !d.is_null() => NemesisError::NotRecovered {
                    node: node.to_string(),
                    fault: F::FAULT_F.to_string(),
                    why: start_error(&e),
                },
                _ => NemesisError::NotStarted {
                    node: node.to_string(),
                    why: start_error(&e),
                },
            })?;
            crate::cluster::lock(down).remove(node);
            Ok(restored)
        });
        let restored: Map<String, Value> = NemesisError::collect(F::RESTART_F, outcomes)?
            .into_iter()
            .filter(|(_, r)| !r.is_null())
            .collect();
        let mut value = json!({"nodes": nodes});
        if !restored.is_empty() {
            value["restored"] = Value::Object(restored);
        }
        Ok(value)
    }
}

impl<F: DataFault> Nemesis for DataFaultNemesis<F> {
    fn name(&self) -> &str {
        F::NEMESIS
    }

    fn performs(&self) -> Vec<&'static str> {
        vec![F::FAULT_F, F::RESTART_F]
    }

    /// The fault op ends within itself: nothing stays open between draws.
    fn alternates(&self) -> bool {
        false
    }

    /// Always the fault op: it ends within itself (the node is up again when its
    /// completion is recorded, or was left down and is brought back by the next fault op
    /// or heal), so there is no stop op to schedule.
    fn next_op(&mut self) -> FaultOp {
        self.draw_fault()
    }

    fn invoke(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
        if op.f == F::FAULT_F {
            self.fault(op)
        } else if op.f == F::RESTART_F {
            self.restart(op)
        } else {
            Err(NemesisError::unknown_op(self, op))
        }
    }

    fn heal(&mut self) -> HealLog {
        let nodes: Vec<String> = crate::cluster::lock(&self.down).keys().cloned().collect();
        if nodes.is_empty() {
            return Vec::new();
        }
        let op = FaultOp::new(F::RESTART_F, json!({"nodes": nodes}));
        let outcome = self.restart(&op);
        vec![(op, outcome)]
    }

    /// The target's processes can be stopped and started, it has a data directory on
    /// every node, and each node has what the fault needs ([`DataFault::preflight`]).
    fn preflight(&self) -> Result<(), NemesisError> {
        let target = self.reach.target.as_ref();
        target
            .process_faults()
            .map_err(|why| NemesisError::TargetUnsupported {
                fault: F::NEMESIS.to_string(),
                why,
            })?;
        check_nodes(F::NEMESIS, &self.reach.cluster, |node| {
            let dir = target.data_dir(node.name()).map_err(|why| {
                Lack::new("a data directory of the target that distest manages", why)
            })?;
            F::preflight(node, &dir)
        })
    }

    fn active(&self) -> Vec<String> {
        crate::cluster::lock(&self.down)
            .keys()
            .map(|node| format!("{node} down after {}", F::FAULT_F))
            .collect()
    }
}

/// How long a target must keep running after a start on changed data for the start to
/// count: a process may read its data only after its start returned (more so on a busy
/// machine), and exit on what it read.
const STAY_UP: Duration = Duration::from_secs(1);
const STAY_UP_POLL: Duration = Duration::from_millis(100);

/// Starts the target on `node` and watches it for [`STAY_UP`]: a target that exits in
/// that time refused its data as surely as one whose start failed. A target that cannot
/// say whether it runs is taken at its start's word.
fn start_and_stay(target: &dyn TargetControl, node: &str) -> Result<(), NodeError> {
    target.start(node)?;
    let until = Instant::now() + STAY_UP;
    while Instant::now() < until {
        std::thread::sleep(STAY_UP_POLL);
        match target.running(node) {
            Ok(true) => {}
            Ok(false) => {
                return Err(NodeError::Failed {
                    node: node.to_string(),
                    command: "start".to_string(),
                    status: 1,
                    stderr: format!(
                        "the target exited within {} s of starting; its log on {node} says why",
                        STAY_UP.as_secs()
                    ),
                })
            }
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

/// The start's error as one line: a daemon's own words (the end of its log) when it
/// exited, not the script that started it.
fn start_error(e: &NodeError) -> String {
    match e {
        NodeError::Failed { stderr, .. } => {
            let lines: Vec<&str> = stderr
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            match lines.as_slice() {
                [] => e.to_string(),
                [only] => only.to_string(),
                [first, .., last] => format!("{first} … {last}"),
            }
        }
        other => other.to_string(),
    }
}
