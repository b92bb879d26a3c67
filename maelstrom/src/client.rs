//! The control node's clients: one [`Client`] per client process, each a Maelstrom client
//! `cN` with its own TCP connection to the router of the node it talks to.
//!
//! A workload op becomes an RPC the way Maelstrom's workloads define it (its
//! `doc/workloads.md`), and the reply becomes the op's completion: the `*_ok` reply gives
//! the value; an `error` reply is `fail` when its code is definite and `info` otherwise;
//! no reply (the orchestrator's timeout) or a lost connection is `info`.

use crate::protocol::{self, is_definite};
use async_trait::async_trait;
use distest_workloads::{Completion, OpRequest};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// The workloads a Maelstrom node can be driven with, and how each speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Echo,
    UniqueIds,
    Broadcast,
    GSet,
    GCounter,
    PnCounter,
    LinKv,
    TxnListAppend,
    TxnRwRegister,
    Kafka,
}

/// Maelstrom's workload names, as `--workload` takes them.
pub const WORKLOADS: &[&str] = &[
    "echo",
    "unique-ids",
    "broadcast",
    "g-set",
    "g-counter",
    "pn-counter",
    "lin-kv",
    "txn-list-append",
    "txn-rw-register",
    "kafka",
];

impl Workload {
    pub fn parse(name: &str) -> Result<Workload, String> {
        Ok(match name {
            "echo" => Workload::Echo,
            "unique-ids" => Workload::UniqueIds,
            "broadcast" => Workload::Broadcast,
            "g-set" => Workload::GSet,
            "g-counter" => Workload::GCounter,
            "pn-counter" => Workload::PnCounter,
            "lin-kv" => Workload::LinKv,
            "txn-list-append" => Workload::TxnListAppend,
            "txn-rw-register" => Workload::TxnRwRegister,
            "kafka" => Workload::Kafka,
            other => {
                return Err(format!(
                    "the maelstrom target runs Maelstrom's workloads, not {other:?}; valid workloads are: {}",
                    WORKLOADS.join(", ")
                ))
            }
        })
    }
}

/// Why an RPC gave no `*_ok` reply.
#[derive(Debug)]
enum RpcError {
    /// The node answered with an error body.
    Error(Value),
    /// The connection broke: the request may or may not have been acted on.
    Lost(String),
}

/// One client process talking to one node through its router.
pub struct Client {
    id: String,
    node: String,
    workload: Workload,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_msg_id: u64,
    kafka: KafkaState,
}

/// A kafka client's consumer: its position (next offset to poll) in each assigned key,
/// and the highest offset it has polled per key (what it may commit).
#[derive(Default)]
struct KafkaState {
    positions: BTreeMap<String, i64>,
    consumed: BTreeMap<String, i64>,
}

/// Polls a final poll makes at most before giving up on reaching the end of the logs.
const FINAL_POLL_ROUNDS: usize = 200;

impl Client {
    /// Connects client `id` (`c7`) to the router of `node` at `addr`.
    pub async fn connect(
        addr: SocketAddr,
        id: &str,
        node: &str,
        workload: &str,
    ) -> std::io::Result<Client> {
        let workload = Workload::parse(workload).map_err(std::io::Error::other)?;
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, mut writer) = stream.into_split();
        writer
            .write_all(format!("{}\n", json!({"client": id})).as_bytes())
            .await?;
        Ok(Client {
            id: id.to_string(),
            node: node.to_string(),
            workload,
            reader: BufReader::new(read),
            writer,
            next_msg_id: 0,
            kafka: KafkaState::default(),
        })
    }

    /// Sends `body` to the node and waits for the reply to it; replies to other requests
    /// (there are none: one request at a time) are skipped.
    async fn rpc(&mut self, mut body: Value) -> Result<Value, RpcError> {
        self.next_msg_id += 1;
        let msg_id = self.next_msg_id;
        body["msg_id"] = json!(msg_id);
        let line = format!("{}\n", protocol::line(&self.id, &self.node, &body));
        self.writer.write_all(line.as_bytes()).await.map_err(|e| {
            RpcError::Lost(format!(
                "could not send to the router of {}: {e}",
                self.node
            ))
        })?;
        let mut text = String::new();
        loop {
            text.clear();
            match self.reader.read_line(&mut text).await {
                Ok(0) => {
                    return Err(RpcError::Lost(format!(
                        "the router of {} closed the connection",
                        self.node
                    )))
                }
                Err(e) => {
                    return Err(RpcError::Lost(format!(
                        "reading from the router of {} failed: {e}",
                        self.node
                    )))
                }
                Ok(_) => {}
            }
            let Ok(message) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            let reply = &message["body"];
            if reply["in_reply_to"].as_u64() != Some(msg_id) {
                continue;
            }
            if reply["type"] == "error" {
                return Err(RpcError::Error(reply.clone()));
            }
            return Ok(reply.clone());
        }
    }

    /// An RPC whose reply must be of type `ok`; a reply of another type is indeterminate.
    async fn call(&mut self, body: Value, ok: &str) -> Result<Value, RpcError> {
        let reply = self.rpc(body).await?;
        if reply["type"] == ok {
            Ok(reply)
        } else {
            Err(RpcError::Lost(format!(
                "{} answered with a {} message where {ok} was expected",
                self.node, reply["type"]
            )))
        }
    }

    async fn kafka(&mut self, op: &OpRequest) -> Result<Value, RpcError> {
        match op.f.as_str() {
            "send" => {
                let (key, msg) = (op.value[0][1].clone(), op.value[0][2].clone());
                let r = self
                    .call(json!({"type": "send", "key": key, "msg": msg}), "send_ok")
                    .await?;
                Ok(json!([["send", key, [r["offset"], msg]]]))
            }
            "poll" if op.value["final"] == true => self.final_poll(&op.value["keys"]).await,
            "poll" => {
                let msgs = self.poll_once().await?;
                Ok(json!([["poll", msgs]]))
            }
            "commit_offsets" => {
                let offsets = json!(self.kafka.consumed);
                if self.kafka.consumed.is_empty() {
                    return Ok(offsets);
                }
                self.call(
                    json!({"type": "commit_offsets", "offsets": offsets}),
                    "commit_offsets_ok",
                )
                .await?;
                Ok(offsets)
            }
            "list_committed_offsets" => {
                let r = self
                    .call(
                        json!({"type": "list_committed_offsets", "keys": op.value}),
                        "list_committed_offsets_ok",
                    )
                    .await?;
                Ok(r["offsets"].clone())
            }
            "assign" => {
                let keys: Vec<String> = op
                    .value
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|k| k.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let new: Vec<&String> = keys
                    .iter()
                    .filter(|k| !self.kafka.positions.contains_key(*k))
                    .collect();
                let committed = if new.is_empty() {
                    Value::Null
                } else {
                    self.call(
                        json!({"type": "list_committed_offsets", "keys": new}),
                        "list_committed_offsets_ok",
                    )
                    .await?["offsets"]
                        .clone()
                };
                self.kafka.positions.retain(|k, _| keys.contains(k));
                self.kafka.consumed.retain(|k, _| keys.contains(k));
                for k in &keys {
                    let start = committed[k].as_i64().map_or(0, |c| c + 1);
                    self.kafka.positions.entry(k.clone()).or_insert(start);
                }
                Ok(op.value.clone())
            }
            other => Err(RpcError::Error(protocol::error_body(
                None,
                protocol::NOT_SUPPORTED,
                &format!("the kafka workload has no op {other:?}"),
            ))),
        }
    }

    /// One poll from the current positions; advances them past what came back.
    async fn poll_once(&mut self) -> Result<Value, RpcError> {
        if self.kafka.positions.is_empty() {
            return Ok(json!({}));
        }
        let r = self
            .call(
                json!({"type": "poll", "offsets": self.kafka.positions}),
                "poll_ok",
            )
            .await?;
        let msgs = r["msgs"].clone();
        if let Some(map) = msgs.as_object() {
            for (k, records) in map {
                let top = records
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r[0].as_i64())
                    .max();
                if let Some(top) = top {
                    self.kafka.positions.insert(k.clone(), top + 1);
                    let c = self.kafka.consumed.entry(k.clone()).or_insert(top);
                    *c = (*c).max(top);
                }
            }
        }
        Ok(msgs)
    }

    /// Reads every key in `keys` from offset 0 until a poll brings nothing new; returns
    /// everything read as one poll.
    async fn final_poll(&mut self, keys: &Value) -> Result<Value, RpcError> {
        self.kafka.positions = keys
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|k| (k.to_string(), 0))
            .collect();
        let mut all: Map<String, Value> = Map::new();
        for _ in 0..FINAL_POLL_ROUNDS {
            let msgs = self.poll_once().await?;
            let mut any = false;
            for (k, records) in msgs.as_object().into_iter().flatten() {
                let Some(records) = records.as_array().filter(|r| !r.is_empty()) else {
                    continue;
                };
                any = true;
                let slot = all.entry(k.clone()).or_insert_with(|| json!([]));
                if let Some(list) = slot.as_array_mut() {
                    list.extend(records.iter().cloned());
                }
            }
            if !any {
                return Ok(json!([["poll", all]]));
            }
        }
        Err(RpcError::Lost(format!(
            "the final poll still got new messages after {FINAL_POLL_ROUNDS} polls"
        )))
    }

    async fn run(&mut self, op: &OpRequest) -> Result<Value, RpcError> {
        use Workload::*;
        let v = &op.value;
        let key = op.key.clone().unwrap_or(Value::Null);
        Ok(match (self.workload, op.f.as_str()) {
            (Kafka, _) => return self.kafka(op).await,
            (Echo, "echo") => self
                .call(json!({"type": "echo", "echo": v}), "echo_ok")
                .await?["echo"]
                .clone(),
            (UniqueIds, "generate") => self
                .call(json!({"type": "generate"}), "generate_ok")
                .await?["id"]
                .clone(),
            (Broadcast, "add") => {
                self.call(json!({"type": "broadcast", "message": v}), "broadcast_ok")
                    .await?;
                v.clone()
            }
            (Broadcast, "read") => {
                self.call(json!({"type": "read"}), "read_ok").await?["messages"].clone()
            }
            (GSet, "add") => {
                self.call(json!({"type": "add", "element": v}), "add_ok")
                    .await?;
                v.clone()
            }
            (GCounter | PnCounter, "add") => {
                self.call(json!({"type": "add", "delta": v}), "add_ok")
                    .await?;
                v.clone()
            }
            (GSet | GCounter | PnCounter, "read") => {
                self.call(json!({"type": "read"}), "read_ok").await?["value"].clone()
            }
            (LinKv, "read") => self
                .call(json!({"type": "read", "key": key}), "read_ok")
                .await?["value"]
                .clone(),
            (LinKv, "write") => {
                self.call(json!({"type": "write", "key": key, "value": v}), "write_ok")
                    .await?;
                v.clone()
            }
            (LinKv, "cas") => {
                self.call(
                    json!({"type": "cas", "key": key, "from": v[0], "to": v[1]}),
                    "cas_ok",
                )
                .await?;
                v.clone()
            }
            (TxnListAppend | TxnRwRegister, "txn") => self
                .call(json!({"type": "txn", "txn": v}), "txn_ok")
                .await?["txn"]
                .clone(),
            (w, f) => {
                return Err(RpcError::Error(protocol::error_body(
                    None,
                    protocol::NOT_SUPPORTED,
                    &format!("the {w:?} workload has no op {f:?}"),
                )))
            }
        })
    }
}

#[async_trait]
impl distest_workloads::Client for Client {
    async fn invoke(&mut self, op: &OpRequest) -> Completion {
        match self.run(op).await {
            Ok(value) => Completion::ok(value),
            Err(RpcError::Error(body)) => {
                let code = body["code"].as_i64().unwrap_or(-1);
                let name = protocol::error_code(code).map_or("custom", |e| e.name);
                let error = json!({"code": code, "name": name, "text": body["text"]});
                // What a failed commit tried to commit, for the kafka checker.
                let value = if op.f == "commit_offsets" {
                    json!(self.kafka.consumed)
                } else {
                    op.value.clone()
                };
                if is_definite(code) {
                    Completion::fail(value, error)
                } else {
                    Completion::info(value, error)
                }
            }
            Err(RpcError::Lost(why)) => Completion::info(op.value.clone(), why),
        }
    }
}
