//! Deterministic simulation of the pure Raft core: several nodes, a network that loses,
//! duplicates and reorders messages, partitions, crashes (with and without losing the
//! state not yet synced), restarts, compaction, leader transfer and membership changes,
//! all driven by one seed. After every step the simulator checks election safety, log
//! matching, leader completeness, state machine safety and that commit indexes never move
//! back; at the end, the client history of a CAS register is checked for linearizability
//! with distest's `linearizable` checker.
//!
//! Replay a seed: `RAFT_SIM_SEED=123 cargo test -p raft-kv --test sim`.
//! More seeds: `RAFT_SIM_SEEDS=20000 cargo test -p raft-kv --release --test sim`.

use distest_checkers::{CheckContext, CheckerOptions, History, Op, OpType, Process, Validity};
use raft_kv::raft::{
    Config, CoreBugs, DurableState, Entry, EntryKind, Envelope, Index, LogOp, Membership,
    MembershipChange, Raft, ReadMode, Role, Term,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Which deliberate mistakes the simulated nodes make.
#[derive(Clone, Copy, Default)]
struct SimBugs {
    core: CoreBugs,
    /// Send messages before the state they depend on is synced; a crash loses unsynced state.
    no_fsync: bool,
    /// Serve reads from any node's applied state, with no ReadIndex.
    stale_read: bool,
    /// Answer writes as soon as the leader has them in its own log.
    ack_before_commit: bool,
}

/// How the simulated world behaves (independent of the nodes' bugs).
#[derive(Clone, Copy)]
struct World {
    /// Each node's clock runs at a rate drawn from [slowest_clock_rate, 1.0].
    slowest_clock_rate: f64,
    /// Force lease reads (otherwise 30% of seeds use them).
    lease_reads: bool,
}

impl Default for World {
    fn default() -> World {
        World {
            slowest_clock_rate: 0.9,
            lease_reads: false,
        }
    }
}

impl SimBugs {
    fn any(&self) -> bool {
        self.core != CoreBugs::default()
            || self.no_fsync
            || self.stale_read
            || self.ack_before_commit
    }
}

struct SimNode {
    raft: Option<Raft>,
    /// What survives a crash.
    disk: DurableState,
    /// Written but maybe not synced (differs from `disk` only under `no_fsync`).
    page_cache: DurableState,
    register: Option<i64>,
    applied: Index,
    last_commit: Index,
    boots: u64,
}

enum Waiting {
    Write {
        index: Index,
        term: Term,
    },
    Read {
        ctx: u64,
        index: Option<Index>,
        min_index: Index,
    },
}

struct Pending {
    node: usize,
    invoke: Op,
    waiting: Waiting,
}

struct Sim {
    rng: SmallRng,
    seed: u64,
    bugs: SimBugs,
    read_mode: ReadMode,
    ids: Vec<String>,
    initial: Membership,
    nodes: Vec<SimNode>,
    net: Vec<Envelope>,
    /// Pairs (a, b) with a < b that cannot talk.
    cut: BTreeSet<(usize, usize)>,
    leaders: BTreeMap<Term, String>,
    committed: BTreeMap<Index, Entry>,
    history: Vec<Op>,
    pending: Vec<Pending>,
    next_process: u64,
    next_ctx: u64,
    next_value: i64,
    step: u64,
    /// False once the run heals and settles: no more crashes.
    faults: bool,
    /// Each node's clock rate in ticks per global tick: bounded drift. A lease of 7 ticks
    /// (10 minus the 3-tick margin) is safe while rates differ by less than 10/7.
    clock_rate: Vec<f64>,
    clock_accum: Vec<f64>,
    snapshots_installed: u64,
}

/// What a run exercised, so a green run can be told apart from a vacuous one.
#[derive(Clone, Copy, Debug, Default)]
struct Coverage {
    terms_led: u64,
    committed: u64,
    ok_reads: u64,
    ok_writes: u64,
    snapshots_installed: u64,
}

impl Coverage {
    fn add(&mut self, o: Coverage) {
        self.terms_led += o.terms_led;
        self.committed += o.committed;
        self.ok_reads += o.ok_reads;
        self.ok_writes += o.ok_writes;
        self.snapshots_installed += o.snapshots_installed;
    }
}

const MAX_NET: usize = 2_000;
const MAX_CLIENT_OPS: u64 = 48;

impl Sim {
    fn new(seed: u64, bugs: SimBugs, world: World) -> Sim {
        let mut rng = SmallRng::seed_from_u64(seed);
        let members = if rng.gen_bool(0.5) { 3 } else { 5 };
        let ids: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
        let initial = Membership {
            members: ids[..members]
                .iter()
                .map(|id| (id.clone(), format!("{id}:7000")))
                .collect(),
        };
        let read_mode = if rng.gen_bool(0.3) || world.lease_reads {
            ReadMode::Lease
        } else {
            ReadMode::ReadIndex
        };
        let mut sim = Sim {
            rng,
            seed,
            bugs,
            read_mode,
            ids,
            initial,
            nodes: Vec::new(),
            net: Vec::new(),
            cut: BTreeSet::new(),
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            history: Vec::new(),
            pending: Vec::new(),
            next_process: 0,
            next_ctx: 0,
            next_value: 0,
            step: 0,
            faults: true,
            snapshots_installed: 0,
            clock_rate: Vec::new(),
            clock_accum: Vec::new(),
        };
        for _ in 0..sim.ids.len() {
            let rate = sim.rng.gen_range(world.slowest_clock_rate..=1.0);
            sim.clock_rate.push(rate);
            sim.clock_accum.push(0.0);
        }
        for i in 0..sim.ids.len() {
            sim.nodes.push(SimNode {
                raft: None,
                disk: DurableState::default(),
                page_cache: DurableState::default(),
                register: None,
                applied: 0,
                last_commit: 0,
                boots: 0,
            });
            sim.boot(i);
        }
        sim
    }

    fn config(&self, i: usize) -> Config {
        let mut cfg = Config::new(&self.ids[i]);
        cfg.election_ticks = 10;
        cfg.heartbeat_ticks = 2;
        cfg.read_mode = self.read_mode;
        cfg.max_entries_per_append = 4;
        cfg.bugs = self.bugs.core;
        cfg.assert_invariants = !self.bugs.any();
        cfg
    }

    fn boot(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.boots += 1;
        node.page_cache = node.disk.clone();
        let seed = self.seed ^ ((i as u64) << 32) ^ node.boots.wrapping_mul(0x9E37_79B9);
        let cfg = self.config(i);
        let node = &mut self.nodes[i];
        let raft = Raft::new(cfg, &node.disk, self.initial.clone(), seed);
        node.register = node
            .disk
            .snapshot
            .as_ref()
            .and_then(|s| serde_json::from_str(&s.data).ok())
            .unwrap_or(None);
        node.applied = node.disk.snapshot_index();
        node.last_commit = raft.commit_index();
        node.raft = Some(raft);
    }

    fn crash(&mut self, i: usize) {
        self.nodes[i].raft = None;
        let now = self.now();
        // Whatever this node was doing for clients is now of unknown outcome.
        let mut keep = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            if p.node == i {
                let done = p.invoke.complete(OpType::Info, p.invoke.value.clone());
                self.history.push(done.with_time(now));
            } else {
                keep.push(p);
            }
        }
        self.pending = keep;
    }

    fn now(&self) -> u64 {
        self.step * 1_000
    }

    fn alive(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].raft.is_some())
            .collect()
    }

    fn run(&mut self, steps: u64) -> Result<Coverage, String> {
        for _ in 0..steps {
            self.step += 1;
            self.random_step()?;
            self.check_step()?;
        }
        // Heal everything and let the cluster settle: a leader must emerge.
        self.cut.clear();
        self.faults = false;
        for i in 0..self.nodes.len() {
            if self.nodes[i].raft.is_none() {
                self.boot(i);
            }
        }
        let mut settled = false;
        for _ in 0..3_000 {
            self.step += 1;
            if self.net.is_empty() || self.rng.gen_bool(0.2) {
                self.tick_all()?;
            } else {
                let k = self.rng.gen_range(0..self.net.len());
                let env = self.net.swap_remove(k);
                self.deliver(env)?;
            }
            self.check_step()?;
            if self.has_working_leader() {
                settled = true;
                break;
            }
        }
        if !settled && !self.bugs.any() {
            let states: Vec<String> = self
                .nodes
                .iter()
                .filter_map(|n| n.raft.as_ref())
                .map(|r| {
                    let configs: Vec<String> = r
                        .log_entries()
                        .iter()
                        .map(|e| match &e.kind {
                            EntryKind::Config(m) => {
                                format!("{}@{}:{:?}", e.index, e.term, m.ids().collect::<Vec<_>>())
                            }
                            _ => format!("{}@{}", e.index, e.term),
                        })
                        .collect();
                    format!(
                        "{:?} snapshot {} log {configs:?}",
                        r.status(),
                        r.snapshot_index()
                    )
                })
                .collect();
            return Err(format!(
                "no leader committed in its term within 3000 steps after healing ({} ops pending); nodes: {states:#?}",
                self.pending.len()
            ));
        }
        let mut cov = Coverage {
            terms_led: self.leaders.len() as u64,
            committed: self.committed.len() as u64,
            ..Default::default()
        };
        for op in &self.history {
            if op.kind == OpType::Ok {
                match op.f.as_str() {
                    "read" => cov.ok_reads += 1,
                    _ => cov.ok_writes += 1,
                }
            }
        }
        cov.snapshots_installed = self.snapshots_installed;
        self.check_linearizable()?;
        Ok(cov)
    }

    fn has_working_leader(&self) -> bool {
        self.nodes.iter().filter_map(|n| n.raft.as_ref()).any(|r| {
            r.role() == Role::Leader
                && r.log_term(r.commit_index()) == Some(r.term())
                && r.membership().contains(r.id())
        })
    }

    fn random_step(&mut self) -> Result<(), String> {
        let roll = self.rng.gen_range(0..1000);
        let alive = self.alive();
        match roll {
            0..=499 if !self.net.is_empty() => {
                let k = self.rng.gen_range(0..self.net.len());
                let env = if self.rng.gen_bool(0.05) {
                    self.net[k].clone() // duplicate: deliver a copy, keep the original
                } else {
                    self.net.swap_remove(k)
                };
                self.deliver(env)?;
            }
            0..=749 => self.tick_all()?,
            750..=819 => self.client_op()?,
            820..=849 if !self.net.is_empty() => {
                let k = self.rng.gen_range(0..self.net.len());
                self.net.swap_remove(k);
            }
            850..=869 if !alive.is_empty() => {
                let i = alive[self.rng.gen_range(0..alive.len())];
                self.crash(i);
            }
            870..=919 => {
                let down: Vec<usize> = (0..self.nodes.len())
                    .filter(|i| self.nodes[*i].raft.is_none())
                    .collect();
                if !down.is_empty() {
                    let i = down[self.rng.gen_range(0..down.len())];
                    self.boot(i);
                }
            }
            920..=939 => self.repartition(),
            940..=969 if !alive.is_empty() => {
                let i = alive[self.rng.gen_range(0..alive.len())];
                let node = &mut self.nodes[i];
                let raft = node.raft.as_mut().expect("alive");
                if node.applied >= raft.snapshot_index() + 5 {
                    let data = serde_json::to_string(&node.register).expect("serializable");
                    raft.compact(node.applied, data)
                        .map_err(|e| format!("compaction refused: {e}"))?;
                    self.process_ready(i)?;
                }
            }
            970..=984 => {
                if let Some(l) = self.a_leader() {
                    let to = self.rng.gen_range(0..self.nodes.len());
                    let to = self.ids[to].clone();
                    let _ = self.nodes[l]
                        .raft
                        .as_mut()
                        .expect("alive")
                        .transfer_leader(&to);
                    self.process_ready(l)?;
                }
            }
            985..=999 => {
                if let Some(l) = self.a_leader() {
                    let j = self.rng.gen_range(0..self.nodes.len());
                    let id = self.ids[j].clone();
                    let raft = self.nodes[l].raft.as_mut().expect("alive");
                    let change = if raft.membership().contains(&id) {
                        MembershipChange::Remove { id }
                    } else {
                        MembershipChange::Add {
                            addr: format!("{id}:7000"),
                            id,
                        }
                    };
                    let _ = raft.propose_membership(change);
                    self.process_ready(l)?;
                }
            }
            _ => self.tick_all()?,
        }
        Ok(())
    }

    fn a_leader(&mut self) -> Option<usize> {
        let leaders: Vec<usize> = self
            .alive()
            .into_iter()
            .filter(|i| self.nodes[*i].raft.as_ref().expect("alive").role() == Role::Leader)
            .collect();
        (!leaders.is_empty()).then(|| leaders[self.rng.gen_range(0..leaders.len())])
    }

    fn repartition(&mut self) {
        self.cut.clear();
        if self.rng.gen_bool(0.4) {
            return; // heal
        }
        let n = self.nodes.len();
        let side: Vec<bool> = (0..n).map(|_| self.rng.gen_bool(0.5)).collect();
        for a in 0..n {
            for b in a + 1..n {
                if side[a] != side[b] {
                    self.cut.insert((a, b));
                }
            }
        }
    }

    fn tick_all(&mut self) -> Result<(), String> {
        // Clocks advance together, each at its own (bounded) rate.
        for i in self.alive() {
            self.clock_accum[i] += self.clock_rate[i];
            if self.clock_accum[i] < 1.0 {
                continue;
            }
            self.clock_accum[i] -= 1.0;
            self.nodes[i].raft.as_mut().expect("alive").tick();
            self.process_ready(i)?;
        }
        Ok(())
    }

    fn deliver(&mut self, env: Envelope) -> Result<(), String> {
        let from = self.index_of(&env.from);
        let to = self.index_of(&env.to);
        if self.cut.contains(&(from.min(to), from.max(to))) {
            return Ok(());
        }
        if let Some(raft) = self.nodes[to].raft.as_mut() {
            raft.step(env);
            self.process_ready(to)?;
        }
        Ok(())
    }

    fn index_of(&self, id: &str) -> usize {
        self.ids.iter().position(|x| x == id).expect("known id")
    }

    fn process_ready(&mut self, i: usize) -> Result<(), String> {
        let ready = self.nodes[i].raft.as_mut().expect("alive").take_ready();
        if self.faults && ready.needs_persist() && self.rng.gen_bool(0.01) {
            // Crash after the core decided but before the write reached the disk.
            self.crash(i);
            return Ok(());
        }
        let node = &mut self.nodes[i];
        if let Some(hs) = &ready.hard_state {
            node.page_cache.hard_state = hs.clone();
        }
        for op in &ready.log_ops {
            node.page_cache
                .apply(op)
                .map_err(|e| format!("{}: {e}", self.ids[i]))?;
        }
        if !self.bugs.no_fsync || self.rng.gen_bool(0.2) {
            node.disk = node.page_cache.clone();
        }
        for env in ready.messages {
            if self.net.len() < MAX_NET {
                self.net.push(env);
            }
        }
        if let Some(snap) = &ready.snapshot_to_apply {
            self.snapshots_installed += 1;
            let node = &mut self.nodes[i];
            node.register = serde_json::from_str(&snap.data).map_err(|e| e.to_string())?;
            node.applied = snap.index;
            self.complete_unknown_below(i, snap.index);
        }
        for e in ready.committed {
            let node = &mut self.nodes[i];
            if e.index <= node.applied {
                continue;
            }
            if e.index != node.applied + 1 {
                return Err(format!(
                    "{} applied entry {} after {}",
                    self.ids[i], e.index, node.applied
                ));
            }
            match self.committed.get(&e.index) {
                Some(prev) if *prev != e => {
                    return Err(format!(
                        "state machine safety: {} applied {:?} at index {} where {:?} was applied",
                        self.ids[i], e, e.index, prev
                    ))
                }
                Some(_) => {}
                None => {
                    self.committed.insert(e.index, e.clone());
                }
            }
            let result = apply(&mut node.register, &e);
            node.applied = e.index;
            self.complete_writes(i, &e, result);
        }
        let now = self.now();
        for ctx in ready.failed_reads {
            if let Some(k) = self.pending.iter().position(|p| {
                matches!(p.waiting, Waiting::Read { ctx: c, .. } if c == ctx) && p.node == i
            }) {
                let p = self.pending.swap_remove(k);
                let done = p.invoke.complete(OpType::Fail, Value::Null).with_time(now);
                self.history.push(done);
            }
        }
        for rs in ready.reads {
            for p in self.pending.iter_mut() {
                if let Waiting::Read { ctx, index, .. } = &mut p.waiting {
                    if *ctx == rs.ctx && p.node == i {
                        *index = Some(rs.index);
                    }
                }
            }
        }
        self.serve_reads(i)
    }

    fn serve_reads(&mut self, i: usize) -> Result<(), String> {
        let applied = self.nodes[i].applied;
        let now = self.now();
        let mut k = 0;
        while k < self.pending.len() {
            let p = &self.pending[k];
            let Waiting::Read {
                index: Some(index),
                min_index,
                ..
            } = p.waiting
            else {
                k += 1;
                continue;
            };
            if p.node != i || index > applied {
                k += 1;
                continue;
            }
            if index < min_index && self.bugs.core == CoreBugs::default() && !self.bugs.no_fsync {
                return Err(format!(
                    "read served at index {index} although index {min_index} was committed before it began"
                ));
            }
            let p = self.pending.swap_remove(k);
            let value = json!(self.nodes[i].register);
            self.history
                .push(p.invoke.complete(OpType::Ok, value).with_time(now));
        }
        Ok(())
    }

    fn complete_writes(&mut self, i: usize, e: &Entry, result: Option<bool>) {
        let now = self.now();
        let mut k = 0;
        while k < self.pending.len() {
            let p = &self.pending[k];
            match p.waiting {
                Waiting::Write { index, term } if p.node == i && index == e.index => {
                    let p = self.pending.swap_remove(k);
                    let kind = match (term == e.term, result) {
                        (true, Some(true)) => OpType::Ok,
                        // A different entry won this index: ours can never commit.
                        (false, _) | (true, Some(false)) => OpType::Fail,
                        (true, None) => OpType::Info,
                    };
                    let value = p.invoke.value.clone();
                    self.history
                        .push(p.invoke.complete(kind, value).with_time(now));
                }
                _ => k += 1,
            }
        }
    }

    /// A snapshot replaced entries we were waiting for: their outcome is unknown here.
    fn complete_unknown_below(&mut self, i: usize, upto: Index) {
        let now = self.now();
        let mut k = 0;
        while k < self.pending.len() {
            let p = &self.pending[k];
            if p.node == i && matches!(p.waiting, Waiting::Write { index, .. } if index <= upto) {
                let p = self.pending.swap_remove(k);
                let value = p.invoke.value.clone();
                self.history
                    .push(p.invoke.complete(OpType::Info, value).with_time(now));
            } else {
                k += 1;
            }
        }
    }

    fn client_op(&mut self) -> Result<(), String> {
        if self.next_process >= MAX_CLIENT_OPS || self.pending.len() >= 4 {
            return Ok(());
        }
        let Some(i) = self.a_leader() else {
            return Ok(());
        };
        let process = Process::Client(self.next_process);
        self.next_process += 1;
        let now = self.now();
        let min_index = self
            .nodes
            .iter()
            .filter_map(|n| n.raft.as_ref())
            .map(|r| r.commit_index())
            .max()
            .unwrap_or(0);
        let register = self.nodes[i].register;
        let raft = self.nodes[i].raft.as_mut().expect("alive");
        let (invoke, result) = match self.rng.gen_range(0..3) {
            0 => {
                self.next_value += 1;
                let v = self.next_value;
                let inv = Op::invoke(process, "write", json!(v));
                (
                    inv,
                    raft.propose(format!("w:{v}"))
                        .map(|(index, term)| Waiting::Write { index, term }),
                )
            }
            1 => {
                let old = self.rng.gen_range(0..=self.next_value);
                self.next_value += 1;
                let new = self.next_value;
                let inv = Op::invoke(process, "cas", json!([old, new]));
                (
                    inv,
                    raft.propose(format!("cas:{old}:{new}"))
                        .map(|(index, term)| Waiting::Write { index, term }),
                )
            }
            _ => {
                let ctx = self.next_ctx;
                self.next_ctx += 1;
                let inv = Op::invoke(process, "read", Value::Null);
                (
                    inv,
                    raft.read_index(ctx).map(|()| Waiting::Read {
                        ctx,
                        index: None,
                        min_index,
                    }),
                )
            }
        };
        let invoke = invoke.with_time(now);
        self.history.push(invoke.clone());
        if let Some(done) = self.buggy_answer(&invoke, &result, register) {
            self.history.push(done.with_time(now));
            return self.process_ready(i);
        }
        match result {
            Ok(waiting) => {
                self.pending.push(Pending {
                    node: i,
                    invoke,
                    waiting,
                });
                self.process_ready(i)?;
            }
            Err(_) => {
                let value = invoke.value.clone();
                self.history
                    .push(invoke.complete(OpType::Fail, value).with_time(now));
            }
        }
        Ok(())
    }

    /// The immediate (wrong) answer a buggy shell gives, if any.
    fn buggy_answer(
        &mut self,
        invoke: &Op,
        result: &Result<Waiting, raft_kv::raft::RaftError>,
        leader_register: Option<i64>,
    ) -> Option<Op> {
        match (invoke.f.as_str(), result) {
            ("read", _) if self.bugs.stale_read => {
                let alive = self.alive();
                let j = alive[self.rng.gen_range(0..alive.len())];
                let value = json!(self.nodes[j].register);
                self.pending.retain(|p| {
                    !matches!(p.waiting, Waiting::Read { .. }) || p.invoke.process != invoke.process
                });
                Some(invoke.complete(OpType::Ok, value))
            }
            ("write", Ok(_)) if self.bugs.ack_before_commit => {
                Some(invoke.complete(OpType::Ok, invoke.value.clone()))
            }
            ("cas", Ok(_)) if self.bugs.ack_before_commit => {
                let old = invoke.value[0].as_i64();
                let kind = if leader_register == old {
                    OpType::Ok
                } else {
                    OpType::Fail
                };
                Some(invoke.complete(kind, invoke.value.clone()))
            }
            _ => None,
        }
    }

    fn check_step(&mut self) -> Result<(), String> {
        for i in self.alive() {
            let commit = self.nodes[i].raft.as_ref().expect("alive").commit_index();
            if commit < self.nodes[i].last_commit {
                return Err(format!("{}: commit index moved back", self.ids[i]));
            }
            self.nodes[i].last_commit = commit;
            let raft = self.nodes[i].raft.as_ref().expect("alive");
            if raft.role() == Role::Leader {
                match self.leaders.get(&raft.term()) {
                    Some(l) if l != raft.id() => {
                        return Err(format!(
                            "election safety: {l} and {} both led term {}",
                            raft.id(),
                            raft.term()
                        ))
                    }
                    Some(_) => {}
                    None => {
                        self.leaders.insert(raft.term(), raft.id().to_string());
                        for (index, e) in self.committed.range(raft.snapshot_index() + 1..) {
                            let has = raft.log_entries().iter().find(|x| x.index == *index);
                            if has != Some(e) {
                                return Err(format!(
                                    "leader completeness: {} leads term {} without committed entry {index}",
                                    raft.id(),
                                    raft.term()
                                ));
                            }
                        }
                    }
                }
            }
        }
        let alive = self.alive();
        for (x, &a) in alive.iter().enumerate() {
            for &b in &alive[x + 1..] {
                let ra = self.nodes[a].raft.as_ref().expect("alive");
                let rb = self.nodes[b].raft.as_ref().expect("alive");
                log_matching(ra.log_entries(), rb.log_entries()).map_err(|index| {
                    format!(
                        "log matching: {} and {} agree on the term of entry {index} but differ before it",
                        ra.id(),
                        rb.id()
                    )
                })?;
            }
        }
        Ok(())
    }

    fn check_linearizable(&mut self) -> Result<(), String> {
        let now = self.now();
        for p in std::mem::take(&mut self.pending) {
            let value = p.invoke.value.clone();
            self.history
                .push(p.invoke.complete(OpType::Info, value).with_time(now));
        }
        let history = History::reindexed(std::mem::take(&mut self.history))
            .map_err(|e| format!("the simulator built an invalid history: {e}"))?;
        let checker = distest_checkers::build(
            "linearizable",
            &CheckerOptions {
                model: Some("cas-register".into()),
                ..Default::default()
            },
        )
        .map_err(|e| e.to_string())?;
        let verdict = checker.check(&history, &CheckContext::default());
        match verdict.valid {
            Validity::Valid => Ok(()),
            Validity::Invalid => Err(format!(
                "client history is not linearizable: {}\n{}",
                verdict.summary, verdict.explanation
            )),
            Validity::Unknown => Err(format!("linearizability unknown: {}", verdict.summary)),
        }
    }
}

/// Applies a register command; `Some(false)` is a cas whose expected value mismatched.
fn apply(register: &mut Option<i64>, e: &Entry) -> Option<bool> {
    let EntryKind::Command(cmd) = &e.kind else {
        return None;
    };
    let parts: Vec<&str> = cmd.split(':').collect();
    match parts.as_slice() {
        ["w", v] => {
            *register = v.parse().ok();
            Some(true)
        }
        ["cas", old, new] => {
            let old: i64 = old.parse().ok()?;
            if *register == Some(old) {
                *register = new.parse().ok();
                Some(true)
            } else {
                Some(false)
            }
        }
        _ => None,
    }
}

/// Err(index) when two logs agree on the term at `index` but not on every entry before it.
fn log_matching(a: &[Entry], b: &[Entry]) -> Result<(), Index> {
    let (Some(fa), Some(fb)) = (a.first(), b.first()) else {
        return Ok(());
    };
    let lo = fa.index.max(fb.index);
    let hi = a
        .last()
        .expect("non-empty")
        .index
        .min(b.last().expect("non-empty").index);
    if lo > hi {
        return Ok(());
    }
    fn at(log: &[Entry], i: Index) -> &Entry {
        &log[(i - log[0].index) as usize]
    }
    let mut i = hi;
    while i >= lo && at(a, i).term != at(b, i).term {
        i -= 1;
    }
    for j in lo..=i.min(hi) {
        if i < lo {
            break;
        }
        if at(a, j) != at(b, j) {
            return Err(i);
        }
    }
    Ok(())
}

fn run_seed(seed: u64, bugs: SimBugs, world: World, steps: u64) -> Result<Coverage, String> {
    let outcome = std::panic::catch_unwind(|| Sim::new(seed, bugs, world).run(steps));
    match outcome {
        Ok(r) => r,
        Err(panic) => {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panicked: {text}"))
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn sim_raft_is_safe_and_linearizable_across_seeds() {
    let seeds: Vec<u64> = match env_u64("RAFT_SIM_SEED") {
        Some(s) => vec![s],
        None => (0..env_u64("RAFT_SIM_SEEDS").unwrap_or(2_000)).collect(),
    };
    let steps = env_u64("RAFT_SIM_STEPS").unwrap_or(800);
    let n = seeds.len() as u64;
    let mut total = Coverage::default();
    for seed in seeds {
        match run_seed(seed, SimBugs::default(), World::default(), steps) {
            Ok(cov) => total.add(cov),
            Err(e) => panic!(
                "seed {seed} failed: {e}\nreplay: RAFT_SIM_SEED={seed} cargo test -p raft-kv --test sim"
            ),
        }
    }
    eprintln!("{n} seeds x {steps} steps exercised: {total:?}");
    if n >= 100 {
        // Guard against a vacuous simulation: faults must not have stopped all progress.
        assert!(
            total.ok_reads > n && total.ok_writes > n,
            "too few client ops succeeded: {total:?}"
        );
        assert!(total.terms_led > 2 * n, "too few elections: {total:?}");
        assert!(
            total.snapshots_installed > 0,
            "no snapshot was ever installed: {total:?}"
        );
    }
}

/// The simulator must catch the bugs it exists to catch, or its green runs mean nothing.
fn first_failing_seed(bugs: SimBugs, world: World, max_seeds: u64) -> Option<(u64, String)> {
    let found =
        (0..max_seeds).find_map(|seed| run_seed(seed, bugs, world, 400).err().map(|e| (seed, e)));
    if let Some((seed, e)) = &found {
        let first_line = e.lines().next().unwrap_or("");
        eprintln!("seed {seed} exposed the bug: {first_line}");
    }
    found
}

#[test]
fn sim_catches_acknowledging_before_fsync() {
    let bugs = SimBugs {
        no_fsync: true,
        ..Default::default()
    };
    let found = first_failing_seed(bugs, World::default(), 2_000);
    assert!(found.is_some(), "no seed exposed the no-fsync bug");
}

#[test]
fn sim_catches_committing_entries_of_old_terms() {
    let bugs = SimBugs {
        core: CoreBugs {
            commit_old_term: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let found = first_failing_seed(bugs, World::default(), 2_000);
    assert!(found.is_some(), "no seed exposed the commit-old-term bug");
}

#[test]
fn sim_catches_stale_reads() {
    let bugs = SimBugs {
        stale_read: true,
        ..Default::default()
    };
    assert!(
        first_failing_seed(bugs, World::default(), 500).is_some(),
        "no seed exposed stale reads"
    );
}

#[test]
fn sim_catches_acknowledging_before_commit() {
    let bugs = SimBugs {
        ack_before_commit: true,
        ..Default::default()
    };
    assert!(
        first_failing_seed(bugs, World::default(), 2_000).is_some(),
        "no seed exposed ack-before-commit"
    );
}

/// Clocks drifting by up to 1/0.75 = 1.33x, which the 3-of-10-tick margin absorbs.
const DRIFTING_LEASES: World = World {
    slowest_clock_rate: 0.75,
    lease_reads: true,
};

#[test]
fn sim_lease_reads_with_margin_survive_bounded_drift() {
    let seeds = env_u64("RAFT_SIM_SEEDS").map_or(300, |n| n / 4);
    for seed in 0..seeds {
        if let Err(e) = run_seed(seed, SimBugs::default(), DRIFTING_LEASES, 800) {
            panic!("seed {seed} failed with drifting lease reads: {e}");
        }
    }
}

#[test]
fn log_matching_check_flags_divergent_prefixes() {
    let e = |term, index| Entry {
        term,
        index,
        kind: EntryKind::Noop,
    };
    let a = vec![e(1, 1), e(1, 2), e(3, 3)];
    let b = vec![e(1, 1), e(2, 2), e(3, 3)];
    assert_eq!(log_matching(&a, &b), Err(3));
    assert_eq!(log_matching(&a, &a), Ok(()));
    let _ = LogOp::Truncate { from: 1 };
}
