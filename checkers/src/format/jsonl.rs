//! distest's own format: one JSON op per line (`history.jsonl`).
//!
//! Speed matters here (`distest check` on long runs), so the reader takes the input in
//! batches of whole lines and parses each large batch on two threads, first half and
//! second half, keeping file order. Memory stays bounded by one batch plus the ops.

use super::fast_op::OpParser;
use super::{count_newlines, fill, invalid_at, ParseError};
use crate::history::History;
use crate::op::Op;
use std::io::BufRead;

/// Bytes of whole lines parsed per batch.
const BATCH_BYTES: usize = 8 << 20;
/// Batches smaller than this are parsed on the calling thread alone: a thread costs more.
const PARALLEL_MIN_BYTES: usize = 256 << 10;
/// A single line longer than this is refused: it is no op distest wrote.
const MAX_LINE_BYTES: usize = 1 << 30;

/// Reads JSON Lines; blank lines are skipped. Indices must be dense (distest writes them so).
pub(super) fn read(reader: impl BufRead, source_name: &str) -> Result<History, ParseError> {
    read_in_batches(reader, source_name, BATCH_BYTES)
}

/// [`read`] with a chosen batch size (tests use tiny ones to cross batch ends).
fn read_in_batches(
    mut reader: impl BufRead,
    source_name: &str,
    batch_bytes: usize,
) -> Result<History, ParseError> {
    let mut parsed = Parsed::default();
    let mut spare = Parsed::default();
    let mut buf: Vec<u8> = Vec::new();
    // The file line number of `buf[0]`.
    let mut line_no = 1usize;
    let mut eof = false;
    while !eof {
        let Some((cut, at_end)) =
            next_lines(&mut reader, &mut buf, batch_bytes, line_no, source_name)?
        else {
            continue;
        };
        eof = at_end;
        line_no = parse_batch(&buf[..cut], line_no, source_name, &mut parsed, &mut spare)?;
        buf.drain(..cut);
    }
    History::new(parsed.ops).map_err(|error| invalid_at(source_name, &parsed.lines, error))
}

/// Reads about `batch_bytes` more of `reader` into `buf` and finds where its whole lines
/// end: `Some((end, at_end_of_input))`, or `None` when no line is complete yet (read
/// again). `line_no` is the file line of `buf[0]`, for the error about a line too long.
pub(crate) fn next_lines(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    batch_bytes: usize,
    line_no: usize,
    source_name: &str,
) -> Result<Option<(usize, bool)>, ParseError> {
    let want = batch_bytes.saturating_sub(buf.len()).max(64 << 10);
    let eof = fill(reader, buf, want).map_err(|e| ParseError::Io {
        source_name: source_name.to_string(),
        message: e.to_string(),
    })?;
    if eof {
        return Ok(Some((buf.len(), true)));
    }
    match memchr::memrchr(b'\n', buf) {
        Some(i) => Ok(Some((i + 1, false))),
        None if buf.len() > MAX_LINE_BYTES => Err(ParseError::Syntax {
            source_name: source_name.to_string(),
            line: line_no,
            message: format!(
                "a line is longer than {} MiB; expected one JSON op object per line",
                MAX_LINE_BYTES >> 20
            ),
        }),
        None => Ok(None),
    }
}

/// Ops in file order with the line each came from.
#[derive(Default)]
struct Parsed {
    ops: Vec<Op>,
    lines: Vec<usize>,
}

/// Parses whole lines starting at file line `first_line`; returns the line after them.
/// Large batches are split in two: the head is parsed on a scoped thread straight into
/// `into`, the tail here into `spare` (reused across batches, so its memory is touched
/// once), then moved after the head.
fn parse_batch(
    batch: &[u8],
    first_line: usize,
    source_name: &str,
    into: &mut Parsed,
    spare: &mut Parsed,
) -> Result<usize, ParseError> {
    let split = (batch.len() >= PARALLEL_MIN_BYTES)
        .then(|| memchr::memchr(b'\n', &batch[batch.len() / 2..]).map(|i| batch.len() / 2 + i + 1))
        .flatten();
    let Some(split) = split else {
        return parse_lines(batch, first_line, source_name, into);
    };
    let (head, tail) = batch.split_at(split);
    let tail_line = first_line + count_newlines(head);
    spare.ops.clear();
    spare.lines.clear();
    let (head_result, tail_result) = std::thread::scope(|s| {
        let worker = s.spawn(|| parse_lines(head, first_line, source_name, into));
        let tail_result = parse_lines(tail, tail_line, source_name, spare);
        let head_result = worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (head_result, tail_result)
    });
    // The first error in file order is the one reported.
    head_result?;
    let next_line = tail_result?;
    into.ops.append(&mut spare.ops);
    into.lines.append(&mut spare.lines);
    Ok(next_line)
}

fn parse_lines(
    chunk: &[u8],
    first_line: usize,
    source_name: &str,
    into: &mut Parsed,
) -> Result<usize, ParseError> {
    let newlines = count_newlines(chunk);
    // One op per line at most: reserving up front spares the copies of a growing vector.
    into.ops.reserve(newlines + 1);
    into.lines.reserve(newlines + 1);
    let mut fast = OpParser::default();
    for (line_no, line) in (first_line..).zip(lines_of(chunk)) {
        if !line.iter().all(u8::is_ascii_whitespace) {
            // The fast path answers only when it is sure to agree with serde_json; serde
            // reads the rest, and words every error.
            let op = match fast.parse(line) {
                Some(op) => {
                    // Debug builds (so every test run) check each answer against serde.
                    debug_assert_eq!(
                        serde_json::from_slice::<Op>(line).ok().as_ref(),
                        Some(&op),
                        "the fast path disagrees with serde_json"
                    );
                    op
                }
                None => serde_json::from_slice(line).map_err(|e| ParseError::Syntax {
                    source_name: source_name.to_string(),
                    line: line_no,
                    message: format!("expected one JSON op object per line: {e}"),
                })?,
            };
            into.ops.push(op);
            into.lines.push(line_no);
        }
    }
    // A final line without its newline still counts as one line.
    Ok(first_line + newlines)
}

/// The lines of `chunk`, each with its newline (the last may lack one), as
/// `split_inclusive` gives them; `memchr` finds the ends several times faster.
fn lines_of(chunk: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = chunk;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        Some(line)
    })
}

/// Serializes one op as a JSONL line (with the trailing newline) into `out`.
pub fn write_jsonl_line(op: &Op, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, op).expect("an Op always serializes");
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{OpType, Process};
    use serde_json::json;

    fn sample(n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            let inv = Op::invoke(Process::Client(i % 5), "write", json!(i)).with_time(i);
            let mut inv = inv;
            inv.index = 2 * i;
            let mut done = inv.complete(OpType::Ok, json!(i));
            done.index = 2 * i + 1;
            write_jsonl_line(&inv, &mut out);
            write_jsonl_line(&done, &mut out);
        }
        out
    }

    #[test]
    fn batches_and_threads_keep_file_order() {
        let text = sample(20_000);
        assert!(
            text.len() > 2 * PARALLEL_MIN_BYTES,
            "the sample must take the parallel path"
        );
        let whole = read(&text[..], "h.jsonl").unwrap();
        let small = read_in_batches(&text[..], "h.jsonl", 1000).unwrap();
        assert_eq!(whole.len(), 40_000);
        assert_eq!(whole.ops(), small.ops());
        assert!(whole
            .ops()
            .iter()
            .enumerate()
            .all(|(i, op)| op.index == i as u64));
    }

    #[test]
    fn bad_line_in_the_second_half_of_a_parallel_batch_names_its_line() {
        let mut text = sample(20_000);
        let line_count = count_newlines(&text);
        text.extend_from_slice(b"{\"index\": 40000, \"type\": \"bogus\"}\n");
        let err = read(&text[..], "h.jsonl").unwrap_err();
        assert!(
            matches!(&err, ParseError::Syntax { line, .. } if *line == line_count + 1),
            "{err}"
        );
    }

    #[test]
    fn lines_of_splits_as_split_inclusive_does() {
        for text in [
            &b""[..],
            b"\n",
            b"a",
            b"a\n",
            b"a\nb",
            b"\n\na\n\nbc\n",
            b"a\r\n\n",
        ] {
            let ours: Vec<&[u8]> = lines_of(text).collect();
            let std: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
            assert_eq!(ours, std, "{:?}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn lines_the_fast_path_declines_are_read_by_serde_in_order() {
        // Escapes, a float and an unknown field go to serde_json; the rest to the fast path.
        let text =
            b"{\"index\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"w\",\"value\":\"a\\\"b\"}\n\
                     {\"index\":1,\"process\":0,\"type\":\"ok\",\"f\":\"w\",\"value\":1.5}\n\
                     {\"index\":2,\"process\":1,\"type\":\"invoke\",\"f\":\"r\",\"x\":1}\n\
                     {\"index\":3,\"process\":1,\"type\":\"ok\",\"f\":\"r\",\"value\":[1]}\n";
        let history = read(&text[..], "h.jsonl").unwrap();
        let expected: Vec<Op> = text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(history.ops(), &expected[..]);
        assert_eq!(history.ops()[0].value, json!("a\"b"));
    }

    #[test]
    fn invalid_history_names_the_line_and_blank_lines_are_skipped() {
        let text = b"{\"index\":0,\"time\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}\n\n\
                     {\"index\":1,\"time\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}";
        let err = read(&text[..], "h.jsonl").unwrap_err();
        assert!(
            matches!(err, ParseError::InvalidOp { line: 3, .. }),
            "{err}"
        );
    }
}
