//! The data the Raft core exchanges with its shell: log entries, messages, persistent
//! state, snapshots and membership. Everything here is plain data (serde), so the shell
//! can put it on the wire or on disk as JSON without knowing Raft.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A node's name, e.g. `n1`.
pub type NodeId = String;
/// A Raft term.
pub type Term = u64;
/// A position in the replicated log; the first entry has index 1.
pub type Index = u64;

/// The voting members of the cluster, each with its Raft transport address.
/// Addresses ride along so that a node added later becomes reachable everywhere.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub members: BTreeMap<NodeId, String>,
}

impl Membership {
    pub fn contains(&self, id: &str) -> bool {
        self.members.contains_key(id)
    }
    /// How many votes (or acknowledgements) make a majority of this membership.
    pub fn quorum(&self) -> usize {
        self.members.len() / 2 + 1
    }
    pub fn ids(&self) -> impl Iterator<Item = &NodeId> {
        self.members.keys()
    }
}

/// A one-server-at-a-time membership change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum MembershipChange {
    Add { id: NodeId, addr: String },
    Remove { id: NodeId },
}

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// Appended by every new leader so it can commit (and serve reads) in its own term.
    Noop,
    /// An opaque state-machine command (JSON text for the KV store).
    Command(String),
    /// The membership from this entry on (effective as soon as it is appended).
    Config(Membership),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    pub index: Index,
    pub kind: EntryKind,
}

/// The part of the state that must be durable before a node answers anyone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: Term,
    pub vote: Option<NodeId>,
}

/// A state-machine snapshot covering the log up to and including `index`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub index: Index,
    pub term: Term,
    pub membership: Membership,
    /// The serialized state machine (opaque to the core).
    pub data: String,
}

/// A Raft RPC. Requests and responses are separate one-way messages, so the shell needs no
/// request/response matching and the simulator can drop, duplicate and reorder each alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Pre-vote: "would you vote for me in `term`?" — sent without bumping our own term,
    /// so a node that was partitioned away cannot disrupt a healthy leader on return.
    PreVote {
        term: Term,
        last_index: Index,
        last_term: Term,
    },
    /// `term` is the asked-for term when granted, the responder's term otherwise.
    PreVoteResp {
        term: Term,
        granted: bool,
    },
    /// `transfer` marks an election started by TimeoutNow: voters then skip the
    /// leader-stickiness check, because the old leader asked for it.
    Vote {
        term: Term,
        last_index: Index,
        last_term: Term,
        transfer: bool,
    },
    VoteResp {
        term: Term,
        granted: bool,
    },
    /// AppendEntries (also the heartbeat). `seq` is echoed back and lets the leader know
    /// which of its broadcasts a quorum has seen (ReadIndex and leases).
    Append {
        term: Term,
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
        seq: u64,
    },
    /// On rejection, `conflict_term`/`conflict_index` let the leader skip a whole term of
    /// divergent entries in one round trip instead of one entry per round trip.
    AppendResp {
        term: Term,
        success: bool,
        match_index: Index,
        conflict_index: Index,
        conflict_term: Option<Term>,
        seq: u64,
    },
    InstallSnapshot {
        term: Term,
        snapshot: Snapshot,
        seq: u64,
    },
    InstallSnapshotResp {
        term: Term,
        match_index: Index,
        seq: u64,
    },
    /// Leader transfer: "start an election now, skipping pre-vote".
    TimeoutNow {
        term: Term,
    },
}

impl Message {
    pub fn term(&self) -> Term {
        match self {
            Message::PreVote { term, .. }
            | Message::PreVoteResp { term, .. }
            | Message::Vote { term, .. }
            | Message::VoteResp { term, .. }
            | Message::Append { term, .. }
            | Message::AppendResp { term, .. }
            | Message::InstallSnapshot { term, .. }
            | Message::InstallSnapshotResp { term, .. }
            | Message::TimeoutNow { term } => *term,
        }
    }
}

/// A message with its sender and addressee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub from: NodeId,
    pub to: NodeId,
    pub msg: Message,
}

/// A change to the durable log, applied by the shell in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogOp {
    /// Drop every entry with index >= `from`.
    Truncate {
        from: Index,
    },
    Append(Vec<Entry>),
    /// Durably keep this snapshot and forget the entries it covers (index <= its index);
    /// entries after it stay (the core truncates first when they do not follow it).
    Snapshot(Snapshot),
}

/// A node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

impl Role {
    /// The name `/status` reports (a pre-candidate is still a follower to the outside).
    pub fn public_name(self) -> &'static str {
        match self {
            Role::Follower | Role::PreCandidate => "follower",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        }
    }
}

/// A linearizable read that may now be served once the state machine has applied `index`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadState {
    pub ctx: u64,
    pub index: Index,
}

/// Everything the core wants done after an input, in the order the shell must do it:
/// persist (`hard_state`, then `log_ops` in order) and fsync, then send `messages`, then
/// apply (`snapshot_to_apply`, then `committed` entries above the snapshot), then answer
/// `reads`. Sending before the fsync would let a crash forget a vote or an acknowledged
/// entry — exactly the `no-fsync` bug. One exception: a leader's `Append`s may leave
/// before its own fsync when the ready changes neither term nor vote and only appends,
/// provided the shell persists before it steps any further input (the leader counts
/// itself toward a commit only when it steps acknowledgements; see `node.rs`).
#[derive(Clone, Debug, Default)]
pub struct Ready {
    pub hard_state: Option<HardState>,
    pub log_ops: Vec<LogOp>,
    pub messages: Vec<Envelope>,
    pub snapshot_to_apply: Option<Snapshot>,
    pub committed: Vec<Entry>,
    pub reads: Vec<ReadState>,
    /// Reads that can no longer be served here (leadership lost); answer them with an error.
    pub failed_reads: Vec<u64>,
    /// Human-readable notes on role changes and elections, for the log.
    pub events: Vec<String>,
}

impl Ready {
    /// True when there is nothing to persist, send, apply or answer.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.log_ops.is_empty()
            && self.messages.is_empty()
            && self.snapshot_to_apply.is_none()
            && self.committed.is_empty()
            && self.reads.is_empty()
            && self.failed_reads.is_empty()
            && self.events.is_empty()
    }
    /// True when the shell must write (and fsync) before sending.
    pub fn needs_persist(&self) -> bool {
        self.hard_state.is_some() || !self.log_ops.is_empty()
    }
}
