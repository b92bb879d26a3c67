//! Simulated replicated CRDT stores, correct and buggy, judged by the convergence checkers.
//!
//! The simulator runs three replicas with random gossip and clients whose ops take
//! effect at a random moment between invocation and completion, or fail, or end `info`
//! (having taken effect or not). Histories of the correct store must always be valid
//! (no false alarms, which would make users stop trusting a red verdict); histories of
//! each buggy store must be caught across a batch of seeds.

mod online_support;

use distest_checkers::convergence::crdt::{CrdtConvergence, Model};
use distest_checkers::convergence::set::SetChecker;
use distest_checkers::{History, Op, OpType, Process, Validity};
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const REPLICAS: usize = 3;
const CLIENTS: usize = 5;
/// Simulation steps of the main phase; each advances one client or delivers one gossip.
const STEPS: usize = 240;

#[derive(Clone, Copy, Default)]
struct Bugs {
    no_tombstone_merge: bool,
    max_merge: bool,
    wall_clock: bool,
}

/// One replica's state, holding all three CRDT types (each workload uses one).
#[derive(Clone, Default)]
struct Replica {
    p: BTreeMap<usize, i64>,
    n: BTreeMap<usize, i64>,
    adds: BTreeMap<i64, BTreeSet<String>>,
    removed: BTreeSet<String>,
    /// (wall, logical, replica) and value
    reg: Option<((u64, u32, usize), i64)>,
    hlc: (u64, u32),
}

impl Replica {
    fn counter(&self) -> i64 {
        self.p.values().sum::<i64>() - self.n.values().sum::<i64>()
    }

    fn elements(&self) -> Vec<i64> {
        self.adds
            .iter()
            .filter(|(_, tags)| tags.iter().any(|t| !self.removed.contains(t)))
            .map(|(e, _)| *e)
            .collect()
    }

    fn merge(&mut self, other: &Replica, bugs: Bugs) {
        if bugs.max_merge {
            if other.counter() > self.counter() {
                self.p = other.p.clone();
                self.n = other.n.clone();
            }
        } else {
            for (mine, theirs) in [(&mut self.p, &other.p), (&mut self.n, &other.n)] {
                for (r, v) in theirs {
                    let m = mine.entry(*r).or_insert(0);
                    *m = (*m).max(*v);
                }
            }
        }
        for (e, tags) in &other.adds {
            self.adds
                .entry(*e)
                .or_default()
                .extend(tags.iter().cloned());
        }
        if !bugs.no_tombstone_merge {
            self.removed.extend(other.removed.iter().cloned());
        }
        if let Some((ts, v)) = other.reg {
            if self.reg.is_none_or(|(mine, _)| ts > mine) {
                self.reg = Some((ts, v));
            }
            if !bugs.wall_clock && (ts.0, ts.1) > self.hlc {
                self.hlc = (ts.0, ts.1);
            }
        }
    }
}

struct Sim {
    rng: SmallRng,
    model: Model,
    bugs: Bugs,
    replicas: Vec<Replica>,
    /// Per-replica clock skew in simulated ms.
    skew_ms: Vec<u64>,
    step: u64,
    ops: Vec<Op>,
    next_process: u64,
    next_tag: u64,
    next_value: i64,
    /// Whether add/remove completions report tags (as crdt-store does) or just the element.
    report_tags: bool,
    /// Whether the OR-set workload removes elements.
    allow_removes: bool,
}

/// A client's op in flight: what it does and, once applied, its result.
struct InFlight {
    process: u64,
    replica: usize,
    f: &'static str,
    value: Value,
    /// `Some(result)` once it took effect.
    result: Option<Value>,
    /// Decided at invocation: ok, fail (never applies) or info.
    fate: OpType,
}

impl Sim {
    fn new(seed: u64, model: Model, bugs: Bugs) -> Sim {
        let mut rng = SmallRng::seed_from_u64(seed);
        let skew_ms = (0..REPLICAS).map(|_| rng.gen_range(0..50)).collect();
        let report_tags = rng.gen_bool(0.5);
        Sim {
            rng,
            model,
            bugs,
            replicas: vec![Replica::default(); REPLICAS],
            skew_ms,
            step: 0,
            ops: Vec::new(),
            next_process: CLIENTS as u64,
            next_tag: 0,
            next_value: 0,
            report_tags,
            allow_removes: true,
        }
    }

    fn record(&mut self, process: u64, kind: OpType, f: &str, value: Value, replica: usize) {
        let mut op =
            Op::invoke(Process::Client(process), f, value).with_time(self.step * 1_000_000);
        op.kind = kind;
        op.index = self.ops.len() as u64;
        op.node = Some(format!("n{}", replica + 1));
        self.ops.push(op);
    }

    fn gossip(&mut self) {
        let from = self.rng.gen_range(0..REPLICAS);
        let to = self.rng.gen_range(0..REPLICAS);
        let state = self.replicas[from].clone();
        self.replicas[to].merge(&state, self.bugs);
    }

    fn full_sync(&mut self) {
        for _ in 0..2 {
            for from in 0..REPLICAS {
                for to in 0..REPLICAS {
                    let state = self.replicas[from].clone();
                    self.replicas[to].merge(&state, self.bugs);
                }
            }
        }
    }

    fn new_op(&mut self, process: u64, replica: usize) -> InFlight {
        let roll = self.rng.gen_range(0..10);
        let (f, value) = match self.model {
            _ if roll < 3 => ("read", Value::Null),
            Model::GCounter => ("add", json!(self.rng.gen_range(1..4))),
            Model::PnCounter => ("add", json!(self.rng.gen_range(-3..4))),
            Model::OrSet if roll < 5 && self.allow_removes => {
                ("remove", json!(self.rng.gen_range(0..4)))
            }
            Model::OrSet => ("add", json!(self.rng.gen_range(0..4))),
            Model::LwwRegister => {
                self.next_value += 1;
                ("write", json!(self.next_value))
            }
        };
        let fate = match self.rng.gen_range(0..10) {
            0 => OpType::Fail,
            1 => OpType::Info,
            _ => OpType::Ok,
        };
        InFlight {
            process,
            replica,
            f,
            value,
            result: None,
            fate,
        }
    }

    /// Applies `op` to its replica and returns what an `ok` completion would report.
    fn apply(&mut self, op: &InFlight) -> Value {
        let r = op.replica;
        let now = self.step + self.skew_ms[r];
        let report_tags = self.report_tags;
        let replica = &mut self.replicas[r];
        match (op.f, self.model) {
            ("read", Model::GCounter | Model::PnCounter) => json!(replica.counter()),
            ("read", Model::OrSet) => json!(replica.elements()),
            ("read", Model::LwwRegister) => replica.reg.map_or(Value::Null, |(_, v)| json!(v)),
            ("add", Model::OrSet) => {
                let tag = format!("t{}", self.next_tag);
                self.next_tag += 1;
                let e = op.value.as_i64().unwrap();
                replica.adds.entry(e).or_default().insert(tag.clone());
                if report_tags {
                    json!({"element": e, "tag": tag})
                } else {
                    json!(e)
                }
            }
            ("remove", _) => {
                let e = op.value.as_i64().unwrap();
                let observed: Vec<String> = replica
                    .adds
                    .get(&e)
                    .map(|tags| tags.difference(&replica.removed).cloned().collect())
                    .unwrap_or_default();
                replica.removed.extend(observed.iter().cloned());
                if report_tags {
                    json!({"element": e, "observed": observed})
                } else {
                    json!(e)
                }
            }
            ("add", _) => {
                let d = op.value.as_i64().unwrap();
                let side = if d >= 0 {
                    &mut replica.p
                } else {
                    &mut replica.n
                };
                *side.entry(r).or_insert(0) += d.abs();
                op.value.clone()
            }
            ("write", _) => {
                let ts = if self.bugs.wall_clock {
                    (now, 0, r)
                } else {
                    replica.hlc = if now > replica.hlc.0 {
                        (now, 0)
                    } else {
                        (replica.hlc.0, replica.hlc.1 + 1)
                    };
                    (replica.hlc.0, replica.hlc.1, r)
                };
                if replica.reg.is_none_or(|(mine, _)| ts > mine) {
                    replica.reg = Some((ts, op.value.as_i64().unwrap()));
                }
                op.value.clone()
            }
            other => unreachable!("the simulator never generates {other:?}"),
        }
    }

    fn run(mut self) -> History {
        let mut clients: Vec<Option<InFlight>> = (0..CLIENTS).map(|_| None).collect();
        let mut process_of: Vec<u64> = (0..CLIENTS as u64).collect();
        for _ in 0..STEPS {
            self.step += 1;
            if self.rng.gen_bool(0.3) {
                self.gossip();
                continue;
            }
            let c = self.rng.gen_range(0..CLIENTS);
            let replica = c % REPLICAS;
            match clients[c].take() {
                None => {
                    let op = self.new_op(process_of[c], replica);
                    self.record(op.process, OpType::Invoke, op.f, op.value.clone(), replica);
                    clients[c] = Some(op);
                }
                Some(mut op)
                    if op.result.is_none() && op.fate != OpType::Fail && self.rng.gen_bool(0.8) =>
                {
                    op.result = Some(self.apply(&op));
                    clients[c] = Some(op);
                }
                Some(op) => self.complete(op, &mut process_of[c]),
            }
        }
        // End of the main phase: every client completes (in-flight ones as info).
        for c in 0..CLIENTS {
            if let Some(mut op) = clients[c].take() {
                op.fate = if op.fate == OpType::Fail {
                    OpType::Fail
                } else {
                    OpType::Info
                };
                self.complete(op, &mut process_of[c]);
            }
        }
        self.full_sync();
        for r in 0..REPLICAS {
            let p = self.next_process;
            self.next_process += 1;
            self.record(p, OpType::Invoke, "read", json!({"final": true}), r);
            let op = InFlight {
                process: p,
                replica: r,
                f: "read",
                value: Value::Null,
                result: None,
                fate: OpType::Ok,
            };
            let v = self.apply(&op);
            self.record(p, OpType::Ok, "read", v, r);
        }
        History::new(self.ops).expect("simulated history is well formed")
    }

    fn complete(&mut self, op: InFlight, process: &mut u64) {
        match (op.fate, op.result.clone()) {
            (OpType::Ok, None) => {
                // An ok op must have taken effect: apply it now, at its completion.
                let v = self.apply(&op);
                self.record(op.process, OpType::Ok, op.f, v, op.replica);
            }
            (OpType::Ok, Some(v)) => self.record(op.process, OpType::Ok, op.f, v, op.replica),
            (OpType::Fail, _) => {
                self.record(op.process, OpType::Fail, op.f, op.value.clone(), op.replica)
            }
            (_, _) => {
                self.record(op.process, OpType::Info, op.f, op.value.clone(), op.replica);
                // After an info the client continues under a fresh process id.
                *process = self.next_process;
                self.next_process += 1;
            }
        }
    }
}

fn crdt_verdict(seed: u64, model: Model, bugs: Bugs) -> (Validity, serde_json::Value) {
    let history = Sim::new(seed, model, bugs).run();
    let v = online_support::checked(Box::new(CrdtConvergence { model: Some(model) }), &history);
    (
        v.valid,
        json!({"summary": v.summary, "anomalies": v.anomalies}),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn correct_stores_are_always_valid(seed in any::<u64>(), m in 0..4usize) {
        let model = [Model::GCounter, Model::PnCounter, Model::OrSet, Model::LwwRegister][m];
        let (valid, why) = crdt_verdict(seed, model, Bugs::default());
        prop_assert_eq!(valid, Validity::Valid, "{:?} seed {}: {}", model, seed, why);
    }

    #[test]
    fn a_grow_only_eventually_consistent_set_passes_set_full(seed in any::<u64>()) {
        // Without removes an OR-set is a grow-only set: reads may be stale, but nothing
        // acknowledged is ever lost, so set-full must not call it invalid.
        let mut sim = Sim::new(seed, Model::OrSet, Bugs::default());
        sim.allow_removes = false;
        let history = sim.run();
        let v = online_support::checked(Box::new(SetChecker), &history);
        prop_assert_ne!(v.valid, Validity::Invalid, "seed {}: {}", seed, v.summary);
    }
}

/// Each bug must be caught on most of a fixed batch of seeds.
fn caught(model: Model, bugs: Bugs) -> usize {
    (0..40u64)
        .filter(|&seed| crdt_verdict(seed, model, bugs).0 == Validity::Invalid)
        .count()
}

#[test]
fn or_set_without_tombstone_merge_is_caught() {
    let n = caught(
        Model::OrSet,
        Bugs {
            no_tombstone_merge: true,
            ..Bugs::default()
        },
    );
    assert!(n >= 10, "caught on only {n} of 40 seeds");
}

#[test]
fn counter_max_merge_is_caught() {
    let n = caught(
        Model::PnCounter,
        Bugs {
            max_merge: true,
            ..Bugs::default()
        },
    );
    assert!(n >= 10, "caught on only {n} of 40 seeds");
}

#[test]
fn lww_by_skewed_wall_clock_is_caught() {
    let n = caught(
        Model::LwwRegister,
        Bugs {
            wall_clock: true,
            ..Bugs::default()
        },
    );
    assert!(n >= 5, "caught on only {n} of 40 seeds");
}
