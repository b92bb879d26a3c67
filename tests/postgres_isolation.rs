//! PostgreSQL's documented isolation levels, found by `distest run --target postgres` on
//! a real server in a local namespace (root only; skipped with a printed reason otherwise):
//! SERIALIZABLE is valid, also under kills; REPEATABLE READ is snapshot isolation, so it
//! shows write skew (G2-item) and nothing snapshot isolation forbids; READ COMMITTED shows
//! anomalies it allows and none it forbids. Every test asserts that no PostgreSQL process,
//! data directory or namespace of its cluster is left behind.
//!
//! Each test owns a cluster id (`pg1`..`pg9`) and a /24 of 10.77.220-229, and keeps its
//! nodes under its own base directory, so the tests run in parallel.

mod common;

use common::text;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Anomalies no isolation level of any real database allows (Adya's G0, G1a-c, and what
/// only a broken store produces).
const NEVER: &[&str] = &[
    "G0",
    "G1",
    "G1a",
    "G1b",
    "G1c",
    "duplicate-elements",
    "garbage-read",
    "incompatible-order",
    "dirty-update",
];
/// How long leftover backends may take to exit after the run returned.
const PROCESS_EXIT_WAIT: Duration = Duration::from_secs(10);

fn skip_unless_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return false;
    }
    eprintln!("SKIPPED {test}: it runs PostgreSQL in network namespaces, which needs root (CAP_NET_ADMIN); run `cargo test` as root to include it");
    true
}

/// One test's cluster: its id, subnet, store and node directories. Dropping it (also on
/// panic) takes the cluster down and removes the directories.
struct Cluster {
    id: &'static str,
    subnet: String,
    store: PathBuf,
    base: PathBuf,
}

impl Cluster {
    fn new(id: &'static str, third_octet: u8) -> Cluster {
        let store =
            std::env::temp_dir().join(format!("dt-test-pg-store-{id}-{}", std::process::id()));
        let base = std::env::temp_dir().join(format!("dt-test-nodes-{id}"));
        for dir in [&store, &base] {
            let _ = std::fs::remove_dir_all(dir);
        }
        std::fs::create_dir_all(&store).unwrap();
        Cluster {
            id,
            subnet: format!("10.77.{third_octet}.0/24"),
            store,
            base,
        }
    }

    /// `distest run --target postgres` on one node with the common flags, then `args`.
    fn run(&self, args: &[&str]) -> Output {
        self.run_on("local:1", args)
    }

    /// `distest run --target postgres` on `nodes` with the common flags, then `args`.
    fn run_on(&self, nodes: &str, args: &[&str]) -> Output {
        common::distest()
            .args(["run", "--target", "postgres", "--nodes", nodes])
            .args(["--cluster", self.id, "--subnet", &self.subnet, "--base-dir"])
            .arg(&self.base)
            .args(["--concurrency", "10", "--key-count", "3", "--store"])
            .arg(&self.store)
            .args(args)
            .output()
            .unwrap()
    }

    fn latest(&self) -> PathBuf {
        common::latest_run(&self.store)
    }

    fn results(&self) -> Value {
        common::results(&self.store)
    }

    /// `distest check` of the latest run's list-append history against `model`.
    fn recheck(&self, model: &str) -> Output {
        common::distest()
            .arg("check")
            .arg(self.latest())
            .args(["--checker", "list-append", "--consistency-model", model])
            .output()
            .unwrap()
    }

    /// No namespace, PostgreSQL process or data directory of this cluster remains.
    fn assert_nothing_left(&self) {
        let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
        let netns = String::from_utf8_lossy(&netns.stdout);
        assert!(
            !netns.contains(&format!("dt-{}-", self.id)),
            "namespaces left: {netns}"
        );
        let data = self
            .base
            .join(self.id)
            .join("n1")
            .join("data")
            .join("postgres");
        assert!(!data.exists(), "data directory left: {}", data.display());
        let cluster_dir = self.base.join(self.id);
        assert!(
            !cluster_dir.exists(),
            "node directories left: {}",
            cluster_dir.display()
        );
        // Backends retitle themselves, but keep the data directory as their working
        // directory (shown with " (deleted)" once removed): that names them all.
        let deadline = Instant::now() + PROCESS_EXIT_WAIT;
        loop {
            let left = processes_under(&self.base);
            if left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL processes left: {left:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = common::distest()
            .args([
                "env",
                "down",
                "--cluster",
                self.id,
                "--subnet",
                &self.subnet,
                "--base-dir",
            ])
            .arg(&self.base)
            .output();
        let _ = std::fs::remove_dir_all(&self.store);
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// Processes whose working directory or command line lies under `dir`, as `pid: cmdline`.
fn processes_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| {
            let cwd = std::fs::read_link(e.path().join("cwd")).ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cwd.to_string_lossy().starts_with(&prefix) || cmdline.contains(&prefix))
                .then(|| format!("{}: {cmdline}", e.file_name().to_string_lossy()))
        })
        .collect()
}

/// The anomaly names the list-append checker reported.
fn anomalies(results: &Value) -> Vec<String> {
    results["checkers"]["list-append"]["anomalies"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Ok transactions in the run's history: a run that never committed proves nothing.
fn ok_txns(run: &Path) -> usize {
    std::fs::read_to_string(run.join("history.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"type\":\"ok\"") && l.contains("\"f\":\"txn\""))
        .count()
}

/// What a list-append run at one PostgreSQL isolation level must show.
struct Level {
    /// The `--set isolation=` value.
    isolation: &'static str,
    /// The run must report at least one of these anomalies; empty: none at all, and the
    /// run must exit 0 (valid under the default model, strict serializable), not 1.
    shows_one_of: &'static [&'static str],
    /// Anomalies the level forbids beyond [`NEVER`].
    forbids: &'static [&'static str],
    /// The model `distest check` must find the same history valid under.
    valid_under: &'static str,
}

impl Cluster {
    /// Runs list-append at `level` for 10 s and checks what every level must show; `also`
    /// checks the run directory further before the re-check rewrites its report. Ends by
    /// checking that the cluster left nothing behind.
    fn run_at_level(&self, level: &Level, seed: &str, also: impl FnOnce(&Path)) {
        let isolation = format!("isolation={}", level.isolation);
        let out = self.run(&[
            "--workload",
            "list-append",
            "--set",
            &isolation,
            "--time-limit",
            "10",
            "--seed",
            seed,
        ]);
        let expect_valid = level.shows_one_of.is_empty();
        let exit_code = if expect_valid { 0 } else { 1 };
        assert_eq!(out.status.code(), Some(exit_code), "{}", text(&out));
        let results = self.results();
        assert_eq!(
            results["checkers"]["list-append"]["valid"], expect_valid,
            "{results}"
        );
        let found = anomalies(&results);
        if expect_valid {
            assert!(found.is_empty(), "at {}: {found:?}", level.isolation);
        } else {
            assert!(
                found
                    .iter()
                    .any(|a| level.shows_one_of.contains(&a.as_str())),
                "expected one of {:?} at {}, found {found:?}",
                level.shows_one_of,
                level.isolation
            );
        }
        for forbidden in NEVER.iter().chain(level.forbids) {
            assert!(
                !found.iter().any(|a| a == forbidden),
                "{forbidden} at {}: {found:?}",
                level.isolation
            );
        }
        let run = self.latest();
        let test: Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("test.json")).unwrap()).unwrap();
        assert_eq!(test["settings"]["isolation"], level.isolation, "{test}");
        assert!(run.join("nodes/n1/postgres.log").is_file());
        also(&run);
        let check = self.recheck(level.valid_under);
        assert_eq!(
            check.status.code(),
            Some(0),
            "valid under {}: {}",
            level.valid_under,
            text(&check)
        );
        self.assert_nothing_left();
    }
}

#[test]
fn serializable_list_append_is_valid_and_leaves_no_postgres_behind() {
    if skip_unless_root("serializable_list_append_is_valid_and_leaves_no_postgres_behind") {
        return;
    }
    let level = Level {
        isolation: "serializable",
        shows_one_of: &[],
        forbids: &[],
        valid_under: "strict-serializable",
    };
    Cluster::new("pg1", 220).run_at_level(&level, "1", |run| {
        assert!(
            ok_txns(run) > 100,
            "too few committed transactions to mean anything"
        );
    });
}

#[test]
fn repeatable_read_is_snapshot_isolation_and_shows_write_skew() {
    if skip_unless_root("repeatable_read_is_snapshot_isolation_and_shows_write_skew") {
        return;
    }
    let level = Level {
        isolation: "repeatable-read",
        // Write skew.
        shows_one_of: &["G2-item"],
        // Snapshot isolation forbids these; PostgreSQL's REPEATABLE READ must show none.
        forbids: &[
            "G-single-item",
            "G-nonadjacent-item",
            "lost-update",
            "internal",
        ],
        valid_under: "snapshot-isolation",
    };
    Cluster::new("pg2", 221).run_at_level(&level, "2", |run| {
        // The report explains a cycle step by step.
        let html = std::fs::read_to_string(run.join("index.html")).unwrap();
        assert!(html.contains("G2-item"), "the report names the anomaly");
        assert!(
            html.contains("(rw)"),
            "the report explains the anti-dependency edges"
        );
        assert!(
            html.contains("before itself"),
            "the report explains why the cycle is impossible"
        );
    });
}

#[test]
fn read_committed_shows_only_anomalies_read_committed_allows() {
    if skip_unless_root("read_committed_shows_only_anomalies_read_committed_allows") {
        return;
    }
    let level = Level {
        isolation: "read-committed",
        shows_one_of: &[
            "G-single-item",
            "G-nonadjacent-item",
            "G2-item",
            "G-single-item-realtime",
            "G-nonadjacent-item-realtime",
            "G2-item-realtime",
            "lost-update",
        ],
        forbids: &[],
        valid_under: "read-committed",
    };
    Cluster::new("pg3", 222).run_at_level(&level, "3", |_| {});
}

#[test]
fn serializable_stays_valid_when_the_postmaster_is_killed_and_recovers() {
    if skip_unless_root("serializable_stays_valid_when_the_postmaster_is_killed_and_recovers") {
        return;
    }
    let c = Cluster::new("pg4", 223);
    let out = c.run(&[
        "--workload",
        "list-append",
        "--set",
        "isolation=serializable",
        "--nemesis",
        "kill",
        "--nemesis-interval",
        "2",
        "--time-limit",
        "10",
        "--seed",
        "4",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run = c.latest();
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    assert!(
        history.contains("\"f\":\"kill\""),
        "the nemesis killed the postmaster"
    );
    assert!(
        history.contains("\"f\":\"start\""),
        "the nemesis restarted it"
    );
    let log = std::fs::read_to_string(run.join("nodes/n1/postgres.log")).unwrap();
    assert!(
        log.contains("database system was interrupted") || log.contains("not properly shut down"),
        "a restart after SIGKILL runs crash recovery"
    );
    assert!(
        ok_txns(&run) > 50,
        "transactions committed around the kills"
    );
    c.assert_nothing_left();
}

#[test]
fn serializable_rw_register_is_valid() {
    if skip_unless_root("serializable_rw_register_is_valid") {
        return;
    }
    let c = Cluster::new("pg5", 224);
    let out = c.run(&[
        "--workload",
        "rw-register",
        "--set",
        "isolation=serializable",
        "--time-limit",
        "6",
        "--seed",
        "5",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(c.results()["checkers"]["rw-register"]["valid"], true);
    assert!(ok_txns(&c.latest()) > 50);
    c.assert_nothing_left();
}

#[test]
fn an_unknown_isolation_level_fails_the_run_with_the_valid_levels() {
    if skip_unless_root("an_unknown_isolation_level_fails_the_run_with_the_valid_levels") {
        return;
    }
    let c = Cluster::new("pg6", 225);
    let out = c.run(&[
        "--workload",
        "list-append",
        "--set",
        "isolation=snapshot",
        "--time-limit",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for level in [
        "\"snapshot\"",
        "read-committed",
        "repeatable-read",
        "serializable",
    ] {
        assert!(stderr.contains(level), "{level} missing from: {stderr}");
    }
    c.assert_nothing_left();
}

#[test]
fn replica_reads_under_a_partition_show_stale_reads() {
    if skip_unless_root("replica_reads_under_a_partition_show_stale_reads") {
        return;
    }
    let c = Cluster::new("pg7", 226);
    let out = c.run_on(
        "local:2",
        &[
            "--workload",
            "list-append",
            "--set",
            "isolation=serializable",
            "--set",
            "replica-reads=true",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "3",
            "--time-limit",
            "10",
            "--seed",
            "7",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let found = anomalies(&c.results());
    // A replica lags its primary: a client that wrote on the primary, or a transaction
    // that began after another committed, reads an older state there.
    assert!(
        found
            .iter()
            .any(|a| a.ends_with("-realtime") || a.ends_with("-process")),
        "expected stale reads, found {found:?}"
    );
    for forbidden in NEVER {
        assert!(
            !found.iter().any(|a| a == forbidden),
            "{forbidden} with replica reads: {found:?}"
        );
    }
    let run = c.latest();
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    assert!(
        history.contains("\"f\":\"start-partition\""),
        "the nemesis partitioned"
    );
    let replica_log = std::fs::read_to_string(run.join("nodes/n2/postgres.log")).unwrap();
    assert!(
        replica_log.contains("started streaming WAL"),
        "n2 streamed from the primary"
    );
    c.assert_nothing_left();
}

#[test]
fn a_paused_server_makes_transactions_time_out_before_commit_as_failures() {
    if skip_unless_root("a_paused_server_makes_transactions_time_out_before_commit_as_failures") {
        return;
    }
    let c = Cluster::new("pg8", 227);
    let out = c.run(&[
        "--workload",
        "list-append",
        "--set",
        "isolation=serializable",
        "--nemesis",
        "pause",
        "--nemesis-interval",
        "2",
        "--op-timeout",
        "1",
        "--time-limit",
        "10",
        "--seed",
        "8",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let history = std::fs::read_to_string(c.latest().join("history.jsonl")).unwrap();
    assert!(
        history.contains("\"f\":\"pause\""),
        "the nemesis paused the server"
    );
    // SIGSTOP must reach the backends too (they are not in the postmaster's process
    // group): then statements in flight hang, and since COMMIT was never sent, their
    // transactions are definite failures, not unknowns.
    let timed_out = history
        .lines()
        .filter(|l| l.contains("\"type\":\"fail\"") && l.contains("timeout before COMMIT was sent"))
        .count();
    assert!(
        timed_out > 0,
        "no transaction hung while the server was paused"
    );
    c.assert_nothing_left();
}
