//! The latency fault's node-side half: a small process that holds packets for a delay.
//!
//! The latency nemesis sends the affected packets of a node to an NFQUEUE (iptables rules
//! in the node's network namespace, see `latency.rs`); this delayer, bound to that queue,
//! holds each packet for `delay ± jitter` and then accepts it, out of order when the
//! jitter says so. It is the distest binary itself run as `distest latency-delayer ...`
//! (the multicall in `src/targets/mod.rs` hands such a command line to [`main`]), so a
//! node needs nothing installed beyond the copy of distest it already runs faults with.
//!
//! Commands, each printing one JSON line or a one-sentence error (exit 1):
//! - `start --queue N --delay-ms D --jitter-ms J --limit L --seed S --state-dir DIR`
//!   binds the queue and detaches (its own session, stdio on `/dev/null`, messages in
//!   `DIR/latency-delayer.log`); it returns once the queue is bound, or with the reason
//!   it could not be. `DIR/latency-delayer.pid` names it while it runs.
//! - `stop --state-dir DIR`: SIGTERM (the delayer lets every held packet go at once),
//!   SIGKILL after [`STOP_WAIT`]; prints what the delayer did ([`StopReport`]).
//!   Stopping a delayer that is not running is not an error.
//! - `probe --queue N`: binds and unbinds the queue, proving the kernel can queue packets
//!   to user space (`nfnetlink_queue`).

pub mod hold;
mod nfqueue;

use hold::{HoldConfig, HoldStats};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The word after `distest` that runs the delayer.
pub const COMMAND: &str = "latency-delayer";
/// The queue number latency uses on every node. Queues are per network namespace, so
/// local nodes never share one; on an SSH host it only must not collide with another
/// NFQUEUE user, hence an unusual number ("DT").
pub const QUEUE_NUM: u16 = 0x4454;
/// Default bound on packets held at once: at 4 KiB per held packet about 16 MiB, enough
/// for 80 000 packets/s at 50 ms. Past it packets pass undelayed and are counted.
pub const DEFAULT_LIMIT: usize = 4096;
/// Upper bound on the limit one may ask for.
pub const MAX_LIMIT: usize = 1 << 20;
/// Longest delay or jitter the delayer accepts.
pub const MAX_DELAY_MS: u64 = 60_000;
/// How long `stop` waits after SIGTERM, and again after SIGKILL.
pub const STOP_WAIT: Duration = Duration::from_secs(5);

/// The delayer's real-time priority (SCHED_FIFO), the lowest there is.
const RT_PRIORITY: nix::libc::c_int = 1;
/// Its nice value where real-time scheduling is not allowed (a container, a cgroup
/// without real-time budget).
const NICE: nix::libc::c_int = -10;

const PID_FILE: &str = "latency-delayer.pid";
const STATS_FILE: &str = "latency-delayer.stats.json";
const LOG_FILE: &str = "latency-delayer.log";

/// What a delayer did over its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelayerStats {
    #[serde(flatten)]
    pub hold: HoldStats,
    /// Verdicts the kernel refused or socket errors survived.
    pub errors: u64,
}

/// What `stop` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopReport {
    /// A delayer was running and was stopped.
    pub stopped: bool,
    /// It did not exit within [`STOP_WAIT`] of SIGTERM and was killed: packets it held
    /// were dropped by the kernel.
    pub killed: bool,
    /// Its last stats, if it wrote any.
    pub stats: Option<DelayerStats>,
}

/// Runs a delayer command (`args` are the words after [`COMMAND`]); returns the exit code.
pub fn main(args: &[String]) -> u8 {
    let outcome = match args.first().map(String::as_str) {
        Some("start") => Options::parse(&args[1..]).and_then(|o| start(&o)),
        Some("stop") => Options::parse(&args[1..]).and_then(|o| stop(&o.state_dir()?)),
        Some("probe") => Options::parse(&args[1..]).and_then(|o| {
            nfqueue::Delayer::probe(o.queue)
                .map(|()| format!("{{\"queue\":{},\"bound\":true}}", o.queue))
                .map_err(|e| bind_error(o.queue, &e))
        }),
        _ => Err(format!(
            "usage: distest {COMMAND} start|stop|probe [--queue N] [--delay-ms D] [--jitter-ms J] [--limit L] [--seed S] [--state-dir DIR]"
        )),
    };
    match outcome {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(sentence) => {
            eprintln!("{sentence}");
            1
        }
    }
}

/// The command line that starts a delayer, for `sh -c` on a node.
pub fn start_command(program: &str, state_dir: &Path, config: HoldConfig, seed: u64) -> String {
    format!(
        "{} {COMMAND} start --queue {QUEUE_NUM} --delay-ms {} --jitter-ms {} --limit {} --seed {seed} --state-dir {}",
        quote(program),
        config.delay.as_millis(),
        config.jitter.as_millis(),
        config.limit,
        quote(&state_dir.to_string_lossy()),
    )
}

/// The command line that stops the delayer of `state_dir` (succeeding when none runs).
pub fn stop_command(program: &str, state_dir: &Path) -> String {
    format!(
        "{} {COMMAND} stop --state-dir {}",
        quote(program),
        quote(&state_dir.to_string_lossy())
    )
}

/// The command line that stops a delayer a killed run left behind, when its pid file says
/// one may run; does nothing (and needs no program) otherwise.
pub fn leftover_stop_command(program: &str, state_dir: &Path) -> String {
    format!(
        "if [ -e {} ]; then {}; fi",
        quote(&state_dir.join(PID_FILE).to_string_lossy()),
        stop_command(program, state_dir)
    )
}

/// The command line that checks the kernel can queue packets to the delayer.
pub fn probe_command(program: &str) -> String {
    format!("{} {COMMAND} probe --queue {QUEUE_NUM}", quote(program))
}

fn quote(s: &str) -> String {
    crate::cluster::shell_quote(s)
}

#[derive(Debug, Default, PartialEq)]
struct Options {
    queue: u16,
    delay_ms: u64,
    jitter_ms: u64,
    limit: usize,
    seed: u64,
    state_dir: Option<PathBuf>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            queue: QUEUE_NUM,
            limit: DEFAULT_LIMIT,
            ..Options::default()
        };
        let mut words = args.iter();
        while let Some(flag) = words.next() {
            let value = words
                .next()
                .ok_or_else(|| format!("{flag} needs a value"))?;
            let number = |max: u64| -> Result<u64, String> {
                value
                    .parse::<u64>()
                    .ok()
                    .filter(|v| *v <= max)
                    .ok_or_else(|| format!("{flag} {value:?} is not a number from 0 to {max}"))
            };
            match flag.as_str() {
                "--queue" => o.queue = number(u64::from(u16::MAX))? as u16,
                "--delay-ms" => o.delay_ms = number(MAX_DELAY_MS)?,
                "--jitter-ms" => o.jitter_ms = number(MAX_DELAY_MS)?,
                "--limit" => o.limit = number(MAX_LIMIT as u64)? as usize,
                "--seed" => o.seed = number(u64::MAX)?,
                "--state-dir" => o.state_dir = Some(PathBuf::from(value)),
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        if o.jitter_ms > o.delay_ms {
            return Err(format!(
                "--jitter-ms {} exceeds --delay-ms {}: packets cannot be held for negative times",
                o.jitter_ms, o.delay_ms
            ));
        }
        if o.limit == 0 {
            return Err("--limit must be at least 1".to_string());
        }
        Ok(o)
    }

    fn state_dir(&self) -> Result<PathBuf, String> {
        self.state_dir
            .clone()
            .ok_or_else(|| "--state-dir is required".to_string())
    }

    fn hold_config(&self) -> HoldConfig {
        HoldConfig {
            delay: Duration::from_millis(self.delay_ms),
            jitter: Duration::from_millis(self.jitter_ms),
            limit: self.limit,
        }
    }
}

/// One sentence for a queue that could not be bound: the kernel's reason, and what it
/// usually means.
fn bind_error(queue: u16, e: &std::io::Error) -> String {
    let hint = match e.raw_os_error() {
        Some(nix::libc::EBUSY) => "another process has bound it (a delayer left by a killed run? `distest env down` removes it)",
        Some(nix::libc::EPROTONOSUPPORT | nix::libc::EOPNOTSUPP | nix::libc::EINVAL | nix::libc::ENOENT) => {
            "this kernel lacks NFQUEUE support (nfnetlink_queue); load it with `modprobe nfnetlink_queue` or use a kernel built with CONFIG_NETFILTER_NETLINK_QUEUE"
        }
        Some(nix::libc::EPERM | nix::libc::EACCES) => "binding a queue needs root (CAP_NET_ADMIN)",
        _ => "see the kernel's reason",
    };
    format!("could not bind NFQUEUE {queue} ({e}): {hint}")
}

/// `start`: fork; the child binds the queue, detaches and serves; the parent waits for
/// its word (ready, or why not) on a pipe.
fn start(o: &Options) -> Result<String, String> {
    use nix::unistd::{fork, ForkResult};
    let dir = o.state_dir()?;
    std::fs::create_dir_all(&dir).map_err(|e| {
        format!(
            "could not create the state directory {}: {e}",
            dir.display()
        )
    })?;
    if let Some(pid) = running_pid(&dir) {
        return Err(format!(
            "a latency delayer already runs for {} (pid {pid}); stop it first",
            dir.display()
        ));
    }
    let (read_end, write_end) =
        nix::unistd::pipe().map_err(|e| format!("could not create a pipe: {e}"))?;
    // SAFETY: `start` runs first thing in a single-threaded process (the multicall entry),
    // so the child may do anything the parent could.
    match unsafe { fork() }.map_err(|e| format!("could not fork the delayer: {e}"))? {
        ForkResult::Child => {
            drop(read_end);
            std::process::exit(child(o, &dir, std::fs::File::from(write_end)));
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            let mut word = String::new();
            let _ = std::fs::File::from(read_end)
                .take(64 * 1024)
                .read_to_string(&mut word);
            match word.strip_prefix("ready ") {
                Some(pid) => Ok(format!(
                    "{{\"pid\":{},\"queue\":{},\"delay_ms\":{},\"jitter_ms\":{},\"limit\":{}}}",
                    pid.trim(),
                    o.queue,
                    o.delay_ms,
                    o.jitter_ms,
                    o.limit
                )),
                None => {
                    let _ = nix::sys::wait::waitpid(child, None);
                    Err(word
                        .strip_prefix("error ")
                        .map(str::to_string)
                        .unwrap_or_else(|| {
                            format!(
                                "the delayer exited before binding its queue; see {}",
                                dir.join(LOG_FILE).display()
                            )
                        }))
                }
            }
        }
    }
}

/// The detached delayer: reports on `report` (then closes it, which ends the parent's
/// wait) and serves until stopped; returns its exit code.
fn child(o: &Options, dir: &Path, mut report: std::fs::File) -> i32 {
    let delayer = match detach_and_bind(o, dir) {
        Ok(delayer) => delayer,
        Err(sentence) => {
            let _ = report.write_all(format!("error {sentence}").as_bytes());
            return 1;
        }
    };
    let pid = std::process::id();
    if report.write_all(format!("ready {pid}").as_bytes()).is_err() {
        // The caller is gone and will never know the delayer runs: do not stay behind.
        let _ = std::fs::remove_file(dir.join(PID_FILE));
        return 1;
    }
    drop(report);
    eprintln!(
        "delayer {pid} holds NFQUEUE {} packets {}±{} ms (at most {})",
        o.queue, o.delay_ms, o.jitter_ms, o.limit
    );
    let served = delayer.serve(o.hold_config(), o.seed, &dir.join(STATS_FILE));
    let _ = std::fs::remove_file(dir.join(PID_FILE));
    match served {
        Ok(stats) => {
            eprintln!("delayer {pid} stopped: {}", serde_json::json!(stats));
            0
        }
        Err(e) => {
            eprintln!("delayer {pid}: the queue failed: {e}");
            1
        }
    }
}

/// New session, stdio away from the caller's pipes (an SSH channel or a captured command
/// would otherwise wait for the delayer to exit), bind, pid file.
fn detach_and_bind(o: &Options, dir: &Path) -> Result<nfqueue::Delayer, String> {
    use std::os::fd::AsRawFd;
    nix::unistd::setsid().map_err(|e| format!("could not start a session: {e}"))?;
    let log_path = dir.join(LOG_FILE);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("could not open {}: {e}", log_path.display()))?;
    let null = std::fs::File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    for (from, to) in [
        (null.as_raw_fd(), 0),
        (log.as_raw_fd(), 1),
        (log.as_raw_fd(), 2),
    ] {
        nix::unistd::dup2(from, to).map_err(|e| format!("could not redirect fd {to}: {e}"))?;
    }
    raise_priority();
    let delayer = nfqueue::Delayer::bind(o.queue, o.limit).map_err(|e| bind_error(o.queue, &e))?;
    let pid_file = dir.join(PID_FILE);
    let tmp = dir.join(format!("{PID_FILE}.tmp"));
    std::fs::write(&tmp, format!("{}\n", std::process::id()))
        .and_then(|()| std::fs::rename(&tmp, &pid_file))
        .map_err(|e| format!("could not write {}: {e}", pid_file.display()))?;
    let _ = std::fs::remove_file(dir.join(STATS_FILE));
    Ok(delayer)
}

/// The pid of the delayer `dir`'s pid file names, if that process is alive and is a
/// delayer of this state directory (a reused pid is never taken for it).
fn running_pid(dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(dir.join(PID_FILE)).ok()?;
    let pid: i32 = text.trim().parse().ok().filter(|p| *p > 1)?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let dir_bytes = dir.as_os_str().as_encoded_bytes();
    let ours = words.contains(&COMMAND.as_bytes())
        && words
            .windows(2)
            .any(|w| w[0] == b"--state-dir" && w[1] == dir_bytes);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
    (ours && state != Some(Some('Z'))).then_some(pid)
}

/// The kernel's own delay (netem) runs in softirq, ahead of every process; a delayer that
/// waits for a CPU behind a busy target adds that wait to every packet it holds. So it
/// asks for the lowest real-time priority: it sleeps until a packet is due, so it takes
/// a CPU only for the moments it works (one thread: at most one CPU even when flooded,
/// and the kernel keeps 5 % of every period for others). Failing that, nice -10.
fn raise_priority() {
    let param = nix::libc::sched_param {
        sched_priority: RT_PRIORITY,
    };
    // SAFETY: both calls only read their arguments.
    if unsafe { nix::libc::sched_setscheduler(0, nix::libc::SCHED_FIFO, &param) } == 0 {
        return;
    }
    let rt = std::io::Error::last_os_error();
    if unsafe { nix::libc::setpriority(nix::libc::PRIO_PROCESS, 0, NICE) } != 0 {
        eprintln!(
            "could not raise the delayer's priority (real-time: {rt}; nice: {}); its delays may run late on a busy node",
            std::io::Error::last_os_error()
        );
    }
}

/// `stop`: SIGTERM, wait, SIGKILL if needed; report the last stats.
fn stop(dir: &Path) -> Result<String, String> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let mut report = StopReport {
        stopped: false,
        killed: false,
        stats: None,
    };
    if let Some(pid) = running_pid(dir) {
        report.stopped = true;
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        if !wait_gone(dir, STOP_WAIT) {
            report.killed = true;
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            if !wait_gone(dir, STOP_WAIT) {
                return Err(format!(
                    "the latency delayer {pid} survived SIGKILL for {} s",
                    STOP_WAIT.as_secs()
                ));
            }
        }
    }
    let stats_file = dir.join(STATS_FILE);
    report.stats = std::fs::read_to_string(&stats_file)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    for file in [PID_FILE, STATS_FILE] {
        let _ = std::fs::remove_file(dir.join(file));
    }
    serde_json::to_string(&report).map_err(|e| e.to_string())
}

fn wait_gone(dir: &Path, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if running_pid(dir).is_none() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn options_parse_and_refuse_what_cannot_work() {
        let o = Options::parse(&words(
            "--delay-ms 50 --jitter-ms 10 --limit 8 --seed 3 --state-dir /x",
        ))
        .unwrap();
        assert_eq!(
            (o.queue, o.delay_ms, o.jitter_ms, o.limit, o.seed),
            (QUEUE_NUM, 50, 10, 8, 3)
        );
        assert_eq!(o.state_dir().unwrap(), PathBuf::from("/x"));
        for bad in [
            "--delay-ms 10 --jitter-ms 11",
            "--delay-ms 60001",
            "--queue 70000",
            "--limit 0",
            "--delay-ms",
            "--color red",
            "--delay-ms -5",
        ] {
            assert!(Options::parse(&words(bad)).is_err(), "{bad}");
        }
        assert!(Options::parse(&[]).unwrap().state_dir().is_err());
    }

    #[test]
    fn commands_quote_paths_and_name_the_queue() {
        let config = HoldConfig {
            delay: Duration::from_millis(50),
            jitter: Duration::from_millis(12),
            limit: 4096,
        };
        let start = start_command("/opt/dist test/distest", Path::new("/run/n1"), config, 9);
        assert_eq!(
            start,
            format!("'/opt/dist test/distest' latency-delayer start --queue {QUEUE_NUM} --delay-ms 50 --jitter-ms 12 --limit 4096 --seed 9 --state-dir '/run/n1'")
        );
        assert!(stop_command("/d", Path::new("/s")).ends_with("stop --state-dir '/s'"));
        assert!(probe_command("/d").ends_with(&format!("probe --queue {QUEUE_NUM}")));
    }

    #[test]
    fn stopping_where_no_delayer_runs_reports_nothing_stopped() {
        let dir = std::env::temp_dir().join(format!("dt-delayer-stop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A pid file naming a live process that is not a delayer (this test) is ignored.
        std::fs::write(dir.join(PID_FILE), format!("{}\n", std::process::id())).unwrap();
        let report: StopReport = serde_json::from_str(&stop(&dir).unwrap()).unwrap();
        assert_eq!(
            report,
            StopReport {
                stopped: false,
                killed: false,
                stats: None
            }
        );
        assert!(!dir.join(PID_FILE).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stats_round_trip_flat() {
        let stats = DelayerStats {
            hold: HoldStats {
                received: 3,
                delayed: 2,
                passed_when_full: 1,
                reordered: 0,
                max_held: 2,
                late_p50_us: 20,
                late_p99_us: 90,
                late_max_us: 95,
            },
            errors: 0,
        };
        let text = serde_json::to_string(&stats).unwrap();
        assert!(text.contains("\"passed_when_full\":1"), "{text}");
        assert_eq!(serde_json::from_str::<DelayerStats>(&text).unwrap(), stats);
    }
}
