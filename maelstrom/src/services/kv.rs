//! The key-value state machine behind `lin-kv`, `seq-kv` and `lww-kv`: Maelstrom's
//! `read`, `write` and `cas` (with `create_if_not_exists`) on JSON keys and values.

use crate::protocol::{
    error_body, KEY_DOES_NOT_EXIST, MALFORMED_REQUEST, NOT_SUPPORTED, PRECONDITION_FAILED,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Keys are any JSON; two keys are the same when their JSON text is (`1` and `"1"` differ,
/// as in Maelstrom).
pub type Key = String;

pub fn key_of(body: &Value) -> Result<Key, Value> {
    match body.get("key") {
        Some(k) => Ok(k.to_string()),
        None => Err(error_body(
            None,
            MALFORMED_REQUEST,
            "the request has no key",
        )),
    }
}

/// What a request does to a map: the reply, and the new map when it changed anything.
pub struct Outcome {
    pub reply: Value,
    pub changed: Option<BTreeMap<Key, Value>>,
}

/// Applies a KV request to `map` without touching it.
pub fn apply(map: &BTreeMap<Key, Value>, body: &Value) -> Outcome {
    let unchanged = |reply| Outcome {
        reply,
        changed: None,
    };
    let key = match key_of(body) {
        Ok(k) => k,
        Err(e) => return unchanged(e),
    };
    let with = |value: &Value, reply: Value| {
        if map.get(&key) == Some(value) {
            return unchanged(reply);
        }
        let mut next = map.clone();
        next.insert(key.clone(), value.clone());
        Outcome {
            reply,
            changed: Some(next),
        }
    };
    match body.get("type").and_then(Value::as_str) {
        Some("read") => unchanged(match map.get(&key) {
            Some(v) => json!({"type": "read_ok", "value": v}),
            None => error_body(None, KEY_DOES_NOT_EXIST, "key does not exist"),
        }),
        Some("write") => {
            let value = body.get("value").cloned().unwrap_or(Value::Null);
            with(&value, json!({"type": "write_ok"}))
        }
        Some("cas") => {
            let (from, to) = (
                body.get("from").cloned().unwrap_or(Value::Null),
                body.get("to").cloned().unwrap_or(Value::Null),
            );
            match map.get(&key) {
                Some(current) if *current == from => with(&to, json!({"type": "cas_ok"})),
                Some(current) => unchanged(error_body(
                    None,
                    PRECONDITION_FAILED,
                    &format!("current value {current} is not {from}"),
                )),
                None if body.get("create_if_not_exists") == Some(&Value::Bool(true)) => {
                    with(&to, json!({"type": "cas_ok"}))
                }
                None => unchanged(error_body(None, KEY_DOES_NOT_EXIST, "key does not exist")),
            }
        }
        other => unchanged(error_body(
            None,
            NOT_SUPPORTED,
            &format!(
                "the kv services do not support requests of type {other:?}; use read, write or cas"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_write_cas_follow_maelstroms_codes() {
        let m = BTreeMap::new();
        let r = apply(&m, &json!({"type": "read", "key": 1}));
        assert_eq!(r.reply["code"], 20);
        let w = apply(&m, &json!({"type": "write", "key": 1, "value": 5}));
        let m = w.changed.unwrap();
        assert_eq!(
            apply(&m, &json!({"type": "read", "key": 1})).reply["value"],
            5
        );
        assert_eq!(
            apply(&m, &json!({"type": "read", "key": "1"})).reply["code"],
            20
        );
        let bad = apply(&m, &json!({"type": "cas", "key": 1, "from": 4, "to": 6}));
        assert_eq!(
            (bad.reply["code"].as_i64(), bad.changed.is_none()),
            (Some(22), true)
        );
        let good = apply(&m, &json!({"type": "cas", "key": 1, "from": 5, "to": 6}));
        assert_eq!(good.changed.unwrap()[&"1".to_string()], 6);
        let missing = apply(&m, &json!({"type": "cas", "key": 2, "from": 0, "to": 1}));
        assert_eq!(missing.reply["code"], 20);
        let created = apply(
            &m,
            &json!({"type": "cas", "key": 2, "from": 0, "to": 1, "create_if_not_exists": true}),
        );
        assert_eq!(created.reply["type"], "cas_ok");
        assert!(
            apply(&m, &json!({"type": "write", "key": 1, "value": 5}))
                .changed
                .is_none(),
            "same value: no change"
        );
        assert_eq!(apply(&m, &json!({"type": "read"})).reply["code"], 12);
        assert_eq!(
            apply(&m, &json!({"type": "delete", "key": 1})).reply["code"],
            10
        );
    }
}
