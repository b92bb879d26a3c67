//! crdt-store: a replicated store of state-based CRDTs bundled with distest.
//!
//! Each replica serves reads and writes of PN-counters, OR-sets and LWW-registers (with
//! hybrid logical clocks) from its own state, with no coordination, persists every
//! acknowledged write (fsync) and exchanges its whole state with every peer every
//! ~100 ms (push-pull anti-entropy). Once faults stop, all replicas converge: strong
//! eventual consistency, which distest's `crdt-convergence` checker verifies. Switchable
//! `--bug`s break convergence the way real implementations do; see `README.md`.
//!
//! Code map: [`crdt`] (pure CRDTs and the HLC), [`node`] (one replica's state and its
//! durable storage), [`server`] (HTTP API and anti-entropy), [`http`] (minimal HTTP/1.1).

pub mod crdt;
pub mod http;
pub mod node;
pub mod server;

use clap::Parser;
use crdt::{Bugs, BUG_NAMES};
use server::{Peer, Server};
use std::path::PathBuf;
use std::time::Duration;

/// Exit code when the arguments are wrong.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the replica could not start or stopped on an error.
pub const EXIT_FAILURE: u8 = 1;

/// Command line of one replica.
#[derive(Parser, Debug)]
#[command(
    name = "crdt-store",
    about = "A replica of a CRDT store with anti-entropy (bundled with distest)"
)]
pub struct Args {
    /// This replica's id; must be unique in the cluster (e.g. n1).
    #[arg(long)]
    pub id: String,
    /// Every replica as ID=HOST:PORT, comma separated; this replica's own entry is skipped.
    #[arg(long, value_delimiter = ',')]
    pub peers: Vec<String>,
    /// Address to serve the HTTP API on, e.g. 10.77.0.11:8000.
    #[arg(long)]
    pub listen: String,
    /// Directory holding this replica's durable state.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Switch on a convergence bug: lww-wall-clock, or-set-no-tombstone-merge, counter-max-merge (repeatable).
    #[arg(long)]
    pub bug: Vec<String>,
    /// Milliseconds between anti-entropy rounds.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub gossip_interval_ms: u64,
    /// Added to the system clock, to skew a replica without libfaketime (testing aid).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub clock_offset_ms: i64,
}

/// Parses `--peers` entries `ID=HOST:PORT`, dropping this replica's own.
pub fn parse_peers(entries: &[String], own_id: &str) -> Result<Vec<Peer>, String> {
    let mut peers = Vec::new();
    for entry in entries.iter().filter(|e| !e.trim().is_empty()) {
        let (id, addr) = entry
            .split_once('=')
            .filter(|(id, addr)| !id.is_empty() && addr.contains(':'))
            .ok_or_else(|| {
                format!("peer {entry:?} is not ID=HOST:PORT (e.g. n2=10.77.0.12:8000)")
            })?;
        if peers.iter().any(|p: &Peer| p.id == id) {
            return Err(format!("peer id {id:?} is listed twice in --peers"));
        }
        if id != own_id {
            peers.push(Peer {
                id: id.to_string(),
                addr: addr.to_string(),
            });
        }
    }
    Ok(peers)
}

/// Runs a replica with `args` (program name first, as from `std::env::args()`) until it
/// is told to stop (SIGINT/SIGTERM); returns the process exit code: 0 after a requested
/// stop, 1 when it could not start, 2 for bad arguments.
pub fn main_with_args(args: Vec<String>) -> u8 {
    let args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { 0 };
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let mut bugs = Bugs::default();
    for name in &args.bug {
        match bugs.enable(name) {
            Some(b) => bugs = b,
            None => {
                eprintln!(
                    "crdt-store: unknown --bug {name:?}; valid bugs are: {}",
                    BUG_NAMES.join(", ")
                );
                return EXIT_USAGE;
            }
        }
    }
    let peers = match parse_peers(&args.peers, &args.id) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("crdt-store: {e}");
            return EXIT_USAGE;
        }
    };
    let node = match node::Node::open(&args.id, &args.data_dir, bugs, args.clock_offset_ms) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("crdt-store: {e}");
            return EXIT_FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("crdt-store: cannot start the async runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(&args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("crdt-store: cannot listen on {}: {e}; is the address assigned here and the port free?", args.listen);
                return EXIT_FAILURE;
            }
        };
        tracing::info!(id = %args.id, listen = %args.listen, peers = peers.len(), ?bugs, "crdt-store replica started");
        let server = Server::new(node, peers, Duration::from_millis(args.gossip_interval_ms));
        tokio::select! {
            _ = server.run(listener) => EXIT_FAILURE,
            _ = stop_signal() => {
                tracing::info!("stop requested, exiting");
                0
            }
        }
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_skip_self() {
        let peers = parse_peers(&["n1=127.0.0.1:1".into(), "n2=127.0.0.1:2".into()], "n1").unwrap();
        assert_eq!(
            peers,
            vec![Peer {
                id: "n2".into(),
                addr: "127.0.0.1:2".into()
            }]
        );
        assert!(parse_peers(&["n2".into()], "n1")
            .unwrap_err()
            .contains("ID=HOST:PORT"));
        assert!(parse_peers(&["n2=a:1".into(), "n2=b:2".into()], "n1")
            .unwrap_err()
            .contains("twice"));
    }

    #[test]
    fn bad_arguments_exit_with_the_usage_code() {
        assert_eq!(main_with_args(vec!["crdt-store".into()]), EXIT_USAGE);
        let args = [
            "crdt-store",
            "--id",
            "n1",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "/nonexistent",
            "--bug",
            "nope",
        ];
        assert_eq!(
            main_with_args(args.iter().map(|s| s.to_string()).collect()),
            EXIT_USAGE
        );
    }
}
