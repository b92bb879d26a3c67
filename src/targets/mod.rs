//! Target adapters: how to install, start, stop and talk to each system under test.
//!
//! A target is Jepsen's DB plus its client factory: it owns its nodes, sets the system up
//! on them, offers the faults nemeses need ([`TargetControl`]: kill, start, pause,
//! resume, primaries, clock), and opens [`Client`]s. Adding a target is one file
//! implementing [`Target`] with an `entry()` (its [`registry::TargetEntry`]) plus one
//! line in [`builtin`]; nothing else in distest names targets.

pub mod crdt;
pub mod etcd;
pub mod file;
pub mod http;
pub mod kv;
pub mod maelstrom;
pub mod managed;
pub mod noop;
pub mod postgres;
pub mod registry;

pub use registry::{TargetContext, TargetEntry};

use async_trait::async_trait;
use distest_nemeses::TargetControl;
use distest_workloads::Client;
use std::path::PathBuf;
use std::time::Duration;

/// Options every target may use.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TargetOptions {
    /// Bugs to switch on (`--bug`), passed to bundled targets.
    pub bugs: Vec<String>,
    /// How long a single client op may take before it is recorded as `info`.
    pub op_timeout: Duration,
    /// Target settings (`--set KEY=VALUE`), checked by the target's registry entry.
    pub settings: std::collections::BTreeMap<String, String>,
    /// Whether the run has clock faults. Targets described in a file run their daemons
    /// under libfaketime only then: some programs (Redis, whose jemalloc reads the clock
    /// while libfaketime initialises) do not start under it at all.
    pub clock_faults: bool,
    /// The run's workload (a target that must prepare for it, e.g. maelstrom's broadcast
    /// topology, reads it here).
    pub workload: String,
    /// The run's seed, for a target's own random choices (maelstrom's services).
    pub seed: u64,
    /// Serve each daemon's data directory through lazyfs (set for `--nemesis disk`).
    pub lazyfs: bool,
}

/// The system under test on a set of nodes.
#[async_trait]
pub trait Target: TargetControl {
    fn name(&self) -> &'static str;
    /// Names of the nodes, in order (`n1`...).
    fn node_names(&self) -> Vec<String>;
    /// Installs, starts and waits until the system is healthy on every node.
    fn setup(&self) -> anyhow::Result<()>;
    /// Stops the system on every node and, when `wipe`, removes its data.
    fn teardown(&self, wipe: bool) -> anyhow::Result<()>;
    /// Copies the node's log files into `dest` (a directory); returns the files written.
    fn collect_logs(&self, node: usize, dest: &std::path::Path) -> anyhow::Result<Vec<PathBuf>>;
    /// Opens a client for `workload` against node number `node`.
    async fn client(&self, node: usize, workload: &str) -> anyhow::Result<Box<dyn Client>>;
    /// Called once every node's logs are collected: writes what the target recorded of
    /// the run as a whole into the run directory (the maelstrom target's message journal,
    /// `messages.jsonl`). `history_start` is when the history's time 0 was taken. Nothing
    /// by default.
    fn write_run_files(
        &self,
        _run: &distest_rundir::RunDir,
        _history_start: std::time::Instant,
    ) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Every built-in target, one line each, in `--help` order.
pub fn builtin() -> Vec<TargetEntry> {
    vec![
        kv::entry(),
        etcd::entry(),
        crdt::entry(),
        noop::entry(),
        postgres::entry(),
        maelstrom::entry(),
    ]
}

/// When this binary was invoked under a bundled program's name (`raft-kv`, `crdt-store`,
/// or `lazyfs`, the filesystem of the disk nemesis), runs it and returns its exit code;
/// likewise `distest latency-delayer ...`, the latency fault's node-side helper (hidden:
/// not a user command). Otherwise `None`.
pub fn multicall() -> Option<u8> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(distest_nemeses::delayer::COMMAND) {
        return Some(distest_nemeses::delayer::main(&args[2..]));
    }
    let program = std::path::Path::new(args.first()?)
        .file_name()?
        .to_str()?
        .to_string();
    match program.as_str() {
        "raft-kv" => Some(raft_kv::main_with_args(args)),
        "crdt-store" => Some(crdt_store::main_with_args(args)),
        maelstrom::ROUTER => Some(distest_maelstrom::router::main_with_args(args)),
        distest_lazyfs::PROGRAM => Some(distest_lazyfs::main_with_args(args)),
        _ => None,
    }
}
