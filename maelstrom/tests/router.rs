//! Routers on loopback, no root: message order and drops under a simulated partition,
//! restarts with a fresh `init`, garbage on stdout, nodes that exit, the services, and the
//! clients' error mapping. Node programs are small Python scripts (standard library).
//!
//! A partition is simulated by a UDP relay standing where a router's peers think it is:
//! while it is "cut" it drops every datagram, as an iptables DROP rule would.

mod common;

use common::{eventually, Cluster, RawClient, EXAMPLES};
use distest_checkers::net::{self, Fate};
use distest_checkers::OpType;
use distest_maelstrom::client::Client;
use distest_maelstrom::router::control;
use distest_workloads::{Client as _, OpRequest};
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

/// A node program for these tests: `seq` messages are recorded in order; a client can
/// ask it to `burst` numbered messages at another node, `read` what it recorded, and
/// `die`; every init it gets is appended to the file given as its argument.
const RECORDER: &str = r#"
import json, sys, os
me = None
got = []
def send(dest, body):
    sys.stdout.write(json.dumps({"src": me, "dest": dest, "body": body}) + "\n")
    sys.stdout.flush()
for line in sys.stdin:
    msg = json.loads(line)
    b = msg["body"]
    t = b["type"]
    if t == "init":
        me = b["node_id"]
        with open(sys.argv[1], "a") as f:
            f.write(json.dumps(b) + "\n")
        if os.environ.get("GARBAGE"):
            print("hello, this is not JSON", flush=True)
        send(msg["src"], {"type": "init_ok", "in_reply_to": b["msg_id"]})
    elif t == "seq":
        got.append(b["i"])
    elif t == "burst":
        for i in range(b["from"], b["from"] + b["count"]):
            send(b["to"], {"type": "seq", "i": i})
        send(msg["src"], {"type": "burst_ok", "in_reply_to": b["msg_id"]})
    elif t == "read":
        send(msg["src"], {"type": "read_ok", "in_reply_to": b["msg_id"], "value": got})
    elif t == "die":
        sys.exit(7)
"#;

fn recorder(dir_tag: &str) -> (String, Vec<String>) {
    let script =
        std::env::temp_dir().join(format!("dt-recorder-{dir_tag}-{}.py", std::process::id()));
    std::fs::write(&script, RECORDER).unwrap();
    let inits = std::env::temp_dir().join(format!(
        "dt-inits-{dir_tag}-{{node}}-{}",
        std::process::id()
    ));
    (
        "python3".into(),
        vec![script.display().to_string(), inits.display().to_string()],
    )
}

fn inits_file(dir_tag: &str, node: &str) -> PathBuf {
    std::env::temp_dir().join(format!("dt-inits-{dir_tag}-{node}-{}", std::process::id()))
}

fn cleanup_files(tag: &str, nodes: usize) {
    let _ = std::fs::remove_file(
        std::env::temp_dir().join(format!("dt-recorder-{tag}-{}.py", std::process::id())),
    );
    for i in 1..=nodes {
        let _ = std::fs::remove_file(inits_file(tag, &format!("n{i}")));
    }
}

fn read_seq(c: &mut RawClient, node: &str) -> Vec<i64> {
    let r = c.rpc(node, json!({"type": "read"})).expect("read answered");
    serde_json::from_value(r["value"].clone()).unwrap()
}

#[test]
fn messages_between_two_nodes_arrive_in_order_and_a_partition_drops_them_for_good() {
    let tag = "order";
    let (program, args) = recorder(tag);
    let mut cluster = Cluster::new(tag, 2, &program, args, vec![]);
    cluster.start_all();
    let mut c1 = RawClient::connect(cluster.router(0).client_addr(), "c1");
    let mut c2 = RawClient::connect(cluster.router(1).client_addr(), "c2");
    let burst = |c: &mut RawClient, from: i64| {
        c.rpc(
            "n1",
            json!({"type": "burst", "to": "n2", "from": from, "count": 500}),
        )
        .expect("burst answered");
    };
    burst(&mut c1, 0);
    let expect_first: Vec<i64> = (0..500).collect();
    assert!(eventually(Duration::from_secs(10), || read_seq(
        &mut c2, "n2"
    ) == expect_first));

    // Cut n2 off, send a burst into the cut, heal, wait long enough for any retransmission
    // to have happened, then one more burst: the cut one must never show up.
    cluster.cut(1, true);
    burst(&mut c1, 500);
    std::thread::sleep(Duration::from_millis(300));
    cluster.cut(1, false);
    std::thread::sleep(Duration::from_secs(1));
    burst(&mut c1, 1000);
    let expected: Vec<i64> = (0..500).chain(1000..1500).collect();
    let mut last = Vec::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            last = read_seq(&mut c2, "n2");
            last.len() >= 1000
        }),
        "the burst after the heal arrives: got {} messages, last {:?}",
        last.len(),
        last.last()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        read_seq(&mut c2, "n2"),
        expected,
        "in order, the cut burst never delivered"
    );

    drop((c1, c2));
    let journal = cluster.journal();
    let seqs: Vec<_> = journal
        .messages()
        .into_iter()
        .filter(|m| m.body_type.as_deref() == Some("seq"))
        .collect();
    assert_eq!(seqs.len(), 1500);
    let lost = seqs.iter().filter(|m| m.fate == Fate::Undelivered).count();
    assert_eq!(
        lost, 500,
        "the journal shows the cut burst sent and never delivered"
    );
    let stats = net::stats(&journal, 10);
    assert_eq!(stats["drops-by-reason"]["network"], 500);
    assert!(
        stats["servers"]["msgs-per-op"].as_f64().unwrap() >= 150.0,
        "{stats}"
    );
    cleanup_files(tag, 2);
}

#[test]
fn every_start_sends_a_fresh_init_and_a_node_that_exits_stays_down_until_started() {
    let tag = "restart";
    let (program, args) = recorder(tag);
    let mut cluster = Cluster::new(tag, 2, &program, args, vec![]);
    cluster.start_all();
    let mut c = RawClient::connect(cluster.router(0).client_addr(), "c1");
    assert!(c.rpc("n1", json!({"type": "read"})).is_some());

    // The program exits on its own: the router notes it and leaves it down.
    let mut die = json!({"type": "die"});
    assert!(c
        .rpc_within("n1", &mut die, Duration::from_millis(500))
        .is_none());
    assert!(eventually(Duration::from_secs(5), || cluster
        .control(0, "status")["running"]
        == false));
    std::thread::sleep(Duration::from_secs(1));
    let status = cluster.control(0, "status");
    assert_eq!(
        status["running"], false,
        "the router does not restart it: {status}"
    );
    assert!(
        status["exits"][0]
            .as_str()
            .unwrap()
            .contains("exited with status 7 on its own"),
        "{status}"
    );
    let mut read = json!({"type": "read"});
    assert!(
        c.rpc_within("n1", &mut read, Duration::from_millis(300))
            .is_none(),
        "a down node answers nothing"
    );
    assert!(cluster
        .log(0)
        .contains("stays down until the kill nemesis starts it again"));

    // Started again (as the kill nemesis would): a fresh init, and it works.
    let started = cluster.control(0, "start");
    assert_eq!(started["already"], false);
    assert!(c.rpc("n1", json!({"type": "read"})).is_some());
    // Killed and started: another fresh init.
    assert_eq!(cluster.control(0, "kill")["was_running"], true);
    assert_eq!(cluster.control(0, "status")["running"], false);
    cluster.control(0, "start");
    assert_eq!(
        cluster.control(0, "start")["already"],
        true,
        "start is idempotent"
    );
    assert_eq!(cluster.control(0, "status")["generation"], 3);

    let inits: Vec<Value> = std::fs::read_to_string(inits_file(tag, "n1"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(inits.len(), 3);
    let ids: std::collections::BTreeSet<u64> = inits
        .iter()
        .map(|i| i["msg_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "every init has its own msg_id: {inits:?}");
    for i in &inits {
        assert_eq!(i["node_id"], "n1");
        assert_eq!(i["node_ids"], json!(["n1", "n2"]));
    }
    drop(c);
    let journal = cluster.journal();
    assert!(journal
        .events()
        .iter()
        .any(|e| e.reason.as_deref() == Some("node-down") && e.dest == "n1"));
    cleanup_files(tag, 2);
}

#[test]
fn garbage_on_stdout_is_rejected_and_reported_naming_the_node() {
    let tag = "garbage";
    let (program, args) = recorder(tag);
    let cluster = Cluster::new(tag, 1, &program, args, vec![("GARBAGE".into(), "1".into())]);
    cluster.start_all();
    let mut c = RawClient::connect(cluster.router(0).client_addr(), "c1");
    assert!(
        c.rpc("n1", json!({"type": "read"})).is_some(),
        "the node keeps working"
    );
    let status = cluster.control(0, "status");
    assert_eq!(status["garbage_lines"], 1, "{status}");
    assert_eq!(status["first_garbage_line"], "hello, this is not JSON");
    let log = cluster.log(0);
    assert!(
        log.contains(
            "node n1 wrote a line to stdout that is not a Maelstrom message (it is not JSON"
        ),
        "{log}"
    );
    cleanup_files(tag, 1);
}

#[test]
fn a_node_that_never_answers_init_fails_its_start_with_a_clear_error() {
    let cluster = Cluster::with("noinit", 1, "sleep", vec!["30".into()], vec![], |c| {
        c.init_timeout = Duration::from_millis(300)
    });
    let err = control::request(
        cluster.router(0).client_addr(),
        "start",
        Duration::from_secs(10),
    )
    .unwrap_err();
    assert!(
        err.contains("node n1 did not answer init with init_ok within 300 ms"),
        "{err}"
    );
    let cluster2 = Cluster::new("nobin", 1, "/nonexistent/node-program", vec![], vec![]);
    let err = control::request(
        cluster2.router(0).client_addr(),
        "start",
        Duration::from_secs(10),
    )
    .unwrap_err();
    assert!(
        err.contains("could not start the node program /nonexistent/node-program on n1"),
        "{err}"
    );
}

#[test]
fn pause_holds_messages_back_and_resume_lets_them_through() {
    let echo = format!("{EXAMPLES}/echo.py");
    let cluster = Cluster::new("pause", 1, &echo, vec![], vec![]);
    cluster.start_all();
    let mut c = RawClient::connect(cluster.router(0).client_addr(), "c1");
    assert!(c.rpc("n1", json!({"type": "echo", "echo": 1})).is_some());
    assert_eq!(cluster.control(0, "pause")["running"], true);
    let mut echo2 = json!({"type": "echo", "echo": 2});
    assert!(c
        .rpc_within("n1", &mut echo2, Duration::from_millis(500))
        .is_none());
    assert_eq!(cluster.control(0, "status")["paused"], true);
    cluster.control(0, "resume");
    // The echo sent while paused is answered now (a paused process reads late, it does
    // not lose what was queued for it).
    let mut line = String::new();
    c.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    c.reader.read_line(&mut line).unwrap();
    let late: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(late["body"]["echo"], 2);
}

#[test]
fn nodes_reach_the_services_over_the_network_and_clients_map_errors() {
    let proxy = format!("{EXAMPLES}/lin_kv_proxy.py");
    let cluster = Cluster::new("services", 2, &proxy, vec![], vec![]);
    cluster.start_all();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Client c1 talks to n2, whose lin-kv requests cross the network to n1's router.
        let mut c = Client::connect(cluster.router(1).client_addr(), "c1", "n2", "lin-kv")
            .await
            .unwrap();
        let read = OpRequest::keyed("read", json!(3), Value::Null);
        let missing = c.invoke(&read).await;
        assert_eq!(
            missing.kind,
            OpType::Fail,
            "key-does-not-exist is definite: {missing:?}"
        );
        assert_eq!(missing.error.as_ref().unwrap()["code"], 20);
        let w = c
            .invoke(&OpRequest::keyed("write", json!(3), json!(4)))
            .await;
        assert_eq!(w.kind, OpType::Ok, "{w:?}");
        let r = c.invoke(&read).await;
        assert_eq!((r.kind, r.value), (OpType::Ok, json!(4)));
        let cas = c
            .invoke(&OpRequest::keyed("cas", json!(3), json!([1, 2])))
            .await;
        assert_eq!(
            cas.kind,
            OpType::Fail,
            "precondition-failed is definite: {cas:?}"
        );
        // Cut n1 (and with it the services) off: the proxy times out, indefinitely.
        cluster.cut(0, true);
        let cut = c
            .invoke(&OpRequest::keyed("write", json!(3), json!(5)))
            .await;
        assert_eq!(cut.kind, OpType::Info, "a timeout is indefinite: {cut:?}");
        cluster.cut(0, false);
    });
}

#[test]
fn a_message_to_nobody_is_dropped_and_logged_once() {
    let tag = "noroute";
    let (program, args) = recorder(tag);
    let mut cluster = Cluster::new(tag, 1, &program, args, vec![]);
    cluster.start_all();
    let mut c = RawClient::connect(cluster.router(0).client_addr(), "c1");
    for from in [0, 10] {
        c.rpc(
            "n1",
            json!({"type": "burst", "to": "n9", "from": from, "count": 10}),
        )
        .unwrap();
    }
    assert!(eventually(Duration::from_secs(5), || cluster
        .log(0)
        .contains("\"n9\"")));
    assert_eq!(
        cluster.log(0).matches("sent a message to \"n9\"").count(),
        1
    );
    drop(c);
    let journal = cluster.journal();
    let dropped = journal
        .events()
        .iter()
        .filter(|e| e.reason.as_deref() == Some("no-route"))
        .count();
    assert_eq!(dropped, 20);
    cleanup_files(tag, 1);
}

#[test]
fn a_router_on_this_machine_shares_our_monotonic_clock() {
    let echo = format!("{EXAMPLES}/echo.py");
    let cluster = Cluster::new("clock", 1, &echo, vec![], vec![]);
    let offset =
        control::clock_offset_ns(cluster.router(0).client_addr(), Duration::from_secs(5)).unwrap();
    assert!(offset.abs() < 5_000_000, "offset {offset} ns");
}

/// The nice value of process `pid` (field 19 of /proc/PID/stat).
fn nice_of(pid: &str) -> i64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(16).unwrap().parse().unwrap()
}

#[test]
fn node_programs_keep_normal_priority_while_the_message_path_is_raised() {
    let echo = format!("{EXAMPLES}/echo.py");
    let cluster = Cluster::new("nice", 1, &echo, vec![], vec![]);
    cluster.start_all();
    let mut c = RawClient::connect(cluster.router(0).client_addr(), "c1");
    assert!(c.rpc("n1", json!({"type": "echo", "echo": 1})).is_some());
    let pid = cluster.control(0, "status")["pid"].as_i64().unwrap();
    assert_eq!(
        nice_of(&pid.to_string()),
        nice_of("self"),
        "the node program runs as we do"
    );
    if nix::unistd::Uid::effective().is_root() {
        // Some thread of ours (the routers run in this test process) carries messages at -10.
        let raised = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(Result::ok)
            .any(|t| nice_of(&format!("self/task/{}", t.file_name().to_string_lossy())) == -10);
        assert!(raised, "no router thread was raised");
    }
}
