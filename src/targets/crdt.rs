//! `crdt`: the bundled CRDT store (`vendored-targets/crdt-store`): replicas that take
//! reads and writes locally and converge by anti-entropy. Each client talks to its own
//! replica; the add/remove replies (tags, observed tags) go into the history unchanged so
//! the `crdt-convergence` checker can apply exact observed-remove semantics.

use super::http::{get_json, send_json};
use super::managed::{bundled_target_spec, ManagedDaemon};
use super::registry::TargetEntry;
use super::{Target, TargetOptions};
use crate::nodes::Remote;
use async_trait::async_trait;
use distest_nemeses::TargetControl;
use distest_workloads::{Client, Completion, OpRequest};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub const PORT: u16 = 8000;
/// The one object every workload works on.
const OBJECT: &str = "distest";

/// The registry entry of `crdt`.
pub fn entry() -> TargetEntry {
    TargetEntry::new(
        "crdt",
        "the bundled CRDT store (vendored-targets/crdt-store): replicas converging by anti-entropy",
        |ctx| Ok(Arc::new(Crdt::new(ctx.nodes, ctx.options))),
    )
    .workloads(&["or-set", "pn-counter", "g-counter", "lww-register"])
    .daemons(&["crdt-store"])
    .bugs(crdt_store::crdt::BUG_NAMES)
}

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
    super::managed::delegate_process_faults!();

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
    super::managed::delegate_daemon_lifecycle!();

    fn name(&self) -> &'static str {
        "crdt"
    }
    fn setup(&self) -> anyhow::Result<()> {
        self.daemon.install_self_everywhere("crdt-store")?;
        self.daemon.start_all()?;
        self.daemon.wait_until_healthy(
            "crdt-store did not answer on every node",
            Duration::from_millis(100),
            || {
                self.addrs
                    .iter()
                    .all(|a| get_json(*a, "/status", Duration::from_millis(500)).is_some())
            },
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
