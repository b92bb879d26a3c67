//! Timing the `distest` binary on a file, for the end-to-end benches (`check_files`,
//! `check_elle`): one `distest check` under `/usr/bin/time`, best of several runs, and
//! temp files that are removed even when a bench panics.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Removes the temp file even when the benchmark panics.
pub struct TempFile(pub PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        // `DT_BENCH_KEEP=1` keeps the files, for a profiler.
        if std::env::var_os("DT_BENCH_KEEP").is_none() {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// What one `distest check` took.
pub struct Took {
    pub secs: f64,
    /// User + system CPU seconds (all threads): less disturbed by a busy machine.
    pub cpu_secs: f64,
    pub rss_mb: f64,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `distest check FILE ARGS` under `/usr/bin/time`.
pub fn check(binary: &Path, file: &Path, args: &[&str]) -> Took {
    let mut command = Command::new(binary);
    command.arg("check").arg(file).args(args);
    timed(command)
}

/// Runs `command` under `/usr/bin/time`: wall and CPU seconds, peak RSS.
pub fn timed(command: Command) -> Took {
    let started = Instant::now();
    let mut timed = Command::new("/usr/bin/time");
    timed
        .args(["-f", "%M %U %S"])
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            timed.env(key, value);
        }
    }
    let out = timed.output().expect("run distest");
    let secs = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let fields: Vec<f64> = stderr
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(f64::NAN))
        .collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or(f64::NAN);
    Took {
        secs,
        cpu_secs: field(1) + field(2),
        rss_mb: field(0) / 1024.0,
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    }
}

/// The fastest of `runs` (the machine is shared: the best run is the least disturbed).
pub fn best_of(runs: usize, mut f: impl FnMut() -> Took) -> Took {
    let mut best = f();
    for _ in 1..runs {
        let next = f();
        if next.secs < best.secs {
            best = next;
        }
    }
    best
}
