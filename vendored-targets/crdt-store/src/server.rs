//! The HTTP API of a replica and its anti-entropy loop.
//!
//! Reads and writes are served from the local replica with no coordination. Every
//! gossip interval the replica pushes its whole state to each peer (`POST /gossip`) and
//! merges the peer's state from the reply (push-pull), so any two connected replicas
//! converge within about one interval once faults stop.

use crate::crdt::State;
use crate::http::{self, Request};
use crate::node::{ApiError, Node};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Most client connections served at once; further ones wait in the accept backlog.
pub const MAX_CONNECTIONS: usize = 256;
/// Deadline for reading a request and writing its response.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest accepted object name.
pub const MAX_NAME_BYTES: usize = 128;

/// A peer replica: its id and `host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub id: String,
    pub addr: String,
}

/// What `/gossip` carries both ways.
#[derive(Serialize, Deserialize)]
pub struct Gossip {
    pub from: String,
    pub state: State,
}

/// The last anti-entropy outcome with one peer, for `/status`.
#[derive(Clone, Debug, Default, Serialize)]
struct PeerStatus {
    ok_rounds: u64,
    failed_rounds: u64,
    last_error: Option<String>,
}

/// A running replica: node, peers and gossip bookkeeping.
pub struct Server {
    node: Arc<Node>,
    peers: Vec<Peer>,
    gossip_interval: Duration,
    peer_status: Mutex<BTreeMap<String, PeerStatus>>,
    started: Instant,
}

impl Server {
    pub fn new(node: Node, peers: Vec<Peer>, gossip_interval: Duration) -> Arc<Server> {
        Arc::new(Server {
            node: Arc::new(node),
            peers,
            gossip_interval,
            peer_status: Mutex::new(BTreeMap::new()),
            started: Instant::now(),
        })
    }

    /// Serves the API on `listener` and gossips with the peers until the task is dropped.
    pub async fn run(self: Arc<Server>, listener: TcpListener) {
        let gossip = tokio::spawn(self.clone().anti_entropy());
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            match listener.accept().await {
                Ok((stream, _)) => {
                    let server = self.clone();
                    tokio::spawn(async move {
                        server.serve(stream).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        gossip.abort();
    }

    async fn serve(self: Arc<Server>, stream: TcpStream) {
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        let exchange = async {
            let (status, body) = match http::read_request(&mut reader).await {
                Ok(req) => match self.clone().route(req).await {
                    Ok(v) => (200, v),
                    Err(e) => (e.status, e.body()),
                },
                Err(e) => (400, ApiError::bad_request(e.to_string()).body()),
            };
            http::write_response(&mut write, status, &body).await
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!("connection ended badly: {e}"),
            Err(_) => tracing::debug!("request not done within {REQUEST_TIMEOUT:?}, dropped"),
        }
    }

    async fn route(self: Arc<Server>, req: Request) -> Result<Value, ApiError> {
        let path = req.path.split('?').next().unwrap_or("");
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let body = || -> Result<Value, ApiError> {
            serde_json::from_slice(&req.body)
                .map_err(|e| ApiError::bad_request(format!("request body is not JSON: {e}")))
        };
        let field = |name: &str| -> Result<Value, ApiError> {
            body()?.get(name).cloned().ok_or_else(|| {
                ApiError::bad_request(format!("request body needs a {name:?} field"))
            })
        };
        let node = self.node.clone();
        match (req.method.as_str(), parts.as_slice()) {
            ("POST", ["counter", name, "add"]) => {
                let name = valid_name(name)?;
                let delta = field("delta")?
                    .as_i64()
                    .ok_or_else(|| ApiError::bad_request("\"delta\" must be an integer"))?;
                blocking(move || node.counter_add(&name, delta)).await
            }
            ("GET", ["counter", name]) => {
                let name = valid_name(name)?;
                blocking(move || Ok(node.counter_get(&name))).await
            }
            ("POST", ["set", name, "add"]) => {
                let (name, element) = (valid_name(name)?, field("element")?);
                blocking(move || node.set_add(&name, element)).await
            }
            ("POST", ["set", name, "remove"]) => {
                let (name, element) = (valid_name(name)?, field("element")?);
                blocking(move || node.set_remove(&name, element)).await
            }
            ("GET", ["set", name]) => {
                let name = valid_name(name)?;
                blocking(move || Ok(node.set_get(&name))).await
            }
            ("PUT", ["register", name]) => {
                let (name, value) = (valid_name(name)?, field("value")?);
                blocking(move || node.register_put(&name, value)).await
            }
            ("GET", ["register", name]) => {
                let name = valid_name(name)?;
                blocking(move || Ok(node.register_get(&name))).await
            }
            ("GET", ["status"]) => Ok(self.status()),
            ("POST", ["gossip"]) => {
                let gossip: Gossip = serde_json::from_slice(&req.body).map_err(|e| {
                    ApiError::bad_request(format!("gossip body is not a replica state: {e}"))
                })?;
                let merger = node.clone();
                blocking(move || merger.merge(&gossip.state)).await?;
                Ok(json!(Gossip {
                    from: node.id.clone(),
                    state: node.snapshot()
                }))
            }
            (_, ["counter", ..] | ["set", ..] | ["register", ..] | ["status"] | ["gossip"]) => {
                Err(ApiError {
                    status: 405,
                    kind: "bad-request",
                    definite: true,
                    message: format!(
                        "{} {path} is not supported; see the crdt-store README for the API",
                        req.method
                    ),
                })
            }
            _ => Err(ApiError::not_found(format!(
                "no such endpoint {path}; see the crdt-store README for the API"
            ))),
        }
    }

    fn status(&self) -> Value {
        let peers = self
            .peer_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        json!({
            "id": self.node.id,
            "peers": self.peers.iter().map(|p| json!({"id": p.id, "addr": p.addr, "gossip": peers.get(&p.id)})).collect::<Vec<_>>(),
            "bugs": format!("{:?}", self.node.bugs),
            "uptime_ms": self.started.elapsed().as_millis() as u64,
            "objects": self.node.counts(),
        })
    }

    /// Push-pull anti-entropy with every peer, every interval, forever.
    async fn anti_entropy(self: Arc<Server>) {
        // A round may not outlive a few intervals, so a dead peer cannot stall the others.
        let timeout = (self.gossip_interval * 5).max(Duration::from_millis(500));
        loop {
            tokio::time::sleep(self.gossip_interval).await;
            let body = json!(Gossip {
                from: self.node.id.clone(),
                state: self.node.snapshot()
            });
            let body = Arc::new(body);
            let rounds: Vec<_> = self
                .peers
                .iter()
                .cloned()
                .map(|peer| {
                    let body = body.clone();
                    let server = self.clone();
                    tokio::spawn(async move {
                        let outcome = server.exchange(&peer, &body, timeout).await;
                        (peer.id, outcome)
                    })
                })
                .collect();
            for round in rounds {
                let Ok((peer, outcome)) = round.await else {
                    continue;
                };
                let mut table = self.peer_status.lock().unwrap_or_else(|p| p.into_inner());
                let status = table.entry(peer).or_default();
                match outcome {
                    Ok(()) => {
                        status.ok_rounds += 1;
                        status.last_error = None;
                    }
                    Err(e) => {
                        status.failed_rounds += 1;
                        status.last_error = Some(e);
                    }
                }
            }
        }
    }

    async fn exchange(&self, peer: &Peer, body: &Value, timeout: Duration) -> Result<(), String> {
        let (status, reply) = http::request(&peer.addr, "POST", "/gossip", Some(body), timeout)
            .await
            .map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("peer answered {status}: {reply}"));
        }
        let gossip: Gossip =
            serde_json::from_value(reply).map_err(|e| format!("bad gossip reply: {e}"))?;
        let node = self.node.clone();
        blocking(move || node.merge(&gossip.state))
            .await
            .map(|_| ())
            .map_err(|e| e.message)
    }
}

/// Runs a node call on the blocking pool: updates fsync while holding the replica's lock,
/// so even reads may wait on the disk and must not stall the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(ApiError {
            status: 500,
            kind: "internal",
            definite: false,
            message: format!("the update task failed ({e}); it may or may not have taken effect"),
        })
    })
}

/// Object names: 1 to [`MAX_NAME_BYTES`] of `[A-Za-z0-9_.-]`.
fn valid_name(name: &str) -> Result<String, ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(name.to_string())
    } else {
        Err(ApiError::bad_request(format!(
            "object name {name:?} must be 1 to {MAX_NAME_BYTES} letters, digits, '_', '-' or '.'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(valid_name("c-1.x_y").is_ok());
        assert!(valid_name("").is_err());
        assert!(valid_name("a b").is_err());
        assert!(valid_name(&"a".repeat(MAX_NAME_BYTES + 1)).is_err());
    }
}
