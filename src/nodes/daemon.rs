//! Daemons on a node, built only on `exec`: start with `setsid` + `nohup` and a pid file,
//! check with `kill -0`, signal, stop with a deadline.
//!
//! Being written against [`NodeShell::exec`] alone, the same code runs daemons in a local
//! namespace and on an SSH host. The daemon writes its own pid (`echo $$` then `exec`), so the
//! pid file names the daemon itself, not a wrapper. `setsid` makes it a process-group leader:
//! signals go to the whole group (a wrapper script's children too), and the command that
//! started it can time out without taking it down.
//!
//! Liveness ignores zombies: where PID 1 does not reap (containers), a killed daemon stays a
//! zombie that `kill -0` still reports.

use super::{shell_quote, shell_quote_path};
use distest_nemeses::{NodeError, NodeShell};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a daemon has to write its pid file before `start` reports it failed.
const PID_FILE_WAIT_TICKS: u32 = 100; // × 50 ms = 5 s
/// How long `stop` waits for a process to vanish after SIGKILL before calling it stuck.
const KILL_WAIT_TICKS: u32 = 200; // × 50 ms = 10 s
/// Budget for the shell bookkeeping around a start or stop, on top of its own waits.
const SCRIPT_SLACK: Duration = Duration::from_secs(15);

/// A signal a daemon can be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
    Stop,
    Cont,
    Hup,
    Int,
    Usr1,
    Usr2,
}

impl Signal {
    /// The name `kill -s` takes.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "TERM",
            Signal::Kill => "KILL",
            Signal::Stop => "STOP",
            Signal::Cont => "CONT",
            Signal::Hup => "HUP",
            Signal::Int => "INT",
            Signal::Usr1 => "USR1",
            Signal::Usr2 => "USR2",
        }
    }
}

/// How to run one daemon on a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonSpec {
    /// The program to run (a path on the node, or a name on its PATH).
    pub program: String,
    pub args: Vec<String>,
    /// Extra environment, e.g. `LD_PRELOAD` and `FAKETIME` for clock faults.
    pub env: Vec<(String, String)>,
    /// Working directory (created if missing); the node's `/` when `None`.
    pub cwd: Option<PathBuf>,
    /// Holds the daemon's pid; its directory is created if missing.
    pub pid_file: PathBuf,
    /// Receives the daemon's stdout and stderr (appended); its directory is created if missing.
    pub log_file: PathBuf,
}

impl DaemonSpec {
    /// A daemon running `program` with pid file and log file, no args, env or cwd.
    pub fn new(program: impl Into<String>, pid_file: PathBuf, log_file: PathBuf) -> Self {
        DaemonSpec {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            pid_file,
            log_file,
        }
    }
}

/// Script prelude: `$pf` (the pid file), `$sf` (its sidecar with the process start time) and
/// `alive PID`, true for a live, non-zombie process that is still the one that wrote the pid
/// file. The start-time check matters: after a crash the pid may be reused by an unrelated
/// process, which `kill -0` alone would report as the daemon (and `stop` would then kill).
/// Without /proc (no start time recorded) only `kill -0` is used.
fn prelude(pid_file: &Path) -> String {
    let pf = shell_quote_path(pid_file);
    format!(
        "pf={pf}; sf={pf}.start\n\
         stat_of() {{ sed 's/.*) //' /proc/\"$1\"/stat 2>/dev/null | cut -d' ' -f1,20; }}\n\
         alive() {{\n\
           kill -0 \"$1\" 2>/dev/null || return 1\n\
           st=$(stat_of \"$1\"); case \"$st\" in Z*) return 1;; esac\n\
           [ -s \"$sf\" ] || return 0\n\
           [ \"${{st#* }}\" = \"$(cat \"$sf\")\" ]\n\
         }}\n"
    )
}

/// `case` patterns for pid-file contents that cannot be a daemon: not a number, or 0/1
/// (signalling group `-1` would hit every process on the node).
const NOT_A_DAEMON_PID: &str = "''|*[!0-9]*|0*|1";

/// Reads the pid file into `$pid`; leaves the script (after `on_missing`) when it names no
/// live daemon, removing a stale pid file on the way.
fn read_pid(on_missing: &str) -> String {
    format!(
        "pid=$(cat \"$pf\" 2>/dev/null) || {{ {on_missing} exit 0; }}\n\
         case \"$pid\" in {NOT_A_DAEMON_PID}) rm -f \"$pf\" \"$sf\"; {on_missing} exit 0;; esac\n\
         alive \"$pid\" || {{ rm -f \"$pf\" \"$sf\"; {on_missing} exit 0; }}\n"
    )
}

fn node_failed<S: NodeShell + ?Sized>(node: &S, command: &str, message: String) -> NodeError {
    NodeError::Failed {
        node: node.name().to_string(),
        command: command.to_string(),
        status: -1,
        stderr: message,
    }
}

fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn parent_of(p: &Path) -> String {
    shell_quote_path(
        p.parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
}

/// The shell script that starts `spec` (or reports the live pid when it already runs).
pub fn start_script(spec: &DaemonSpec) -> Result<String, NodeError> {
    if spec.program.is_empty() {
        return Err(NodeError::Unsupported(
            "a daemon needs a program to run; the spec's program is empty".to_string(),
        ));
    }
    if let Some((bad, _)) = spec.env.iter().find(|(k, _)| !is_env_name(k)) {
        return Err(NodeError::Unsupported(format!(
            "environment variable name {bad:?} is not valid; use letters, digits and _"
        )));
    }
    let pf = shell_quote_path(&spec.pid_file);
    let log = shell_quote_path(&spec.log_file);
    let cwd = spec
        .cwd
        .as_deref()
        .map(shell_quote_path)
        .unwrap_or_else(|| "/".to_string());
    let mut exec_words = vec!["env".to_string()];
    exec_words.extend(
        spec.env
            .iter()
            .map(|(k, v)| shell_quote(&format!("{k}={v}"))),
    );
    exec_words.push(shell_quote(&spec.program));
    exec_words.extend(spec.args.iter().map(|a| shell_quote(a)));
    let exec_words = exec_words.join(" ");
    // The wrapper records its start time, then its pid (so a pid file never lacks its start
    // time), then becomes the daemon: the pid file names the daemon itself.
    let wrapper = "sed \"s/.*) //\" /proc/$$/stat 2>/dev/null | cut -d\" \" -f20 > \"$0.start\"; echo $$ > \"$0\"; exec \"$@\"";
    let mut script = prelude(&spec.pid_file);
    script.push_str(&format!(
        "mkdir -p {pdir} {ldir} {cwd} || exit 1\n\
         pid=$(cat \"$pf\" 2>/dev/null)\n\
         case \"$pid\" in {NOT_A_DAEMON_PID}) ;; *) if alive \"$pid\"; then echo \"$pid\"; exit 0; fi;; esac\n\
         rm -f \"$pf\" \"$sf\"\n\
         cd {cwd} || exit 1\n\
         setsid nohup sh -c '{wrapper}' {pf} {exec_words} >> {log} 2>&1 < /dev/null &\n\
         i=0; while [ ! -s \"$pf\" ] && [ $i -lt {PID_FILE_WAIT_TICKS} ]; do sleep 0.05; i=$((i+1)); done\n\
         pid=$(cat \"$pf\" 2>/dev/null)\n\
         [ -n \"$pid\" ] || {{ echo \"the daemon did not write its pid file {pf} within 5 s; its log:\" >&2; tail -n 20 {log} >&2; exit 1; }}\n\
         sleep 0.1\n\
         alive \"$pid\" || {{ rm -f \"$pf\" \"$sf\"; echo \"the daemon exited right after starting; last lines of {log}:\" >&2; tail -n 20 {log} >&2; exit 1; }}\n\
         echo \"$pid\"\n",
        pdir = parent_of(&spec.pid_file),
        ldir = parent_of(&spec.log_file),
    ));
    Ok(script)
}

/// Starts the daemon unless its pid file names a live process; returns the pid.
pub fn start<S: NodeShell + ?Sized>(node: &S, spec: &DaemonSpec) -> Result<u32, NodeError> {
    let script = start_script(spec)?;
    let wait = Duration::from_millis(50 * u64::from(PID_FILE_WAIT_TICKS));
    let out = node.exec_ok(&script, wait + SCRIPT_SLACK)?;
    parse_pid(out.stdout.trim()).ok_or_else(|| {
        node_failed(
            node,
            &format!("start {}", spec.program),
            format!("expected a pid, got {:?}", out.stdout.trim()),
        )
    })
}

fn parse_pid(s: &str) -> Option<u32> {
    s.parse::<u32>().ok().filter(|pid| *pid > 1)
}

/// The pid of the live process named by `pid_file`, if any.
pub fn live_pid<S: NodeShell + ?Sized>(
    node: &S,
    pid_file: &Path,
) -> Result<Option<u32>, NodeError> {
    let script = format!("{}{}echo \"$pid\"\n", prelude(pid_file), read_pid(""));
    let out = node.exec_ok(&script, SCRIPT_SLACK)?;
    Ok(parse_pid(out.stdout.trim()))
}

/// Sends `signal` to the daemon's process group; false when it was not running.
pub fn signal<S: NodeShell + ?Sized>(
    node: &S,
    pid_file: &Path,
    signal: Signal,
) -> Result<bool, NodeError> {
    let sig = signal.name();
    let script = format!(
        "{}{}kill -s {sig} -- -\"$pid\" 2>/dev/null || kill -s {sig} \"$pid\" || exit 1\necho sent\n",
        prelude(pid_file),
        read_pid("echo none;")
    );
    let out = node.exec_ok(&script, SCRIPT_SLACK)?;
    Ok(out.stdout.trim() == "sent")
}

/// SIGTERM (when `grace` > 0), wait up to `grace`, SIGKILL, wait until gone; removes the pid
/// file. A daemon that is not running is not an error.
pub fn stop<S: NodeShell + ?Sized>(
    node: &S,
    pid_file: &Path,
    grace: Duration,
) -> Result<(), NodeError> {
    let grace = grace.min(super::exec::MAX_TIMEOUT);
    let grace_ticks = grace.as_millis().div_ceil(50);
    let script = format!(
        "{prelude}{read}\
         if [ {grace_ticks} -gt 0 ]; then\n\
           kill -s TERM -- -\"$pid\" 2>/dev/null || kill -s TERM \"$pid\" 2>/dev/null\n\
           kill -s CONT -- -\"$pid\" 2>/dev/null || kill -s CONT \"$pid\" 2>/dev/null\n\
           i=0; while alive \"$pid\" && [ $i -lt {grace_ticks} ]; do sleep 0.05; i=$((i+1)); done\n\
         fi\n\
         if alive \"$pid\"; then\n\
           kill -s KILL -- -\"$pid\" 2>/dev/null || kill -s KILL \"$pid\" 2>/dev/null\n\
           i=0; while alive \"$pid\" && [ $i -lt {KILL_WAIT_TICKS} ]; do sleep 0.05; i=$((i+1)); done\n\
         fi\n\
         if alive \"$pid\"; then echo \"process $pid is still alive 10 s after SIGKILL\" >&2; exit 1; fi\n\
         rm -f \"$pf\" \"$sf\"\n",
        prelude = prelude(pid_file),
        read = read_pid(""),
    );
    let kill_wait = Duration::from_millis(50 * u64::from(KILL_WAIT_TICKS));
    node.exec_ok(
        &script,
        grace.saturating_add(kill_wait).saturating_add(SCRIPT_SLACK),
    )?;
    Ok(())
}

/// A shell script that SIGKILLs every daemon whose pid file lies under `dir` (any file
/// named `*.pid`, at any depth, not crossing into other filesystems), with its process
/// group and every descendant, and prints `killed PID PIDFILE` for each. What a run of any
/// target started is found this way, without knowing the target: every daemon a run starts
/// has a pid file under the node's directories.
///
/// A pid file names a live daemon only when its process is the one that wrote it: the
/// start-time sidecar matches (see [`start_script`]), or, for pid files without one (other
/// programs'), the process started no later than the file was written. A reused pid never
/// matches, so an unrelated process is never killed.
/// With `kill` false it only lists them (`alive PID PIDFILE`).
pub fn sweep_script(dir: &Path, kill: bool) -> String {
    let dir = shell_quote_path(dir);
    let act = if kill {
        "pids=$(tree \"$pid\")\n\
         kill -s KILL -- -\"$pid\" 2>/dev/null; kill -s KILL $pids 2>/dev/null\n\
         echo \"killed $pid $pf\"\n"
    } else {
        "echo \"alive $pid $pf\"\n"
    };
    format!(
        "dir={dir}\n\
         [ -d \"$dir\" ] || exit 0\n\
         btime=$(sed -n 's/^btime //p' /proc/stat); hz=$(getconf CLK_TCK 2>/dev/null || echo 100)\n\
         pmap=$(cat /proc/[0-9]*/stat 2>/dev/null | sed 's/ (.*) / /' | cut -d' ' -f1,3)\n\
         tree() {{ printf '%s\\n' \"$pmap\" | awk -v root=\"$1\" '{{ parent[$1] = $2 }} END {{ keep[root] = 1; grew = 1; \
         while (grew) {{ grew = 0; for (p in parent) if (!(p in keep) && (parent[p] in keep)) {{ keep[p] = 1; grew = 1 }} }} \
         for (p in keep) printf \"%s \", p }}'; }}\n\
         find \"$dir\" -xdev -type f -name '*.pid' 2>/dev/null | while IFS= read -r pf; do\n\
           pid=$(cat \"$pf\" 2>/dev/null)\n\
           case \"$pid\" in {NOT_A_DAEMON_PID}) continue;; esac\n\
           [ \"$pid\" = \"$$\" ] && continue\n\
           st=$(sed 's/.*) //' /proc/\"$pid\"/stat 2>/dev/null | cut -d' ' -f1,20) || continue\n\
           case \"$st\" in ''|Z*) continue;; esac\n\
           start=${{st#* }}\n\
           if [ -s \"$pf.start\" ]; then [ \"$start\" = \"$(cat \"$pf.start\")\" ] || continue\n\
           else mt=$(stat -c %Y \"$pf\" 2>/dev/null) || continue; [ $((btime + start / hz)) -le $((mt + 2)) ] || continue; fi\n\
           {act}\
         done\n\
         exit 0\n"
    )
}

/// A shell script that detaches every mount below `dir` (deepest first, e.g. a FUSE file
/// system a dead run left over a data directory) and prints `unmounted PATH` for each, so
/// the directories can be removed. `dir` itself may be a mount (a disk of its own) and is
/// left alone.
pub fn unmount_script(dir: &Path) -> String {
    let dir = shell_quote_path(dir);
    format!(
        "dir={dir}\n\
         [ -e /proc/self/mountinfo ] || exit 0\n\
         cut -d' ' -f5 /proc/self/mountinfo | while IFS= read -r m; do m=$(printf '%b' \"$m\"); \
         case \"$m\" in \"$dir\"/*) echo \"$m\";; esac; done | sort -r | while IFS= read -r m; do\n\
           umount -l \"$m\" 2>/dev/null || fusermount -uz \"$m\" 2>/dev/null || fusermount3 -uz \"$m\" 2>/dev/null || {{ echo \"could not unmount $m\" >&2; continue; }}\n\
           echo \"unmounted $m\"\n\
         done\n\
         exit 0\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::exec::exec_for_node;
    use distest_nemeses::ExecOutput;
    use std::net::{IpAddr, Ipv4Addr};

    /// Runs commands on this machine with plain `sh`: enough to exercise the scripts.
    struct HostShell;

    impl NodeShell for HostShell {
        fn name(&self) -> &str {
            "host"
        }
        fn address(&self) -> IpAddr {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
        fn exec(&self, command: &str, timeout: Duration) -> Result<ExecOutput, NodeError> {
            exec_for_node("host", &["sh", "-c", command], command, timeout)
        }
        fn is_local(&self) -> bool {
            true
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dt-daemon-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn daemon_starts_once_signals_and_stops_with_grace() {
        let dir = temp_dir("life");
        let mut spec = DaemonSpec::new("sh", dir.join("run/d.pid"), dir.join("logs/d.log"));
        spec.args = vec!["-c".into(), "echo \"hi $GREETING\"; exec sleep 30".into()];
        spec.env = vec![("GREETING".into(), "it's me".into())];
        let node = HostShell;
        let pid = start(&node, &spec).unwrap();
        assert_eq!(
            start(&node, &spec).unwrap(),
            pid,
            "second start must be a no-op"
        );
        assert_eq!(live_pid(&node, &spec.pid_file).unwrap(), Some(pid));
        assert!(signal(&node, &spec.pid_file, Signal::Stop).unwrap());
        assert!(signal(&node, &spec.pid_file, Signal::Cont).unwrap());
        stop(&node, &spec.pid_file, Duration::from_secs(2)).unwrap();
        assert_eq!(live_pid(&node, &spec.pid_file).unwrap(), None);
        assert!(!signal(&node, &spec.pid_file, Signal::Term).unwrap());
        stop(&node, &spec.pid_file, Duration::ZERO).unwrap();
        let log = std::fs::read_to_string(&spec.log_file).unwrap();
        assert_eq!(log, "hi it's me\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stop_kills_a_daemon_that_ignores_sigterm() {
        let dir = temp_dir("stubborn");
        let mut spec = DaemonSpec::new("sh", dir.join("d.pid"), dir.join("d.log"));
        spec.args = vec![
            "-c".into(),
            "trap '' TERM; while :; do sleep 0.1; done".into(),
        ];
        let node = HostShell;
        start(&node, &spec).unwrap();
        let started = std::time::Instant::now();
        stop(&node, &spec.pid_file, Duration::from_millis(300)).unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(live_pid(&node, &spec.pid_file).unwrap().is_none());
        assert!(!spec.pid_file.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_daemon_that_dies_at_once_is_reported_with_its_log() {
        let dir = temp_dir("dies");
        let mut spec = DaemonSpec::new("sh", dir.join("d.pid"), dir.join("d.log"));
        spec.args = vec!["-c".into(), "echo bad flag >&2; exit 2".into()];
        let err = start(&HostShell, &spec).unwrap_err().to_string();
        assert!(err.contains("exited right after starting"), "{err}");
        assert!(err.contains("bad flag"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn garbage_in_a_pid_file_means_not_running() {
        let dir = temp_dir("garbage");
        std::fs::create_dir_all(&dir).unwrap();
        let pf = dir.join("d.pid");
        for garbage in ["1; rm -rf /\n", "1\n", "0\n", "\n", "-1\n"] {
            std::fs::write(&pf, garbage).unwrap();
            assert_eq!(live_pid(&HostShell, &pf).unwrap(), None, "{garbage:?}");
            std::fs::write(&pf, garbage).unwrap();
            assert!(
                !signal(&HostShell, &pf, Signal::Cont).unwrap(),
                "{garbage:?}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_reused_pid_is_not_taken_for_the_daemon() {
        let dir = temp_dir("reuse");
        let mut spec = DaemonSpec::new("sleep", dir.join("d.pid"), dir.join("d.log"));
        spec.args = vec!["30".into()];
        let pid = start(&HostShell, &spec).unwrap();
        // Pretend the daemon crashed and its pid went to another process: same pid, another
        // start time. Nothing may be signalled, and a new start must start a new daemon.
        std::fs::write(dir.join("d.pid.start"), "1\n").unwrap();
        assert_eq!(live_pid(&HostShell, &spec.pid_file).unwrap(), None);
        assert!(!dir.join("d.pid").exists(), "the stale pid file is removed");
        std::fs::write(&spec.pid_file, format!("{pid}\n")).unwrap();
        std::fs::write(dir.join("d.pid.start"), "1\n").unwrap();
        stop(&HostShell, &spec.pid_file, Duration::ZERO).unwrap();
        let alive = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map(|s| !s.contains("zombie"))
            .unwrap_or(false);
        assert!(alive, "stop must not kill a process that is not the daemon");
        let second = start(&HostShell, &spec).unwrap();
        assert_ne!(second, pid);
        stop(&HostShell, &spec.pid_file, Duration::ZERO).unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// True while `pid` is a live, non-zombie process.
    fn running(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('Z'))
            })
            .unwrap_or(false)
    }

    fn wait_gone(pid: u32) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while running(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        !running(pid)
    }

    #[test]
    fn a_sweep_kills_every_daemon_under_a_directory_with_its_children_and_nothing_else() {
        let dir = temp_dir("sweep");
        // A daemon started the usual way, with a child that left its process group.
        let mut spec = DaemonSpec::new("sh", dir.join("a/x.pid"), dir.join("a/x.log"));
        spec.args = vec![
            "-c".into(),
            "setsid sleep 61 & echo $! > \"$0\"; exec sleep 62".into(),
            dir.join("a/child").display().to_string(),
        ];
        let daemon = start(&HostShell, &spec).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !dir.join("a/child").exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        let child: u32 = std::fs::read_to_string(dir.join("a/child"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Another program's pid file (no start-time sidecar) written after its process
        // started: a daemon of the run.
        let mut foreign = std::process::Command::new("sleep")
            .arg("63")
            .spawn()
            .unwrap();
        std::fs::create_dir_all(dir.join("b/deep")).unwrap();
        std::fs::write(dir.join("b/deep/f.pid"), format!("{}\n", foreign.id())).unwrap();
        // A pid file written long before its pid's process started: a reused pid.
        let mut bystander = std::process::Command::new("sleep")
            .arg("64")
            .spawn()
            .unwrap();
        std::fs::write(dir.join("old.pid"), format!("{}\n", bystander.id())).unwrap();
        let touched = std::process::Command::new("touch")
            .args(["-d", "1 hour ago"])
            .arg(dir.join("old.pid"))
            .status()
            .unwrap();
        assert!(touched.success());

        let listed = HostShell
            .exec_ok(&sweep_script(&dir, false), Duration::from_secs(30))
            .unwrap()
            .stdout;
        assert_eq!(listed.lines().count(), 2, "{listed}");
        assert!(running(daemon), "a dry sweep kills nothing");
        let out = HostShell
            .exec_ok(&sweep_script(&dir, true), Duration::from_secs(30))
            .unwrap()
            .stdout;
        assert!(out.contains(&format!("killed {daemon} ")), "{out}");
        assert!(out.contains(&format!("killed {} ", foreign.id())), "{out}");
        assert!(wait_gone(daemon), "the daemon");
        assert!(
            wait_gone(child),
            "the daemon's child in a session of its own"
        );
        foreign.wait().unwrap();
        assert!(running(bystander.id()), "a reused pid's process is spared");
        bystander.kill().unwrap();
        bystander.wait().unwrap();
        assert_eq!(
            HostShell
                .exec_ok(
                    &sweep_script(&dir.join("nonexistent"), true),
                    Duration::from_secs(5)
                )
                .unwrap()
                .stdout,
            ""
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn invalid_env_names_are_refused() {
        let mut spec = DaemonSpec::new("true", "/tmp/x.pid".into(), "/tmp/x.log".into());
        spec.env = vec![("BAD NAME".into(), "1".into())];
        assert!(start_script(&spec).is_err());
    }
}
