//! `maelstrom`: Maelstrom node programs — any language, JSON messages on stdin and stdout
//! (`--bin PATH [--bin-arg ARG ...]`) — each under a router in its node's namespace, so
//! every nemesis acts on real processes and real traffic (`distest-maelstrom`).
//!
//! The router is this binary again (multicall name `maelstrom-router`), run as a managed
//! daemon per node: it owns the program's stdin and stdout, carries messages between
//! nodes as UDP datagrams, and answers the control node's clients and commands on TCP.
//! Faults reach the *program*: kill, start, pause and resume are router commands (the
//! router stays up, so messages to a killed node are dropped and journalled as such);
//! clock faults reach it through the router's libfaketime environment, which the program
//! inherits (with libfaketime's monotonic fix off: it made threaded programs crawl). The services (`lin-kv`, `seq-kv`, `lww-kv`, `lin-tso`) live in the first
//! node's router: a partition that cuts that node off cuts them off too.
//!
//! After the run every router's journal is collected with the node's log and merged onto
//! the history's clock into `messages.jsonl` (each router's clock offset is measured at
//! setup), from which results get Maelstrom's `net` statistics and the report draws the
//! message flow.

use super::managed::{ManagedDaemon, NodePaths};
use super::registry::{Setting, TargetEntry};
use super::{Target, TargetOptions};
use crate::nodes::{DaemonSpec, NodeError, Remote};
use async_trait::async_trait;
use distest_maelstrom::client::{Client as MaelstromClient, WORKLOADS};
use distest_maelstrom::router::{self, control};
use distest_maelstrom::topology;
use distest_nemeses::{ClockSupport, TargetControl};
use distest_workloads::Client;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The multicall name of the router.
pub const ROUTER: &str = "maelstrom-router";
/// UDP: datagrams between routers.
pub const PEER_PORT: u16 = 7300;
/// TCP: clients and control commands.
pub const CLIENT_PORT: u16 = 7301;
/// A control command that starts a node waits for its `init_ok`; one that kills it, for
/// the program to be reaped.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a freshly started router may take to listen.
const LISTEN_DEADLINE: Duration = Duration::from_secs(10);
/// Each router's journal, in its data directory; collected as `nodes/<node>/journal.jsonl`.
const JOURNAL: &str = "journal.jsonl";

/// The registry entry of `maelstrom`.
pub fn entry() -> TargetEntry {
    TargetEntry::new(
        "maelstrom",
        "Maelstrom node programs (--bin PATH, --bin-arg ARG) on the real network, each under a router in its namespace; Maelstrom's workloads and services",
        |ctx| Ok(Arc::new(Maelstrom::new(ctx.nodes, ctx.options)?)),
    )
    .workloads(WORKLOADS)
    .packages(&["libfaketime"])
    .daemons(&[ROUTER])
    .setting(Setting::text(
        "bin",
        "the node program, a path on this machine (--bin PATH); required",
    ))
    .setting(Setting::text(
        "bin-args",
        "the node program's arguments as a JSON list of strings (--bin-arg ARG, repeatable)",
    ))
    .setting(Setting::choice(
        "topology",
        "the broadcast workload's topology (default grid)",
        topology::NAMES,
    ))
    .default_nodes_with(|_| 3)
    .check_with(|settings, _nodes| check_settings(settings).map(|_| ()))
}

/// The node program and its arguments, from the settings; errors say what to pass.
fn check_settings(settings: &super::registry::Settings) -> Result<(PathBuf, Vec<String>), String> {
    let bin = settings.get("bin").ok_or(
        "the maelstrom target needs the node program: pass --bin PATH (and --bin-arg ARG for each of its arguments)",
    )?;
    let path = PathBuf::from(bin);
    let meta = std::fs::metadata(&path)
        .map_err(|e| format!("the node program {bin} cannot be used ({e}); pass --bin with the path of an executable file"))?;
    use std::os::unix::fs::PermissionsExt;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!(
            "the node program {bin} is not an executable file; make it one (chmod +x, with a #! line for scripts)"
        ));
    }
    let args = match settings.get("bin-args") {
        None => Vec::new(),
        Some(text) => serde_json::from_str::<Vec<String>>(text).map_err(|_| {
            format!("bin-args must be a JSON list of strings, not {text}; use --bin-arg ARG once per argument")
        })?,
    };
    Ok((path, args))
}

pub struct Maelstrom {
    daemon: ManagedDaemon,
    names: Vec<String>,
    /// Where each node's router takes clients and commands.
    clients: Vec<SocketAddr>,
    next_client: AtomicU64,
    /// How far each router's clock is ahead of ours (ns), measured at setup.
    clock_offsets: Mutex<Vec<i128>>,
    /// The node program on this machine (uploaded to SSH nodes at setup).
    program: PathBuf,
}

impl Maelstrom {
    pub fn new(nodes: Vec<Arc<dyn Remote>>, opts: TargetOptions) -> anyhow::Result<Maelstrom> {
        let (program, args) = check_settings(&opts.settings).map_err(anyhow::Error::msg)?;
        let program = std::fs::canonicalize(&program).unwrap_or(program);
        let names: Vec<String> = nodes.iter().map(|n| n.name().to_string()).collect();
        let peers: std::collections::HashMap<String, SocketAddr> = nodes
            .iter()
            .map(|n| {
                (
                    n.name().to_string(),
                    SocketAddr::new(n.address(), PEER_PORT),
                )
            })
            .collect();
        let clients: Vec<SocketAddr> = nodes
            .iter()
            .map(|n| SocketAddr::new(n.address(), CLIENT_PORT))
            .collect();
        let topology = if opts.workload == "broadcast" || opts.settings.contains_key("topology") {
            let name = opts.settings.get("topology").map_or("grid", String::as_str);
            Some(topology::topology(name, &names).map_err(anyhow::Error::msg)?)
        } else {
            None
        };
        let locals: Vec<bool> = nodes.iter().map(|n| n.is_local()).collect();
        let addresses: Vec<std::net::IpAddr> = nodes.iter().map(|n| n.address()).collect();
        let spec_names = names.clone();
        let local_program = program.clone();
        let seed = opts.seed;
        let spec = move |i: usize, p: &NodePaths| {
            // Local nodes share this machine's files; SSH nodes get the program uploaded.
            let program = if locals[i] {
                local_program.clone()
            } else {
                p.bin_dir
                    .join(local_program.file_name().unwrap_or_default())
            };
            let cfg = router::Config {
                node: spec_names[i].clone(),
                node_ids: spec_names.clone(),
                peers: peers.clone(),
                services_at: spec_names.first().cloned(),
                peer_listen: SocketAddr::new(addresses[i], PEER_PORT),
                client_listen: SocketAddr::new(addresses[i], CLIENT_PORT),
                journal: Some(p.data.join(JOURNAL)),
                log: p.log_file.clone(),
                seed,
                topology: topology.clone(),
                program,
                args: args.clone(),
                env: Vec::new(),
                init_timeout: Duration::from_secs(10),
            };
            let mut spec = DaemonSpec::new(
                p.bin_dir.join(ROUTER).display().to_string(),
                p.pid_file.clone(),
                p.log_file.clone(),
            );
            spec.args = router::args::render(&cfg);
            // Under libfaketime (clock faults; the program inherits the router's
            // environment) its "monotonic fix" of timed condition waits made every
            // handoff of Python's interpreter lock take up to a second: a node program
            // with threads answered in ~600 ms instead of ~1 ms. Only the wall clock is
            // faked (FAKETIME_DONT_FAKE_MONOTONIC), so monotonic waits need no fix.
            spec.env
                .push(("FAKETIME_FORCE_MONOTONIC_FIX".into(), "0".into()));
            spec
        };
        Ok(Maelstrom {
            daemon: ManagedDaemon::new(nodes, ROUTER, Ok(()), Box::new(spec)),
            clock_offsets: Mutex::new(vec![0; names.len()]),
            names,
            clients,
            next_client: AtomicU64::new(1),
            program,
        })
    }

    /// A control command to node `i`'s router; a router still coming up is waited for.
    fn control(&self, i: usize, command: &str) -> Result<serde_json::Value, NodeError> {
        let deadline = Instant::now() + LISTEN_DEADLINE;
        loop {
            match control::request(self.clients[i], command, CONTROL_TIMEOUT) {
                Ok(answer) => return Ok(answer),
                Err(e) if e.contains("Connection refused") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    return Err(NodeError::Failed {
                        node: self.names[i].clone(),
                        command: format!("maelstrom-router {command}"),
                        status: -1,
                        stderr: e,
                    })
                }
            }
        }
    }

    fn index(&self, node: &str) -> Result<usize, NodeError> {
        self.daemon.index_of(node)
    }

    /// Puts the node program on SSH nodes (local nodes read it where it is).
    fn upload_program(&self, i: usize) -> anyhow::Result<()> {
        let node = &self.daemon.nodes[i];
        if node.is_local() {
            return Ok(());
        }
        let remote = self
            .daemon
            .paths(i)
            .bin_dir
            .join(self.program.file_name().unwrap_or_default());
        node.upload(&self.program, &remote)?;
        node.exec_ok(
            &format!("chmod 755 {}", crate::nodes::shell_quote_path(&remote)),
            Duration::from_secs(10),
        )?;
        Ok(())
    }
}

impl TargetControl for Maelstrom {
    /// SIGKILLs the node program; its router stays up and drops what arrives for it.
    fn kill(&self, node: &str) -> Result<(), NodeError> {
        self.control(self.index(node)?, "kill").map(|_| ())
    }

    /// Starts the node program again (a fresh `init`); restarts its router first if that
    /// is gone too.
    fn start(&self, node: &str) -> Result<(), NodeError> {
        let i = self.index(node)?;
        self.daemon.start_index(i)?;
        self.control(i, "start").map(|_| ())
    }

    fn pause(&self, node: &str) -> Result<(), NodeError> {
        self.control(self.index(node)?, "pause").map(|_| ())
    }

    fn resume(&self, node: &str) -> Result<(), NodeError> {
        self.control(self.index(node)?, "resume").map(|_| ())
    }

    fn primaries(&self) -> Vec<String> {
        Vec::new()
    }

    fn has_primaries(&self) -> bool {
        false
    }

    /// The program inherits the router's libfaketime environment.
    fn clock_support(&self, node: &str) -> ClockSupport {
        self.daemon.clock_support(node)
    }
}

#[async_trait]
impl Target for Maelstrom {
    fn name(&self) -> &'static str {
        "maelstrom"
    }

    fn node_names(&self) -> Vec<String> {
        self.names.clone()
    }

    fn setup(&self) -> anyhow::Result<()> {
        self.daemon.install_self_everywhere(ROUTER)?;
        let indices: Vec<usize> = (0..self.names.len()).collect();
        for r in crate::nodes::par_map(&indices, |&i| self.upload_program(i)) {
            r?;
        }
        self.daemon.start_all()?;
        let started = crate::nodes::par_map(&indices, |&i| self.control(i, "start"));
        for (i, r) in started.into_iter().enumerate() {
            r.map_err(|e| {
                anyhow::anyhow!(
                    "the node program did not start on {}: {e}; see nodes/{}/{ROUTER}.log in the run directory",
                    self.names[i],
                    self.names[i]
                )
            })?;
        }
        let offsets = crate::nodes::par_map(&indices, |&i| {
            control::clock_offset_ns(self.clients[i], Duration::from_secs(5)).unwrap_or(0)
        });
        *self.clock_offsets.lock().unwrap_or_else(|e| e.into_inner()) = offsets;
        Ok(())
    }

    fn teardown(&self, wipe: bool) -> anyhow::Result<()> {
        self.daemon.stop_all(wipe)
    }

    /// The node's log (its stderr and the router's lines) and the router's journal.
    fn collect_logs(&self, node: usize, dest: &Path) -> anyhow::Result<Vec<PathBuf>> {
        // What the router still buffers goes to disk first; a router that is gone has
        // flushed on its way out (or lost only its last moment).
        let _ = self.control(node, "flush");
        let mut files = self.daemon.collect_logs(node, dest)?;
        let journal = dest.join(JOURNAL);
        self.daemon.nodes[node]
            .download(&self.daemon.paths(node).data.join(JOURNAL), &journal)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        files.push(journal);
        Ok(files)
    }

    async fn client(&self, node: usize, workload: &str) -> anyhow::Result<Box<dyn Client>> {
        let id = format!("c{}", self.next_client.fetch_add(1, Ordering::Relaxed));
        let client =
            MaelstromClient::connect(self.clients[node], &id, &self.names[node], workload).await?;
        Ok(Box::new(client))
    }

    /// Merges the routers' journals (collected with the logs) onto the history's clock.
    fn write_run_files(
        &self,
        run: &distest_rundir::RunDir,
        history_start: Instant,
    ) -> anyhow::Result<()> {
        let offsets = self
            .clock_offsets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let texts: Vec<(String, String)> = self
            .names
            .iter()
            .map(|n| {
                let path = run.node_dir(n).join(JOURNAL);
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                (path.display().to_string(), text)
            })
            .collect();
        let parts: Vec<distest_checkers::net::Part<'_>> = texts
            .iter()
            .zip(&offsets)
            .map(|((file, text), offset)| distest_checkers::net::Part {
                file,
                text,
                clock_offset_ns: *offset,
            })
            .collect();
        let run_start = distest_maelstrom::journal::mono_ns()
            .saturating_sub(history_start.elapsed().as_nanos() as u64);
        let journal = distest_checkers::net::merge(&parts, run_start)?;
        run.write_journal(&journal)?;
        Ok(())
    }
}
