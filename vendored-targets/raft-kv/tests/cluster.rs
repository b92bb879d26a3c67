//! End to end: three real `raft-kv` processes on 127.0.0.1. Writes and reads go through a
//! follower (forwarded to the leader), the leader is killed with SIGKILL, a new leader
//! serves the data, the killed node recovers from its WAL, and SIGTERM exits cleanly.

use raft_kv::http::{request, ClientError, Response};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(3);

/// The cluster's processes and directories; dropped (killed, removed) even on panic.
struct Cluster {
    ids: Vec<String>,
    peers: String,
    /// Raft transport addresses; nodes past `initial` join later (`--join`).
    raft: Vec<String>,
    initial: usize,
    api: Vec<String>,
    dirs: Vec<PathBuf>,
    children: Vec<Option<Child>>,
    root: PathBuf,
    extra_args: Vec<String>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            // The directory goes away below; show the node logs while they exist.
            for id in &self.ids {
                let log = std::fs::read_to_string(self.root.join(format!("{id}.log")));
                let text = log.unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                eprintln!("--- {id} log (last {} lines) ---", tail.len());
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Cluster {
    fn start(n: usize, name: &str, extra_args: &[&str]) -> Cluster {
        let root = std::env::temp_dir().join(format!("dt-raftkv-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let ids: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
        let raft_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let api: Vec<String> = (0..n)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let peers = ids
            .iter()
            .zip(&raft_ports)
            .map(|(id, p)| format!("{id}=127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let dirs = ids.iter().map(|id| root.join(id)).collect();
        let mut c = Cluster {
            ids,
            peers,
            raft: raft_ports
                .iter()
                .map(|p| format!("127.0.0.1:{p}"))
                .collect(),
            initial: n,
            api,
            dirs,
            children: (0..n).map(|_| None).collect(),
            root,
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        };
        for i in 0..n {
            c.spawn(i);
        }
        c
    }

    /// Adds a node that will start with `--join` (not yet running).
    fn add_joiner(&mut self) -> usize {
        let i = self.ids.len();
        let id = format!("n{}", i + 1);
        self.ids.push(id.clone());
        self.raft.push(format!("127.0.0.1:{}", free_port()));
        self.api.push(format!("127.0.0.1:{}", free_port()));
        self.dirs.push(self.root.join(&id));
        self.children.push(None);
        i
    }

    fn spawn(&mut self, i: usize) {
        let log = std::fs::File::create(self.root.join(format!("{}.log", self.ids[i])))
            .or_else(|_| {
                std::fs::create_dir_all(&self.root)?;
                std::fs::File::create(self.root.join(format!("{}.log", self.ids[i])))
            })
            .expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_raft-kv"));
        if i < self.initial {
            cmd.args(["--peers", &self.peers]);
        } else {
            cmd.args([
                "--peers",
                &format!("{}={}", self.ids[i], self.raft[i]),
                "--join",
            ]);
        }
        let child = cmd
            .args(["--id", &self.ids[i], "--listen", &self.api[i]])
            .arg("--data-dir")
            .arg(&self.dirs[i])
            .args(["--election-timeout-ms", "300", "--snapshot-every", "20"])
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("raft-kv starts");
        self.children[i] = Some(child);
    }

    fn call(&self, i: usize, method: &str, path: &str, body: Value) -> Option<(u16, Value)> {
        let body = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let Response { status, body } =
            request(&self.api[i], method, path, &[], &body, TIMEOUT).ok()?;
        Some((status, serde_json::from_slice(&body).ok()?))
    }

    /// The node every live node agrees is leader, waiting up to 15 s.
    fn leader(&self, live: &[usize]) -> usize {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let statuses: Vec<Value> = live
                .iter()
                .filter_map(|i| self.call(*i, "GET", "/status", Value::Null).map(|r| r.1))
                .collect();
            if statuses.len() == live.len() {
                let leaders: Vec<&Value> = statuses.iter().map(|s| &s["leader"]).collect();
                if let Some(Value::String(l)) = leaders.first() {
                    let agreed = leaders.iter().all(|x| x.as_str() == Some(l));
                    let i = self.ids.iter().position(|id| id == l);
                    if let (true, Some(i)) = (agreed, i) {
                        if live.contains(&i) {
                            return i;
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "no agreed leader within 15 s; node logs are in {}",
            self.root.display()
        );
    }

    /// Sends `sig` without reaping (SIGSTOP/SIGCONT).
    fn pause(&self, i: usize, sig: nix::sys::signal::Signal) {
        let child = self.children[i].as_ref().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, sig).expect("signal delivered");
    }

    /// Waits until every node in `live` has applied at least what `from` committed.
    fn wait_applied(&self, from: usize, live: &[usize]) {
        let target = self
            .call(from, "GET", "/status", Value::Null)
            .expect("status")
            .1["commit_index"]
            .as_u64()
            .expect("commit index");
        let deadline = Instant::now() + Duration::from_secs(15);
        for &i in live {
            loop {
                let applied = self
                    .call(i, "GET", "/status", Value::Null)
                    .and_then(|s| s.1["applied_index"].as_u64())
                    .unwrap_or(0);
                if applied >= target {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} did not apply up to {target} (at {applied})",
                    self.ids[i]
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn signal(
        &mut self,
        i: usize,
        sig: nix::sys::signal::Signal,
    ) -> Option<std::process::ExitStatus> {
        let mut child = self.children[i].take()?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, sig).ok()?;
        child.wait().ok()
    }
}

#[test]
fn three_nodes_serve_through_a_follower_and_survive_leader_kill() {
    let mut c = Cluster::start(3, "basic", &[]);
    let all = [0, 1, 2];
    let leader = c.leader(&all);
    let follower = (leader + 1) % 3;

    // Writes and reads through a follower are forwarded to the leader.
    assert_eq!(
        c.call(follower, "PUT", "/kv/x", json!({"value": 1})),
        Some((200, json!({"ok": true})))
    );
    assert_eq!(
        c.call(follower, "GET", "/kv/x", Value::Null),
        Some((200, json!({"value": 1})))
    );
    let (status, body) = c
        .call(
            follower,
            "POST",
            "/kv/x/cas",
            json!({"expected": 5, "new": 6}),
        )
        .expect("cas answered");
    assert_eq!(
        (status, &body["error"], &body["definite"], &body["current"]),
        (409, &json!("cas-mismatch"), &json!(true), &json!(1))
    );
    assert_eq!(
        c.call(
            follower,
            "POST",
            "/kv/x/cas",
            json!({"expected": 1, "new": 2})
        )
        .map(|r| r.0),
        Some(200)
    );
    assert_eq!(
        c.call(follower, "POST", "/kv/l/append", json!({"element": "a"}))
            .map(|r| r.0),
        Some(200)
    );
    let txn = c
        .call(
            follower,
            "POST",
            "/txn",
            json!({"ops": [["append", "l", "b"], ["r", "l", null], ["r", "x", null]]}),
        )
        .expect("txn answered");
    assert_eq!(
        txn,
        (
            200,
            json!({"ops": [["append", "l", "b"], ["r", "l", ["a", "b"]], ["r", "x", 2]]})
        )
    );
    // Enough writes to trigger snapshots (--snapshot-every 20).
    for v in 0..30 {
        assert_eq!(
            c.call(follower, "PUT", "/kv/y", json!({"value": v}))
                .map(|r| r.0),
            Some(200)
        );
    }
    assert_eq!(
        c.call(follower, "GET", "/kv/nope", Value::Null),
        Some((200, json!({"value": null})))
    );
    let (status, body) = c
        .call(follower, "PUT", "/kv/x", json!({"nope": 1}))
        .expect("answered");
    assert_eq!(
        (status, &body["error"], &body["definite"]),
        (400, &json!("bad-request"), &json!(true))
    );

    // Kill the leader; the survivors elect a new one that has every acknowledged write.
    c.signal(leader, nix::sys::signal::Signal::SIGKILL);
    let live: Vec<usize> = all.iter().copied().filter(|i| *i != leader).collect();
    let new_leader = c.leader(&live);
    assert_ne!(new_leader, leader);
    assert_eq!(
        c.call(new_leader, "GET", "/kv/x", Value::Null),
        Some((200, json!({"value": 2})))
    );
    assert_eq!(
        c.call(new_leader, "GET", "/kv/y", Value::Null),
        Some((200, json!({"value": 29})))
    );
    assert_eq!(
        c.call(new_leader, "PUT", "/kv/z", json!({"value": "after"}))
            .map(|r| r.0),
        Some(200)
    );

    // The killed node recovers from its data directory and catches up.
    c.spawn(leader);
    let deadline = Instant::now() + Duration::from_secs(15);
    let target = c
        .call(new_leader, "GET", "/status", Value::Null)
        .expect("status")
        .1["commit_index"]
        .as_u64()
        .unwrap();
    loop {
        let applied = c
            .call(leader, "GET", "/status", Value::Null)
            .and_then(|s| s.1["applied_index"].as_u64())
            .unwrap_or(0);
        if applied >= target {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restarted node did not catch up to {target} (at {applied})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // SIGTERM is a clean shutdown.
    let status = c
        .signal(new_leader, nix::sys::signal::Signal::SIGTERM)
        .expect("exited");
    assert_eq!(status.code(), Some(0), "SIGTERM must exit 0");
}

/// Isolates a follower holding x=1 (SIGSTOP), acknowledges x=2 on the majority, kills the
/// majority and resumes the follower: the only correct answers it can give for x are an
/// error or 2. Returns what it answered.
fn read_from_a_cut_off_follower(name: &str, extra_args: &[&str]) -> Option<(u16, Value)> {
    use nix::sys::signal::Signal;
    let mut c = Cluster::start(3, name, extra_args);
    let all = [0, 1, 2];
    let leader = c.leader(&all);
    assert_eq!(
        c.call(leader, "PUT", "/kv/x", json!({"value": 1}))
            .map(|r| r.0),
        Some(200)
    );
    c.wait_applied(leader, &all);
    let cut = (leader + 1) % 3;
    c.pause(cut, Signal::SIGSTOP);
    assert_eq!(
        c.call(leader, "PUT", "/kv/x", json!({"value": 2}))
            .map(|r| r.0),
        Some(200)
    );
    for i in all.into_iter().filter(|i| *i != cut) {
        c.signal(i, Signal::SIGKILL);
    }
    c.pause(cut, Signal::SIGCONT);
    c.call(cut, "GET", "/kv/x", Value::Null)
}

#[test]
fn stale_read_bug_serves_a_value_older_than_an_acknowledged_write() {
    let answer = read_from_a_cut_off_follower("stale", &["--bug", "stale-read"]);
    assert_eq!(
        answer,
        Some((200, json!({"value": 1}))),
        "the bug must show a stale value"
    );
}

#[test]
fn without_the_bug_a_cut_off_follower_refuses_to_read() {
    let answer = read_from_a_cut_off_follower("nostale", &["--request-timeout-ms", "500"]);
    let (status, body) = answer.expect("an answer");
    assert_ne!(status, 200, "a cut-off follower answered {body}");
    assert!(
        body["error"].is_string() && body["definite"].is_boolean(),
        "{body}"
    );
}

#[test]
fn members_join_and_leave_and_leadership_transfers_over_http() {
    let mut c = Cluster::start(3, "members", &[]);
    let leader = c.leader(&[0, 1, 2]);
    assert_eq!(
        c.call(leader, "PUT", "/kv/k", json!({"value": "v"}))
            .map(|r| r.0),
        Some(200)
    );
    let n4 = c.add_joiner();
    c.spawn(n4);
    let add = json!({"action": "add", "id": c.ids[n4], "addr": c.raft[n4]});
    assert_eq!(
        c.call(leader, "POST", "/admin/members", add.clone()),
        Some((200, json!({"ok": true})))
    );
    c.wait_applied(leader, &[n4]);
    let status = c.call(n4, "GET", "/status", Value::Null).expect("status").1;
    assert_eq!(status["members"], json!(["n1", "n2", "n3", "n4"]));
    // Adding it twice is refused as a definite failure.
    let (code, body) = c
        .call(leader, "POST", "/admin/members", add)
        .expect("answered");
    assert_eq!((code, &body["definite"]), (400, &json!(true)), "{body}");

    // Hand leadership to the new member, then remove the old leader.
    let to = json!({"to": c.ids[n4]});
    assert_eq!(
        c.call(leader, "POST", "/admin/transfer-leader", to)
            .map(|r| r.0),
        Some(200)
    );
    // The transfer is asynchronous: wait until everybody follows n4.
    let deadline = Instant::now() + Duration::from_secs(15);
    while c.leader(&[0, 1, 2, n4]) != n4 {
        assert!(Instant::now() < deadline, "leadership never moved to n4");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A brand-new leader refuses config changes (definitely) until it has committed in
    // its term; retry those.
    let remove = json!({"action": "remove", "id": c.ids[leader]});
    let mut answer = None;
    for _ in 0..100 {
        answer = c.call(n4, "POST", "/admin/members", remove.clone());
        match &answer {
            Some((503, body)) if body["definite"] == json!(true) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => break,
        }
    }
    assert_eq!(answer.map(|r| r.0), Some(200));
    let rest: Vec<usize> = [0, 1, 2, n4].into_iter().filter(|i| *i != leader).collect();
    c.wait_applied(n4, &rest);
    let status = c.call(n4, "GET", "/status", Value::Null).expect("status").1;
    assert_eq!(
        status["members"].as_array().map(Vec::len),
        Some(3),
        "{status}"
    );
    assert_eq!(
        c.call(rest[0], "GET", "/kv/k", Value::Null),
        Some((200, json!({"value": "v"})))
    );
}

/// A one-node cluster acknowledges five writes, is SIGKILLed at once and restarted:
/// how many of the writes does it still have?
fn writes_surviving_kill_9(name: &str, extra_args: &[&str]) -> usize {
    use nix::sys::signal::Signal;
    let mut c = Cluster::start(1, name, extra_args);
    let leader = c.leader(&[0]);
    for k in 0..5 {
        let path = format!("/kv/k{k}");
        assert_eq!(
            c.call(leader, "PUT", &path, json!({"value": k}))
                .map(|r| r.0),
            Some(200)
        );
    }
    c.signal(0, Signal::SIGKILL);
    c.spawn(0);
    c.leader(&[0]);
    (0..5)
        .filter(|k| {
            let path = format!("/kv/k{k}");
            c.call(0, "GET", &path, Value::Null) == Some((200, json!({"value": k})))
        })
        .count()
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    assert_eq!(writes_surviving_kill_9("durable", &[]), 5);
}

#[test]
fn no_fsync_bug_keeps_acknowledged_writes_through_kill_9() {
    // A missing fsync is invisible to SIGKILL: the records are in the kernel's page cache.
    // Only a power failure loses them, which distest's `--nemesis disk` (lazyfs) emulates
    // (see tests/run_bugs.rs at the workspace root).
    assert_eq!(
        writes_surviving_kill_9("nofsync", &["--bug", "no-fsync"]),
        5
    );
}

/// Concurrent clients hit every node (followers forward) with writes, reads and cas on
/// one register for `run_for` while `disrupt` runs on the test thread. Each answer is
/// recorded the way distest records it (200 → ok, `definite: true` → fail, anything else
/// → info) and the history must be linearizable.
fn concurrent_clients_stay_linearizable(
    c: &mut Cluster,
    run_for: Duration,
    disrupt: impl FnOnce(&mut Cluster),
) {
    use distest_checkers::{CheckContext, CheckerOptions, History, Op, OpType, Process, Validity};
    use std::sync::{Arc, Mutex};

    const CLIENTS: u64 = 4;
    const MAX_OPS_PER_CLIENT: u64 = 250;
    // Paced so that the bounded number of ops spans the whole run.
    let pace = (run_for / MAX_OPS_PER_CLIENT as u32).max(Duration::from_millis(8));
    let start = Instant::now();
    let ops: Arc<Mutex<Vec<Op>>> = Arc::new(Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for client in 0..CLIENTS {
        let (api, ops) = (c.api.clone(), ops.clone());
        threads.push(std::thread::spawn(move || {
            let mut process = client;
            let mut n: u64 = 0;
            let mut last_read = Value::Null;
            // Bounded and paced: the history stays small enough for an exact check.
            while start.elapsed() < run_for && n < MAX_OPS_PER_CLIENT {
                std::thread::sleep(pace);
                n += 1;
                let node = ((client + n) % api.len() as u64) as usize;
                let value = (client * 1_000_000 + n) as i64;
                let (f, arg, method, path, body) = match n % 3 {
                    0 => (
                        "write",
                        json!(value),
                        "PUT",
                        "/kv/r",
                        json!({"value": value}),
                    ),
                    1 => ("read", Value::Null, "GET", "/kv/r", Value::Null),
                    _ => (
                        // Expect what this client last read, so some cas succeed.
                        "cas",
                        json!([last_read, value]),
                        "POST",
                        "/kv/r/cas",
                        json!({"expected": last_read, "new": value}),
                    ),
                };
                let body = if body.is_null() {
                    Vec::new()
                } else {
                    body.to_string().into_bytes()
                };
                let invoke = Op::invoke(Process::Client(process), f, arg.clone())
                    .with_time(start.elapsed().as_nanos() as u64);
                let answer = request(&api[node], method, path, &[], &body, TIMEOUT);
                let now = start.elapsed().as_nanos() as u64;
                // Connection refused: the request never left, so it certainly did nothing.
                let not_sent = matches!(answer, Err(ClientError::NotSent(_)));
                let parsed = answer
                    .ok()
                    .and_then(|r| Some((r.status, serde_json::from_slice::<Value>(&r.body).ok()?)));
                let done = match parsed {
                    _ if not_sent => invoke.complete(OpType::Fail, arg),
                    Some((200, b)) if f == "read" => {
                        last_read = b["value"].clone();
                        invoke.complete(OpType::Ok, last_read.clone())
                    }
                    Some((200, _)) => invoke.complete(OpType::Ok, arg),
                    Some((_, b)) if b["definite"] == json!(true) => {
                        invoke.complete(OpType::Fail, arg)
                    }
                    _ => invoke.complete(OpType::Info, arg),
                };
                let retired = done.kind == OpType::Info;
                let mut ops = ops.lock().unwrap();
                ops.push(invoke);
                ops.push(done.with_time(now));
                drop(ops);
                if retired {
                    process += CLIENTS; // a fresh process, as Jepsen does after info
                }
            }
        }));
    }
    disrupt(c);
    assert!(
        start.elapsed() < run_for,
        "the disruption outlasted the clients ({:?})",
        start.elapsed()
    );
    for t in threads {
        t.join().expect("client thread");
    }
    let mut ops = Arc::try_unwrap(ops)
        .expect("clients done")
        .into_inner()
        .unwrap();
    ops.sort_by_key(|o| o.time);
    let ok = |f: &str| {
        ops.iter()
            .filter(|o| o.kind == OpType::Ok && o.f == f)
            .count()
    };
    let (reads, writes, cas) = (ok("read"), ok("write"), ok("cas"));
    assert!(
        reads > 20 && writes > 20 && cas > 0,
        "too few successful ops to mean anything: {reads} reads, {writes} writes, {cas} cas"
    );
    let history = History::reindexed(ops).expect("a well-formed history");
    let options = CheckerOptions {
        model: Some("cas-register".into()),
        ..Default::default()
    };
    let checker = distest_checkers::build("linearizable", &options).expect("registered");
    // Bound the check: an undecided search fails the test (as unknown) within a minute.
    let ctx = CheckContext::default();
    let cancel = ctx.cancel.clone();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done2 = done.clone();
    let timer = std::thread::spawn(move || {
        for _ in 0..600 {
            if done2.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        cancel.cancel();
    });
    let verdict = checker.check(&history, &ctx);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    timer.join().expect("timer thread");
    assert_eq!(
        verdict.valid,
        Validity::Valid,
        "{}\n{}",
        verdict.summary,
        verdict.explanation
    );
}

/// Client options of the linearizability tests, plus `RAFT_KV_E2E_BUG` (e.g.
/// `stale-read`) to check that they can fail.
fn linearizability_test_args() -> Vec<String> {
    let mut args = vec!["--request-timeout-ms".to_string(), "1000".to_string()];
    let bug = std::env::var("RAFT_KV_E2E_BUG").unwrap_or_default();
    if !bug.is_empty() {
        args.extend(["--bug".to_string(), bug]);
    }
    args
}

#[test]
fn concurrent_clients_stay_linearizable_through_leader_kills() {
    let args = linearizability_test_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut c = Cluster::start(3, "linearizable", &args);
    let leader = c.leader(&[0, 1, 2]);
    concurrent_clients_stay_linearizable(&mut c, Duration::from_millis(3_000), |c| {
        std::thread::sleep(Duration::from_millis(1_000));
        c.signal(leader, nix::sys::signal::Signal::SIGKILL);
        std::thread::sleep(Duration::from_millis(1_000));
        c.spawn(leader);
    });
}

impl Cluster {
    /// Asks any live node for a membership change (followers forward it to the leader)
    /// until it commits; a definite refusal (a change pending, a new leader not ready, no
    /// leader right now) is retried for up to 15 s.
    fn change_members(&self, live: &[usize], body: Value) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut last = None;
        while Instant::now() < deadline {
            for &i in live {
                last = self.call(i, "POST", "/admin/members", body.clone());
                if matches!(&last, Some((200, _))) {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("membership change {body} never committed; last answer {last:?}");
    }

    fn members(&self, i: usize) -> Value {
        self.call(i, "GET", "/status", Value::Null)
            .expect("status")
            .1["members"]
            .clone()
    }
}

/// Single-server membership changes while clients run: a follower is removed and added
/// back, then the leader itself (it steps down once its removal commits). Removed nodes
/// keep running and keep forwarding their clients' requests; the history stays
/// linearizable and the cluster ends with all three members.
#[test]
fn concurrent_clients_stay_linearizable_through_membership_changes() {
    let args = linearizability_test_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut c = Cluster::start(3, "membership", &args);
    let all = [0, 1, 2];
    let leader = c.leader(&all);
    let follower = (leader + 1) % 3;
    concurrent_clients_stay_linearizable(&mut c, Duration::from_millis(6_000), |c| {
        for node in [follower, leader] {
            std::thread::sleep(Duration::from_millis(500));
            let id = c.ids[node].clone();
            c.change_members(&all, json!({"action": "remove", "id": id}));
            std::thread::sleep(Duration::from_millis(500));
            let add = json!({"action": "add", "id": id, "addr": c.raft[node]});
            c.change_members(&all, add);
        }
    });
    let now = c.leader(&all);
    c.wait_applied(now, &all);
    for i in all {
        assert_eq!(c.members(i), json!(["n1", "n2", "n3"]), "{}", c.ids[i]);
    }
}
