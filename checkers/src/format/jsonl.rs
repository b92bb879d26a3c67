//! distest's own format: one JSON op per line (`history.jsonl`).
//!
//! Speed matters here (`distest check` on long runs), so the reader takes the input in
//! batches of whole lines and parses each large batch on two threads, first half and
//! second half, keeping file order. Memory stays bounded by one batch plus the ops.

use super::fast_op::OpParser;
use super::import::Sink;
use super::{count_newlines, fill, invalid_at, ParseError};
use crate::history::History;
use crate::op::Op;
use std::io::BufRead;

/// Bytes of whole lines parsed per batch.
const BATCH_BYTES: usize = 8 << 20;
/// Batches smaller than this are parsed on the calling thread alone: a thread costs more.
const PARALLEL_MIN_BYTES: usize = 256 << 10;
/// A single line longer than this is refused: it is no op distest wrote.
pub(crate) const MAX_LINE_BYTES: usize = 1 << 30;

/// Reads JSON Lines; blank lines are skipped. Indices must be dense (distest writes them so).
/// `size_bytes`, when known, sizes the ops vector (see [`super::read_history_sized`]).
pub(super) fn read(
    reader: impl BufRead,
    source_name: &str,
    size_bytes: Option<u64>,
) -> Result<History, ParseError> {
    read_in_batches(reader, source_name, BATCH_BYTES, size_bytes)
}

/// Hands each op to `sink` batch by batch, keeping none (the sink checks the indices).
pub(super) fn stream(
    reader: impl BufRead,
    source_name: &str,
    sink: &mut Sink<'_>,
) -> Result<(), ParseError> {
    read_limited(
        reader,
        source_name,
        BATCH_BYTES,
        MAX_LINE_BYTES,
        Collect::Stream(sink),
    )
    .map(drop)
}

/// [`read`] with a chosen batch size (tests use tiny ones to cross batch ends).
fn read_in_batches(
    reader: impl BufRead,
    source_name: &str,
    batch_bytes: usize,
    size_bytes: Option<u64>,
) -> Result<History, ParseError> {
    let parsed = read_limited(
        reader,
        source_name,
        batch_bytes,
        MAX_LINE_BYTES,
        Collect::Whole { size_bytes },
    )?;
    History::new(parsed.ops).map_err(|error| invalid_at(source_name, &parsed.lines, error))
}

/// Where [`read_limited`] puts the ops.
enum Collect<'a, 'k> {
    /// Into the result; `size_bytes` (the input's, when known) sizes its vectors after
    /// the first batch, and is then taken.
    Whole { size_bytes: Option<u64> },
    /// Batch by batch into a sink, keeping none.
    Stream(&'a mut Sink<'k>),
}

/// Reads every op, as `collect` says. `max_line_bytes` is the longest line allowed
/// (tests use a small one).
fn read_limited(
    mut reader: impl BufRead,
    source_name: &str,
    batch_bytes: usize,
    max_line_bytes: usize,
    mut collect: Collect<'_, '_>,
) -> Result<Parsed, ParseError> {
    let mut parsed = Parsed::default();
    let mut spare = Parsed::default();
    let mut window = LineWindow::new(batch_bytes, max_line_bytes);
    // The file line number of the window's first byte.
    let mut line_no = 1usize;
    while let Some(lines) = window.next_lines(&mut reader, line_no, source_name)? {
        let lines_bytes = lines.len();
        line_no = parse_batch(lines, line_no, source_name, &mut parsed, &mut spare)?;
        match &mut collect {
            Collect::Stream(sink) => {
                for (op, line) in parsed.ops.drain(..).zip(parsed.lines.drain(..)) {
                    sink(op, line)?;
                }
            }
            // The first batch sizes the vectors, once.
            Collect::Whole { size_bytes } => {
                if let Some(size_bytes) = size_bytes.take() {
                    super::reserve_for_input(&mut parsed.ops, lines_bytes, size_bytes);
                    super::reserve_for_input(&mut parsed.lines, lines_bytes, size_bytes);
                }
            }
        }
    }
    Ok(parsed)
}

/// Whole lines of a reader, about a batch at a time, in time linear in the input
/// whatever the line lengths; shared by this reader and Elle's transaction reader.
pub(crate) struct LineWindow {
    buf: Vec<u8>,
    /// Bytes at the front of `buf` handed out by the last [`Self::next_lines`].
    consumed: usize,
    /// `buf[..scanned]` holds no newline: each byte is searched once, so a line of any
    /// length costs time linear in its length (a rescan of the growing line on every
    /// read made a 1.9 GB line take minutes).
    scanned: usize,
    batch_bytes: usize,
    max_line_bytes: usize,
    eof: bool,
}

impl LineWindow {
    /// Windows of about `batch_bytes`; a line longer than `max_line_bytes` is refused.
    pub(crate) fn new(batch_bytes: usize, max_line_bytes: usize) -> LineWindow {
        LineWindow {
            buf: Vec::new(),
            consumed: 0,
            scanned: 0,
            batch_bytes,
            max_line_bytes,
            eof: false,
        }
    }

    /// The next whole lines (the last may lack its newline at the end of input), or
    /// `None` at the end. `line_no` is the file line the window starts on, for the error
    /// about a line too long.
    pub(crate) fn next_lines(
        &mut self,
        reader: &mut impl BufRead,
        line_no: usize,
        source_name: &str,
    ) -> Result<Option<&[u8]>, ParseError> {
        self.buf.drain(..self.consumed);
        self.consumed = 0;
        // What is left is the start of a line: no newline in it.
        self.scanned = self.buf.len();
        let (batch_bytes, max_line_bytes) = (self.batch_bytes, self.max_line_bytes);
        while !self.eof {
            let buf = &mut self.buf;
            // While one line is incomplete the reads grow with it, so a long line is read
            // in a logarithmic number of rounds rather than in fixed steps ...
            let want = batch_bytes
                .saturating_sub(buf.len())
                .max(64 << 10)
                .max(buf.len());
            // ... but never far past the longest line allowed, which is then refused.
            let want = want.min((max_line_bytes + 1).saturating_sub(buf.len()).max(64 << 10));
            if self.scanned >= batch_bytes && buf.capacity() < max_line_bytes {
                // A line longer than a batch: room for the longest allowed, once (address
                // space only; pages are touched as bytes arrive), instead of doublings
                // that each copy what was read and hold old and new at once.
                buf.reserve_exact(max_line_bytes + (128 << 10) - buf.len());
            }
            self.eof = fill(reader, buf, want).map_err(|e| ParseError::Io {
                source_name: source_name.to_string(),
                message: e.to_string(),
            })?;
            if self.eof {
                break;
            }
            match memchr::memrchr(b'\n', &buf[self.scanned..]) {
                Some(i) => {
                    self.consumed = self.scanned + i + 1;
                    return Ok(Some(&self.buf[..self.consumed]));
                }
                None if buf.len() > max_line_bytes => {
                    return Err(line_too_long(source_name, line_no, max_line_bytes))
                }
                None => self.scanned = buf.len(),
            }
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        self.consumed = self.buf.len();
        Ok(Some(&self.buf[..self.consumed]))
    }
}

fn line_too_long(source_name: &str, line: usize, max_line_bytes: usize) -> ParseError {
    ParseError::Syntax {
        source_name: source_name.to_string(),
        line,
        message: format!(
            "a line is longer than {} MiB; expected one JSON op object per line",
            max_line_bytes >> 20
        ),
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
        let whole = read(&text[..], "h.jsonl", None).unwrap();
        let small = read_in_batches(&text[..], "h.jsonl", 1000, None).unwrap();
        assert_eq!(whole.len(), 40_000);
        assert_eq!(whole.ops(), small.ops());
        // A wrong size only costs the saving of a vector sized right.
        let len = text.len() as u64;
        for size_bytes in [Some(len), Some(1), Some(u64::MAX)] {
            let sized = read_in_batches(&text[..], "h.jsonl", 64 << 10, size_bytes).unwrap();
            assert_eq!(sized.ops(), small.ops(), "{size_bytes:?}");
        }
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
        let err = read(&text[..], "h.jsonl", None).unwrap_err();
        assert!(
            matches!(&err, ParseError::Syntax { line, .. } if *line == line_count + 1),
            "{err}"
        );
    }

    #[test]
    fn a_long_line_costs_time_linear_in_its_length() {
        // A 96 MB op line read in 64 KB steps: searching the whole unfinished line for
        // its end after every step (as before) scans ~72 GB; growing reads scan it once.
        let big = "x".repeat(96 << 20);
        let text = format!(
            "{{\"index\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"w\",\"value\":\"{big}\"}}\n"
        );
        let started = std::time::Instant::now();
        let h = read_in_batches(text.as_bytes(), "h.jsonl", 64 << 10, None).unwrap();
        assert_eq!(h.ops()[0].value.as_str().map(str::len), Some(96 << 20));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "a 96 MB line took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_line_past_the_limit_is_refused_without_reading_the_rest() {
        // An endless line: the reader must stop soon after the limit, not read on.
        let endless = std::io::repeat(b'x');
        let counted = CountingReader {
            inner: endless,
            bytes: 0,
        };
        let mut reader = std::io::BufReader::new(counted);
        let err = read_limited(
            &mut reader,
            "h.jsonl",
            64 << 10,
            4 << 20,
            Collect::Whole { size_bytes: None },
        )
        .map(drop)
        .unwrap_err();
        assert!(err.to_string().contains("longer than 4 MiB"), "{err}");
        assert!(
            reader.get_ref().bytes < 6 << 20,
            "read {} bytes",
            reader.get_ref().bytes
        );
    }

    struct CountingReader<R> {
        inner: R,
        bytes: usize,
    }

    impl<R: std::io::Read> std::io::Read for CountingReader<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.bytes += n;
            Ok(n)
        }
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
        let history = read(&text[..], "h.jsonl", None).unwrap();
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
        let err = read(&text[..], "h.jsonl", None).unwrap_err();
        assert!(
            matches!(err, ParseError::InvalidOp { line: 3, .. }),
            "{err}"
        );
    }
}
