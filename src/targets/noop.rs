//! `noop`: an in-process target that answers at once from one shared in-memory state.
//!
//! It exists to measure distest's own overhead (generator, clients, recorder, checker)
//! with no network or system under test in the way, and to exercise the whole run
//! pipeline in tests without root. Every op is applied atomically under one lock, so its
//! histories are linearizable and strict-serializable: any anomaly reported on it is a
//! bug in distest.
//!
//! Its memory is bounded by the live keys, like the checkers', so a long run measures
//! distest's own memory: a key retired by the workload (the last op on it was invoked) is
//! forgotten [`RETIRED_KEPT`] retirements later. The workloads' keys are integers never
//! reused, so a bit per key remembers which were forgotten; an op that still arrives for
//! one (it was generated before the retirement and delayed since) is answered `info`
//! rather than from an empty register, which would be a false anomaly.

use super::registry::TargetEntry;
use super::Target;
use async_trait::async_trait;
use distest_nemeses::{ClockSupport, NodeError, TargetControl};
use distest_workloads::{Client, Completion, OpRequest};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The registry entry of `noop`.
pub fn entry() -> TargetEntry {
    TargetEntry::new(
        "noop",
        "in-process, answers at once from shared memory: measures distest itself, needs no root; --bug stale-read plants detectable stale reads",
        |ctx| Ok(Arc::new(Noop::with_bugs(ctx.node_count, &ctx.options.bugs)?)),
    )
    .workloads(&["register", "list-append", "rw-register", "set"])
    .bugs(&BUGS.iter().map(|(name, _)| *name).collect::<Vec<_>>())
    .in_process()
}

#[derive(Default)]
struct State {
    registers: HashMap<String, Value>,
    /// Each register's value before its last write (for the `stale-read` bug).
    previous: HashMap<String, Value>,
    lists: HashMap<String, Vec<Value>>,
    set: BTreeSet<u64>,
    /// Register reads so far (the `stale-read` bug acts on every n-th).
    reads: u64,
    /// `Some(n)`: every n-th register read returns the value before the last write.
    stale_every: Option<u64>,
    /// Retired keys not yet forgotten, oldest first.
    retired: VecDeque<String>,
    /// Forgotten keys (integer keys only), one bit each.
    forgotten: Bits,
    /// Ops that arrived for a forgotten key (answered `info`).
    late_ops: u64,
}

/// Retired keys kept before the oldest is forgotten: far more than the ops that can be
/// in flight between being generated and reaching the store.
const RETIRED_KEPT: usize = 1_024;

/// A growable bitset over key numbers.
#[derive(Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn insert(&mut self, n: u64) {
        let (word, bit) = ((n / 64) as usize, n % 64);
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << bit;
    }

    fn contains(&self, n: u64) -> bool {
        let (word, bit) = ((n / 64) as usize, n % 64);
        self.0.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }
}

impl State {
    /// Whether `op` touches a forgotten key (so it must not be answered from nothing).
    /// Checked on every op, so it reads the keys where they are, allocating nothing.
    fn touches_forgotten(&self, op: &OpRequest) -> bool {
        let forgotten = |k: &Value| k.as_u64().is_some_and(|n| self.forgotten.contains(n));
        match (&op.key, op.f.as_str()) {
            (Some(key), _) => forgotten(key),
            (None, "txn") => op
                .value
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| forgotten(&m[1])),
            _ => false,
        }
    }

    /// Notes the keys `op` is the last op on, and forgets the oldest retired keys.
    fn retire(&mut self, op: &OpRequest) {
        for key in &op.retires {
            self.retired.push_back(key.to_string());
        }
        while self.retired.len() > RETIRED_KEPT {
            let Some(key) = self.retired.pop_front() else {
                break;
            };
            self.registers.remove(&key);
            self.previous.remove(&key);
            self.lists.remove(&key);
            if let Ok(n) = key.parse::<u64>() {
                self.forgotten.insert(n);
            }
        }
    }
}

pub struct Noop {
    nodes: usize,
    state: Arc<Mutex<State>>,
}

/// The noop target's bugs, for measuring how fast online checking reports an anomaly.
pub const BUGS: &[(&str, &str)] = &[(
    "stale-read",
    "every 1,000th register read returns the value before the last write (detectable when that write completed before the read began)",
)];

/// Register reads between two stale ones under the `stale-read` bug.
const STALE_EVERY_READS: u64 = 1_000;

impl Noop {
    pub fn new(nodes: usize) -> Noop {
        Noop {
            nodes: nodes.max(1),
            state: Arc::default(),
        }
    }

    /// A noop target with `bugs` switched on (names from [`BUGS`]).
    pub fn with_bugs(nodes: usize, bugs: &[String]) -> anyhow::Result<Noop> {
        let noop = Noop::new(nodes);
        for bug in bugs {
            match bug.as_str() {
                "stale-read" => {
                    noop.state
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .stale_every = Some(STALE_EVERY_READS)
                }
                other => anyhow::bail!(
                    "the noop target has no bug {other:?}; its bugs are: {}",
                    BUGS.iter().map(|(b, _)| *b).collect::<Vec<_>>().join(", ")
                ),
            }
        }
        Ok(noop)
    }
}

impl TargetControl for Noop {
    fn kill(&self, _node: &str) -> Result<(), NodeError> {
        Err(NodeError::Unsupported(
            "the noop target runs in-process and cannot be killed".into(),
        ))
    }
    fn start(&self, _node: &str) -> Result<(), NodeError> {
        Ok(())
    }
    fn pause(&self, _node: &str) -> Result<(), NodeError> {
        Err(NodeError::Unsupported(
            "the noop target runs in-process and cannot be paused".into(),
        ))
    }
    fn resume(&self, _node: &str) -> Result<(), NodeError> {
        Ok(())
    }
    fn primaries(&self) -> Vec<String> {
        Vec::new()
    }
    fn has_primaries(&self) -> bool {
        false
    }
    fn process_faults(&self) -> Result<(), String> {
        Err("the noop target runs in-process: it has no process to kill or pause".into())
    }
    fn clock_support(&self, _node: &str) -> ClockSupport {
        ClockSupport::Unsupported(
            "the noop target runs in-process and has no clock of its own".into(),
        )
    }
}

#[async_trait]
impl Target for Noop {
    fn name(&self) -> &'static str {
        "noop"
    }
    fn node_names(&self) -> Vec<String> {
        (1..=self.nodes).map(|i| format!("n{i}")).collect()
    }
    fn setup(&self) -> anyhow::Result<()> {
        Ok(())
    }
    fn teardown(&self, _wipe: bool) -> anyhow::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.late_ops > 0 {
            tracing::info!(
                "noop: {} ops arrived for keys already forgotten and were answered info",
                state.late_ops
            );
        }
        *state = State::default();
        Ok(())
    }
    fn collect_logs(&self, _node: usize, _dest: &std::path::Path) -> anyhow::Result<Vec<PathBuf>> {
        Ok(Vec::new())
    }
    async fn client(&self, _node: usize, _workload: &str) -> anyhow::Result<Box<dyn Client>> {
        Ok(Box::new(NoopClient {
            state: self.state.clone(),
        }))
    }
}

struct NoopClient {
    state: Arc<Mutex<State>>,
}

fn key_of(op: &OpRequest) -> String {
    op.key.as_ref().map(|k| k.to_string()).unwrap_or_default()
}

#[async_trait]
impl Client for NoopClient {
    async fn invoke(&mut self, op: &OpRequest) -> Completion {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.touches_forgotten(op) {
            s.late_ops += 1;
            return Completion::info(op.value.clone(), "the noop target forgot this retired key");
        }
        let done = apply(&mut s, op);
        s.retire(op);
        done
    }
}

/// Applies `op` to the store, atomically (the caller holds the lock).
fn apply(s: &mut State, op: &OpRequest) -> Completion {
    match op.f.as_str() {
        "read" if op.key.is_some() => {
            s.reads += 1;
            let stale = s.stale_every.is_some_and(|n| s.reads.is_multiple_of(n));
            let from = if stale { &s.previous } else { &s.registers };
            Completion::ok(from.get(&key_of(op)).cloned().unwrap_or(Value::Null))
        }
        "write" => {
            let key = key_of(op);
            let before = s.registers.insert(key.clone(), op.value.clone());
            if s.stale_every.is_some() {
                s.previous.insert(key, before.unwrap_or(Value::Null));
            }
            Completion::ok(op.value.clone())
        }
        "cas" => {
            let key = key_of(op);
            let current = s.registers.get(&key).cloned().unwrap_or(Value::Null);
            if current == op.value[0] {
                s.registers.insert(key, op.value[1].clone());
                Completion::ok(op.value.clone())
            } else {
                Completion::fail(op.value.clone(), "cas-mismatch")
            }
        }
        "txn" => {
            let mops = op.value.as_array().cloned().unwrap_or_default();
            let done: Vec<Value> = mops
                .iter()
                .map(|m| {
                    let (f, k, v) = (m[0].as_str().unwrap_or(""), m[1].to_string(), &m[2]);
                    match f {
                        "append" => {
                            s.lists.entry(k).or_default().push(v.clone());
                            m.clone()
                        }
                        "w" => {
                            s.registers.insert(k, v.clone());
                            m.clone()
                        }
                        "r" => {
                            let read = match s.lists.get(&k) {
                                Some(list) => Value::Array(list.clone()),
                                None => s.registers.get(&k).cloned().unwrap_or(Value::Null),
                            };
                            json!(["r", m[1], read])
                        }
                        _ => m.clone(),
                    }
                })
                .collect();
            Completion::ok(Value::Array(done))
        }
        "add" => {
            if let Some(e) = op.value.as_u64() {
                s.set.insert(e);
            }
            Completion::ok(op.value.clone())
        }
        "read" => Completion::ok(json!(s.set.iter().collect::<Vec<_>>())),
        other => Completion::fail(
            op.value.clone(),
            format!("the noop target has no op {other:?}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distest_checkers::OpType;

    fn write(key: u64, value: u64, last: bool) -> OpRequest {
        let mut op = OpRequest::keyed("write", json!(key), json!(value));
        if last {
            op.retires.push(json!(key));
        }
        op
    }

    fn read(key: u64) -> OpRequest {
        OpRequest::keyed("read", json!(key), Value::Null)
    }

    #[tokio::test]
    async fn retired_keys_are_forgotten_and_late_ops_on_them_are_indeterminate() {
        let noop = Noop::new(1);
        let mut client = NoopClient {
            state: noop.state.clone(),
        };
        assert_eq!(
            client.invoke(&write(0, 7, true)).await,
            Completion::ok(json!(7))
        );
        // Retired, not yet forgotten: a delayed read still sees the last write.
        assert_eq!(client.invoke(&read(0)).await, Completion::ok(json!(7)));
        for key in 1..=RETIRED_KEPT as u64 {
            client.invoke(&write(key, 1, true)).await;
        }
        {
            let state = noop.state.lock().unwrap();
            assert_eq!(state.registers.len(), RETIRED_KEPT, "key 0 is forgotten");
            assert_eq!(state.retired.len(), RETIRED_KEPT);
        }
        let late = client.invoke(&read(0)).await;
        assert_eq!(late.kind, OpType::Info, "{late:?}");
        assert_eq!(noop.state.lock().unwrap().late_ops, 1);
        // A live key is unaffected.
        client.invoke(&write(5_000, 3, false)).await;
        assert_eq!(client.invoke(&read(5_000)).await, Completion::ok(json!(3)));
    }

    #[tokio::test]
    async fn transactions_retire_and_forget_their_keys_too() {
        let noop = Noop::new(1);
        let mut client = NoopClient {
            state: noop.state.clone(),
        };
        for key in 0..=RETIRED_KEPT as u64 {
            let mut op = OpRequest::new("txn", json!([["append", key, 1]]));
            op.retires.push(json!(key));
            client.invoke(&op).await;
        }
        assert_eq!(noop.state.lock().unwrap().lists.len(), RETIRED_KEPT);
        let late = client
            .invoke(&OpRequest::new("txn", json!([["r", 0, null]])))
            .await;
        assert_eq!(late.kind, OpType::Info, "{late:?}");
    }
}
