//! The latency delayer's cost and accuracy, against the same traffic without the fault in
//! the same run, between two network namespaces of the bench's own (root only).
//!
//! - Throughput at 0 ms delay: a UDP flood and a TCP bulk transfer from n2 to n1, with and
//!   without n1's delayer in the path; packets/s the delayer let through (its own count)
//!   and what passed it undelayed (held limit reached, or the kernel's fail-open).
//! - Accuracy at 50 ms: one-way UDP delay n2 → n1 at 500 datagrams/s, both ends in this
//!   process (one monotonic clock); p50/p99 of (measured − 50 ms), next to the one-way
//!   delay without the fault.
//!
//! `cargo bench --bench latency` (under `flock /work/locks/netns.lock` on shared machines).
//! `LATENCY_BENCH_SECONDS` sets each measurement's length (default 3).

// Shared with the tests; the bench uses part of it.
#[allow(dead_code)]
#[path = "../tests/common/netns.rs"]
mod netns;

use distest_nemeses::latency::{self, Latency};
use distest_nemeses::{FaultOp, Nemesis, NemesisContext, NodeShell};
use netns::{in_namespace, quantile, tcp_listener_in, udp_socket_in, NoTarget, Topology};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PORT_UDP: u16 = 7501;
const PORT_TCP: u16 = 7502;

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: the latency bench needs root to build network namespaces");
        return;
    }
    let seconds: f64 = std::env::var("LATENCY_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let run_for = Duration::from_secs_f64(seconds);
    // The delayer runs at nice -10; so do the bench's own senders and receivers (threads
    // inherit it), or the measurement would time the bench's wait for a CPU on a busy
    // machine rather than the delayer.
    // SAFETY: setpriority only reads its arguments.
    unsafe { nix::libc::setpriority(nix::libc::PRIO_PROCESS, 0, -10) };
    let topology = Topology::create("la6", 174, 2);
    let mut nemesis = Latency::new(&NemesisContext {
        nodes: topology.shells(),
        target: Arc::new(NoTarget),
        seed: 1,
    });
    nemesis.preflight().expect("this machine can delay packets");
    let start = |nemesis: &mut Latency, delay_ms: i64| {
        nemesis
            .invoke(&FaultOp::new(
                latency::START,
                json!({"nodes": ["n1"], "delay_ms": delay_ms, "jitter_ms": 0}),
            ))
            .expect("latency starts")
    };
    let stop = |nemesis: &mut Latency| -> Value {
        let done = nemesis
            .invoke(&FaultOp::new(latency::STOP, Value::Null))
            .expect("latency stops");
        done["delayers"]["n1"]["stats"].clone()
    };

    println!("latency delayer bench: {seconds} s per measurement, n2 -> n1, n1's link delayed");
    println!();
    println!("throughput at 0 ms delay");
    let base_udp = udp_flood(&topology, run_for);
    start(&mut nemesis, 0);
    let udp = udp_flood(&topology, run_for);
    let udp_stats = stop(&mut nemesis);
    report_flood("UDP flood, 64 B", base_udp, udp, &udp_stats, run_for);
    let base_tcp = tcp_bulk(&topology, run_for);
    start(&mut nemesis, 0);
    let tcp = tcp_bulk(&topology, run_for);
    let tcp_stats = stop(&mut nemesis);
    println!(
        "  TCP bulk: {:>8.1} MB/s without the fault, {:>8.1} MB/s through the delayer ({:.0} packets/s delayed, {} passed when full)",
        base_tcp / 1e6,
        tcp / 1e6,
        tcp_stats["delayed"].as_f64().unwrap_or(0.0) / seconds,
        tcp_stats["passed_when_full"]
    );

    println!();
    println!("accuracy at 50 ms (one-way, 500 datagrams/s)");
    let mut base = one_way_ms(&topology, run_for);
    start(&mut nemesis, 50);
    let mut delayed = one_way_ms(&topology, run_for);
    let stats = stop(&mut nemesis);
    let mut error: Vec<f64> = delayed.iter().map(|ms| ms - 50.0).collect();
    println!(
        "  without the fault: one-way p50 {:.3} ms, p99 {:.3} ms ({} datagrams)",
        quantile(&mut base, 0.5),
        quantile(&mut base, 0.99),
        base.len()
    );
    println!(
        "  delayed 50 ms:     measured − 50 ms p50 {:.3} ms, p99 {:.3} ms, min {:.3} ms, max {:.3} ms ({} datagrams, {} delayed by the delayer)",
        quantile(&mut error, 0.5),
        quantile(&mut error, 0.99),
        quantile(&mut error, 0.0),
        quantile(&mut delayed, 1.0) - 50.0,
        delayed.len(),
        stats["delayed"]
    );
    println!(
        "  the delayer's own count of how late it let packets go: p50 {} µs, p99 {} µs, max {} µs",
        stats["late_p50_us"], stats["late_p99_us"], stats["late_max_us"]
    );
    assert!(nemesis.heal().is_empty());
}

fn report_flood(what: &str, base_pps: f64, pps: f64, stats: &Value, run_for: Duration) {
    let seconds = run_for.as_secs_f64();
    let delayed = stats["delayed"].as_f64().unwrap_or(0.0);
    let received = stats["received"].as_f64().unwrap_or(0.0);
    println!(
        "  {what}: {base_pps:>9.0} packets/s arrive without the fault; with it {pps:>9.0} arrive, \
         {:>9.0}/s held and let go by the delayer, {:.0}/s passed when full, {:.0}/s passed by the kernel (queue full: fail-open)",
        delayed / seconds,
        stats["passed_when_full"].as_f64().unwrap_or(0.0) / seconds,
        (pps - received / seconds).max(0.0),
    );
}

/// Datagrams/s arriving at n1 while n2 sends 64-byte datagrams as fast as it can.
fn udp_flood(topology: &Topology, run_for: Duration) -> f64 {
    let addr = SocketAddr::new(topology.nodes[0].address(), PORT_UDP);
    let receiver = udp_socket_in(
        topology.nodes[0].namespace(),
        addr,
        Duration::from_millis(200),
    );
    let sending = Arc::new(AtomicBool::new(true));
    let flag = sending.clone();
    let counter = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let mut count = 0u64;
        let mut quiet_since: Option<Instant> = None;
        loop {
            match receiver.recv(&mut buf) {
                Ok(_) => {
                    count += 1;
                    quiet_since = None;
                }
                Err(_) if flag.load(Ordering::SeqCst) => {}
                Err(_) => {
                    // Sender done: stop once nothing more arrives for a while.
                    let since = *quiet_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_millis(300) {
                        break;
                    }
                }
            }
        }
        count
    });
    in_namespace(topology.nodes[1].namespace(), move || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        let payload = [7u8; 64];
        let end = Instant::now() + run_for;
        while Instant::now() < end {
            for _ in 0..64 {
                let _ = socket.send_to(&payload, addr);
            }
        }
    })
    .join()
    .unwrap();
    sending.store(false, Ordering::SeqCst);
    counter.join().unwrap() as f64 / run_for.as_secs_f64()
}

/// Bytes/s a TCP connection n2 → n1 carries.
fn tcp_bulk(topology: &Topology, run_for: Duration) -> f64 {
    let addr = SocketAddr::new(topology.nodes[0].address(), PORT_TCP);
    let listener = tcp_listener_in(topology.nodes[0].namespace(), addr);
    let sink = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        while let Ok(n) = conn.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    });
    in_namespace(topology.nodes[1].namespace(), move || {
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
        let chunk = vec![1u8; 1 << 16];
        let end = Instant::now() + run_for;
        while Instant::now() < end {
            conn.write_all(&chunk).unwrap();
        }
    })
    .join()
    .unwrap();
    sink.join().unwrap() as f64 / run_for.as_secs_f64()
}

/// One-way delays (ms) of datagrams n2 → n1 sent every 2 ms; each carries its send time
/// on a clock both ends share (this process' monotonic clock).
fn one_way_ms(topology: &Topology, run_for: Duration) -> Vec<f64> {
    let addr = SocketAddr::new(topology.nodes[0].address(), PORT_UDP);
    let t0 = Instant::now();
    let receiver = udp_socket_in(
        topology.nodes[0].namespace(),
        addr,
        Duration::from_millis(500),
    );
    let collector = std::thread::spawn(move || {
        let mut delays = Vec::new();
        let mut buf = [0u8; 8];
        while let Ok(8) = receiver.recv(&mut buf) {
            let sent_ns = u64::from_be_bytes(buf);
            let now_ns = t0.elapsed().as_nanos() as u64;
            delays.push(now_ns.saturating_sub(sent_ns) as f64 / 1e6);
        }
        delays
    });
    in_namespace(topology.nodes[1].namespace(), move || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        let end = Instant::now() + run_for;
        let mut next = Instant::now();
        while next < end {
            let sent_ns = t0.elapsed().as_nanos() as u64;
            socket.send_to(&sent_ns.to_be_bytes(), addr).unwrap();
            next += Duration::from_millis(2);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    })
    .join()
    .unwrap();
    collector.join().unwrap()
}
