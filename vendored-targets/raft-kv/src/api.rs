//! The client API (HTTP/JSON): routing, request decoding, and forwarding to the leader.
//! A follower forwards a request it cannot serve to the leader it knows, exactly one hop
//! (the forwarded request carries `x-forwarded: 1`; a node receiving one that is not the
//! leader answers `not-leader` instead of forwarding again).

use crate::http::{percent_decode, request, ClientError, Request, Response};
use crate::kv::Command;
use crate::node::{error_body, ClientOp, Event, Reply};
use crate::raft::MembershipChange;
use crate::transport::{lock, Transport};
use serde::Deserialize;
use serde_json::Value;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Api {
    pub events: SyncSender<Event>,
    pub status: Arc<Mutex<Value>>,
    pub transport: Arc<Transport>,
    pub request_timeout_ms: u64,
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
        let request_id = req.headers.get("x-request-id").cloned().unwrap_or_default();
        let mut headers = vec![("x-forwarded", "1")];
        if !request_id.is_empty() {
            headers.push(("x-request-id", request_id.as_str()));
        }
        let timeout = Duration::from_millis(self.request_timeout_ms + 500);
        match request(&addr, &req.method, &req.path, &headers, &req.body, timeout) {
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
}
