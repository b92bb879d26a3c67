//! The lexical layer of the two fast JSONL line parsers (`fast_op.rs`: a line to an
//! `Op`; `elle/jsonl.rs`: a transaction line straight to raw micro-ops): a cursor over
//! one line whose every token reader answers `None` ("not certain") for anything it cannot
//! read exactly as serde_json would, so that the caller falls back to serde_json.

use serde_json::Number;
use std::str::FromStr;

/// Where a parser is in one line.
pub(crate) struct Cursor<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) pos: usize,
}

/// An integer as serde_json classifies it.
pub(crate) enum Integer {
    Unsigned(u64),
    Negative(i64),
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { bytes, pos: 0 }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// JSON's whitespace, exactly serde_json's set (not form feed or vertical tab).
    pub(crate) fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// After an item of an object or array: skips whitespace and a `,` (more items
    /// follow: `false`) or the closing `close` (`true`); anything else is not ours.
    pub(crate) fn end_of_items(&mut self, close: u8) -> Option<bool> {
        self.skip_whitespace();
        let next = self.peek()?;
        if next != b',' && next != close {
            return None;
        }
        self.pos += 1;
        Some(next == close)
    }

    pub(crate) fn eat(&mut self, byte: u8) -> Option<()> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Some(())
        } else {
            None
        }
    }

    pub(crate) fn eat_literal(&mut self, literal: &[u8]) -> Option<()> {
        let end = self.pos + literal.len();
        if self.bytes.get(self.pos..end) == Some(literal) {
            self.pos = end;
            Some(())
        } else {
            None
        }
    }

    /// The bytes of a string without escapes or control characters, quotes consumed.
    pub(crate) fn raw_string(&mut self) -> Option<&'a [u8]> {
        /// Bytes scanned one at a time before switching to `memchr`.
        const SHORT: usize = 16;
        self.eat(b'"')?;
        let start = self.pos;
        let rest = self.bytes.get(start..)?;
        let stop = |b: u8| b == b'"' || b == b'\\' || b < 0x20;
        // Most strings are short, and a plain scan is quickest for them; long ones (the
        // accumulated values of a kv history) are searched with `memchr`, then checked
        // for control characters by a loop without early exit, which vectorizes.
        let len = match rest.iter().take(SHORT).position(|&b| stop(b)) {
            Some(len) => len,
            None => {
                let len = SHORT + memchr::memchr2(b'"', b'\\', rest.get(SHORT..)?)?;
                let control = rest[SHORT..len].iter().fold(false, |c, &b| c | (b < 0x20));
                if control {
                    return None;
                }
                len
            }
        };
        if rest[len] != b'"' {
            return None;
        }
        self.pos = start + len + 1;
        Some(&rest[..len])
    }

    /// A string as `&str`; invalid UTF-8 is serde's error.
    pub(crate) fn string(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.raw_string()?).ok()
    }

    /// `index` and `time`: a `u64` written as a plain integer (anything else errs in serde).
    pub(crate) fn unsigned(&mut self) -> Option<u64> {
        match self.integer()? {
            Integer::Unsigned(v) => Some(v),
            Integer::Negative(_) => None,
        }
    }

    /// An integer token that serde_json reads as an integer: `Unsigned` if it fits `u64`,
    /// `Negative` if it is below zero and fits `i64`. `None` for everything else: floats,
    /// `-0` and out-of-range integers (floats in serde), and malformed numbers.
    pub(crate) fn integer(&mut self) -> Option<Integer> {
        let negative = self.eat(b'-').is_some();
        let digits_start = self.pos;
        let mut magnitude: u64 = 0;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            magnitude = magnitude
                .checked_mul(10)?
                .checked_add(u64::from(digit - b'0'))?;
            self.pos += 1;
        }
        let digit_count = self.pos - digits_start;
        // No digits, or a leading zero (`01`), is malformed.
        if digit_count == 0 || (digit_count > 1 && self.bytes[digits_start] == b'0') {
            return None;
        }
        // A fraction or exponent makes it a float.
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return None;
        }
        if !negative {
            return Some(Integer::Unsigned(magnitude));
        }
        // serde: negatives in `i64` range stay integers; `-0` becomes the float -0.0.
        match magnitude {
            0 => None,
            m if m <= i64::MIN.unsigned_abs() => {
                Some(Integer::Negative(0i64.wrapping_sub_unsigned(m)))
            }
            _ => None,
        }
    }

    /// Any JSON number, as serde_json reads it inside a `Value`.
    pub(crate) fn number(&mut self) -> Option<Number> {
        let start = self.pos;
        if let Some(integer) = self.integer() {
            return Some(match integer {
                Integer::Unsigned(v) => Number::from(v),
                Integer::Negative(v) => Number::from(v),
            });
        }
        // Not a plain integer: find the token by JSON's grammar and let serde_json's own
        // number parser read it, so that float bits (and overflow errors) are its own.
        self.pos = start;
        self.eat(b'-');
        self.digits()?;
        if self.eat(b'.').is_some() {
            self.digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.digits()?;
        }
        let token = std::str::from_utf8(&self.bytes[start..self.pos]).ok()?;
        Number::from_str(token).ok()
    }

    /// One or more digits; a leading zero is left for the caller's grammar to judge.
    fn digits(&mut self) -> Option<()> {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        (self.pos > start).then_some(())
    }

    /// An integer that fits `i64` (larger ones are `u64` in serde: not certain here).
    pub(crate) fn int(&mut self) -> Option<i64> {
        match self.integer()? {
            Integer::Unsigned(v) => i64::try_from(v).ok(),
            Integer::Negative(v) => Some(v),
        }
    }
}
