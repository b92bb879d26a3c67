//! The per-node router: the distest binary (as `maelstrom-router`) running in a node's
//! namespace, owning the node program's stdin and stdout.
//!
//! - Messages the node writes to stdout go to their destination: another node's router
//!   or the services (one UDP datagram each, see [`crate::wire`] for why UDP), or a
//!   client of the control node (over its TCP connection to this router).
//! - Datagrams for this node are written to its stdin in arrival order; datagrams for a
//!   service are answered by the services when this router hosts them.
//! - Nothing is retried or held back: a message that cannot be delivered — the network
//!   dropped it, the node is down, its stdin is full (a paused node), the client is gone —
//!   is dropped, as in Maelstrom, and the journal says why.
//! - A line on stdout that is not a message is rejected with a log line naming the node;
//!   the node's stderr goes to the node's log.
//! - The node program is started, killed, paused and resumed only when the control node
//!   says so ([`control`]); a program that exits on its own stays down until the kill
//!   nemesis starts it again. Every start sends a fresh `init` (and the broadcast
//!   `topology` when configured) and waits for the node's answers.
//!
//! Clients and control commands reach the router over TCP (see [`control`]): a client
//! connection opens with `{"client": "c7"}` and then carries messages both ways; a
//! control connection opens with `{"control": "start"}` (or `kill`, `pause`, `resume`,
//! `status`, `clock`, `flush`) and gets one JSON answer per command line.

pub mod args;
pub mod control;
mod node;
mod stdin;

use crate::journal::{mono_ns, Journal, JournalThread};
use crate::protocol::{self, Head};
use crate::services::{self, Services};
use crate::wire;
use distest_checkers::net::{is_client, NetEventKind};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// The client id the router itself uses for `init` and `topology`.
pub const ROUTER_CLIENT: &str = "c0";
/// Socket buffers: big enough that a burst between two nodes does not overflow them.
const SOCKET_BUFFER_BYTES: usize = 8 << 20;
/// Messages waiting for the node's stdin before further ones are dropped as `stdin-full`.
pub const STDIN_QUEUE: usize = 16_384;

/// Everything a router needs to know.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's id (`n1`).
    pub node: String,
    /// Every node's id in order: `init`'s `node_ids`.
    pub node_ids: Vec<String>,
    /// Where each node's router receives datagrams (may be completed later with
    /// [`Router::set_peer`]).
    pub peers: HashMap<String, SocketAddr>,
    /// The node whose router hosts the services; `None`: no services in this run.
    pub services_at: Option<String>,
    /// UDP address to receive datagrams on.
    pub peer_listen: SocketAddr,
    /// TCP address for clients and control connections.
    pub client_listen: SocketAddr,
    /// The message journal (JSON Lines); `None` records nothing.
    pub journal: Option<PathBuf>,
    /// The node's log: its stderr and the router's own lines.
    pub log: PathBuf,
    /// Seeds the services' random choices.
    pub seed: u64,
    /// The broadcast workload's topology, sent after every `init`.
    pub topology: Option<Value>,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Extra environment for the node program (libfaketime for clock faults).
    pub env: Vec<(String, String)>,
    /// How long the node has to answer `init` (and `topology`).
    pub init_timeout: Duration,
}

/// Appends the router's own lines to the node's log.
pub struct Log {
    node: String,
    file: Mutex<std::fs::File>,
}

impl Log {
    fn open(node: &str, path: &std::path::Path) -> std::io::Result<Log> {
        let file = crate::journal::open_append(path)?;
        Ok(Log {
            node: node.to_string(),
            file: Mutex::new(file),
        })
    }

    pub fn line(&self, text: &str) {
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            f,
            "[distest-router {} t={}ms] {text}",
            self.node,
            mono_ns() / 1_000_000
        );
    }

    /// A handle on the log file for the node program's stderr.
    fn file(&self) -> std::io::Result<std::fs::File> {
        self.file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_clone()
    }
}

/// The state every router thread shares.
pub(crate) struct Shared {
    pub cfg: Config,
    pub socket: UdpSocket,
    pub routes: RwLock<HashMap<String, SocketAddr>>,
    /// client id → its connection, written to by whoever routes a reply to it.
    pub clients: Mutex<HashMap<String, Arc<Mutex<TcpStream>>>>,
    pub node: node::NodeSlot,
    pub services: Option<Mutex<Services>>,
    pub journal: Journal,
    pub log: Log,
    next_id: AtomicU64,
    /// Base of this router's journal ids: `(position in node_ids + 1) << 40`.
    id_base: u64,
    pub stopping: AtomicBool,
    pub garbage: Mutex<Garbage>,
    /// Destinations we already logged a "no route" line for (logged once each).
    unroutable: Mutex<Vec<String>>,
}

/// Lines the node wrote that were not messages.
#[derive(Default, Debug, Clone)]
pub struct Garbage {
    pub count: u64,
    pub first: Option<String>,
}

impl Shared {
    pub fn next_id(&self) -> u64 {
        self.id_base | self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn record(
        &self,
        kind: NetEventKind,
        id: u64,
        at: &str,
        head: &Head<'_>,
        reason: Option<&str>,
    ) {
        self.journal.record(
            kind,
            id,
            at,
            &head.src,
            &head.dest,
            head.body.body_type.as_deref(),
            head.body.msg_id,
            head.body.in_reply_to,
            reason,
        );
    }

    /// Routes one message that entered at this router (from the node, a client or a
    /// service): to a client, over the network, or nowhere. `json` is the message
    /// without its newline; `at` is where it entered (for the journal).
    pub fn route(&self, id: u64, at: &str, json: &[u8], head: &Head<'_>, buf: &mut Vec<u8>) {
        let dest = head.dest.as_ref();
        if is_client(dest) {
            self.record(NetEventKind::Send, id, at, head, None);
            if dest == ROUTER_CLIENT {
                let delivered = self.node.answer(head.body.in_reply_to, json);
                let (kind, reason) = if delivered {
                    (NetEventKind::Deliver, None)
                } else {
                    (NetEventKind::Drop, Some("no-such-client"))
                };
                self.record(kind, id, dest, head, reason);
                return;
            }
            self.to_client(id, dest, json, head);
            return;
        }
        let target = if services::is_service(dest) {
            self.cfg.services_at.as_deref()
        } else {
            Some(dest)
        };
        let addr = target.and_then(|t| {
            self.routes
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(t)
                .copied()
        });
        let Some(addr) = addr else {
            self.record(NetEventKind::Send, id, at, head, None);
            self.record(NetEventKind::Drop, id, at, head, Some("no-route"));
            let mut logged = self.unroutable.lock().unwrap_or_else(|e| e.into_inner());
            if !logged.iter().any(|d| d == dest) {
                logged.push(dest.to_string());
                self.log.line(&format!(
                    "{} sent a message to {dest:?}, which is neither a node of this run ({}), a service ({}) nor a client; dropped (logged once per destination)",
                    head.src,
                    self.cfg.node_ids.join(", "),
                    if self.cfg.services_at.is_some() { services::NAMES.join(", ") } else { "none in this run".into() }
                ));
            }
            return;
        };
        if json.len() > wire::MAX_MESSAGE_BYTES {
            self.record(NetEventKind::Send, id, at, head, None);
            self.record(NetEventKind::Drop, id, at, head, Some("too-large"));
            self.log.line(&format!(
                "a message from {} to {dest} of {} bytes was dropped: messages between nodes travel as one UDP datagram of at most {} bytes",
                head.src,
                json.len(),
                wire::MAX_MESSAGE_BYTES
            ));
            return;
        }
        wire::encode(id, json, buf);
        self.record(NetEventKind::Send, id, at, head, None);
        if let Err(e) = self.socket.send_to(buf, addr) {
            self.record(NetEventKind::Drop, id, at, head, Some("send-error"));
            self.log.line(&format!(
                "sending a message from {} to {dest} ({addr}) failed: {e}",
                head.src
            ));
        }
    }

    /// Hands a message to client `dest` over its connection.
    fn to_client(&self, id: u64, dest: &str, json: &[u8], head: &Head<'_>) {
        let conn = self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(dest)
            .cloned();
        let Some(conn) = conn else {
            self.record(NetEventKind::Drop, id, dest, head, Some("no-such-client"));
            return;
        };
        let mut stream = conn.lock().unwrap_or_else(|e| e.into_inner());
        let written = stream.write_all(json).and_then(|_| stream.write_all(b"\n"));
        drop(stream);
        match written {
            Ok(()) => self.record(NetEventKind::Deliver, id, dest, head, None),
            Err(_) => {
                self.clients
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(dest);
                self.record(NetEventKind::Drop, id, dest, head, Some("client-gone"));
            }
        }
    }

    /// Handles one datagram from the network: a message for this node or a service.
    fn receive(&self, datagram: &[u8], buf: &mut Vec<u8>) {
        let Some((id, json)) = wire::decode(datagram) else {
            return;
        };
        let Ok(head) = protocol::head(json) else {
            self.log
                .line("received a datagram that is not a message; ignored");
            return;
        };
        let dest = head.dest.as_ref();
        if dest == self.cfg.node {
            self.node.deliver(self, id, json, &head);
            return;
        }
        match &self.services {
            Some(svc) if services::is_service(dest) => {
                self.record(NetEventKind::Deliver, id, dest, &head, None);
                let Ok(message) = serde_json::from_slice::<Value>(json) else {
                    return;
                };
                let reply = svc.lock().unwrap_or_else(|e| e.into_inner()).handle(
                    &head.src,
                    dest,
                    &message["body"],
                );
                let line = protocol::line(dest, &head.src, &reply);
                if let Ok(reply_head) = protocol::head(line.as_bytes()) {
                    self.route(self.next_id(), dest, line.as_bytes(), &reply_head, buf);
                }
            }
            _ => {
                self.record(
                    NetEventKind::Drop,
                    id,
                    &self.cfg.node,
                    &head,
                    Some("misrouted"),
                );
            }
        }
    }
}

/// A running router; [`Router::stop`] (or drop) ends it and the node program.
pub struct Router {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
    journal_thread: Option<JournalThread>,
    client_addr: SocketAddr,
    peer_addr: SocketAddr,
}

impl Router {
    /// Binds the sockets and starts the router's threads. The node program is not
    /// started yet: that is the control node's `start`.
    pub fn start(cfg: Config) -> std::io::Result<Router> {
        let log = Log::open(&cfg.node, &cfg.log)?;
        let socket = bind_udp(cfg.peer_listen)?;
        let listener = TcpListener::bind(cfg.client_listen)?;
        let (journal, journal_thread) = Journal::open(cfg.journal.as_deref())?;
        let position = cfg
            .node_ids
            .iter()
            .position(|n| *n == cfg.node)
            .unwrap_or(cfg.node_ids.len());
        let hosts_services = cfg.services_at.as_deref() == Some(cfg.node.as_str());
        let peer_addr = socket.local_addr()?;
        let client_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            routes: RwLock::new(cfg.peers.clone()),
            clients: Mutex::new(HashMap::new()),
            node: node::NodeSlot::default(),
            services: hosts_services.then(|| Mutex::new(Services::new(cfg.seed))),
            journal,
            log,
            next_id: AtomicU64::new(1),
            id_base: (position as u64 + 1) << 40,
            stopping: AtomicBool::new(false),
            garbage: Mutex::new(Garbage::default()),
            unroutable: Mutex::new(Vec::new()),
            socket,
            cfg,
        });
        shared.node.start_spawner()?;
        shared.log.line(&format!(
            "router up: datagrams on {peer_addr}, clients and control on {client_addr}{}",
            if hosts_services {
                ", hosting the services"
            } else {
                ""
            }
        ));
        let mut threads = Vec::new();
        let s = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("dt-router-udp".into())
                .spawn(move || receive_loop(&s))?,
        );
        let s = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("dt-router-tcp".into())
                .spawn(move || control::accept_loop(&s, listener))?,
        );
        Ok(Router {
            shared,
            threads,
            journal_thread: Some(journal_thread),
            client_addr,
            peer_addr,
        })
    }

    /// Where clients and control connections reach this router.
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// Where other routers send this node's datagrams.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// Sets (or changes) where `node`'s router receives datagrams.
    pub fn set_peer(&self, node: &str, addr: SocketAddr) {
        self.shared
            .routes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node.to_string(), addr);
    }

    /// Kills the node program, stops every thread and flushes the journal.
    pub fn stop(mut self) {
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = self
            .shared
            .node
            .kill(&self.shared, "the router is stopping");
        // Wake the accept loop; the UDP loop wakes on its read timeout.
        let _ = TcpStream::connect_timeout(&self.client_addr, Duration::from_secs(1));
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.shared.journal.flush();
        self.shared.log.line("router stopped");
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.stop_threads();
        // The journal thread ends when the last handle (in `shared`) is gone; threads that
        // still hold one (a node's reader) end with the node, so flushing above sufficed.
        drop(self.journal_thread.take());
    }
}

fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // The kernel caps these at net.core.{r,w}mem_max; as root (routers in namespaces run
    // as root) SO_RCVBUFFORCE goes past the cap, so bursts are not lost in our own socket.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    force_recv_buffer(&socket, SOCKET_BUFFER_BYTES);
    socket.bind(&addr.into())?;
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(socket)
}

fn force_recv_buffer(socket: &socket2::Socket, bytes: usize) {
    use std::os::fd::AsRawFd;
    let size = bytes as libc::c_int;
    // SAFETY: setsockopt reads `size` (an int we own) for the duration of the call; it fails
    // harmlessly (EPERM) without CAP_NET_ADMIN.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// How much more CPU weight the threads that carry messages get than the node programs
/// (nice -10: about nine times). The router stands for the network, which a machine
/// busy with node programs (or anything else) does not slow down either: the kernel's
/// own network stack runs ahead of user processes. Needs root (the routers of a run
/// are); without it nothing changes.
const MESSAGE_PATH_NICE: libc::c_int = -10;

/// Raises the calling thread's priority to [`MESSAGE_PATH_NICE`]; called first by every
/// thread that carries messages. The spawner of node programs does not: they inherit
/// its normal priority.
/// Reads the next line into `line` without its `\n` or `\r\n`; false at the end of the
/// stream or on a read error (the peer is gone either way).
pub(crate) fn next_line(reader: &mut impl std::io::BufRead, line: &mut Vec<u8>) -> bool {
    line.clear();
    match reader.read_until(b'\n', line) {
        Ok(0) | Err(_) => return false,
        Ok(_) => {}
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    true
}

pub(crate) fn raise_priority() {
    // SAFETY: setpriority on our own thread id; on Linux `PRIO_PROCESS` with a thread id
    // sets that thread's nice value. Failure (no CAP_SYS_NICE) leaves it as it was.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, MESSAGE_PATH_NICE);
    }
}

fn receive_loop(shared: &Shared) {
    raise_priority();
    let mut datagram = vec![0u8; 65_536];
    let mut out = Vec::with_capacity(65_536);
    while !shared.stopping.load(Ordering::Relaxed) {
        match shared.socket.recv(&mut datagram) {
            Ok(n) => shared.receive(&datagram[..n], &mut out),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            // ICMP errors from earlier sends surface here on some kernels; keep going.
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Runs a router as a process (`maelstrom-router ...`): until SIGTERM or SIGINT, then
/// kills the node program and flushes the journal. Returns the exit code.
pub fn main_with_args(argv: Vec<String>) -> u8 {
    let cfg = match args::parse(&argv[1..]) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("maelstrom-router: {e}");
            return 3;
        }
    };
    // Block the stop signals before any thread exists, so only `sigwait` below sees them.
    let signals = block_stop_signals();
    let router = match Router::start(cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("maelstrom-router: could not start: {e}");
            return 3;
        }
    };
    let mut sig: libc::c_int = 0;
    // SAFETY: `signals` is an initialised set; sigwait writes the signal number into `sig`.
    unsafe {
        libc::sigwait(&signals, &mut sig);
    }
    router.shared.log.line(&format!("stopping on signal {sig}"));
    router.stop();
    0
}

fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: plain libc signal-set manipulation on a set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}
