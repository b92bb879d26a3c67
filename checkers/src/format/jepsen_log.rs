//! Jepsen's text log (`jepsen.log`): the ops `jepsen.util/log-op` prints, among other
//! lines; also Jepsen's `history.txt`, the same fields without the log prefix.
//!
//! Three layouts occur in the wild, all handled (`⇥` is a tab):
//!
//! ```text
//! INFO  jepsen.util - 3⇥:invoke⇥:cas⇥[1 2]
//! 2017-02-13 16:55:34,339{GMT}⇥INFO⇥[jepsen worker 0] jepsen.util: 0⇥:ok⇥:read⇥nil
//! 3⇥:invoke⇥:cas⇥[1 2]                       (history.txt)
//! ```
//!
//! After the `jepsen.util` logger name (or from the line start) come tab-separated
//! fields: process, type, f, value
//! (EDN, parsed by [`super::edn`]) and, when the op failed, the error as `str` printed it
//! (EDN when it parses as one value, else kept as text). A line is an op line when its
//! first field is a process (an integer or `:nemesis`); other lines are ignored, but an op
//! line that does not parse is an error, never skipped. A leading timestamp becomes the
//! op's time (nanoseconds since the first timestamped op); without one, time is filled in
//! by the import rules of [`super::import`].

use super::edn::{self, process_of, value_to_text, EdnError, Parser};
use super::import::{Importer, Presence};
use super::ParseError;
use crate::history::History;
use crate::op::{Op, OpType, Process};
use serde_json::Value;
use std::io::{BufRead, Read};

const MARKER: &[u8] = b"jepsen.util";
/// Lines longer than this are refused rather than buffered without end.
const MAX_LINE_BYTES: u64 = 256 << 20;

/// A file without any `jepsen.util` log line is read as a bare `history.txt`, which is
/// all ops; it must have at least this share of op lines among its non-blank lines
/// (numerator, denominator), or it is some other text in which a few lines happen to
/// look like ops. Jepsen logs proper interleave ops with any amount of other logging,
/// so the rule does not apply to them once one op line carries the logger name.
const MIN_BARE_OP_SHARE: (usize, usize) = (1, 2);

/// Reads a Jepsen text log line by line.
pub(super) fn read(reader: impl BufRead, source_name: &str) -> Result<History, ParseError> {
    read_into(reader, Importer::new(source_name))?.finish()
}

/// Op lines an importer collects before a streaming import hands them on.
const FLUSH_EVERY_OPS: usize = 4096;

/// Reads every op line into `importer` (which a streaming import flushes as it goes).
pub(super) fn read_into<'s>(
    mut reader: impl BufRead,
    mut importer: Importer<'s>,
) -> Result<Importer<'s>, ParseError> {
    let source_name = importer.source_name();
    let mut line = Vec::with_capacity(256);
    let mut line_no = 0usize;
    let mut first_ms: Option<i64> = None;
    let finder = memchr::memmem::Finder::new(MARKER);
    // For the "mostly ops" rule (see [`MIN_BARE_OP_SHARE`]).
    let (mut text_lines, mut op_lines, mut marked_ops) = (0usize, 0usize, 0usize);
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| ParseError::Io {
                source_name: source_name.to_string(),
                message: e.to_string(),
            })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if line.len() as u64 > MAX_LINE_BYTES {
            return Err(ParseError::Syntax {
                source_name: source_name.to_string(),
                line: line_no,
                message: format!(
                    "the line is longer than {} MiB; is this a Jepsen log?",
                    MAX_LINE_BYTES >> 20
                ),
            });
        }
        let text = trim_end(&line);
        text_lines += usize::from(!text.trim_ascii().is_empty());
        // Log lines carry the logger name; `history.txt` lines are the bare fields.
        let (fields, marked) = match finder.find(text) {
            Some(at) => (after_logger_name(&text[at + MARKER.len()..]), true),
            None => (text, false),
        };
        let parsed = parse_op_fields(fields).map_err(|message| ParseError::Syntax {
            source_name: source_name.to_string(),
            line: line_no,
            message,
        })?;
        let Some(mut op) = parsed else { continue };
        op_lines += 1;
        marked_ops += usize::from(marked);
        let mut has = Presence {
            time: false,
            process: true,
            f: true,
        };
        if let Some(ms) = timestamp_ms(text) {
            let first = *first_ms.get_or_insert(ms);
            // A clock step backwards leaves the time to the import rules (previous op's).
            if let Some(delta_ms) = ms.checked_sub(first).and_then(|d| u64::try_from(d).ok()) {
                op.time = delta_ms.saturating_mul(1_000_000);
                has.time = true;
            }
        }
        importer.push(op, line_no, has);
        if op_lines % FLUSH_EVERY_OPS == 0 {
            importer.flush()?;
        }
    }
    if marked_ops == 0
        && op_lines > 0
        && op_lines * MIN_BARE_OP_SHARE.1 < text_lines * MIN_BARE_OP_SHARE.0
    {
        return Err(ParseError::NoOps {
            source_name: source_name.to_string(),
            why: format!(
                "only {op_lines} of its {text_lines} lines look like ops and none is a Jepsen log line (`jepsen.util`), so it is neither a Jepsen log nor a history.txt, whose lines are all ops"
            ),
        });
    }
    importer.flush()?;
    Ok(importer)
}

fn trim_end(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|b| !matches!(b, b'\n' | b'\r'))
        .map_or(0, |p| p + 1);
    &line[..end]
}

/// Skips the separator after the logger name: ` - ` (old layouts) or `: ` (newer ones).
fn after_logger_name(rest: &[u8]) -> &[u8] {
    let rest = rest.trim_ascii_start();
    let rest = match rest.first() {
        Some(b'-') => &rest[1..],
        // `jepsen.util: :nemesis`: the first colon is the separator, the second the keyword's.
        Some(b':') if !rest.get(1).is_some_and(u8::is_ascii_alphabetic) => &rest[1..],
        _ => rest,
    };
    rest.trim_ascii_start()
}

/// `Ok(None)` for lines that are not ops; an error for op lines that do not parse.
fn parse_op_fields(fields: &[u8]) -> Result<Option<Op>, String> {
    let Some(tab) = memchr::memchr(b'\t', fields) else {
        return Ok(None);
    };
    let process = match &fields[..tab] {
        b":nemesis" => Process::Nemesis,
        p if !p.is_empty() && p.iter().all(u8::is_ascii_digit) => {
            match edn::parse_complete(p).ok().as_ref().and_then(process_of) {
                Some(process) => process,
                None => {
                    return Err(format!(
                        "process {} does not fit in 64 bits",
                        String::from_utf8_lossy(p)
                    ))
                }
            }
        }
        _ => return Ok(None),
    };
    let rest = &fields[tab + 1..];
    let (kind_text, rest) = split_tab(rest)
        .ok_or("expected `process<TAB>type<TAB>f<TAB>value` after the process, found no tab after the type")?;
    let kind = std::str::from_utf8(kind_text)
        .ok()
        .and_then(OpType::parse)
        .ok_or_else(|| {
            format!(
                "expected the op type :invoke, :ok, :fail or :info, found {:?}",
                String::from_utf8_lossy(kind_text)
            )
        })?;
    let (f_text, rest) =
        split_tab(rest).ok_or("expected a tab between the op's f and its value")?;
    let f = edn::parse_complete(f_text).map_err(|e| describe("the op's f", &e))?;
    let mut p = Parser::new(rest, true);
    let value = p
        .parse_value()
        .map_err(|e| describe("the op's value", &e))?;
    let after = &rest[p.pos()..];
    let error = match after.first() {
        None => None,
        Some(b'\t') => error_value(&after[1..]),
        Some(_) if after.trim_ascii().is_empty() => None,
        Some(_) => {
            return Err(format!(
                "unexpected text {:?} after the op's value; expected a tab and the error",
                String::from_utf8_lossy(after)
            ))
        }
    };
    let mut op = Op::invoke(process, value_to_text(f), value);
    op.kind = kind;
    op.error = error;
    Ok(Some(op))
}

fn split_tab(s: &[u8]) -> Option<(&[u8], &[u8])> {
    memchr::memchr(b'\t', s).map(|i| (&s[..i], &s[i + 1..]))
}

/// The error column: EDN (`:timed-out`, `{:type ...}`) when it is one value, else the text.
fn error_value(text: &[u8]) -> Option<Value> {
    let text = text.trim_ascii();
    if text.is_empty() {
        return None;
    }
    Some(
        edn::parse_complete(text)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(text).into_owned())),
    )
}

fn describe(what: &str, e: &EdnError) -> String {
    match e {
        EdnError::Syntax { message, .. } => format!("{what} is not valid EDN: {message}"),
        EdnError::Incomplete => format!("{what} is incomplete EDN"),
    }
}

/// `2024-01-01 12:00:00,123` (or `.123`, or a `T`) at the start of a line, in ms since 1970.
fn timestamp_ms(line: &[u8]) -> Option<i64> {
    let t = line.get(..23)?;
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = &t[r];
        s.iter()
            .all(u8::is_ascii_digit)
            .then(|| s.iter().fold(0i64, |a, &b| a * 10 + i64::from(b - b'0')))
    };
    let seps_ok = t[4] == b'-'
        && t[7] == b'-'
        && matches!(t[10], b' ' | b'T')
        && t[13] == b':'
        && t[16] == b':'
        && matches!(t[19], b',' | b'.');
    if !seps_ok {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some((((days * 24 + h) * 60 + mi) * 60 + s) * 1000 + ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read_str(s: &str) -> Result<History, ParseError> {
        read(s.as_bytes(), "jepsen.log")
    }

    #[test]
    fn reads_old_and_new_layouts_and_ignores_other_lines() {
        let log = "INFO  jepsen.core - Running test\n\
                   INFO  jepsen.util - 3\t:invoke\t:cas\t[1 2]\n\
                   2017-02-13 16:55:34,339{GMT}\tINFO\t[jepsen worker 0] jepsen.util: 0\t:invoke\t:read\tnil\n\
                   INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n\
                   INFO  jepsen.util - 3\t:info\t:cas\t[1 2]\t:timed-out\n\
                   2017-02-13 16:55:34,341{GMT}\tINFO\t[jepsen worker 0] jepsen.util: 0\t:ok\t:read\t2\n\
                   INFO  jepsen.util - :nemesis\t:info\t:start\t{\"n1\" #{\"n2\"}}\n";
        let h = read_str(log).unwrap();
        let ops = h.ops();
        assert_eq!(ops.len(), 6);
        assert_eq!(ops[0].f, "cas");
        assert_eq!(ops[0].value, json!([1, 2]));
        assert_eq!(ops[1].process, Process::Client(0));
        assert_eq!(ops[2].process, Process::Nemesis);
        assert_eq!(ops[3].error, Some(json!("timed-out")));
        assert_eq!(ops[4].time, 2_000_000);
        assert_eq!(ops[5].value, json!({"n1": ["n2"]}));
    }

    #[test]
    fn reads_jepsen_history_txt_lines_without_a_log_prefix() {
        let h = read_str(
            "0\t:invoke\t:write\t1\n\
             :nemesis\t:info\t:start\tnil\n\
             0\t:info\t:write\t1\tindeterminate: socket closed\n",
        )
        .unwrap();
        assert_eq!(h.len(), 3);
        assert_eq!(h.ops()[1].process, Process::Nemesis);
        assert_eq!(
            h.ops()[2].error,
            Some(json!("indeterminate: socket closed"))
        );
    }

    #[test]
    fn free_text_error_is_kept_as_text() {
        let h = read_str(
            "INFO  jepsen.util - 1\t:invoke\t:read\tnil\n\
             INFO  jepsen.util - 1\t:fail\t:read\tnil\tindeterminate: Read timed out\n",
        )
        .unwrap();
        assert_eq!(
            h.ops()[1].error,
            Some(json!("indeterminate: Read timed out"))
        );
    }

    #[test]
    fn malformed_op_line_is_an_error_with_its_line() {
        let err = read_str(
            "INFO  jepsen.util - 1\t:invoke\t:read\tnil\n\
             INFO  jepsen.util - 1\t:ok\t:read\t[1 2\n",
        )
        .unwrap_err();
        assert!(matches!(err, ParseError::Syntax { line: 2, .. }), "{err}");
        assert!(err.to_string().contains("value"), "{err}");
        let err = read_str("INFO  jepsen.util - 1\t:invok\t:read\tnil\n").unwrap_err();
        assert!(err.to_string().contains("op type"), "{err}");
    }

    #[test]
    fn timestamps_become_nanoseconds_since_the_first_op() {
        assert_eq!(timestamp_ms(b"1970-01-02 00:00:01,005"), Some(86_401_005));
        assert_eq!(
            timestamp_ms(b"2024-03-01 00:00:00.000"),
            Some(1_709_251_200_000)
        );
        assert_eq!(timestamp_ms(b"INFO  jepsen.util - 1\t:ok"), None);
    }
}
