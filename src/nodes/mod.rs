//! Nodes: local network namespaces and SSH hosts behind one [`Remote`].
//!
//! Targets and nemeses see a node only as `Arc<dyn Remote>`: run a command as root, move
//! files, and run daemons. Everything above plain `exec` (daemons, packages) is written once
//! in terms of `exec`, so it behaves the same in a namespace on this machine and on a host
//! over SSH. The API is synchronous: callers use threads or `spawn_blocking`.
//!
//! - [`local`]: `LocalCluster`, n1..nN as network namespaces on a bridge (`distest env up`).
//! - [`ssh`]: `SshNode`, a host reached with ssh2, host keys checked against known_hosts.
//! - [`cleanup`]: finding and removing everything distest created, by name; Ctrl-C cleanup.
//! - [`args`]: `NodeArgs`, the node flags `distest run` and `distest env` share.
//! - [`daemon`]: start/check/signal/stop daemons with pid files, on top of `exec` alone.
//! - [`packages`]: `ensure_packages`, apt installs once per machine per run.
//! - [`runlock`]: who runs on a local cluster (alive or dead), for runs and `env down`.
//! - [`sweep`]: what an earlier run left on a remote node, found generically, removed.
//! - [`helper`]: the distest binary on nodes (bundled targets, faults' node-side helpers).
//! - [`lazyfs`]: serving a daemon's data directory through lazyfs (the disk nemesis).
//! - [`names`], [`host`], [`exec`]: the naming scheme of host objects, the `ip`/`iptables`
//!   calls on this machine, and running a local program with a deadline.

pub mod args;
pub mod cleanup;
pub mod daemon;
pub mod exec;
pub mod helper;
pub mod host;
pub mod lazyfs;
pub mod local;
pub mod names;
pub mod packages;
pub mod runlock;
pub mod ssh;
pub mod sweep;

pub use args::{NodeArgs, Nodes};
pub use daemon::{DaemonSpec, Signal};
pub use distest_nemeses::{ExecOutput, Helper, NodeError, NodeShell};
pub use local::{ClusterSpec, LocalCluster, LocalNode};
pub use packages::ensure_packages;
pub use ssh::{SshNode, SshOptions};

use std::path::Path;
use std::time::Duration;

/// A node a target runs on and a nemesis acts on. Commands run as root (`sh -c`).
pub trait Remote: NodeShell {
    /// Directory for the target's data on this node (exists after setup).
    fn data_dir(&self) -> &Path;
    /// Directory for the target's log files on this node (exists after setup).
    fn log_dir(&self) -> &Path;
    /// Copies the local file `local` to `remote` on the node, creating parent directories.
    fn upload(&self, local: &Path, remote: &Path) -> Result<(), NodeError>;
    /// Copies the node's file `remote` to the local path `local`, creating parent directories.
    fn download(&self, remote: &Path, local: &Path) -> Result<(), NodeError>;
    /// Names the machine behind the node: local namespace nodes share one (`localhost`), so
    /// machine-wide work such as installing packages happens once for all of them.
    fn machine_id(&self) -> String;
    /// Runs `command` as root on the machine itself, outside any network namespace (package
    /// installation needs the host's network). Over SSH this is [`NodeShell::exec`].
    fn exec_machine(&self, command: &str, timeout: Duration) -> Result<ExecOutput, NodeError>;

    /// Starts a daemon unless its pid file names a live process; returns its pid.
    fn start_daemon(&self, spec: &DaemonSpec) -> Result<u32, NodeError> {
        daemon::start(self, spec)
    }
    /// The pid of the live process named by `pid_file`, if any.
    fn daemon_pid(&self, pid_file: &Path) -> Result<Option<u32>, NodeError> {
        daemon::live_pid(self, pid_file)
    }
    /// True when `pid_file` names a live (not zombie) process.
    fn daemon_running(&self, pid_file: &Path) -> Result<bool, NodeError> {
        Ok(daemon::live_pid(self, pid_file)?.is_some())
    }
    /// Sends `signal` to the daemon; false when it was not running.
    fn signal_daemon(&self, pid_file: &Path, signal: Signal) -> Result<bool, NodeError> {
        daemon::signal(self, pid_file, signal)
    }
    /// SIGKILLs the daemon and waits until it is gone; no-op when it is not running.
    fn kill_daemon(&self, pid_file: &Path) -> Result<(), NodeError> {
        daemon::stop(self, pid_file, Duration::ZERO)
    }
    /// SIGTERMs the daemon, waits up to `grace` for it to exit, then SIGKILLs it.
    fn stop_daemon(&self, pid_file: &Path, grace: Duration) -> Result<(), NodeError> {
        daemon::stop(self, pid_file, grace)
    }
}

/// Why nodes could not be set up or reached (cluster creation, SSH connection, flags).
#[derive(Debug, thiserror::Error)]
pub enum NodesError {
    #[error("creating or removing a local cluster needs root (CAP_NET_ADMIN); run it as root, e.g. `sudo distest env up`")]
    NotRoot,
    /// Flags, ids, subnets or files that cannot work; the sentence says what to change.
    #[error("{0}")]
    BadSpec(String),
    /// Something on this machine did not go away or free up in time; the sentence says what.
    #[error("{0}")]
    Stuck(String),
    #[error("interrupted while bringing the cluster up; what was built is being removed")]
    Interrupted,
    #[error("`{command}` failed on this machine (exit {status}): {stderr}")]
    Host {
        command: String,
        status: i32,
        stderr: String,
    },
    #[error("could not run `{command}` on this machine: {message}")]
    HostExec { command: String, message: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: String,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("subnet {subnet} overlaps address {address} on interface {interface}; choose another with --subnet")]
    SubnetInUse {
        subnet: String,
        address: String,
        interface: String,
    },
    #[error("local cluster {cluster} is already up with {existing}; run `distest env down --cluster {cluster}` first or ask for the same layout")]
    ClusterMismatch { cluster: String, existing: String },
    #[error(transparent)]
    Ssh(#[from] ssh::SshError),
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// Most nodes a parallel helper runs at once; clusters are small, this only bounds threads.
pub const MAX_PARALLEL: usize = 64;

/// Runs `f` on every item on its own thread (at most [`MAX_PARALLEL`] at a time) and
/// returns the results in the items' order.
pub fn par_map<T, R, F>(items: &[T], f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let mut results = Vec::with_capacity(items.len());
    for chunk in items.chunks(MAX_PARALLEL) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunk.iter().map(|item| scope.spawn(|| f(item))).collect();
            for handle in handles {
                match handle.join() {
                    Ok(r) => results.push(r),
                    // Re-raise on the caller's thread: a panic in `f` is a bug, not a result.
                    Err(payload) => std::panic::resume_unwind(payload),
                }
            }
        });
    }
    results
}

/// Quotes `s` for a POSIX shell: the result is one word whatever `s` contains.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Quotes a path for a POSIX shell (non-UTF-8 bytes are replaced, as shells see them).
pub fn shell_quote_path(p: &Path) -> String {
    shell_quote(&p.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_round_trips_through_sh() {
        for s in [
            "plain",
            "with space",
            "it's",
            "$(rm -rf /)",
            "",
            "a\"b",
            "new\nline",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
        }
    }

    #[test]
    fn par_map_keeps_order_and_runs_concurrently() {
        let items: Vec<u64> = (0..8).collect();
        let started = std::time::Instant::now();
        let out = par_map(&items, |i| {
            std::thread::sleep(Duration::from_millis(200));
            i * 2
        });
        assert_eq!(out, vec![0, 2, 4, 6, 8, 10, 12, 14]);
        assert!(started.elapsed() < Duration::from_millis(1500));
    }
}
