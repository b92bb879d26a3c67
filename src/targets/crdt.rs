//! `crdt`: the bundled CRDT store (`vendored-targets/crdt-store`): replicas that take
//! reads and writes locally and converge by anti-entropy. Each client talks to its own
//! replica; the add/remove replies (tags, observed tags) go into the history unchanged so
//! the `crdt-convergence` checker can apply exact observed-remove semantics.

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

pub const PORT: u16 = 8000;
const HEALTHY_DEADLINE: Duration = Duration::from_secs(30);
/// The one object every workload works on.
const OBJECT: &str = "distest";

pub struct Crdt {
    daemon: ManagedDaemon,
    addrs: Vec<SocketAddr>,
    opts: TargetOptions,
}

impl Crdt {
    pub fn new(nodes: Vec<Arc<dyn Remote>>, opts: TargetOptions) -> Crdt {
        let peers = nodes
            .iter()
            .map(|n| format!("{}={}:{PORT}", n.name(), n.address()))
            .collect::<Vec<_>>()
            .join(",");
        let addrs: Vec<SocketAddr> = nodes.iter().map(|n| SocketAddr::new(n.address(), PORT)).collect();
        let ids: Vec<String> = nodes.iter().map(|n| n.name().to_string()).collect();
        let bugs = opts.bugs.clone();
        let listen: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        let spec = move |i: usize, p: &NodePaths| {
            let mut spec = DaemonSpec::new(
                p.bin_dir.join("crdt-store").display().to_string(),
                p.pid_file.clone(),
                p.log_file.clone(),
            );
            spec.args = vec![
                "--id".into(),
                ids[i].clone(),
                "--peers".into(),
                peers.clone(),
                "--listen".into(),
                listen[i].clone(),
                "--data-dir".into(),
                p.data.display().to_string(),
            ];
            for bug in &bugs {
                spec.args.push("--bug".into());
                spec.args.push(bug.clone());
            }
            spec
        };
        Crdt {
            daemon: ManagedDaemon::new(nodes, "crdt-store", Ok(()), Box::new(spec)),
            addrs,
            opts,
        }
    }
}

impl TargetControl for Crdt {
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
    /// Every replica takes writes: there is no primary.
    fn primaries(&self) -> Vec<String> {
        Vec::new()
    }
    fn clock_support(&self, node: &str) -> ClockSupport {
        self.daemon.clock_support(node)
    }
}

#[async_trait]
impl Target for Crdt {
    fn name(&self) -> &'static str {
        "crdt"
    }
    fn node_names(&self) -> Vec<String> {
        self.daemon.node_names()
    }
    fn setup(&self) -> anyhow::Result<()> {
        for i in 0..self.daemon.nodes.len() {
            self.daemon.install_self_as(i, "crdt-store")?;
        }
        self.daemon.start_all()?;
        let start = Instant::now();
        while start.elapsed() < HEALTHY_DEADLINE {
            let up = self
                .addrs
                .iter()
                .filter(|a| get_json(**a, "/status", Duration::from_millis(500)).is_some())
                .count();
            if up == self.addrs.len() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        anyhow::bail!(
            "crdt-store did not answer on every node within {} s; see the node logs in the run directory",
            HEALTHY_DEADLINE.as_secs()
        )
    }
    fn teardown(&self, wipe: bool) -> anyhow::Result<()> {
        self.daemon.stop_all(wipe)
    }
    fn collect_logs(&self, node: usize, dest: &Path) -> anyhow::Result<Vec<PathBuf>> {
        self.daemon.collect_logs(node, dest)
    }
    async fn client(&self, node: usize, workload: &str) -> anyhow::Result<Box<dyn Client>> {
        let http = reqwest::Client::builder()
            .timeout(self.opts.op_timeout.max(Duration::from_millis(100)))
            .connect_timeout(Duration::from_secs(1))
            .build()?;
        let kind = match workload {
            "or-set" => "set",
            "lww-register" => "register",
            _ => "counter",
        };
        Ok(Box::new(CrdtClient {
            http,
            base: format!("http://{}", self.addrs[node]),
            kind,
        }))
    }
}

pub struct CrdtClient {
    http: reqwest::Client,
    base: String,
    /// `counter`, `set` or `register`: the path prefix of the object.
    kind: &'static str,
}

impl CrdtClient {
    async fn send(&self, req: reqwest::RequestBuilder, value: &Value) -> Result<Value, Completion> {
        let resp = req.send().await.map_err(|e| transport_error(value, &e))?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.map_err(|e| transport_error(value, &e))?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(error_body(value, status, &body))
        }
    }
}

#[async_trait]
impl Client for CrdtClient {
    async fn invoke(&mut self, op: &OpRequest) -> Completion {
        let url = |suffix: &str| format!("{}/{}/{OBJECT}{suffix}", self.base, self.kind);
        let result = match (self.kind, op.f.as_str()) {
            ("counter", "add") => self
                .send(self.http.post(url("/add")).json(&json!({"delta": op.value})), &op.value)
                .await
                .map(|_| op.value.clone()),
            ("counter", "read") => self
                .send(self.http.get(url("")), &op.value)
                .await
                .map(|b| b.get("value").cloned().unwrap_or(Value::Null)),
            ("set", "add") => self
                .send(self.http.post(url("/add")).json(&json!({"element": op.value})), &op.value)
                .await,
            ("set", "remove") => self
                .send(self.http.post(url("/remove")).json(&json!({"element": op.value})), &op.value)
                .await,
            ("set", "read") => self
                .send(self.http.get(url("")), &op.value)
                .await
                .map(|b| b.get("elements").cloned().unwrap_or_else(|| json!([]))),
            ("register", "write") => self
                .send(self.http.put(url("")).json(&json!({"value": op.value})), &op.value)
                .await
                .map(|_| op.value.clone()),
            ("register", "read") => self
                .send(self.http.get(url("")), &op.value)
                .await
                .map(|b| b.get("value").cloned().unwrap_or(Value::Null)),
            (kind, f) => {
                return Completion::fail(op.value.clone(), format!("the crdt target's {kind} has no op {f:?}"))
            }
        };
        match result {
            Ok(v) => Completion::ok(v),
            Err(c) => c,
        }
    }
}
