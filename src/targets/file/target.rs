//! A target described in a file, on nodes: [`FileTarget`] runs the file's commands and
//! daemons through the same daemon layer as the built-in targets ([`ManagedDaemon`]), so
//! every fault reaches it the same way, and opens [`ProcessClient`]s for the workers.
//!
//! Setup, in order: the target file's folder is uploaded to SSH nodes (`{dir}`); on every
//! node what an earlier run left is stopped, `wipe` runs and `[node] setup`; then each
//! `[[daemon]]` in file order is started on every node and waited for until ready; then
//! `[cluster] setup` runs on the first node; last, one client is opened against the first
//! node and closed, so a client that cannot start fails the setup with its own words
//! instead of every op of the run.

use super::client::{ClientLog, ClientSpec, ProcessClient};
use super::spec::{DaemonDef, Located, TargetFile};
use super::template::{NodeValues, Values};
use crate::nodes::lazyfs::LazyfsMount;
use crate::nodes::{shell_quote_path, DaemonSpec, NodeError, Remote};
use crate::targets::managed::{ManagedDaemon, NodePaths};
use crate::targets::{Target, TargetOptions};
use distest_nemeses::{ClockSupport, DataDir, LazyfsControl, TargetControl};
use distest_workloads::Client;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Budget for `[node] setup`, `wipe` and `[cluster] setup` (installing, initialising a
/// database...).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// Budget for one run of a `ready` probe or of `[cluster] primaries`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `primaries` may take on one node before the next node is asked.
const PRIMARIES_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two ready probes.
const READY_POLL: Duration = Duration::from_millis(200);
/// How long a fresh client may take to answer `open`.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Most files of the target's folder uploaded to an SSH node, and their total size: the
/// folder holds scripts and configs, not data.
const MAX_UPLOAD_FILES: usize = 1000;
const MAX_UPLOAD_BYTES: u64 = 256 << 20;

/// A user's system on nodes, as its target file describes it.
pub struct FileTarget {
    file: Arc<TargetFile>,
    /// The file's name, for the `Target` trait's `&'static str` (leaked once per run).
    name: &'static str,
    nodes: Vec<Arc<dyn Remote>>,
    /// One per `[[daemon]]`, in file order.
    daemons: Vec<ManagedDaemon>,
    /// What templates see on each node.
    values: Vec<NodeValues>,
    settings: BTreeMap<String, String>,
    op_timeout: Duration,
    client_log: ClientLog,
    /// One client spec per workload (a run has one; tests may ask for more).
    specs: Mutex<HashMap<String, Arc<ClientSpec>>>,
    /// Nodes the membership fault removed and has not added back.
    removed: Mutex<std::collections::BTreeSet<usize>>,
    /// Serve each node's `{data_dir}` through lazyfs (`--nemesis disk`): one mount per
    /// node, shared by its daemons, as one disk is shared by the processes of a machine.
    lazyfs: bool,
}

/// Characters distest's own template values may hold: they are inserted unquoted.
fn shell_safe(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b))
}

/// The daemons' data directory for `file` on `node`.
fn data_dir(node: &dyn Remote, file: &TargetFile) -> PathBuf {
    node.data_dir().join(&file.name)
}

/// Where the target file's folder is uploaded on an SSH node (outside `{data_dir}`, which
/// `wipe` removes).
fn uploaded_dir(node: &dyn Remote, file: &TargetFile) -> PathBuf {
    node.data_dir().join(format!("{}-files", file.name))
}

impl FileTarget {
    /// Prepares the target on `nodes`; checks everything the file's templates need from
    /// this run (settings, paths) before anything runs on a node.
    pub fn new(
        file: Arc<TargetFile>,
        nodes: Vec<Arc<dyn Remote>>,
        opts: &TargetOptions,
        client_log: ClientLog,
    ) -> anyhow::Result<FileTarget> {
        file.check_settings(&opts.settings)?;
        if nodes.is_empty() {
            anyhow::bail!("target {} needs at least one node", file.name);
        }
        let control_dir = file.dir.display().to_string();
        let mut values = Vec::with_capacity(nodes.len());
        for node in &nodes {
            let dir = if node.is_local() {
                file.dir.clone()
            } else {
                uploaded_dir(node.as_ref(), &file)
            };
            let v = NodeValues {
                name: node.name().to_string(),
                ip: node.address().to_string(),
                data_dir: data_dir(node.as_ref(), &file).display().to_string(),
                log_dir: node.log_dir().display().to_string(),
                dir: dir.display().to_string(),
            };
            for (what, path) in [
                ("the target file's folder", &v.dir),
                ("the data directory", &v.data_dir),
                ("the log directory", &v.log_dir),
                (
                    "the control node's copy of the target file's folder",
                    &control_dir,
                ),
            ] {
                if !shell_safe(path) {
                    anyhow::bail!(
                        "{what} on {} is {path:?}, which holds characters a shell would split or expand; templates insert paths unquoted, so use a path of letters, digits and -_./ (move the folder or pass another --base-dir)",
                        node.name()
                    );
                }
            }
            values.push(v);
        }
        let mut target = FileTarget {
            file: file.clone(),
            name: Box::leak(file.name.clone().into_boxed_str()),
            nodes: nodes.clone(),
            daemons: Vec::new(),
            values,
            settings: opts.settings.clone(),
            op_timeout: opts.op_timeout,
            client_log,
            specs: Mutex::new(HashMap::new()),
            removed: Mutex::new(Default::default()),
            lazyfs: opts.lazyfs && !file.daemons.is_empty(),
        };
        // Expand every start command now: a template without a value fails here.
        let mut daemons = Vec::with_capacity(file.daemons.len());
        for def in &file.daemons {
            let commands: Vec<String> = (0..nodes.len())
                .map(|i| target.expand(&def.start, Some(i)))
                .collect::<anyhow::Result<_>>()?;
            let cwd: Vec<PathBuf> = target
                .values
                .iter()
                .map(|v| PathBuf::from(&v.dir))
                .collect();
            let spec = move |i: usize, p: &NodePaths| {
                let mut spec = DaemonSpec::new("sh", p.pid_file.clone(), p.log_file.clone());
                spec.args = vec!["-c".to_string(), commands[i].clone()];
                spec.cwd = Some(cwd[i].clone());
                spec
            };
            let clock = if opts.clock_faults {
                Ok(())
            } else {
                Err("this run has no clock faults, so the daemons run without libfaketime".into())
            };
            daemons.push(ManagedDaemon::new(
                nodes.clone(),
                &def.name,
                clock,
                Box::new(spec),
            ));
        }
        target.daemons = daemons;
        Ok(target)
    }

    fn template_values(&self, node: Option<usize>) -> Values<'_> {
        Values {
            nodes: &self.values,
            settings: &self.settings,
            node,
            control_dir: self.file.dir.to_str().unwrap_or("."),
            member: None,
        }
    }

    fn expand(&self, located: &Located, node: Option<usize>) -> anyhow::Result<String> {
        located
            .template
            .expand(&self.template_values(node))
            .map_err(|e| {
                anyhow::anyhow!("{} line {}: {e}", self.file.path.display(), located.at.line)
            })
    }

    /// Runs a command of the file on node `i`; a non-zero exit is an error naming the key
    /// and quoting the command's output.
    fn run_on(
        &self,
        i: usize,
        what: &str,
        located: &Located,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        self.run_about(i, None, what, located, timeout)
    }

    /// [`run_on`](Self::run_on) for a `[membership]` command about node `member`.
    fn run_about(
        &self,
        i: usize,
        member: Option<usize>,
        what: &str,
        located: &Located,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let values = Values {
            member,
            ..self.template_values(Some(i))
        };
        let command = located.template.expand(&values).map_err(|e| {
            anyhow::anyhow!("{} line {}: {e}", self.file.path.display(), located.at.line)
        })?;
        let node = &self.nodes[i];
        let out = node
            .exec(
                &format!(
                    "cd {} && {command}",
                    shell_quote_path(Path::new(&self.values[i].dir))
                ),
                timeout,
            )
            .map_err(|e| {
                anyhow::anyhow!(
                    "{what} ({} line {}) on {}: {e}",
                    self.file.path.display(),
                    located.at.line,
                    node.name()
                )
            })?;
        if !out.success() {
            anyhow::bail!(
                "{what} ({} line {}) failed on {} with exit status {}: {}",
                self.file.path.display(),
                located.at.line,
                node.name(),
                out.status,
                last_lines(&format!("{}\n{}", out.stdout, out.stderr), 5)
            );
        }
        Ok(out.stdout)
    }

    /// Runs `f` on every node in parallel; the first error, naming its node, wins.
    fn on_every_node(&self, f: impl Fn(usize) -> anyhow::Result<()> + Sync) -> anyhow::Result<()> {
        let indices: Vec<usize> = (0..self.nodes.len()).collect();
        crate::nodes::par_map(&indices, |&i| f(i))
            .into_iter()
            .collect::<anyhow::Result<Vec<()>>>()
            .map(drop)
    }

    /// Uploads the target file's folder to node `i` when it is an SSH node.
    fn upload_dir(&self, i: usize) -> anyhow::Result<()> {
        let node = &self.nodes[i];
        if node.is_local() {
            return Ok(());
        }
        let dest = uploaded_dir(node.as_ref(), &self.file);
        node.exec_ok(
            &format!("rm -rf {0} && mkdir -p {0}", shell_quote_path(&dest)),
            COMMAND_TIMEOUT,
        )?;
        let mut files = Vec::new();
        collect_files(&self.file.dir, Path::new(""), &mut files, 0)?;
        let total: u64 = files.iter().map(|(_, size, _)| size).sum();
        if files.len() > MAX_UPLOAD_FILES || total > MAX_UPLOAD_BYTES {
            anyhow::bail!(
                "the target file's folder {} holds {} files ({} MB); it is uploaded to every SSH node, so keep it to scripts and configs (at most {MAX_UPLOAD_FILES} files, {} MB)",
                self.file.dir.display(),
                files.len(),
                total >> 20,
                MAX_UPLOAD_BYTES >> 20
            );
        }
        for (relative, _, executable) in &files {
            let remote = dest.join(relative);
            node.upload(&self.file.dir.join(relative), &remote)?;
            if *executable {
                node.exec_ok(
                    &format!("chmod +x {}", shell_quote_path(&remote)),
                    PROBE_TIMEOUT,
                )?;
            }
        }
        Ok(())
    }

    /// How node `i`'s `{data_dir}` is (or would be) served through lazyfs; `None` for a
    /// file without daemons.
    fn mount_of(&self, i: usize) -> Option<LazyfsMount> {
        let paths = self.daemons.first()?.paths(i);
        Some(LazyfsMount::for_data_dir(
            &data_dir(self.nodes[i].as_ref(), &self.file),
            self.nodes[i].log_dir(),
            &paths.bin_dir,
        ))
    }

    /// The mount of node `i`, when this run serves `{data_dir}` through lazyfs.
    fn lazyfs_mount(&self, i: usize) -> Option<LazyfsMount> {
        self.mount_of(i).filter(|_| self.lazyfs)
    }

    /// Stops node `i`'s lazyfs mount, whether or not this run mounted it (a killed run
    /// may have left one).
    fn release_mount(&self, i: usize) -> Result<Option<LazyfsMount>, NodeError> {
        let Some(mount) = self.mount_of(i) else {
            return Ok(None);
        };
        mount.stop(self.nodes[i].as_ref())?;
        Ok(Some(mount))
    }

    /// Serves node `i`'s `{data_dir}` through lazyfs (no-op when this run does not, or a
    /// live mount already serves it). What is in the directory then becomes what
    /// survives a power failure: `[node] setup`'s files are as durable as a machine's
    /// configuration is by the time a test starts.
    fn ensure_mounted(&self, i: usize) -> Result<(), NodeError> {
        let Some(mount) = self.lazyfs_mount(i) else {
            return Ok(());
        };
        self.daemons[0]
            .install_self_as(i, distest_lazyfs::PROGRAM)
            .map_err(|e| NodeError::Unsupported(format!("{e:#}")))?;
        mount.ensure_mounted(self.nodes[i].as_ref())
    }

    /// Removes node `i`'s data: the file's `wipe`, or its data directory. A lazyfs mount
    /// is stopped first (and its backing directory removed), whether or not this run
    /// mounted it: data is never removed through a mount a killed run may have left.
    fn wipe(&self, i: usize) -> anyhow::Result<()> {
        if let Some(mount) = self.release_mount(i)? {
            self.nodes[i].exec_ok(
                &format!("rm -rf {}", shell_quote_path(&mount.backing)),
                COMMAND_TIMEOUT,
            )?;
        }
        match &self.file.node_wipe {
            Some(wipe) => self
                .run_on(i, "[node] wipe", wipe, COMMAND_TIMEOUT)
                .map(drop),
            None => {
                let dir = shell_quote_path(&data_dir(self.nodes[i].as_ref(), &self.file));
                self.nodes[i].exec_ok(&format!("rm -rf {dir}"), COMMAND_TIMEOUT)?;
                Ok(())
            }
        }
    }

    /// Waits until `def`'s readiness checks pass on node `i`, or its deadline passes or it
    /// exits.
    fn wait_ready(
        &self,
        index: usize,
        def: &DaemonDef,
        daemon: &ManagedDaemon,
    ) -> anyhow::Result<()> {
        let node = &self.nodes[index];
        let deadline = Instant::now() + def.ready_timeout;
        let mut last = String::from("no check ran yet");
        loop {
            let mut ready = true;
            if let Some(port) = def.ready_tcp {
                let addr = std::net::SocketAddr::new(node.address(), port);
                if let Err(e) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                {
                    ready = false;
                    last = format!("{addr} refused a TCP connection ({e})");
                }
            }
            if ready {
                if let Some(check) = &def.ready {
                    let timeout = PROBE_TIMEOUT
                        .min(deadline.saturating_duration_since(Instant::now()))
                        .max(Duration::from_secs(1));
                    match self.run_on(index, "`ready`", check, timeout) {
                        Ok(_) => {}
                        Err(e) => {
                            ready = false;
                            last = crate::one_sentence(&e);
                        }
                    }
                }
            }
            if ready {
                return Ok(());
            }
            let paths = daemon.paths(index);
            if !node.daemon_running(&paths.pid_file)? {
                anyhow::bail!(
                    "daemon {} exited on {} while distest waited for it to be ready; its log ends: {}",
                    def.name,
                    node.name(),
                    self.log_tail(index, &paths.log_file)
                );
            }
            if Instant::now() >= deadline {
                let tail = self.log_tail(index, &paths.log_file);
                let hint = if tail.contains("libfaketime") {
                    "; it does not run under libfaketime, which clock faults need on local nodes: leave `clock` out of --nemesis"
                } else {
                    ""
                };
                anyhow::bail!(
                    "daemon {} on {} was not ready within {:.0} s (ready_timeout_s): {last}; its log ends: {tail}{hint}",
                    def.name,
                    node.name(),
                    def.ready_timeout.as_secs_f64(),
                );
            }
            std::thread::sleep(READY_POLL);
        }
    }

    fn log_tail(&self, index: usize, log: &Path) -> String {
        self.nodes[index]
            .exec(
                &format!("tail -n 5 {}", shell_quote_path(log)),
                PROBE_TIMEOUT,
            )
            .map(|o| last_lines(&o.stdout, 5))
            .unwrap_or_else(|e| format!("(unreadable: {e})"))
    }

    /// The client spec for `workload`.
    fn client_spec(&self, workload: &str) -> anyhow::Result<Arc<ClientSpec>> {
        let mut specs = self.specs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(spec) = specs.get(workload) {
            return Ok(spec.clone());
        }
        let spec = Arc::new(ClientSpec {
            command: self.expand(&self.file.client_command, None)?,
            cwd: self.file.dir.clone(),
            nodes: self
                .values
                .iter()
                .map(|v| (v.name.clone(), v.ip.clone()))
                .collect(),
            settings: self.settings.clone(),
            workload: workload.to_string(),
            op_timeout: self.op_timeout,
            open_timeout: OPEN_TIMEOUT,
            log: self.client_log.clone(),
        });
        specs.insert(workload.to_string(), spec.clone());
        Ok(spec)
    }

    /// Opens one client against the first node and closes it again.
    fn probe_client(&self) -> anyhow::Result<()> {
        let Some(workload) = self.file.workloads.first() else {
            return Ok(());
        };
        let spec = self.client_spec(workload)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let client = ProcessClient::open(spec, 0).await?;
            drop(client);
            // Let the program see stdin close and exit before the runtime goes.
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<(), super::client::OpenError>(())
        })?;
        Ok(())
    }

    /// Applies `f` to every daemon of `node` (in `order`), returning the first error after
    /// trying them all.
    fn each_daemon(
        &self,
        reverse: bool,
        f: impl Fn(&ManagedDaemon) -> Result<(), NodeError>,
    ) -> Result<(), NodeError> {
        let mut first = None;
        let mut apply = |d: &ManagedDaemon| {
            if let Err(e) = f(d) {
                first.get_or_insert(e);
            }
        };
        if reverse {
            self.daemons.iter().rev().for_each(&mut apply);
        } else {
            self.daemons.iter().for_each(&mut apply);
        }
        first.map_or(Ok(()), Err)
    }

    /// The running executables of every daemon on node `index` that libfaketime cannot
    /// reach, with why.
    fn unfakeable_daemons(&self, index: usize) -> Vec<String> {
        let mut found = Vec::new();
        for daemon in &self.daemons {
            let paths = daemon.paths(index);
            // Every process of the daemon's group (the start command may be a wrapper):
            // a Go binary reads the clock through the vDSO; a static one loads no preload.
            let script = format!(
                "pid=$(cat {pf} 2>/dev/null) || exit 0\n\
                 for p in /proc/[0-9]*; do\n\
                   [ \"$(sed 's/.*) //' $p/stat 2>/dev/null | cut -d' ' -f3)\" = \"$pid\" ] || continue\n\
                   exe=$(readlink $p/exe 2>/dev/null) || continue\n\
                   if grep -q -a -m 1 'Go buildinf:' \"$exe\" 2>/dev/null; then echo \"go $exe\";\n\
                   elif ! head -c 8192 \"$exe\" | grep -q -a 'ld-linux'; then echo \"static $exe\"; fi\n\
                 done | sort -u\n",
                pf = shell_quote_path(&paths.pid_file)
            );
            let Ok(out) = self.nodes[index].exec(&script, PROBE_TIMEOUT) else {
                continue;
            };
            for line in out.stdout.lines() {
                match line.split_once(' ') {
                    Some(("go", exe)) => found.push(format!(
                        "daemon {} runs {exe}, a Go program, which reads the clock without libc",
                        daemon.name
                    )),
                    Some(("static", exe)) => found.push(format!(
                        "daemon {} runs {exe}, a static binary, which loads no preload library",
                        daemon.name
                    )),
                    _ => {}
                }
            }
        }
        found
    }
}

/// What the membership fault's powers (`[membership]`, in `TargetControl`) use.
impl FileTarget {
    fn is_removed(&self, member: usize) -> bool {
        self.removed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&member)
    }

    fn membership_of(&self, node: &str) -> Result<(&super::spec::Membership, usize), NodeError> {
        let membership = self.file.membership.as_ref().ok_or_else(|| {
            NodeError::Unsupported(format!(
                "target {} has no [membership] table, so nodes cannot be added or removed; add one with `add` and `remove` commands (docs/targets.md) or leave membership out of --nemesis",
                self.file.name
            ))
        })?;
        let member = self
            .values
            .iter()
            .position(|v| v.name == node)
            .ok_or_else(|| {
                NodeError::Unsupported(format!("there is no node {node:?} in this run"))
            })?;
        Ok((membership, member))
    }

    /// Where a membership command about `member` runs: the first primary, else the first
    /// node, skipping `member` and nodes removed earlier.
    fn membership_runner(&self, member: usize) -> Result<usize, NodeError> {
        let removed = self
            .removed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let by_name = |name: &String| self.values.iter().position(|v| &v.name == name);
        self.primaries()
            .iter()
            .filter_map(by_name)
            .chain(0..self.nodes.len())
            .find(|i| *i != member && !removed.contains(i))
            .ok_or_else(|| {
                NodeError::Unsupported(format!(
                    "no member other than {} is left to run the membership command on",
                    self.values[member].name
                ))
            })
    }

    fn membership_command(
        &self,
        runner: usize,
        member: usize,
        what: &str,
        located: &Located,
    ) -> Result<(), NodeError> {
        self.run_about(runner, Some(member), what, located, COMMAND_TIMEOUT)
            .map(drop)
            .map_err(|e| self.node_error(runner, what, e))
    }

    fn node_error(&self, index: usize, what: &str, e: anyhow::Error) -> NodeError {
        NodeError::Failed {
            node: self.values[index].name.clone(),
            command: what.to_string(),
            status: 1,
            stderr: crate::one_sentence(&e),
        }
    }

    /// Stops what runs on node `i`, wipes it and sets it up again, ready for its daemons.
    fn prepare_node(&self, i: usize) -> anyhow::Result<()> {
        for daemon in self.daemons.iter().rev() {
            self.nodes[i].kill_daemon(&daemon.paths(i).pid_file)?;
        }
        self.wipe(i)?;
        let data = shell_quote_path(&data_dir(self.nodes[i].as_ref(), &self.file));
        self.nodes[i].exec_ok(&format!("mkdir -p {data}"), COMMAND_TIMEOUT)?;
        if let Some(setup) = &self.file.node_setup {
            self.run_on(i, "[node] setup", setup, COMMAND_TIMEOUT)?;
        }
        self.ensure_mounted(i)?;
        Ok(())
    }
}

/// Files under `base/relative`, with size and whether executable; skips hidden entries.
fn collect_files(
    base: &Path,
    relative: &Path,
    out: &mut Vec<(PathBuf, u64, bool)>,
    depth: usize,
) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if depth > 8 || out.len() > MAX_UPLOAD_FILES {
        return Ok(());
    }
    let dir = base.join(relative);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| anyhow::anyhow!("could not list {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let meta = entry.metadata()?;
        let path = relative.join(&name);
        if meta.is_dir() {
            collect_files(base, &path, out, depth + 1)?;
        } else if meta.is_file() {
            out.push((path, meta.len(), meta.permissions().mode() & 0o111 != 0));
        }
    }
    Ok(())
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = &lines[lines.len().saturating_sub(n)..];
    if tail.is_empty() {
        "(no output)".to_string()
    } else {
        tail.join(" / ")
    }
}

/// Node names among `tokens` (names, addresses, or `address:port`), in the order the
/// command printed them (the first is "the leader" to faults that aim at one), each once.
pub fn primaries_from(output: &str, nodes: &[NodeValues]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for token in output.split(|c: char| c.is_whitespace() || c == ',') {
        let token = token.trim_matches(|c: char| c == '"' || c == '\'');
        let host = match token.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => host,
            _ => token,
        };
        if let Some(n) = nodes.iter().find(|n| n.name == host || n.ip == host) {
            if !found.contains(&n.name) {
                found.push(n.name.clone());
            }
        }
    }
    found
}

impl TargetControl for FileTarget {
    fn kill(&self, node: &str) -> Result<(), NodeError> {
        self.each_daemon(true, |d| d.kill(node))
    }

    fn start(&self, node: &str) -> Result<(), NodeError> {
        if self.lazyfs {
            let index = self.daemons[0].index_of(node)?;
            self.ensure_mounted(index)?;
        }
        self.each_daemon(false, |d| d.start(node))
    }

    fn pause(&self, node: &str) -> Result<(), NodeError> {
        self.each_daemon(true, |d| d.pause(node))
    }

    /// Whether every daemon of the file runs on `node`.
    fn running(&self, node: &str) -> Result<bool, NodeError> {
        for daemon in &self.daemons {
            if !daemon.running(node)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn resume(&self, node: &str) -> Result<(), NodeError> {
        self.each_daemon(false, |d| d.resume(node))
    }

    /// What `[cluster] primaries` prints, asked of the nodes in order until one answers.
    fn primaries(&self) -> Vec<String> {
        let Some(command) = &self.file.primaries else {
            return Vec::new();
        };
        for i in 0..self.nodes.len() {
            match self.run_on(i, "[cluster] primaries", command, PRIMARIES_TIMEOUT) {
                Ok(out) => return primaries_from(&out, &self.values),
                Err(e) => tracing::debug!("{e:#}"),
            }
        }
        Vec::new()
    }

    fn has_primaries(&self) -> bool {
        self.file.primaries.is_some()
    }

    /// Whether the file says how to add and remove nodes.
    fn has_membership(&self) -> bool {
        self.file.membership.is_some()
    }

    /// Removes `node` from the cluster: runs `remove` on the primary, then stops the
    /// node's daemons and wipes its data.
    fn remove_member(&self, node: &str) -> Result<(), NodeError> {
        let (membership, member) = self.membership_of(node)?;
        let runner = self.membership_runner(member)?;
        self.membership_command(runner, member, "[membership] remove", &membership.remove)?;
        for daemon in self.daemons.iter().rev() {
            daemon.kill(node)?;
        }
        self.wipe(member)
            .map_err(|e| self.node_error(member, "[node] wipe", e))?;
        self.removed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(member);
        Ok(())
    }

    /// Adds `node` back: runs `add` on the primary, then sets the node up afresh (empty
    /// data directory, `[node] setup`) and starts its daemons, each waited for until ready.
    /// A node that is a member already is left as it is.
    fn add_member(&self, node: &str) -> Result<(), NodeError> {
        let (membership, member) = self.membership_of(node)?;
        if !self.is_removed(member) {
            return Ok(());
        }
        let runner = self.membership_runner(member)?;
        self.membership_command(runner, member, "[membership] add", &membership.add)?;
        self.prepare_node(member)
            .map_err(|e| self.node_error(member, "[node] setup", e))?;
        for (def, daemon) in self.file.daemons.iter().zip(&self.daemons) {
            daemon.start(node)?;
            self.wait_ready(member, def, daemon)
                .map_err(|e| self.node_error(member, "the ready check", e))?;
        }
        self.removed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&member);
        Ok(())
    }

    /// `{data_dir}` of `node`: `corrupt-file` reaches it; with `--nemesis disk` it is
    /// served through lazyfs, and `lose-unsynced` kills every daemon of the node, drops
    /// what they did not fsync and starts them again.
    fn data_dir(&self, node: &str) -> Result<DataDir, String> {
        let index = self
            .values
            .iter()
            .position(|v| v.name == node)
            .ok_or_else(|| format!("there is no node {node:?} in this run"))?;
        Ok(DataDir {
            path: PathBuf::from(&self.values[index].data_dir),
            lazyfs: self.lazyfs_mount(index).map(|m| LazyfsControl {
                program: m.program,
                socket: m.socket,
            }),
        })
    }

    fn clock_support(&self, node: &str) -> ClockSupport {
        let Some(first) = self.daemons.first() else {
            return ClockSupport::Unsupported("the target runs no daemon".into());
        };
        let support = first.clock_support(node);
        if !matches!(support, ClockSupport::FaketimeFile(_)) {
            return support;
        }
        let Ok(index) = first.index_of(node) else {
            return support;
        };
        let unfakeable = self.unfakeable_daemons(index);
        if unfakeable.is_empty() {
            support
        } else {
            ClockSupport::Unsupported(format!(
                "{}, so libfaketime cannot move its clock; run clock faults on SSH nodes (system clock) or leave `clock` out of --nemesis",
                unfakeable.join("; ")
            ))
        }
    }
}

#[async_trait::async_trait]
impl Target for FileTarget {
    fn name(&self) -> &'static str {
        self.name
    }

    fn node_names(&self) -> Vec<String> {
        self.values.iter().map(|v| v.name.clone()).collect()
    }

    fn setup(&self) -> anyhow::Result<()> {
        self.on_every_node(|i| {
            self.upload_dir(i)?;
            self.prepare_node(i)
        })?;
        for (def, daemon) in self.file.daemons.iter().zip(&self.daemons) {
            daemon.start_all()?;
            self.on_every_node(|i| self.wait_ready(i, def, daemon))?;
        }
        if let Some(setup) = &self.file.cluster_setup {
            self.run_on(0, "[cluster] setup", setup, COMMAND_TIMEOUT)?;
        }
        self.probe_client()
    }

    fn teardown(&self, wipe: bool) -> anyhow::Result<()> {
        let mut errors = Vec::new();
        for daemon in self.daemons.iter().rev() {
            if let Err(e) = daemon.stop_all(wipe) {
                errors.push(format!("{e:#}"));
            }
        }
        // lazyfs writes back and unmounts once the daemons using it are gone; `wipe`
        // releases it itself before removing anything.
        let released = if wipe {
            self.on_every_node(|i| {
                self.wipe(i)?;
                if !self.nodes[i].is_local() {
                    let dir = uploaded_dir(self.nodes[i].as_ref(), &self.file);
                    self.nodes[i].exec_ok(
                        &format!("rm -rf {}", shell_quote_path(&dir)),
                        COMMAND_TIMEOUT,
                    )?;
                }
                Ok(())
            })
        } else {
            self.on_every_node(|i| Ok(self.release_mount(i).map(drop)?))
        };
        if let Err(e) = released {
            errors.push(format!("{e:#}"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            anyhow::bail!(
                "could not tear {} down: {}",
                self.file.name,
                errors.join("; ")
            )
        }
    }

    fn collect_logs(&self, node: usize, dest: &Path) -> anyhow::Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        if let Some(mount) = self.lazyfs_mount(node) {
            let local = dest.join(mount.log_file.file_name().expect("a log file name"));
            match self.nodes[node].download(&mount.log_file, &local) {
                Ok(()) => files.push(local),
                Err(e) => tracing::warn!("could not copy {}: {e}", mount.log_file.display()),
            }
        }
        for (def, daemon) in self.file.daemons.iter().zip(&self.daemons) {
            files.extend(daemon.collect_logs(node, dest)?);
            for extra in &def.log_files {
                let remote = PathBuf::from(self.expand(extra, Some(node))?);
                let Some(base) = remote.file_name() else {
                    continue;
                };
                let exists = self.nodes[node]
                    .exec(
                        &format!("test -f {}", shell_quote_path(&remote)),
                        PROBE_TIMEOUT,
                    )
                    .is_ok_and(|o| o.success());
                if !exists {
                    tracing::debug!(
                        "{}: no log file {}",
                        self.nodes[node].name(),
                        remote.display()
                    );
                    continue;
                }
                let local = dest.join(base);
                self.nodes[node].download(&remote, &local)?;
                files.push(local);
            }
        }
        Ok(files)
    }

    async fn client(&self, node: usize, workload: &str) -> anyhow::Result<Box<dyn Client>> {
        let spec = self.client_spec(workload)?;
        Ok(Box::new(ProcessClient::open(spec, node).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Vec<NodeValues> {
        (1..=3)
            .map(|i| NodeValues {
                name: format!("n{i}"),
                ip: format!("10.77.232.{}", 10 + i),
                data_dir: String::new(),
                log_dir: String::new(),
                dir: String::new(),
            })
            .collect()
    }

    #[test]
    fn primaries_are_read_from_names_addresses_and_ports() {
        let v = values();
        assert_eq!(primaries_from("10.77.232.12\n", &v), ["n2"]);
        assert_eq!(primaries_from("n3 n1 n3", &v), ["n3", "n1"]);
        assert_eq!(primaries_from("10.77.232.13:6379,\"n2\"", &v), ["n3", "n2"]);
        assert_eq!(primaries_from("10.77.232.13\n6379\n", &v), ["n3"]);
        assert!(primaries_from("", &v).is_empty());
        assert!(primaries_from("10.77.232.111 n33 master", &v).is_empty());
    }

    #[test]
    fn only_plain_paths_are_shell_safe() {
        assert!(shell_safe("/var/lib/distest/tf1/n1/data/redis-sentinel"));
        for bad in ["", "/a b", "/a$b", "/a;b", "/a'b", "/a\nb", "/a*"] {
            assert!(!shell_safe(bad), "{bad:?}");
        }
    }

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\n\nb\nc\n", 2), "b / c");
        assert_eq!(last_lines("  \n", 2), "(no output)");
    }
}
