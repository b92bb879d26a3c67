//! `kv`: a map from keys to string values with `get`, `put` and `append`.
//!
//! The checker partitions a kv history by key (each key is an independent register of
//! strings, and linearizability is compositional), so this model sees one key's ops and
//! its state is that key's value. A key never written reads as the empty string; a get
//! that returns `null` is read as the empty string too (many stores answer a missing key
//! with nothing). `append` concatenates. Values that are not JSON strings are compared by
//! their JSON text (`5` is `"5"`). `read`/`write` are accepted as aliases of `get`/`put`.

use crate::linear::models::{unknown_f, Interner, Model, OpInput};
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
/// [`INLINE_BYTES`] bytes is always inline and a longer one never is (the representation
/// is private), so equal texts have the same representation: equality and hashing never
/// compare across the two.
#[derive(Clone)]
pub struct Text(Repr);

#[derive(Clone)]
enum Repr {
    /// Bytes past `len` are zero, so whole arrays compare and hash.
    Inline {
        len: u8,
        bytes: [u8; INLINE_BYTES],
    },
    Shared(Arc<str>),
}

impl Text {
    fn new(s: &str) -> Text {
        Text::from_parts(s.as_bytes(), b"")
    }

    /// `head` followed by `tail`, both the UTF-8 bytes of whole strings (so the result
    /// is UTF-8 too).
    fn from_parts(head: &[u8], tail: &[u8]) -> Text {
        let len = head.len() + tail.len();
        if len <= INLINE_BYTES {
            let mut bytes = [0; INLINE_BYTES];
            bytes[..head.len()].copy_from_slice(head);
            bytes[head.len()..len].copy_from_slice(tail);
            return Text(Repr::Inline {
                len: len as u8,
                bytes,
            });
        }
        let joined = String::from_utf8([head, tail].concat())
            .expect("two whole UTF-8 strings concatenate to UTF-8");
        Text(Repr::Shared(Arc::from(joined)))
    }

    fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..*len as usize],
            Repr::Shared(s) => s.as_bytes(),
        }
    }

    fn as_str(&self) -> &str {
        match &self.0 {
            // Only built from whole `str`s (and concatenations of them), cut at `len`.
            Repr::Inline { len, bytes } => std::str::from_utf8(&bytes[..*len as usize])
                .expect("inline text holds the bytes of a str"),
            Repr::Shared(s) => s,
        }
    }

    fn concat(&self, tail: &Text) -> Text {
        Text::from_parts(self.as_bytes(), tail.as_bytes())
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        match (&self.0, &other.0) {
            (Repr::Inline { len: a, bytes: x }, Repr::Inline { len: b, bytes: y }) => {
                a == b && x == y
            }
            (Repr::Shared(x), Repr::Shared(y)) => x == y,
            // Different lengths: see the representation invariant.
            _ => false,
        }
    }
}

impl Eq for Text {}

impl Hash for Text {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match &self.0 {
            Repr::Inline { len, bytes } => {
                state.write_u8(*len);
                state.write(bytes);
            }
            Repr::Shared(s) => s.as_bytes().hash(state),
        }
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
            + match &state.0 {
                Repr::Inline { .. } => 0,
                Repr::Shared(s) => s.len(),
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linear::hash::hash_of;

    #[test]
    fn equal_texts_have_one_representation_and_hash_alike() {
        let short = Text::new("abc");
        let long = Text::new(&"x".repeat(INLINE_BYTES + 1));
        assert!(matches!(short.0, Repr::Inline { .. }));
        assert!(matches!(long.0, Repr::Shared(_)));
        // Built by concatenation instead, the same strings are the same texts.
        let joined = Text::new("a").concat(&Text::new("bc"));
        assert_eq!(short, joined);
        assert_eq!(hash_of(&short), hash_of(&joined));
        let long_joined = Text::new(&"x".repeat(INLINE_BYTES)).concat(&Text::new("x"));
        assert!(matches!(long_joined.0, Repr::Shared(_)));
        assert_eq!(long, long_joined);
        assert_eq!(hash_of(&long), hash_of(&long_joined));
        assert_ne!(short, Text::new("abd"));
        assert_ne!(Text::new(""), Text::new("\0"));
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
