//! The client API (HTTP/JSON): routing, request decoding, and forwarding to the leader.
//! A follower forwards a request it cannot serve to the leader it knows, exactly one hop
//! (the forwarded request carries `x-forwarded: 1`; a node receiving one that is not the
//! leader answers `not-leader` instead of forwarding again).

use crate::http::{percent_decode, ClientError, Pool, Request, Response};
use crate::kv::Command;
use crate::node::{error_body, ClientOp, Event, Reply};
use crate::raft::MembershipChange;
use crate::transport::{lock, Transport};
use serde::Deserialize;
use serde_json::Value;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Idle keep-alive connections a follower keeps to each leader for forwarding: about
/// the number of clients one node serves at once (forwards beyond it open and close a
/// connection each, correct but slower).
const MAX_IDLE_FORWARD_CONNS: usize = 64;
/// How long an idle forwarding connection is kept (well below the server's idle timeout).
const FORWARD_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Api {
    events: SyncSender<Event>,
    status: Arc<Mutex<Value>>,
    transport: Arc<Transport>,
    request_timeout_ms: u64,
    /// Connections to the leader, reused by forwarded requests: a fresh connection per
    /// forward costs the leader a TCP handshake and a thread (see `http::serve`).
    forward_pool: Pool,
    /// The `stale-read` bug: the node loop answers reads itself, leader or not.
    local_reads: bool,
}

#[derive(Deserialize)]
struct PutBody {
    value: Value,
}
#[derive(Deserialize)]
struct CasBody {
    #[serde(default)]
    expected: Value,
    new: Value,
}
#[derive(Deserialize)]
struct AppendBody {
    element: Value,
}
#[derive(Deserialize)]
struct TxnBody {
    ops: Vec<crate::kv::MicroOp>,
}
#[derive(Deserialize)]
struct TransferBody {
    to: String,
}

fn json_response(status: u16, body: &Value) -> Response {
    Response {
        status,
        body: body.to_string().into_bytes(),
    }
}

fn bad_request(message: &str) -> Response {
    json_response(400, &error_body("bad-request", true, message))
}

fn parse<T: for<'de> Deserialize<'de>>(req: &Request, shape: &str) -> Result<T, Response> {
    serde_json::from_slice(&req.body)
        .map_err(|e| bad_request(&format!("the body must be {shape}: {e}")))
}

impl Api {
    pub fn new(
        events: SyncSender<Event>,
        status: Arc<Mutex<Value>>,
        transport: Arc<Transport>,
        request_timeout_ms: u64,
        local_reads: bool,
    ) -> Api {
        Api {
            events,
            status,
            transport,
            request_timeout_ms,
            forward_pool: Pool::new(MAX_IDLE_FORWARD_CONNS, FORWARD_IDLE_TIMEOUT),
            local_reads,
        }
    }

    pub fn handle(&self, req: Request) -> Response {
        let path = req.path.split('?').next().unwrap_or("").to_string();
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let op = match (req.method.as_str(), segs.as_slice()) {
            ("GET", ["status"]) => return json_response(200, &lock(&self.status)),
            ("GET", ["kv", key]) => Ok(ClientOp::Get {
                key: percent_decode(key),
            }),
            ("PUT", ["kv", key]) => parse::<PutBody>(&req, r#"{"value": V}"#).map(|b| {
                ClientOp::Write(Command::Put {
                    key: percent_decode(key),
                    value: b.value,
                })
            }),
            ("DELETE", ["kv", key]) => Ok(ClientOp::Write(Command::Delete {
                key: percent_decode(key),
            })),
            ("POST", ["kv", key, "cas"]) => {
                parse::<CasBody>(&req, r#"{"expected": V, "new": V}"#).map(|b| {
                    ClientOp::Write(Command::Cas {
                        key: percent_decode(key),
                        expected: b.expected,
                        new: b.new,
                    })
                })
            }
            ("POST", ["kv", key, "append"]) => {
                parse::<AppendBody>(&req, r#"{"element": V}"#).map(|b| {
                    ClientOp::Write(Command::Append {
                        key: percent_decode(key),
                        element: b.element,
                    })
                })
            }
            ("POST", ["txn"]) => parse::<TxnBody>(&req, r#"{"ops": [[F, K, V], ...]}"#)
                .map(|b| ClientOp::Write(Command::Txn { ops: b.ops })),
            ("POST", ["admin", "transfer-leader"]) => {
                parse::<TransferBody>(&req, r#"{"to": ID}"#).map(|b| ClientOp::Transfer { to: b.to })
            }
            ("POST", ["admin", "members"]) => parse::<MembershipChange>(
                &req,
                r#"{"action": "add", "id": ID, "addr": "HOST:PORT"} or {"action": "remove", "id": ID}"#,
            )
            .map(ClientOp::Members),
            _ => {
                let msg = format!("no route {} {}; see the raft-kv README for the API", req.method, req.path);
                return json_response(404, &error_body("not-found", true, &msg));
            }
        };
        match op {
            Ok(op) => self.dispatch(op, &req),
            Err(resp) => resp,
        }
    }

    fn dispatch(&self, op: ClientOp, req: &Request) -> Response {
        let followed = leader_we_follow(&lock(&self.status), &op, self.local_reads);
        if let Some(leader) = followed {
            return self.forward(Some(leader), req);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        match self.events.try_send(Event::Client(op, tx)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return json_response(
                    503,
                    &error_body(
                        "overloaded",
                        true,
                        "the node's request queue is full; retry later",
                    ),
                )
            }
            Err(TrySendError::Disconnected(_)) => {
                return json_response(
                    503,
                    &error_body("shutting-down", true, "the node is shutting down"),
                )
            }
        }
        // The node answers every request by its own deadline; this bound only guards
        // against a stalled node loop (e.g. a paused process or a hung disk).
        let wait = Duration::from_millis(self.request_timeout_ms + 1_000);
        match rx.recv_timeout(wait) {
            Ok(Reply::Done(status, body)) => json_response(status, &body),
            Ok(Reply::NotLeader { leader }) => self.forward(leader, req),
            Err(_) => json_response(
                504,
                &error_body(
                    "timeout",
                    false,
                    "the node did not answer in time; the request may still take effect",
                ),
            ),
        }
    }

    fn forward(&self, leader: Option<String>, req: &Request) -> Response {
        let Some(leader) = leader else {
            return json_response(
                503,
                &error_body(
                    "no-leader",
                    true,
                    "no leader is known right now; retry shortly",
                ),
            );
        };
        let mut not_leader = error_body(
            "not-leader",
            true,
            &format!("this node is not the leader; the leader is {leader}"),
        );
        not_leader["leader"] = Value::String(leader.clone());
        if req.headers.contains_key("x-forwarded") {
            return json_response(503, &not_leader);
        }
        let Some(addr) = self.transport.api_addr(&leader) else {
            return json_response(503, &not_leader);
        };
        let timeout = Duration::from_millis(self.request_timeout_ms + 500);
        forward_to(&self.forward_pool, &leader, &addr, req, timeout)
    }
}

/// The leader to forward `op` to without asking the node loop, when the node's last
/// published status (`status`, at most one loop round old) says it follows a known leader:
/// saves two thread hand-offs per forwarded request. A stale status is harmless:
/// the node loop's own answer can be just as stale by the time the forward leaves,
/// and a node that is no longer leader answers a forwarded request `not-leader`
/// (definite) instead of forwarding it again. Candidates and leaders, and reads under
/// `stale-read` (`local_reads`), go through the node loop.
fn leader_we_follow(status: &Value, op: &ClientOp, local_reads: bool) -> Option<String> {
    if local_reads && matches!(op, ClientOp::Get { .. }) {
        return None;
    }
    if status.get("role").and_then(Value::as_str) != Some("follower") {
        return None;
    }
    let leader = status.get("leader").and_then(Value::as_str)?;
    let me = status.get("id").and_then(Value::as_str);
    (Some(leader) != me).then(|| leader.to_string())
}

/// Sends `req` to the leader `leader` at `addr` (one hop, marked `x-forwarded`) and
/// passes its answer through. Failures keep the fail/info contract: `definite: true`
/// only when the pool guarantees nothing was sent.
fn forward_to(pool: &Pool, leader: &str, addr: &str, req: &Request, timeout: Duration) -> Response {
    let request_id = req.headers.get("x-request-id").cloned().unwrap_or_default();
    let mut headers = vec![("x-forwarded", "1")];
    if !request_id.is_empty() {
        headers.push(("x-request-id", request_id.as_str()));
    }
    match pool.request(addr, &req.method, &req.path, &headers, &req.body, timeout) {
        Ok(resp) => resp,
        Err(ClientError::NotSent(e)) => json_response(
            503,
            &error_body("forward-failed", true, &format!("could not reach the leader {leader} at {addr}: {e}")),
        ),
        Err(ClientError::NoResponse(e)) => json_response(
            504,
            &error_body("forward-failed", false, &format!("the leader {leader} did not answer the forwarded request: {e}; it may still take effect")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_server::{self, Act};
    use std::collections::HashMap;

    fn put_request() -> Request {
        Request {
            method: "PUT".into(),
            path: "/kv/a".into(),
            headers: HashMap::from([("x-request-id".to_string(), "7".to_string())]),
            body: br#"{"value": 1}"#.to_vec(),
        }
    }

    fn forward(addr: &str) -> (u16, Value) {
        let pool = Pool::new(4, Duration::from_secs(5));
        let resp = forward_to(
            &pool,
            "n1",
            addr,
            &put_request(),
            Duration::from_millis(500),
        );
        (resp.status, serde_json::from_slice(&resp.body).unwrap())
    }

    #[test]
    fn only_a_follower_of_a_known_leader_forwards_without_the_node_loop() {
        let get = ClientOp::Get { key: "a".into() };
        let put = ClientOp::Write(crate::kv::Command::Delete { key: "a".into() });
        let status = |role: &str, leader: Value| serde_json::json!({"id": "n2", "role": role, "leader": leader});
        let follower = status("follower", "n1".into());
        assert_eq!(leader_we_follow(&follower, &put, false), Some("n1".into()));
        assert_eq!(leader_we_follow(&follower, &get, false), Some("n1".into()));
        // stale-read answers reads locally; writes are still forwarded.
        assert_eq!(leader_we_follow(&follower, &get, true), None);
        assert_eq!(leader_we_follow(&follower, &put, true), Some("n1".into()));
        assert_eq!(
            leader_we_follow(&status("follower", Value::Null), &put, false),
            None
        );
        assert_eq!(
            leader_we_follow(&status("candidate", "n1".into()), &put, false),
            None
        );
        assert_eq!(
            leader_we_follow(&status("leader", "n2".into()), &put, false),
            None
        );
        assert_eq!(
            leader_we_follow(&status("follower", "n2".into()), &put, false),
            None
        );
        assert_eq!(leader_we_follow(&Value::Null, &put, false), None);
    }

    #[test]
    fn the_leaders_answer_is_passed_through() {
        let server = test_server::start(|_, _| Act::Answer(409));
        let (status, body) = forward(&server.addr);
        assert_eq!((status, body["path"].as_str()), (409, Some("/kv/a")));
    }

    #[test]
    fn an_unreachable_leader_is_a_definite_forward_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let (status, body) = forward(&addr);
        assert_eq!(status, 503);
        assert_eq!(body["error"], "forward-failed");
        assert_eq!(body["definite"], true);
    }

    #[test]
    fn a_leader_that_read_the_request_and_hung_up_is_an_indefinite_forward_failure() {
        for act in [Act::HangUp, Act::Stall] {
            let server = match act {
                Act::HangUp => test_server::start(|_, _| Act::HangUp),
                _ => test_server::start(|_, _| Act::Stall),
            };
            let (status, body) = forward(&server.addr);
            assert_eq!(status, 504, "{act:?}");
            assert_eq!(body["error"], "forward-failed");
            assert_eq!(body["definite"], false, "{act:?}: it may have been applied");
        }
    }
}
