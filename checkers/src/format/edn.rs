//! Jepsen's `history.edn`: a small, hand-written EDN parser and the EDN history reader.
//!
//! Why hand-written: no maintained EDN crate reads Clojure's printer output (tagged
//! records, ratios, chars, `#_`) into `serde_json::Value` fast enough for 100 MB
//! histories. The parser works on a byte window of the input; when a form runs past the
//! end of a non-final window it reports [`EdnError::Incomplete`] and the reader retries
//! with more bytes, so the file is streamed and never held whole.
//!
//! EDN → JSON mapping: keywords and symbols become strings without the colon, `nil` is
//! `null`, vectors, lists and sets are arrays, tagged literals (`#inst "..."`,
//! `#jepsen.history.Op{...}`) keep their value and drop the tag, ratios become floats,
//! integers beyond `u64`/`i64` and non-finite floats become strings of their digits, map
//! keys that are not keywords or strings become their EDN text.

use super::import::{Importer, Presence};
use super::{count_newlines, fill, ParseError};
use crate::history::History;
use crate::op::{Op, OpType, Process};
use serde_json::{Map, Number, Value};
use std::io::BufRead;

/// Forms nested deeper than this are rejected: bad input must not overflow the stack.
const MAX_DEPTH: usize = 256;
/// One op (one top-level form) may not span more bytes than this.
const MAX_OP_BYTES: usize = 256 << 20;
/// How much the reader asks of its source at a time.
pub(super) const READ_CHUNK_BYTES: usize = 4 << 20;
/// Fewer bytes than any op map Jepsen writes takes (`{:type :ok, :f :read}` alone
/// is 22): how many ops a window may hold, at most, for reserving room.
const MIN_OP_BYTES: usize = 32;
/// The first read: see `read_into`.
const FIRST_READ_BYTES: usize = 1 << 20;
/// Windows at least this large are parsed on two threads.
const PARALLEL_MIN_BYTES: usize = 256 << 10;

/// Why the parser stopped.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EdnError {
    /// The window ended inside a form, and more input may follow.
    Incomplete,
    /// Malformed input at byte `pos` of the window.
    Syntax { pos: usize, message: String },
}

/// A cursor over one window of EDN text.
pub(crate) struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
    /// True when `buf` holds the rest of the input: running off its end is then an error.
    is_final: bool,
    /// The items of every open vector, list and set at once: each is moved out in one
    /// exactly-sized allocation when it closes (a vector grown item by item held room
    /// for four values where Jepsen's `[k v]` tuples need two).
    items: Vec<Value>,
}

/// What a byte is to the token scanner, as a table: tokens are scanned byte by byte for
/// every keyword and number of every op, and one pass both finds a token's end and
/// tells whether it is plain ASCII (then it needs no UTF-8 check).
const TOKEN_BYTE: u8 = 0;
const NON_ASCII: u8 = 1;
const DELIMITER: u8 = 2;
const CLASSES: [u8; 256] = {
    let mut table = [TOKEN_BYTE; 256];
    let mut b = 0x80;
    while b < 256 {
        table[b] = NON_ASCII;
        b += 1;
    }
    let delimiters = b" \t\n\r\x0c,()[]{}\";";
    let mut i = 0;
    while i < delimiters.len() {
        table[delimiters[i] as usize] = DELIMITER;
        i += 1;
    }
    table
};

/// Shows a byte in an error message.
fn show(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("`{}`", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

/// Renders a value that must become a string (an `f`, a node, a map key) as text.
pub(crate) fn value_to_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        Value::Null => "nil".to_string(),
        other => other.to_string(),
    }
}

impl<'a> Parser<'a> {
    pub(crate) fn new(buf: &'a [u8], is_final: bool) -> Parser<'a> {
        Parser {
            buf,
            pos: 0,
            is_final,
            items: Vec::new(),
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn syntax<T>(&self, pos: usize, message: impl Into<String>) -> Result<T, EdnError> {
        Err(EdnError::Syntax {
            pos,
            message: message.into(),
        })
    }

    /// Running off the window: an error at the true end of input, else "need more bytes".
    fn ended<T>(&self, inside: &str) -> Result<T, EdnError> {
        if self.is_final {
            self.syntax(self.pos, format!("the input ended inside {inside}"))
        } else {
            Err(EdnError::Incomplete)
        }
    }

    /// Skips whitespace, commas, `;` comments and `#_` discarded forms.
    pub(crate) fn skip_ws(&mut self) -> Result<(), EdnError> {
        self.skip_ws_at(0)
    }

    #[inline]
    fn check_depth(&self, depth: usize) -> Result<(), EdnError> {
        if depth > MAX_DEPTH {
            return self.too_deep();
        }
        Ok(())
    }

    #[cold]
    fn too_deep<T>(&self) -> Result<T, EdnError> {
        self.syntax(
            self.pos,
            format!("values are nested more than {MAX_DEPTH} levels deep"),
        )
    }

    /// Skips separators: inline, since it runs a dozen times per op and almost always
    /// finds a space or two; comments and discards are left to [`Self::skip_ws_slow`].
    #[inline]
    fn skip_ws_at(&mut self, depth: usize) -> Result<(), EdnError> {
        // `#_#_#_...` recurses here without passing through `value`.
        self.check_depth(depth)?;
        while let Some(&b) = self.buf.get(self.pos) {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b',' => self.pos += 1,
                b';' | b'#' => return self.skip_ws_slow(depth),
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// [`Self::skip_ws_at`] from a `;` or `#`.
    #[inline(never)]
    fn skip_ws_slow(&mut self, depth: usize) -> Result<(), EdnError> {
        while let Some(&b) = self.buf.get(self.pos) {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b',' => self.pos += 1,
                b';' => match memchr::memchr(b'\n', &self.buf[self.pos..]) {
                    Some(n) => self.pos += n + 1,
                    None => self.pos = self.buf.len(),
                },
                b'#' if self.buf.get(self.pos + 1) == Some(&b'_') => {
                    self.pos += 2;
                    self.skip_ws_at(depth + 1)?;
                    if self.peek().is_none() {
                        return self.ended("a `#_` discard");
                    }
                    self.value(depth + 1)?;
                }
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// Parses one value, skipping whitespace before it.
    pub(crate) fn parse_value(&mut self) -> Result<Value, EdnError> {
        self.skip_ws()?;
        if self.peek().is_none() {
            return self.ended("a value (none was found)");
        }
        self.value(0)
    }

    /// Reads a symbol/number/keyword token: bytes up to the next delimiter.
    fn token(&mut self) -> Result<&'a [u8], EdnError> {
        self.scan_token().map(|(tok, _)| tok)
    }

    /// [`Self::token`], and whether the token is all ASCII, found in the same pass.
    fn scan_token(&mut self) -> Result<(&'a [u8], bool), EdnError> {
        let rest = &self.buf[self.pos..];
        let mut len = rest.len();
        let mut classes = TOKEN_BYTE;
        for (i, &b) in rest.iter().enumerate() {
            let class = CLASSES[b as usize];
            if class == DELIMITER {
                len = i;
                break;
            }
            classes |= class;
        }
        if len == rest.len() && !self.is_final {
            return Err(EdnError::Incomplete);
        }
        self.pos += len;
        Ok((&rest[..len], classes == TOKEN_BYTE))
    }

    fn token_str(&mut self) -> Result<&'a str, EdnError> {
        let start = self.pos;
        let (tok, ascii) = self.scan_token()?;
        if ascii {
            // SAFETY: every byte of `tok` is ASCII (the scan saw no byte >= 0x80), and
            // ASCII is valid UTF-8.
            return Ok(unsafe { std::str::from_utf8_unchecked(tok) });
        }
        std::str::from_utf8(tok).or_else(|_| self.syntax(start, "a symbol is not valid UTF-8"))
    }

    /// Parses the value at the cursor (whitespace already skipped, input not empty).
    fn value(&mut self, depth: usize) -> Result<Value, EdnError> {
        self.check_depth(depth)?;
        let start = self.pos;
        let Some(b) = self.peek() else {
            return self.ended("a value");
        };
        match b {
            b'"' => self.string().map(Value::String),
            b':' => {
                self.pos += 1;
                let name = self.token_str()?;
                if name.is_empty() {
                    return self.syntax(start, "a keyword needs a name after `:`");
                }
                Ok(Value::String(name.to_string()))
            }
            b'[' => {
                self.pos += 1;
                self.seq(b']', depth, "a vector").map(Value::Array)
            }
            b'(' => {
                self.pos += 1;
                self.seq(b')', depth, "a list").map(Value::Array)
            }
            b'{' => {
                self.pos += 1;
                self.map(depth).map(Value::Object)
            }
            b'#' => self.dispatch(depth),
            b'\\' => self.character().map(Value::String),
            b'^' => {
                // Metadata: `^{:tag x} value`. Clojure's printer emits it only on request;
                // it says nothing about the op, so it is dropped.
                self.pos += 1;
                self.skip_ws_at(depth + 1)?;
                if self.peek().is_none() {
                    return self.ended("metadata");
                }
                self.value(depth + 1)?;
                self.skip_ws_at(depth + 1)?;
                if self.peek().is_none() {
                    return self.ended("the value after metadata");
                }
                self.value(depth + 1)
            }
            b')' | b']' | b'}' => self.syntax(start, format!("unexpected {}", show(b))),
            b'0'..=b'9' => self.number(),
            b'+' | b'-' if self.buf.get(self.pos + 1).is_some_and(u8::is_ascii_digit) => {
                self.number()
            }
            b'\'' | b'`' | b'~' | b'@' => self.syntax(
                start,
                format!(
                    "{} is a Clojure reader macro, not EDN; a history holds only data",
                    show(b)
                ),
            ),
            _ => {
                let sym = self.token_str()?;
                match sym {
                    "" => self.syntax(start, format!("unexpected {}", show(b))),
                    "nil" => Ok(Value::Null),
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    s => Ok(Value::String(s.to_string())),
                }
            }
        }
    }

    /// `#` forms: sets, `##Inf`, regexes, namespaced maps, tagged literals.
    fn dispatch(&mut self, depth: usize) -> Result<Value, EdnError> {
        let start = self.pos;
        self.pos += 1;
        let Some(b) = self.peek() else {
            return self.ended("a `#` form");
        };
        match b {
            b'{' => {
                self.pos += 1;
                self.seq(b'}', depth, "a set").map(Value::Array)
            }
            b'#' => {
                self.pos += 1;
                let name = self.token_str()?;
                match name {
                    "Inf" | "-Inf" | "NaN" => Ok(Value::String(format!("##{name}"))),
                    _ => self.syntax(start, format!("unknown symbolic value ##{name}")),
                }
            }
            b'"' => self.string().map(Value::String),
            b'_' => {
                self.pos -= 1;
                self.skip_ws_at(depth)?;
                if self.peek().is_none() {
                    return self.ended("the value after a `#_` discard");
                }
                self.value(depth)
            }
            _ => {
                // `#inst "..."`, `#uuid "..."`, `#jepsen.history.Op{...}`, `#:ns{...}`,
                // `#object[...]`: the tag names a type; the data is what follows.
                let tag = self.token()?;
                if tag.is_empty() {
                    return self.syntax(
                        start,
                        format!("expected a tag after `#`, found {}", show(b)),
                    );
                }
                self.skip_ws_at(depth + 1)?;
                if self.peek().is_none() {
                    return self.ended("a tagged value");
                }
                self.value(depth + 1)
            }
        }
    }

    fn seq(&mut self, close: u8, depth: usize, what: &str) -> Result<Vec<Value>, EdnError> {
        // This form's items are `items[mark..]`; an error leaves them behind, which is
        // harmless: a parser that failed is not used again.
        let mark = self.items.len();
        loop {
            self.skip_ws_at(depth + 1)?;
            match self.peek() {
                None => return self.ended(what),
                Some(c) if c == close => {
                    self.pos += 1;
                    return Ok(self.items.split_off(mark));
                }
                Some(c @ (b')' | b']' | b'}')) => {
                    return self.syntax(
                        self.pos,
                        format!(
                            "expected {} to close {what}, found {}",
                            show(close),
                            show(c)
                        ),
                    )
                }
                Some(_) => {
                    let item = self.value(depth + 1)?;
                    self.items.push(item);
                }
            }
        }
    }

    fn map(&mut self, depth: usize) -> Result<Map<String, Value>, EdnError> {
        let mut map = Map::new();
        loop {
            self.skip_ws_at(depth + 1)?;
            let key_start = self.pos;
            match self.peek() {
                None => return self.ended("a map"),
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(map);
                }
                Some(_) => {}
            }
            let key = self.value(depth + 1)?;
            let key_end = self.pos;
            let key = match key {
                Value::String(s) => s,
                _ => edn_text(&self.buf[key_start..key_end]),
            };
            self.skip_ws_at(depth + 1)?;
            match self.peek() {
                None => return self.ended("a map"),
                Some(b'}') => {
                    return self.syntax(key_start, format!("map key {key} has no value"));
                }
                Some(_) => {}
            }
            let value = self.value(depth + 1)?;
            if map.insert(key, value).is_some() {
                let key = edn_text(&self.buf[key_start..key_end]);
                return self.syntax(key_start, format!("map has the key {key} twice"));
            }
        }
    }

    fn string(&mut self) -> Result<String, EdnError> {
        let start = self.pos;
        self.pos += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let rest = &self.buf[self.pos..];
            let Some(n) = memchr::memchr2(b'"', b'\\', rest) else {
                self.pos = self.buf.len();
                return self.ended("a string");
            };
            if rest[n] == b'"' && out.is_empty() {
                // No escape: one allocation of the exact size.
                self.pos += n + 1;
                return String::from_utf8(rest[..n].to_vec())
                    .or_else(|_| self.syntax(start, "a string is not valid UTF-8"));
            }
            out.extend_from_slice(&rest[..n]);
            self.pos += n;
            if rest[n] == b'"' {
                self.pos += 1;
                return String::from_utf8(out)
                    .or_else(|_| self.syntax(start, "a string is not valid UTF-8"));
            }
            let esc_pos = self.pos;
            let Some(&e) = self.buf.get(self.pos + 1) else {
                self.pos = self.buf.len();
                return self.ended("a string");
            };
            self.pos += 2;
            match e {
                b'"' => out.push(b'"'),
                b'\\' => out.push(b'\\'),
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'b' => out.push(b'\x08'),
                b'f' => out.push(b'\x0c'),
                b'u' => {
                    let c = self.unicode_escape(esc_pos)?;
                    let mut tmp = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                }
                other => {
                    return self.syntax(
                        esc_pos,
                        format!("unknown string escape \\{}", other as char),
                    )
                }
            }
        }
    }

    /// After `\u`: four hex digits, or a surrogate pair `\uD83D\uDE00`.
    fn unicode_escape(&mut self, esc_pos: usize) -> Result<char, EdnError> {
        let high = self.hex4(esc_pos)?;
        if (0xD800..0xDC00).contains(&high) {
            if self.buf.get(self.pos..self.pos + 2) == Some(b"\\u") {
                self.pos += 2;
                let low = self.hex4(esc_pos)?;
                if (0xDC00..0xE000).contains(&low) {
                    let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                    return char::from_u32(c)
                        .map_or_else(|| self.syntax(esc_pos, "invalid \\u escape"), Ok);
                }
            } else if self.buf.len() < self.pos + 2 && !self.is_final {
                return Err(EdnError::Incomplete);
            }
            return self.syntax(esc_pos, "a \\u escape is half of a surrogate pair");
        }
        char::from_u32(high).map_or_else(|| self.syntax(esc_pos, "invalid \\u escape"), Ok)
    }

    fn hex4(&mut self, esc_pos: usize) -> Result<u32, EdnError> {
        let Some(digits) = self.buf.get(self.pos..self.pos + 4) else {
            return self.ended("a \\u escape");
        };
        let s = std::str::from_utf8(digits).unwrap_or("");
        let v = u32::from_str_radix(s, 16)
            .or_else(|_| self.syntax(esc_pos, "a \\u escape needs four hex digits"))?;
        self.pos += 4;
        Ok(v)
    }

    /// A character literal: `\a`, `\newline`, `\u00e9`, `\(`; becomes a one-char string.
    fn character(&mut self) -> Result<String, EdnError> {
        let start = self.pos;
        self.pos += 1;
        let Some(&first) = self.buf.get(self.pos) else {
            return self.ended("a character literal");
        };
        let first_len = match first {
            0x00..=0x7f => 1,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => return self.syntax(start, "a character literal is not valid UTF-8"),
        };
        let mut end = self.pos + first_len;
        if end > self.buf.len() {
            return self.ended("a character literal");
        }
        if first.is_ascii_alphabetic() {
            while end < self.buf.len() && self.buf[end].is_ascii_alphanumeric() {
                end += 1;
            }
            if end == self.buf.len() && !self.is_final {
                return Err(EdnError::Incomplete);
            }
        }
        let name = std::str::from_utf8(&self.buf[self.pos..end])
            .or_else(|_| self.syntax(start, "a character literal is not valid UTF-8"))?;
        self.pos = end;
        let c = match name {
            "newline" => '\n',
            "space" => ' ',
            "tab" => '\t',
            "return" => '\r',
            "backspace" => '\x08',
            "formfeed" => '\x0c',
            n if n.chars().count() == 1 => n.chars().next().unwrap_or(' '),
            n if n.len() == 5 && n.starts_with('u') => u32::from_str_radix(&n[1..], 16)
                .ok()
                .and_then(char::from_u32)
                .map_or_else(
                    || self.syntax(start, format!("invalid character \\{n}")),
                    Ok,
                )?,
            n if n.len() >= 2 && n.len() <= 4 && n.starts_with('o') => {
                u32::from_str_radix(&n[1..], 8)
                    .ok()
                    .filter(|&v| v <= 0o377)
                    .and_then(char::from_u32)
                    .map_or_else(
                        || self.syntax(start, format!("invalid character \\{n}")),
                        Ok,
                    )?
            }
            n => return self.syntax(start, format!("unknown character name \\{n}")),
        };
        Ok(c.to_string())
    }

    fn number(&mut self) -> Result<Value, EdnError> {
        let start = self.pos;
        let text = self.token_str()?;
        if let Some(n) = small_integer(text.as_bytes()) {
            return Ok(Value::Number(n.into()));
        }
        parse_number(text).map_or_else(
            || self.syntax(start, format!("{text:?} is not a number")),
            Ok,
        )
    }
}

/// The EDN text of a form, whitespace runs collapsed: how non-string map keys are named.
fn edn_text(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The common number, a decimal integer of at most 18 digits with an optional sign,
/// read without the general rules of [`parse_number`] (whose answer it always equals:
/// such an integer always fits an `i64`).
fn small_integer(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, text),
    };
    if digits.len() > 18 {
        return None;
    }
    // At most 18 digits: fits an `i64`.
    let n = small_unsigned(digits)? as i64;
    Some(if negative { -n } else { n })
}

/// The common op field number (`:time 1000`, `:process 3`): at most 19 decimal digits,
/// no sign, read as `str::parse::<u64>` reads it (such a number always fits a `u64`).
fn small_unsigned(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 19 {
        return None;
    }
    let mut n = 0u64;
    for &d in text {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(d - b'0');
    }
    Some(n)
}

fn is_integer_text(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Integers, `N` bigints, `M` decimals, floats, `0x` hex and `a/b` ratios.
fn parse_number(text: &str) -> Option<Value> {
    if let Some((num, den)) = text.split_once('/') {
        if !is_integer_text(num) || !is_integer_text(den) {
            return None;
        }
        let (n, d): (f64, f64) = (num.parse().ok()?, den.parse().ok()?);
        if d == 0.0 {
            return None;
        }
        return Some(float_value(n / d, text));
    }
    if let Some(body) = text.strip_suffix('M') {
        return body.parse::<f64>().ok().map(|f| float_value(f, body));
    }
    let body = text.strip_suffix('N').unwrap_or(text);
    if is_integer_text(body) {
        if let Ok(i) = body.parse::<i64>() {
            return Some(Value::Number(i.into()));
        }
        if let Ok(u) = body.parse::<u64>() {
            return Some(Value::Number(u.into()));
        }
        // Too big for 64 bits: kept exactly, as its digits.
        return Some(Value::String(body.trim_start_matches('+').to_string()));
    }
    let unsigned = body.trim_start_matches(['+', '-']);
    if let Some(hex) = unsigned
        .strip_prefix("0x")
        .or_else(|| unsigned.strip_prefix("0X"))
    {
        let v = i64::from_str_radix(hex, 16).ok()?;
        return Some(Value::Number(
            if body.starts_with('-') { -v } else { v }.into(),
        ));
    }
    if text.ends_with('N') || !body.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        return None;
    }
    body.parse::<f64>().ok().map(|f| float_value(f, body))
}

/// A float as JSON, or its text when JSON cannot hold it (infinite, NaN).
fn float_value(f: f64, text: &str) -> Value {
    Number::from_f64(f).map_or_else(|| Value::String(text.to_string()), Value::Number)
}

/// Parses the op map at the cursor into `op` (a fresh invocation placeholder, already
/// in its place in the importer's vector: an op is large, and building it elsewhere
/// cost a copy or two per op). Returns which op fields were present, for [`Importer`]
/// to fill in the rest.
fn op_from_map(p: &mut Parser<'_>, depth: usize, op: &mut Op) -> Result<Presence, EdnError> {
    let open = p.pos;
    if p.peek() == Some(b'#') {
        // `#jepsen.history.Op{...}`: the record's tag says nothing the keys don't.
        p.pos += 1;
        let tag = p.token()?;
        if tag.is_empty() {
            return p.syntax(open, "expected an op map, found `#` without a tag");
        }
        p.skip_ws()?;
    }
    match p.peek() {
        Some(b'{') => p.pos += 1,
        Some(b) => {
            return p.syntax(
                p.pos,
                format!("expected an op map `{{...}}`, found {}", show(b)),
            )
        }
        None => return p.ended("an op map"),
    }
    let mut has = Presence::default();
    let mut has_type = false;
    let mut seen = [false; FIELDS.len()];
    loop {
        p.skip_ws_at(depth + 1)?;
        let key_start = p.pos;
        let field = match p.peek() {
            None => return p.ended("an op map"),
            Some(b'}') => {
                p.pos += 1;
                break;
            }
            Some(b':') => {
                p.pos += 1;
                let name = p.token()?;
                if name.is_empty() {
                    return p.syntax(key_start, "a keyword needs a name after `:`");
                }
                field_of(name)
            }
            Some(_) => {
                p.value(depth + 1)?;
                None
            }
        };
        p.skip_ws_at(depth + 1)?;
        match p.peek() {
            None => return p.ended("an op map"),
            Some(b'}') => return p.syntax(key_start, "an op map key has no value"),
            Some(_) => {}
        }
        let value_start = p.pos;
        let Some(field) = field else {
            p.value(depth + 1)?;
            continue;
        };
        if let Some(common) = p.common_field(field)? {
            if std::mem::replace(&mut seen[field], true) {
                return p.syntax(key_start, format!("the op has :{} twice", FIELDS[field]));
            }
            match common {
                Common::Kind(kind) => {
                    op.kind = kind;
                    has_type = true;
                }
                Common::Unsigned(n) => match field {
                    PROCESS => {
                        op.process = Process::Client(n);
                        has.process = true;
                    }
                    TIME => {
                        op.time = n;
                        has.time = true;
                    }
                    _ => {}
                },
                Common::Name(name) => {
                    op.f = name.to_string();
                    has.f = true;
                }
            }
            continue;
        }
        let value = p.scalar(depth + 1)?;
        if std::mem::replace(&mut seen[field], true) {
            return p.syntax(key_start, format!("the op has :{} twice", FIELDS[field]));
        }
        let bad = |what: &str, v: Scalar<'_>| -> Result<(), EdnError> {
            p.syntax(
                value_start,
                format!(
                    "expected :{} to be {what}, found {}",
                    FIELDS[field],
                    v.into_value()
                ),
            )
        };
        // Matched by position in `FIELDS` (a jump), not by the names again.
        match (field, value) {
            (TYPE, v) => match v.as_str().and_then(OpType::parse) {
                Some(kind) => {
                    op.kind = kind;
                    has_type = true;
                }
                None => bad("one of :invoke, :ok, :fail, :info", v)?,
            },
            // nil is "not given", as for :f: the import rules fill these in.
            (PROCESS | TIME | INDEX, Scalar::Other(Value::Null)) => {}
            (PROCESS, Scalar::Unsigned(n)) => {
                op.process = Process::Client(n);
                has.process = true;
            }
            (PROCESS, v) => match process_of(&v.clone().into_value()) {
                Some(proc_) => {
                    op.process = proc_;
                    has.process = true;
                }
                None => bad("a non-negative integer or :nemesis", v)?,
            },
            // Imports are renumbered in file order (see `import`), so :index is never
            // trusted and its value does not matter.
            (INDEX, _) => {}
            // jepsen.history writes `:time -1` for "unknown".
            (TIME, Scalar::Other(v)) if v.as_i64() == Some(-1) => {}
            (TIME, v) => match v.as_u64() {
                Some(n) => {
                    op.time = n;
                    has.time = true;
                }
                None => bad("a non-negative integer (nanoseconds) or -1 (unknown)", v)?,
            },
            // The common `:f :read`: one allocation, no `Value` in between.
            (F, Scalar::Keyword(k)) => {
                op.f = k.to_string();
                has.f = true;
            }
            (field, v) => {
                let value = v.into_value();
                match field {
                    F if !value.is_null() => {
                        op.f = value_to_text(value);
                        has.f = true;
                    }
                    F => {}
                    VALUE => op.value = value,
                    KEY => op.key = Some(value).filter(|v| !v.is_null()),
                    NODE => op.node = Some(value).filter(|v| !v.is_null()).map(value_to_text),
                    ERROR => op.error = Some(value).filter(|v| !v.is_null()),
                    _ => unreachable!("field_of returns positions in FIELDS"),
                }
            }
        }
    }
    if !has_type {
        return p.syntax(
            open,
            "the op map has no :type (expected :invoke, :ok, :fail or :info)",
        );
    }
    Ok(has)
}

/// The value of an op field in the shape nearly every op gives it: `:type :invoke`,
/// `:process 3`, `:time 1000`, `:index 7`, `:f :read`.
enum Common<'a> {
    Kind(OpType),
    Unsigned(u64),
    Name(&'a str),
}

impl<'a> Parser<'a> {
    /// The value of op field `field` when it has its [`Common`] shape, read in one token
    /// scan; otherwise `None`, with the cursor left where it was for [`Parser::scalar`]
    /// (which also words the errors).
    fn common_field(&mut self, field: usize) -> Result<Option<Common<'a>>, EdnError> {
        let start = self.pos;
        let common = match (field, self.peek()) {
            (TYPE | F, Some(b':')) => {
                self.pos += 1;
                let (name, ascii) = self.scan_token()?;
                match (field, name) {
                    (TYPE, b"invoke") => Some(Common::Kind(OpType::Invoke)),
                    (TYPE, b"ok") => Some(Common::Kind(OpType::Ok)),
                    (TYPE, b"fail") => Some(Common::Kind(OpType::Fail)),
                    (TYPE, b"info") => Some(Common::Kind(OpType::Info)),
                    (F, name) if ascii && !name.is_empty() => {
                        // SAFETY: the scan saw only ASCII bytes, which are valid UTF-8.
                        Some(Common::Name(unsafe { std::str::from_utf8_unchecked(name) }))
                    }
                    _ => None,
                }
            }
            (PROCESS | TIME | INDEX, Some(b'0'..=b'9')) => {
                let (digits, _) = self.scan_token()?;
                small_unsigned(digits).map(Common::Unsigned)
            }
            _ => None,
        };
        if common.is_none() {
            self.pos = start;
        }
        Ok(common)
    }
}

/// An op field's value, with the common shapes (`:invoke`, `3`) kept unallocated.
#[derive(Clone)]
enum Scalar<'a> {
    Keyword(&'a str),
    Unsigned(u64),
    Other(Value),
}

impl Scalar<'_> {
    fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Keyword(k) => Some(k),
            Scalar::Other(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    fn as_u64(&self) -> Option<u64> {
        match self {
            Scalar::Unsigned(n) => Some(*n),
            Scalar::Other(v) => v.as_u64(),
            Scalar::Keyword(_) => None,
        }
    }

    fn into_value(self) -> Value {
        match self {
            Scalar::Keyword(k) => Value::String(k.to_string()),
            Scalar::Unsigned(n) => Value::Number(n.into()),
            Scalar::Other(v) => v,
        }
    }
}

impl<'a> Parser<'a> {
    /// Like [`Parser::value`], but keywords and plain non-negative integers stay borrowed.
    fn scalar(&mut self, depth: usize) -> Result<Scalar<'a>, EdnError> {
        let start = self.pos;
        match self.peek() {
            Some(b':') => {
                self.pos += 1;
                let name = self.token_str()?;
                if name.is_empty() {
                    return self.syntax(start, "a keyword needs a name after `:`");
                }
                Ok(Scalar::Keyword(name))
            }
            Some(b'0'..=b'9') => {
                let tok = self.token_str()?;
                if let Some(n) = small_unsigned(tok.as_bytes()) {
                    return Ok(Scalar::Unsigned(n));
                }
                match tok.parse::<u64>() {
                    Ok(n) => Ok(Scalar::Unsigned(n)),
                    Err(_) => parse_number(tok).map_or_else(
                        || self.syntax(start, format!("{tok:?} is not a number")),
                        |v| Ok(Scalar::Other(v)),
                    ),
                }
            }
            _ => self.value(depth).map(Scalar::Other),
        }
    }
}

/// The op keys distest reads; others (`:debug`, `:final?`, ...) are ignored.
const FIELDS: [&str; 9] = [
    "type", "process", "f", "value", "time", "index", "key", "node", "error",
];
/// Positions in [`FIELDS`].
const TYPE: usize = 0;
const PROCESS: usize = 1;
const F: usize = 2;
const VALUE: usize = 3;
const TIME: usize = 4;
const INDEX: usize = 5;
const KEY: usize = 6;
const NODE: usize = 7;
const ERROR: usize = 8;

/// The position in [`FIELDS`] of an op key, by a match the compiler turns into a few
/// length and byte compares (this runs for every key of every op).
fn field_of(name: &[u8]) -> Option<usize> {
    Some(match name {
        b"type" => TYPE,
        b"process" => PROCESS,
        b"f" => F,
        b"value" => VALUE,
        b"time" => TIME,
        b"index" => INDEX,
        b"key" => KEY,
        b"node" => NODE,
        b"error" => ERROR,
        _ => return None,
    })
}

/// A process: an integer for clients, `:nemesis` for the fault injector.
pub(crate) fn process_of(v: &Value) -> Option<Process> {
    match v {
        Value::Number(n) => n.as_u64().map(Process::Client),
        Value::String(s) if s == "nemesis" => Some(Process::Nemesis),
        _ => None,
    }
}

/// Parses one EDN value that must fill `text` entirely (whitespace aside).
pub(crate) fn parse_complete(text: &[u8]) -> Result<Value, EdnError> {
    let mut p = Parser::new(text, true);
    let v = p.parse_value()?;
    p.skip_ws()?;
    match p.peek() {
        None => Ok(v),
        Some(b) => p.syntax(p.pos, format!("unexpected {} after the value", show(b))),
    }
}

/// Where the reader is in the file's top-level structure.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Level {
    /// Between top-level forms: expecting op maps or one vector/list of them.
    Top,
    /// Inside the top-level vector (`]`) or list (`)`).
    InSeq(u8),
}

/// One top-level step.
enum Step {
    /// An op map starts at this position (the cursor is there): the caller parses it
    /// where it keeps it.
    Op(usize),
    Bracket,
    /// The next form starts at or after the run's stop position.
    Reached,
    /// The input is over.
    End,
}

fn step(p: &mut Parser<'_>, level: &mut Level, stop_at: usize) -> Result<Step, EdnError> {
    p.skip_ws()?;
    if p.pos >= stop_at {
        return Ok(Step::Reached);
    }
    let Some(b) = p.peek() else {
        if !p.is_final {
            return Err(EdnError::Incomplete);
        }
        if let Level::InSeq(close) = *level {
            let message = format!(
                "the input ended before the closing {} of the op vector",
                show(close)
            );
            return p.syntax(p.pos, message);
        }
        return Ok(Step::End);
    };
    match (*level, b) {
        (Level::Top, b'[' | b'(') => {
            *level = Level::InSeq(if b == b'[' { b']' } else { b')' });
            p.pos += 1;
            Ok(Step::Bracket)
        }
        (Level::InSeq(close), c) if c == close => {
            *level = Level::Top;
            p.pos += 1;
            Ok(Step::Bracket)
        }
        (_, b'{' | b'#') => Ok(Step::Op(p.pos)),
        (_, other) => p.syntax(
            p.pos,
            format!(
                "expected an op map `{{...}}` or a vector of them, found {}",
                show(other)
            ),
        ),
    }
}

/// Why a run of [`parse_run`] stopped.
#[derive(Debug)]
enum Stop {
    /// At the stop position given.
    Reached,
    /// The window ended inside a form: read more.
    NeedMore,
    /// The input is over.
    Done,
    Failed {
        line: usize,
        message: String,
    },
}

/// Where parsing of one window stopped (its ops went to an [`Importer`]).
struct Run {
    /// Bytes of the window consumed: whole forms only.
    end: usize,
    /// The line number at `end`.
    line: usize,
    level: Level,
    stop: Stop,
}

/// Parses top-level forms of `window` (which starts between forms, on line `first_line`)
/// into `sink`, until the window ends or a form would start at or after `stop_at`.
fn parse_run(
    window: &[u8],
    is_final: bool,
    level: Level,
    first_line: usize,
    stop_at: usize,
    sink: &mut Importer<'_>,
) -> Run {
    let mut run = Run {
        end: 0,
        line: first_line,
        level,
        stop: Stop::NeedMore,
    };
    let mut p = Parser::new(window, is_final);
    // `run.line` is the line number at `window[counted]`.
    let mut counted = 0;
    loop {
        let mut stepped = step(&mut p, &mut run.level, stop_at);
        if let Ok(Step::Op(op_pos)) = stepped {
            // What lies before the op (separators, whole forms) is consumed. Lines are
            // counted once per op, from one op's start to the next's.
            run.line += count_newlines(&window[counted..op_pos]);
            counted = op_pos;
            run.end = op_pos;
            if let Err(e) = sink.push_with(run.line, |op| op_from_map(&mut p, 0, op)) {
                stepped = Err(e);
            }
        }
        match stepped {
            Ok(Step::Op(_)) => {}
            Ok(Step::Bracket) => {}
            Ok(Step::Reached) => run.stop = Stop::Reached,
            Ok(Step::End) => run.stop = Stop::Done,
            Err(EdnError::Incomplete) => break,
            Err(EdnError::Syntax { pos, message }) => {
                let line = run.line + count_newlines(&window[counted..pos]);
                run.stop = Stop::Failed { line, message };
                break;
            }
        }
        run.end = p.pos;
        if !matches!(run.stop, Stop::NeedMore) {
            break;
        }
    }
    // `run.line` is the line at `counted`; the caller wants it at `run.end`.
    run.line += count_newlines(&window[counted..run.end]);
    run
}

/// A place near the middle of `window` where an op map starts on a new line: where a
/// second thread can begin. Only a guess (the newline may sit inside a string), which
/// the first thread confirms by arriving exactly there.
fn split_point(window: &[u8]) -> Option<usize> {
    let mut from = window.len() / 2;
    // A bounded search: op lines are short, so a split is near when there is one.
    for _ in 0..64 {
        let nl = from + memchr::memchr(b'\n', &window[from..])?;
        let start = nl
            + 1
            + window[nl + 1..]
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b','))
                .count();
        if matches!(window.get(start), Some(b'{' | b'#')) {
            return Some(start);
        }
        from = nl + 1;
    }
    None
}

/// Reads `history.edn`: op maps one after another (Jepsen writes one per line), or one
/// vector or list of op maps, or a mix. Streams the input in windows; a large window is
/// parsed on two threads, halves split where an op map starts a line.
/// `size_bytes`, when known, sizes the ops vector (see [`super::read_history_sized`]).
pub(super) fn read(
    reader: impl BufRead,
    source_name: &str,
    size_bytes: Option<u64>,
) -> Result<History, ParseError> {
    read_into(
        reader,
        Importer::sized(source_name, size_bytes),
        READ_CHUNK_BYTES,
    )?
    .finish()
}

/// [`read`] with a chosen read size (tests use tiny ones so forms straddle windows).
#[cfg(test)]
fn read_in_windows(
    reader: impl BufRead,
    source_name: &str,
    read_chunk_bytes: usize,
) -> Result<History, ParseError> {
    read_into(reader, Importer::new(source_name), read_chunk_bytes)?.finish()
}

/// Reads every op into `importer` (which a streaming import flushes window by window).
pub(super) fn read_into<'s>(
    mut reader: impl BufRead,
    mut importer: Importer<'s>,
    read_chunk_bytes: usize,
) -> Result<Importer<'s>, ParseError> {
    let source_name = importer.source_name();
    let mut spare = Importer::new(source_name);
    let mut buf: Vec<u8> = Vec::with_capacity(2 * read_chunk_bytes.min(READ_CHUNK_BYTES));
    // `buf[start..]` is unparsed; `line` is the line number of `buf[start]`.
    let mut start = 0usize;
    let mut line = 1usize;
    let mut eof = false;
    let mut level = Level::Top;
    // Bytes of the input parsed so far.
    let mut consumed_bytes = 0u64;
    loop {
        let window = &buf[start..];
        let split = (window.len() >= PARALLEL_MIN_BYTES)
            .then(|| split_point(window))
            .flatten();
        // Room for the window's ops before it is parsed: a vector that grows by doubling
        // copies its ops each time (room never filled is address space only).
        let head_bytes = split.unwrap_or(window.len());
        importer.reserve(head_bytes / MIN_OP_BYTES);
        spare.reserve((window.len() - head_bytes) / MIN_OP_BYTES);
        let runs = match split {
            None => vec![parse_run(
                window,
                eof,
                level,
                line,
                usize::MAX,
                &mut importer,
            )],
            Some(split) => {
                // The head goes straight into the importer; the tail into `spare`, kept
                // only if the head ends exactly where the tail began, in the same
                // top-level state the tail assumed.
                let tail_line = line + count_newlines(&window[..split]);
                spare.clear();
                let (head, tail) = std::thread::scope(|s| {
                    let worker =
                        s.spawn(|| parse_run(window, eof, level, line, split, &mut importer));
                    let tail = parse_run(
                        &window[split..],
                        eof,
                        level,
                        tail_line,
                        usize::MAX,
                        &mut spare,
                    );
                    let head = worker
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    (head, tail)
                });
                let aligned =
                    matches!(head.stop, Stop::Reached) && head.end == split && head.level == level;
                if aligned {
                    importer.append(&mut spare);
                    vec![head, tail]
                } else {
                    vec![head]
                }
            }
        };
        let mut need_more = false;
        for run in runs {
            start += run.end;
            consumed_bytes += run.end as u64;
            line = run.line;
            level = run.level;
            match run.stop {
                Stop::Reached => {}
                Stop::Done => {
                    importer.flush()?;
                    return Ok(importer);
                }
                Stop::Failed { line, message } => {
                    return Err(ParseError::Syntax {
                        source_name: source_name.to_string(),
                        line,
                        message,
                    })
                }
                Stop::NeedMore => need_more = true,
            }
        }
        importer.reserve_for_input(consumed_bytes);
        importer.flush()?;
        if !need_more {
            continue;
        }
        if eof {
            // Unreachable by construction (a final window never asks for more); kept as an
            // error rather than a loop that could never end.
            return Err(ParseError::Syntax {
                source_name: source_name.to_string(),
                line,
                message: "the input ended inside a form".to_string(),
            });
        }
        if buf.len() - start > MAX_OP_BYTES {
            return Err(ParseError::Syntax {
                source_name: source_name.to_string(),
                line,
                message: format!(
                    "one op spans more than {} MiB; is this an EDN history?",
                    MAX_OP_BYTES >> 20
                ),
            });
        }
        // Drop what is parsed, then read more: at least as much as the unfinished form
        // holds so far, so a long form is parsed again a logarithmic number of times
        // (fixed steps made a form of n bytes cost n²).
        buf.drain(..start);
        start = 0;
        // The first read is short: the ops vector is sized from the bytes per op of the
        // first window, and until then it grows by doubling (copying its ops each time).
        let chunk_bytes = if consumed_bytes == 0 && buf.is_empty() {
            read_chunk_bytes.min(FIRST_READ_BYTES)
        } else {
            read_chunk_bytes
        };
        let want = chunk_bytes.max(buf.len()).min(
            (MAX_OP_BYTES + 1)
                .saturating_sub(buf.len())
                .max(chunk_bytes),
        );
        eof = fill(&mut reader, &mut buf, want).map_err(|e| ParseError::Io {
            source_name: source_name.to_string(),
            message: e.to_string(),
        })?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(text: &str) -> Value {
        parse_complete(text.as_bytes()).unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
    }

    fn err(text: &str) -> String {
        match parse_complete(text.as_bytes()) {
            Err(EdnError::Syntax { message, .. }) => message,
            other => panic!("{text:?} should not parse, got {other:?}"),
        }
    }

    fn read_str(s: &str) -> Result<History, ParseError> {
        read(s.as_bytes(), "history.edn", None)
    }

    #[test]
    fn keywords_symbols_nil_and_booleans() {
        assert_eq!(v(":invoke"), json!("invoke"));
        assert_eq!(v(":jepsen.db/primary"), json!("jepsen.db/primary"));
        assert_eq!(v("foo-bar?"), json!("foo-bar?"));
        assert_eq!(v("nil"), Value::Null);
        assert_eq!(v("true"), json!(true));
        assert_eq!(v("false"), json!(false));
        assert_eq!(v("-"), json!("-"));
    }

    #[test]
    fn integers_big_integers_floats_and_ratios() {
        assert_eq!(v("42"), json!(42));
        assert_eq!(v("-7"), json!(-7));
        assert_eq!(v("+7"), json!(7));
        assert_eq!(v("18446744073709551615"), json!(u64::MAX));
        assert_eq!(
            v("123456789012345678901234567890N"),
            json!("123456789012345678901234567890")
        );
        assert_eq!(v("12N"), json!(12));
        assert_eq!(v("1.5"), json!(1.5));
        assert_eq!(v("-2.5e3"), json!(-2500.0));
        assert_eq!(v("1.25M"), json!(1.25));
        assert_eq!(v("1/4"), json!(0.25));
        assert_eq!(v("0x1F"), json!(31));
        assert_eq!(v("1e999"), json!("1e999"));
        assert_eq!(v("##Inf"), json!("##Inf"));
        assert!(err("1/0").contains("not a number"));
        assert!(err("12abc").contains("not a number"));
    }

    #[test]
    fn the_integer_fast_path_equals_the_general_rules() {
        let mut texts: Vec<String> = [
            "0",
            "-0",
            "+0",
            "007",
            "-007",
            "1",
            "-1",
            "+1",
            "",
            "-",
            "+",
            "1-",
            "--1",
            "1.0",
            "1N",
            "12abc",
            "0x1F",
            "1/2",
            "999999999999999999",
            "-999999999999999999",
            "1000000000000000000",
            "9223372036854775807",
            "-9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
        ]
        .map(String::from)
        .to_vec();
        // Every length up to 20 digits, signed and not, and a spread of values.
        let mut x = 1u64;
        for digits in 1..=20u32 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let n = x % 10u64.pow(digits.min(19));
            texts.extend([
                n.to_string(),
                format!("-{n}"),
                format!("+{n}"),
                "9".repeat(digits as usize),
            ]);
        }
        for text in texts {
            if let Some(n) = small_integer(text.as_bytes()) {
                assert_eq!(
                    parse_number(&text),
                    Some(Value::Number(n.into())),
                    "{text:?}"
                );
            }
            // And the parser as a whole, fast path or not, as before.
            let mut p = Parser::new(text.as_bytes(), true);
            if text.bytes().next().is_some_and(|b| b.is_ascii_digit())
                || (text.len() > 1 && text.as_bytes()[1].is_ascii_digit())
            {
                let general = parse_number(&text);
                match p.number() {
                    Ok(v) => assert_eq!(Some(v), general, "{text:?}"),
                    Err(_) => assert_eq!(general, None, "{text:?}"),
                }
            }
        }
    }

    /// A random EDN value: its text as Clojure's printer (or a person) may write it, odd
    /// separators and tags included, and the JSON value it must read as.
    fn edn_and_json() -> impl proptest::strategy::Strategy<Value = (String, Value)> {
        use proptest::prelude::*;
        let sep = prop_oneof![
            Just(" "),
            Just(", "),
            Just(" ;; note\n"),
            Just(" #_ [1 \"x\"] "),
            Just("\n,\t")
        ];
        let leaf = prop_oneof![
            Just(("nil".to_string(), Value::Null)),
            any::<bool>().prop_map(|b| (b.to_string(), Value::Bool(b))),
            (any::<i64>(), any::<bool>()).prop_map(|(n, big)| {
                let text = if big { format!("{n}N") } else { n.to_string() };
                (text, Value::from(n))
            }),
            (u64::MAX as u128 + 1..u128::MAX).prop_map(|n| (format!("{n}N"), json!(n.to_string()))),
            "[a-z][a-z0-9?*-]{0,8}".prop_map(|k| (format!(":{k}"), json!(k))),
            any::<String>().prop_map(|s| {
                let mut text = String::from("\"");
                for c in s.chars() {
                    match c {
                        '"' => text.push_str("\\\""),
                        '\\' => text.push_str("\\\\"),
                        '\n' => text.push_str("\\n"),
                        '\t' => text.push_str("\\t"),
                        c if (c as u32) < 0x20 || c == 'é' => {
                            text.push_str(&format!("\\u{:04x}", c as u32))
                        }
                        c => text.push(c),
                    }
                }
                text.push('"');
                let tagged = s.len() % 3 == 0;
                (
                    if tagged {
                        format!("#inst {text}")
                    } else {
                        text
                    },
                    json!(s),
                )
            }),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            (
                prop::collection::vec((inner, "[a-z]{1,6}"), 0..6),
                sep.clone(),
                0..5u8,
            )
                .prop_map(|(items, sep, shape)| {
                    let texts: Vec<&str> = items.iter().map(|((t, _), _)| t.as_str()).collect();
                    let body = texts.join(sep);
                    if shape < 3 {
                        let (open, close) = [("[", "]"), ("(", ")"), ("#{", "}")][shape as usize];
                        let values = items.into_iter().map(|((_, v), _)| v).collect();
                        return (format!("{open}{body}{close}"), Value::Array(values));
                    }
                    let mut map = Map::new();
                    let mut text = String::from(if shape == 4 { "#my.ns/Rec{" } else { "{" });
                    for ((t, v), key) in items {
                        // A repeated key is left out of both (EDN maps have none).
                        if !map.contains_key(&key) {
                            text.push_str(&format!(":{key} {t}{sep}"));
                            map.insert(key, v);
                        }
                    }
                    text.push('}');
                    (text, Value::Object(map))
                })
        })
    }

    proptest::proptest! {
        #[test]
        fn random_edn_reads_as_its_json_whole_and_in_tiny_windows(
            (text, expected) in edn_and_json(),
            window in 1usize..64,
        ) {
            proptest::prop_assert_eq!(&v(&text), &expected);
            // As an op's value, read whole and through windows that cut every form.
            let history = format!(
                "{{:type :invoke :process 0 :f :write :value {text}}}\n\
                 {{:type :ok, :process 0, :f :write, :value {text}}}\n"
            );
            let whole = read(history.as_bytes(), "h.edn", Some(history.len() as u64)).unwrap();
            let windows = read_in_windows(history.as_bytes(), "h.edn", window).unwrap();
            proptest::prop_assert_eq!(whole.ops(), windows.ops());
            proptest::prop_assert_eq!(&whole.ops()[1].value, &expected);
        }
    }

    #[test]
    fn strings_with_escapes_and_characters() {
        assert_eq!(v(r#""a\"b\\c\n\t\u00e9""#), json!("a\"b\\c\n\té"));
        assert_eq!(v(r#""\ud83d\ude00""#), json!("😀"));
        assert_eq!(v("\"multi\nline\""), json!("multi\nline"));
        assert_eq!(v(r"\a"), json!("a"));
        assert_eq!(v(r"\newline"), json!("\n"));
        assert_eq!(v(r"\space"), json!(" "));
        assert_eq!(v(r"\u0041"), json!("A"));
        assert_eq!(v(r"[\( \)]"), json!(["(", ")"]));
        assert!(err(r#""bad \q escape""#).contains("escape"));
        assert!(err(r"\bogus").contains("character"));
    }

    #[test]
    fn collections_sets_and_maps_with_non_string_keys() {
        assert_eq!(v("[1 (2 3) #{4}]"), json!([1, [2, 3], [4]]));
        assert_eq!(
            v("{:a 1, \"b\" 2, 3 4, [5 6] 7, nil 8}"),
            json!({"a": 1, "b": 2, "3": 4, "[5 6]": 7, "nil": 8})
        );
        assert!(err("{:a 1 :a 2}").contains("twice"));
        assert!(err("{:a}").contains("no value"));
        assert!(err("[1 2}").contains("close"));
    }

    #[test]
    fn comments_commas_discards_tags_and_metadata() {
        assert_eq!(v("[1, ;; comment\n 2 #_ 3 #_[4 5] 6]"), json!([1, 2, 6]));
        assert_eq!(
            v("#inst \"2024-01-01T00:00:00.000-00:00\""),
            json!("2024-01-01T00:00:00.000-00:00")
        );
        assert_eq!(
            v("#uuid \"f81d4fae-7dec-11d0-a765-00a0c91e6bf6\""),
            json!("f81d4fae-7dec-11d0-a765-00a0c91e6bf6")
        );
        assert_eq!(v("#jepsen.history.Op{:f :read}"), json!({"f": "read"}));
        assert_eq!(
            v("#object[java.lang.Exception 0x1 \"boom\"]"),
            json!(["java.lang.Exception", 1, "boom"])
        );
        assert_eq!(v("^{:tag x} [1]"), json!([1]));
        assert_eq!(v("#\"a.*b\""), json!("a.*b"));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for text in [
            "",
            "[",
            "{",
            "\"abc",
            "#",
            "#_",
            "\\",
            ")",
            "'x",
            "[1 2",
            "{:a 1",
            "\"\\u12\"",
        ] {
            assert!(
                matches!(
                    parse_complete(text.as_bytes()),
                    Err(EdnError::Syntax { .. })
                ),
                "{text:?}"
            );
        }
        for deep in ["[", "#_", "^", "#t ", "{:a "].map(|s| s.repeat(100_000)) {
            assert!(err(&deep).contains("nested"), "{}", &deep[..8]);
        }
    }

    #[test]
    fn incomplete_windows_ask_for_more_instead_of_failing() {
        for text in ["[1 2", "\"ab", ":invo", "12", "{:a", "\\newli", "#_"] {
            let mut p = Parser::new(text.as_bytes(), false);
            assert_eq!(p.parse_value(), Err(EdnError::Incomplete), "{text:?}");
        }
    }

    #[test]
    fn reads_one_map_per_line_and_one_vector_of_maps_alike() {
        let lines = "{:index 0 :time 5 :type :invoke :process 0 :f :read :value nil}\n\
                     {:index 1 :time 9 :type :ok :process 0 :f :read :value 3}\n";
        let vector = "[{:index 0, :time 5, :type :invoke, :process 0, :f :read, :value nil}\n \
                       #jepsen.history.Op{:index 1, :time 9, :type :ok, :process 0, :f :read, :value 3}]";
        let a = read_str(lines).unwrap();
        let b = read_str(vector).unwrap();
        assert_eq!(a.ops(), b.ops());
        assert_eq!(a.ops()[1].value, json!(3));
        assert_eq!(a.ops()[1].time, 9);
    }

    #[test]
    fn op_fields_map_to_the_distest_op() {
        let h = read_str(
            "{:type :info, :process :nemesis, :f :start-partition, :value :majority}\n\
             {:type :invoke :process 7 :f :write :value 1 :node \"n1\" :key 3 :debug {:x 1}}\n\
             {:type :info :process 7 :f :write :value 1 :error [:timed-out \"after 5s\"]}\n",
        )
        .unwrap();
        let ops = h.ops();
        assert_eq!(ops[0].process, Process::Nemesis);
        assert_eq!(ops[0].value, json!("majority"));
        assert_eq!(ops[1].node.as_deref(), Some("n1"));
        assert_eq!(ops[1].key, Some(json!(3)));
        assert_eq!(ops[2].kind, OpType::Info);
        assert_eq!(ops[2].error, Some(json!(["timed-out", "after 5s"])));
    }

    #[test]
    fn nil_process_and_unknown_time_count_as_missing() {
        let h = read_str(
            "{:type :invoke :process 2 :f :read :time 50}\n\
             {:type :ok :process 2 :f :read :value 1 :time -1 :index -1}\n\
             {:type :ok :process nil :f :write :value 3}\n",
        )
        .unwrap();
        assert_eq!(h.ops()[1].time, 50);
        assert_eq!(h.len(), 4, "the lone completion got a synthetic invocation");
        assert_eq!(h.ops()[2].process, Process::Client(3));
    }

    #[test]
    fn bad_op_fields_name_the_line_and_the_expectation() {
        let cases = [
            (
                "{:type :invoke :process 0 :f :read}\n{:type :bogus :process 0 :f :read}",
                2,
                ":type",
            ),
            ("{:type :invoke :process -1 :f :read}", 1, ":process"),
            ("{:type :invoke :process :n1 :f :read}", 1, ":process"),
            ("{:type :invoke :process 0 :f :read :time 1.5}", 1, ":time"),
            ("{:process 0 :f :read}", 1, "no :type"),
            (
                "\n\n{:type :invoke :type :ok :process 0 :f :read}",
                3,
                "twice",
            ),
            ("{:type :invoke :process 0 :f :read}\n42", 2, "op map"),
            ("[{:type :invoke :process 0 :f :read}", 1, "closing"),
            (
                "{:type :invoke :process 0 :f :read\n :value [1 2}",
                2,
                "close",
            ),
        ];
        for (text, line, needle) in cases {
            let e = read_str(text).unwrap_err();
            match &e {
                ParseError::Syntax {
                    line: l, message, ..
                } => {
                    assert_eq!(*l, line, "{text:?}: {e}");
                    assert!(message.contains(needle), "{text:?}: {e}");
                }
                other => panic!("{text:?}: expected a syntax error, got {other}"),
            }
        }
    }

    /// A history large enough to be split across two threads, with newlines followed by
    /// `{` inside strings (false split points) every few ops.
    fn big_history(ops: u64, vector: bool) -> String {
        let mut text = String::from(if vector { "[" } else { "" });
        for i in 0..ops {
            let error = if i % 7 == 0 {
                " :error \"boom\n{:not an op}\""
            } else {
                ""
            };
            text.push_str(&format!(
                "{{:index {i} :type :invoke :process {i} :f :write :value {i}{error}}}\n"
            ));
        }
        if vector {
            text.push(']');
        }
        text
    }

    #[test]
    fn two_thread_windows_keep_order_and_survive_false_split_points() {
        for vector in [false, true] {
            let text = big_history(40_000, vector);
            assert!(text.len() > 2 * PARALLEL_MIN_BYTES);
            let parallel = read(text.as_bytes(), "h.edn", Some(text.len() as u64)).unwrap();
            let serial = read_in_windows(text.as_bytes(), "h.edn", 1000).unwrap();
            // Several windows, each split: ops must neither repeat nor go missing.
            let windows =
                read_in_windows(text.as_bytes(), "h.edn", PARALLEL_MIN_BYTES + 999).unwrap();
            assert_eq!(parallel.len(), 40_000);
            assert_eq!(parallel.ops(), serial.ops());
            assert_eq!(windows.ops(), serial.ops());
            // A wrong size only costs the saving of a vector sized right.
            for size_bytes in [None, Some(1), Some(u64::MAX)] {
                let h = read(text.as_bytes(), "h.edn", size_bytes).unwrap();
                assert_eq!(h.ops(), serial.ops(), "{size_bytes:?}");
            }
            assert!(parallel
                .ops()
                .iter()
                .enumerate()
                .all(|(i, op)| op.value == json!(i)));
        }
        let err = read("{:type :ok".as_bytes(), "h.edn", None).unwrap_err();
        assert!(err.to_string().contains("ended"), "{err}");
    }

    #[test]
    fn error_in_the_second_half_of_a_window_names_its_line() {
        let mut text = big_history(40_000, false);
        let bad_line = count_newlines(text.as_bytes()) - 3;
        let at = text
            .match_indices('\n')
            .nth(bad_line - 1)
            .map(|(i, _)| i + 1)
            .unwrap();
        text.insert_str(at, "{:type :invoke :process 1 :f :read :value [1 2}\n");
        let err = read(text.as_bytes(), "h.edn", None).unwrap_err();
        assert!(
            matches!(err, ParseError::Syntax { line, .. } if line == bad_line + 1),
            "{err}"
        );
    }

    #[test]
    fn a_long_form_costs_time_linear_in_its_length() {
        // One op with a 48 MB string, read in 64 KB steps: re-parsing the unfinished
        // form after every step (as fixed steps did) scans ~18 GB and takes minutes in
        // a debug build; reads that grow with the form scan ~100 MB.
        let big = "x".repeat(48 << 20);
        let text = format!(
            "{{:type :invoke :process 0 :f :write :value 1}}\n{{:type :ok :process 0 :f :write :value \"{big}\"}}\n"
        );
        let started = std::time::Instant::now();
        let h = read_in_windows(text.as_bytes(), "h.edn", 64 << 10).unwrap();
        assert_eq!(h.ops()[1].value.as_str().map(str::len), Some(48 << 20));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "a 48 MB form took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn long_histories_stream_through_small_windows() {
        let mut text = String::from("[");
        for i in 0..20_000u64 {
            text.push_str(&format!(
                "{{:index {} :type :invoke :process {} :f :txn :value [[:append {} {}] [:r {} nil]]}}\n",
                2 * i, i % 7, i % 5, i, i % 5
            ));
            text.push_str(&format!(
                "{{:index {} :type :ok :process {} :f :txn :value [[:append {} {}] [:r {} [1 2 3]]]}}\n",
                2 * i + 1, i % 7, i % 5, i, i % 5
            ));
        }
        text.push(']');
        // Tiny windows: forms straddle window ends all the time.
        let h = read_in_windows(text.as_bytes(), "h.edn", 7).unwrap();
        assert_eq!(h.len(), 40_000);
        assert_eq!(
            h.ops()[39_999].value,
            json!([["append", 4, 19_999], ["r", 4, [1, 2, 3]]])
        );
    }
}
