//! A fast path for reading one `history.jsonl` line into an [`Op`], without serde.
//!
//! `serde_json::from_slice::<Op>` costs several hundred nanoseconds per line, much of it in
//! the generic machinery (field identifiers through visitors, `Value` built through
//! `MapAccess`/`SeqAccess`), and parsing dominated `distest check` on long histories. This
//! parser reads the fields distest writes straight into the struct and builds the
//! `serde_json::Value`s of `value`, `key` and `error` directly.
//!
//! It must never disagree with serde_json, so it only answers when it is certain:
//! [`OpParser::parse`] returns `None` ("I don't know") for anything outside the subset it
//! handles exactly, and the caller then asks serde_json, which also words the error a user
//! sees. Outside the subset, on purpose:
//! - string escapes and control characters (serde's unescaping and its surrogate rules
//!   stay the only implementation);
//! - unknown or duplicate fields, missing required fields, a top-level array;
//! - values of the wrong type for a field (all are errors in serde);
//! - nesting deeper than [`MAX_DEPTH`] (serde_json's own limit is 128, and beyond ours the
//!   fallback reproduces it).
//!
//! Inside the subset, serde's semantics are reproduced: field order is free, `index` and
//! `time` default to 0, `value` to null, and an explicit `null` for `key`, `node` or
//! `error` is `None` (serde's `Option` treats `null` as absent). Integers are read here
//! with serde_json's own rules (`u64` if non-negative, `i64` if negative, `-0` and
//! anything out of range a float); any other number token is handed to serde_json's
//! number parser (`Number::from_str`), which is the code `from_slice` runs on it, so float
//! bits are identical whatever its features. serde_json is built without `preserve_order`
//! here, so objects are `BTreeMap`s and a repeated key keeps its last value, as here.

use super::json_lex::{Cursor, Integer};
use crate::op::{Op, OpType, Process};
use serde_json::{Map, Value};

/// Deepest nesting parsed here, counting the op object itself as 1; deeper lines go to
/// serde_json (whose limit is 128) so that both the values and the errors stay its own.
pub(super) const MAX_DEPTH: usize = 64;

/// Parses lines; holds scratch space reused from line to line.
#[derive(Default)]
pub(super) struct OpParser {
    /// Values being parsed: the elements of every open array at once, and each value
    /// just parsed. An array is moved out in one exactly-sized allocation when it closes,
    /// instead of growing element by element.
    stack: Vec<Value>,
}

impl OpParser {
    /// One line (with or without its newline) to an op; `None` means "not certain":
    /// the caller must use `serde_json::from_slice::<Op>` instead, for the op or the error.
    pub(super) fn parse(&mut self, line: &[u8]) -> Option<Op> {
        let mut cursor = Cursor::new(line);
        // An early `None` may leave the elements of an unfinished array behind.
        self.stack.clear();
        let op = cursor.op(&mut self.stack);
        debug_assert!(op.is_none() || self.stack.is_empty());
        op
    }
}

/// The fields of an op, as bits of the set of fields read so far.
mod field {
    pub const INDEX: u16 = 1 << 0;
    pub const TIME: u16 = 1 << 1;
    pub const PROCESS: u16 = 1 << 2;
    pub const TYPE: u16 = 1 << 3;
    pub const F: u16 = 1 << 4;
    pub const VALUE: u16 = 1 << 5;
    pub const KEY: u16 = 1 << 6;
    pub const NODE: u16 = 1 << 7;
    pub const ERROR: u16 = 1 << 8;
    /// Without a default in `Op`: serde's "missing field" error when absent.
    pub const REQUIRED: u16 = PROCESS | TYPE | F;
}

/// Adds `field` to `seen`, unless it is there already (a duplicate is serde's error).
fn first_time(seen: &mut u16, field: u16) -> Option<()> {
    if *seen & field != 0 {
        return None;
    }
    *seen |= field;
    Some(())
}

impl<'a> Cursor<'a> {
    fn op(&mut self, stack: &mut Vec<Value>) -> Option<Op> {
        self.skip_whitespace();
        self.eat(b'{')?;
        // Filled in place (the op is large: building it from parts at the end cost a copy).
        // The placeholders of required fields are never returned: see `REQUIRED` below.
        let mut op = Op {
            index: 0,
            time: 0,
            process: Process::Nemesis,
            kind: OpType::Invoke,
            f: String::new(),
            value: Value::Null,
            key: None,
            node: None,
            error: None,
        };
        let mut seen = 0u16;
        // `{}` is serde's "missing field" error: not ours to word.
        loop {
            self.skip_whitespace();
            let name = self.field_name()?;
            self.skip_whitespace();
            self.eat(b':')?;
            self.skip_whitespace();
            first_time(&mut seen, name)?;
            // An explicit `null` for an `Option` field is `None`, as in serde.
            match name {
                field::INDEX => op.index = self.unsigned()?,
                field::TIME => op.time = self.unsigned()?,
                field::PROCESS => op.process = self.process()?,
                field::TYPE => op.kind = self.op_type()?,
                field::F => op.f = self.string()?.to_owned(),
                field::VALUE => op.value = self.value(stack, 2)?,
                field::KEY => op.key = self.nullable_value(stack)?,
                field::NODE => op.node = self.nullable_string()?,
                field::ERROR => op.error = self.nullable_value(stack)?,
                _ => return None,
            }
            if self.end_of_items(b'}')? {
                break;
            }
        }
        if seen & field::REQUIRED != field::REQUIRED {
            return None;
        }
        // Trailing whitespace is allowed, anything else is serde's "trailing characters".
        self.skip_whitespace();
        if self.pos != self.bytes.len() {
            return None;
        }
        Some(op)
    }

    /// A field name, quotes included, as its bit; `None` for any other name, or one
    /// spelled with escapes. Slice patterns compare inline, without a scan for the quote.
    fn field_name(&mut self) -> Option<u16> {
        let (name, len) = match self.bytes.get(self.pos..)? {
            [b'"', b'i', b'n', b'd', b'e', b'x', b'"', ..] => (field::INDEX, 7),
            [b'"', b't', b'i', b'm', b'e', b'"', ..] => (field::TIME, 6),
            [b'"', b'p', b'r', b'o', b'c', b'e', b's', b's', b'"', ..] => (field::PROCESS, 9),
            [b'"', b't', b'y', b'p', b'e', b'"', ..] => (field::TYPE, 6),
            [b'"', b'f', b'"', ..] => (field::F, 3),
            [b'"', b'v', b'a', b'l', b'u', b'e', b'"', ..] => (field::VALUE, 7),
            [b'"', b'k', b'e', b'y', b'"', ..] => (field::KEY, 5),
            [b'"', b'n', b'o', b'd', b'e', b'"', ..] => (field::NODE, 6),
            [b'"', b'e', b'r', b'r', b'o', b'r', b'"', ..] => (field::ERROR, 7),
            _ => return None,
        };
        self.pos += len;
        Some(name)
    }

    fn process(&mut self) -> Option<Process> {
        match self.peek()? {
            b'"' => match self.raw_string()? {
                b"nemesis" | b":nemesis" => Some(Process::Nemesis),
                _ => None,
            },
            _ => match self.integer()? {
                Integer::Unsigned(p) => Some(Process::Client(p)),
                // A negative process is an error with distest's own wording, in serde.
                Integer::Negative(_) => None,
            },
        }
    }

    fn op_type(&mut self) -> Option<OpType> {
        // Not `OpType::parse`: serde's derived names take no leading ':'. Matched with
        // their quotes, like field names; an escaped spelling goes to serde.
        let (kind, len) = match self.bytes.get(self.pos..)? {
            [b'"', b'i', b'n', b'v', b'o', b'k', b'e', b'"', ..] => (OpType::Invoke, 8),
            [b'"', b'o', b'k', b'"', ..] => (OpType::Ok, 4),
            [b'"', b'f', b'a', b'i', b'l', b'"', ..] => (OpType::Fail, 6),
            [b'"', b'i', b'n', b'f', b'o', b'"', ..] => (OpType::Info, 6),
            _ => return None,
        };
        self.pos += len;
        Some(kind)
    }

    /// `Option<Value>`: `null` is `None`, as serde's `deserialize_option` has it.
    fn nullable_value(&mut self, stack: &mut Vec<Value>) -> Option<Option<Value>> {
        if self.eat_literal(b"null").is_some() {
            return Some(None);
        }
        self.value(stack, 2).map(Some)
    }

    fn nullable_string(&mut self) -> Option<Option<String>> {
        if self.eat_literal(b"null").is_some() {
            return Some(None);
        }
        self.string().map(|s| Some(s.to_owned()))
    }

    /// A JSON value at nesting `depth` (the op object is depth 1), taken off the stack.
    fn value(&mut self, stack: &mut Vec<Value>, depth: usize) -> Option<Value> {
        self.push_value(stack, depth)?;
        stack.pop()
    }

    /// Parses a JSON value at nesting `depth` onto `stack`. Pushing values where they
    /// end up, rather than returning them up through each level, measured about 20%
    /// faster on list-append transactions.
    fn push_value(&mut self, stack: &mut Vec<Value>, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => {
                let s = self.string()?;
                stack.push(Value::String(s.to_owned()));
            }
            b'-' | b'0'..=b'9' => {
                let n = self.number()?;
                stack.push(Value::Number(n));
            }
            b'n' => {
                self.eat_literal(b"null")?;
                stack.push(Value::Null);
            }
            b't' => {
                self.eat_literal(b"true")?;
                stack.push(Value::Bool(true));
            }
            b'f' => {
                self.eat_literal(b"false")?;
                stack.push(Value::Bool(false));
            }
            b'[' if depth <= MAX_DEPTH => return self.array(stack, depth),
            b'{' if depth <= MAX_DEPTH => return self.object(stack, depth),
            _ => return None,
        }
        Some(())
    }

    fn array(&mut self, stack: &mut Vec<Value>, depth: usize) -> Option<()> {
        self.eat(b'[')?;
        let first = stack.len();
        self.skip_whitespace();
        if self.eat(b']').is_none() {
            loop {
                self.skip_whitespace();
                self.push_value(stack, depth + 1)?;
                if self.end_of_items(b']')? {
                    break;
                }
            }
        }
        // `split_off` allocates exactly the array's length and copies it in one go.
        let items = stack.split_off(first);
        stack.push(Value::Array(items));
        Some(())
    }

    fn object(&mut self, stack: &mut Vec<Value>, depth: usize) -> Option<()> {
        self.eat(b'{')?;
        let mut map = Map::new();
        self.skip_whitespace();
        if self.eat(b'}').is_none() {
            loop {
                self.skip_whitespace();
                let key = self.string()?;
                self.skip_whitespace();
                self.eat(b':')?;
                self.skip_whitespace();
                let item = self.value(stack, depth + 1)?;
                // serde_json's `Value` keeps the last of repeated keys; so does `insert`.
                map.insert(key.to_owned(), item);
                if self.end_of_items(b'}')? {
                    break;
                }
            }
        }
        stack.push(Value::Object(map));
        Some(())
    }
}

#[cfg(test)]
mod tests {
    //! The fast path is judged against serde_json itself: whenever it answers, serde must
    //! accept the line and produce the identical op (compared also as re-serialized text,
    //! which tells -0.0 from 0.0 and shows float bits); when it does not answer, the caller
    //! uses serde, so agreement is by construction.

    use super::*;
    use crate::format::write_jsonl_line;
    use proptest::prelude::*;
    use serde_json::json;

    /// Asserts the fast path agrees with serde_json on `line`; returns the fast answer.
    fn agrees(parser: &mut OpParser, line: &[u8]) -> Result<Option<Op>, TestCaseError> {
        let fast = parser.parse(line);
        let serde = serde_json::from_slice::<Op>(line);
        if let Some(op) = &fast {
            let text = String::from_utf8_lossy(line);
            match &serde {
                Ok(expected) => {
                    prop_assert_eq!(op, expected, "line {}", text);
                    prop_assert_eq!(
                        serde_json::to_string(op).unwrap(),
                        serde_json::to_string(expected).unwrap(),
                        "line {}",
                        text
                    );
                }
                Err(e) => prop_assert!(false, "fast path accepted {text} but serde says {e}"),
            }
        }
        Ok(fast)
    }

    fn fast(line: &str) -> Option<Op> {
        agrees(&mut OpParser::default(), line.as_bytes()).unwrap()
    }

    /// The line is left to serde_json (and serde's verdict is whatever it is).
    fn assert_falls_back(line: &str) {
        assert_eq!(fast(line), None, "{line}");
    }

    fn line_of(op: &Op) -> String {
        let mut out = Vec::new();
        write_jsonl_line(op, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn reads_what_distest_writes() {
        let mut op = Op::invoke(
            Process::Client(3),
            "txn",
            json!([["append", 12, 345678], ["r", 13, [1, 8, 15]]]),
        )
        .with_key(json!(17))
        .with_time(12_000);
        op.index = 12;
        op.node = Some("n1".into());
        let done = Op {
            error: Some(json!({"kind": "timeout", "after_ms": 500, "retry": false})),
            ..op.complete(OpType::Info, Value::Null)
        };
        let nemesis = Op::invoke(Process::Nemesis, "start-partition", json!(["n1", "n2"]));
        for op in [op, done, nemesis] {
            assert_eq!(fast(&line_of(&op)), Some(op));
        }
    }

    #[test]
    fn every_op_type_and_both_nemesis_spellings() {
        for (name, kind) in [
            ("invoke", OpType::Invoke),
            ("ok", OpType::Ok),
            ("fail", OpType::Fail),
            ("info", OpType::Info),
        ] {
            let op = fast(&format!(r#"{{"process":0,"type":"{name}","f":"read"}}"#)).unwrap();
            assert_eq!(op.kind, kind);
        }
        for name in ["nemesis", ":nemesis"] {
            let op = fast(&format!(
                r#"{{"process":"{name}","type":"info","f":"kill"}}"#
            ));
            assert_eq!(op.unwrap().process, Process::Nemesis);
        }
    }

    #[test]
    fn absent_index_time_and_value_take_serde_defaults() {
        let op = fast(r#"{"f":"read","type":"invoke","process":7}"#).unwrap();
        assert_eq!((op.index, op.time, op.value), (0, 0, Value::Null));
        assert_eq!((op.key, op.node, op.error), (None, None, None));
    }

    #[test]
    fn explicit_null_key_node_and_error_are_absent_as_in_serde() {
        let op = fast(r#"{"process":1,"type":"ok","f":"r","key":null,"node":null,"error":null}"#);
        let op = op.unwrap();
        assert_eq!((op.key, op.node, op.error), (None, None, None));
        let op = fast(r#"{"process":1,"type":"ok","f":"r","value":null,"key":[null]}"#).unwrap();
        assert_eq!(op.key, Some(json!([null])));
    }

    #[test]
    fn fields_in_any_order_with_json_whitespace_anywhere() {
        let op = fast(
            " \t{ \"value\" :\r\n[ 1 , { \"a\" : true , \"b\":false } ] ,\"f\":\"w\",\n\
             \"type\" : \"ok\" , \"process\" : 2 , \"time\":5, \"index\" : 9 }  \r\n",
        )
        .unwrap();
        assert_eq!(op.value, json!([1, {"a": true, "b": false}]));
        assert_eq!((op.index, op.time, op.process), (9, 5, Process::Client(2)));
    }

    #[test]
    fn numbers_are_classified_as_serde_does() {
        let value = |token: &str| {
            fast(&format!(
                r#"{{"process":0,"type":"ok","f":"r","value":{token}}}"#
            ))
            .unwrap()
            .value
        };
        assert_eq!(value("18446744073709551615"), json!(u64::MAX));
        assert_eq!(value("-9223372036854775808"), json!(i64::MIN));
        assert_eq!(value("-1"), json!(-1));
        // Floats in serde, with serde's own bits.
        for token in [
            "-0",
            "18446744073709551616",
            "-9223372036854775809",
            "0.1",
            "0e400000000000000000000",
            "1e-400",
            "2.2250738585072011e-308",
            "-12.5E+3",
        ] {
            assert!(value(token).is_f64(), "{token}");
        }
        assert_eq!(serde_json::to_string(&value("-0")).unwrap(), "-0.0");
        // Out of f64's range: serde's error, so serde's to word.
        assert_falls_back(r#"{"process":0,"type":"ok","f":"r","value":1e400}"#);
    }

    #[test]
    fn leaves_everything_else_to_serde() {
        for line in [
            // escapes, control characters, invalid UTF-8 (in a hex escape here)
            r#"{"process":0,"type":"ok","f":"r\"","value":1}"#,
            r#"{"process":0,"type":"ok","f":"r","value":"\u00e9"}"#,
            r#"{"pro\u0063ess":0,"type":"ok","f":"r"}"#,
            "{\"process\":0,\"type\":\"ok\",\"f\":\"r\tx\"}",
            // unknown, duplicate and missing fields; a top-level array
            r#"{"process":0,"type":"ok","f":"r","extra":1}"#,
            r#"{"process":0,"type":"ok","f":"r","f":"w"}"#,
            r#"{"process":0,"type":"ok","f":"r","key":1,"key":null}"#,
            r#"{"type":"ok","f":"r"}"#,
            r#"{}"#,
            r#"[0,0,0,"ok","r",null]"#,
            // wrong types and values serde refuses
            r#"{"process":-1,"type":"ok","f":"r"}"#,
            r#"{"process":1.0,"type":"ok","f":"r"}"#,
            r#"{"process":"Nemesis","type":"ok","f":"r"}"#,
            r#"{"process":0,"type":":ok","f":"r"}"#,
            r#"{"process":0,"type":{"ok":null},"f":"r"}"#,
            r#"{"process":0,"type":"ok","f":5}"#,
            r#"{"process":0,"type":"ok","f":"r","node":7}"#,
            r#"{"index":-0,"process":0,"type":"ok","f":"r"}"#,
            r#"{"index":1e2,"process":0,"type":"ok","f":"r"}"#,
            r#"{"index":18446744073709551616,"process":0,"type":"ok","f":"r"}"#,
            r#"{"index":01,"process":0,"type":"ok","f":"r"}"#,
            // malformed JSON
            r#"{"process":0,"type":"ok","f":"r",}"#,
            r#"{"process":0,"type":"ok","f":"r"} x"#,
            r#"{"process":0,"type":"ok","f":"r","value":[1,]}"#,
            r#"{"process":0,"type":"ok","f":"r","value":1.}"#,
            r#"{"process":0,"type":"ok","f":"r","value":nul}"#,
            r#"{"process":0,"type":"ok","f":"r","value":{"a"}}"#,
            r#"{"process":0,"type":"ok","f":"r""#,
            // form feed is no JSON whitespace
            "{\"process\":0,\"type\":\"ok\",\"f\":\"r\"}\x0c",
        ] {
            assert_falls_back(line);
        }
        assert_eq!(
            OpParser::default().parse(b"{\"process\":0,\"type\":\"ok\",\"f\":\"\xff\"}"),
            None
        );
    }

    #[test]
    fn long_strings_are_checked_to_their_end() {
        let line = |s: &str| format!(r#"{{"process":0,"type":"ok","f":"r","value":"{s}"}}"#);
        let long = "0123456789".repeat(30);
        assert_eq!(fast(&line(&long)).unwrap().value, json!(long));
        for special in ["\\\"", "\\n", "\t", "\u{1}"] {
            assert_falls_back(&line(&format!("{long}{special}{long}")));
        }
        assert_falls_back(&format!(
            r#"{{"process":0,"type":"ok","f":"r","value":"{long}"#
        ));
    }

    #[test]
    fn nesting_beyond_the_bound_goes_to_serde_and_keeps_its_verdict() {
        let nested = |depth: usize| {
            format!(
                r#"{{"process":0,"type":"ok","f":"r","value":{}1{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            )
        };
        // The op object is level 1, so `value` may open MAX_DEPTH - 1 arrays.
        assert!(fast(&nested(MAX_DEPTH - 1)).is_some());
        assert!(fast(&nested(MAX_DEPTH)).is_none());
        // serde still reads what is past our bound, and refuses past its own (128).
        assert!(serde_json::from_str::<Op>(&nested(MAX_DEPTH)).is_ok());
        assert!(serde_json::from_str::<Op>(&nested(200)).is_err());
        assert!(fast(&nested(200)).is_none());
    }

    #[test]
    fn a_failed_line_leaves_nothing_behind_for_the_next() {
        let mut parser = OpParser::default();
        let bad = br#"{"process":0,"type":"ok","f":"r","value":[1,2,[3,4,"#;
        assert_eq!(parser.parse(bad), None);
        let good = br#"{"process":0,"type":"ok","f":"r","value":[[5],6]}"#;
        assert_eq!(parser.parse(good).unwrap().value, json!([[5], 6]));
    }

    // ---- differential properties --------------------------------------------------------

    /// Any JSON value: nested arrays and objects, unicode and escaped strings, integers at
    /// the edges of their types, floats.
    fn json_value() -> impl Strategy<Value = Value> {
        // Weighted so that most values hold nothing the fast path declines (escapes).
        let leaf = prop_oneof![
            2 => Just(Value::Null),
            2 => any::<bool>().prop_map(Value::Bool),
            2 => any::<i64>().prop_map(Value::from),
            2 => any::<u64>().prop_map(Value::from),
            2 => prop_oneof![Just(i64::MIN), Just(-1i64), Just(0i64)].prop_map(Value::from),
            2 => any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
            8 => "[a-z]{0,8}".prop_map(Value::String),
            2 => "[a-zé€😀 ]{0,8}".prop_map(Value::String),
            1 => any::<String>().prop_map(Value::String),
            1 => "[\"\\\\/\u{0}-\u{1f}é€😀a]{0,6}".prop_map(Value::String),
            // Past the short scan: specials far into long strings.
            2 => "[a-z0-9é]{10,40}[\"\\\\\u{0}-\u{1f}]?[a-z]{0,40}".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![8 => "[a-zé]{0,4}", 1 => "[a\"\\\\\n]{0,3}"],
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A number token as text: mostly well-formed JSON numbers (long ones, with fractions
    /// and exponents), some malformed.
    fn number_token() -> impl Strategy<Value = String> {
        prop_oneof![
            "-?(0|[1-9][0-9]{0,24})(\\.[0-9]{1,24})?([eE][+-]?[0-9]{1,5})?",
            "-?[0-9]{0,3}\\.?[0-9]{0,3}[eE]?[+-]?[0-9]{0,3}",
        ]
    }

    /// The text of a field's value: usually what serde accepts, sometimes not.
    fn field_text(name: &'static str) -> BoxedStrategy<String> {
        let json_text = |v: Value| serde_json::to_string(&v).unwrap();
        let odd = prop_oneof![
            Just("null".to_string()),
            Just("\"x\"".to_string()),
            Just("[]".to_string()),
            Just("{}".to_string()),
            Just("true".to_string()),
            number_token(),
        ];
        let good: BoxedStrategy<String> = match name {
            "index" | "time" => any::<u64>().prop_map(|v| v.to_string()).boxed(),
            "process" => prop_oneof![
                4 => (0u64..20).prop_map(|v| v.to_string()),
                1 => any::<u64>().prop_map(|v| v.to_string()),
                1 => Just("-3".to_string()),
                2 => Just("\"nemesis\"".to_string()),
                1 => Just("\":nemesis\"".to_string()),
                1 => Just("\"n\\u0065mesis\"".to_string()),
            ]
            .boxed(),
            "type" => prop::sample::select(vec![
                "\"invoke\"",
                "\"ok\"",
                "\"fail\"",
                "\"info\"",
                "\":ok\"",
                "\"OK\"",
                "\"o\\u006b\"",
                "{\"ok\":null}",
            ])
            .prop_map(str::to_string)
            .boxed(),
            "f" | "node" => prop_oneof![
                4 => "[a-z-]{0,12}".prop_map(move |s| json_text(json!(s))),
                1 => any::<String>().prop_map(move |s| json_text(json!(s))),
            ]
            .boxed(),
            _ => prop_oneof![
                4 => json_value().prop_map(json_text),
                1 => number_token(),
            ]
            .boxed(),
        };
        prop_oneof![20 => good, 1 => odd].boxed()
    }

    const FIELDS: [&str; 9] = [
        "index", "time", "process", "type", "f", "value", "key", "node", "error",
    ];

    /// Names for extra fields: duplicates of known ones, unknown ones, escaped ones.
    fn extra_field_name() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => prop::sample::select(FIELDS.to_vec()).prop_map(|n| format!("\"{n}\"")),
            1 => Just("\"extra\"".to_string()),
            1 => Just("\"Index\"".to_string()),
            1 => Just("\"ind\\u0065x\"".to_string()),
        ]
    }

    /// Whitespace between tokens: per line none, JSON's, or (rarely) with a form feed,
    /// which is not JSON whitespace.
    fn spaces() -> impl Strategy<Value = Vec<&'static str>> {
        prop_oneof![
            6 => Just(vec![""]),
            5 => prop::collection::vec(
                prop::sample::select(vec!["", "", "", " ", "\n", "\t", "\r\n", "  "]),
                64,
            ),
            1 => prop::collection::vec(prop::sample::select(vec!["", " ", "\x0c"]), 64),
        ]
    }

    /// A whole line: the required fields (usually), optional ones, sometimes an unknown or
    /// duplicated one, in any order, with whitespace between tokens.
    fn op_line() -> impl Strategy<Value = Vec<u8>> {
        let fields = FIELDS.map(|name| {
            // Required fields are dropped now and then, optional ones half the time.
            let keep = if matches!(name, "process" | "type" | "f") {
                0.95
            } else {
                0.5
            };
            prop::option::weighted(
                keep,
                field_text(name).prop_map(move |t| (format!("\"{name}\""), t)),
            )
        });
        let extra = prop::option::weighted(
            0.15,
            extra_field_name().prop_flat_map(|name| {
                let key = name.trim_matches('"');
                let key = FIELDS.into_iter().find(|f| *f == key).unwrap_or("value");
                (Just(name), field_text(key))
            }),
        );
        (fields, extra, spaces())
            .prop_flat_map(|(fields, extra, spaces)| {
                let fields: Vec<(String, String)> =
                    fields.into_iter().flatten().chain(extra).collect();
                (Just(fields).prop_shuffle(), Just(spaces))
            })
            .prop_map(|(fields, spaces)| {
                let mut ws = spaces.iter().cycle();
                let mut line = String::new();
                line.push_str(ws.next().unwrap());
                line.push('{');
                for (i, (name, text)) in fields.iter().enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    for part in [name.as_str(), ":", text.as_str()] {
                        line.push_str(ws.next().unwrap());
                        line.push_str(part);
                    }
                    line.push_str(ws.next().unwrap());
                }
                line.push('}');
                line.push_str(ws.next().unwrap());
                line.into_bytes()
            })
    }

    /// A valid op as distest writes it.
    fn written_op() -> impl Strategy<Value = Op> {
        (
            (any::<u64>(), any::<u64>(), prop::option::of(any::<u64>())),
            prop::sample::select(vec![OpType::Invoke, OpType::Ok, OpType::Fail, OpType::Info]),
            prop_oneof![4 => "[a-z-]{0,10}", 1 => ".{0,10}"],
            json_value(),
            prop::option::of(json_value()),
            prop::option::of(prop_oneof![4 => "n[0-9]", 1 => ".{0,6}"]),
            prop::option::of(json_value()),
        )
            .prop_map(
                |((index, time, process), kind, f, value, key, node, error)| Op {
                    index,
                    time,
                    process: process.map_or(Process::Nemesis, Process::Client),
                    kind,
                    f,
                    value,
                    // What serde would read back: a `null` key or error is absent.
                    key: key.filter(|k| !k.is_null()),
                    node,
                    error: error.filter(|e| !e.is_null()),
                },
            )
    }

    /// Whether serde_json writes `value` with nothing the fast path leaves to serde.
    fn plain(value: &Value) -> bool {
        match value {
            Value::Number(n) => !n.is_f64(),
            Value::String(s) => !s.chars().any(|c| c < ' ' || c == '"' || c == '\\'),
            Value::Array(items) => items.iter().all(plain),
            Value::Object(map) => map
                .iter()
                .all(|(k, v)| plain(&Value::from(k.as_str())) && plain(v)),
            Value::Null | Value::Bool(_) => true,
        }
    }

    fn depth(value: &Value) -> usize {
        match value {
            Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
            Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// What distest writes reads back the same, and on the fast path whenever it holds
        /// no escapes or floats (so the fast path is really used, not always declined).
        #[test]
        fn written_ops_read_back_identically(op in written_op()) {
            let line = line_of(&op);
            let fast = agrees(&mut OpParser::default(), line.as_bytes())?;
            let values = [Some(&op.value), op.key.as_ref(), op.error.as_ref()];
            let simple = plain(&json!(op.f))
                && op.node.as_ref().is_none_or(|n| plain(&json!(n)))
                && values.iter().flatten().all(|v| plain(v) && depth(v) < MAX_DEPTH - 1);
            if simple {
                prop_assert_eq!(fast, Some(op));
            }
        }

        /// Hand-assembled lines: missing, extra, duplicated and reordered fields, wrong
        /// types, odd numbers, all kinds of whitespace.
        #[test]
        fn assembled_lines_agree_with_serde(line in op_line()) {
            agrees(&mut OpParser::default(), &line)?;
        }

        /// Any cut, changed, inserted or removed byte of a line, with a parser that has
        /// just failed on that mutant reused for the original.
        #[test]
        fn mutated_lines_agree_with_serde(
            line in op_line(),
            at in any::<prop::sample::Index>(),
            byte in prop::sample::select(b"{}[]\":,.-+eE0129 \t\n\\nultrsfa\xc3\xa9\xff".to_vec()),
            how in 0u8..4,
        ) {
            let mut mutant = line.clone();
            let at = at.index(line.len() + 1);
            match how {
                0 => mutant.truncate(at),
                1 if at < mutant.len() => mutant[at] = byte,
                2 => mutant.insert(at, byte),
                _ if at < mutant.len() => { mutant.remove(at); }
                _ => {}
            }
            let mut parser = OpParser::default();
            agrees(&mut parser, &mutant)?;
            agrees(&mut parser, &line)?;
        }

        /// Number tokens anywhere a value may be: the float bits are serde's.
        #[test]
        fn number_tokens_agree_with_serde(token in number_token()) {
            for line in [
                format!(r#"{{"process":0,"type":"ok","f":"r","value":{token}}}"#),
                format!(r#"{{"process":0,"type":"ok","f":"r","value":[{token},{{"k":{token}}}]}}"#),
                format!(r#"{{"index":{token},"process":{token},"type":"ok","f":"r"}}"#),
            ] {
                agrees(&mut OpParser::default(), line.as_bytes())?;
            }
        }

        /// Arbitrary bytes, and JSON-ish soup after an op's opening: no panic, no
        /// disagreement.
        #[test]
        fn arbitrary_bytes_agree_with_serde(
            raw in prop::collection::vec(any::<u8>(), 0..160),
            soup in prop::collection::vec(
                prop::sample::select(b"{}[]\":,0123456789-.eE+ \ntruefalsnul\\abxyz".to_vec()),
                0..120,
            ),
        ) {
            let mut parser = OpParser::default();
            agrees(&mut parser, &raw)?;
            agrees(&mut parser, &soup)?;
            let mut line = br#"{"process":1,"type":"ok","f":"r","value":"#.to_vec();
            line.extend_from_slice(&soup);
            agrees(&mut parser, &line)?;
        }
    }
}
