//! `postgres`: PostgreSQL (Debian's `postgresql`) as a target, to test its documented
//! isolation levels: READ COMMITTED, REPEATABLE READ (snapshot isolation: write skew,
//! G2-item, is allowed) and SERIALIZABLE (SSI). `--set isolation=LEVEL` picks the level.
//!
//! n1 runs the primary. With `--set replica-reads=true` every other node runs a streaming replica
//! (cloned with `pg_basebackup`) and read-only transactions of clients bound to it go
//! there, so a partition between replica and primary shows stale reads (a hot standby
//! refuses SERIALIZABLE, so at that level replica reads run at REPEATABLE READ, which is
//! PostgreSQL's documented limit); without it, the other nodes stay unused and every
//! client talks to n1.
//!
//! Each node's cluster lives in its own data directory and is initialised fresh at setup
//! (initdb runs as the `postgres` OS user: PostgreSQL refuses root). The server listens on
//! the node's address, port 5432, with its Unix socket inside the data directory, so it
//! never touches the host's `/var/run/postgresql` or another PostgreSQL on the machine.
//! `pg_hba.conf` trusts only the cluster's subnet (and, over SSH, the control node).
//! `fsync` stays on: a killed postmaster must recover what it acknowledged.
//!
//! The postmaster is started through `setpriv` (which execs, so the pid file names the
//! postmaster). Its backends call `setsid`, so they are not in its process group: `kill`,
//! `pause` and `resume` signal the postmaster and each of its children. `kill` SIGKILLs
//! them all, as a crash of the server would, and `start` runs crash recovery.

pub mod client;
pub mod settings;

use super::managed::{ManagedDaemon, NodePaths};
use super::registry::{Setting, TargetEntry};
use super::{Target, TargetOptions};
use crate::nodes::{shell_quote, shell_quote_path, DaemonSpec, Remote, Signal};
use async_trait::async_trait;
use client::{Endpoints, PgClient, Shape};
use distest_nemeses::{ClockSupport, NodeError, TargetControl};
use distest_workloads::Client;
use settings::Settings;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use settings::{Isolation, SettingsError};

/// The port every node's server listens on.
pub const PORT: u16 = 5432;
/// The OS user PostgreSQL runs as (Debian's package creates it).
const OS_USER: &str = "postgres";
/// Where Debian installs each major version's binaries (`/usr/lib/postgresql/15/bin`).
const VERSIONS_GLOB: &str = "/usr/lib/postgresql/*/bin";
/// How long a started server may take to accept connections (crash recovery included).
const READY_DEADLINE: Duration = Duration::from_secs(60);
/// Budget for initdb and pg_basebackup, which write and sync a whole cluster.
const INIT_TIMEOUT: Duration = Duration::from_secs(180);
/// Budget for small shell steps (mkdir, chown, pg_isready, psql).
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts to start a killed server: a fresh postmaster refuses to start while the old
/// backends, SIGKILLed at the same moment, still hold the shared memory segment.
const START_ATTEMPTS: u32 = 5;
/// How long a fast shutdown at teardown may take before the server is killed.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);
const CLOCK_UNSUPPORTED: &str = "clock faults are not offered for postgres: its isolation levels do not depend on the clock, and running it under libfaketime is not supported; leave `clock` out of --nemesis";

/// The registry entry of `postgres`. One server is the natural default; replicas only
/// with replica reads.
pub fn entry() -> TargetEntry {
    TargetEntry::new(
        "postgres",
        "PostgreSQL (Debian's postgresql) at a chosen isolation level, optionally with streaming replicas",
        |ctx| Ok(Arc::new(Postgres::new(ctx.nodes, ctx.options)?)),
    )
    .workloads(&["list-append", "rw-register"])
    .packages(&["postgresql"])
    .daemons(&["postgres"])
    .setting(Setting::choice(
        "isolation",
        "transaction isolation level (default serializable)",
        &Isolation::NAMES,
    ))
    .setting(Setting::flag(
        "replica-reads",
        "read-only transactions go to streaming replicas on n2... (needs 2+ nodes)",
    ))
    .default_nodes_with(|s| {
        if s.get("replica-reads").map(String::as_str) == Some("true") {
            2
        } else {
            1
        }
    })
    .check_with(|s, nodes| {
        Settings::from_map(s, nodes)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

pub struct Postgres {
    daemon: ManagedDaemon,
    settings: Settings,
    opts: TargetOptions,
    /// The binaries directory found on each node at setup (`None` before).
    bin_dirs: Arc<Mutex<Vec<Option<String>>>>,
}

impl Postgres {
    /// Checks the options (`isolation`, `replica-reads`) and prepares the target; nothing
    /// runs on the nodes before [`Target::setup`].
    pub fn new(
        nodes: Vec<Arc<dyn Remote>>,
        opts: TargetOptions,
    ) -> Result<Postgres, SettingsError> {
        let settings = Settings::from_map(&opts.settings, nodes.len())?;
        let bin_dirs: Arc<Mutex<Vec<Option<String>>>> =
            Arc::new(Mutex::new(vec![None; nodes.len()]));
        let ips: Vec<String> = nodes.iter().map(|n| n.address().to_string()).collect();
        let dirs = bin_dirs.clone();
        let spec = move |i: usize, p: &NodePaths| {
            // Set by setup; `start_and_wait` refuses to start before it.
            let bin = dirs.lock().unwrap_or_else(|e| e.into_inner())[i]
                .clone()
                .unwrap_or_default();
            let mut spec = DaemonSpec::new("setpriv", p.pid_file.clone(), p.log_file.clone());
            spec.args = as_os_user(&format!("{bin}/postgres"));
            spec.args
                .extend(["-D".to_string(), p.data.display().to_string()]);
            for setting in server_settings(&ips[i], &p.data) {
                spec.args.extend(["-c".to_string(), setting]);
            }
            spec
        };
        Ok(Postgres {
            daemon: ManagedDaemon::new(
                nodes,
                "postgres",
                Err(CLOCK_UNSUPPORTED.to_string()),
                Box::new(spec),
            )
            .with_lazyfs(opts.lazyfs),
            settings,
            opts,
            bin_dirs,
        })
    }

    /// Node indices that run a server: n1 alone, or all with replica reads.
    fn active(&self) -> Vec<usize> {
        if self.settings.replica_reads {
            (0..self.daemon.nodes.len()).collect()
        } else {
            vec![0]
        }
    }

    fn addr(&self, index: usize) -> SocketAddr {
        SocketAddr::new(self.daemon.nodes[index].address(), PORT)
    }

    fn bin(&self, index: usize) -> anyhow::Result<String> {
        self.bin_dirs.lock().unwrap_or_else(|e| e.into_inner())[index]
            .clone()
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "postgres was not set up on {}; run setup (distest run does) before starting it",
                    self.daemon.nodes[index].name()
                )
            })
    }

    /// Finds the newest installed major version's binaries on node `index`.
    fn find_binaries(&self, index: usize) -> anyhow::Result<String> {
        let node = &self.daemon.nodes[index];
        let out = node.exec(
            &format!("for d in $(ls -d {VERSIONS_GLOB} 2>/dev/null | sort -V); do [ -x \"$d/postgres\" ] && echo \"$d\"; done | tail -n 1"),
            STEP_TIMEOUT,
        )?;
        let dir = out.stdout.trim().to_string();
        if dir.is_empty() {
            anyhow::bail!(
                "PostgreSQL is not installed on {} (no {VERSIONS_GLOB}/postgres); install the postgresql package",
                node.name()
            );
        }
        self.bin_dirs.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(dir.clone());
        Ok(dir)
    }

    /// The networks node `index`'s `pg_hba.conf` trusts: the subnet of its address and,
    /// over SSH, the control node's address as the node sees it.
    fn trusted_networks(&self, index: usize) -> anyhow::Result<Vec<String>> {
        let node = &self.daemon.nodes[index];
        let ip = node.address().to_string();
        let out = node.exec_ok("ip -o -4 addr show | awk '{print $4}'", STEP_TIMEOUT)?;
        let subnet = out
            .stdout
            .lines()
            .find(|cidr| cidr.split('/').next() == Some(ip.as_str()))
            .and_then(settings::network_of)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "could not find the subnet of {ip} on {}; is the node's address configured?",
                    node.name()
                )
            })?;
        let mut networks = vec![subnet];
        if !node.is_local() {
            let out = node.exec_ok("echo \"${SSH_CLIENT%% *}\"", STEP_TIMEOUT)?;
            if let Ok(control) = out.stdout.trim().parse() {
                networks.push(settings::host_network(control));
            }
        }
        Ok(networks)
    }

    /// Removes any earlier cluster on node `index` and leaves an empty data directory
    /// owned by the PostgreSQL user.
    fn fresh_data_dir(&self, index: usize) -> anyhow::Result<()> {
        let node = &self.daemon.nodes[index];
        let paths = self.daemon.paths(index);
        // A server left running by an interrupted run, with its backends.
        self.signal_tree(index, TreeSignal::Kill)?;
        node.kill_daemon(&paths.pid_file)?;
        let data = shell_quote_path(&paths.data);
        node.exec_ok(
            &format!("rm -rf {data} && mkdir -p {data} && chown {OS_USER}:{OS_USER} {data} && chmod 700 {data}"),
            STEP_TIMEOUT,
        )?;
        Ok(())
    }

    /// Runs `program` (a binary of the PostgreSQL version) with `args` as the PostgreSQL
    /// user; a failure carries the last lines of its output.
    fn exec_as_postgres(
        &self,
        index: usize,
        program: &str,
        args: &[String],
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let mut words = vec!["setpriv".to_string()];
        words.extend(as_os_user(program));
        words.extend(args.iter().cloned());
        let line = words
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" ");
        let node = &self.daemon.nodes[index];
        let out = node.exec(&format!("cd / && {line} 2>&1"), timeout)?;
        if !out.success() {
            let tail: Vec<&str> = out.stdout.lines().rev().take(5).collect();
            anyhow::bail!(
                "`{}` failed on {} (exit {}): {}",
                program,
                node.name(),
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            );
        }
        Ok(())
    }

    /// initdb, then this target's `pg_hba.conf`.
    fn init_primary(&self, index: usize) -> anyhow::Result<()> {
        let bin = self.bin(index)?;
        let data = self.daemon.paths(index).data.display().to_string();
        self.exec_as_postgres(
            index,
            &format!("{bin}/initdb"),
            &[
                "-D".into(),
                data,
                "--username=postgres".into(),
                "--auth=trust".into(),
                "--encoding=UTF8".into(),
                "--locale=C".into(),
            ],
            INIT_TIMEOUT,
        )?;
        self.write_hba(index)
    }

    /// Clones the primary into node `index`'s data directory as a streaming replica.
    fn init_replica(&self, index: usize) -> anyhow::Result<()> {
        let bin = self.bin(index)?;
        let data = self.daemon.paths(index).data.display().to_string();
        let primary = self.daemon.nodes[0].address().to_string();
        self.exec_as_postgres(
            index,
            &format!("{bin}/pg_basebackup"),
            &[
                "--host".into(),
                primary,
                "--port".into(),
                PORT.to_string(),
                "--username=postgres".into(),
                "--pgdata".into(),
                data,
                // Writes standby.signal and primary_conninfo: the clone starts as a replica.
                "--write-recovery-conf".into(),
                "--wal-method=stream".into(),
                "--checkpoint=fast".into(),
            ],
            INIT_TIMEOUT,
        )?;
        // The primary's socket lives in its data directory, so the clone carries the
        // primary's socket lock file, naming the primary's postmaster: a live pid on this
        // machine, which would make the replica refuse to start.
        let data = shell_quote_path(&self.daemon.paths(index).data);
        self.daemon.nodes[index]
            .exec_ok(&format!("rm -f {data}/.s.PGSQL.{PORT}.lock"), STEP_TIMEOUT)?;
        self.write_hba(index)
    }

    fn write_hba(&self, index: usize) -> anyhow::Result<()> {
        let hba = settings::hba_conf(&self.trusted_networks(index)?);
        let file = shell_quote_path(&self.daemon.paths(index).data.join("pg_hba.conf"));
        self.daemon.nodes[index].exec_ok(
            &format!(
                "printf '%s' {} > {file} && chown {OS_USER}:{OS_USER} {file} && chmod 600 {file}",
                shell_quote(&hba)
            ),
            STEP_TIMEOUT,
        )?;
        Ok(())
    }

    /// True when the server on node `index` accepts connections on its address.
    fn ready(&self, index: usize) -> bool {
        let Ok(bin) = self.bin(index) else {
            return false;
        };
        let node = &self.daemon.nodes[index];
        let cmd = format!(
            "{} -h {} -p {PORT} -U postgres -d postgres -t 1 -q",
            shell_quote(&format!("{bin}/pg_isready")),
            node.address()
        );
        node.exec(&cmd, STEP_TIMEOUT).is_ok_and(|o| o.success())
    }

    /// Starts the server on node `index` and waits until it accepts connections; retries
    /// a server that exits during startup (see [`START_ATTEMPTS`]).
    fn start_and_wait(&self, index: usize) -> Result<(), NodeError> {
        if let Err(e) = self.bin(index) {
            return Err(NodeError::Unsupported(e.to_string()));
        }
        let node = &self.daemon.nodes[index];
        let pid_file = self.daemon.paths(index).pid_file;
        let deadline = Instant::now() + READY_DEADLINE;
        let mut attempts = 0;
        loop {
            if !node.daemon_running(&pid_file)? {
                attempts += 1;
                if attempts > START_ATTEMPTS {
                    break;
                }
                if let Err(e) = self.daemon.start_index(index) {
                    tracing::debug!(
                        "starting postgres on {} failed (attempt {attempts}): {e}",
                        node.name()
                    );
                }
            }
            if self.ready(index) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(NodeError::Failed {
            node: node.name().to_string(),
            command: "start postgres".into(),
            status: -1,
            stderr: format!(
                "PostgreSQL did not accept connections (waited up to {} s, {} start attempts); see {}",
                READY_DEADLINE.as_secs(),
                attempts.min(START_ATTEMPTS),
                self.daemon.paths(index).log_file.display()
            ),
        })
    }

    /// Creates the workloads' tables on the primary, over its Unix socket.
    fn create_schema(&self) -> anyhow::Result<()> {
        let bin = self.bin(0)?;
        let socket_dir = self.daemon.paths(0).data;
        let cmd = format!(
            "{} -X -q -v ON_ERROR_STOP=1 -h {} -p {PORT} -U postgres -d postgres -c {}",
            shell_quote(&format!("{bin}/psql")),
            shell_quote_path(&socket_dir),
            shell_quote(client::SCHEMA_SQL)
        );
        self.daemon.nodes[0].exec_ok(&cmd, STEP_TIMEOUT)?;
        Ok(())
    }

    /// Sends `signal` to the postmaster of node `index` and to all its children. They are
    /// not in its process group (each backend calls `setsid`), so a group signal would
    /// reach the postmaster alone. No-op when the server is not running.
    fn signal_tree(&self, index: usize, signal: TreeSignal) -> Result<(), NodeError> {
        let node = &self.daemon.nodes[index];
        let Some(pid) = node.daemon_pid(&self.daemon.paths(index).pid_file)? else {
            return Ok(());
        };
        node.exec_ok(&tree_signal_script(pid, signal), STEP_TIMEOUT)?;
        Ok(())
    }

    /// Fast shutdown (SIGINT: abort sessions, checkpoint, exit) of node `index`, waiting
    /// up to [`SHUTDOWN_WAIT`]; kills the server when it does not finish in time.
    fn shut_down(&self, index: usize) -> Result<(), NodeError> {
        let node = &self.daemon.nodes[index];
        let pid_file = self.daemon.paths(index).pid_file;
        // A paused server cannot shut down.
        self.signal_tree(index, TreeSignal::Cont)?;
        if !node.signal_daemon(&pid_file, Signal::Int)? {
            return Ok(());
        }
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        while Instant::now() < deadline {
            if !node.daemon_running(&pid_file)? {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.signal_tree(index, TreeSignal::Kill)
    }

    fn setup_node(&self, index: usize) -> anyhow::Result<()> {
        self.fresh_data_dir(index)?;
        if index == 0 {
            self.init_primary(index)?;
        } else {
            self.init_replica(index)?;
        }
        self.start_and_wait(index)?;
        Ok(())
    }
}

/// What [`tree_signal_script`] does to a postmaster and its children.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TreeSignal {
    Stop,
    Cont,
    Kill,
}

/// A shell script sending `signal` to process `pid` and its children. The postmaster is
/// stopped before its children are listed, so it cannot fork one that escapes; on resume
/// the children go first, so the postmaster never runs among stopped children.
fn tree_signal_script(pid: u32, signal: TreeSignal) -> String {
    // Field 4 of /proc/PID/stat is the parent pid; the command name before it may hold
    // spaces or parentheses, so everything up to the last ") " is cut first.
    let list = "kids=''; for s in /proc/[0-9]*/stat; do \
                set -- $(sed 's/.*) //' \"$s\" 2>/dev/null); \
                if [ \"$2\" = \"$pid\" ]; then k=${s#/proc/}; kids=\"$kids ${k%/stat}\"; fi; done";
    match signal {
        TreeSignal::Stop => format!(
            "pid={pid}; kill -s STOP $pid || exit 1; {list}; [ -z \"$kids\" ] || kill -s STOP $kids 2>/dev/null; exit 0"
        ),
        TreeSignal::Cont => format!(
            "pid={pid}; {list}; [ -z \"$kids\" ] || kill -s CONT $kids 2>/dev/null; kill -s CONT $pid 2>/dev/null; exit 0"
        ),
        TreeSignal::Kill => format!(
            "pid={pid}; kill -s STOP $pid 2>/dev/null; {list}; kill -s KILL $pid $kids 2>/dev/null; exit 0"
        ),
    }
}

/// `setpriv` arguments that run `program` as the PostgreSQL user (setpriv execs it, so
/// the pid stays the program's).
fn as_os_user(program: &str) -> Vec<String> {
    vec![
        format!("--reuid={OS_USER}"),
        format!("--regid={OS_USER}"),
        "--init-groups".into(),
        "--".into(),
        program.to_string(),
    ]
}

/// The server settings of a node listening on `ip`, with its socket in `data`.
fn server_settings(ip: &str, data: &Path) -> Vec<String> {
    vec![
        format!("listen_addresses={ip}"),
        format!("port={PORT}"),
        // Never the host's /var/run/postgresql: another PostgreSQL may run on this machine.
        format!("unix_socket_directories={}", data.display()),
        // Acknowledged commits must survive a SIGKILL of the postmaster.
        "fsync=on".into(),
        "synchronous_commit=on".into(),
        "full_page_writes=on".into(),
        "max_connections=200".into(),
        // A client that vanished (timeout, partition) must not keep its locks for long:
        // the server aborts its transaction when it notices.
        "client_connection_check_interval=1000".into(),
        "idle_in_transaction_session_timeout=10000".into(),
        // Transactions touching the same keys in different orders deadlock often; the
        // default 1 s before detection would stall every client involved.
        "deadlock_timeout=100ms".into(),
        "log_line_prefix=%m [%p] %q%a ".into(),
    ]
}

impl TargetControl for Postgres {
    /// SIGKILLs the postmaster and its backends together, as a crash of the server would.
    fn kill(&self, node: &str) -> Result<(), NodeError> {
        let index = self.daemon.index_of(node)?;
        self.signal_tree(index, TreeSignal::Kill)?;
        // Waits until the postmaster is gone and removes its pid file.
        self.daemon.kill(node)
    }
    /// Starts the server (crash recovery after a kill) and waits until it accepts connections.
    fn start(&self, node: &str) -> Result<(), NodeError> {
        let index = self.daemon.index_of(node)?;
        if !self.active().contains(&index) {
            return Ok(());
        }
        self.start_and_wait(index)
    }
    /// SIGSTOPs the postmaster and every backend.
    fn pause(&self, node: &str) -> Result<(), NodeError> {
        self.signal_tree(self.daemon.index_of(node)?, TreeSignal::Stop)
    }
    fn resume(&self, node: &str) -> Result<(), NodeError> {
        self.signal_tree(self.daemon.index_of(node)?, TreeSignal::Cont)
    }
    /// n1: the primary is fixed by configuration (replicas are never promoted).
    fn primaries(&self) -> Vec<String> {
        self.daemon
            .nodes
            .first()
            .map(|n| n.name().to_string())
            .into_iter()
            .collect()
    }
    fn clock_support(&self, node: &str) -> ClockSupport {
        self.daemon.clock_support(node)
    }
    /// The data directory of a node that runs a server (n1, and the replicas with
    /// `replica-reads=true`); served through lazyfs under `--nemesis disk`.
    fn data_dir(&self, node: &str) -> Result<distest_nemeses::DataDir, String> {
        let index = self.daemon.index_of(node).map_err(|e| e.to_string())?;
        if !self.active().contains(&index) {
            return Err(format!(
                "{node} runs no PostgreSQL server (only n1 does unless --set replica-reads=true)"
            ));
        }
        self.daemon.data_dir(node)
    }
}

#[async_trait]
impl Target for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }
    fn node_names(&self) -> Vec<String> {
        self.daemon.node_names()
    }
    fn setup(&self) -> anyhow::Result<()> {
        let active = self.active();
        for (&i, result) in active
            .iter()
            .zip(crate::nodes::par_map(&active, |&i| self.find_binaries(i)))
        {
            result.map_err(|e| {
                e.context(format!(
                    "could not set up postgres on {}",
                    self.daemon.nodes[i].name()
                ))
            })?;
        }
        self.setup_node(0)?;
        self.create_schema()?;
        // Replicas clone the primary after the schema exists, so they start with it.
        let replicas: Vec<usize> = active.into_iter().filter(|&i| i > 0).collect();
        for (&i, result) in replicas
            .iter()
            .zip(crate::nodes::par_map(&replicas, |&i| self.setup_node(i)))
        {
            result.map_err(|e| {
                e.context(format!(
                    "could not set up the postgres replica on {}",
                    self.daemon.nodes[i].name()
                ))
            })?;
        }
        Ok(())
    }
    fn teardown(&self, wipe: bool) -> anyhow::Result<()> {
        let active = self.active();
        for (&i, result) in active
            .iter()
            .zip(crate::nodes::par_map(&active, |&i| self.shut_down(i)))
        {
            if let Err(e) = result {
                tracing::warn!(
                    "fast shutdown of postgres on {} failed: {e}",
                    self.daemon.nodes[i].name()
                );
            }
        }
        // Stops whatever is left, then wipes the data directories.
        self.daemon.stop_all(wipe)
    }
    fn collect_logs(&self, node: usize, dest: &Path) -> anyhow::Result<Vec<PathBuf>> {
        if !self.active().contains(&node) {
            return Ok(Vec::new());
        }
        self.daemon.collect_logs(node, dest)
    }
    async fn client(&self, node: usize, workload: &str) -> anyhow::Result<Box<dyn Client>> {
        let shape = Shape::for_workload(workload)?;
        let reads = (self.settings.replica_reads && node > 0 && node < self.daemon.nodes.len())
            .then(|| self.addr(node));
        let endpoints = Endpoints {
            primary: self.addr(0),
            reads,
        };
        Ok(Box::new(PgClient::new(
            endpoints,
            self.settings.isolation,
            shape,
            self.opts.op_timeout,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_listens_on_the_node_and_keeps_its_socket_in_the_data_dir() {
        let s = server_settings(
            "10.77.220.11",
            Path::new("/var/lib/distest/pg1/n1/data/postgres"),
        );
        assert!(s.contains(&"listen_addresses=10.77.220.11".to_string()));
        assert!(s.contains(
            &"unix_socket_directories=/var/lib/distest/pg1/n1/data/postgres".to_string()
        ));
        assert!(s.contains(&"fsync=on".to_string()));
        assert!(!s.iter().any(|x| x.contains("/var/run/postgresql")));
    }

    /// State letter of process `pid` (`T` stopped, `Z` zombie), `None` once it is gone.
    fn state(pid: u32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit(") ").next()?.chars().next()
    }

    fn children(pid: u32) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                    s.rsplit(") ").next().and_then(|r| r.split(' ').nth(1))
                        == Some(&pid.to_string())
                })
            })
            .collect()
    }

    fn sh(script: &str) {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// SIGKILLs the processes when dropped, so a failing test leaves no stopped
    /// process behind (it would hold the test's stdout and any inherited lock forever).
    struct KillOnDrop(Vec<u32>);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            for pid in &self.0 {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }

    /// Waits (bounded) until `ok(state of pid)` holds for every pid of `pids`: a signal
    /// reaches a sleeping process when the kernel next schedules it, not at once.
    fn wait_for_states(pids: &[u32], what: &str, ok: impl Fn(Option<char>) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Some(p) = pids.iter().find(|p| !ok(state(**p))) {
            assert!(
                Instant::now() < deadline,
                "process {p} is not {what}: {:?}",
                state(*p)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn tree_signals_reach_children_that_left_the_process_group() {
        // Like a postmaster: children that called setsid, out of the parent's group.
        let mut parent = std::process::Command::new("sh")
            .arg("-c")
            .arg("setsid sleep 30 & setsid sleep 30 & wait")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = parent.id();
        let mut guard = KillOnDrop(vec![pid]);
        let deadline = Instant::now() + Duration::from_secs(5);
        let kids = loop {
            let kids = children(pid);
            if kids.len() == 2 || Instant::now() > deadline {
                break kids;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        guard.0.extend(&kids);
        assert_eq!(kids.len(), 2, "the test's children did not start");
        let all: Vec<u32> = kids.iter().copied().chain([pid]).collect();
        sh(&tree_signal_script(pid, TreeSignal::Stop));
        wait_for_states(&all, "stopped", |s| s == Some('T'));
        sh(&tree_signal_script(pid, TreeSignal::Cont));
        wait_for_states(&all, "running again", |s| s != Some('T'));
        sh(&tree_signal_script(pid, TreeSignal::Kill));
        parent.wait().unwrap();
        wait_for_states(&kids, "gone after the kill", |s| {
            matches!(s, None | Some('Z'))
        });
        // Gone: their ids may be reused, so the guard must not signal them again.
        guard.0.clear();
    }

    #[test]
    fn programs_run_as_the_postgres_user_through_setpriv() {
        let args = as_os_user("/usr/lib/postgresql/15/bin/initdb");
        assert_eq!(args.last().unwrap(), "/usr/lib/postgresql/15/bin/initdb");
        assert!(args.contains(&"--reuid=postgres".to_string()));
        assert!(args.contains(&"--regid=postgres".to_string()));
    }
}
