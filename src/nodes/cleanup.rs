//! Removing what distest created on this machine, found by name, and cleanup on Ctrl-C.
//!
//! Teardown never trusts memory: it lists namespaces, links, iptables rules and
//! `/etc/netns` directories and removes those whose names carry a cluster's prefix (see
//! [`names`](super::names)), so `distest env down` also works after the control node was
//! SIGKILLed mid-setup. It is best effort: it tries every step, then reports the first error.
//!
//! RAII guards register themselves with [`register_cleanup`]; on SIGINT/SIGTERM
//! (`crate::signals`, cleanup mode) every registered cleanup runs, newest first, and
//! cleanups already running on another thread (a guard being dropped) are waited for
//! before the exit.

use super::host;
use super::names::{parse_link, parse_namespace, ClusterNames};
use super::NodesError;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Where `ip netns exec` finds per-namespace files (`hosts`) to bind-mount over `/etc`.
pub const NETNS_ETC: &str = "/etc/netns";
/// iptables tables scanned for rules carrying a distest comment.
const IPTABLES_TABLES: [&str; 4] = ["filter", "nat", "mangle", "raw"];
/// How long teardown waits for SIGKILLed namespace processes to disappear.
const PROCESS_EXIT_WAIT: Duration = Duration::from_secs(5);
/// How long teardown waits for the kernel to finish removing links.
const LINK_REMOVAL_WAIT: Duration = Duration::from_secs(5);

/// Which clusters a teardown or listing covers.
#[derive(Clone, Debug)]
pub enum Scope {
    /// One cluster.
    Cluster(ClusterNames),
    /// Every distest cluster on this machine.
    All,
}

impl Scope {
    fn namespace(&self, name: &str) -> bool {
        match self {
            Scope::Cluster(c) => c.owns_namespace(name),
            Scope::All => parse_namespace(name).is_some(),
        }
    }

    fn link(&self, name: &str) -> bool {
        match self {
            Scope::Cluster(c) => c.owns_link(name),
            Scope::All => parse_link(name).is_some(),
        }
    }

    fn comment(&self, comment: &str) -> bool {
        match self {
            Scope::Cluster(c) => comment == c.iptables_comment(),
            Scope::All => comment.starts_with("distest:"),
        }
    }
}

/// Host objects of distest clusters that exist right now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leftovers {
    pub namespaces: Vec<String>,
    pub links: Vec<String>,
    /// `(table, rule as iptables -S prints it)`.
    pub iptables_rules: Vec<(String, String)>,
    pub netns_dirs: Vec<PathBuf>,
    pub processes: Vec<u32>,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
            && self.links.is_empty()
            && self.iptables_rules.is_empty()
            && self.netns_dirs.is_empty()
            && self.processes.is_empty()
    }
}

/// Lists the host objects in `scope`.
pub fn leftovers(scope: &Scope) -> Result<Leftovers, NodesError> {
    let namespaces: Vec<String> = host::list_namespaces()?
        .into_iter()
        .filter(|n| scope.namespace(n))
        .collect();
    let mut processes = Vec::new();
    for ns in &namespaces {
        processes.extend(host::namespace_pids(ns)?);
    }
    Ok(Leftovers {
        links: host::list_links()?
            .into_iter()
            .filter(|l| scope.link(l))
            .collect(),
        iptables_rules: iptables_rules(scope)?,
        netns_dirs: netns_dirs(scope),
        namespaces,
        processes,
    })
}

fn iptables_rules(scope: &Scope) -> Result<Vec<(String, String)>, NodesError> {
    let mut rules = Vec::new();
    for table in IPTABLES_TABLES {
        // A table the kernel lacks (no module) holds no rules of ours.
        let out = host::run(&["iptables", "-w", "5", "-t", table, "-S"])?;
        if out.status != 0 {
            continue;
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let args = host::split_iptables_rule(line);
            let ours = args
                .windows(2)
                .any(|w| w[0] == "--comment" && scope.comment(&w[1]));
            if ours && args.first().map(String::as_str) == Some("-A") {
                rules.push((table.to_string(), line.to_string()));
            }
        }
    }
    Ok(rules)
}

fn netns_dirs(scope: &Scope) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(NETNS_ETC) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| scope.namespace(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect()
}

/// What a teardown removed.
#[derive(Clone, Debug, Default)]
pub struct TeardownReport {
    pub removed: Leftovers,
    pub data_dirs: Vec<PathBuf>,
    /// Daemons found by their pid files under the clusters' directories and killed
    /// (`killed PID PIDFILE` lines): what a run started outside the namespaces, too.
    pub daemons: Vec<String>,
    /// Mounts detached under the clusters' directories (`unmounted PATH` lines).
    pub mounts: Vec<String>,
}

impl TeardownReport {
    /// True when nothing was found to remove.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty()
            && self.data_dirs.is_empty()
            && self.daemons.is_empty()
            && self.mounts.is_empty()
    }

    /// `5 namespaces, 7 processes, 2 links, 3 iptables rules, 1 mount, 2 directories`:
    /// what was removed, only the kinds that were there.
    pub fn summary(&self) -> String {
        let r = &self.removed;
        // A daemon in a namespace is found both ways; count each process once.
        let mut processes: Vec<u32> = r.processes.clone();
        processes.extend(
            self.daemons
                .iter()
                .filter_map(|l| l.split(' ').nth(1).and_then(|p| p.parse::<u32>().ok())),
        );
        processes.sort_unstable();
        processes.dedup();
        let counts = [
            (r.namespaces.len(), "namespace"),
            (processes.len(), "process"),
            (r.links.len(), "link"),
            (r.iptables_rules.len(), "iptables rule"),
            (self.mounts.len(), "mount"),
            (r.netns_dirs.len() + self.data_dirs.len(), "directory"),
        ];
        let parts: Vec<String> = counts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| match (*n, *what) {
                (1, w) => format!("1 {w}"),
                (n, "process") => format!("{n} processes"),
                (n, "directory") => format!("{n} directories"),
                (n, w) => format!("{n} {w}s"),
            })
            .collect();
        if parts.is_empty() {
            "nothing".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// Runs a script of [`super::daemon`] (sweep, unmount) on this machine; its lines.
fn host_script(script: &str) -> Result<Vec<String>, NodesError> {
    let out = host::run(&["sh", "-c", script])?;
    if out.status != 0 {
        return Err(NodesError::Host {
            command: "sh -c <cleanup script>".into(),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

/// What of cluster `names` shows that a run used it and did not clean up, for a run
/// about to start on it without a record of the run before: processes in its
/// namespaces, live daemons named by pid files under `cluster_dir`, mounts under it,
/// and firewall rules inside its namespaces. One phrase per kind found; empty when the
/// cluster is clean (e.g. fresh from `distest env up`).
pub fn evidence(names: &ClusterNames, cluster_dir: &Path) -> Result<Vec<String>, NodesError> {
    let scope = Scope::Cluster(names.clone());
    let namespaces: Vec<String> = host::list_namespaces()?
        .into_iter()
        .filter(|n| scope.namespace(n))
        .collect();
    let mut found = Vec::new();
    let mut processes = 0;
    let mut rules = Vec::new();
    for ns in &namespaces {
        processes += host::namespace_pids(ns)?.len();
        let out = host::run(&["ip", "netns", "exec", ns, "iptables-save"])?;
        let text = String::from_utf8_lossy(&out.stdout);
        if text
            .lines()
            .any(|l| l.starts_with("-A ") || is_custom_chain(l))
        {
            rules.push(ns.clone());
        }
    }
    if processes > 0 {
        found.push(format!("{processes} processes in its namespaces"));
    }
    if !rules.is_empty() {
        found.push(format!("firewall rules in {}", rules.join(", ")));
    }
    if cluster_dir.is_dir() {
        let daemons = host_script(&super::daemon::sweep_script(cluster_dir, false))?;
        if !daemons.is_empty() {
            found.push(format!("{} daemons named by pid files", daemons.len()));
        }
        let mounts = mounts_under(cluster_dir);
        if !mounts.is_empty() {
            found.push(format!("{} mounts", mounts.len()));
        }
    }
    Ok(found)
}

/// `:NAME POLICY [..]` lines of `iptables-save` that declare a chain of someone's making.
fn is_custom_chain(line: &str) -> bool {
    const BUILTIN: [&str; 5] = ["INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"];
    line.strip_prefix(':')
        .and_then(|rest| rest.split_whitespace().next())
        .is_some_and(|chain| !BUILTIN.contains(&chain))
}

/// Mount points below `dir` on this machine (from `/proc/self/mountinfo`).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mount_path(m)))
        .filter(|m| m.starts_with(dir) && m != dir)
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape_mount_path(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes every host object in `scope`: kills the processes in its namespaces, deletes the
/// namespaces, `/etc/netns` dirs, links and iptables rules, and the clusters' directories
/// under `base_dir`. Tries every step; returns the first error after trying them all.
pub fn teardown(scope: &Scope, base_dir: &Path) -> Result<TeardownReport, NodesError> {
    host::require_root()?;
    // No base directory: no `up` ever ran with it, so there is nothing to serialize with
    // (and creating it just to lock it would leave a directory behind).
    let _lock = if base_dir.is_dir() {
        Some(host::lock_base_dir(base_dir)?)
    } else {
        None
    };
    let found = leftovers(scope)?;
    let mut first_error: Option<NodesError> = None;
    let mut note = |r: Result<(), NodesError>| {
        if let Err(e) = r {
            tracing::warn!("teardown step failed: {e}");
            first_error.get_or_insert(e);
        }
    };

    // Daemons a run started outside the namespaces (a FUSE file system over a data
    // directory, say) are found by their pid files, whatever target started them.
    let data_dirs = cluster_data_dirs(scope, base_dir);
    let mut daemons = Vec::new();
    for dir in &data_dirs {
        match host_script(&super::daemon::sweep_script(dir, true)) {
            Ok(lines) => daemons.extend(lines),
            Err(e) => note(Err(e)),
        }
    }
    note(kill_namespace_processes(&found.namespaces));
    let mut mounts = Vec::new();
    for dir in &data_dirs {
        match host_script(&super::daemon::unmount_script(dir)) {
            Ok(lines) => mounts.extend(lines),
            Err(e) => note(Err(e)),
        }
    }
    for ns in &found.namespaces {
        note(host::ok(&["ip", "netns", "delete", ns]).map(drop));
    }
    for dir in &found.netns_dirs {
        note(remove_dir(dir));
    }
    // Deleting a namespace deletes the veth ends inside it and with them their host ends;
    // what remains (bridge, veths of a half-built node) goes here.
    let links_now = host::list_links()?;
    for link in found.links.iter().filter(|l| links_now.contains(l)) {
        note(delete_link(link));
    }
    note(wait_for_links_gone(scope));
    for (table, rule) in &found.iptables_rules {
        let mut args = host::split_iptables_rule(rule);
        args[0] = "-D".to_string();
        let mut argv = vec!["iptables", "-w", "5", "-t", table.as_str()];
        argv.extend(args.iter().map(String::as_str));
        note(host::ok(&argv).map(drop));
    }
    for dir in &data_dirs {
        // lazyfs runs outside the namespaces: stop it and unmount before removing, never
        // remove through a live mount.
        for mount in super::lazyfs::release_under(dir) {
            tracing::info!("released the lazyfs mount {}", mount.display());
        }
        note(remove_dir(dir));
    }

    match first_error {
        Some(e) => Err(e),
        None => Ok(TeardownReport {
            removed: found,
            data_dirs,
            daemons,
            mounts,
        }),
    }
}

/// Deletes a link; one already gone (the kernel removes a veth's peer with it, and does so
/// asynchronously after a namespace is deleted) is fine.
fn delete_link(link: &str) -> Result<(), NodesError> {
    let out = host::run(&["ip", "link", "delete", link])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status == 0 || stderr.contains("Cannot find device") {
        return Ok(());
    }
    Err(NodesError::Host {
        command: format!("ip link delete {link}"),
        status: out.status,
        stderr: stderr.trim().to_string(),
    })
}

/// Waits (bounded) until the kernel has finished removing the links in `scope`: veths of a
/// deleted namespace disappear asynchronously.
fn wait_for_links_gone(scope: &Scope) -> Result<(), NodesError> {
    let deadline = Instant::now() + LINK_REMOVAL_WAIT;
    loop {
        let left: Vec<String> = host::list_links()?
            .into_iter()
            .filter(|l| scope.link(l))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(NodesError::Stuck(format!(
                "links {left:?} were still present {} s after teardown; remove them with `ip link delete`",
                LINK_REMOVAL_WAIT.as_secs()
            )));
        }
        for link in &left {
            delete_link(link)?;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn remove_dir(dir: &Path) -> Result<(), NodesError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NodesError::Io {
            what: "could not remove".into(),
            path: dir.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// The clusters' directories under `base_dir`: `<base>/<id>` for one cluster; for all, each
/// `<base>/<id>` holding a cluster state file (so unrelated directories are never touched).
fn cluster_data_dirs(scope: &Scope, base_dir: &Path) -> Vec<PathBuf> {
    match scope {
        Scope::Cluster(c) => {
            let dir = base_dir.join(c.id());
            if dir.exists() {
                vec![dir]
            } else {
                Vec::new()
            }
        }
        Scope::All => std::fs::read_dir(base_dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.join(super::local::STATE_FILE).is_file())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// SIGKILLs every process in `namespaces` and waits (bounded) until none is left.
fn kill_namespace_processes(namespaces: &[String]) -> Result<(), NodesError> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let me = std::process::id();
    let deadline = Instant::now() + PROCESS_EXIT_WAIT;
    loop {
        let mut pids = Vec::new();
        for ns in namespaces {
            pids.extend(host::namespace_pids(ns)?.into_iter().filter(|p| *p != me));
        }
        if pids.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(NodesError::Stuck(format!(
                "processes {pids:?} in the cluster's namespaces survived SIGKILL for {} s; check them with `ps` and remove them by hand",
                PROCESS_EXIT_WAIT.as_secs()
            )));
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

type Cleanup = Box<dyn FnOnce() + Send>;

fn registry() -> &'static Mutex<Vec<(u64, Cleanup)>> {
    static REGISTRY: OnceLock<Mutex<Vec<(u64, Cleanup)>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(Vec::new()))
}

fn lock_registry() -> std::sync::MutexGuard<'static, Vec<(u64, Cleanup)>> {
    // A cleanup that panicked must not stop the others from running.
    registry().lock().unwrap_or_else(|e| e.into_inner())
}

/// Unregisters its cleanup when dropped (without running it): the RAII owner cleaned up
/// itself. [`CleanupGuard::run_now`] runs it instead.
#[derive(Debug)]
pub struct CleanupGuard {
    id: u64,
}

impl CleanupGuard {
    /// Removes the cleanup from the registry and runs it, if it is still registered.
    pub fn run_now(self) {
        if let Some(f) = take(self.id, true) {
            run_tracked(f);
        }
    }
}

/// Removes cleanup `id` from the registry. With `to_run`, counts it as running in the same
/// critical section, so the signal thread never sees "nothing running" in between.
fn take(id: u64, to_run: bool) -> Option<Cleanup> {
    let mut reg = lock_registry();
    let pos = reg.iter().position(|(i, _)| *i == id)?;
    if to_run {
        RUNNING.fetch_add(1, Ordering::SeqCst);
    }
    Some(reg.remove(pos).1)
}

/// Runs a cleanup already counted in [`RUNNING`]; a panic in it is contained.
fn run_tracked(f: Cleanup) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        tracing::error!("a cleanup panicked; continuing with the others");
    }
    RUNNING.fetch_sub(1, Ordering::SeqCst);
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        drop(take(self.id, false));
    }
}

/// Cleanups running right now (on any thread).
static RUNNING: AtomicUsize = AtomicUsize::new(0);
/// Set once SIGINT/SIGTERM arrived in cleanup mode.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// How long the signal thread waits for cleanups running on other threads before exiting.
const CLEANUP_WAIT: Duration = Duration::from_secs(120);

/// Records that the process is about to clean up and exit (set by `crate::signals`).
pub(crate) fn mark_interrupted() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// True once SIGINT/SIGTERM arrived in cleanup mode (see `crate::signals`): long work
/// should stop early, because the process is about to clean up and exit.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// After an interrupt, blocks (bounded) while the signal thread cleans up and exits the
/// process; returns at once otherwise. Call it where the main thread would otherwise finish
/// and end the process under a running cleanup.
pub fn park_if_interrupted() {
    let deadline = Instant::now() + CLEANUP_WAIT;
    while interrupted() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Registers `f` to run if SIGINT/SIGTERM arrives (in `crate::signals`' cleanup mode) or on
/// [`run_registered_cleanups`]. Cleanups run newest first.
pub fn register_cleanup(f: impl FnOnce() + Send + 'static) -> CleanupGuard {
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    lock_registry().push((id, Box::new(f)));
    CleanupGuard { id }
}

/// Runs (and unregisters) every registered cleanup, newest first.
pub fn run_registered_cleanups() {
    // Take them one at a time so a cleanup may itself register or drop guards.
    loop {
        let next = {
            let mut reg = lock_registry();
            let next = reg.pop();
            if next.is_some() {
                RUNNING.fetch_add(1, Ordering::SeqCst);
            }
            next
        };
        match next {
            Some((_, f)) => run_tracked(f),
            None => return,
        }
    }
}

/// Runs every registered cleanup, then waits (bounded) for those other threads are running.
/// What `crate::signals` does on an interrupt in cleanup mode.
pub fn run_all_and_wait() {
    run_registered_cleanups();
    let deadline = Instant::now() + CLEANUP_WAIT;
    while RUNNING.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn cleanups_run_newest_first_and_dropped_guards_do_not_run() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let l1 = log.clone();
        let l2 = log.clone();
        let l3 = log.clone();
        let _g1 = register_cleanup(move || l1.lock().unwrap().push(1));
        let g2 = register_cleanup(move || l2.lock().unwrap().push(2));
        let _g3 = register_cleanup(move || l3.lock().unwrap().push(3));
        drop(g2);
        // Other tests in this binary may register too; ours must appear as 3 then 1.
        run_registered_cleanups();
        assert_eq!(*log.lock().unwrap(), vec![3, 1]);
    }

    #[test]
    fn mount_paths_are_unescaped_and_custom_chains_recognised() {
        assert_eq!(unescape_mount_path("/tmp/a\\040b"), "/tmp/a b");
        assert_eq!(unescape_mount_path("/plain\\0"), "/plain\\0");
        assert!(is_custom_chain(":DISTEST-PARTITION - [0:0]"));
        assert!(!is_custom_chain(":INPUT ACCEPT [0:0]"));
        assert!(!is_custom_chain("*filter"));
    }

    #[test]
    fn a_teardown_summary_names_only_what_was_there() {
        let mut report = TeardownReport::default();
        assert!(report.is_empty());
        assert_eq!(report.summary(), "nothing");
        report.removed.namespaces = vec!["a".into(), "b".into()];
        report.removed.processes = vec![1, 7];
        report.daemons = vec!["killed 7 /x.pid".into(), "killed 8 /y.pid".into()];
        report.data_dirs = vec!["/x".into()];
        assert_eq!(report.summary(), "2 namespaces, 3 processes, 1 directory");
    }

    #[test]
    fn run_now_runs_once() {
        let count = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let c = count.clone();
        let guard = register_cleanup(move || {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        guard.run_now();
        run_registered_cleanups();
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
