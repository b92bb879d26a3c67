//! End-to-end: real crdt-store processes on 127.0.0.1, written on different replicas,
//! converge, survive kill -9, and with each `--bug` diverge or lose writes. The histories
//! of the bug scenarios are also handed to distest's `crdt-convergence` checker, which
//! must call the correct store valid and the buggy one invalid.

use crdt_store::http::request;
use distest_checkers::convergence::crdt::{CrdtConvergence, Model};
use distest_checkers::{CheckContext, Checker, History, Op, OpType, Process, Validity};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const HTTP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long any wait for replicas to start or agree may take before the test fails.
const WAIT_DEADLINE: Duration = Duration::from_secs(10);

static CLUSTER_SEQ: AtomicU32 = AtomicU32::new(0);

/// Replica processes and their data directories; killed and removed on drop, also when
/// the test panics.
struct Cluster {
    dir: PathBuf,
    ids: Vec<String>,
    addrs: Vec<String>,
    children: Vec<Option<Child>>,
    extra_args: Vec<Vec<String>>,
}

impl Cluster {
    /// Starts `n` replicas; `args(i)` gives replica i's extra flags.
    fn start(n: usize, args: impl Fn(usize) -> Vec<String>) -> Cluster {
        Cluster::start_with_state(n, args, |_| None)
    }

    /// Like [`Cluster::start`], but replica i first gets `state(i)` as its stored state
    /// (the on-disk `{"state", "next_tag"}` document), as if it had run before.
    fn start_with_state(
        n: usize,
        args: impl Fn(usize) -> Vec<String>,
        state: impl Fn(usize) -> Option<Value>,
    ) -> Cluster {
        let seq = CLUSTER_SEQ.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("dt-crdt-store-test-{}-{seq}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Free ports: bind port 0, note the port, release it for the replica.
        let addrs: Vec<String> = (0..n)
            .map(|_| {
                let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
                l.local_addr().unwrap().to_string()
            })
            .collect();
        let mut cluster = Cluster {
            dir,
            ids: (1..=n).map(|i| format!("n{i}")).collect(),
            addrs,
            children: (0..n).map(|_| None).collect(),
            extra_args: (0..n).map(args).collect(),
        };
        for i in 0..n {
            if let Some(doc) = state(i) {
                let dir = cluster.dir.join(&cluster.ids[i]);
                std::fs::create_dir_all(&dir).expect("create a data dir");
                std::fs::write(dir.join("crdt-state.json"), doc.to_string()).expect("seed state");
            }
            cluster.spawn(i);
        }
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let peers: Vec<String> = self
            .ids
            .iter()
            .zip(&self.addrs)
            .map(|(id, a)| format!("{id}={a}"))
            .collect();
        let child = Command::new(env!("CARGO_BIN_EXE_crdt-store"))
            .args([
                "--id",
                &self.ids[i],
                "--listen",
                &self.addrs[i],
                "--peers",
                &peers.join(","),
            ])
            .arg("--data-dir")
            .arg(self.dir.join(&self.ids[i]))
            .args(&self.extra_args[i])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start crdt-store");
        self.children[i] = Some(child);
    }

    /// SIGKILL, as a crash would.
    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    async fn call(&self, i: usize, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, reply) = request(&self.addrs[i], method, path, body.as_ref(), HTTP_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{method} {path} on n{}: {e}", i + 1));
        assert_eq!(status, 200, "{method} {path} on n{}: {reply}", i + 1);
        reply
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + WAIT_DEADLINE;
        for addr in &self.addrs {
            while request(addr, "GET", "/status", None, HTTP_TIMEOUT)
                .await
                .is_err()
            {
                assert!(Instant::now() < deadline, "replica at {addr} did not start");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Polls `GET path` on every replica until `done(replies)` or the deadline.
    async fn wait_until(&self, path: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + WAIT_DEADLINE;
        loop {
            let mut replies = Vec::new();
            for i in 0..self.addrs.len() {
                replies.push(self.call(i, "GET", path, None).await);
            }
            if done(&replies) || Instant::now() > deadline {
                return replies;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn all_equal(replies: &[Value]) -> bool {
    replies.windows(2).all(|w| w[0] == w[1])
}

/// Records client ops as a distest history, to hand to the checker.
struct Recorder {
    ops: Vec<Op>,
    started: Instant,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder {
            ops: Vec::new(),
            started: Instant::now(),
        }
    }

    fn push(&mut self, process: u64, kind: OpType, f: &str, value: Value, node: usize) {
        let mut op = Op::invoke(Process::Client(process), f, value)
            .with_time(self.started.elapsed().as_nanos() as u64);
        op.kind = kind;
        op.index = self.ops.len() as u64;
        op.node = Some(format!("n{}", node + 1));
        self.ops.push(op);
    }

    /// Runs one HTTP call as an op of `process` on replica `node`.
    async fn op(
        &mut self,
        cluster: &Cluster,
        node: usize,
        f: &str,
        value: Value,
        call: (&str, String, Option<Value>),
    ) -> Value {
        let process = node as u64;
        self.push(process, OpType::Invoke, f, value, node);
        let reply = cluster.call(node, call.0, &call.1, call.2).await;
        self.push(process, OpType::Ok, f, reply.clone(), node);
        reply
    }

    fn check(self, model: Model) -> Validity {
        let history = History::new(self.ops).expect("recorded history is well formed");
        CrdtConvergence { model: Some(model) }
            .check(&history, &CheckContext::default())
            .valid
    }
}

async fn or_set_scenario(bug: &[&str]) -> (Vec<Value>, Validity) {
    let flags: Vec<String> = bug
        .iter()
        .flat_map(|b| ["--bug".to_string(), b.to_string()])
        .collect();
    let cluster = Cluster::start(3, |_| flags.clone());
    cluster.wait_ready().await;
    let mut rec = Recorder::new();
    for (node, e) in [(0, "a"), (1, "b")] {
        let reply = rec
            .op(
                &cluster,
                node,
                "add",
                json!(e),
                ("POST", "/set/s/add".into(), Some(json!({"element": e}))),
            )
            .await;
        // The checker reads tags from {"element", "tag"}: exactly what the store answers.
        assert_eq!(reply["element"], json!(e));
    }
    // n3 removes "a" once it has seen it, so the remove observes the add.
    cluster
        .wait_until("/set/s", |r| {
            r[2]["elements"]
                .as_array()
                .is_some_and(|e| e.contains(&json!("a")))
        })
        .await;
    let reply = rec
        .op(
            &cluster,
            2,
            "remove",
            json!("a"),
            (
                "POST",
                "/set/s/remove".into(),
                Some(json!({"element": "a"})),
            ),
        )
        .await;
    assert_eq!(
        reply["observed"].as_array().map(Vec::len),
        Some(1),
        "{reply}"
    );
    let finals = if bug.is_empty() {
        cluster
            .wait_until("/set/s", |r| {
                all_equal(r) && r[0]["elements"] == json!(["b"])
            })
            .await
    } else {
        // Once "b" is everywhere gossip has run; give it a few more rounds, so that what
        // remains is divergence and not lag.
        let has_b = |r: &Value| {
            r["elements"]
                .as_array()
                .is_some_and(|e| e.contains(&json!("b")))
        };
        cluster.wait_until("/set/s", |r| r.iter().all(has_b)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.wait_until("/set/s", |_| true).await
    };
    for node in 0..3 {
        let v = cluster.call(node, "GET", "/set/s", None).await;
        rec.push(
            10 + node as u64,
            OpType::Invoke,
            "read",
            json!({"final": true}),
            node,
        );
        rec.push(
            10 + node as u64,
            OpType::Ok,
            "read",
            v["elements"].clone(),
            node,
        );
    }
    (finals, rec.check(Model::OrSet))
}

#[tokio::test]
async fn replicas_converge_after_writes_on_different_nodes() {
    let cluster = Cluster::start(3, |_| vec![]);
    cluster.wait_ready().await;
    for (node, delta) in [(0, 2), (1, 3), (2, -1)] {
        cluster
            .call(
                node,
                "POST",
                "/counter/c/add",
                Some(json!({"delta": delta})),
            )
            .await;
    }
    cluster
        .call(0, "PUT", "/register/r", Some(json!({"value": "x"})))
        .await;
    cluster
        .wait_until("/register/r", |r| r[1]["value"] == json!("x"))
        .await;
    cluster
        .call(1, "PUT", "/register/r", Some(json!({"value": "y"})))
        .await;
    let counters = cluster
        .wait_until("/counter/c", |r| all_equal(r) && r[0]["value"] == json!(4))
        .await;
    assert!(
        counters.iter().all(|c| c["value"] == json!(4)),
        "{counters:?}"
    );
    let registers = cluster
        .wait_until("/register/r", |r| {
            all_equal(r) && r[0]["value"] == json!("y")
        })
        .await;
    assert!(
        registers.iter().all(|r| r["value"] == json!("y")),
        "{registers:?}"
    );
}

#[tokio::test]
async fn or_set_converges_and_the_checker_agrees() {
    let (finals, verdict) = or_set_scenario(&[]).await;
    assert!(
        finals.iter().all(|f| f["elements"] == json!(["b"])),
        "{finals:?}"
    );
    assert_eq!(verdict, Validity::Valid);
}

#[tokio::test]
async fn or_set_without_tombstone_merge_diverges_and_the_checker_catches_it() {
    let (finals, verdict) = or_set_scenario(&["or-set-no-tombstone-merge"]).await;
    assert_eq!(
        finals[2]["elements"],
        json!(["b"]),
        "the remover drops the element"
    );
    assert_eq!(
        finals[0]["elements"],
        json!(["a", "b"]),
        "others never learn the remove: {finals:?}"
    );
    assert_eq!(verdict, Validity::Invalid);
}

/// n1's clock runs a minute ahead; n2 writes after it has seen n1's write.
async fn skewed_register_scenario(bug: Option<&str>) -> (Vec<Value>, Validity) {
    let cluster = Cluster::start(3, |i| {
        let mut a = vec![];
        if i == 0 {
            a.extend(["--clock-offset-ms".to_string(), "60000".to_string()]);
        }
        if let Some(b) = bug {
            a.extend(["--bug".to_string(), b.to_string()]);
        }
        a
    });
    cluster.wait_ready().await;
    let mut rec = Recorder::new();
    rec.op(
        &cluster,
        0,
        "write",
        json!("x"),
        ("PUT", "/register/r".into(), Some(json!({"value": "x"}))),
    )
    .await;
    cluster
        .wait_until("/register/r", |r| r[1]["value"] == json!("x"))
        .await;
    let seen = rec
        .op(
            &cluster,
            1,
            "read",
            json!(null),
            ("GET", "/register/r".into(), None),
        )
        .await;
    assert_eq!(seen["value"], json!("x"));
    // The recorded read returns the register value itself, as a client adapter would.
    rec.ops.last_mut().unwrap().value = json!("x");
    rec.op(
        &cluster,
        1,
        "write",
        json!("y"),
        ("PUT", "/register/r".into(), Some(json!({"value": "y"}))),
    )
    .await;
    let finals = cluster
        .wait_until("/register/r", |r| {
            all_equal(&r.iter().map(|v| v["value"].clone()).collect::<Vec<_>>())
        })
        .await;
    for (node, v) in finals.iter().enumerate() {
        rec.push(
            10 + node as u64,
            OpType::Invoke,
            "read",
            json!({"final": true}),
            node,
        );
        rec.push(
            10 + node as u64,
            OpType::Ok,
            "read",
            v["value"].clone(),
            node,
        );
    }
    (finals, rec.check(Model::LwwRegister))
}

#[tokio::test]
async fn hlc_keeps_the_later_write_despite_a_clock_running_ahead() {
    let (finals, verdict) = skewed_register_scenario(None).await;
    assert!(
        finals.iter().all(|f| f["value"] == json!("y")),
        "{finals:?}"
    );
    assert_eq!(verdict, Validity::Valid);
}

#[tokio::test]
async fn lww_by_wall_clock_loses_the_later_write_and_the_checker_catches_it() {
    let (finals, verdict) = skewed_register_scenario(Some("lww-wall-clock")).await;
    assert!(
        finals.iter().all(|f| f["value"] == json!("x")),
        "{finals:?}"
    );
    assert_eq!(verdict, Validity::Invalid);
}

/// Two replicas that each took an increment while apart (seeded as stored state, so the
/// outcome does not depend on timing), then gossip.
async fn concurrent_increments(bug: &[&str]) -> Vec<Value> {
    let flags: Vec<String> = bug
        .iter()
        .flat_map(|b| ["--bug".to_string(), b.to_string()])
        .collect();
    let seeded = |i: usize| {
        let (id, delta) = [("n1", 2), ("n2", 3)][i];
        Some(json!({"state": {"counters": {"c": {"p": {id: delta}, "n": {}}}}, "next_tag": 0}))
    };
    let cluster = Cluster::start_with_state(2, |_| flags.clone(), seeded);
    cluster.wait_ready().await;
    cluster
        .wait_until("/counter/c", |r| all_equal(r) && r[0]["value"] != json!(2))
        .await
}

#[tokio::test]
async fn concurrent_increments_on_different_replicas_both_count() {
    let finals = concurrent_increments(&[]).await;
    assert!(finals.iter().all(|f| f["value"] == json!(5)), "{finals:?}");
}

#[tokio::test]
async fn counter_max_merge_loses_concurrent_increments() {
    let finals = concurrent_increments(&["counter-max-merge"]).await;
    assert!(
        finals.iter().all(|f| f["value"] == json!(3)),
        "one replica's increment is lost: {finals:?}"
    );
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_and_restart() {
    let mut cluster = Cluster::start(1, |_| vec![]);
    cluster.wait_ready().await;
    cluster
        .call(0, "POST", "/counter/c/add", Some(json!({"delta": 7})))
        .await;
    cluster
        .call(0, "POST", "/set/s/add", Some(json!({"element": 1})))
        .await;
    cluster.kill(0);
    cluster.spawn(0);
    cluster.wait_ready().await;
    assert_eq!(
        cluster.call(0, "GET", "/counter/c", None).await["value"],
        json!(7)
    );
    assert_eq!(
        cluster.call(0, "GET", "/set/s", None).await["elements"],
        json!([1])
    );
}

#[tokio::test]
async fn bad_requests_get_definite_json_errors() {
    let cluster = Cluster::start(1, |_| vec![]);
    cluster.wait_ready().await;
    let (status, body) = request(
        &cluster.addrs[0],
        "POST",
        "/counter/c/add",
        Some(&json!({"delta": "x"})),
        HTTP_TIMEOUT,
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    assert_eq!(body["definite"], json!(true));
    assert!(
        body["message"].as_str().unwrap().contains("delta"),
        "{body}"
    );
    let (status, body) = request(&cluster.addrs[0], "GET", "/nope", None, HTTP_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(status, 404);
    assert_eq!(body["error"], json!("not-found"));
}
