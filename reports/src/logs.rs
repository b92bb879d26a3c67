//! Excerpts of node logs: the lines written around the failure, or each log's last lines
//! when its timestamps cannot be aligned with the history.
//!
//! Alignment needs the run's wall-clock start (`test.json` `started_at`) plus op times,
//! and a log line that opens with a timestamp we can read: RFC 3339, `YYYY-MM-DD
//! HH:MM:SS[.fff]` (taken as UTC), Go's `YYYY/MM/DD HH:MM:SS`, or a JSON line with a
//! `ts`/`time`/`timestamp` field (etcd, zap). Reading is bounded per file so a runaway
//! log cannot stall the report.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Lines shown per file when aligning on the failure.
pub const MAX_WINDOW_LINES: usize = 150;
/// Lines shown per file when falling back to the end of the log.
pub const TAIL_LINES: usize = 40;
/// Bytes read per file at most.
pub const MAX_READ_BYTES: u64 = 256 << 20;
/// Characters kept per line.
const MAX_LINE_CHARS: usize = 600;
/// Log files read per node.
const MAX_FILES_PER_NODE: usize = 8;

/// How the lines of an excerpt were chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Lines whose timestamps fall in the anomaly window (plus their continuation lines).
    Aligned,
    /// The last lines of the file.
    Tail,
}

/// Lines of one log file.
#[derive(Clone, Debug)]
pub struct Excerpt {
    pub node: String,
    /// Path relative to the run directory, for the link.
    pub rel_path: PathBuf,
    pub selection: Selection,
    /// (1-based line number, text)
    pub lines: Vec<(usize, String)>,
    /// More lines matched than are shown, or the file was larger than we read.
    pub cut: bool,
}

/// The log files of each node under `run_dir/nodes/<node>/`.
pub fn log_files(run_dir: &Path, nodes: &[String]) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for node in nodes.iter().filter(|n| is_plain_name(n)) {
        let dir = run_dir.join("nodes").join(node);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            // Regular files only: a symlink could point anywhere on the control node.
            .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
            .filter(|p| p.extension().is_some_and(|e| e == "log" || e == "txt"))
            .collect();
        files.sort();
        files.truncate(MAX_FILES_PER_NODE);
        out.extend(files.into_iter().map(|f| (node.clone(), f)));
    }
    out
}

/// Node names come from test.json or the history, both untrusted: a name is only used as
/// a directory name when it is one plain path component (no `/`, no `..`, no leading dot).
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && std::path::Path::new(name).components().count() == 1
}

/// Reads excerpts from every node's logs; `window` is the wall-clock span of interest.
pub fn excerpts(
    run_dir: &Path,
    nodes: &[String],
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Vec<Excerpt> {
    log_files(run_dir, nodes)
        .into_iter()
        .filter_map(|(node, path)| {
            let file = std::fs::File::open(&path).ok()?;
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            let mut ex = excerpt(BufReader::new(file.take(MAX_READ_BYTES)), window);
            ex.cut |= size > MAX_READ_BYTES;
            ex.node = node;
            ex.rel_path = path.strip_prefix(run_dir).unwrap_or(&path).to_path_buf();
            Some(ex)
        })
        .collect()
}

/// Picks lines from one log: those in `window` if any line aligns, else the tail.
pub fn excerpt(
    mut reader: impl BufRead,
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Excerpt {
    let mut tail: VecDeque<(usize, String)> = VecDeque::with_capacity(TAIL_LINES);
    let mut hits: Vec<(usize, String)> = Vec::new();
    let mut cut = false;
    let mut in_window = false;
    let mut buf = Vec::with_capacity(512);
    let mut line_no = 0usize;
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        line_no += 1;
        let text = String::from_utf8_lossy(&buf);
        let text = crate::html::truncate(text.trim_end_matches(['\n', '\r']), MAX_LINE_CHARS);
        if let Some((from, to)) = window {
            if let Some(ts) = line_timestamp(&text) {
                in_window = ts >= from && ts <= to;
            }
            // Lines without a timestamp (stack traces) follow the line before them.
            if in_window {
                if hits.len() < MAX_WINDOW_LINES {
                    hits.push((line_no, text.clone()));
                } else {
                    cut = true;
                }
            }
        }
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back((line_no, text));
    }
    if hits.is_empty() {
        Excerpt {
            node: String::new(),
            rel_path: PathBuf::new(),
            selection: Selection::Tail,
            cut: line_no > tail.len(),
            lines: tail.into(),
        }
    } else {
        Excerpt {
            node: String::new(),
            rel_path: PathBuf::new(),
            selection: Selection::Aligned,
            lines: hits,
            cut,
        }
    }
}

/// The timestamp a log line opens with, if it has one we can read.
pub fn line_timestamp(line: &str) -> Option<DateTime<Utc>> {
    let t = line.trim_start();
    if t.starts_with('{') {
        for key in ["\"ts\":", "\"time\":", "\"timestamp\":"] {
            if let Some(at) = t.find(key) {
                let rest = t[at + key.len()..].trim_start();
                if let Some(s) = rest.strip_prefix('"') {
                    return parse_timestamp(s.split('"').next()?);
                }
                let num: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.')
                    .collect();
                let secs: f64 = num.parse().ok()?;
                return Utc
                    .timestamp_opt(secs.trunc() as i64, (secs.fract() * 1e9) as u32)
                    .single();
            }
        }
        return None;
    }
    let t = t.trim_start_matches('[');
    let mut words = t.split_whitespace();
    let first = words.next()?.trim_end_matches([']', ',']);
    if let Some(ts) = parse_timestamp(first) {
        return Some(ts);
    }
    let second = words.next()?.trim_end_matches([']', ',']);
    parse_timestamp(&format!("{first} {second}"))
}

fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    if !s.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y/%m/%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn reads_the_common_timestamp_shapes() {
        let want = at("2026-11-25T08:20:01.5Z");
        assert_eq!(
            line_timestamp("2026-11-25T08:20:01.500Z INFO x"),
            Some(want)
        );
        assert_eq!(line_timestamp("2026-11-25 08:20:01.500 INFO x"), Some(want));
        assert_eq!(
            line_timestamp("[2026-11-25T08:20:01.5+00:00] x"),
            Some(want)
        );
        assert_eq!(line_timestamp("2026/11/25 08:20:01.5 x"), Some(want));
        assert_eq!(
            line_timestamp(r#"{"level":"info","ts":"2026-11-25T08:20:01.500Z"}"#),
            Some(want)
        );
        assert_eq!(line_timestamp("panic: oh no"), None);
    }

    #[test]
    fn aligned_excerpt_keeps_window_lines_and_their_continuations() {
        let log = "2026-11-25T08:20:00Z boot\n2026-11-25T08:20:10Z leader elected\n  at frame 1\n2026-11-25T08:20:30Z later\n";
        let w = Some((at("2026-11-25T08:20:05Z"), at("2026-11-25T08:20:20Z")));
        let ex = excerpt(log.as_bytes(), w);
        assert_eq!(ex.selection, Selection::Aligned);
        let lines: Vec<usize> = ex.lines.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, vec![2, 3]);
    }

    #[test]
    fn node_names_cannot_escape_the_run_directory() {
        let tmp = std::env::temp_dir().join(format!("dt-reports-logs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(tmp.join("run/nodes/n1")).unwrap();
        std::fs::create_dir_all(tmp.join("secret")).unwrap();
        std::fs::write(tmp.join("secret/private.log"), "secret\n").unwrap();
        std::fs::write(tmp.join("run/nodes/n1/ok.log"), "fine\n").unwrap();
        std::os::unix::fs::symlink(
            tmp.join("secret/private.log"),
            tmp.join("run/nodes/n1/link.log"),
        )
        .unwrap();
        let names: Vec<String> = ["n1", "../../secret", "..", "/etc"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let files = log_files(&tmp.join("run"), &names);
        let _ = std::fs::remove_dir_all(&tmp);
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].1.ends_with("nodes/n1/ok.log"));
    }

    #[test]
    fn unaligned_logs_fall_back_to_their_last_lines() {
        let log: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        let ex = excerpt(log.as_bytes(), None);
        assert_eq!(ex.selection, Selection::Tail);
        assert_eq!(ex.lines.len(), TAIL_LINES);
        assert_eq!(ex.lines.last().unwrap().0, 100);
        assert!(ex.cut);
    }
}
