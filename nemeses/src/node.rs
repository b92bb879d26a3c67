//! The traits through which nemeses act on nodes and on the target.

use std::net::IpAddr;
use std::time::Duration;
use thiserror::Error;

/// What a command run on a node returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum NodeError {
    #[error("on {node}: `{command}` exited with {status}: {stderr}")]
    Failed {
        node: String,
        command: String,
        status: i32,
        stderr: String,
    },
    #[error("on {node}: `{command}` did not finish within {timeout_ms} ms")]
    Timeout {
        node: String,
        command: String,
        timeout_ms: u64,
    },
    #[error("on {node}: {message}")]
    Unreachable { node: String, message: String },
    #[error("{0}")]
    Unsupported(String),
}

/// A node a command can run on, as root: a local network namespace or an SSH host.
pub trait NodeShell: Send + Sync {
    /// The node's name (`n1`).
    fn name(&self) -> &str;
    /// The address peers use to reach it; iptables rules are written against it.
    fn address(&self) -> IpAddr;
    /// Runs `command` with `sh -c` on the node; a non-zero exit is returned, not an error.
    fn exec(&self, command: &str, timeout: Duration) -> Result<ExecOutput, NodeError>;
    /// Like [`exec`](Self::exec) but a non-zero exit is a [`NodeError::Failed`].
    fn exec_ok(&self, command: &str, timeout: Duration) -> Result<ExecOutput, NodeError> {
        let out = self.exec(command, timeout)?;
        if out.success() {
            Ok(out)
        } else {
            Err(NodeError::Failed {
                node: self.name().to_string(),
                command: command.to_string(),
                status: out.status,
                stderr: out.stderr.trim().to_string(),
            })
        }
    }
    /// True for a local namespace node (clock faults then use libfaketime), false over SSH.
    fn is_local(&self) -> bool;
    /// Where this node keeps the distest binary that faults run node-side processes with
    /// (the latency delayer), and their state; `None` when it cannot run them. Says where
    /// without installing anything: cleanup asks it too.
    fn helper(&self) -> Option<Helper> {
        None
    }
    /// Makes sure [`helper`](Self::helper)'s program is on the node and runs there (an
    /// upload over SSH, once per run; nothing to do on local nodes, which share this
    /// machine's files).
    fn install_helper(&self) -> Result<Helper, NodeError> {
        self.helper().ok_or_else(|| {
            NodeError::Unsupported(format!(
                "node {} cannot run distest's node-side helper processes",
                self.name()
            ))
        })
    }
}

/// A distest binary on a node and a directory for the state (pid and stats files) of the
/// processes faults run from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Helper {
    /// The program's path on the node.
    pub program: String,
    /// A directory of this node alone (local nodes share a filesystem).
    pub state_dir: std::path::PathBuf,
}

/// How the clock of a target's process on a node can be moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClockSupport {
    /// The process runs under libfaketime reading this file (`FAKETIME_TIMESTAMP_FILE`):
    /// writing an offset such as `+1.5s` into it moves the process' clock.
    FaketimeFile(std::path::PathBuf),
    /// The node's system clock can be set (`date -s`, settimeofday): SSH nodes.
    SystemClock,
    /// Clock faults cannot reach this target; the sentence says why.
    Unsupported(String),
}

/// Where the target keeps its data on a node, for the disk faults (`lose-unsynced`,
/// `corrupt-file`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir {
    /// The directory the target reads and writes (a lazyfs mount point when served
    /// through lazyfs).
    pub path: std::path::PathBuf,
    /// Set when the directory is served through lazyfs: how to reach its control channel.
    pub lazyfs: Option<LazyfsControl>,
}

/// The lazyfs serving a data directory: its program on the node and its control socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LazyfsControl {
    pub program: std::path::PathBuf,
    pub socket: std::path::PathBuf,
}

/// What the system under test offers to nemeses, per node.
pub trait TargetControl: Send + Sync {
    /// SIGKILL the target's process on `node` (it stays down until `start`).
    fn kill(&self, node: &str) -> Result<(), NodeError>;
    /// Start (or restart) the target's process on `node`; idempotent if it runs.
    fn start(&self, node: &str) -> Result<(), NodeError>;
    /// SIGSTOP the target's process on `node`.
    fn pause(&self, node: &str) -> Result<(), NodeError>;
    /// SIGCONT the target's process on `node`.
    fn resume(&self, node: &str) -> Result<(), NodeError>;
    /// The nodes the target currently considers primaries (Raft leader, ...); may be empty.
    /// Most recent first: when an old leader that was cut off still believes it leads,
    /// the leader of the newest term comes first (schedules aim `@leader` at the first).
    fn primaries(&self) -> Vec<String>;
    /// Whether the target has primaries at all (leader-based systems do; CRDT stores and
    /// in-process fakes do not). Static for a run: schedules draw from it, and a seed
    /// must replay the same schedule, so faults aimed at "the leader" are never drawn for
    /// a target without one.
    fn has_primaries(&self) -> bool {
        true
    }
    /// Whether kill, start, pause and resume can reach the target's processes at all;
    /// the sentence says why not (an in-process target has none). Asked before a run.
    fn process_faults(&self) -> Result<(), String> {
        Ok(())
    }
    /// How clock faults can reach the target on `node`.
    fn clock_support(&self, node: &str) -> ClockSupport;
    /// Whether [`remove_member`](Self::remove_member) and
    /// [`add_member`](Self::add_member) work. Static for a run, like `has_primaries`.
    fn has_membership(&self) -> bool {
        false
    }
    /// Removes `node` from the cluster's membership; returns once the target accepted the
    /// change. What becomes of its process is the target's choice (the bundled kv keeps it
    /// running as a non-member, which forwards its clients' requests).
    fn remove_member(&self, node: &str) -> Result<(), NodeError> {
        Err(NodeError::Unsupported(format!(
            "this target cannot change its membership, so {node} cannot be removed; use a target that supports the membership nemesis"
        )))
    }
    /// Adds `node`, removed earlier, back to the membership; returns once accepted.
    /// Adding a node that is already a member succeeds without doing anything.
    fn add_member(&self, node: &str) -> Result<(), NodeError> {
        Err(NodeError::Unsupported(format!(
            "this target cannot change its membership, so {node} cannot be added; use a target that supports the membership nemesis"
        )))
    }
    /// Whether every process of the target on `node` runs now; `Err` when the target
    /// cannot tell (then a start that returned is taken as the answer). The data faults
    /// ask it for a moment after a start: a process that reads its data only after the
    /// start returned, and exits on it, refused that data too.
    fn running(&self, node: &str) -> Result<bool, NodeError> {
        Err(NodeError::Unsupported(format!(
            "this target does not say whether its processes on {node} run"
        )))
    }
    /// The target's data directory on `node`, or why the disk faults cannot reach it.
    fn data_dir(&self, node: &str) -> Result<DataDir, String> {
        Err(format!(
            "the target on {node} keeps no data directory that distest manages"
        ))
    }
}
