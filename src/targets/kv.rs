//! `kv`: the bundled Raft KV store (`vendored-targets/raft-kv`).
//!
//! The distest binary doubles as `raft-kv` (multicall), so installing it is a symlink on
//! local nodes and an upload over SSH. Clients speak raft-kv's HTTP API; its error bodies
//! say whether an op was definitely not applied (`fail`) or may have been (`info`).

use super::daemon::{ManagedDaemon, NodePaths};
use super::http::{error_body, get_json, transport_error};
use super::{Target, TargetOptions};
use crate::nodes::{DaemonSpec, Remote};
use async_trait::async_trait;
use distest_nemeses::{ClockSupport, NodeError, TargetControl};
use distest_workloads::{Client, Completion, OpRequest};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const PEER_PORT: u16 = 7000;
pub const API_PORT: u16 = 8000;
/// How long the cluster may take to elect a leader after start.
const HEALTHY_DEADLINE: Duration = Duration::from_secs(30);

pub struct Kv {
    daemon: ManagedDaemon,
    addrs: Vec<SocketAddr>,
    opts: TargetOptions,
}

impl Kv {
    pub fn new(nodes: Vec<Arc<dyn Remote>>, opts: TargetOptions) -> Kv {
        let peers = nodes
            .iter()
            .map(|n| format!("{}={}:{PEER_PORT}", n.name(), n.address()))
            .collect::<Vec<_>>()
            .join(",");
        let addrs = nodes
            .iter()
            .map(|n| SocketAddr::new(n.address(), API_PORT))
            .collect();
        let ids: Vec<String> = nodes.iter().map(|n| n.name().to_string()).collect();
        let listen: Vec<String> = nodes.iter().map(|n| format!("{}:{API_PORT}", n.address())).collect();
        let bugs = opts.bugs.clone();
        let settings = opts.settings.clone();
        let spec = move |i: usize, p: &NodePaths| {
            let mut spec = DaemonSpec::new(
                p.bin_dir.join("raft-kv").display().to_string(),
                p.pid_file.clone(),
                p.log_file.clone(),
            );
            spec.args = vec![
                "--id".into(),
                ids[i].clone(),
                "--peers".into(),
                peers.clone(),
                "--data-dir".into(),
                p.data.display().to_string(),
                "--listen".into(),
                listen[i].clone(),
            ];
            for bug in &bugs {
                spec.args.push("--bug".into());
                spec.args.push(bug.clone());
            }
            if let Some(mode) = settings.get("read-mode") {
                spec.args.push("--read-mode".into());
                spec.args.push(mode.clone());
            }
            spec
        };
        Kv {
            daemon: ManagedDaemon::new(nodes, "raft-kv", Ok(()), Box::new(spec)),
            addrs,
            opts,
        }
    }

    fn status(&self, i: usize) -> Option<Value> {
        get_json(self.addrs[i], "/status", Duration::from_millis(500))
    }
}

impl TargetControl for Kv {
    fn kill(&self, node: &str) -> Result<(), NodeError> {
        self.daemon.kill(node)
    }
    fn start(&self, node: &str) -> Result<(), NodeError> {
        self.daemon.start(node)
    }
    fn pause(&self, node: &str) -> Result<(), NodeError> {
        self.daemon.pause(node)
    }
    fn resume(&self, node: &str) -> Result<(), NodeError> {
        self.daemon.resume(node)
    }
    /// Nodes that say they lead, as seen from the control node (a partitioned old leader
    /// may still claim it: both are returned, which is what isolate-the-leader wants).
    fn primaries(&self) -> Vec<String> {
        (0..self.addrs.len())
            .filter(|&i| {
                self.status(i)
                    .is_some_and(|s| s.get("role").and_then(Value::as_str) == Some("leader"))
            })
            .map(|i| self.daemon.nodes[i].name().to_string())
            .collect()
    }
    fn clock_support(&self, node: &str) -> ClockSupport {
        self.daemon.clock_support(node)
    }
}

#[async_trait]
impl Target for Kv {
    fn name(&self) -> &'static str {
        "kv"
    }
    fn node_names(&self) -> Vec<String> {
        self.daemon.node_names()
    }
    fn setup(&self) -> anyhow::Result<()> {
        for i in 0..self.daemon.nodes.len() {
            self.daemon.install_self_as(i, "raft-kv")?;
        }
        self.daemon.start_all()?;
        // Healthy = a majority agrees on one leader.
        let start = Instant::now();
        let majority = self.addrs.len() / 2 + 1;
        while start.elapsed() < HEALTHY_DEADLINE {
            let leaders: Vec<String> = (0..self.addrs.len())
                .filter_map(|i| self.status(i))
                .filter_map(|s| s.get("leader").and_then(Value::as_str).map(str::to_string))
                .collect();
            if let Some(l) = leaders.first() {
                if leaders.iter().filter(|x| *x == l).count() >= majority {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        anyhow::bail!(
            "raft-kv did not elect a leader within {} s; see the node logs in the run directory",
            HEALTHY_DEADLINE.as_secs()
        )
    }
    fn teardown(&self, wipe: bool) -> anyhow::Result<()> {
        self.daemon.stop_all(wipe)
    }
    fn collect_logs(&self, node: usize, dest: &Path) -> anyhow::Result<Vec<PathBuf>> {
        self.daemon.collect_logs(node, dest)
    }
    async fn client(&self, node: usize, _workload: &str) -> anyhow::Result<Box<dyn Client>> {
        let http = reqwest::Client::builder()
            .timeout(self.opts.op_timeout.max(Duration::from_millis(100)))
            .connect_timeout(Duration::from_secs(1))
            .pool_max_idle_per_host(1)
            .build()?;
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

impl KvClient {
    async fn send(&self, req: reqwest::RequestBuilder, value: &Value) -> Result<Value, Completion> {
        let resp = req.send().await.map_err(|e| transport_error(value, &e))?;
        let status = resp.status().as_u16();
        let body: Value = match resp.json().await {
            Ok(b) => b,
            // The server answered but the body was cut: the op may have been applied.
            Err(e) => return Err(transport_error(value, &e)),
        };
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(error_body(value, status, &body))
        }
    }
}

#[async_trait]
impl Client for KvClient {
    async fn invoke(&mut self, op: &OpRequest) -> Completion {
        let key = op.key.as_ref().map(key_string).unwrap_or_else(|| "set".to_string());
        let url = |suffix: &str| format!("{}/kv/{}{suffix}", self.base, key);
        let result = match op.f.as_str() {
            "read" if op.key.is_some() => self
                .send(self.http.get(url("")), &op.value)
                .await
                .map(|b| b.get("value").cloned().unwrap_or(Value::Null)),
            "write" => self
                .send(self.http.put(url("")).json(&json!({"value": op.value})), &op.value)
                .await
                .map(|_| op.value.clone()),
            "cas" => self
                .send(
                    self.http
                        .post(url("/cas"))
                        .json(&json!({"expected": op.value[0], "new": op.value[1]})),
                    &op.value,
                )
                .await
                .map(|_| op.value.clone()),
            "txn" => self
                .send(
                    self.http.post(format!("{}/txn", self.base)).json(&json!({"ops": op.value})),
                    &op.value,
                )
                .await
                .map(|b| b.get("ops").cloned().unwrap_or(Value::Null)),
            "add" => self
                .send(self.http.post(url("/append")).json(&json!({"element": op.value})), &op.value)
                .await
                .map(|_| op.value.clone()),
            // The set workload's reads: the whole set, stored as one list value.
            "read" => self.send(self.http.get(url("")), &op.value).await.map(|b| {
                match b.get("value") {
                    Some(Value::Array(a)) => Value::Array(a.clone()),
                    _ => json!([]),
                }
            }),
            other => {
                return Completion::fail(op.value.clone(), format!("the kv target has no op {other:?}"))
            }
        };
        match result {
            Ok(v) => Completion::ok(v),
            Err(c) => c,
        }
    }
}
