//! Peer transport: Raft messages as length-prefixed JSON frames over TCP
//! (`[len: u32 BE][JSON]`). One outbound thread per peer with a bounded queue (a full
//! queue drops the message: Raft tolerates loss, and a slow peer must not stall the
//! leader), reconnecting with capped exponential backoff. Each connection opens with a
//! `Hello` carrying the sender's id and client-API address, which is how a follower learns
//! where to forward client requests.

use crate::raft::{Envelope, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Largest frame accepted (a snapshot of the whole store travels in one frame).
pub const MAX_FRAME_BYTES: usize = 64 << 20;
const QUEUE_LEN: usize = 4096;
const MAX_INBOUND_CONNECTIONS: usize = 64;
const BACKOFF_MIN_MS: u64 = 20;
const BACKOFF_MAX_MS: u64 = 1_000;
const CONNECT_TIMEOUT_MS: u64 = 500;
const WRITE_TIMEOUT_MS: u64 = 2_000;

#[derive(Serialize, Deserialize)]
enum Frame {
    Hello { id: NodeId, api_addr: String },
    Raft(Envelope),
}

pub fn write_frame<W: Write>(w: &mut W, payload: &[u8]) -> std::io::Result<()> {
    w.write_all(&(payload.len() as u32).to_be_bytes())?;
    w.write_all(payload)
}

pub fn read_frame<R: Read>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {MAX_FRAME_BYTES}-byte limit"),
        ));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

/// Where received messages go; it must not block (drop when saturated, as a lossy
/// network would).
pub type Inbound = Arc<dyn Fn(Envelope) + Send + Sync>;

struct Peer {
    addr: Arc<Mutex<String>>,
    queue: SyncSender<Envelope>,
}

/// Sends and receives Raft messages.
pub struct Transport {
    my_id: NodeId,
    my_api_addr: String,
    peers: Mutex<HashMap<NodeId, Peer>>,
    /// Client-API addresses learned from `Hello`s.
    api_addrs: Arc<Mutex<HashMap<NodeId, String>>>,
    shutdown: Arc<AtomicBool>,
}

impl Transport {
    /// Listens for peers on `listen` and delivers their messages to `inbound`.
    pub fn start(
        my_id: &str,
        listen: &str,
        my_api_addr: &str,
        inbound: Inbound,
        shutdown: Arc<AtomicBool>,
    ) -> std::io::Result<Arc<Transport>> {
        let listener = TcpListener::bind(listen)?;
        let t = Arc::new(Transport {
            my_id: my_id.to_string(),
            my_api_addr: my_api_addr.to_string(),
            peers: Mutex::new(HashMap::new()),
            api_addrs: Arc::new(Mutex::new(HashMap::new())),
            shutdown,
        });
        let t2 = t.clone();
        thread::Builder::new()
            .name("dt-raft-accept".into())
            .spawn(move || t2.accept_loop(listener, inbound))?;
        Ok(t)
    }

    /// Where `id` serves its client API, if it has told us.
    pub fn api_addr(&self, id: &str) -> Option<String> {
        lock(&self.api_addrs).get(id).cloned()
    }

    /// Makes sure every member has an outbound queue and the latest address.
    pub fn set_peers(&self, members: &std::collections::BTreeMap<NodeId, String>) {
        let mut peers = lock(&self.peers);
        for (id, addr) in members {
            if *id == self.my_id {
                continue;
            }
            match peers.get(id) {
                Some(p) => *lock(&p.addr) = addr.clone(),
                None => {
                    let peer = self.spawn_peer(id, addr);
                    peers.insert(id.clone(), peer);
                }
            }
        }
    }

    /// Queues a message; drops it when the peer's queue is full or the peer is unknown.
    pub fn send(&self, env: Envelope) {
        let peers = lock(&self.peers);
        if let Some(p) = peers.get(&env.to) {
            match p.queue.try_send(env) {
                Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }

    fn spawn_peer(&self, id: &str, addr: &str) -> Peer {
        let (tx, rx) = mpsc::sync_channel(QUEUE_LEN);
        let addr = Arc::new(Mutex::new(addr.to_string()));
        let hello = serde_json::to_vec(&Frame::Hello {
            id: self.my_id.clone(),
            api_addr: self.my_api_addr.clone(),
        })
        .expect("hello serializes");
        let (addr2, shutdown) = (addr.clone(), self.shutdown.clone());
        let spawned = thread::Builder::new()
            .name(format!("dt-raft-to-{id}"))
            .spawn(move || outbound_loop(rx, addr2, hello, shutdown));
        if let Err(e) = spawned {
            crate::log!(self.my_id, "cannot start the sender thread for {id}: {e}");
        }
        Peer { addr, queue: tx }
    }

    fn accept_loop(self: Arc<Self>, listener: TcpListener, inbound: Inbound) {
        let live = Arc::new(AtomicUsize::new(0));
        while !self.shutdown.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => {
                    if live.load(Ordering::Relaxed) >= MAX_INBOUND_CONNECTIONS {
                        continue; // dropped: the peer reconnects with backoff
                    }
                    live.fetch_add(1, Ordering::Relaxed);
                    let (t, inbound, live2) = (self.clone(), inbound.clone(), live.clone());
                    let spawned =
                        thread::Builder::new()
                            .name("dt-raft-from".into())
                            .spawn(move || {
                                t.read_peer(stream, inbound);
                                live2.fetch_sub(1, Ordering::Relaxed);
                            });
                    if spawned.is_err() {
                        live.fetch_sub(1, Ordering::Relaxed);
                    }
                }
                // Blocking accept; an error (e.g. out of descriptors) backs off.
                Err(_) => thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn read_peer(&self, stream: TcpStream, inbound: Inbound) {
        // A silent peer is dropped after a while; live peers heartbeat far more often.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
        let _ = stream.set_nodelay(true);
        let mut r = BufReader::new(stream);
        let Ok(Frame::Hello { id, api_addr }) = read_frame(&mut r)
            .ok()
            .and_then(|b| serde_json::from_slice::<Frame>(&b).ok())
            .ok_or(())
        else {
            return;
        };
        lock(&self.api_addrs).insert(id.clone(), api_addr);
        while !self.shutdown.load(Ordering::Relaxed) {
            let Ok(bytes) = read_frame(&mut r) else {
                return;
            };
            match serde_json::from_slice::<Frame>(&bytes) {
                Ok(Frame::Raft(env)) if env.from == id && env.to == self.my_id => {
                    inbound(env);
                }
                _ => return, // a confused or hostile peer: hang up
            }
        }
    }
}

fn outbound_loop(
    rx: Receiver<Envelope>,
    addr: Arc<Mutex<String>>,
    hello: Vec<u8>,
    shutdown: Arc<AtomicBool>,
) {
    let mut backoff_ms = BACKOFF_MIN_MS;
    let mut conn: Option<BufWriter<TcpStream>> = None;
    while !shutdown.load(Ordering::Relaxed) {
        let env = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(env) => env,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if conn.is_none() {
            let target = lock(&addr).clone();
            match connect(&target, &hello) {
                Ok(c) => {
                    conn = Some(c);
                    backoff_ms = BACKOFF_MIN_MS;
                }
                Err(_) => {
                    // Messages queued meanwhile are stale by the time we connect: drop them.
                    thread::sleep(Duration::from_millis(backoff_ms));
                    backoff_ms = (backoff_ms * 2).min(BACKOFF_MAX_MS);
                    while rx.try_recv().is_ok() {}
                    continue;
                }
            }
        }
        let w = conn.as_mut().expect("connected above");
        let payload = serde_json::to_vec(&Frame::Raft(env)).expect("messages serialize");
        let mut ok = write_frame(w, &payload).is_ok();
        // Batch whatever else is queued into the same flush (bounded by the queue length).
        for _ in 0..QUEUE_LEN {
            if !ok {
                break;
            }
            let Ok(env) = rx.try_recv() else { break };
            let payload = serde_json::to_vec(&Frame::Raft(env)).expect("messages serialize");
            ok = write_frame(w, &payload).is_ok();
        }
        if !ok || w.flush().is_err() {
            conn = None;
        }
    }
}

fn connect(addr: &str, hello: &[u8]) -> std::io::Result<BufWriter<TcpStream>> {
    let sock = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))?;
    let stream = TcpStream::connect_timeout(&sock, Duration::from_millis(CONNECT_TIMEOUT_MS))?;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(Duration::from_millis(WRITE_TIMEOUT_MS)))?;
    let mut w = BufWriter::with_capacity(64 << 10, stream);
    write_frame(&mut w, hello)?;
    w.flush()?;
    Ok(w)
}

/// Locks a mutex, recovering the data if a thread panicked while holding it (the maps
/// here stay consistent after any single insert).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_frames_are_refused() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").unwrap();
        assert_eq!(read_frame(&mut buf.as_slice()).unwrap(), b"hello");
        let huge = ((MAX_FRAME_BYTES + 1) as u32).to_be_bytes();
        assert!(read_frame(&mut huge.as_slice()).is_err());
    }
}
