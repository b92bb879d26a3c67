//! The PostgreSQL client: each `txn` op is one database transaction
//! (`BEGIN ISOLATION LEVEL ...`, one statement per micro-op, `COMMIT`).
//!
//! Outcomes follow from one fact: PostgreSQL commits a transaction only when it receives
//! `COMMIT`. So any error before `COMMIT` was sent (a serialization failure, a lost
//! connection, our own timeout) is a definite `fail`; the connection is dropped when its
//! state is unclear, so the server rolls the transaction back. Once `COMMIT` was sent, only
//! an error the server reports as an abort (SQLSTATE class 40 except 40003, class 23) is
//! `fail`; a lost connection or a timeout is `info`, since the commit may have happened.
//! Read-only transactions have no effects, so they are never `info`.
//!
//! Storage is one row per key (`k text primary key, v jsonb`): appends and writes are
//! upserts, so concurrent first appends to a fresh key both land instead of one failing
//! on a duplicate key. Keys are stored as their JSON text, values as JSON, so reads return
//! exactly the values written.

use super::settings::Isolation;
use distest_workloads::{Client, Completion, OpRequest};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::Statement;

/// Longest wait for a TCP connection and the startup handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for the best-effort `ROLLBACK` after a failed statement.
const ROLLBACK_TIMEOUT: Duration = Duration::from_secs(1);
/// Share of the op timeout the statements before `COMMIT` may use: a hang there is still
/// a definite `fail`, while the orchestrator's own timeout would record `info`.
const PRE_COMMIT_SHARE: f64 = 0.6;
/// Kept free at the end of the op timeout so our verdict, not the orchestrator's, counts.
const TIMEOUT_MARGIN: Duration = Duration::from_millis(100);
/// Pause before reconnecting after a failed connect: while a server is down, clients
/// would otherwise record thousands of identical failures per second.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// The tables, one per workload; created by the target's setup.
pub const SCHEMA_SQL: &str = "CREATE TABLE dt_list_append (k text PRIMARY KEY, v jsonb NOT NULL); \
     CREATE TABLE dt_rw_register (k text PRIMARY KEY, v jsonb);";

/// Which workload's table and statements a client uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    ListAppend,
    RwRegister,
}

impl Shape {
    /// The shape for `workload`, or an error naming the supported ones.
    pub fn for_workload(workload: &str) -> anyhow::Result<Shape> {
        match workload {
            "list-append" => Ok(Shape::ListAppend),
            "rw-register" => Ok(Shape::RwRegister),
            other => anyhow::bail!(
                "the postgres target has no client for workload {other:?}; it supports list-append and rw-register"
            ),
        }
    }

    fn read_sql(self) -> &'static str {
        match self {
            Shape::ListAppend => "SELECT v FROM dt_list_append WHERE k = $1",
            Shape::RwRegister => "SELECT v FROM dt_rw_register WHERE k = $1",
        }
    }

    fn write_sql(self) -> &'static str {
        match self {
            Shape::ListAppend => {
                "INSERT INTO dt_list_append AS t (k, v) VALUES ($1, jsonb_build_array($2::jsonb)) \
                 ON CONFLICT (k) DO UPDATE SET v = t.v || jsonb_build_array($2::jsonb)"
            }
            Shape::RwRegister => {
                "INSERT INTO dt_rw_register AS t (k, v) VALUES ($1, $2::jsonb) \
                 ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v"
            }
        }
    }

    /// The micro-op name that writes in this shape.
    fn write_name(self) -> &'static str {
        match self {
            Shape::ListAppend => "append",
            Shape::RwRegister => "w",
        }
    }

    /// What a read of a key without a row returns: the empty list, or nil.
    fn missing(self) -> Value {
        match self {
            Shape::ListAppend => json!([]),
            Shape::RwRegister => Value::Null,
        }
    }
}

/// One parsed micro-op.
#[derive(Clone, Debug, PartialEq)]
enum Mop {
    Read { key: Value },
    Write { key: Value, value: Value },
}

impl Mop {
    fn key(&self) -> &Value {
        match self {
            Mop::Read { key } | Mop::Write { key, .. } => key,
        }
    }
}

/// Parses a txn's micro-ops; the error says which one is malformed.
fn parse_mops(shape: Shape, value: &Value) -> Result<Vec<Mop>, String> {
    let list = value
        .as_array()
        .ok_or_else(|| format!("a txn's value must be a list of micro-ops, got {value}"))?;
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let parts = m.as_array().filter(|p| p.len() == 3);
            let Some(parts) = parts else {
                return Err(format!("micro-op {i} ({m}) is not [f, key, value]"));
            };
            let key = parts[1].clone();
            if !(key.is_string() || key.is_number()) {
                return Err(format!(
                    "micro-op {i} has key {key}; keys must be integers or strings"
                ));
            }
            match parts[0].as_str() {
                Some("r") => Ok(Mop::Read { key }),
                Some(f) if f == shape.write_name() => Ok(Mop::Write {
                    key,
                    value: parts[2].clone(),
                }),
                _ => Err(format!(
                    "micro-op {i} ({m}) is neither \"r\" nor {:?}",
                    shape.write_name()
                )),
            }
        })
        .collect()
}

/// The text a key is stored under: its JSON form, so `1` and `"1"` stay distinct keys.
fn key_text(key: &Value) -> String {
    key.to_string()
}

/// An error as recorded in the history: SQLSTATE and message when the server sent one.
fn error_value(stage: &str, err: &tokio_postgres::Error) -> Value {
    match err.as_db_error() {
        Some(db) => json!({"stage": stage, "sqlstate": db.code().code(), "message": db.message()}),
        None => json!({"stage": stage, "connection": err.to_string()}),
    }
}

/// True when the server reported, with SQLSTATE `code`, that it aborted the transaction
/// at `COMMIT`: then it certainly did not commit. Class 40 is "transaction rollback"
/// (40001 serialization failure, 40P01 deadlock...), except 40003, "statement completion
/// unknown", which says the opposite; class 23 is a deferred constraint violation. No
/// SQLSTATE at all means the connection failed: unknown.
fn commit_sqlstate_is_definite(code: Option<&str>) -> bool {
    match code {
        Some("40003") | None => false,
        Some(code) => code.starts_with("40") || code.starts_with("23"),
    }
}

/// Where a client's transactions go.
#[derive(Clone, Copy, Debug)]
pub struct Endpoints {
    /// The primary: every transaction that writes.
    pub primary: SocketAddr,
    /// A streaming replica for read-only transactions (`--set replica-reads=true`), if any.
    pub reads: Option<SocketAddr>,
}

/// A live connection with its statements, prepared on first use.
struct Conn {
    client: tokio_postgres::Client,
    read: Option<Statement>,
    write: Option<Statement>,
}

/// One client process's connections. Reconnects lazily after a connection was lost or
/// dropped on purpose.
pub struct PgClient {
    endpoints: Endpoints,
    isolation: Isolation,
    shape: Shape,
    op_timeout: Duration,
    primary: Option<Conn>,
    replica: Option<Conn>,
    /// Set after a failed connect: no new attempt before this instant.
    reconnect_after: Option<Instant>,
}

impl PgClient {
    pub fn new(
        endpoints: Endpoints,
        isolation: Isolation,
        shape: Shape,
        op_timeout: Duration,
    ) -> PgClient {
        PgClient {
            endpoints,
            isolation,
            shape,
            op_timeout,
            primary: None,
            replica: None,
            reconnect_after: None,
        }
    }

    /// Connects to `addr` as the trusted `postgres` user.
    async fn connect(addr: SocketAddr) -> Result<Conn, tokio_postgres::Error> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(addr.ip().to_string())
            .port(addr.port())
            .user("postgres")
            .dbname("postgres")
            .application_name("distest")
            .connect_timeout(CONNECT_TIMEOUT);
        let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
        // The connection task ends when the client is dropped or the socket closes.
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("postgres connection to {addr} ended: {e}");
            }
        });
        Ok(Conn {
            client,
            read: None,
            write: None,
        })
    }

    /// Runs one transaction; see the module doc for how outcomes are decided.
    async fn txn(&mut self, value: &Value) -> Completion {
        let mops = match parse_mops(self.shape, value) {
            Ok(m) => m,
            Err(why) => {
                return Completion::fail(value.clone(), json!({"stage": "parse", "message": why}))
            }
        };
        let read_only = mops.iter().all(|m| matches!(m, Mop::Read { .. }));
        let use_replica = read_only && self.endpoints.reads.is_some();
        let started = Instant::now();
        let pre_commit_deadline = started + self.op_timeout.mul_f64(PRE_COMMIT_SHARE);
        let commit_deadline = started + self.op_timeout.saturating_sub(TIMEOUT_MARGIN);
        let (slot, addr, isolation) = if use_replica {
            // A hot standby refuses SERIALIZABLE; its snapshots are repeatable reads.
            let level = match self.isolation {
                Isolation::Serializable => Isolation::RepeatableRead,
                other => other,
            };
            (
                &mut self.replica,
                self.endpoints.reads.unwrap_or(self.endpoints.primary),
                level,
            )
        } else {
            (&mut self.primary, self.endpoints.primary, self.isolation)
        };
        if slot.as_ref().is_some_and(|c| c.client.is_closed()) {
            *slot = None;
        }
        if slot.is_none() {
            if let Some(after) = self.reconnect_after.take() {
                tokio::time::sleep_until(after.min(pre_commit_deadline).into()).await;
            }
            let budget = pre_commit_deadline.saturating_duration_since(Instant::now());
            let failure = match tokio::time::timeout(budget, Self::connect(addr)).await {
                Ok(Ok(conn)) => {
                    *slot = Some(conn);
                    None
                }
                Ok(Err(e)) => Some(error_value("connect", &e)),
                Err(_) => Some(json!({"stage": "connect", "message": "timeout"})),
            };
            if let Some(error) = failure {
                self.reconnect_after = Some(Instant::now() + RECONNECT_BACKOFF);
                return Completion::fail(value.clone(), error);
            }
        }
        let Some(conn) = slot.as_mut() else {
            return Completion::fail(
                value.clone(),
                json!({"stage": "connect", "message": "no connection"}),
            );
        };
        let shape = self.shape;
        let budget = pre_commit_deadline.saturating_duration_since(Instant::now());
        let body =
            tokio::time::timeout(budget, run_statements(conn, shape, isolation, &mops)).await;
        let results = match body {
            Ok(Ok(results)) => results,
            Ok(Err(e)) => {
                // The server never saw COMMIT: the transaction did not happen. Roll back so
                // the connection can be reused; drop it when that is not possible.
                let healthy = e.as_db_error().is_some()
                    && matches!(
                        tokio::time::timeout(
                            ROLLBACK_TIMEOUT,
                            conn.client.batch_execute("ROLLBACK")
                        )
                        .await,
                        Ok(Ok(()))
                    );
                if !healthy {
                    *slot = None;
                }
                return Completion::fail(value.clone(), error_value("statement", &e));
            }
            Err(_) => {
                // The statement is stuck (a lock wait, a paused server). Ask the server to
                // cancel it, so it releases its locks now rather than when it notices the
                // dropped connection; dropping the connection aborts the transaction.
                let token = conn.client.cancel_token();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        CONNECT_TIMEOUT,
                        token.cancel_query(tokio_postgres::NoTls),
                    )
                    .await;
                });
                *slot = None;
                return Completion::fail(
                    value.clone(),
                    json!({"stage": "statement", "message": "timeout before COMMIT was sent"}),
                );
            }
        };
        let budget = commit_deadline.saturating_duration_since(Instant::now());
        let outcome = match tokio::time::timeout(budget, conn.client.batch_execute("COMMIT")).await
        {
            Ok(Ok(())) => return Completion::ok(Value::Array(results)),
            Ok(Err(e)) if commit_sqlstate_is_definite(e.code().map(SqlState::code)) => {
                return Completion::fail(value.clone(), error_value("commit", &e))
            }
            Ok(Err(e)) => error_value("commit", &e),
            Err(_) => json!({"stage": "commit", "message": "timeout after COMMIT was sent"}),
        };
        *slot = None;
        if read_only {
            // Whether or not it committed, a transaction that only read changed nothing.
            Completion::fail(value.clone(), outcome)
        } else {
            Completion::info(value.clone(), outcome)
        }
    }
}

/// `BEGIN`, then one statement per micro-op; returns the completed micro-ops.
async fn run_statements(
    conn: &mut Conn,
    shape: Shape,
    isolation: Isolation,
    mops: &[Mop],
) -> Result<Vec<Value>, tokio_postgres::Error> {
    conn.client
        .batch_execute(isolation.begin_statement())
        .await?;
    let mut done = Vec::with_capacity(mops.len());
    for mop in mops {
        let key = key_text(mop.key());
        match mop {
            Mop::Read { key: k } => {
                if conn.read.is_none() {
                    conn.read = Some(conn.client.prepare(shape.read_sql()).await?);
                }
                let stmt = conn.read.as_ref().expect("prepared above");
                let row = conn.client.query_opt(stmt, &[&key]).await?;
                let read = match row {
                    Some(row) => row.try_get::<_, Option<Value>>(0)?.unwrap_or(Value::Null),
                    None => shape.missing(),
                };
                done.push(json!(["r", k, read]));
            }
            Mop::Write { key: k, value } => {
                if conn.write.is_none() {
                    conn.write = Some(conn.client.prepare(shape.write_sql()).await?);
                }
                let stmt = conn.write.as_ref().expect("prepared above");
                conn.client.execute(stmt, &[&key, value]).await?;
                done.push(json!([shape.write_name(), k, value]));
            }
        }
    }
    Ok(done)
}

#[async_trait::async_trait]
impl Client for PgClient {
    async fn invoke(&mut self, op: &OpRequest) -> Completion {
        match op.f.as_str() {
            "txn" => self.txn(&op.value).await,
            other => Completion::fail(
                op.value.clone(),
                format!("the postgres target has no op {other:?}; it runs txn ops (list-append, rw-register)"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_ops_parse_per_shape() {
        let v = json!([["r", 1, null], ["append", 1, 5], ["r", "k", null]]);
        assert_eq!(
            parse_mops(Shape::ListAppend, &v).unwrap(),
            vec![
                Mop::Read { key: json!(1) },
                Mop::Write {
                    key: json!(1),
                    value: json!(5)
                },
                Mop::Read { key: json!("k") },
            ]
        );
        // An append is not a write in an rw-register history, and vice versa.
        assert!(parse_mops(Shape::RwRegister, &v).is_err());
        assert!(parse_mops(Shape::ListAppend, &json!([["w", 1, 2]])).is_err());
        assert!(parse_mops(Shape::RwRegister, &json!([["w", 1, 2]])).is_ok());
    }

    #[test]
    fn malformed_micro_ops_are_refused_not_panicked_on() {
        for bad in [
            json!(null),
            json!({"r": 1}),
            json!([["r", 1]]),
            json!([["r", [1], null]]),
            json!([["r", null, null]]),
            json!([[1, 1, null]]),
            json!(["r"]),
        ] {
            assert!(parse_mops(Shape::ListAppend, &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_of_different_json_types_stay_distinct() {
        assert_ne!(key_text(&json!(1)), key_text(&json!("1")));
        assert_eq!(key_text(&json!(12)), "12");
    }

    #[test]
    fn only_server_reported_aborts_at_commit_are_definite() {
        for definite in ["40001", "40P01", "40002", "23505"] {
            assert!(commit_sqlstate_is_definite(Some(definite)), "{definite}");
        }
        for unknown in [
            None,
            Some("40003"),
            Some("57P01"),
            Some("08006"),
            Some("XX000"),
        ] {
            assert!(!commit_sqlstate_is_definite(unknown), "{unknown:?}");
        }
    }

    #[test]
    fn missing_rows_read_as_empty_list_or_nil() {
        assert_eq!(Shape::ListAppend.missing(), json!([]));
        assert_eq!(Shape::RwRegister.missing(), Value::Null);
    }

    #[test]
    fn only_listed_workloads_have_clients() {
        assert_eq!(
            Shape::for_workload("list-append").unwrap(),
            Shape::ListAppend
        );
        assert_eq!(
            Shape::for_workload("rw-register").unwrap(),
            Shape::RwRegister
        );
        let err = Shape::for_workload("set").unwrap_err().to_string();
        assert!(err.contains("list-append and rw-register"), "{err}");
    }
}
