//! The latency nemesis on the real kernel, between network namespaces of the test's own:
//! ping and TCP round trips slower by the delay on each crossing of an affected node's
//! link, reordering exactly when there is jitter, and nothing left after heal or after
//! clearing the leftovers of a run that never healed.
//!
//! Needs root (skips otherwise, saying so). Run under the machine's netns lock:
//! `cargo test --test latency_host --no-run && flock /work/locks/netns.lock cargo test --test latency_host`.

mod common;

use common::netns::{in_namespace, quantile, tcp_listener_in, udp_socket_in, NoTarget, Topology};
use distest_nemeses::latency::{self, Latency};
use distest_nemeses::{FaultOp, Nemesis, NemesisContext, NodeShell};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn ctx(topology: &Topology) -> NemesisContext {
    NemesisContext {
        nodes: topology.shells(),
        target: Arc::new(NoTarget),
        seed: 7,
    }
}

fn start(nodes: &[&str], delay_ms: i64, jitter_ms: i64) -> FaultOp {
    FaultOp::new(
        latency::START,
        json!({"nodes": nodes, "delay_ms": delay_ms, "jitter_ms": jitter_ms}),
    )
}

/// Round-trip times (ms) of `count` one-byte echoes over one TCP connection from node
/// `from` to an echo server on node `to`.
fn tcp_rtts_ms(topology: &Topology, from: usize, to: usize, count: usize) -> Vec<f64> {
    let server_addr = SocketAddr::new(topology.nodes[to].address(), 7401);
    let listener = tcp_listener_in(topology.nodes[to].namespace(), server_addr);
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut byte = [0u8; 1];
        while conn.read_exact(&mut byte).is_ok() {
            if conn.write_all(&byte).is_err() {
                break;
            }
        }
    });
    let rtts = in_namespace(topology.nodes[from].namespace(), move || {
        let mut conn = TcpStream::connect_timeout(&server_addr, Duration::from_secs(10))
            .expect("connect to the echo server");
        conn.set_nodelay(true).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut byte = [0u8; 1];
        (0..count)
            .map(|_| {
                let sent = Instant::now();
                conn.write_all(b"x").unwrap();
                conn.read_exact(&mut byte).unwrap();
                sent.elapsed().as_secs_f64() * 1000.0
            })
            .collect::<Vec<f64>>()
    })
    .join()
    .unwrap();
    server.join().unwrap();
    rtts
}

/// Sends `count` numbered datagrams from node `from` to node `to`, one every `gap`;
/// returns the numbers in the order they arrived.
fn udp_arrival_order(
    topology: &Topology,
    from: usize,
    to: usize,
    count: u32,
    gap: Duration,
) -> Vec<u32> {
    let addr = SocketAddr::new(topology.nodes[to].address(), 7402);
    let receiver = udp_socket_in(topology.nodes[to].namespace(), addr, Duration::from_secs(3));
    let collector = std::thread::spawn(move || {
        let mut order = Vec::new();
        let mut buf = [0u8; 4];
        while order.len() < count as usize {
            match receiver.recv(&mut buf) {
                Ok(4) => order.push(u32::from_be_bytes(buf)),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        order
    });
    in_namespace(topology.nodes[from].namespace(), move || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        for seq in 0..count {
            socket.send_to(&seq.to_be_bytes(), addr).unwrap();
            std::thread::sleep(gap);
        }
    })
    .join()
    .unwrap();
    collector.join().unwrap()
}

fn inversions(order: &[u32]) -> usize {
    order.windows(2).filter(|w| w[1] < w[0]).count()
}

fn median(mut values: Vec<f64>) -> f64 {
    quantile(&mut values, 0.5)
}

#[test]
fn round_trips_through_an_affected_node_are_slower_by_the_delay_each_way_and_heal_leaves_nothing() {
    common::require_root!();
    let topology = Topology::create("la1", 170, 3);
    let before = median(topology.ping_ms(1, 0, 10));
    assert!(
        before < 20.0,
        "the namespaces answer fast before the fault: {before} ms"
    );
    let mut nemesis = Latency::new(&ctx(&topology));
    nemesis.preflight().expect("this machine can delay packets");

    let delay_ms = 40.0;
    let done = nemesis
        .invoke(&start(&["n1"], 40, 0))
        .expect("latency starts");
    assert_eq!(done["nodes"], json!(["n1"]));
    assert_eq!(nemesis.active(), vec!["latency 40±0 ms on n1"]);
    // n1's link to the cluster is slow both ways: a round trip with n1 crosses it twice.
    let ping = topology.ping_ms(1, 0, 10);
    assert_eq!(ping.len(), 10, "every ping came back");
    let slowest_allowed = 2.0 * delay_ms + 200.0;
    for rtt in &ping {
        assert!(
            (2.0 * delay_ms..slowest_allowed).contains(rtt),
            "ping n2→n1 took {rtt} ms; expected at least {} ms: {ping:?}",
            2.0 * delay_ms
        );
    }
    let tcp = tcp_rtts_ms(&topology, 2, 0, 20);
    for rtt in &tcp {
        assert!(
            *rtt >= 2.0 * delay_ms,
            "TCP echo n3→n1 took {rtt} ms: {tcp:?}"
        );
    }
    assert!(median(tcp) < slowest_allowed);
    // n2 and n3 talk as before.
    let unaffected = median(topology.ping_ms(1, 2, 10));
    assert!(unaffected < 20.0, "n2→n3 is not slowed: {unaffected} ms");

    let healed = nemesis.heal();
    assert_eq!(healed.len(), 1);
    let value = healed[0].1.as_ref().expect("heal works");
    assert_eq!(value["healed"], json!(["n1"]));
    let stats = &value["delayers"]["n1"]["stats"];
    assert!(stats["delayed"].as_u64().unwrap() >= 60, "{value}");
    assert_eq!(stats["passed_when_full"], 0, "{value}");
    assert!(nemesis.active().is_empty());
    assert_eq!(topology.our_rules(), Vec::<String>::new());
    assert_eq!(
        topology.processes(),
        Vec::<String>::new(),
        "no delayer is left"
    );
    assert!(
        !topology.state_files(0).iter().any(|f| f.ends_with(".pid")),
        "{:?}",
        topology.state_files(0)
    );
    let after = median(topology.ping_ms(1, 0, 10));
    assert!(after < 20.0, "fast again after heal: {after} ms");
    assert!(nemesis.heal().is_empty(), "a second heal does nothing");
}

#[test]
fn jitter_reorders_packets_and_no_jitter_keeps_their_order() {
    common::require_root!();
    let topology = Topology::create("la2", 171, 2);
    let mut nemesis = Latency::new(&ctx(&topology));
    let gap = Duration::from_micros(500);

    nemesis
        .invoke(&start(&["n1"], 30, 0))
        .expect("latency starts");
    let steady = udp_arrival_order(&topology, 1, 0, 400, gap);
    assert_eq!(steady.len(), 400, "no datagram is lost");
    assert_eq!(inversions(&steady), 0, "one delay for all keeps the order");

    let second = nemesis
        .invoke(&start(&["n1"], 30, 25))
        .expect("a new latency replaces the old");
    let replaced = &second["replaced"]["delayers"]["n1"]["stats"];
    assert!(replaced["delayed"].as_u64().unwrap() >= 400, "{second}");
    assert_eq!(replaced["reordered"], 0, "{second}");
    let jittered = udp_arrival_order(&topology, 1, 0, 400, gap);
    assert_eq!(jittered.len(), 400, "reordered, not lost");
    let swapped = inversions(&jittered);
    assert!(
        swapped >= 40,
        "±25 ms on packets 0.5 ms apart reorders many: {swapped}"
    );

    let stop = nemesis
        .invoke(&FaultOp::new(latency::STOP, serde_json::Value::Null))
        .expect("latency stops");
    let reordered = stop["delayers"]["n1"]["stats"]["reordered"]
        .as_u64()
        .unwrap();
    assert!(
        reordered >= swapped as u64 / 2,
        "the delayer counts them too: {stop}"
    );
    assert!(nemesis.heal().is_empty());
    assert_eq!(topology.processes(), Vec::<String>::new());
}

#[test]
fn a_run_that_never_healed_is_cleared_and_a_dead_delayer_never_cuts_the_link() {
    common::require_root!();
    let topology = Topology::create("la3", 173, 2);
    {
        // A control node killed mid-fault: the nemesis is dropped without a heal.
        let mut nemesis = Latency::new(&ctx(&topology));
        nemesis
            .invoke(&start(&["n1", "n2"], 100, 0))
            .expect("latency starts");
    }
    // (TCP, not ping: ping stamps a reply when it reaches the device, before the
    // receiver's own link delay.)
    let both = tcp_rtts_ms(&topology, 1, 0, 3);
    assert!(
        median(both.clone()) >= 400.0,
        "both links slow, 4 crossings: {both:?}"
    );
    assert!(!topology.our_rules().is_empty());
    assert_eq!(topology.processes().len(), 2, "{:?}", topology.processes());

    // n1's delayer dies: its rules stay, but with nobody bound to the queue packets pass.
    let pid = std::fs::read_to_string(topology.state_file(0, "latency-delayer.pid"))
        .expect("the delayer's pid file");
    common::netns::host_sh(&format!("kill -9 {}", pid.trim()));
    std::thread::sleep(Duration::from_millis(200));
    let rtts = tcp_rtts_ms(&topology, 0, 1, 3);
    assert!(
        median(rtts.clone()) >= 200.0,
        "n2's delayer still delays: {rtts:?}"
    );
    assert!(
        median(rtts.clone()) < 400.0,
        "n1's link is not slow (nor cut): {rtts:?}"
    );

    for (node, outcome) in distest_nemeses::clear_leftovers(&topology.shells()) {
        assert!(outcome.is_ok(), "{node}: {outcome:?}");
    }
    assert_eq!(topology.our_rules(), Vec::<String>::new());
    assert_eq!(topology.processes(), Vec::<String>::new());
    assert!(median(topology.ping_ms(0, 1, 3)) < 20.0);
}

#[test]
fn a_flood_past_the_hold_limit_passes_undelayed_is_counted_and_costs_bounded_memory() {
    common::require_root!();
    let topology = Topology::create("la8", 173, 2);
    let mut nemesis = Latency::new(&ctx(&topology));
    nemesis
        .invoke(&start(&["n1"], 3_000, 0))
        .expect("latency starts");
    let addr = SocketAddr::new(topology.nodes[0].address(), 7403);
    let receiver = udp_socket_in(
        topology.nodes[0].namespace(),
        addr,
        Duration::from_millis(100),
    );
    // Far more than the 4096 packets a delayer holds, in well under the delay; counted
    // as they arrive (a socket buffer holds only a few hundred).
    let sent = 10_000u32;
    let started = Instant::now();
    let counter = std::thread::spawn(move || {
        let mut early = 0;
        let mut buf = [0u8; 4];
        while started.elapsed() < Duration::from_millis(1_500) {
            if receiver.recv(&mut buf).is_ok() {
                early += 1;
            }
        }
        early
    });
    in_namespace(topology.nodes[1].namespace(), move || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        for seq in 0..sent {
            socket.send_to(&seq.to_be_bytes(), addr).unwrap();
            if seq % 256 == 0 {
                // Let the delayer keep up, so the overflow is its own, not the kernel's.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    })
    .join()
    .unwrap();
    let early = counter.join().unwrap();
    let pid = std::fs::read_to_string(topology.state_file(0, "latency-delayer.pid"))
        .expect("the delayer's pid file");
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    let stop = nemesis
        .invoke(&FaultOp::new(latency::STOP, serde_json::Value::Null))
        .expect("latency stops");
    let stats = &stop["delayers"]["n1"]["stats"];
    eprintln!(
        "held at most {}, passed when full {}, arrived early {early}, delayer RSS {rss_kib} KiB",
        stats["max_held"], stats["passed_when_full"]
    );
    assert_eq!(stats["max_held"], 4096, "{stop}");
    let passed = stats["passed_when_full"].as_u64().unwrap();
    assert!(
        passed >= 1_000,
        "packets past the limit pass, counted: {stop}"
    );
    assert!(
        early >= 1_000,
        "and arrive at once: {early} before the delay was up"
    );
    assert!(rss_kib < 64 * 1024, "the full delayer uses {rss_kib} KiB");
    assert_eq!(topology.processes(), Vec::<String>::new());
}
