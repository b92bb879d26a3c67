//! `etcd`: etcd 3.4 (Debian's `etcd-server`) through its v3 JSON gateway.
//!
//! Values are stored as JSON text, base64-encoded as the gateway wants. Compare-and-set
//! and transactions go through `/v3/kv/txn`: cas compares the value; list-append and
//! rw-register transactions read their keys, then commit only if no key's mod_revision
//! changed (optimistic concurrency, as Jepsen's etcd test does), so an aborted commit
//! is a definite `fail`.
//!
//! Clock faults cannot reach etcd on local nodes: it is a Go binary, Go reads the clock
//! through the vDSO rather than libc, so libfaketime's LD_PRELOAD has no effect on it.

use super::http::{get_json, transport_error};
use super::managed::{ManagedDaemon, NodePaths};
use super::registry::TargetEntry;
use super::{Target, TargetOptions};
use crate::nodes::{DaemonSpec, Remote};
use async_trait::async_trait;
use distest_nemeses::TargetControl;
use distest_workloads::{Client, Completion, OpRequest};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub const PEER_PORT: u16 = 2380;
pub const CLIENT_PORT: u16 = 2379;
const GO_CLOCK: &str = "etcd is a Go binary: Go reads the clock through the vDSO, not libc, so libfaketime's LD_PRELOAD cannot skew it on local nodes; run clock faults against SSH nodes (system clock) or leave `clock` out of --nemesis";

/// The registry entry of `etcd`.
pub fn entry() -> TargetEntry {
    TargetEntry::new(
        "etcd",
        "etcd 3.4 (Debian's etcd-server) through its v3 JSON gateway",
        |ctx| Ok(Arc::new(Etcd::new(ctx.nodes, ctx.options))),
    )
    .workloads(&["register", "list-append", "rw-register"])
    .packages(&["etcd-server"])
    .daemons(&["etcd"])
}

pub struct Etcd {
    daemon: ManagedDaemon,
    addrs: Vec<SocketAddr>,
    opts: TargetOptions,
}

impl Etcd {
    pub fn new(nodes: Vec<Arc<dyn Remote>>, opts: TargetOptions) -> Etcd {
        let cluster = nodes
            .iter()
            .map(|n| format!("{}=http://{}:{PEER_PORT}", n.name(), n.address()))
            .collect::<Vec<_>>()
            .join(",");
        let addrs: Vec<SocketAddr> = nodes
            .iter()
            .map(|n| SocketAddr::new(n.address(), CLIENT_PORT))
            .collect();
        let names: Vec<String> = nodes.iter().map(|n| n.name().to_string()).collect();
        let ips: Vec<String> = nodes.iter().map(|n| n.address().to_string()).collect();
        let spec = move |i: usize, p: &NodePaths| {
            let mut spec = DaemonSpec::new("etcd", p.pid_file.clone(), p.log_file.clone());
            let ip = &ips[i];
            spec.args = vec![
                "--name".into(),
                names[i].clone(),
                "--data-dir".into(),
                p.data.display().to_string(),
                "--listen-peer-urls".into(),
                format!("http://{ip}:{PEER_PORT}"),
                "--initial-advertise-peer-urls".into(),
                format!("http://{ip}:{PEER_PORT}"),
                "--listen-client-urls".into(),
                format!("http://{ip}:{CLIENT_PORT}"),
                "--advertise-client-urls".into(),
                format!("http://{ip}:{CLIENT_PORT}"),
                "--initial-cluster".into(),
                cluster.clone(),
                "--initial-cluster-state".into(),
                "new".into(),
                "--initial-cluster-token".into(),
                "distest".into(),
            ];
            spec
        };
        Etcd {
            daemon: ManagedDaemon::new(nodes, "etcd", Err(GO_CLOCK.to_string()), Box::new(spec))
                .with_lazyfs(opts.lazyfs),
            addrs,
            opts,
        }
    }
}

impl TargetControl for Etcd {
    super::managed::delegate_process_faults!();

    /// etcd's leader: the member whose id equals the leader id its own status reports.
    fn primaries(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, addr) in self.addrs.iter().enumerate() {
            let body = super::http::post_json_value(
                *addr,
                "/v3/maintenance/status",
                &json!({}),
                Duration::from_millis(500),
            );
            if let Some(s) = body {
                let member = s.pointer("/header/member_id").and_then(Value::as_str);
                let leader = s.get("leader").and_then(Value::as_str);
                if member.is_some() && member == leader {
                    out.push(self.daemon.nodes[i].name().to_string());
                }
            }
        }
        out
    }
}

#[async_trait]
impl Target for Etcd {
    super::managed::delegate_daemon_lifecycle!();

    fn name(&self) -> &'static str {
        "etcd"
    }
    fn setup(&self) -> anyhow::Result<()> {
        self.daemon.start_all()?;
        self.daemon.wait_until_healthy(
            "etcd did not become healthy on every node",
            Duration::from_millis(200),
            || {
                self.addrs.iter().all(|a| {
                    get_json(*a, "/health", Duration::from_millis(500))
                        .is_some_and(|h| h.get("health").and_then(Value::as_str) == Some("true"))
                })
            },
        )
    }
    async fn client(&self, node: usize, _workload: &str) -> anyhow::Result<Box<dyn Client>> {
        let http = super::http::client(self.opts.op_timeout)?;
        Ok(Box::new(EtcdClient {
            http,
            base: format!("http://{}/v3", self.addrs[node]),
        }))
    }
}

pub struct EtcdClient {
    http: reqwest::Client,
    base: String,
}

fn b64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for (i, shift) in [18, 12, 6, 0].iter().enumerate() {
            if i <= chunk.len() {
                out.push(T[(n >> shift & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unb64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => continue,
            _ => return None,
        } as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits & 0xff) as u8);
        }
    }
    Some(out)
}

fn key_b64(key: &Value) -> String {
    match key {
        Value::String(s) => b64(s.as_bytes()),
        other => b64(other.to_string().as_bytes()),
    }
}

fn value_b64(v: &Value) -> String {
    b64(v.to_string().as_bytes())
}

/// Decodes a kv's value back into JSON.
fn decode_value(kv: &Value) -> Value {
    kv.get("value")
        .and_then(Value::as_str)
        .and_then(unb64)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

impl EtcdClient {
    async fn post(&self, path: &str, body: Value, value: &Value) -> Result<Value, Completion> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .map_err(|e| transport_error(value, &e))?;
        let status = resp.status();
        let body: Value = resp.json().await.map_err(|e| transport_error(value, &e))?;
        if status.is_success() {
            Ok(body)
        } else {
            // etcd's gateway errors (no leader, timeouts) do not say whether a write
            // was applied: treat them as unknown, except for reads.
            Err(Completion::info(
                value.clone(),
                json!({"status": status.as_u16(), "body": body}),
            ))
        }
    }

    /// Reads keys, returning each key's current JSON value and mod_revision.
    async fn read_keys(
        &self,
        keys: &[Value],
        value: &Value,
    ) -> Result<BTreeMap<String, (Value, i64)>, Completion> {
        let mut out = BTreeMap::new();
        for k in keys {
            let body = self
                .post("/kv/range", json!({"key": key_b64(k)}), value)
                .await?;
            let current = body
                .get("kvs")
                .and_then(Value::as_array)
                .and_then(|kvs| kvs.first())
                .map(|kv| {
                    let rev = kv
                        .get("mod_revision")
                        .and_then(|r| r.as_str().and_then(|s| s.parse().ok()).or(r.as_i64()))
                        .unwrap_or(0);
                    (decode_value(kv), rev)
                })
                .unwrap_or((Value::Null, 0));
            out.insert(k.to_string(), current);
        }
        Ok(out)
    }

    /// A transaction of micro-ops: read, then commit writes iff nothing changed.
    async fn txn(&self, op: &OpRequest) -> Result<Value, Completion> {
        let mops = op.value.as_array().cloned().unwrap_or_default();
        let mut keys: Vec<Value> = mops.iter().map(|m| m[1].clone()).collect();
        keys.sort_by_key(|k| k.to_string());
        keys.dedup();
        let mut state = self.read_keys(&keys, &op.value).await.map_err(|c| {
            // Nothing was written yet: a failed read is a definite failure.
            Completion::fail(op.value.clone(), c.error.unwrap_or(Value::Null))
        })?;
        let revisions: BTreeMap<String, i64> =
            state.iter().map(|(k, (_, r))| (k.clone(), *r)).collect();
        let mut done = Vec::with_capacity(mops.len());
        let mut written = BTreeMap::new();
        for m in &mops {
            let (f, k) = (m[0].as_str().unwrap_or(""), m[1].to_string());
            let entry = state.entry(k.clone()).or_insert((Value::Null, 0));
            match f {
                "r" => done.push(json!(["r", m[1], entry.0])),
                "append" => {
                    let mut list = entry.0.as_array().cloned().unwrap_or_default();
                    list.push(m[2].clone());
                    entry.0 = Value::Array(list);
                    written.insert(k, (m[1].clone(), entry.0.clone()));
                    done.push(m.clone());
                }
                "w" => {
                    entry.0 = m[2].clone();
                    written.insert(k, (m[1].clone(), entry.0.clone()));
                    done.push(m.clone());
                }
                other => {
                    return Err(Completion::fail(
                        op.value.clone(),
                        format!("unknown micro-op {other:?}"),
                    ))
                }
            }
        }
        if written.is_empty() {
            return Ok(Value::Array(done));
        }
        let compare: Vec<Value> = keys
            .iter()
            .map(|k| {
                json!({"key": key_b64(k), "target": "MOD", "result": "EQUAL",
                       "mod_revision": revisions.get(&k.to_string()).copied().unwrap_or(0).to_string()})
            })
            .collect();
        let success: Vec<Value> = written
            .values()
            .map(|(k, v)| json!({"request_put": {"key": key_b64(k), "value": value_b64(v)}}))
            .collect();
        let body = self
            .post(
                "/kv/txn",
                json!({"compare": compare, "success": success}),
                &op.value,
            )
            .await?;
        if body.get("succeeded").and_then(Value::as_bool) == Some(true) {
            Ok(Value::Array(done))
        } else {
            Err(Completion::fail(op.value.clone(), "txn-conflict"))
        }
    }
}

#[async_trait]
impl Client for EtcdClient {
    async fn invoke(&mut self, op: &OpRequest) -> Completion {
        let key = op.key.clone().unwrap_or(Value::String("set".into()));
        let result = match op.f.as_str() {
            "read" => self
                .post("/kv/range", json!({"key": key_b64(&key)}), &op.value)
                .await
                .map(|b| {
                    b.get("kvs")
                        .and_then(Value::as_array)
                        .and_then(|kvs| kvs.first())
                        .map(decode_value)
                        .unwrap_or(Value::Null)
                })
                .map_err(|c| Completion::fail(op.value.clone(), c.error.unwrap_or(Value::Null))),
            "write" => self
                .post(
                    "/kv/put",
                    json!({"key": key_b64(&key), "value": value_b64(&op.value)}),
                    &op.value,
                )
                .await
                .map(|_| op.value.clone()),
            "cas" => {
                let compare = if op.value[0].is_null() {
                    json!({"key": key_b64(&key), "target": "VERSION", "result": "EQUAL", "version": "0"})
                } else {
                    json!({"key": key_b64(&key), "target": "VALUE", "result": "EQUAL", "value": value_b64(&op.value[0])})
                };
                let body = json!({"compare": [compare],
                    "success": [{"request_put": {"key": key_b64(&key), "value": value_b64(&op.value[1])}}]});
                match self.post("/kv/txn", body, &op.value).await {
                    Ok(b) if b.get("succeeded").and_then(Value::as_bool) == Some(true) => {
                        Ok(op.value.clone())
                    }
                    Ok(_) => Err(Completion::fail(op.value.clone(), "cas-mismatch")),
                    Err(c) => Err(c),
                }
            }
            "txn" => self.txn(op).await,
            other => Err(Completion::fail(
                op.value.clone(),
                format!("the etcd target has no op {other:?}"),
            )),
        };
        match result {
            Ok(v) => Completion::ok(v),
            Err(c) => c,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in ["", "a", "ab", "abc", "abcd", "[1,2,3]", "\"héllo\""] {
            assert_eq!(unb64(&b64(s.as_bytes())).unwrap(), s.as_bytes(), "{s}");
        }
        assert_eq!(b64(b"foo"), "Zm9v");
        assert_eq!(b64(b"fo"), "Zm8=");
    }
}
