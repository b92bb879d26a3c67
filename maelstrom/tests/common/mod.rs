//! Test fixtures: routers on loopback with their peers behind cutting relays (a
//! simulated partition), and a raw client.
#![allow(dead_code)]

use distest_checkers::net::{self, Journal};
use distest_maelstrom::router::{control, Config, Router};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/maelstrom");

/// A UDP relay to `target` that drops everything while cut.
pub struct Relay {
    pub addr: SocketAddr,
    pub cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    pub fn new(target: SocketAddr) -> Relay {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Room for a burst, like the routers' own sockets.
        socket2::SockRef::from(&socket)
            .set_recv_buffer_size(4 << 20)
            .unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (cut.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !s.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    if !c.load(Ordering::Relaxed) {
                        let _ = socket.send_to(&buf[..n], target);
                    }
                }
            }
        });
        Relay { addr, cut, stop }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Routers for `n` nodes on loopback, each peer reached through a relay; removes its
/// directory and stops everything when dropped (also on panic).
pub struct Cluster {
    pub dir: PathBuf,
    pub routers: Vec<Option<Router>>,
    pub relays: Vec<Relay>,
}

impl Cluster {
    pub fn new(
        tag: &str,
        n: usize,
        program: &str,
        args: Vec<String>,
        env: Vec<(String, String)>,
    ) -> Cluster {
        Cluster::with(tag, n, program, args, env, |_| {})
    }

    pub fn with(
        tag: &str,
        n: usize,
        program: &str,
        args: Vec<String>,
        env: Vec<(String, String)>,
        tweak: impl Fn(&mut Config),
    ) -> Cluster {
        let dir = std::env::temp_dir().join(format!("dt-router-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ids: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
        let routers: Vec<Router> = ids
            .iter()
            .map(|id| {
                let mut cfg = Config {
                    node: id.clone(),
                    node_ids: ids.clone(),
                    peers: Default::default(),
                    services_at: Some("n1".into()),
                    peer_listen: "127.0.0.1:0".parse().unwrap(),
                    client_listen: "127.0.0.1:0".parse().unwrap(),
                    journal: Some(dir.join(format!("{id}.journal.jsonl"))),
                    log: dir.join(format!("{id}.log")),
                    seed: 1,
                    topology: None,
                    program: PathBuf::from(program),
                    args: args.iter().map(|a| a.replace("{node}", id)).collect(),
                    env: env.clone(),
                    init_timeout: Duration::from_secs(10),
                };
                tweak(&mut cfg);
                Router::start(cfg).unwrap()
            })
            .collect();
        let relays: Vec<Relay> = routers.iter().map(|r| Relay::new(r.peer_addr())).collect();
        for r in &routers {
            for (id, relay) in ids.iter().zip(&relays) {
                r.set_peer(id, relay.addr);
            }
        }
        Cluster {
            dir,
            routers: routers.into_iter().map(Some).collect(),
            relays,
        }
    }

    pub fn router(&self, i: usize) -> &Router {
        self.routers[i].as_ref().unwrap()
    }

    pub fn control(&self, i: usize, command: &str) -> Value {
        control::request(
            self.router(i).client_addr(),
            command,
            Duration::from_secs(20),
        )
        .unwrap_or_else(|e| panic!("{command} on n{}: {e}", i + 1))
    }

    pub fn start_all(&self) {
        for i in 0..self.routers.len() {
            self.control(i, "start");
        }
    }

    /// Drops every datagram to node `i` while `cut`.
    pub fn cut(&self, i: usize, cut: bool) {
        self.relays[i].cut.store(cut, Ordering::Relaxed);
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("n{}.log", i + 1))).unwrap_or_default()
    }

    /// Stops every router and reads the journals of all of them.
    pub fn journal(&mut self) -> Journal {
        let mut events = Vec::new();
        for (i, r) in self.routers.iter_mut().enumerate() {
            if let Some(r) = r.take() {
                r.stop();
            }
            let path = self.dir.join(format!("n{}.journal.jsonl", i + 1));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            events.extend(net::parse(&text, &path.display().to_string()).unwrap());
        }
        Journal::new(events)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for r in self.routers.iter_mut() {
            if let Some(r) = r.take() {
                r.stop();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A raw client: sends messages from `id` and reads the answers.
pub struct RawClient {
    pub id: String,
    pub stream: TcpStream,
    pub reader: BufReader<TcpStream>,
    pub next: u64,
}

impl RawClient {
    pub fn connect(addr: SocketAddr, id: &str) -> RawClient {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        writeln!(stream, "{}", json!({"client": id})).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        RawClient {
            id: id.into(),
            stream,
            reader,
            next: 0,
        }
    }

    pub fn rpc(&mut self, dest: &str, mut body: Value) -> Option<Value> {
        self.rpc_within(dest, &mut body, Duration::from_secs(10))
    }

    pub fn rpc_within(&mut self, dest: &str, body: &mut Value, timeout: Duration) -> Option<Value> {
        self.next += 1;
        body["msg_id"] = json!(self.next);
        writeln!(
            self.stream,
            "{}",
            json!({"src": self.id, "dest": dest, "body": body})
        )
        .unwrap();
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            let msg: Value = serde_json::from_str(&line).unwrap();
            if msg["body"]["in_reply_to"] == json!(self.next) {
                return Some(msg["body"].clone());
            }
        }
    }
}

/// Polls `f` until it is true or `within` passed.
pub fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
