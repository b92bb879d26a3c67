//! `kv`: a map from keys to string values with `get`, `put` and `append`.
//!
//! The checker partitions a kv history by key (each key is an independent register of
//! strings, and linearizability is compositional), so this model sees one key's ops and
//! its state is that key's value. A key never written reads as the empty string; a get
//! that returns `null` is read as the empty string too (many stores answer a missing key
//! with nothing). `append` concatenates. Values that are not JSON strings are compared by
//! their JSON text (`5` is `"5"`). `read`/`write` are accepted as aliases of `get`/`put`.

use crate::linear::model::{unknown_f, Interner, Model, OpInput};
use serde_json::Value;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// One kv op on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOp {
    Get(Text),
    Put(Text),
    Append(Text),
}

/// Strings up to this many bytes are stored inline in a [`Text`].
const INLINE_BYTES: usize = 22;

/// A string value, as the search keeps it: inline when short (the common case: no
/// allocation, and a copy of 24 bytes per clone), shared beyond. A string of at most
/// [`INLINE_BYTES`] bytes is always inline, but equality and hashing look at the bytes
/// only, so they do not depend on that.
#[derive(Clone)]
pub enum Text {
    Inline { len: u8, bytes: [u8; INLINE_BYTES] },
    Shared(Arc<str>),
}

impl Text {
    fn new(s: &str) -> Text {
        if s.len() <= INLINE_BYTES {
            let mut bytes = [0; INLINE_BYTES];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Text::Inline {
                len: s.len() as u8,
                bytes,
            }
        } else {
            Text::Shared(Arc::from(s))
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Text::Inline { len, bytes } => std::str::from_utf8(&bytes[..*len as usize])
                .expect("inline text is built from a str and cut at its length"),
            Text::Shared(s) => s,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Text::Inline { len, bytes } => &bytes[..*len as usize],
            Text::Shared(s) => s.as_bytes(),
        }
    }

    fn concat(&self, tail: &Text) -> Text {
        let (a, b) = (self.as_str(), tail.as_str());
        if a.len() + b.len() <= INLINE_BYTES {
            let mut bytes = [0; INLINE_BYTES];
            bytes[..a.len()].copy_from_slice(a.as_bytes());
            bytes[a.len()..a.len() + b.len()].copy_from_slice(b.as_bytes());
            return Text::Inline {
                len: (a.len() + b.len()) as u8,
                bytes,
            };
        }
        let mut joined = String::with_capacity(a.len() + b.len());
        joined.push_str(a);
        joined.push_str(b);
        Text::Shared(Arc::from(joined))
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Text {}

impl Hash for Text {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The string map, one key at a time.
#[derive(Clone, Copy, Debug, Default)]
pub struct Kv;

/// The string a JSON value stands for in this model.
fn text_of(value: &Value) -> Text {
    match value {
        Value::Null => Text::new(""),
        Value::String(s) => Text::new(s),
        other => Text::new(&other.to_string()),
    }
}

impl Model for Kv {
    type State = Text;
    type Op = KvOp;
    const KEY_IN_VALUE: bool = true;
    const INTERNS_VALUES: bool = false;

    fn init(&self) -> Text {
        Text::new("")
    }

    fn parse(&self, op: &OpInput<'_>, _values: &mut Interner) -> Result<Option<KvOp>, String> {
        match op.f {
            "get" | "read" => Ok(op.output.map(|v| KvOp::Get(text_of(v)))),
            "put" | "write" => Ok(Some(KvOp::Put(text_of(op.input)))),
            "append" => Ok(Some(KvOp::Append(text_of(op.input)))),
            other => Err(unknown_f("kv", other, "get, put, append (read, write)")),
        }
    }

    fn step(&self, state: &Text, op: &KvOp) -> Option<Text> {
        match op {
            KvOp::Get(v) => (v == state).then(|| state.clone()),
            KvOp::Put(v) => Some(v.clone()),
            KvOp::Append(v) => Some(state.concat(v)),
        }
    }

    fn show_state(&self, state: &Text, _values: &Interner) -> Value {
        Value::String(state.as_str().to_string())
    }

    fn state_bytes(&self, state: &Text) -> usize {
        // Shared strings are counted once per holder: an overestimate, on the safe side.
        std::mem::size_of::<Text>()
            + match state {
                Text::Inline { .. } => 0,
                Text::Shared(s) => s.len(),
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linear::hash::hash_of;

    #[test]
    fn text_is_equal_and_hashes_alike_whether_inline_or_shared() {
        let short = Text::new("abc");
        let long = Text::new(&"x".repeat(INLINE_BYTES + 1));
        assert!(matches!(short, Text::Inline { .. }));
        assert!(matches!(long, Text::Shared(_)));
        // The same bytes built the other way round still compare and hash equal.
        let forced = Text::Shared(Arc::from("abc"));
        assert_eq!(short, forced);
        assert_eq!(hash_of(&short), hash_of(&forced));
        assert_ne!(short, Text::new("abd"));
    }

    #[test]
    fn append_concatenates_across_the_inline_boundary() {
        let kv = Kv;
        let mut state = kv.init();
        let piece = Text::new("0123456789");
        for round in 1..=4 {
            state = kv.step(&state, &KvOp::Append(piece.clone())).unwrap();
            assert_eq!(state.as_str(), "0123456789".repeat(round));
        }
        let read = KvOp::Get(Text::new(&"0123456789".repeat(4)));
        assert_eq!(kv.step(&state, &read), Some(state.clone()));
        assert_eq!(kv.step(&kv.init(), &read), None);
    }
}
