//! The Raft algorithm as a deterministic state machine: ticks, messages and client
//! requests go in; a [`Ready`] (persist, send, apply, answer) comes out. No I/O, no clock,
//! no threads: time is the count of `tick()` calls and randomness is a seeded RNG, so a
//! simulation replays bit for bit from its seed.
//!
//! Beyond the paper: pre-vote and leader stickiness (a node that heard from a leader
//! within the minimum election timeout neither pre-votes nor votes for anybody else, and
//! neither does a node that just booted), check-quorum (a leader that has not heard from a
//! majority within an election timeout steps down; a lease leader once its lease has also
//! lapsed on the lease clock), ReadIndex and lease reads, one-server
//! membership changes (effective on append), leader transfer (TimeoutNow), and the
//! conflict-term hint for fast log backtracking.

use super::durable::DurableState;
use super::log::RaftLog;
use super::types::{
    Entry, EntryKind, Envelope, HardState, Index, LogOp, Membership, MembershipChange, Message,
    NodeId, ReadState, Ready, Role, Snapshot, Term,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, VecDeque};
use thiserror::Error;

/// How a leader serves linearizable reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// Confirm leadership with a quorum round per read batch (safe under any clock).
    ReadIndex,
    /// Serve from the leader while its lease holds; safe only while clock drift stays
    /// within the margin.
    Lease,
}

/// Deliberate mistakes of the core (the shell has its own). All off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoreBugs {
    /// Commit entries of earlier terms by counting replicas, and skip the leader's no-op
    /// (Raft paper, figure 8). In its place a new leader runs a catch-up phase: it takes
    /// no proposals until every member has its log or an election timeout has passed.
    pub commit_old_term: bool,
    /// Lease reads without the clock-drift margin.
    pub lease_no_margin: bool,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub id: NodeId,
    /// Minimum election timeout; each timeout is drawn from `[election_ticks, 2*election_ticks)`.
    pub election_ticks: u64,
    pub heartbeat_ticks: u64,
    pub pre_vote: bool,
    pub read_mode: ReadMode,
    /// Ticks a lease is shortened by, to absorb clock drift between nodes.
    pub lease_margin_ticks: u64,
    pub max_entries_per_append: usize,
    /// Bound on reads waiting for a quorum round; more are refused with `Busy`.
    pub max_pending_reads: usize,
    /// Panic when an invariant breaks (debug builds); off when a bug is enabled on purpose.
    pub assert_invariants: bool,
    pub bugs: CoreBugs,
}

impl Config {
    pub fn new(id: &str) -> Config {
        Config {
            id: id.to_string(),
            election_ticks: 10,
            heartbeat_ticks: 2,
            pre_vote: true,
            read_mode: ReadMode::ReadIndex,
            lease_margin_ticks: 3,
            max_entries_per_append: 64,
            max_pending_reads: 10_000,
            assert_invariants: cfg!(debug_assertions),
            bugs: CoreBugs::default(),
        }
    }
}

/// Why the core refused a request. Every variant means the request had no effect.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RaftError {
    #[error("this node is not the leader (leader: {leader:?}); send the request to the leader")]
    NotLeader { leader: Option<NodeId> },
    #[error("a leader transfer is in progress; retry once the new leader is elected")]
    Transferring,
    #[error("the leader has not committed an entry in its term yet; retry shortly")]
    NotReady,
    #[error("a membership change is still uncommitted; retry once it commits")]
    ConfigChangePending,
    #[error("the new leader is still bringing the members up to date; retry shortly")]
    CatchingUp,
    #[error("{0} is not a member of the cluster")]
    NotMember(NodeId),
    #[error("{0} is already a member of the cluster")]
    AlreadyMember(NodeId),
    #[error("cannot remove the last member of the cluster")]
    LastMember,
    #[error("too many reads are waiting; retry later")]
    Busy,
    #[error(
        "cannot snapshot at index {index}: only {applied} entries were handed to the state machine"
    )]
    CompactBeyondApplied { index: Index, applied: Index },
}

/// A local, consensus-free view of the node (for `/status` and the simulator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub id: NodeId,
    pub role: Role,
    pub term: Term,
    pub leader: Option<NodeId>,
    pub commit_index: Index,
    pub last_index: Index,
    pub membership: Membership,
}

#[derive(Clone, Debug)]
struct Progress {
    next: Index,
    matched: Index,
    acked_seq: u64,
    /// Lease-clock time at which the broadcast behind `acked_seq` was sent (for leases).
    acked_sent_lease_tick: Option<u64>,
    /// Heard from within the current check-quorum window.
    active: bool,
}

impl Progress {
    fn new(next: Index) -> Progress {
        Progress {
            next,
            matched: 0,
            acked_seq: 0,
            acked_sent_lease_tick: None,
            active: false,
        }
    }
}

/// Bound on the remembered send ticks of broadcasts (older ones only make leases shorter).
const MAX_SEQ_TICKS: usize = 1024;

pub struct Raft {
    cfg: Config,
    term: Term,
    vote: Option<NodeId>,
    role: Role,
    leader: Option<NodeId>,
    log: RaftLog,
    snapshot: Option<Snapshot>,
    /// Membership before any config entry of the log (from the snapshot or bootstrap).
    base_membership: Membership,
    membership: Membership,
    membership_index: Index,
    commit: Index,
    /// Last index handed to the state machine through `Ready::committed`.
    handed: Index,
    now_ticks: u64,
    election_elapsed: u64,
    randomized_timeout: u64,
    heartbeat_elapsed: u64,
    /// Ticks since we last heard from a leader of our term, or since boot.
    leader_contact_elapsed: u64,
    rng: SmallRng,
    votes: BTreeMap<NodeId, bool>,
    progress: BTreeMap<NodeId, Progress>,
    seq: u64,
    /// `(seq, lease-clock time it was sent)` of recent broadcasts.
    seq_ticks: VecDeque<(u64, u64)>,
    /// Now on the clock leases are measured with, in ticks: `now_ticks` unless the shell
    /// supplies its own through `set_lease_clock` (the real node uses the wall clock).
    lease_now_ticks: u64,
    /// Set once `set_lease_clock` was called: `tick` no longer moves the lease clock.
    external_lease_clock: bool,
    pending_reads: VecDeque<(u64, Index, u64)>,
    reads_before_commit: Vec<u64>,
    transfer: Option<(NodeId, u64)>,
    /// First index appended since the last `take_ready` (not yet sent to anyone).
    unsent_from: Option<Index>,
    /// Reads arrived since the last `take_ready` and need a heartbeat round.
    read_round_wanted: bool,
    /// Set once this leader sent TimeoutNow: voters skip the stickiness check for a
    /// transfer election, which is what leases rely on, so no lease reads for the rest of
    /// this term (a delayed TimeoutNow may start that election at any time).
    lease_forfeited: bool,
    /// Set when check-quorum found no quorum in the last window. A read-index leader steps
    /// down at once; a lease leader when its lease no longer holds on its lease clock.
    quorum_lost: bool,
    /// `commit-old-term` only: `(last index at election, deadline tick)` of the catch-up
    /// phase that replaces the no-op; proposals are refused while it lasts.
    catch_up: Option<(Index, u64)>,
    ready: Ready,
}

impl Raft {
    /// Boots a node from its durable state. `initial` is the bootstrap membership, used
    /// when neither a snapshot nor a config entry says otherwise.
    pub fn new(cfg: Config, durable: &DurableState, initial: Membership, seed: u64) -> Raft {
        let (offset, offset_term) = durable
            .snapshot
            .as_ref()
            .map_or((0, 0), |s| (s.index, s.term));
        let mut log = RaftLog::new(offset, offset_term);
        for e in &durable.entries {
            log.push(e.clone());
        }
        let base_membership = durable
            .snapshot
            .as_ref()
            .map_or(initial, |s| s.membership.clone());
        let mut raft = Raft {
            term: durable.hard_state.term,
            vote: durable.hard_state.vote.clone(),
            role: Role::Follower,
            leader: None,
            log,
            snapshot: durable.snapshot.clone(),
            membership: base_membership.clone(),
            base_membership,
            membership_index: offset,
            commit: offset,
            handed: offset,
            now_ticks: 0,
            election_elapsed: 0,
            randomized_timeout: cfg.election_ticks,
            heartbeat_elapsed: 0,
            leader_contact_elapsed: 0,
            rng: SmallRng::seed_from_u64(seed),
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            seq: 0,
            seq_ticks: VecDeque::new(),
            lease_now_ticks: 0,
            external_lease_clock: false,
            pending_reads: VecDeque::new(),
            reads_before_commit: Vec::new(),
            transfer: None,
            unsent_from: None,
            read_round_wanted: false,
            lease_forfeited: false,
            quorum_lost: false,
            catch_up: None,
            ready: Ready::default(),
            cfg,
        };
        raft.recompute_membership();
        raft.reset_election_timer();
        raft
    }

    // ----- inputs ---------------------------------------------------------------------

    /// One unit of logical time.
    pub fn tick(&mut self) {
        self.now_ticks += 1;
        if !self.external_lease_clock {
            self.lease_now_ticks = self.now_ticks;
        }
        self.leader_contact_elapsed = self.leader_contact_elapsed.saturating_add(1);
        self.election_elapsed += 1;
        if self.role == Role::Leader {
            self.heartbeat_elapsed += 1;
            if self.election_elapsed >= self.cfg.election_ticks {
                self.election_elapsed = 0;
                self.quorum_lost = !self.check_quorum();
            }
            // A lease leader keeps its leadership while its lease holds on the lease clock:
            // it may serve reads until then anyway, and lease-based leaders end their reign
            // when the lease ends. Safe while the lease is (margin); a lease clock stepped
            // back lengthens both, which is the failure lease reads accept.
            let holds_lease = self.cfg.read_mode == ReadMode::Lease && self.lease_valid();
            if self.quorum_lost && !holds_lease {
                self.event(format!(
                    "stepping down in term {}: no quorum heard within an election timeout",
                    self.term
                ));
                self.become_follower(self.term, None);
                return;
            }
            self.end_catch_up_when_done();
            if let Some((_, deadline)) = &self.transfer {
                if self.now_ticks >= *deadline {
                    self.event("leader transfer timed out; resuming".to_string());
                    self.transfer = None;
                }
            }
            if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
                self.heartbeat_elapsed = 0;
                self.broadcast_append();
            }
        } else if self.election_elapsed >= self.randomized_timeout && self.promotable() {
            self.start_pre_vote();
        }
    }

    /// Measures leases with the caller's clock from now on: `now_ticks` is that clock's
    /// reading in ticks. It may jump either way; elections, heartbeats and check-quorum
    /// stay on `tick`. A clock that is stepped back or runs slow lengthens the lease (the
    /// bug class every wall-clock lease has; the drift margin absorbs only small errors).
    pub fn set_lease_clock(&mut self, now_ticks: u64) {
        self.external_lease_clock = true;
        self.lease_now_ticks = now_ticks;
    }

    /// Handles one message from a peer.
    pub fn step(&mut self, env: Envelope) {
        let Envelope { from, to, msg } = env;
        if to != self.cfg.id || from == self.cfg.id {
            return;
        }
        let mterm = msg.term();
        if mterm > self.term {
            match &msg {
                Message::PreVote { .. } | Message::PreVoteResp { granted: true, .. } => {}
                Message::Vote { transfer, .. } if !transfer && self.in_leader_lease() => {
                    // Leader stickiness: we heard from a live leader recently, so this
                    // candidate is disruptive (or the lease of our leader still holds).
                    return;
                }
                _ => {
                    let leader = matches!(
                        msg,
                        Message::Append { .. } | Message::InstallSnapshot { .. }
                    )
                    .then(|| from.clone());
                    self.become_follower(mterm, leader);
                }
            }
        } else if mterm < self.term {
            match msg {
                // Tell a stale leader about the newer term so it steps down.
                Message::Append { .. } | Message::InstallSnapshot { .. } => self.send(
                    &from,
                    Message::AppendResp {
                        term: self.term,
                        success: false,
                        match_index: 0,
                        conflict_index: 0,
                        conflict_term: None,
                        seq: 0,
                    },
                ),
                Message::PreVote { .. } => self.send(
                    &from,
                    Message::PreVoteResp {
                        term: self.term,
                        granted: false,
                    },
                ),
                _ => {}
            }
            return;
        }
        match msg {
            Message::PreVote {
                term,
                last_index,
                last_term,
            } => {
                let granted = term > self.term
                    && self.log_up_to_date(last_index, last_term)
                    && !self.in_leader_lease();
                let term = if granted { term } else { self.term };
                self.send(&from, Message::PreVoteResp { term, granted });
            }
            Message::PreVoteResp { term, granted } => {
                if self.role == Role::PreCandidate && granted && term == self.term.saturating_add(1)
                {
                    self.votes.insert(from, true);
                    if self.won(&self.votes) {
                        self.campaign(false);
                    }
                }
            }
            Message::Vote {
                last_index,
                last_term,
                ..
            } => {
                let free = match &self.vote {
                    Some(v) => *v == from,
                    None => self.leader.is_none(),
                };
                let granted = free && self.log_up_to_date(last_index, last_term);
                if granted {
                    self.vote = Some(from.clone());
                    self.persist_hard_state();
                    self.election_elapsed = 0;
                }
                self.send(
                    &from,
                    Message::VoteResp {
                        term: self.term,
                        granted,
                    },
                );
            }
            Message::VoteResp { granted, .. } => {
                if self.role == Role::Candidate {
                    self.votes.insert(from, granted);
                    if self.won(&self.votes) {
                        self.become_leader();
                    }
                }
            }
            Message::Append {
                prev_index,
                prev_term,
                entries,
                commit,
                seq,
                ..
            } => {
                if !self.accept_leader(&from) {
                    return;
                }
                self.handle_append(&from, prev_index, prev_term, entries, commit, seq);
            }
            Message::AppendResp {
                success,
                match_index,
                conflict_index,
                conflict_term,
                seq,
                ..
            } => {
                if self.role == Role::Leader {
                    self.handle_append_resp(
                        &from,
                        success,
                        match_index,
                        conflict_index,
                        conflict_term,
                        seq,
                    );
                }
            }
            Message::InstallSnapshot { snapshot, seq, .. } => {
                if !self.accept_leader(&from) {
                    return;
                }
                self.handle_snapshot(&from, snapshot, seq);
            }
            Message::InstallSnapshotResp {
                match_index, seq, ..
            } => {
                if self.role != Role::Leader {
                    return;
                }
                let last = self.log.last_index();
                let Some(pr) = self.progress.get_mut(&from) else {
                    return;
                };
                pr.matched = pr.matched.max(match_index.min(last));
                pr.next = pr.matched + 1;
                self.note_ack(&from, seq);
                self.maybe_commit();
                self.after_progress(&from);
            }
            Message::TimeoutNow { .. } => {
                if self.role != Role::Leader && self.promotable() {
                    self.event(format!("{from} asked us to take over leadership"));
                    self.campaign(true);
                }
            }
        }
    }

    /// Appends a state-machine command (leader only). Returns where it will be, if it
    /// commits: the shell answers the client when the entry at that index and term applies.
    pub fn propose(&mut self, command: String) -> Result<(Index, Term), RaftError> {
        self.check_can_propose()?;
        Ok(self.append_as_leader(EntryKind::Command(command)))
    }

    /// Starts a one-server membership change (leader only).
    pub fn propose_membership(
        &mut self,
        change: MembershipChange,
    ) -> Result<(Index, Term), RaftError> {
        self.check_can_propose()?;
        if !self.committed_in_term() {
            return Err(RaftError::NotReady);
        }
        if self.membership_index > self.commit {
            return Err(RaftError::ConfigChangePending);
        }
        let mut next = self.membership.clone();
        match change {
            MembershipChange::Add { id, addr } => {
                if next.contains(&id) {
                    return Err(RaftError::AlreadyMember(id));
                }
                next.members.insert(id, addr);
            }
            MembershipChange::Remove { id } => {
                if !next.contains(&id) {
                    return Err(RaftError::NotMember(id));
                }
                if next.members.len() == 1 {
                    return Err(RaftError::LastMember);
                }
                next.members.remove(&id);
            }
        }
        Ok(self.append_as_leader(EntryKind::Config(next)))
    }

    /// Asks for a linearizable read; `ctx` comes back in `Ready::reads` with the index the
    /// state machine must have applied before the read is served.
    pub fn read_index(&mut self, ctx: u64) -> Result<(), RaftError> {
        if self.role != Role::Leader {
            return Err(RaftError::NotLeader {
                leader: self.leader.clone(),
            });
        }
        if self.transfer.is_some() {
            return Err(RaftError::Transferring);
        }
        if self.pending_reads.len() + self.reads_before_commit.len() >= self.cfg.max_pending_reads {
            return Err(RaftError::Busy);
        }
        if !self.committed_in_term() {
            // Our commit index may lag entries earlier leaders committed; wait for the no-op.
            self.reads_before_commit.push(ctx);
            return Ok(());
        }
        if self.cfg.read_mode == ReadMode::Lease && self.lease_valid() {
            self.ready.reads.push(ReadState {
                ctx,
                index: self.commit,
            });
            return Ok(());
        }
        // Served once a quorum acknowledges a broadcast sent after this moment: the one
        // `take_ready` sends (shared by every read of this batch) or any later one.
        self.pending_reads
            .push_back((ctx, self.commit, self.seq + 1));
        self.read_round_wanted = true;
        Ok(())
    }

    /// Hands leadership to `to` once it has our whole log (leader only).
    pub fn transfer_leader(&mut self, to: &str) -> Result<(), RaftError> {
        if self.role != Role::Leader {
            return Err(RaftError::NotLeader {
                leader: self.leader.clone(),
            });
        }
        if to == self.cfg.id {
            return Ok(());
        }
        if !self.membership.contains(to) {
            return Err(RaftError::NotMember(to.to_string()));
        }
        self.event(format!("transferring leadership to {to}"));
        self.transfer = Some((to.to_string(), self.now_ticks + self.cfg.election_ticks));
        self.fail_pending_reads();
        self.after_progress(to);
        if self.transfer.is_some() {
            self.send_append(to);
        }
        Ok(())
    }

    /// Replaces the log up to `index` (already handed to the state machine) with a
    /// snapshot whose state-machine part is `data`.
    pub fn compact(&mut self, index: Index, data: String) -> Result<(), RaftError> {
        if index <= self.log.offset() {
            return Ok(());
        }
        if index > self.handed {
            return Err(RaftError::CompactBeyondApplied {
                index,
                applied: self.handed,
            });
        }
        let term = self
            .log
            .term(index)
            .expect("entries up to handed are in the log");
        let snap = Snapshot {
            index,
            term,
            membership: self.membership_at(index),
            data,
        };
        self.log.compact_to(index, term);
        self.base_membership = snap.membership.clone();
        self.snapshot = Some(snap.clone());
        self.ready.log_ops.push(LogOp::Snapshot(snap));
        Ok(())
    }

    /// Takes everything the shell must now do (see [`Ready`] for the order).
    pub fn take_ready(&mut self) -> Ready {
        self.flush_leader_sends();
        std::mem::take(&mut self.ready)
    }

    /// Sends, once per batch of inputs, what proposals and reads of the batch need: new
    /// entries to in-sync followers, and one heartbeat round for all new reads.
    fn flush_leader_sends(&mut self) {
        let unsent_from = self.unsent_from.take();
        let read_round = std::mem::take(&mut self.read_round_wanted);
        if self.role != Role::Leader {
            return;
        }
        if let Some(from) = unsent_from {
            let last = self.log.last_index();
            let in_sync: Vec<NodeId> = self
                .progress
                .iter()
                .filter(|(_, pr)| pr.next >= from && pr.next <= last)
                .map(|(id, _)| id.clone())
                .collect();
            for p in in_sync {
                self.send_append(&p);
            }
        }
        if read_round {
            self.seq += 1;
            self.note_seq_tick();
            let peers: Vec<NodeId> = self.progress.keys().cloned().collect();
            for p in peers {
                self.send_heartbeat(&p);
            }
            self.advance_reads();
        }
    }

    pub fn status(&self) -> Status {
        Status {
            id: self.cfg.id.clone(),
            role: self.role,
            term: self.term,
            leader: self.leader.clone(),
            commit_index: self.commit,
            last_index: self.log.last_index(),
            membership: self.membership.clone(),
        }
    }

    pub fn id(&self) -> &str {
        &self.cfg.id
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn term(&self) -> Term {
        self.term
    }
    pub fn commit_index(&self) -> Index {
        self.commit
    }
    pub fn membership(&self) -> &Membership {
        &self.membership
    }
    /// The entries after the snapshot (for the simulator's log-matching checks).
    pub fn log_entries(&self) -> &[Entry] {
        self.log.entries()
    }
    pub fn log_term(&self, index: Index) -> Option<Term> {
        self.log.term(index)
    }
    pub fn snapshot_index(&self) -> Index {
        self.log.offset()
    }

    // ----- roles ----------------------------------------------------------------------

    /// May this node start an election? A member of its latest config may; so may a node
    /// that some not-yet-committed config (or the one in force at its commit index)
    /// includes: it may hold the only copy of entries the cluster needs (after a restart
    /// its commit index lags), and the cluster would wait for it forever if it stayed
    /// silent. Votes are still counted against the latest config, so this only widens
    /// who may try, never what wins.
    fn promotable(&self) -> bool {
        let me = &self.cfg.id;
        if self.membership.contains(me) {
            return true;
        }
        if self.membership_index <= self.commit {
            return false;
        }
        let later = self.log.slice(self.commit + 1, self.log.last_index());
        self.membership_at(self.commit).contains(me)
            || later
                .iter()
                .any(|e| matches!(&e.kind, EntryKind::Config(m) if m.contains(me)))
    }

    fn in_leader_lease(&self) -> bool {
        self.role == Role::Leader || self.leader_contact_elapsed < self.cfg.election_ticks
    }

    fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let e = self.cfg.election_ticks.max(1);
        self.randomized_timeout = self.rng.gen_range(e..2 * e);
    }

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.persist_hard_state();
        }
        if self.role == Role::Leader {
            self.fail_pending_reads();
            self.transfer = None;
            self.progress.clear();
        }
        self.quorum_lost = false;
        self.catch_up = None;
        let changed = self.role != Role::Follower || self.leader != leader;
        self.role = Role::Follower;
        if leader.is_some() {
            self.leader_contact_elapsed = 0;
        }
        self.leader = leader;
        self.reset_election_timer();
        if changed {
            let who = self.leader.clone().unwrap_or_else(|| "none known".into());
            self.event(format!("follower in term {} (leader: {who})", self.term));
        }
    }

    /// Accepts `from` as leader of our current term (called for Append/InstallSnapshot).
    fn accept_leader(&mut self, from: &NodeId) -> bool {
        if self.role == Role::Leader {
            self.check(false, "two leaders in one term");
            return false;
        }
        if self.role != Role::Follower || self.leader.as_ref() != Some(from) {
            self.become_follower(self.term, Some(from.clone()));
        }
        self.election_elapsed = 0;
        self.leader_contact_elapsed = 0;
        true
    }

    fn start_pre_vote(&mut self) {
        if !self.cfg.pre_vote {
            self.campaign(false);
            return;
        }
        self.role = Role::PreCandidate;
        self.leader = None;
        self.reset_election_timer();
        self.votes = BTreeMap::from([(self.cfg.id.clone(), true)]);
        if self.won(&self.votes) {
            self.campaign(false);
            return;
        }
        let msg = Message::PreVote {
            term: self.term.saturating_add(1),
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
        };
        self.send_to_members(msg);
    }

    fn campaign(&mut self, transfer: bool) {
        self.term = self.term.saturating_add(1);
        self.vote = Some(self.cfg.id.clone());
        self.persist_hard_state();
        self.role = Role::Candidate;
        self.leader = None;
        self.reset_election_timer();
        self.votes = BTreeMap::from([(self.cfg.id.clone(), true)]);
        self.event(format!("starting election for term {}", self.term));
        if self.won(&self.votes) {
            self.become_leader();
            return;
        }
        let msg = Message::Vote {
            term: self.term,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            transfer,
        };
        self.send_to_members(msg);
    }

    fn become_leader(&mut self) {
        self.check(
            self.role == Role::Candidate || self.role == Role::PreCandidate,
            "only a candidate becomes leader",
        );
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id.clone());
        self.transfer = None;
        self.lease_forfeited = false;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        let next = self.log.last_index() + 1;
        self.progress = self
            .membership
            .ids()
            .filter(|id| **id != self.cfg.id)
            .map(|id| (id.clone(), Progress::new(next)))
            .collect();
        self.event(format!(
            "became leader in term {} (last index {})",
            self.term,
            self.log.last_index()
        ));
        self.quorum_lost = false;
        if !self.cfg.bugs.commit_old_term {
            // Committing this no-op commits everything before it (paper section 5.4.2).
            self.append_as_leader(EntryKind::Noop);
        } else {
            // BUG commit-old-term: instead of the no-op, re-replicate what we inherited
            // before taking proposals, and count those entries committed once a majority
            // stores them. A deadline keeps an unreachable member from blocking writes.
            self.catch_up = Some((
                self.log.last_index(),
                self.now_ticks + self.cfg.election_ticks,
            ));
            self.broadcast_append();
            self.maybe_commit();
        }
    }

    fn won(&self, votes: &BTreeMap<NodeId, bool>) -> bool {
        let granted = votes
            .iter()
            .filter(|(id, g)| **g && self.membership.contains(id))
            .count();
        granted >= self.membership.quorum()
    }

    fn check_quorum(&mut self) -> bool {
        let mut active = usize::from(self.membership.contains(&self.cfg.id));
        for (id, pr) in self.progress.iter_mut() {
            if pr.active && self.membership.contains(id) {
                active += 1;
            }
            pr.active = false;
        }
        active >= self.membership.quorum()
    }

    fn log_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        (last_term, last_index) >= (self.log.last_term(), self.log.last_index())
    }

    fn committed_in_term(&self) -> bool {
        self.cfg.bugs.commit_old_term || self.log.term(self.commit) == Some(self.term)
    }

    // ----- replication ----------------------------------------------------------------

    fn check_can_propose(&mut self) -> Result<(), RaftError> {
        if self.role != Role::Leader {
            return Err(RaftError::NotLeader {
                leader: self.leader.clone(),
            });
        }
        if self.transfer.is_some() {
            return Err(RaftError::Transferring);
        }
        self.end_catch_up_when_done();
        if self.catch_up.is_some() {
            return Err(RaftError::CatchingUp);
        }
        Ok(())
    }

    /// Ends the `commit-old-term` catch-up phase once every member holds the log the
    /// leader was elected with, or its deadline passed (a member may be unreachable).
    fn end_catch_up_when_done(&mut self) {
        let Some((index, deadline)) = self.catch_up else {
            return;
        };
        let all_have_it = self
            .progress
            .iter()
            .filter(|(id, _)| self.membership.contains(id))
            .all(|(_, pr)| pr.matched >= index);
        if all_have_it || self.now_ticks >= deadline {
            self.catch_up = None;
            self.event(format!(
                "catch-up done in term {}: taking proposals",
                self.term
            ));
        }
    }

    fn append_as_leader(&mut self, kind: EntryKind) -> (Index, Term) {
        let index = self.log.last_index() + 1;
        self.append_local(vec![Entry {
            term: self.term,
            index,
            kind,
        }]);
        // Sent by `take_ready`, so a batch of proposals travels in one message per peer.
        self.unsent_from = Some(self.unsent_from.unwrap_or(index));
        self.maybe_commit();
        (index, self.term)
    }

    fn append_local(&mut self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        for e in &entries {
            self.log.push(e.clone());
            if let EntryKind::Config(m) = &e.kind {
                self.set_membership(m.clone(), e.index);
            }
        }
        if let Some(LogOp::Append(v)) = self.ready.log_ops.last_mut() {
            v.extend(entries);
        } else {
            self.ready.log_ops.push(LogOp::Append(entries));
        }
    }

    fn truncate_local(&mut self, from: Index) {
        self.check(
            from > self.commit || self.cfg.bugs.commit_old_term,
            "a committed entry is being overwritten",
        );
        self.log.truncate_from(from);
        self.ready.log_ops.push(LogOp::Truncate { from });
        if self.membership_index >= from {
            self.recompute_membership();
        }
    }

    fn set_membership(&mut self, m: Membership, index: Index) {
        if m != self.membership {
            self.event(format!(
                "membership is now {:?} (entry {index})",
                m.ids().collect::<Vec<_>>()
            ));
        }
        self.membership = m;
        self.membership_index = index;
        if self.role == Role::Leader {
            let next = self.log.last_index() + 1;
            let me = self.cfg.id.clone();
            for id in self.membership.ids() {
                if *id != me && !self.progress.contains_key(id) {
                    self.progress.insert(id.clone(), Progress::new(next));
                }
            }
            let members = self.membership.clone();
            self.progress.retain(|id, _| members.contains(id));
        }
    }

    fn recompute_membership(&mut self) {
        let found = self.log.entries().iter().rev().find_map(|e| match &e.kind {
            EntryKind::Config(m) => Some((m.clone(), e.index)),
            _ => None,
        });
        let (m, index) = found.unwrap_or((self.base_membership.clone(), self.log.offset()));
        self.set_membership(m, index);
    }

    fn membership_at(&self, index: Index) -> Membership {
        self.log
            .slice(self.log.offset() + 1, index)
            .iter()
            .rev()
            .find_map(|e| match &e.kind {
                EntryKind::Config(m) => Some(m.clone()),
                _ => None,
            })
            .unwrap_or_else(|| self.base_membership.clone())
    }

    fn handle_append(
        &mut self,
        from: &NodeId,
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
        seq: u64,
    ) {
        let contiguous = entries.iter().enumerate().all(|(i, e)| {
            Some(e.index) == prev_index.checked_add(1 + i as Index) && e.term <= self.term
        });
        if !contiguous {
            return; // malformed; the leader will resend
        }
        if prev_index < self.commit {
            // Everything up to our commit index matches any leader's log; resync from there.
            let matched = self.commit;
            self.send_append_resp(from, true, matched, 0, None, seq);
            return;
        }
        if self.log.term(prev_index) != Some(prev_term) {
            let (conflict_index, conflict_term) = if prev_index > self.log.last_index() {
                (self.log.last_index() + 1, None)
            } else {
                let t = self.log.term(prev_index);
                (self.log.first_index_of_term_at(prev_index), t)
            };
            self.send_append_resp(from, false, 0, conflict_index, conflict_term, seq);
            return;
        }
        let last_new = prev_index + entries.len() as Index;
        let mut to_append = Vec::new();
        for e in entries {
            if to_append.is_empty() {
                match self.log.term(e.index) {
                    Some(t) if t == e.term => continue,
                    Some(_) => self.truncate_local(e.index),
                    None => {}
                }
            }
            to_append.push(e);
        }
        self.append_local(to_append);
        let new_commit = commit.min(last_new);
        if new_commit > self.commit {
            self.set_commit(new_commit);
        }
        self.send_append_resp(from, true, last_new, 0, None, seq);
    }

    fn send_append_resp(
        &mut self,
        to: &NodeId,
        success: bool,
        match_index: Index,
        conflict_index: Index,
        conflict_term: Option<Term>,
        seq: u64,
    ) {
        let msg = Message::AppendResp {
            term: self.term,
            success,
            match_index,
            conflict_index,
            conflict_term,
            seq,
        };
        self.send(to, msg);
    }

    fn handle_append_resp(
        &mut self,
        from: &NodeId,
        success: bool,
        match_index: Index,
        conflict_index: Index,
        conflict_term: Option<Term>,
        seq: u64,
    ) {
        let last_index = self.log.last_index();
        let hint = conflict_term
            .and_then(|t| self.log.last_index_of_term(t).map(|i| i + 1))
            .unwrap_or(conflict_index);
        let Some(pr) = self.progress.get_mut(from) else {
            return;
        };
        let old_next = pr.next;
        if success {
            pr.matched = pr.matched.max(match_index.min(last_index));
            pr.next = pr.next.max(pr.matched + 1);
        } else {
            pr.next = hint.min(pr.next).max(pr.matched + 1);
        }
        // A refusal that does not move `next` back would be answered by the same message
        // and refused again: leave it to the next heartbeat instead of ping-ponging (only
        // a follower whose log contradicts what it acknowledged does that, e.g. under a
        // bug that overwrote committed entries).
        let behind = if success {
            pr.next <= last_index
        } else {
            pr.next < old_next
        };
        self.note_ack(from, seq);
        if success {
            self.maybe_commit();
            self.after_progress(from);
        }
        if behind && self.role == Role::Leader {
            self.send_append(from);
        }
    }

    /// Sends a TimeoutNow when the transfer target has caught up.
    fn after_progress(&mut self, from: &str) {
        let Some((target, _)) = &self.transfer else {
            return;
        };
        if target != from {
            return;
        }
        let caught_up = self
            .progress
            .get(from)
            .is_some_and(|pr| pr.matched == self.log.last_index());
        if caught_up {
            let target = target.clone();
            self.lease_forfeited = true;
            self.send(&target, Message::TimeoutNow { term: self.term });
        }
    }

    fn note_ack(&mut self, from: &str, seq: u64) {
        let sent_lease_tick = self
            .seq_ticks
            .iter()
            .rev()
            .find(|(s, _)| *s == seq)
            .map(|(_, t)| *t);
        if let Some(pr) = self.progress.get_mut(from) {
            pr.active = true;
            if seq > pr.acked_seq {
                pr.acked_seq = seq;
                if sent_lease_tick.is_some() {
                    pr.acked_sent_lease_tick = sent_lease_tick;
                }
            }
        }
        self.advance_reads();
    }

    fn note_seq_tick(&mut self) {
        self.seq_ticks.push_back((self.seq, self.lease_now_ticks));
        while self.seq_ticks.len() > MAX_SEQ_TICKS {
            self.seq_ticks.pop_front();
        }
    }

    /// The `quorum`-th largest of the members' values (`mine` for ourselves).
    fn quorum_value(&self, mine: u64, of: impl Fn(&Progress) -> Option<u64>) -> Option<u64> {
        let mut values: Vec<u64> = self
            .membership
            .ids()
            .filter_map(|id| {
                if *id == self.cfg.id {
                    Some(mine)
                } else {
                    self.progress.get(id).and_then(&of)
                }
            })
            .collect();
        values.sort_unstable_by(|a, b| b.cmp(a));
        values.get(self.membership.quorum() - 1).copied()
    }

    fn maybe_commit(&mut self) {
        let Some(n) = self.quorum_value(self.log.last_index(), |p| Some(p.matched)) else {
            return;
        };
        if n <= self.commit {
            return;
        }
        let ours = self.log.term(n) == Some(self.term);
        if ours || (self.cfg.bugs.commit_old_term && self.log.term(n).is_some()) {
            let first_in_term = !self.committed_in_term();
            self.set_commit(n);
            if first_in_term || self.cfg.bugs.commit_old_term {
                let waiting = std::mem::take(&mut self.reads_before_commit);
                for ctx in waiting {
                    if self.read_index(ctx).is_err() {
                        self.ready.failed_reads.push(ctx);
                    }
                }
            }
        }
    }

    fn set_commit(&mut self, index: Index) {
        self.check(index >= self.commit, "the commit index moved back");
        self.commit = index;
        let upto = index.min(self.log.last_index());
        if upto > self.handed {
            let from = self.handed + 1;
            self.ready
                .committed
                .extend(self.log.slice(from, upto).iter().cloned());
            self.handed = upto;
        }
        if self.role == Role::Leader
            && !self.membership.contains(&self.cfg.id)
            && self.membership_index <= self.commit
        {
            self.event("removed from the cluster; stepping down".to_string());
            self.become_follower(self.term, None);
        }
    }

    fn handle_snapshot(&mut self, from: &NodeId, snap: Snapshot, seq: u64) {
        if snap.index <= self.commit {
            let matched = self.commit;
            self.send(
                from,
                Message::InstallSnapshotResp {
                    term: self.term,
                    match_index: matched,
                    seq,
                },
            );
            return;
        }
        if self.log.term(snap.index) != Some(snap.term) && snap.index < self.log.last_index() {
            self.truncate_local(snap.index + 1);
        }
        self.log.compact_to(snap.index, snap.term);
        self.base_membership = snap.membership.clone();
        self.snapshot = Some(snap.clone());
        self.recompute_membership();
        self.commit = snap.index;
        self.handed = snap.index;
        self.ready.committed.retain(|e| e.index > snap.index);
        self.ready.log_ops.push(LogOp::Snapshot(snap.clone()));
        self.event(format!("installed snapshot at index {}", snap.index));
        let index = snap.index;
        self.ready.snapshot_to_apply = Some(snap);
        self.send(
            from,
            Message::InstallSnapshotResp {
                term: self.term,
                match_index: index,
                seq,
            },
        );
    }

    /// Periodic heartbeat: resends whatever a follower has not acknowledged (covers lost
    /// messages) and carries a fresh `seq` for reads and leases.
    fn broadcast_append(&mut self) {
        self.seq += 1;
        self.note_seq_tick();
        let peers: Vec<NodeId> = self.progress.keys().cloned().collect();
        let last = self.log.last_index();
        for p in peers {
            if let Some(pr) = self.progress.get_mut(&p) {
                if pr.matched < last {
                    pr.next = pr.matched + 1;
                }
            }
            self.send_append(&p);
        }
    }

    fn send_append(&mut self, to: &str) {
        let Some(pr) = self.progress.get(to) else {
            return;
        };
        let next = pr.next;
        if next <= self.log.offset() {
            if let Some(snap) = self.snapshot.clone() {
                let msg = Message::InstallSnapshot {
                    term: self.term,
                    snapshot: snap.clone(),
                    seq: self.seq,
                };
                if let Some(pr) = self.progress.get_mut(to) {
                    pr.next = snap.index + 1;
                }
                self.send(to, msg);
            }
            return;
        }
        let prev_index = next - 1;
        let prev_term = self.log.term(prev_index).expect("prev entry is in the log");
        let max = self.cfg.max_entries_per_append.max(1) as Index;
        let entries = self.log.slice(next, next + max - 1).to_vec();
        if let (Some(last), Some(pr)) = (entries.last(), self.progress.get_mut(to)) {
            pr.next = last.index + 1;
        }
        let msg = Message::Append {
            term: self.term,
            prev_index,
            prev_term,
            entries,
            commit: self.commit,
            seq: self.seq,
        };
        self.send(to, msg);
    }

    /// An entry-less Append that only proves leadership for the current `seq`.
    fn send_heartbeat(&mut self, to: &str) {
        let Some(pr) = self.progress.get(to) else {
            return;
        };
        let prev_index = pr.next - 1;
        let Some(prev_term) = self.log.term(prev_index) else {
            self.send_append(to);
            return;
        };
        let msg = Message::Append {
            term: self.term,
            prev_index,
            prev_term,
            entries: Vec::new(),
            // The follower clamps this to prev_index, which matches our log.
            commit: self.commit,
            seq: self.seq,
        };
        self.send(to, msg);
    }

    // ----- reads ----------------------------------------------------------------------

    fn advance_reads(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let Some(acked) = self.quorum_value(self.seq, |p| Some(p.acked_seq)) else {
            return;
        };
        while let Some(&(ctx, index, seq)) = self.pending_reads.front() {
            if seq > acked {
                break;
            }
            self.pending_reads.pop_front();
            self.ready.reads.push(ReadState { ctx, index });
        }
    }

    fn lease_valid(&self) -> bool {
        if self.role != Role::Leader
            || self.transfer.is_some()
            || self.lease_forfeited
            || !self.committed_in_term()
        {
            return false;
        }
        let Some(start) = self.quorum_value(self.lease_now_ticks, |p| p.acked_sent_lease_tick)
        else {
            return false;
        };
        let margin = if self.cfg.bugs.lease_no_margin {
            0
        } else {
            self.cfg.lease_margin_ticks
        };
        self.lease_now_ticks < start + self.cfg.election_ticks.saturating_sub(margin)
    }

    fn fail_pending_reads(&mut self) {
        let pending = self.pending_reads.drain(..).map(|(ctx, _, _)| ctx);
        self.ready.failed_reads.extend(pending);
        self.ready
            .failed_reads
            .append(&mut self.reads_before_commit);
    }

    // ----- output ---------------------------------------------------------------------

    fn persist_hard_state(&mut self) {
        self.ready.hard_state = Some(HardState {
            term: self.term,
            vote: self.vote.clone(),
        });
    }

    fn send(&mut self, to: &str, msg: Message) {
        self.ready.messages.push(Envelope {
            from: self.cfg.id.clone(),
            to: to.to_string(),
            msg,
        });
    }

    fn send_to_members(&mut self, msg: Message) {
        let peers: Vec<NodeId> = self
            .membership
            .ids()
            .filter(|id| **id != self.cfg.id)
            .cloned()
            .collect();
        for p in peers {
            self.send(&p, msg.clone());
        }
    }

    fn event(&mut self, text: String) {
        self.ready.events.push(text);
    }

    fn check(&self, ok: bool, what: &str) {
        if self.cfg.assert_invariants {
            assert!(ok, "raft invariant violated on {}: {what}", self.cfg.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::durable::DurableState;

    /// A tiny lossless cluster with manual delivery, for focused scenarios (the
    /// randomized simulator lives in `tests/sim.rs`).
    struct Net {
        nodes: Vec<Raft>,
        disks: Vec<DurableState>,
        inbox: Vec<Envelope>,
        /// Indexes of nodes whose messages (both ways) are dropped.
        isolated: Vec<usize>,
        /// Every entry each node handed to its state machine, by index.
        applied: Vec<BTreeMap<Index, Entry>>,
    }

    fn members(n: usize) -> Membership {
        Membership {
            members: (1..=n).map(|i| (format!("n{i}"), String::new())).collect(),
        }
    }

    impl Net {
        fn new(n: usize) -> Net {
            Net::with_config(n, |_| {})
        }

        fn with_config(n: usize, adjust: impl Fn(&mut Config)) -> Net {
            let nodes = (0..n)
                .map(|i| {
                    let mut cfg = Config::new(&format!("n{}", i + 1));
                    adjust(&mut cfg);
                    Raft::new(cfg, &DurableState::default(), members(n), i as u64)
                })
                .collect();
            Net {
                nodes,
                disks: vec![DurableState::default(); n],
                inbox: Vec::new(),
                isolated: Vec::new(),
                applied: vec![BTreeMap::new(); n],
            }
        }

        fn idx(id: &str) -> usize {
            id[1..].parse::<usize>().unwrap() - 1
        }

        fn flush(&mut self, i: usize) {
            let r = self.nodes[i].take_ready();
            if let Some(hs) = r.hard_state {
                self.disks[i].hard_state = hs;
            }
            for op in &r.log_ops {
                self.disks[i].apply(op).unwrap();
            }
            for e in r.committed {
                self.applied[i].insert(e.index, e);
            }
            self.inbox.extend(r.messages);
        }

        /// Delivers until quiet (bounded).
        fn settle(&mut self) {
            for i in 0..self.nodes.len() {
                self.flush(i);
            }
            for _ in 0..10_000 {
                let Some(env) = self.inbox.pop() else { return };
                let (f, t) = (Net::idx(&env.from), Net::idx(&env.to));
                if self.isolated.contains(&f) || self.isolated.contains(&t) {
                    continue;
                }
                self.nodes[t].step(env);
                self.flush(t);
            }
            panic!("network did not settle");
        }

        fn tick_all(&mut self, ticks: usize) {
            for _ in 0..ticks {
                for i in 0..self.nodes.len() {
                    self.nodes[i].tick();
                }
                self.settle();
            }
        }

        fn tick_all_but(&mut self, skip: usize, ticks: usize) {
            for _ in 0..ticks {
                for i in (0..self.nodes.len()).filter(|i| *i != skip) {
                    self.nodes[i].tick();
                }
                self.settle();
            }
        }

        fn leader(&self) -> Option<usize> {
            let ls: Vec<usize> = (0..self.nodes.len())
                .filter(|i| !self.isolated.contains(i) && self.nodes[*i].role() == Role::Leader)
                .collect();
            (ls.len() == 1).then(|| ls[0])
        }

        fn elect(&mut self) -> usize {
            for _ in 0..100 {
                self.tick_all(1);
                if let Some(l) = self.leader() {
                    return l;
                }
            }
            panic!("no leader elected within 100 ticks");
        }
    }

    #[test]
    fn a_rejoining_partitioned_node_does_not_disrupt_the_leader_thanks_to_pre_vote() {
        let mut net = Net::new(3);
        let l = net.elect();
        let term = net.nodes[l].term();
        let lonely = (l + 1) % 3;
        net.isolated.push(lonely);
        net.tick_all(100); // many election timeouts pass on the isolated node
        assert_eq!(
            net.nodes[lonely].term(),
            term,
            "pre-vote must not bump the term"
        );
        net.isolated.clear();
        net.tick_all(30);
        assert_eq!(net.leader(), Some(l));
        assert_eq!(net.nodes[l].term(), term);
    }

    #[test]
    fn leader_transfer_hands_over_to_the_target() {
        let mut net = Net::new(3);
        let l = net.elect();
        let target = (l + 2) % 3;
        let id = net.nodes[target].id().to_string();
        net.nodes[l].transfer_leader(&id).unwrap();
        assert_eq!(
            net.nodes[l].propose("x".into()),
            Err(RaftError::Transferring),
            "no proposals while handing over"
        );
        net.settle();
        assert_eq!(net.leader(), Some(target));
    }

    #[test]
    fn read_index_waits_for_a_quorum_round() {
        let mut net = Net::new(3);
        let l = net.elect();
        net.tick_all(3); // commit the leader's no-op
        for i in 0..3 {
            if i != l {
                net.isolated.push(i);
            }
        }
        net.nodes[l].read_index(7).unwrap();
        net.settle();
        let ready = net.nodes[l].take_ready();
        assert!(
            ready.reads.is_empty(),
            "an isolated leader must not confirm reads"
        );
        net.isolated.clear();
        net.nodes[l].read_index(8).unwrap();
        let mut reads = Vec::new();
        for _ in 0..10 {
            net.flush(l);
            let env: Vec<Envelope> = std::mem::take(&mut net.inbox);
            for e in env {
                let t = Net::idx(&e.to);
                net.nodes[t].step(e);
                net.flush(t);
            }
            for e in std::mem::take(&mut net.inbox) {
                let t = Net::idx(&e.to);
                net.nodes[t].step(e);
                reads.extend(net.nodes[t].take_ready().reads.into_iter().map(|r| r.ctx));
            }
        }
        assert!(
            reads.contains(&8),
            "read confirmed once a quorum answered: {reads:?}"
        );
    }

    #[test]
    fn a_lagging_follower_catches_up_through_install_snapshot() {
        let mut net = Net::new(3);
        let l = net.elect();
        let lag = (l + 1) % 3;
        net.isolated.push(lag);
        for i in 0..10 {
            net.nodes[l].propose(format!("cmd{i}")).unwrap();
        }
        net.tick_all(3);
        let commit = net.nodes[l].commit_index();
        assert!(commit >= 11, "entries committed by the majority");
        net.nodes[l].compact(commit, "state".into()).unwrap();
        net.flush(l);
        assert_eq!(net.nodes[l].snapshot_index(), commit);
        net.isolated.clear();
        net.tick_all(5);
        assert!(
            net.nodes[lag].snapshot_index() >= commit,
            "follower installed the snapshot"
        );
        assert_eq!(net.nodes[lag].commit_index(), net.nodes[l].commit_index());
        let snap = net.disks[lag]
            .snapshot
            .as_ref()
            .expect("snapshot persisted");
        assert_eq!(snap.data, "state");
        assert_eq!(
            net.nodes[lag].log_term(commit),
            net.nodes[l].log_term(commit)
        );
    }

    /// The leader's clock runs slow: 8 of its ticks pass while the isolated majority's
    /// clocks run 25 ticks, elect a new leader and commit a write. Does the old leader
    /// still serve a lease read (necessarily stale)?
    fn old_leader_serves_a_lease_read_after_being_replaced(no_margin: bool) -> bool {
        let mut net = Net::with_config(3, |c| {
            c.read_mode = ReadMode::Lease;
            c.bugs.lease_no_margin = no_margin;
            c.assert_invariants = false;
        });
        let l = net.elect();
        net.tick_all(3);
        for _ in 0..20 {
            if net.nodes[l].election_elapsed == 0 {
                break; // a check-quorum window just began: no step-down for 10 ticks
            }
            net.tick_all(1);
        }
        net.nodes[l].broadcast_append();
        net.settle(); // both followers acknowledge: the lease starts now
        net.isolated.push(l);
        for _ in 0..25 {
            for i in (0..3).filter(|i| *i != l) {
                net.nodes[i].tick();
            }
            net.settle();
        }
        let new = net.leader().expect("the majority elected a new leader");
        net.nodes[new].propose("x=2".into()).unwrap();
        net.tick_all_but(l, 3);
        assert!(net.nodes[new].commit_index() > net.nodes[l].commit_index());
        for _ in 0..8 {
            net.nodes[l].tick();
            net.flush(l);
        }
        assert_eq!(net.nodes[l].role(), Role::Leader, "still believes it leads");
        net.nodes[l].read_index(99).unwrap();
        let ready = net.nodes[l].take_ready();
        ready.reads.iter().any(|r| r.ctx == 99)
    }

    #[test]
    fn lease_without_drift_margin_serves_a_stale_read_under_clock_skew() {
        assert!(old_leader_serves_a_lease_read_after_being_replaced(true));
    }

    #[test]
    fn lease_with_drift_margin_expires_before_the_skewed_majority_elects() {
        assert!(!old_leader_serves_a_lease_read_after_being_replaced(false));
    }

    /// Whether leader `l` answers a lease read at once (no quorum round).
    fn serves_lease_read_at_once(net: &mut Net, l: usize, ctx: u64) -> bool {
        net.nodes[l].read_index(ctx).unwrap();
        let ready = net.nodes[l].take_ready();
        ready.reads.iter().any(|r| r.ctx == ctx)
    }

    /// With an external (wall) lease clock, the lease ends when that clock says so, not
    /// when the ticks do; stepping that clock back revives an expired lease by the step.
    fn lease_revived_by_stepping_the_wall_clock_back(no_margin: bool, step_back: u64) -> bool {
        let mut net = Net::with_config(3, |c| {
            c.read_mode = ReadMode::Lease;
            c.bugs.lease_no_margin = no_margin;
        });
        let l = net.elect();
        let wall = 1_000_000;
        net.nodes[l].set_lease_clock(wall);
        net.nodes[l].broadcast_append();
        net.settle(); // a quorum acknowledged a broadcast sent at `wall`
        assert!(serves_lease_read_at_once(&mut net, l, 1), "the lease holds");
        net.settle();
        let e = net.nodes[l].cfg.election_ticks;
        let lease = if no_margin {
            e
        } else {
            e - net.nodes[l].cfg.lease_margin_ticks
        };
        // Ticks alone do not end a wall-clock lease; the wall clock reaching its end does.
        net.nodes[l].tick();
        net.nodes[l].set_lease_clock(wall + lease);
        assert!(
            !serves_lease_read_at_once(&mut net, l, 2),
            "the lease expired"
        );
        net.settle();
        net.nodes[l].set_lease_clock(wall + lease - step_back);
        serves_lease_read_at_once(&mut net, l, 3)
    }

    #[test]
    fn wall_clock_stepped_back_lengthens_the_lease_with_or_without_margin() {
        assert!(lease_revived_by_stepping_the_wall_clock_back(true, 1));
        assert!(lease_revived_by_stepping_the_wall_clock_back(false, 1));
        assert!(!lease_revived_by_stepping_the_wall_clock_back(false, 0));
    }

    /// Ticks (everyone) until the connected nodes have a leader of a term above the one
    /// `previous` led (a deposed leader may still believe it leads its old term).
    fn next_leader(net: &mut Net, previous: usize) -> usize {
        let term = net.nodes[previous].term();
        for _ in 0..1_000 {
            net.tick_all(1);
            if let Some(l) = net.leader().filter(|l| net.nodes[*l].term() > term) {
                return l;
            }
        }
        panic!("no leader of a term above {term} among the connected nodes within 1000 ticks");
    }

    /// Raft's figure 8 on three nodes, driven by partitions only: isolate the leader while
    /// it takes a write (partial replication), then isolate each newly elected leader in
    /// turn. Returns whether some node applied an entry that the final log replaced.
    fn figure_8_by_isolating_each_new_leader(bug: bool) -> bool {
        let mut net = Net::with_config(3, |c| {
            c.bugs.commit_old_term = bug;
            c.assert_invariants = !bug;
        });
        let l1 = net.elect();
        net.tick_all(3);
        net.nodes[l1].propose("w0".into()).unwrap();
        net.tick_all(5);
        net.isolated = vec![l1];
        net.nodes[l1].propose("A".into()).unwrap();
        net.flush(l1);
        let l2 = next_leader(&mut net, l1);
        assert_ne!(l2, l1);
        if bug {
            // The catch-up phase: l1 cannot be reached, so no entry of l2's term exists.
            assert_eq!(
                net.nodes[l2].propose("x".into()),
                Err(RaftError::CatchingUp)
            );
        }
        net.isolated = vec![l2];
        // l2, cut off, takes a write once its catch-up deadline passed: an entry of a later
        // term than A, at A's index, on l2 alone.
        let mut proposed = false;
        for _ in 0..net.nodes[l2].cfg.election_ticks + 2 {
            if net.nodes[l2].propose("B".into()).is_ok() {
                proposed = true;
                break;
            }
            net.nodes[l2].tick();
            net.flush(l2);
        }
        assert!(proposed, "l2 took a write before check-quorum deposed it");
        net.inbox.clear();
        let l3 = next_leader(&mut net, l2);
        if bug {
            assert_eq!(
                l3, l1,
                "only l1 (holding A) can win: the third node is behind it"
            );
        }
        net.tick_all(5);
        net.isolated = vec![l3];
        let l4 = next_leader(&mut net, l3);
        if bug {
            assert_eq!(l4, l2, "B's term beats A's: l2 wins and overwrites A");
        }
        net.isolated.clear();
        net.tick_all(60);
        let l = net.leader().expect("a leader after healing");
        let last = net.nodes[l].log_entries().to_vec();
        (0..3).any(|i| {
            net.applied[i]
                .iter()
                .any(|(index, e)| last.iter().find(|x| x.index == *index) != Some(e))
        })
    }

    #[test]
    fn commit_old_term_loses_an_applied_entry_in_figure_8() {
        assert!(figure_8_by_isolating_each_new_leader(true));
    }

    #[test]
    fn the_no_op_keeps_figure_8_from_losing_anything() {
        assert!(!figure_8_by_isolating_each_new_leader(false));
    }

    #[test]
    fn commit_old_term_catch_up_ends_when_every_member_has_the_log() {
        let mut net = Net::with_config(3, |c| c.bugs.commit_old_term = true);
        let l = net.elect();
        net.settle();
        assert!(
            net.nodes[l].propose("x".into()).is_ok(),
            "all members reached"
        );
    }

    /// A leader cut off from its followers whose lease clock stands still (stepped back
    /// by as much as time passes) keeps leading, and serving lease reads, while its lease
    /// holds; it steps down once the lease clock passes the lease. A read-index leader
    /// steps down after check-quorum whatever its clock says.
    fn cut_off_leader_still_leads_after_two_election_timeouts(mode: ReadMode) -> bool {
        let mut net = Net::with_config(3, |c| c.read_mode = mode);
        let l = net.elect();
        net.tick_all(3);
        let wall = 1_000_000;
        net.nodes[l].set_lease_clock(wall);
        net.nodes[l].broadcast_append();
        net.settle();
        net.isolated.push(l);
        let e = net.nodes[l].cfg.election_ticks;
        for _ in 0..2 * e + 1 {
            net.nodes[l].tick();
            net.flush(l);
        }
        let still = net.nodes[l].role() == Role::Leader;
        if still {
            assert!(serves_lease_read_at_once(&mut net, l, 1), "the lease holds");
            net.nodes[l].set_lease_clock(wall + e);
            net.nodes[l].tick();
            assert_ne!(
                net.nodes[l].role(),
                Role::Leader,
                "stepped down at lease end"
            );
        }
        still
    }

    #[test]
    fn a_lease_leader_cut_off_leads_until_its_lease_ends_on_the_lease_clock() {
        assert!(cut_off_leader_still_leads_after_two_election_timeouts(
            ReadMode::Lease
        ));
        assert!(!cut_off_leader_still_leads_after_two_election_timeouts(
            ReadMode::ReadIndex
        ));
    }

    /// Garbage from peers (any term, index, hint) must never panic the core.
    #[test]
    fn random_peer_messages_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut cfg = Config::new("n1");
        cfg.assert_invariants = false;
        let mut r = Raft::new(cfg, &DurableState::default(), members(3), 1);
        let num = |rng: &mut rand::rngs::SmallRng| -> u64 {
            match rng.gen_range(0..4) {
                0 => 0,
                1 => rng.gen_range(0..20),
                2 => rng.gen_range(0..200),
                _ => u64::MAX - rng.gen_range(0..2),
            }
        };
        let mut steps_as_leader = 0;
        for step in 0..20_000u64 {
            if r.role() == Role::Leader {
                steps_as_leader += 1;
            }
            // Mostly plausible terms, so the core also reaches candidate and leader states.
            let term = match rng.gen_range(0..10) {
                0..=5 => r.term(),
                6..=7 => r.term().saturating_add(1),
                _ => num(&mut rng).min(r.term().saturating_add(2)),
            };
            let entries = |rng: &mut rand::rngs::SmallRng, prev: u64| -> Vec<Entry> {
                (0..rng.gen_range(0..4u64))
                    .map(|i| Entry {
                        term,
                        index: prev.wrapping_add(1 + i),
                        kind: EntryKind::Noop,
                    })
                    .collect()
            };
            let msg = match rng.gen_range(0..9) {
                0 => Message::PreVote {
                    term,
                    last_index: num(&mut rng),
                    last_term: num(&mut rng),
                },
                1 => Message::PreVoteResp {
                    term,
                    granted: rng.gen(),
                },
                2 => Message::Vote {
                    term,
                    last_index: num(&mut rng),
                    last_term: num(&mut rng),
                    transfer: rng.gen(),
                },
                3 => Message::VoteResp {
                    term,
                    granted: rng.gen(),
                },
                4 => {
                    let prev = num(&mut rng);
                    Message::Append {
                        term,
                        prev_index: prev,
                        prev_term: num(&mut rng),
                        entries: entries(&mut rng, prev),
                        commit: num(&mut rng),
                        seq: num(&mut rng),
                    }
                }
                5 => Message::AppendResp {
                    term,
                    success: rng.gen(),
                    match_index: num(&mut rng),
                    conflict_index: num(&mut rng),
                    conflict_term: rng.gen::<bool>().then(|| num(&mut rng)),
                    seq: num(&mut rng),
                },
                6 => Message::InstallSnapshot {
                    term,
                    snapshot: Snapshot {
                        index: num(&mut rng).min(1_000),
                        term: num(&mut rng),
                        membership: members(3),
                        data: String::new(),
                    },
                    seq: num(&mut rng),
                },
                7 => Message::InstallSnapshotResp {
                    term,
                    match_index: num(&mut rng),
                    seq: num(&mut rng),
                },
                _ => Message::TimeoutNow { term },
            };
            let from = if rng.gen() { "n2" } else { "n3" };
            r.step(Envelope {
                from: from.into(),
                to: "n1".into(),
                msg,
            });
            match step % 7 {
                0 | 4 | 5 => r.tick(),
                1 => drop(r.propose("x".into())),
                2 => drop(r.read_index(step)),
                3 => {
                    let handed = r.handed;
                    drop(r.compact(handed, String::new()));
                }
                _ => {}
            }
            drop(r.take_ready());
        }
        assert!(
            steps_as_leader > 100,
            "the garbage never made n1 lead: {steps_as_leader}"
        );
    }

    #[test]
    fn compaction_beyond_what_was_applied_is_refused() {
        let mut net = Net::new(1);
        let l = net.elect();
        let last = net.nodes[l].status().last_index;
        assert!(matches!(
            net.nodes[l].compact(last + 5, String::new()),
            Err(RaftError::CompactBeyondApplied { .. })
        ));
    }
}
