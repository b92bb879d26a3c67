//! `kv`: the bundled Raft KV store (`vendored-targets/raft-kv`).
//!
//! The distest binary doubles as `raft-kv` (multicall), so installing it is a symlink on
//! local nodes and an upload over SSH. Clients speak raft-kv's HTTP API; its error bodies
//! say whether an op was definitely not applied (`fail`) or may have been (`info`).

use super::http::{get_json, request_status_json, send_json};
use super::managed::{bundled_target_spec, ManagedDaemon};
use super::registry::{Setting, TargetEntry};
use super::{Target, TargetOptions};
use crate::nodes::Remote;
use async_trait::async_trait;
use distest_nemeses::{NodeError, TargetControl};
use distest_workloads::{Client, Completion, OpRequest};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const PEER_PORT: u16 = 7000;
pub const API_PORT: u16 = 8000;
/// How long a membership change may take to commit (through elections and retries).
const MEMBERSHIP_DEADLINE: Duration = Duration::from_secs(20);

/// The registry entry of `kv`.
pub fn entry() -> TargetEntry {
    TargetEntry::new(
        "kv",
        "the bundled Raft KV store (vendored-targets/raft-kv); --bug switches on its documented bugs",
        |ctx| Ok(Arc::new(Kv::new(ctx.nodes, ctx.options))),
    )
    .workloads(&["register", "list-append", "rw-register", "set"])
    .daemons(&["raft-kv"])
    .bugs(raft_kv::node::Bugs::NAMES)
    .setting(Setting::choice(
        "read-mode",
        "how leaders serve reads: a quorum round (read-index, the default) or a lease",
        &["read-index", "lease"],
    ))
}

pub struct Kv {
    daemon: ManagedDaemon,
    addrs: Vec<SocketAddr>,
    opts: TargetOptions,
}

impl Kv {
    pub fn new(nodes: Vec<Arc<dyn Remote>>, opts: TargetOptions) -> Kv {
        let extra = match opts.settings.get("read-mode") {
            Some(mode) => vec!["--read-mode".to_string(), mode.clone()],
            None => Vec::new(),
        };
        let (addrs, spec) =
            bundled_target_spec(&nodes, "raft-kv", PEER_PORT, API_PORT, &opts.bugs, extra);
        Kv {
            daemon: ManagedDaemon::new(nodes, "raft-kv", Ok(()), spec).with_lazyfs(opts.lazyfs),
            addrs,
            opts,
        }
    }

    fn status(&self, i: usize) -> Option<Value> {
        get_json(self.addrs[i], "/status", Duration::from_millis(500))
    }

    fn index_of(&self, node: &str) -> Result<usize, NodeError> {
        self.daemon
            .nodes
            .iter()
            .position(|n| n.name() == node)
            .ok_or_else(|| NodeError::Unsupported(format!("{node} is not a node of this run")))
    }

    /// Asks the cluster for a membership change through any node (followers forward it to
    /// the leader) until it commits. Definite refusals (a change pending, a new leader not
    /// ready, no leader) and lost answers are retried until `MEMBERSHIP_DEADLINE`: a
    /// retried change that had committed is answered "already (not) a member", which
    /// counts as done, so a lost answer never makes the change happen twice.
    fn change_members(&self, node: &str, body: Value) -> Result<(), NodeError> {
        self.index_of(node)?;
        let deadline = Instant::now() + MEMBERSHIP_DEADLINE;
        let mut last = String::from("no node answered");
        while Instant::now() < deadline {
            for addr in &self.addrs {
                let answer = request_status_json(
                    *addr,
                    "POST",
                    "/admin/members",
                    Some(&body),
                    Duration::from_secs(3),
                );
                match answer {
                    Some((200, _)) => return Ok(()),
                    Some((400, b)) => {
                        let message = b["message"].as_str().unwrap_or_default();
                        if message.contains("already a member") || message.contains("not a member")
                        {
                            return Ok(());
                        }
                        return Err(NodeError::Failed {
                            node: node.to_string(),
                            command: format!("POST /admin/members {body}"),
                            status: 400,
                            stderr: message.to_string(),
                        });
                    }
                    Some((status, b)) => last = format!("{status} {b}"),
                    None => last = format!("no answer from {addr}"),
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(NodeError::Unreachable {
            node: node.to_string(),
            message: format!(
                "the membership change {body} did not commit within {} s (last answer: {last})",
                MEMBERSHIP_DEADLINE.as_secs()
            ),
        })
    }
}

impl TargetControl for Kv {
    super::managed::delegate_process_faults!();

    /// Nodes that say they lead, as seen from the control node, the newest term first (a
    /// partitioned old leader may still claim it: both are returned, which is what
    /// isolate-the-leader wants, and `@leader` is the one of the newest term).
    fn primaries(&self) -> Vec<String> {
        let mut leaders: Vec<(u64, String)> = (0..self.addrs.len())
            .filter_map(|i| {
                let s = self.status(i)?;
                (s.get("role").and_then(Value::as_str) == Some("leader")).then(|| {
                    let term = s.get("term").and_then(Value::as_u64).unwrap_or(0);
                    (term, self.daemon.nodes[i].name().to_string())
                })
            })
            .collect();
        leaders.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        leaders.into_iter().map(|(_, name)| name).collect()
    }

    fn has_membership(&self) -> bool {
        true
    }

    /// `POST /admin/members` remove; the node keeps running as a non-member.
    fn remove_member(&self, node: &str) -> Result<(), NodeError> {
        self.change_members(node, json!({"action": "remove", "id": node}))
    }

    fn add_member(&self, node: &str) -> Result<(), NodeError> {
        let i = self.index_of(node)?;
        let addr = SocketAddr::new(self.daemon.nodes[i].address(), PEER_PORT);
        let body = json!({"action": "add", "id": node, "addr": addr.to_string()});
        self.change_members(node, body)
    }
}

#[async_trait]
impl Target for Kv {
    super::managed::delegate_daemon_lifecycle!();

    fn name(&self) -> &'static str {
        "kv"
    }
    fn setup(&self) -> anyhow::Result<()> {
        self.daemon.install_self_everywhere("raft-kv")?;
        self.daemon.start_all()?;
        // Healthy = a majority agrees on one leader.
        let majority = self.addrs.len() / 2 + 1;
        self.daemon.wait_until_healthy(
            "raft-kv did not elect a leader",
            Duration::from_millis(200),
            || {
                let leaders: Vec<String> = (0..self.addrs.len())
                    .filter_map(|i| self.status(i))
                    .filter_map(|s| s.get("leader").and_then(Value::as_str).map(str::to_string))
                    .collect();
                leaders
                    .first()
                    .is_some_and(|l| leaders.iter().filter(|x| *x == l).count() >= majority)
            },
        )
    }
    async fn client(&self, node: usize, _workload: &str) -> anyhow::Result<Box<dyn Client>> {
        let http = super::http::client(self.opts.op_timeout)?;
        Ok(Box::new(KvClient {
            http,
            base: format!("http://{}", self.addrs[node]),
        }))
    }
}

/// One client process's connection to one raft-kv node.
pub struct KvClient {
    http: reqwest::Client,
    base: String,
}

fn key_string(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[async_trait]
impl Client for KvClient {
    async fn invoke(&mut self, op: &OpRequest) -> Completion {
        let key = op
            .key
            .as_ref()
            .map(key_string)
            .unwrap_or_else(|| "set".to_string());
        let url = |suffix: &str| format!("{}/kv/{}{suffix}", self.base, key);
        let result =
            match op.f.as_str() {
                "read" if op.key.is_some() => send_json(self.http.get(url("")), &op.value)
                    .await
                    .map(|b| b.get("value").cloned().unwrap_or(Value::Null)),
                "write" => send_json(
                    self.http.put(url("")).json(&json!({"value": op.value})),
                    &op.value,
                )
                .await
                .map(|_| op.value.clone()),
                "cas" => send_json(
                    self.http
                        .post(url("/cas"))
                        .json(&json!({"expected": op.value[0], "new": op.value[1]})),
                    &op.value,
                )
                .await
                .map(|_| op.value.clone()),
                "txn" => send_json(
                    self.http
                        .post(format!("{}/txn", self.base))
                        .json(&json!({"ops": op.value})),
                    &op.value,
                )
                .await
                .map(|b| b.get("ops").cloned().unwrap_or(Value::Null)),
                "add" => send_json(
                    self.http
                        .post(url("/append"))
                        .json(&json!({"element": op.value})),
                    &op.value,
                )
                .await
                .map(|_| op.value.clone()),
                // The set workload's reads: the whole set, stored as one list value.
                "read" => send_json(self.http.get(url("")), &op.value).await.map(|b| {
                    match b.get("value") {
                        Some(Value::Array(a)) => Value::Array(a.clone()),
                        _ => json!([]),
                    }
                }),
                other => {
                    return Completion::fail(
                        op.value.clone(),
                        format!("the kv target has no op {other:?}"),
                    )
                }
            };
        match result {
            Ok(v) => Completion::ok(v),
            Err(c) => c,
        }
    }
}
