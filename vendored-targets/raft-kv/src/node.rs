//! The I/O shell around the Raft core: one thread owns the core, the WAL and the KV state
//! machine and runs the loop "take events → tick → persist (fsync) → send → apply →
//! answer clients". Client requests arrive from the HTTP threads over a bounded channel
//! and carry a one-shot reply channel; peers' messages arrive from the transport.

use crate::kv::{Command, Kv, KvError};
use crate::log;
use crate::raft::{
    Config, CoreBugs, EntryKind, Envelope, HardState, Index, LogOp, Membership, MembershipChange,
    Message, NodeId, Raft, RaftError, ReadMode, Role, Term,
};
use crate::storage::{Storage, StorageError};
use crate::transport::{lock, Transport};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bugs this node makes on purpose (see README). All off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    pub stale_read: bool,
    pub lease_no_margin: bool,
    pub commit_old_term: bool,
    pub no_fsync: bool,
    pub ack_before_commit: bool,
}

impl Bugs {
    pub const NAMES: &'static [&'static str] = &[
        "stale-read",
        "lease-no-margin",
        "commit-old-term",
        "no-fsync",
        "ack-before-commit",
    ];

    /// Enables the bug called `name`; Err with the valid names when there is none.
    pub fn enable(&mut self, name: &str) -> Result<(), String> {
        match name {
            "stale-read" => self.stale_read = true,
            "lease-no-margin" => self.lease_no_margin = true,
            "commit-old-term" => self.commit_old_term = true,
            "no-fsync" => self.no_fsync = true,
            "ack-before-commit" => self.ack_before_commit = true,
            other => {
                return Err(format!(
                    "unknown bug {other:?}; valid bugs are: {}",
                    Bugs::NAMES.join(", ")
                ))
            }
        }
        Ok(())
    }

    pub fn enabled(&self) -> Vec<&'static str> {
        let flags = [
            self.stale_read,
            self.lease_no_margin,
            self.commit_old_term,
            self.no_fsync,
            self.ack_before_commit,
        ];
        Bugs::NAMES
            .iter()
            .zip(flags)
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect()
    }
}

#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub id: NodeId,
    /// Raft transport address of every initial member (this node included).
    pub peers: BTreeMap<NodeId, String>,
    pub data_dir: PathBuf,
    pub read_mode: ReadMode,
    pub election_timeout_ms: u64,
    pub heartbeat_ms: u64,
    pub lease_margin_ms: u64,
    pub request_timeout_ms: u64,
    pub snapshot_every_entries: u64,
    /// Start with no bootstrap membership and wait to be added by a leader.
    pub join: bool,
    pub bugs: Bugs,
}

impl NodeOptions {
    fn tick_ms(&self) -> u64 {
        (self.election_timeout_ms / 20).clamp(1, 10)
    }
}

/// The wall clock (`SystemTime`) in units of `tick`: what read leases are measured with.
/// Deliberately not `Instant`: a lease is a promise about time that other nodes keep on
/// their own clocks, and real systems (and libfaketime's clock faults here) express it
/// on the wall clock, so a stepped or slow wall clock lengthens the lease. A clock before
/// the epoch reads as 0 (leases then expire only by the ticks check-quorum counts).
fn wall_clock_ticks(tick: Duration) -> u64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let ticks = since_epoch.as_nanos() / tick.as_nanos().max(1);
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// What a client asked for.
#[derive(Debug)]
pub enum ClientOp {
    Get { key: String },
    Write(Command),
    Transfer { to: NodeId },
    Members(MembershipChange),
}

/// The node's answer: an HTTP status and JSON body, or "ask the leader".
#[derive(Debug)]
pub enum Reply {
    Done(u16, Value),
    NotLeader { leader: Option<NodeId> },
}

pub enum Event {
    Peer(Envelope),
    Client(ClientOp, SyncSender<Reply>),
}

/// The error body every failure uses (see README, "Errors").
pub fn error_body(code: &str, definite: bool, message: &str) -> Value {
    json!({"error": code, "definite": definite, "message": message})
}

struct PendingWrite {
    term: Term,
    reply: SyncSender<Reply>,
    deadline: Instant,
    /// Under `ack-before-commit`: the answer already sent.
    answered: bool,
}

struct PendingRead {
    key: String,
    index: Option<Index>,
    reply: SyncSender<Reply>,
    deadline: Instant,
}

/// Bounds on waiting requests; more are refused with `overloaded`.
const MAX_PENDING: usize = 20_000;
const MAX_EVENTS_PER_ROUND: usize = 1_024;
const COMMIT_LOG_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Storage(#[from] StorageError),
}

pub struct Node {
    opts: NodeOptions,
    election_ticks: u64,
    raft: Raft,
    storage: Storage,
    kv: Kv,
    applied: Index,
    transport: Arc<Transport>,
    status: Arc<Mutex<Value>>,
    pending_writes: BTreeMap<Index, PendingWrite>,
    /// Early answers (ack-before-commit) to send once the entry is on our disk.
    early: Vec<(SyncSender<Reply>, Reply)>,
    pending_reads: HashMap<u64, PendingRead>,
    next_ctx: u64,
    members: Membership,
    applied_since_log: u64,
    last_commit_log: Instant,
}

impl Node {
    /// Recovers the node from its data directory.
    pub fn open(
        opts: NodeOptions,
        transport: Arc<Transport>,
        status: Arc<Mutex<Value>>,
    ) -> Result<Node, NodeError> {
        let (storage, durable) = Storage::open(&opts.data_dir, !opts.bugs.no_fsync)?;
        let tick_ms = opts.tick_ms();
        let mut cfg = Config::new(&opts.id);
        cfg.election_ticks = (opts.election_timeout_ms / tick_ms).max(2);
        cfg.heartbeat_ticks = (opts.heartbeat_ms / tick_ms).clamp(1, cfg.election_ticks / 2);
        cfg.lease_margin_ticks = opts.lease_margin_ms.div_ceil(tick_ms);
        cfg.read_mode = opts.read_mode;
        cfg.bugs = CoreBugs {
            commit_old_term: opts.bugs.commit_old_term,
            lease_no_margin: opts.bugs.lease_no_margin,
        };
        cfg.assert_invariants = cfg!(debug_assertions) && opts.bugs == Bugs::default();
        let initial = if opts.join {
            Membership::default()
        } else {
            Membership {
                members: opts.peers.clone(),
            }
        };
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id());
        let kv = match &durable.snapshot {
            Some(s) => Kv::from_snapshot(&s.data).map_err(|e| StorageError::BadSnapshot {
                path: opts.data_dir.join("snapshot.json"),
                reason: e.to_string(),
            })?,
            None => Kv::default(),
        };
        let applied = durable.snapshot_index();
        log!(
            opts.id,
            "recovered term {} vote {:?}, snapshot at {}, log up to {}",
            durable.hard_state.term,
            durable.hard_state.vote,
            applied,
            durable.last_index()
        );
        let election_ticks = cfg.election_ticks;
        let raft = Raft::new(cfg, &durable, initial, seed);
        let members = raft.membership().clone();
        transport.set_peers(&members.members);
        let now = Instant::now();
        let mut node = Node {
            opts,
            election_ticks,
            raft,
            storage,
            kv,
            applied,
            transport,
            status,
            pending_writes: BTreeMap::new(),
            early: Vec::new(),
            pending_reads: HashMap::new(),
            next_ctx: 0,
            members,
            applied_since_log: 0,
            last_commit_log: now,
        };
        // `/status` answers from the first moment the HTTP server runs.
        node.publish_status();
        Ok(node)
    }

    /// Runs until `shutdown` is raised; then syncs the WAL and returns.
    pub fn run(mut self, events: Receiver<Event>, shutdown: &AtomicBool) -> Result<(), NodeError> {
        let tick = Duration::from_millis(self.opts.tick_ms());
        // After a pause or a forward clock jump, at most two election timeouts of ticks
        // are delivered at once: enough to expire any lease and fire every timer, without
        // a burst of thousands of heartbeats.
        let max_ticks_per_round = 2 * self.election_ticks;
        let mut next_tick = Instant::now() + tick;
        self.publish_status();
        while !shutdown.load(Ordering::Relaxed) {
            let wait = next_tick
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50));
            let first = match events.recv_timeout(wait) {
                Ok(ev) => Some(ev),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            // Time first: a lease read must be judged against the current time, not the
            // time before we blocked (or were paused).
            let now = Instant::now();
            self.raft.set_lease_clock(wall_clock_ticks(tick));
            let mut ticks = 0;
            while now >= next_tick && ticks < max_ticks_per_round {
                self.raft.tick();
                next_tick += tick;
                ticks += 1;
            }
            if now >= next_tick || next_tick > now + 10 * tick {
                next_tick = now + tick; // clock jumped: resynchronize
            }
            if let Some(ev) = first {
                self.handle(ev);
            }
            for _ in 0..MAX_EVENTS_PER_ROUND {
                match events.try_recv() {
                    Ok(ev) => self.handle(ev),
                    Err(_) => break,
                }
            }
            self.process_ready()?;
            self.expire(now);
            self.publish_status();
        }
        log!(self.opts.id, "shutting down: syncing the log");
        self.storage.sync()?;
        for (_, p) in std::mem::take(&mut self.pending_writes) {
            let body = error_body(
                "shutting-down",
                false,
                "the node shut down before the write was known to commit",
            );
            let _ = p.reply.try_send(Reply::Done(503, body));
        }
        Ok(())
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Peer(env) => self.raft.step(env),
            Event::Client(op, reply) => self.handle_client(op, reply),
        }
    }

    fn handle_client(&mut self, op: ClientOp, reply: SyncSender<Reply>) {
        if self.pending_writes.len() + self.pending_reads.len() >= MAX_PENDING {
            let body = error_body(
                "overloaded",
                true,
                "too many requests are waiting; retry later",
            );
            let _ = reply.try_send(Reply::Done(503, body));
            return;
        }
        let deadline = Instant::now() + Duration::from_millis(self.opts.request_timeout_ms);
        match op {
            ClientOp::Get { key } => {
                if self.opts.bugs.stale_read {
                    // BUG stale-read: answer from whatever this replica has applied.
                    let _ = reply.try_send(Reply::Done(200, json!({"value": self.kv.get(&key)})));
                    return;
                }
                let ctx = self.next_ctx;
                self.next_ctx += 1;
                match self.raft.read_index(ctx) {
                    Ok(()) => {
                        self.pending_reads.insert(
                            ctx,
                            PendingRead {
                                key,
                                index: None,
                                reply,
                                deadline,
                            },
                        );
                    }
                    Err(e) => self.refuse(reply, e),
                }
            }
            ClientOp::Write(cmd) => {
                if let Command::Txn { ops } = &cmd {
                    if let Some((f, _, _)) = ops
                        .iter()
                        .find(|(f, _, _)| !matches!(f.as_str(), "r" | "w" | "append"))
                    {
                        let msg = format!("unknown micro-op {f:?}; use \"r\", \"w\" or \"append\"");
                        let _ =
                            reply.try_send(Reply::Done(400, error_body("bad-request", true, &msg)));
                        return;
                    }
                }
                let text = serde_json::to_string(&cmd).expect("commands serialize");
                match self.raft.propose(text) {
                    Ok((index, term)) => {
                        let mut answered = false;
                        if self.opts.bugs.ack_before_commit {
                            // BUG ack-before-commit: answer from a speculative local preview
                            // as soon as the entry is on our own disk.
                            let answer = kv_reply(self.kv.preview(&cmd));
                            self.early.push((reply.clone(), answer));
                            answered = true;
                        }
                        self.pending_writes.insert(
                            index,
                            PendingWrite {
                                term,
                                reply,
                                deadline,
                                answered,
                            },
                        );
                    }
                    Err(e) => self.refuse(reply, e),
                }
            }
            ClientOp::Transfer { to } => match self.raft.transfer_leader(&to) {
                Ok(()) => {
                    let _ = reply.try_send(Reply::Done(200, json!({"ok": true})));
                }
                Err(e) => self.refuse(reply, e),
            },
            ClientOp::Members(change) => match self.raft.propose_membership(change) {
                Ok((index, term)) => {
                    self.pending_writes.insert(
                        index,
                        PendingWrite {
                            term,
                            reply,
                            deadline,
                            answered: false,
                        },
                    );
                }
                Err(e) => self.refuse(reply, e),
            },
        }
    }

    fn refuse(&self, reply: SyncSender<Reply>, e: RaftError) {
        let r = match e {
            RaftError::NotLeader { leader } => Reply::NotLeader { leader },
            RaftError::NotMember(_) | RaftError::AlreadyMember(_) | RaftError::LastMember => {
                Reply::Done(400, error_body("bad-request", true, &e.to_string()))
            }
            RaftError::Transferring => {
                Reply::Done(503, error_body("transferring", true, &e.to_string()))
            }
            _ => Reply::Done(503, error_body("unavailable", true, &e.to_string())),
        };
        let _ = reply.try_send(r);
    }

    fn process_ready(&mut self) -> Result<(), NodeError> {
        // Bounded: compaction inside produces one more round at most.
        for _ in 0..4 {
            let mut ready = self.raft.take_ready();
            if ready.is_empty() {
                break;
            }
            for e in &ready.events {
                log!(self.opts.id, "{e}");
            }
            // Before any send: a membership change takes effect on append, and the new
            // peer needs a queue before the leader's first message to it.
            if self.raft.membership() != &self.members {
                self.members = self.raft.membership().clone();
                self.transport.set_peers(&self.members.members);
            }
            let needs_persist = ready.needs_persist();
            let mut messages = std::mem::take(&mut ready.messages);
            if needs_persist {
                if self.may_replicate_before_fsync(&ready.hard_state, &ready.log_ops) {
                    // The leader's disk write and the followers' run in parallel instead
                    // of one after the other (Raft thesis §10.2.1).
                    let (appends, rest): (Vec<Envelope>, Vec<Envelope>) = messages
                        .into_iter()
                        .partition(|env| matches!(env.msg, Message::Append { .. }));
                    for env in appends {
                        self.transport.send(env);
                    }
                    messages = rest;
                }
                self.storage
                    .persist(ready.hard_state.as_ref(), &ready.log_ops)?;
            }
            for (reply, answer) in self.early.drain(..) {
                let _ = reply.try_send(answer);
            }
            for env in messages {
                self.transport.send(env);
            }
            if let Some(snap) = ready.snapshot_to_apply {
                match Kv::from_snapshot(&snap.data) {
                    Ok(kv) => self.kv = kv,
                    Err(e) => log!(
                        self.opts.id,
                        "received an unreadable snapshot ({e}); keeping the old state"
                    ),
                }
                self.applied = snap.index;
                let covered: Vec<Index> = self
                    .pending_writes
                    .range(..=snap.index)
                    .map(|(i, _)| *i)
                    .collect();
                for i in covered {
                    if let Some(p) = self.pending_writes.remove(&i) {
                        let body = error_body(
                            "unknown",
                            false,
                            "a snapshot replaced the log before the write's outcome was seen",
                        );
                        answer(p, 504, body);
                    }
                }
            }
            for e in ready.committed {
                if e.index <= self.applied {
                    continue;
                }
                self.applied = e.index;
                self.applied_since_log += 1;
                let result = match &e.kind {
                    EntryKind::Command(text) => match serde_json::from_str::<Command>(text) {
                        Ok(cmd) => kv_reply(self.kv.apply(&cmd)),
                        Err(err) => Reply::Done(
                            500,
                            error_body(
                                "internal",
                                true,
                                &format!("undecodable command in the log: {err}"),
                            ),
                        ),
                    },
                    EntryKind::Noop | EntryKind::Config(_) => Reply::Done(200, json!({"ok": true})),
                };
                if let Some(p) = self.pending_writes.remove(&e.index) {
                    if p.term == e.term {
                        if !p.answered {
                            let _ = p.reply.try_send(result);
                        }
                    } else {
                        let body = error_body("proposal-dropped", true, "a new leader replaced the write before it committed; it was not applied");
                        answer(p, 503, body);
                    }
                }
            }
            for ctx in ready.failed_reads {
                if let Some(p) = self.pending_reads.remove(&ctx) {
                    let body = error_body(
                        "leader-lost",
                        true,
                        "leadership was lost before the read could be confirmed; retry",
                    );
                    let _ = p.reply.try_send(Reply::Done(503, body));
                }
            }
            for rs in ready.reads {
                if let Some(p) = self.pending_reads.get_mut(&rs.ctx) {
                    p.index = Some(rs.index);
                }
            }
            self.serve_reads();
            if self.applied >= self.raft.snapshot_index() + self.opts.snapshot_every_entries {
                if let Err(e) = self.raft.compact(self.applied, self.kv.to_snapshot()) {
                    log!(self.opts.id, "snapshot skipped: {e}");
                }
            }
        }
        Ok(())
    }

    /// Whether this ready's `Append`s may leave before its fsync. Safe for a leader that
    /// only appends: it counts its own log toward a commit only when it steps the
    /// followers' acknowledgements, and it steps nothing before `persist` (synchronous)
    /// returns; a crash before the fsync loses entries nobody was told are committed,
    /// which a follower holding them keeps or a later leader overwrites, as Raft allows.
    /// Anything that changes the term or vote, truncates or snapshots goes the safe way
    /// (everything after the fsync), and so does every message a follower or candidate
    /// sends: those acknowledge or promise what must already be durable.
    fn may_replicate_before_fsync(&self, hard_state: &Option<HardState>, ops: &[LogOp]) -> bool {
        self.raft.role() == Role::Leader
            && hard_state.is_none()
            && ops.iter().all(|op| matches!(op, LogOp::Append(_)))
    }

    fn serve_reads(&mut self) {
        let ready: Vec<u64> = self
            .pending_reads
            .iter()
            .filter(|(_, p)| p.index.is_some_and(|i| i <= self.applied))
            .map(|(c, _)| *c)
            .collect();
        for ctx in ready {
            if let Some(p) = self.pending_reads.remove(&ctx) {
                let _ = p
                    .reply
                    .try_send(Reply::Done(200, json!({"value": self.kv.get(&p.key)})));
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        let late: Vec<Index> = self
            .pending_writes
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(i, _)| *i)
            .collect();
        for i in late {
            if let Some(p) = self.pending_writes.remove(&i) {
                let body = error_body(
                    "timeout",
                    false,
                    "the write was proposed but not known to commit in time; it may still apply",
                );
                answer(p, 504, body);
            }
        }
        let late: Vec<u64> = self
            .pending_reads
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(c, _)| *c)
            .collect();
        for c in late {
            if let Some(p) = self.pending_reads.remove(&c) {
                let body = error_body(
                    "timeout",
                    false,
                    "the read could not be confirmed by a quorum in time",
                );
                let _ = p.reply.try_send(Reply::Done(504, body));
            }
        }
    }

    fn publish_status(&mut self) {
        let s = self.raft.status();
        if self.applied_since_log > 0 && self.last_commit_log.elapsed() >= COMMIT_LOG_INTERVAL {
            log!(
                self.opts.id,
                "applied {} entries in the last {}s (commit {}, term {}, {})",
                self.applied_since_log,
                COMMIT_LOG_INTERVAL.as_secs(),
                s.commit_index,
                s.term,
                s.role.public_name()
            );
            self.applied_since_log = 0;
            self.last_commit_log = Instant::now();
        }
        let value = json!({
            "id": s.id,
            "role": s.role.public_name(),
            "term": s.term,
            "leader": s.leader,
            "commit_index": s.commit_index,
            "applied_index": self.applied,
            "last_index": s.last_index,
            "members": s.membership.ids().collect::<Vec<_>>(),
            "read_mode": match self.opts.read_mode { ReadMode::ReadIndex => "read-index", ReadMode::Lease => "lease" },
            "bugs": self.opts.bugs.enabled(),
        });
        *lock(&self.status) = value;
    }
}

fn answer(p: PendingWrite, status: u16, body: Value) {
    if !p.answered {
        let _ = p.reply.try_send(Reply::Done(status, body));
    }
}

fn kv_reply(r: Result<Value, KvError>) -> Reply {
    match r {
        Ok(v) => Reply::Done(200, v),
        Err(KvError::CasMismatch { current }) => {
            let mut body = error_body(
                "cas-mismatch",
                true,
                "the key does not hold the expected value",
            );
            body["current"] = current;
            Reply::Done(409, body)
        }
        Err(e @ KvError::NotAList { .. }) => {
            Reply::Done(409, error_body("not-a-list", true, &e.to_string()))
        }
        Err(e @ KvError::BadTxn(_)) => {
            Reply::Done(400, error_body("bad-request", true, &e.to_string()))
        }
    }
}
