//! The replicated state machine: a map from string keys to JSON values with get, put,
//! delete, cas, list append and atomic multi-key transactions. Deterministic: every
//! replica applying the same commands in the same order ends in the same state and gives
//! the same answers.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use thiserror::Error;

/// One micro-op of a transaction, as on the wire: `["r", key, null]`, `["w", key, value]`
/// or `["append", key, value]`.
pub type MicroOp = (String, TxnKey, Value);

/// A transaction's key as the client wrote it: a string, or an integer (Elle's
/// list-append and rw-register histories use integer keys). Both name the same key as
/// `GET /kv/{key}` (`7` is key `"7"`); answers echo the key in the client's own form, so
/// a client sees its own op back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TxnKey {
    Name(String),
    Number(i64),
}

impl TxnKey {
    /// The key in the store.
    pub fn name(&self) -> String {
        match self {
            TxnKey::Name(name) => name.clone(),
            TxnKey::Number(n) => n.to_string(),
        }
    }
}

/// A state-changing (or transactional) command; it goes through the Raft log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Command {
    Put {
        key: String,
        value: Value,
    },
    Delete {
        key: String,
    },
    Cas {
        key: String,
        expected: Value,
        new: Value,
    },
    Append {
        key: String,
        element: Value,
    },
    Txn {
        ops: Vec<MicroOp>,
    },
}

/// Why a command was refused. Refusals are deterministic, so every replica refuses alike
/// and the command certainly had no effect.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum KvError {
    #[error("cas failed: the key holds {current}, not the expected value")]
    CasMismatch { current: Value },
    #[error("cannot append to key {key:?}: its value is not a list")]
    NotAList { key: String },
    #[error("bad transaction: {0}")]
    BadTxn(String),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Kv {
    data: BTreeMap<String, Value>,
}

impl Kv {
    /// The value of `key`, `null` when absent.
    pub fn get(&self, key: &str) -> Value {
        self.data.get(key).cloned().unwrap_or(Value::Null)
    }

    /// Applies a command and returns the response body for the client.
    pub fn apply(&mut self, cmd: &Command) -> Result<Value, KvError> {
        match cmd {
            Command::Put { key, value } => {
                self.data.insert(key.clone(), value.clone());
                Ok(json!({"ok": true}))
            }
            Command::Delete { key } => {
                self.data.remove(key);
                Ok(json!({"ok": true}))
            }
            Command::Cas { key, expected, new } => {
                let current = self.get(key);
                if current != *expected {
                    return Err(KvError::CasMismatch { current });
                }
                self.data.insert(key.clone(), new.clone());
                Ok(json!({"ok": true}))
            }
            Command::Append { key, element } => {
                let list = appended(self.data.get(key), key, element)?;
                self.data.insert(key.clone(), list);
                Ok(json!({"ok": true}))
            }
            Command::Txn { ops } => self.apply_txn(ops),
        }
    }

    /// All micro-ops or none: writes go to an overlay that is merged only on success.
    fn apply_txn(&mut self, ops: &[MicroOp]) -> Result<Value, KvError> {
        let (result, overlay) = self.run_txn(ops)?;
        for (k, v) in overlay {
            self.data.insert(k, v);
        }
        Ok(result)
    }

    /// Runs a transaction against the current state without changing it: its answer and
    /// the values it would write.
    fn run_txn(&self, ops: &[MicroOp]) -> Result<(Value, BTreeMap<String, Value>), KvError> {
        let mut overlay: BTreeMap<String, Value> = BTreeMap::new();
        let mut results = Vec::with_capacity(ops.len());
        for (f, client_key, v) in ops {
            let key = &client_key.name();
            let current = overlay.get(key).or_else(|| self.data.get(key));
            match f.as_str() {
                "r" => {
                    let read = current.cloned().unwrap_or(Value::Null);
                    results.push(json!([f, client_key, read]));
                }
                "w" => {
                    overlay.insert(key.clone(), v.clone());
                    results.push(json!([f, client_key, v]));
                }
                "append" => {
                    let list = appended(current, key, v)?;
                    overlay.insert(key.clone(), list);
                    results.push(json!([f, client_key, v]));
                }
                other => {
                    return Err(KvError::BadTxn(format!(
                        "unknown micro-op {other:?}; use \"r\", \"w\" or \"append\""
                    )))
                }
            }
        }
        Ok((json!({ "ops": results }), overlay))
    }

    /// The answer `apply(cmd)` would give now, without applying it (used only by the
    /// `ack-before-commit` bug, which answers before the command commits).
    pub fn preview(&self, cmd: &Command) -> Result<Value, KvError> {
        match cmd {
            Command::Put { .. } | Command::Delete { .. } => Ok(json!({"ok": true})),
            Command::Cas { key, expected, .. } => {
                let current = self.get(key);
                if current == *expected {
                    Ok(json!({"ok": true}))
                } else {
                    Err(KvError::CasMismatch { current })
                }
            }
            Command::Append { key, element } => {
                appended(self.data.get(key), key, element).map(|_| json!({"ok": true}))
            }
            Command::Txn { ops } => self.run_txn(ops).map(|(result, _)| result),
        }
    }

    pub fn to_snapshot(&self) -> String {
        serde_json::to_string(self).expect("a JSON map always serializes")
    }

    pub fn from_snapshot(data: &str) -> Result<Kv, serde_json::Error> {
        if data.is_empty() {
            return Ok(Kv::default());
        }
        serde_json::from_str(data)
    }
}

fn appended(current: Option<&Value>, key: &str, element: &Value) -> Result<Value, KvError> {
    match current {
        None | Some(Value::Null) => Ok(json!([element])),
        Some(Value::Array(items)) => {
            let mut items = items.clone();
            items.push(element.clone());
            Ok(Value::Array(items))
        }
        Some(_) => Err(KvError::NotAList {
            key: key.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(ops: Value) -> Command {
        Command::Txn {
            ops: serde_json::from_value(ops).unwrap(),
        }
    }

    #[test]
    fn cas_succeeds_only_on_the_expected_value_and_reports_the_current_one() {
        let mut kv = Kv::default();
        let cas = |e: Value, n: Value| Command::Cas {
            key: "x".into(),
            expected: e,
            new: n,
        };
        assert!(kv.apply(&cas(Value::Null, json!(1))).is_ok());
        assert_eq!(
            kv.apply(&cas(json!(2), json!(3))),
            Err(KvError::CasMismatch { current: json!(1) })
        );
        assert_eq!(kv.get("x"), json!(1));
    }

    #[test]
    fn append_creates_a_list_and_refuses_non_lists() {
        let mut kv = Kv::default();
        let app = |k: &str| Command::Append {
            key: k.into(),
            element: json!(7),
        };
        kv.apply(&app("l")).unwrap();
        kv.apply(&app("l")).unwrap();
        assert_eq!(kv.get("l"), json!([7, 7]));
        kv.apply(&Command::Put {
            key: "s".into(),
            value: json!("str"),
        })
        .unwrap();
        assert!(matches!(kv.apply(&app("s")), Err(KvError::NotAList { .. })));
    }

    #[test]
    fn txn_reads_its_own_writes_and_is_all_or_nothing() {
        let mut kv = Kv::default();
        let out = kv
            .apply(&txn(json!([
                ["r", "a", null],
                ["append", "a", 1],
                ["r", "a", null],
                ["w", "b", 2]
            ])))
            .unwrap();
        assert_eq!(
            out,
            json!({"ops": [["r", "a", null], ["append", "a", 1], ["r", "a", [1]], ["w", "b", 2]]})
        );
        let bad = txn(json!([["w", "c", 1], ["append", "b", 3]]));
        assert!(kv.apply(&bad).is_err());
        assert_eq!(kv.get("c"), Value::Null, "a failed txn leaves no trace");
    }

    #[test]
    fn txn_integer_keys_name_the_string_key_and_are_echoed_as_sent() {
        let mut kv = Kv::default();
        let out = kv
            .apply(&txn(json!([
                ["append", 3, 1],
                ["r", 3, null],
                ["r", "3", null]
            ])))
            .unwrap();
        assert_eq!(
            out,
            json!({"ops": [["append", 3, 1], ["r", 3, [1]], ["r", "3", [1]]]})
        );
        assert_eq!(kv.get("3"), json!([1]));
        let bad: Result<Vec<MicroOp>, _> = serde_json::from_value(json!([["r", [1], null]]));
        assert!(bad.is_err(), "a key must be a string or an integer");
    }

    #[test]
    fn preview_answers_like_apply_without_changing_state() {
        let mut kv = Kv::default();
        let cmds = [
            Command::Cas {
                key: "a".into(),
                expected: Value::Null,
                new: json!(1),
            },
            txn(json!([["append", "l", 1], ["r", "l", null]])),
            Command::Cas {
                key: "a".into(),
                expected: json!(9),
                new: json!(2),
            },
        ];
        for cmd in &cmds {
            let before = kv.clone();
            let previewed = kv.preview(cmd);
            assert_eq!(kv, before, "preview must not write");
            assert_eq!(previewed, kv.apply(cmd));
        }
    }

    #[test]
    fn snapshot_round_trips() {
        let mut kv = Kv::default();
        kv.apply(&Command::Put {
            key: "k".into(),
            value: json!({"a": [1, 2]}),
        })
        .unwrap();
        assert_eq!(Kv::from_snapshot(&kv.to_snapshot()).unwrap(), kv);
    }
}
