//! One history entry, Jepsen's op map as a Rust type.
//!
//! An op is either an invocation (`type: invoke`) or the completion of one (`ok`, `fail`,
//! `info`). `info` means indeterminate: the op may or may not have taken effect, at any
//! time after its invocation. Checkers must treat it that way; that is the whole reason
//! the type exists.

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// Who performed an op: a client process (an integer) or the nemesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    Client(u64),
    Nemesis,
}

impl Process {
    pub fn is_client(self) -> bool {
        matches!(self, Process::Client(_))
    }
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(p) => write!(f, "{p}"),
            Process::Nemesis => f.write_str("nemesis"),
        }
    }
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(p) => s.serialize_u64(*p),
            Process::Nemesis => s.serialize_str("nemesis"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Process;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer or \"nemesis\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Process, E> {
                Ok(Process::Client(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Process, E> {
                u64::try_from(v)
                    .map(Process::Client)
                    .map_err(|_| E::custom(format!("process {v} is negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Process, E> {
                match v {
                    "nemesis" | ":nemesis" => Ok(Process::Nemesis),
                    other => Err(E::custom(format!(
                        "process {other:?} is neither an integer nor \"nemesis\""
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// The kind of a history entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The op was sent; its effect is not known yet.
    Invoke,
    /// The op definitely happened, with the value given.
    Ok,
    /// The op definitely did not happen.
    Fail,
    /// Indeterminate: the op may have happened, at any time after its invocation.
    Info,
}

impl OpType {
    pub fn as_str(self) -> &'static str {
        match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        }
    }

    pub fn parse(s: &str) -> Option<OpType> {
        match s.trim_start_matches(':') {
            "invoke" => Some(OpType::Invoke),
            "ok" => Some(OpType::Ok),
            "fail" => Some(OpType::Fail),
            "info" => Some(OpType::Info),
            _ => None,
        }
    }

    pub fn is_completion(self) -> bool {
        !matches!(self, OpType::Invoke)
    }
}

impl fmt::Display for OpType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a history. Serialized as one JSON object per line in `history.jsonl`:
/// `{"index", "time", "process", "type", "f", "value", "key"?, "node"?, "error"?}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history, dense from 0.
    #[serde(default)]
    pub index: u64,
    /// Nanoseconds since the run started (the control node's monotonic clock).
    #[serde(default)]
    pub time: u64,
    pub process: Process,
    #[serde(rename = "type")]
    pub kind: OpType,
    /// The function: `read`, `write`, `cas`, `txn`, `add`, `start-partition`, ...
    pub f: String,
    #[serde(default)]
    pub value: Value,
    /// The key for keyed workloads (Jepsen's independent keys); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    /// The node the client talked to, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Why a `fail` or `info` happened, when the client knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

impl Op {
    /// A fresh invocation; index and time are set by whoever appends it to a history.
    pub fn invoke(process: Process, f: impl Into<String>, value: Value) -> Op {
        Op {
            index: 0,
            time: 0,
            process,
            kind: OpType::Invoke,
            f: f.into(),
            value,
            key: None,
            node: None,
            error: None,
        }
    }

    /// The completion of `self` (an invocation) with the given type and value.
    pub fn complete(&self, kind: OpType, value: Value) -> Op {
        debug_assert!(kind.is_completion(), "a completion cannot be an invoke");
        Op {
            kind,
            value,
            ..self.clone()
        }
    }

    pub fn with_key(mut self, key: Value) -> Op {
        self.key = Some(key);
        self
    }

    pub fn with_time(mut self, time_ns: u64) -> Op {
        self.time = time_ns;
        self
    }

    pub fn is_invoke(&self) -> bool {
        self.kind == OpType::Invoke
    }

    pub fn is_client(&self) -> bool {
        self.process.is_client()
    }
}

impl fmt::Display for Op {
    /// Jepsen's compact form: `#12 p3 ok read 5`, then `node=n2` when the node is known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} p{} {} {}",
            self.index, self.process, self.kind, self.f
        )?;
        if let Some(k) = &self.key {
            write!(f, " key={k}")?;
        }
        write!(f, " {}", self.value)?;
        if let Some(n) = &self.node {
            write!(f, " node={n}")?;
        }
        if let Some(e) = &self.error {
            write!(f, " (error: {e})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn op_round_trips_through_json_with_nemesis_process() {
        let op = Op::invoke(Process::Nemesis, "start-partition", json!("majority"));
        let text = serde_json::to_string(&op).unwrap();
        assert!(text.contains("\"process\":\"nemesis\""), "{text}");
        assert!(text.contains("\"type\":\"invoke\""), "{text}");
        let back: Op = serde_json::from_str(&text).unwrap();
        assert_eq!(back, op);
    }

    #[test]
    fn negative_process_is_a_clean_error() {
        let err = serde_json::from_str::<Op>(
            r#"{"index":0,"time":0,"process":-1,"type":"invoke","f":"read","value":null}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("negative"), "{err}");
    }
}
