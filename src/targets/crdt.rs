//! `crdt`: the bundled CRDT store (`vendored-targets/crdt-store`): replicas that take
//! reads and writes locally and converge by anti-entropy. Each client talks to its own
//! replica; the add/remove replies (tags, observed tags) go into the history unchanged so
//! the `crdt-convergence` checker can apply exact observed-remove semantics.

use super::daemon::{bundled_target_spec, ManagedDaemon};
use super::http::{get_json, send_json};
use super::{Target, TargetOptions};
use crate::nodes::Remote;
use async_trait::async_trait;
use distest_nemeses::TargetControl;
use distest_workloads::{Client, Completion, OpRequest};
use serde_json::{json, Value};
use std::net::SocketAddr;
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
        // Replicas gossip over their client API, so peers and clients share one port.
        let (addrs, spec) =
            bundled_target_spec(&nodes, "crdt-store", PORT, PORT, &opts.bugs, Vec::new());
        Crdt {
            daemon: ManagedDaemon::new(nodes, "crdt-store", Ok(()), spec).with_lazyfs(opts.lazyfs),
            addrs,
            opts,
        }
    }
}

impl TargetControl for Crdt {
    super::daemon::delegate_process_faults!();

    /// Every replica takes writes: there is no primary.
    fn primaries(&self) -> Vec<String> {
        Vec::new()
    }
    fn has_primaries(&self) -> bool {
        false
    }
}

#[async_trait]
impl Target for Crdt {
    super::daemon::delegate_daemon_lifecycle!();

    fn name(&self) -> &'static str {
        "crdt"
    }
    fn setup(&self) -> anyhow::Result<()> {
        self.daemon.install_self_everywhere("crdt-store")?;
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
    async fn client(&self, node: usize, workload: &str) -> anyhow::Result<Box<dyn Client>> {
        let http = super::http::client(self.opts.op_timeout)?;
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

#[async_trait]
impl Client for CrdtClient {
    async fn invoke(&mut self, op: &OpRequest) -> Completion {
        let url = |suffix: &str| format!("{}/{}/{OBJECT}{suffix}", self.base, self.kind);
        let result = match (self.kind, op.f.as_str()) {
            ("counter", "add") => send_json(
                self.http
                    .post(url("/add"))
                    .json(&json!({"delta": op.value})),
                &op.value,
            )
            .await
            .map(|_| op.value.clone()),
            ("counter", "read") => send_json(self.http.get(url("")), &op.value)
                .await
                .map(|b| b.get("value").cloned().unwrap_or(Value::Null)),
            ("set", "add") => {
                send_json(
                    self.http
                        .post(url("/add"))
                        .json(&json!({"element": op.value})),
                    &op.value,
                )
                .await
            }
            ("set", "remove") => {
                send_json(
                    self.http
                        .post(url("/remove"))
                        .json(&json!({"element": op.value})),
                    &op.value,
                )
                .await
            }
            ("set", "read") => send_json(self.http.get(url("")), &op.value)
                .await
                .map(|b| b.get("elements").cloned().unwrap_or_else(|| json!([]))),
            ("register", "write") => send_json(
                self.http.put(url("")).json(&json!({"value": op.value})),
                &op.value,
            )
            .await
            .map(|_| op.value.clone()),
            ("register", "read") => send_json(self.http.get(url("")), &op.value)
                .await
                .map(|b| b.get("value").cloned().unwrap_or(Value::Null)),
            (kind, f) => {
                return Completion::fail(
                    op.value.clone(),
                    format!("the crdt target's {kind} has no op {f:?}"),
                )
            }
        };
        match result {
            Ok(v) => Completion::ok(v),
            Err(c) => c,
        }
    }
}
