//! Messages through the routers between two nodes: throughput and added latency, against
//! a reference measured in the same run — the same two node programs joined by a direct
//! pipe (sender's stdout into receiver's stdin).
//!
//! Both node programs are this binary (`DT_BENCH_NODE=1`): the sender, told `go`, writes
//! `count` messages to `n2`, paced at `rate` per second (0: as fast as it can), each
//! stamped with the monotonic clock; the receiver measures each message's latency on
//! arrival and, after the last one, reports count, duration and latency quantiles to
//! client `c1`. The routers run on loopback with their journals on, as in a real run.
//!
//! `cargo bench -p distest-maelstrom --bench router` (env `DT_BENCH_MESSAGES` to change
//! the message count, default 60000: 3 s at 20000/s).

use distest_maelstrom::journal::mono_ns;
use distest_maelstrom::router::{control, Config, Router};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    if std::env::var_os("DT_BENCH_NODE").is_some() {
        node();
        return;
    }
    let count: u64 = std::env::var("DT_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60_000);
    let dir = std::env::temp_dir().join(format!("dt-router-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "messages between two nodes, {count} per measurement; {ROUNDS} rounds, pipe and routers alternating, medians shown\n"
    );
    println!(
        "{:<34} {:>12} {:>9} {:>9} {:>9}",
        "", "msgs/s", "p50 ms", "p99 ms", "max ms"
    );
    let mut rows = Vec::new();
    for (label, rate) in [("paced at 20000/s", 20_000u64), ("as fast as possible", 0)] {
        let mut pipe = Vec::new();
        let mut routed = Vec::new();
        for _ in 0..ROUNDS {
            pipe.push(direct_pipe(count, rate));
            routed.push(through_routers(&dir, count, rate));
        }
        let added_p50 = median(
            routed
                .iter()
                .zip(&pipe)
                .map(|(r, p)| r.p50_ms - p.p50_ms)
                .collect(),
        );
        let added_p99 = median(
            routed
                .iter()
                .zip(&pipe)
                .map(|(r, p)| r.p99_ms - p.p99_ms)
                .collect(),
        );
        let (pipe, routed) = (medians(&pipe), medians(&routed));
        print_row(&format!("direct pipe, {label}"), &pipe);
        print_row(&format!("routers, {label}"), &routed);
        rows.push((label, pipe, routed, added_p50, added_p99));
    }
    println!();
    for (label, pipe, routed, added_p50, added_p99) in &rows {
        println!(
            "{label}: routers add {added_p50:.3} ms at p50 and {added_p99:.3} ms at p99 (median of per-round differences); {:.0} msgs/s through the routers ({:.0}% of the pipe)",
            routed.rate,
            100.0 * routed.rate / pipe.rate.max(1.0)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[derive(Clone, Copy, Debug)]
struct Measured {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn print_row(label: &str, m: &Measured) {
    println!(
        "{label:<34} {:>12.0} {:>9.3} {:>9.3} {:>9.3}",
        m.rate, m.p50_ms, m.p99_ms, m.max_ms
    );
}

/// Rounds per measurement: a shared 2-core machine makes single runs noisy, so pipe and
/// routers alternate and medians are compared.
const ROUNDS: usize = 5;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Each figure's median over the rounds.
fn medians(runs: &[Measured]) -> Measured {
    Measured {
        rate: median(runs.iter().map(|m| m.rate).collect()),
        p50_ms: median(runs.iter().map(|m| m.p50_ms).collect()),
        p99_ms: median(runs.iter().map(|m| m.p99_ms).collect()),
        max_ms: median(runs.iter().map(|m| m.max_ms).collect()),
    }
}

fn parse_report(report: &Value) -> Measured {
    let b = &report["body"];
    Measured {
        rate: b["rate"].as_f64().unwrap_or(0.0),
        p50_ms: b["p50_ns"].as_f64().unwrap_or(0.0) / 1e6,
        p99_ms: b["p99_ns"].as_f64().unwrap_or(0.0) / 1e6,
        max_ms: b["max_ns"].as_f64().unwrap_or(0.0) / 1e6,
    }
}

fn node_command() -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env("DT_BENCH_NODE", "1");
    cmd
}

/// The reference: the sender's stdout is the receiver's stdin.
fn direct_pipe(count: u64, rate: u64) -> Measured {
    let mut receiver = node_command()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sender = node_command()
        .stdin(Stdio::piped())
        .stdout(Stdio::from(receiver.stdin.take().unwrap()))
        .spawn()
        .unwrap();
    let mut to_sender = sender.stdin.take().unwrap();
    for (i, body) in [
        json!({"type": "init", "msg_id": 1, "node_id": "n1", "node_ids": ["n1", "n2"]}),
        json!({"type": "go", "msg_id": 2, "count": count, "rate": rate, "to": "n2"}),
    ]
    .iter()
    .enumerate()
    {
        let src = if i == 0 { "c0" } else { "c1" };
        writeln!(
            to_sender,
            "{}",
            json!({"src": src, "dest": "n1", "body": body})
        )
        .unwrap();
    }
    to_sender.flush().unwrap();
    let mut lines = BufReader::new(receiver.stdout.take().unwrap()).lines();
    let report = loop {
        let line = lines.next().expect("the receiver reports").unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["body"]["type"] == "report" {
            break v;
        }
    };
    drop(to_sender);
    let _ = sender.kill();
    let _ = receiver.kill();
    let _ = sender.wait();
    let _ = receiver.wait();
    parse_report(&report)
}

/// The same programs, each under its router, on loopback.
fn through_routers(dir: &std::path::Path, count: u64, rate: u64) -> Measured {
    let ids = vec!["n1".to_string(), "n2".to_string()];
    let routers: Vec<Router> = ids
        .iter()
        .map(|id| {
            Router::start(Config {
                node: id.clone(),
                node_ids: ids.clone(),
                peers: Default::default(),
                services_at: None,
                peer_listen: "127.0.0.1:0".parse().unwrap(),
                client_listen: "127.0.0.1:0".parse().unwrap(),
                journal: Some(dir.join(format!("{id}.journal.jsonl"))),
                log: dir.join(format!("{id}.log")),
                seed: 0,
                topology: None,
                program: std::env::current_exe().unwrap(),
                args: vec![],
                env: vec![("DT_BENCH_NODE".into(), "1".into())],
                init_timeout: Duration::from_secs(10),
            })
            .unwrap()
        })
        .collect();
    for r in &routers {
        for (id, other) in ids.iter().zip(&routers) {
            r.set_peer(id, other.peer_addr());
        }
        control::request(r.client_addr(), "start", Duration::from_secs(10)).unwrap();
    }
    // c1 listens at n2 for the report and sends `go` through n1.
    let listen = client(&routers[1], "c1");
    let mut go = client(&routers[0], "c1");
    writeln!(
        go,
        "{}",
        json!({"src": "c1", "dest": "n1", "body": {"type": "go", "msg_id": 1, "count": count, "rate": rate, "to": "n2"}})
    )
    .unwrap();
    let mut reader = BufReader::new(listen);
    let started = Instant::now();
    let report = loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0
            || started.elapsed() > Duration::from_secs(120)
        {
            panic!(
                "no report from n2: messages were lost; see {}",
                dir.display()
            );
        }
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["body"]["type"] == "report" {
            break v;
        }
    };
    for r in routers {
        r.stop();
    }
    for id in &ids {
        let _ = std::fs::remove_file(dir.join(format!("{id}.journal.jsonl")));
    }
    parse_report(&report)
}

fn client(router: &Router, id: &str) -> TcpStream {
    let mut s = TcpStream::connect(router.client_addr()).unwrap();
    s.set_nodelay(true).unwrap();
    writeln!(s, "{}", json!({"client": id})).unwrap();
    // Let the router register the client before anything is routed to it.
    std::thread::sleep(Duration::from_millis(50));
    s
}

/// The node program: sender or receiver, depending on the messages it gets.
fn node() {
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut me = String::from("n1");
    let mut latencies: Vec<u64> = Vec::new();
    let mut first_ns = 0;
    for line in stdin.lock().lines() {
        let Ok(line) = line else { return };
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let body = &msg["body"];
        match body["type"].as_str() {
            Some("init") => {
                me = body["node_id"].as_str().unwrap_or("n1").to_string();
                let reply = json!({"src": me, "dest": msg["src"], "body": {"type": "init_ok", "in_reply_to": body["msg_id"]}});
                writeln!(out, "{reply}").unwrap();
                out.flush().unwrap();
            }
            Some("go") => {
                let count = body["count"].as_u64().unwrap_or(0);
                let rate = body["rate"].as_u64().unwrap_or(0);
                let to = body["to"].as_str().unwrap_or("n2").to_string();
                send_paced(&mut out, &me, &to, count, rate);
            }
            Some("t") => {
                let now = mono_ns();
                let ts = body["ts"].as_u64().unwrap_or(now);
                if latencies.is_empty() {
                    first_ns = ts;
                }
                latencies.push(now.saturating_sub(ts));
                if latencies.len() as u64 == body["total"].as_u64().unwrap_or(u64::MAX) {
                    let seconds = (now - first_ns) as f64 / 1e9;
                    latencies.sort_unstable();
                    let q = |p: f64| {
                        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)]
                    };
                    let report = json!({"src": me, "dest": "c1", "body": {
                        "type": "report", "count": latencies.len(),
                        "rate": latencies.len() as f64 / seconds.max(1e-9),
                        "p50_ns": q(0.5), "p99_ns": q(0.99), "max_ns": latencies[latencies.len() - 1],
                    }});
                    writeln!(out, "{report}").unwrap();
                    out.flush().unwrap();
                    latencies.clear();
                }
            }
            _ => {}
        }
    }
}

/// Writes `count` messages to `to`, each stamped when written; at `rate` per second
/// (0: unpaced), flushing whatever is due in one write.
fn send_paced(out: &mut impl Write, me: &str, to: &str, count: u64, rate: u64) {
    let start = mono_ns();
    let mut i = 0;
    while i < count {
        let now = mono_ns();
        let due = if rate == 0 {
            count.min(i + 64)
        } else {
            (((now - start) as u128 * rate as u128 / 1_000_000_000) as u64 + 1).min(count)
        };
        if due <= i {
            std::thread::sleep(Duration::from_micros(50));
            continue;
        }
        while i < due {
            let line = json!({"src": me, "dest": to, "body": {"type": "t", "ts": mono_ns(), "total": count, "i": i}});
            writeln!(out, "{line}").unwrap();
            i += 1;
        }
        out.flush().unwrap();
    }
}
