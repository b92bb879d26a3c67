//! A target process managed on every node: the start/kill/pause/resume/log plumbing and
//! the wait until healthy that raft-kv, crdt-store, etcd and PostgreSQL share. Each
//! adapter only says how to build the command line and what healthy means. (Processes
//! with pid files on one node, below this, are `nodes::daemon`.)

use crate::nodes::lazyfs::LazyfsMount;
use crate::nodes::{DaemonSpec, Remote, Signal};
use distest_nemeses::{ClockSupport, DataDir, LazyfsControl, NodeError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Implements the process faults of `TargetControl` (kill, start, pause, resume, clock)
/// by delegating to the target's `daemon: ManagedDaemon` field; the target writes only
/// `primaries`.
macro_rules! delegate_process_faults {
    () => {
        fn kill(&self, node: &str) -> Result<(), distest_nemeses::NodeError> {
            self.daemon.kill(node)
        }
        fn start(&self, node: &str) -> Result<(), distest_nemeses::NodeError> {
            self.daemon.start(node)
        }
        fn pause(&self, node: &str) -> Result<(), distest_nemeses::NodeError> {
            self.daemon.pause(node)
        }
        fn resume(&self, node: &str) -> Result<(), distest_nemeses::NodeError> {
            self.daemon.resume(node)
        }
        fn clock_support(&self, node: &str) -> distest_nemeses::ClockSupport {
            self.daemon.clock_support(node)
        }
        fn data_dir(&self, node: &str) -> Result<distest_nemeses::DataDir, String> {
            self.daemon.data_dir(node)
        }
        fn running(&self, node: &str) -> Result<bool, distest_nemeses::NodeError> {
            self.daemon.running(node)
        }
    };
}
pub(crate) use delegate_process_faults;

/// Implements the bookkeeping half of `Target` (node names, teardown, log collection)
/// by delegating to the target's `daemon: ManagedDaemon` field.
macro_rules! delegate_daemon_lifecycle {
    () => {
        fn node_names(&self) -> Vec<String> {
            self.daemon.node_names()
        }
        fn teardown(&self, wipe: bool) -> anyhow::Result<()> {
            self.daemon.stop_all(wipe)
        }
        fn collect_logs(
            &self,
            node: usize,
            dest: &std::path::Path,
        ) -> anyhow::Result<Vec<std::path::PathBuf>> {
            self.daemon.collect_logs(node, dest)
        }
    };
}
pub(crate) use delegate_daemon_lifecycle;

/// The command line of a bundled target (raft-kv, crdt-store), which both take the same
/// way: `--id NAME --peers n1=ADDR:PEER_PORT,... --data-dir DIR --listen ADDR:API_PORT`,
/// one `--bug` per bug, then `extra`. Returns the nodes' client API addresses with it.
pub fn bundled_target_spec(
    nodes: &[Arc<dyn Remote>],
    program: &'static str,
    peer_port: u16,
    api_port: u16,
    bugs: &[String],
    extra: Vec<String>,
) -> (Vec<std::net::SocketAddr>, Box<SpecFn>) {
    use std::net::SocketAddr;
    let peers = nodes
        .iter()
        .map(|n| format!("{}={}", n.name(), SocketAddr::new(n.address(), peer_port)))
        .collect::<Vec<_>>()
        .join(",");
    let api: Vec<SocketAddr> = nodes
        .iter()
        .map(|n| SocketAddr::new(n.address(), api_port))
        .collect();
    let ids: Vec<String> = nodes.iter().map(|n| n.name().to_string()).collect();
    let listen: Vec<String> = api.iter().map(ToString::to_string).collect();
    let mut tail: Vec<String> = bugs
        .iter()
        .flat_map(|bug| ["--bug".to_string(), bug.clone()])
        .collect();
    tail.extend(extra);
    let spec = move |i: usize, p: &NodePaths| {
        let mut spec = DaemonSpec::new(
            p.bin_dir.join(program).display().to_string(),
            p.pid_file.clone(),
            p.log_file.clone(),
        );
        spec.args = vec![
            "--id".into(),
            ids[i].clone(),
            "--peers".into(),
            peers.clone(),
            "--data-dir".into(),
            p.data.display().to_string(),
            "--listen".into(),
            listen[i].clone(),
        ];
        spec.args.extend(tail.iter().cloned());
        spec
    };
    (api, Box::new(spec))
}

/// How long a started cluster may take to become healthy (elect a leader, answer).
pub const HEALTHY_DEADLINE: Duration = Duration::from_secs(30);

/// Where libfaketime lives on Debian nodes.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// Paths of the daemon on one node, all under the node's own directories.
#[derive(Clone, Debug)]
pub struct NodePaths {
    /// Directory for the program (a link to this binary for bundled targets).
    pub bin_dir: PathBuf,
    /// The daemon's data directory (wiped at teardown).
    pub data: PathBuf,
    pub pid_file: PathBuf,
    pub log_file: PathBuf,
    /// libfaketime's timestamp file; the clock nemesis writes offsets into it.
    pub faketime_file: PathBuf,
}

/// Builds the daemon's command line for node `index`.
pub type SpecFn = dyn Fn(usize, &NodePaths) -> DaemonSpec + Send + Sync;

pub struct ManagedDaemon {
    pub nodes: Vec<Arc<dyn Remote>>,
    /// Short name used in paths and messages (`raft-kv`); the registry lists it among
    /// the target's daemons.
    pub name: String,
    spec: Box<SpecFn>,
    /// Whether the program reads time through libc, so libfaketime can move its clock.
    clock_through_libc: Result<(), String>,
    /// Serve each node's data directory through lazyfs (the disk nemesis).
    lazyfs: bool,
}

impl ManagedDaemon {
    pub fn new(
        nodes: Vec<Arc<dyn Remote>>,
        name: &str,
        clock_through_libc: Result<(), String>,
        spec: Box<SpecFn>,
    ) -> ManagedDaemon {
        ManagedDaemon {
            nodes,
            name: name.to_string(),
            spec,
            clock_through_libc,
            lazyfs: false,
        }
    }

    /// Serves each node's data directory through lazyfs, mounted before the daemon
    /// starts (what `--nemesis disk` needs).
    pub fn with_lazyfs(mut self, lazyfs: bool) -> ManagedDaemon {
        self.lazyfs = lazyfs;
        self
    }

    /// How node `index`'s data directory is (or would be) served through lazyfs.
    pub fn lazyfs_mount(&self, index: usize) -> LazyfsMount {
        let paths = self.paths(index);
        LazyfsMount::for_data_dir(&paths.data, self.nodes[index].log_dir(), &paths.bin_dir)
    }

    /// The data directory on `node` for the disk faults.
    pub fn data_dir(&self, node: &str) -> Result<DataDir, String> {
        let i = self.index_of(node).map_err(|e| e.to_string())?;
        let lazyfs = self.lazyfs.then(|| {
            let m = self.lazyfs_mount(i);
            LazyfsControl {
                program: m.program,
                socket: m.socket,
            }
        });
        Ok(DataDir {
            path: self.paths(i).data,
            lazyfs,
        })
    }

    pub fn paths(&self, index: usize) -> NodePaths {
        let node = &self.nodes[index];
        let data_root = node.data_dir();
        NodePaths {
            bin_dir: data_root.join("bin"),
            data: data_root.join(&self.name),
            pid_file: data_root.join(format!("{}.pid", self.name)),
            log_file: node.log_dir().join(format!("{}.log", self.name)),
            faketime_file: data_root.join("faketime"),
        }
    }

    pub fn index_of(&self, node: &str) -> Result<usize, NodeError> {
        self.nodes
            .iter()
            .position(|n| n.name() == node)
            .ok_or_else(|| NodeError::Unsupported(format!("there is no node {node:?} in this run")))
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name().to_string()).collect()
    }

    /// Starts the daemon on node `index` (no-op when it already runs). Local nodes run it
    /// under libfaketime with a zero offset, so clock faults can move it later.
    pub fn start_index(&self, index: usize) -> Result<(), NodeError> {
        let node = &self.nodes[index];
        let paths = self.paths(index);
        if self.lazyfs {
            self.install_self_as(index, distest_lazyfs::PROGRAM)
                .map_err(|e| NodeError::Unsupported(format!("{e:#}")))?;
            self.lazyfs_mount(index).ensure_mounted(node.as_ref())?;
        }
        let mut spec = (self.spec)(index, &paths);
        if self.faketime_ready(index)? {
            spec.env.push(("LD_PRELOAD".into(), LIBFAKETIME.into()));
            spec.env.push((
                "FAKETIME_TIMESTAMP_FILE".into(),
                paths.faketime_file.display().to_string(),
            ));
            // Re-read the offset on every call so a fault takes effect at once.
            spec.env.push(("FAKETIME_NO_CACHE".into(), "1".into()));
            // Only the wall clock moves. Faking CLOCK_MONOTONIC breaks std's timed waits:
            // they compute a deadline from the faked clock and hand it to the kernel's real
            // one, so a node would sleep through its election timeouts.
            spec.env
                .push(("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()));
        }
        node.start_daemon(&spec).map(|_| ())
    }

    /// True when this node can run the daemon under libfaketime (local, libc clock,
    /// library present); creates the offset file with a zero offset when missing.
    fn faketime_ready(&self, index: usize) -> Result<bool, NodeError> {
        let node = &self.nodes[index];
        if !node.is_local() || self.clock_through_libc.is_err() {
            return Ok(false);
        }
        let file = crate::nodes::shell_quote_path(&self.paths(index).faketime_file);
        let out = node.exec(
            &format!("test -f {LIBFAKETIME} && {{ test -f {file} || printf '+0.000' > {file}; }}"),
            Duration::from_secs(10),
        )?;
        Ok(out.success())
    }

    pub fn kill(&self, node: &str) -> Result<(), NodeError> {
        let i = self.index_of(node)?;
        self.nodes[i].kill_daemon(&self.paths(i).pid_file)
    }

    pub fn start(&self, node: &str) -> Result<(), NodeError> {
        self.start_index(self.index_of(node)?)
    }

    /// Whether the daemon on `node` runs (its pid file names a live process).
    pub fn running(&self, node: &str) -> Result<bool, NodeError> {
        let i = self.index_of(node)?;
        self.nodes[i].daemon_running(&self.paths(i).pid_file)
    }

    pub fn pause(&self, node: &str) -> Result<(), NodeError> {
        let i = self.index_of(node)?;
        self.nodes[i]
            .signal_daemon(&self.paths(i).pid_file, Signal::Stop)
            .map(|_| ())
    }

    pub fn resume(&self, node: &str) -> Result<(), NodeError> {
        let i = self.index_of(node)?;
        self.nodes[i]
            .signal_daemon(&self.paths(i).pid_file, Signal::Cont)
            .map(|_| ())
    }

    pub fn clock_support(&self, node: &str) -> ClockSupport {
        let Ok(i) = self.index_of(node) else {
            return ClockSupport::Unsupported(format!("there is no node {node:?} in this run"));
        };
        if !self.nodes[i].is_local() {
            return match self.shares_our_kernel(i) {
                Ok(false) => ClockSupport::SystemClock,
                Ok(true) => ClockSupport::Unsupported(format!(
                    "node {node} runs on the kernel of the machine running distest (same boot id: a namespace or container of it), so setting its system clock would set this machine's clock; use local nodes (--nodes local:N), whose targets run under libfaketime, for clock faults"
                )),
                Err(e) => ClockSupport::Unsupported(format!(
                    "could not check whether node {node} shares this machine's clock ({e}); its system clock is left alone"
                )),
            };
        }
        match (&self.clock_through_libc, self.faketime_ready(i)) {
            (Err(why), _) => ClockSupport::Unsupported(why.clone()),
            (Ok(()), Ok(true)) => ClockSupport::FaketimeFile(self.paths(i).faketime_file),
            _ => ClockSupport::Unsupported(format!(
                "libfaketime ({LIBFAKETIME}) is missing on {node}; install the libfaketime package (scripts/setup.sh does)"
            )),
        }
    }

    /// True when node `index` is a namespace or container of this very machine: the system
    /// clock belongs to the kernel (time namespaces move only the monotonic clocks), so such
    /// a "host" shares our clock. A node without a boot id (not Linux) does not share it; a
    /// node that cannot be asked is an error, never a guess that would risk our clock.
    fn shares_our_kernel(&self, index: usize) -> Result<bool, NodeError> {
        const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
        let Ok(ours) = std::fs::read_to_string(BOOT_ID) else {
            return Ok(false);
        };
        let out = self.nodes[index].exec(&format!("cat {BOOT_ID}"), Duration::from_secs(10))?;
        Ok(out.success() && out.stdout.trim() == ours.trim())
    }

    /// Polls `healthy` until it says yes or [`HEALTHY_DEADLINE`] passes; `not_yet` says
    /// what did not happen ("raft-kv did not elect a leader").
    pub fn wait_until_healthy(
        &self,
        not_yet: &str,
        poll: Duration,
        mut healthy: impl FnMut() -> bool,
    ) -> anyhow::Result<()> {
        let start = std::time::Instant::now();
        while start.elapsed() < HEALTHY_DEADLINE {
            if healthy() {
                return Ok(());
            }
            std::thread::sleep(poll);
        }
        anyhow::bail!(
            "{not_yet} within {} s; see the node logs in the run directory",
            HEALTHY_DEADLINE.as_secs()
        )
    }

    /// Starts the daemon on every node, in parallel.
    pub fn start_all(&self) -> anyhow::Result<()> {
        let indices: Vec<usize> = (0..self.nodes.len()).collect();
        for (i, r) in crate::nodes::par_map(&indices, |&i| self.start_index(i))
            .into_iter()
            .enumerate()
        {
            r.map_err(|e| {
                anyhow::anyhow!(
                    "could not start {} on {}: {e}",
                    self.name,
                    self.nodes[i].name()
                )
            })?;
        }
        Ok(())
    }

    /// Stops the daemon everywhere (SIGCONT first, in case it was paused) and optionally
    /// wipes its data. Keeps going past failures and reports them together.
    pub fn stop_all(&self, wipe: bool) -> anyhow::Result<()> {
        let indices: Vec<usize> = (0..self.nodes.len()).collect();
        let errors: Vec<String> = crate::nodes::par_map(&indices, |&i| {
            let node = &self.nodes[i];
            let paths = self.paths(i);
            let _ = node.signal_daemon(&paths.pid_file, Signal::Cont);
            node.stop_daemon(&paths.pid_file, Duration::from_secs(3))?;
            // Always, whether or not this run mounted it: a killed run may have left one,
            // and the data must never be removed through a live mount.
            let mount = self.lazyfs_mount(i);
            mount.stop(node.as_ref())?;
            if wipe {
                node.exec_ok(
                    &format!(
                        "rm -rf {} {} {} {}",
                        crate::nodes::shell_quote_path(&paths.data),
                        crate::nodes::shell_quote_path(&mount.backing),
                        crate::nodes::shell_quote_path(&paths.faketime_file),
                        crate::nodes::shell_quote_path(&paths.bin_dir)
                    ),
                    Duration::from_secs(30),
                )?;
            }
            Ok::<(), NodeError>(())
        })
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            anyhow::bail!(
                "could not stop {} everywhere: {}",
                self.name,
                errors.join("; ")
            )
        }
    }

    /// Copies node `index`'s log file into `dest`, and lazyfs' when it served the data.
    pub fn collect_logs(&self, index: usize, dest: &Path) -> anyhow::Result<Vec<PathBuf>> {
        let paths = self.paths(index);
        let local = dest.join(format!("{}.log", self.name));
        self.nodes[index]
            .download(&paths.log_file, &local)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut copied = vec![local];
        if self.lazyfs {
            let log = self.lazyfs_mount(index).log_file;
            let local = dest.join(log.file_name().expect("a log file name"));
            match self.nodes[index].download(&log, &local) {
                Ok(()) => copied.push(local),
                Err(e) => tracing::warn!("could not copy {}: {e}", log.display()),
            }
        }
        Ok(copied)
    }

    /// [`install_self_as`](Self::install_self_as) on every node, in parallel.
    pub fn install_self_everywhere(&self, program: &str) -> anyhow::Result<()> {
        let indices: Vec<usize> = (0..self.nodes.len()).collect();
        for r in crate::nodes::par_map(&indices, |&i| self.install_self_as(i, program)) {
            r?;
        }
        Ok(())
    }

    /// Puts this very binary on the node as `program` (busybox-style multicall): a symlink
    /// to the node's distest helper (this binary locally, a copy uploaded once over SSH).
    /// Returns the program's path on the node.
    pub fn install_self_as(&self, index: usize, program: &str) -> anyhow::Result<PathBuf> {
        let node = &self.nodes[index];
        let helper = node.install_helper()?;
        let bin_dir = self.paths(index).bin_dir;
        let target = bin_dir.join(program);
        node.exec_ok(
            &format!(
                "mkdir -p {} && ln -sf {} {}",
                crate::nodes::shell_quote_path(&bin_dir),
                crate::nodes::shell_quote(&helper.program),
                crate::nodes::shell_quote_path(&target)
            ),
            Duration::from_secs(10),
        )?;
        Ok(target)
    }
}
