//! raft-kv: a Raft-replicated KV store, the system under test bundled with distest.
//!
//! `raft` is the pure consensus core (deterministic, simulated in `tests/sim.rs`); the
//! rest is the shell that gives it a disk (`storage`), a network (`transport`), timers and
//! the loop that ties them (`node`), the state machine (`kv`) and the HTTP client API
//! (`http`, `api`). [`main_with_args`] is the whole binary.

pub mod api;
pub mod http;
pub mod kv;
pub mod logging;
pub mod node;
pub mod raft;
pub mod storage;
pub mod transport;

use clap::Parser;
use node::{Bugs, Event, Node, NodeOptions};
use raft::ReadMode;
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, TrySendError};
use std::sync::{Arc, Mutex};

/// Bound on queued events (peer messages and client requests) for the node loop.
const EVENT_QUEUE_LEN: usize = 8_192;

#[derive(Parser, Debug)]
#[command(
    name = "raft-kv",
    about = "A Raft-replicated KV store with switchable, documented bugs (distest's bundled target)"
)]
struct Args {
    /// This node's id; must appear in --peers.
    #[arg(long)]
    id: String,
    /// Raft transport addresses of all initial members: n1=10.77.0.11:7000,n2=...
    #[arg(long)]
    peers: String,
    /// Directory of the write-ahead log and snapshot.
    #[arg(long)]
    data_dir: PathBuf,
    /// Client API address, e.g. 0.0.0.0:8000.
    #[arg(long)]
    listen: String,
    /// Enable a deliberate bug (repeatable or comma list): stale-read, lease-no-margin,
    /// commit-old-term, no-fsync, ack-before-commit.
    #[arg(long = "bug", value_delimiter = ',')]
    bugs: Vec<String>,
    /// How leaders serve reads: read-index (quorum round) or lease. Default: read-index,
    /// or lease when the lease-no-margin bug is enabled (the bug needs leases).
    #[arg(long)]
    read_mode: Option<String>,
    /// Minimum election timeout; each timeout is drawn from [t, 2t).
    #[arg(long, default_value_t = 1000)]
    election_timeout_ms: u64,
    /// Heartbeat interval (default: a tenth of the election timeout).
    #[arg(long)]
    heartbeat_ms: Option<u64>,
    /// How much shorter than the election timeout a lease is, to absorb clock drift
    /// (default: a quarter of the election timeout).
    #[arg(long)]
    clock_drift_margin_ms: Option<u64>,
    /// How long a request may wait for commit before it is answered `timeout`.
    #[arg(long, default_value_t = 2000)]
    request_timeout_ms: u64,
    /// Take a snapshot (and compact the log) every this many applied entries.
    #[arg(long, default_value_t = 1000)]
    snapshot_every: u64,
    /// Join an existing cluster: start without a membership and wait to be added
    /// (POST /admin/members on the leader).
    #[arg(long)]
    join: bool,
}

static SHUTDOWN: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    SHUTDOWN.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() -> Result<(), String> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(sig, &action) }
            .map_err(|e| format!("cannot install the {sig} handler: {e}"))?;
    }
    Ok(())
}

fn parse_peers(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut peers = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| format!("--peers entry {item:?} is not ID=HOST:PORT"))?;
        if peers.insert(id.to_string(), addr.to_string()).is_some() {
            return Err(format!("--peers names {id} twice"));
        }
    }
    if peers.is_empty() {
        return Err("--peers is empty; list every initial member as ID=HOST:PORT".into());
    }
    Ok(peers)
}

/// The address peers should use to reach our client API: `--listen` itself, or, when it
/// binds all interfaces, our Raft host with the `--listen` port.
fn advertised_api_addr(listen: &SocketAddr, raft_addr: &str) -> String {
    if !listen.ip().is_unspecified() {
        return listen.to_string();
    }
    let host = raft_addr.rsplit_once(':').map_or(raft_addr, |(h, _)| h);
    format!("{host}:{}", listen.port())
}

fn options(args: &Args) -> Result<NodeOptions, String> {
    let peers = parse_peers(&args.peers)?;
    if !args.join && !peers.contains_key(&args.id) {
        return Err(format!(
            "--id {} is not listed in --peers; add it or pass --join",
            args.id
        ));
    }
    let mut bugs = Bugs::default();
    for b in &args.bugs {
        bugs.enable(b.trim())?;
    }
    let read_mode = match args.read_mode.as_deref() {
        None if bugs.lease_no_margin => ReadMode::Lease,
        None | Some("read-index") => ReadMode::ReadIndex,
        Some("lease") => ReadMode::Lease,
        Some(other) => {
            return Err(format!(
                "unknown --read-mode {other:?}; use read-index or lease"
            ))
        }
    };
    if bugs.lease_no_margin && read_mode != ReadMode::Lease {
        return Err("the lease-no-margin bug only acts on lease reads; drop --read-mode read-index or pass --read-mode lease".into());
    }
    if args.election_timeout_ms < 20 {
        return Err("--election-timeout-ms must be at least 20".into());
    }
    Ok(NodeOptions {
        id: args.id.clone(),
        peers,
        data_dir: args.data_dir.clone(),
        read_mode,
        election_timeout_ms: args.election_timeout_ms,
        heartbeat_ms: args
            .heartbeat_ms
            .unwrap_or(args.election_timeout_ms / 10)
            .max(1),
        lease_margin_ms: args
            .clock_drift_margin_ms
            .unwrap_or(args.election_timeout_ms / 4),
        request_timeout_ms: args.request_timeout_ms.max(1),
        snapshot_every_entries: args.snapshot_every.max(1),
        join: args.join,
        bugs,
    })
}

/// The raft-kv binary: parses `args` (program name first) and runs the node until
/// SIGTERM/SIGINT. Returns the process exit code: 0 after a clean shutdown, 1 when the
/// node failed, 2 for bad arguments.
pub fn main_with_args(args: Vec<String>) -> u8 {
    let args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let opts = match options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("raft-kv: {e}");
            return 2;
        }
    };
    match run(opts, &args.listen) {
        Ok(()) => 0,
        Err(e) => {
            log!(args.id, "fatal: {e}");
            1
        }
    }
}

fn run(opts: NodeOptions, listen: &str) -> Result<(), String> {
    install_signal_handlers()?;
    let listen_addr = listen
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("--listen {listen:?} is not a HOST:PORT address"))?;
    let raft_addr = opts.peers.get(&opts.id).cloned().unwrap_or_default();
    if raft_addr.is_empty() {
        return Err(format!(
            "--join needs this node's own address in --peers ({}=HOST:PORT)",
            opts.id
        ));
    }
    let api_addr = advertised_api_addr(&listen_addr, &raft_addr);
    let shutdown = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::sync_channel::<Event>(EVENT_QUEUE_LEN);
    let peer_tx = tx.clone();
    let inbound: transport::Inbound = Arc::new(move |env| {
        // A saturated node loop drops peer messages, as a lossy network would.
        if let Err(TrySendError::Disconnected(_)) = peer_tx.try_send(Event::Peer(env)) {}
    });
    let transport =
        transport::Transport::start(&opts.id, &raft_addr, &api_addr, inbound, shutdown.clone())
            .map_err(|e| format!("cannot listen for peers on {raft_addr}: {e}"))?;
    let status = Arc::new(Mutex::new(serde_json::Value::Null));
    let node =
        Node::open(opts.clone(), transport.clone(), status.clone()).map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(listen_addr)
        .map_err(|e| format!("cannot listen for clients on {listen_addr}: {e}"))?;
    let api = Arc::new(api::Api::new(
        tx,
        status,
        transport,
        opts.request_timeout_ms,
        opts.bugs.stale_read,
    ));
    let handler = Arc::new(move |req| api.handle(req));
    let sd = shutdown.clone();
    std::thread::Builder::new()
        .name("dt-http-accept".into())
        .spawn(move || http::serve(listener, handler, sd))
        .map_err(|e| format!("cannot start the HTTP server thread: {e}"))?;
    log!(
        opts.id,
        "listening: clients on {listen_addr} (advertised {api_addr}), peers on {raft_addr}; bugs: {:?}",
        opts.bugs.enabled()
    );
    // The signal handler sets SHUTDOWN; mirror it into the flag the threads watch.
    let watcher_sd = shutdown.clone();
    std::thread::Builder::new()
        .name("dt-signal".into())
        .spawn(move || loop {
            if SHUTDOWN.load(Ordering::SeqCst) {
                watcher_sd.store(true, Ordering::SeqCst);
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    let result = node.run(rx, &shutdown).map_err(|e| e.to_string());
    shutdown.store(true, Ordering::SeqCst);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_reject_malformed_lists() {
        let p = parse_peers("n1=127.0.0.1:7001, n2=127.0.0.1:7002").unwrap();
        assert_eq!(p.get("n2").map(String::as_str), Some("127.0.0.1:7002"));
        assert!(parse_peers("n1").is_err());
        assert!(parse_peers("n1=a:1,n1=b:2").is_err());
        assert!(parse_peers("").is_err());
    }

    #[test]
    fn unspecified_listen_address_advertises_the_raft_host() {
        let any: SocketAddr = "0.0.0.0:8000".parse().unwrap();
        assert_eq!(
            advertised_api_addr(&any, "10.77.0.11:7000"),
            "10.77.0.11:8000"
        );
        let one: SocketAddr = "127.0.0.1:8001".parse().unwrap();
        assert_eq!(
            advertised_api_addr(&one, "127.0.0.1:7001"),
            "127.0.0.1:8001"
        );
    }

    fn args(extra: &[&str]) -> Args {
        let mut v = vec!["raft-kv", "--id", "n1", "--peers", "n1=127.0.0.1:1"];
        v.extend(["--data-dir", "/nonexistent", "--listen", "127.0.0.1:0"]);
        v.extend(extra);
        Args::try_parse_from(v).expect("valid syntax")
    }

    #[test]
    fn lease_no_margin_implies_lease_reads_and_refuses_read_index() {
        let opts = options(&args(&["--bug", "lease-no-margin"])).unwrap();
        assert_eq!(opts.read_mode, ReadMode::Lease);
        assert!(options(&args(&[
            "--bug",
            "lease-no-margin",
            "--read-mode",
            "read-index"
        ]))
        .is_err());
        assert_eq!(options(&args(&[])).unwrap().read_mode, ReadMode::ReadIndex);
    }

    #[test]
    fn unknown_bugs_and_read_modes_are_refused_with_the_valid_names() {
        let mut b = Bugs::default();
        let err = b.enable("stale-reads").unwrap_err();
        assert!(err.contains("stale-read, lease-no-margin"), "{err}");
        let code = main_with_args(
            [
                "raft-kv",
                "--id",
                "n1",
                "--peers",
                "n1=127.0.0.1:1",
                "--data-dir",
                "/nonexistent",
                "--listen",
                "127.0.0.1:0",
                "--read-mode",
                "fast",
            ]
            .map(String::from)
            .to_vec(),
        );
        assert_eq!(code, 2);
    }
}
