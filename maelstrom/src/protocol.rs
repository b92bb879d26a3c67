//! Maelstrom's node protocol (its `doc/protocol.md`): newline-delimited JSON messages
//! `{"src", "dest", "body"}`; a body has a `type`, and RPCs carry `msg_id` and
//! `in_reply_to`. Nodes are `n1`, `n2`, …, clients `c1`, `c2`, …; services have names
//! (`lin-kv`). Errors are bodies of type `error` with a numeric `code`.

use serde::Deserialize;
use serde_json::{json, Value};
use std::borrow::Cow;

/// The routing part of a message, read without touching the rest of the body.
#[derive(Debug, Deserialize)]
pub struct Head<'a> {
    #[serde(borrow)]
    pub src: Cow<'a, str>,
    #[serde(borrow)]
    pub dest: Cow<'a, str>,
    #[serde(borrow)]
    pub body: BodyHead<'a>,
}

/// The fields of a body every message may have.
#[derive(Debug, Deserialize)]
pub struct BodyHead<'a> {
    #[serde(rename = "type", borrow, default)]
    pub body_type: Option<Cow<'a, str>>,
    #[serde(default)]
    pub msg_id: Option<u64>,
    #[serde(default)]
    pub in_reply_to: Option<u64>,
}

/// Reads the routing part of one line a node wrote, or says why it is not a message.
pub fn head(line: &[u8]) -> Result<Head<'_>, String> {
    let text = std::str::from_utf8(line).map_err(|_| "it is not UTF-8".to_string())?;
    let value: Result<Head<'_>, _> = serde_json::from_str(text);
    value.map_err(|e| {
        if serde_json::from_str::<Value>(text).is_ok() {
            format!(
                "it is JSON but not a message with string src and dest and an object body ({e})"
            )
        } else {
            format!("it is not JSON ({e})")
        }
    })
}

/// A message as one line of JSON (without the newline).
pub fn line(src: &str, dest: &str, body: &Value) -> String {
    json!({"src": src, "dest": dest, "body": body}).to_string()
}

/// One of Maelstrom's error codes: its name and whether it is definite (the operation
/// certainly did not happen). Codes of 1000 and above are the node's own and, as
/// Maelstrom says, indefinite.
pub struct ErrorCode {
    pub code: i64,
    pub name: &'static str,
    pub definite: bool,
}

/// Maelstrom's error codes (its protocol.md, "Errors").
pub const ERRORS: &[ErrorCode] = &[
    ErrorCode {
        code: 0,
        name: "timeout",
        definite: false,
    },
    ErrorCode {
        code: 1,
        name: "node-not-found",
        definite: true,
    },
    ErrorCode {
        code: 10,
        name: "not-supported",
        definite: true,
    },
    ErrorCode {
        code: 11,
        name: "temporarily-unavailable",
        definite: true,
    },
    ErrorCode {
        code: 12,
        name: "malformed-request",
        definite: true,
    },
    ErrorCode {
        code: 13,
        name: "crash",
        definite: false,
    },
    ErrorCode {
        code: 14,
        name: "abort",
        definite: true,
    },
    ErrorCode {
        code: 20,
        name: "key-does-not-exist",
        definite: true,
    },
    ErrorCode {
        code: 21,
        name: "key-already-exists",
        definite: true,
    },
    ErrorCode {
        code: 22,
        name: "precondition-failed",
        definite: true,
    },
    ErrorCode {
        code: 30,
        name: "txn-conflict",
        definite: true,
    },
];

pub const TIMEOUT: i64 = 0;
pub const NOT_SUPPORTED: i64 = 10;
pub const MALFORMED_REQUEST: i64 = 12;
pub const KEY_DOES_NOT_EXIST: i64 = 20;
pub const PRECONDITION_FAILED: i64 = 22;

/// The error code's entry; `None` for codes Maelstrom does not define.
pub fn error_code(code: i64) -> Option<&'static ErrorCode> {
    ERRORS.iter().find(|e| e.code == code)
}

/// Whether an error with this code proves the operation did not happen. Unknown codes
/// are indefinite: when in doubt, it may have happened.
pub fn is_definite(code: i64) -> bool {
    error_code(code).is_some_and(|e| e.definite)
}

/// An error body replying to `in_reply_to`.
pub fn error_body(in_reply_to: Option<u64>, code: i64, text: &str) -> Value {
    json!({"type": "error", "in_reply_to": in_reply_to, "code": code, "text": text})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_read_from_messages_and_garbage_says_why() {
        let h = head(
            br#"{"src":"n1","dest":"c3","body":{"type":"read_ok","in_reply_to":4,"value":[1,2]}}"#,
        )
        .unwrap();
        assert_eq!((h.src.as_ref(), h.dest.as_ref()), ("n1", "c3"));
        assert_eq!(h.body.body_type.as_deref(), Some("read_ok"));
        assert_eq!((h.body.msg_id, h.body.in_reply_to), (None, Some(4)));
        assert!(head(b"hello world").unwrap_err().contains("not JSON"));
        assert!(head(br#"{"src":"n1","body":{}}"#)
            .unwrap_err()
            .contains("not a message"));
        assert!(head(b"\xff\xfe").unwrap_err().contains("UTF-8"));
        let escaped = head(br#"{"src":"n\u0031","dest":"n2","body":{}}"#).unwrap();
        assert_eq!(escaped.src, "n1");
    }

    #[test]
    fn definite_codes_are_exactly_maelstroms() {
        let definite: Vec<i64> = ERRORS
            .iter()
            .filter(|e| e.definite)
            .map(|e| e.code)
            .collect();
        assert_eq!(definite, vec![1, 10, 11, 12, 14, 20, 21, 22, 30]);
        assert!(!is_definite(0) && !is_definite(13) && !is_definite(1000) && !is_definite(-1));
    }
}
