//! Jepsen's timeline around an anomaly: processes as columns, ops as bars from their
//! invocation to their completion, one row per history entry.
//!
//! Rows follow history order rather than wall time, so concurrent ops that completed
//! microseconds apart still read apart; each row carries its time in ms at the left.
//! The ops a checker pointed at are outlined in black and listed first in their tooltip.
//! Windows are bounded ([`MAX_ROWS`] rows, [`MAX_COLUMNS`] processes) so a
//! million-op history gives a timeline of the same size as a small one.

use crate::faults::{role, FaultRole};
use crate::html::{esc, truncate};
use crate::plot::{fault_color, hex, FAIL_RGB, INFO_RGB, OK_RGB};
use distest_checkers::{History, Op, OpType, Process};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

pub const MAX_ROWS: usize = 240;
pub const MAX_COLUMNS: usize = 24;
/// Rows shown before the first and after the last op of interest.
const CONTEXT_ROWS: usize = 12;
/// A gap this many rows wide between ops of interest starts a new window.
const SPLIT_GAP: usize = 120;
pub const MAX_WINDOWS: usize = 4;
const ROW_PX: usize = 17;
const GUTTER_PX: usize = 78;
const HEADER_PX: usize = 24;

/// A range of history positions to draw, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub first: usize,
    pub last: usize,
}

/// The position in `history` of the op whose `index` is `index`: the same number in a
/// whole history, found by search in a part of one (the light form of a long run keeps
/// only the ops around anomalies, with their indices).
pub fn position(history: &History, index: u64) -> Option<usize> {
    match usize::try_from(index).ok().and_then(|p| history.get(p)) {
        Some(op) if op.index == index => usize::try_from(index).ok(),
        _ => history.ops().binary_search_by_key(&index, |o| o.index).ok(),
    }
}

/// Groups the ops of interest (and their partners) into at most [`MAX_WINDOWS`] windows
/// of at most [`MAX_ROWS`] rows. Returns the windows and whether some ops of interest
/// fell outside them.
pub fn windows(history: &History, focus: &BTreeSet<u64>) -> (Vec<Window>, bool) {
    let mut positions: BTreeSet<usize> = BTreeSet::new();
    for &i in focus {
        if let Some(p) = position(history, i) {
            positions.insert(p);
            if let Some(q) = history.partner(p) {
                positions.insert(q);
            }
        }
    }
    let mut out: Vec<Window> = Vec::new();
    let mut cut = false;
    let mut group: Option<(usize, usize)> = None;
    for p in positions {
        group = match group {
            Some((a, b)) if p - b <= SPLIT_GAP && p - a < MAX_ROWS - 2 * CONTEXT_ROWS => {
                Some((a, p))
            }
            Some((a, b)) => {
                if out.len() < MAX_WINDOWS {
                    out.push(window_around(a, b, history.len()));
                } else {
                    cut = true;
                }
                Some((p, p))
            }
            None => Some((p, p)),
        };
    }
    if let Some((a, b)) = group {
        if out.len() < MAX_WINDOWS {
            out.push(window_around(a, b, history.len()));
        } else {
            cut = true;
        }
    }
    (out, cut)
}

fn window_around(a: usize, b: usize, len: usize) -> Window {
    let first = a.saturating_sub(CONTEXT_ROWS);
    let last = (b + CONTEXT_ROWS)
        .min(len.saturating_sub(1))
        .min(first + MAX_ROWS - 1);
    Window { first, last }
}

/// One bar: a client op (invoke..completion) or a nemesis op (one row).
struct Bar<'a> {
    column: Process,
    top_row: usize,
    bottom_row: usize,
    invoke: &'a Op,
    completion: Option<&'a Op>,
    /// Continues past the window's bottom (or never completed).
    open_end: bool,
}

/// The ops a timeline points out: `focus` ops are outlined in black, `primary` ops (where
/// the checker says it breaks, e.g. the failing op of a linearizability counterexample)
/// in red.
#[derive(Clone, Debug, Default)]
pub struct Highlight {
    pub focus: BTreeSet<u64>,
    pub primary: BTreeSet<u64>,
    /// The key a keyed checker judged: ops on other keys are drawn faded.
    pub key: Option<serde_json::Value>,
}

/// Draws the window as an SVG timeline with the highlighted ops outlined.
/// A window reaching past the history is cut to it; an empty one draws nothing.
pub fn timeline_svg(history: &History, window: Window, highlight: &Highlight) -> String {
    let focus = &highlight.focus;
    let ops = history.ops();
    let window = Window {
        first: window.first,
        last: window
            .last
            .min(ops.len().saturating_sub(1))
            .min(window.first.saturating_add(MAX_ROWS - 1)),
    };
    if ops.is_empty() || window.first > window.last {
        return String::new();
    }
    let mut bars: Vec<Bar<'_>> = Vec::new();
    let mut seen_invokes: BTreeSet<usize> = BTreeSet::new();
    for pos in window.first..=window.last {
        let op = &ops[pos];
        if !op.is_client() {
            bars.push(Bar {
                column: Process::Nemesis,
                top_row: pos - window.first,
                bottom_row: pos - window.first,
                invoke: op,
                completion: None,
                open_end: false,
            });
            continue;
        }
        let (inv_pos, comp_pos) = if op.is_invoke() {
            (pos, history.partner(pos))
        } else {
            match history.partner(pos) {
                Some(i) => (i, Some(pos)),
                None => continue,
            }
        };
        if !seen_invokes.insert(inv_pos) {
            continue;
        }
        let top = inv_pos.max(window.first) - window.first;
        let (bottom, open_end) = match comp_pos {
            Some(c) if c <= window.last => (c - window.first, false),
            _ => (window.last - window.first, true),
        };
        bars.push(Bar {
            column: op.process,
            top_row: top,
            bottom_row: bottom,
            invoke: &ops[inv_pos],
            completion: comp_pos.map(|c| &ops[c]),
            open_end,
        });
    }
    // Columns: the nemesis first, then processes with ops of interest, then the rest.
    let mut interest: BTreeMap<Process, bool> = BTreeMap::new();
    for b in &bars {
        let hit = is_focus(b, focus);
        *interest.entry(b.column).or_default() |= hit;
    }
    let mut columns: Vec<Process> = interest.keys().copied().collect();
    columns.sort_by_key(|p| (*p != Process::Nemesis, !interest[p], *p));
    let omitted = columns.len().saturating_sub(MAX_COLUMNS);
    columns.truncate(MAX_COLUMNS);
    columns.sort_by_key(|p| (*p != Process::Nemesis, *p));
    let col_px = ((1180 - GUTTER_PX) / columns.len().max(1)).clamp(70, 170);
    let rows = window.last - window.first + 1;
    let width = GUTTER_PX + col_px * columns.len().max(1);
    let height = HEADER_PX + rows * ROW_PX + 6;
    let mut svg = format!(
        "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">\
         <title>Timeline of history entries {} to {}</title><rect width=\"{width}\" height=\"{height}\" fill=\"#fff\"/>",
        ops[window.first].index, ops[window.last].index
    );
    // Row stripes and times.
    let mut last_label = String::new();
    for r in 0..rows {
        let y = HEADER_PX + r * ROW_PX;
        let op = &ops[window.first + r];
        if r % 2 == 1 {
            let _ = write!(
                svg,
                "<rect x=\"0\" y=\"{y}\" width=\"{width}\" height=\"{ROW_PX}\" fill=\"#f7f8fa\"/>"
            );
        }
        // A time label only where it changes: equal labels on every row are noise.
        let label = time_label(op.time);
        if label != last_label {
            let _ = write!(
                svg,
                "<text x=\"4\" y=\"{}\" fill=\"#666\">{label}</text>",
                y + 12
            );
            last_label = label;
        }
    }
    for (c, p) in columns.iter().enumerate() {
        let x = GUTTER_PX + c * col_px;
        let name = match p {
            Process::Nemesis => "nemesis".to_string(),
            Process::Client(n) => format!("process {n}"),
        };
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"16\" font-weight=\"bold\">{}</text><line x1=\"{x}\" y1=\"{HEADER_PX}\" x2=\"{x}\" y2=\"{height}\" stroke=\"#e3e6eb\"/>",
            x + 4,
            esc(&name)
        );
    }
    let chars = (col_px.saturating_sub(12)) / 6;
    for b in &bars {
        let Some(c) = columns.iter().position(|p| *p == b.column) else {
            continue;
        };
        let x = GUTTER_PX + c * col_px + 3;
        let y = HEADER_PX + b.top_row * ROW_PX + 1;
        let h = (b.bottom_row - b.top_row + 1) * ROW_PX - 2;
        let w = col_px - 6;
        let fill = match (b.invoke.is_client(), b.completion.map(|c| c.kind)) {
            // A fault op that failed did not happen: grey, not the fault's color.
            (false, _) if b.completion.is_some_and(|c| c.error.is_some()) => "#999999".to_string(),
            (false, _) => match role(&b.invoke.f) {
                Some(FaultRole::Start(k) | FaultRole::Stop(k)) => fault_color(&k).to_string(),
                None => "#999999".to_string(),
            },
            (true, Some(OpType::Ok)) => hex(OK_RGB),
            (true, Some(OpType::Fail)) => hex(FAIL_RGB),
            _ => hex(INFO_RGB),
        };
        let focus_hit = is_focus(b, focus);
        let primary_hit = is_focus(b, &highlight.primary);
        let stroke = if primary_hit {
            "stroke=\"#cf222e\" stroke-width=\"3.5\""
        } else if focus_hit {
            "stroke=\"#000\" stroke-width=\"2.5\""
        } else {
            "stroke=\"none\""
        };
        let dash = if b.open_end {
            " stroke-dasharray=\"4 3\""
        } else {
            ""
        };
        let other_key = match (&highlight.key, &b.invoke.key) {
            (Some(k), Some(op_key)) => k != op_key,
            _ => false,
        };
        let (fill_opacity, text_fill) = if other_key {
            ("0.08", "#9aa0a6")
        } else {
            ("0.35", "#1d2330")
        };
        let label = bar_label(b);
        let _ = write!(
            svg,
            "<g class=\"op{}\"><title>{}</title><rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" rx=\"3\" fill=\"{fill}\" fill-opacity=\"{fill_opacity}\" {stroke}{dash}/>\
             <text x=\"{}\" y=\"{}\" fill=\"{text_fill}\">{}</text></g>",
            match (primary_hit, focus_hit) {
                (true, _) => " focus primary",
                (false, true) => " focus",
                _ => "",
            },
            esc(&bar_title(b, focus_hit || primary_hit)),
            x + 3,
            y + 11,
            esc(&truncate(&label, chars.max(4)))
        );
    }
    if omitted > 0 {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" fill=\"#9a6700\">{omitted} more processes not shown</text>",
            GUTTER_PX,
            height - 2
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Row time: milliseconds early in a run, seconds with millisecond precision later.
fn time_label(ns: u64) -> String {
    if ns < 10_000_000_000 {
        format!("{} ms", crate::plot::short_number(ns as f64 / 1e6))
    } else {
        format!("{:.3} s", ns as f64 / 1e9)
    }
}

fn is_focus(b: &Bar<'_>, focus: &BTreeSet<u64>) -> bool {
    focus.contains(&b.invoke.index) || b.completion.is_some_and(|c| focus.contains(&c.index))
}

fn bar_label(b: &Bar<'_>) -> String {
    let value = |v: &serde_json::Value| crate::html::compact_json(v, 60);
    match b.completion {
        Some(c) if c.kind == OpType::Ok && c.value != b.invoke.value && !c.value.is_null() => {
            format!(
                "{} {} → {}",
                b.invoke.f,
                value(&b.invoke.value),
                value(&c.value)
            )
        }
        _ if b.invoke.value.is_null() => b.invoke.f.clone(),
        _ => format!("{} {}", b.invoke.f, value(&b.invoke.value)),
    }
}

fn bar_title(b: &Bar<'_>, focus_hit: bool) -> String {
    let mut t = String::new();
    if focus_hit {
        t.push_str("referenced by the checker\n");
    }
    t.push_str(&truncate(&b.invoke.to_string(), 400));
    if let Some(c) = b.completion {
        t.push('\n');
        t.push_str(&truncate(&c.to_string(), 400));
        if b.invoke.is_client() {
            let _ = write!(
                t,
                "\nlatency {} ms",
                crate::plot::short_number(c.time.saturating_sub(b.invoke.time) as f64 / 1e6)
            );
        }
    } else if b.invoke.is_client() {
        t.push_str("\nno completion: indeterminate, may have taken effect at any later time");
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn history(n_pairs: u64) -> History {
        let mut ops = Vec::new();
        for i in 0..n_pairs {
            let p = Process::Client(i % 3);
            let inv = Op::invoke(p, "write", json!(i)).with_time(i * 2_000_000);
            let done = inv
                .complete(OpType::Ok, json!(i))
                .with_time(i * 2_000_000 + 1_000_000);
            ops.push(inv);
            ops.push(done);
        }
        for (i, op) in ops.iter_mut().enumerate() {
            op.index = i as u64;
        }
        History::new(ops).unwrap()
    }

    #[test]
    fn windows_split_far_apart_anomalies_and_stay_bounded() {
        let h = history(10_000);
        let focus: BTreeSet<u64> = [10, 12, 9_000, 15_000].into_iter().collect();
        let (ws, cut) = windows(&h, &focus);
        assert_eq!(ws.len(), 3);
        assert!(!cut);
        assert!(ws.iter().all(|w| w.last - w.first < MAX_ROWS));
        assert!(ws[0].first <= 10 && ws[0].last >= 13);
    }

    #[test]
    fn ops_on_other_keys_are_faded_when_the_checker_names_a_key() {
        let mut ops = Vec::new();
        for (p, key) in [(0, 1), (1, 2)] {
            let inv = Op::invoke(Process::Client(p), "read", json!(null)).with_key(json!(key));
            ops.push(inv.clone());
            ops.push(inv.complete(OpType::Ok, json!(0)));
        }
        for (i, op) in ops.iter_mut().enumerate() {
            op.index = i as u64;
        }
        let h = History::new(ops).unwrap();
        let highlight = Highlight {
            key: Some(json!(1)),
            ..Highlight::default()
        };
        let svg = timeline_svg(&h, Window { first: 0, last: 3 }, &highlight);
        assert_eq!(svg.matches("fill-opacity=\"0.08\"").count(), 1, "{svg}");
        assert_eq!(svg.matches("fill-opacity=\"0.35\"").count(), 1);
    }

    #[test]
    fn windows_past_the_history_are_cut_not_a_panic() {
        let h = history(3);
        let svg = timeline_svg(
            &h,
            Window {
                first: 4,
                last: 1_000,
            },
            &Highlight::default(),
        );
        assert!(svg.contains("entries 4 to 5"), "{svg}");
        assert!(timeline_svg(
            &h,
            Window {
                first: 50,
                last: 60
            },
            &Highlight::default()
        )
        .is_empty());
    }

    #[test]
    fn focus_ops_are_outlined_and_values_escaped() {
        let mut ops = vec![
            Op::invoke(Process::Client(0), "write", json!("<script>x</script>")),
            Op::invoke(Process::Client(1), "read", json!(null)),
        ];
        ops.push(ops[0].complete(OpType::Ok, json!("<script>x</script>")));
        ops.push(ops[1].complete(OpType::Fail, json!(null)));
        for (i, op) in ops.iter_mut().enumerate() {
            op.index = i as u64;
        }
        let h = History::new(ops).unwrap();
        let focus: BTreeSet<u64> = [1].into_iter().collect();
        let highlight = Highlight {
            focus,
            primary: [0].into_iter().collect(),
            key: None,
        };
        let svg = timeline_svg(&h, Window { first: 0, last: 3 }, &highlight);
        assert_eq!(svg.matches("class=\"op focus primary\"").count(), 1);
        assert_eq!(svg.matches("class=\"op focus\"").count(), 1);
        assert_eq!(svg.matches("class=\"op\"").count(), 0);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
    }
}
