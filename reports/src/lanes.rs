//! Per-node lanes: one row per node with the faults that hit it (killed, paused, clock
//! skewed, isolated) as colored spans, and every nemesis event naming it as a tick.

use crate::faults::{FaultInterval, NodeEvent};
use crate::html::{esc, truncate};
use crate::plot::{fault_color, short_number};
use std::fmt::Write;

const ROW_PX: f64 = 26.0;
const LABEL_PX: f64 = 90.0;
const WIDTH_PX: f64 = 1180.0;
const AXIS_PX: f64 = 30.0;
/// Ticks drawn per node; a flapping nemesis can emit thousands.
const MAX_TICKS: usize = 400;

/// The lanes SVG. `end_ns` is the run's end (the x axis' extent).
pub fn lanes_svg(
    nodes: &[String],
    intervals: &[(String, FaultInterval)],
    events: &[(String, Vec<NodeEvent>)],
    end_ns: u64,
) -> String {
    let end_s = (end_ns as f64 / 1e9).max(1e-3);
    let plot_w = WIDTH_PX - LABEL_PX - 20.0;
    let x = |ns: u64| LABEL_PX + plot_w * (ns as f64 / 1e9 / end_s).min(1.0);
    let rows: Vec<&str> = nodes
        .iter()
        .map(String::as_str)
        .chain(events.iter().any(|(n, _)| n == "*").then_some("*"))
        .collect();
    let height = AXIS_PX + ROW_PX * rows.len() as f64 + 8.0;
    let mut svg = format!(
        "<svg class=\"lanes\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH_PX}\" height=\"{height}\" viewBox=\"0 0 {WIDTH_PX} {height}\" font-family=\"sans-serif\" font-size=\"12\"><title>Faults per node over time (s)</title><rect width=\"{WIDTH_PX}\" height=\"{height}\" fill=\"#fff\"/>"
    );
    // Time axis: round ticks in seconds, about ten of them.
    let step_s = crate::plot::nice_max(end_s * 1000.0 / 10.0) / 1000.0;
    let ticks = ((end_s / step_s).floor() as usize).min(20);
    for i in 0..=ticks {
        let t_s = step_s * i as f64;
        let px = LABEL_PX + plot_w * (t_s / end_s).min(1.0);
        let _ = write!(
            svg,
            "<line x1=\"{px:.1}\" y1=\"{AXIS_PX}\" x2=\"{px:.1}\" y2=\"{height}\" stroke=\"#eee\"/><text x=\"{px:.1}\" y=\"14\" text-anchor=\"middle\" fill=\"#666\">{} s</text>",
            short_number(t_s)
        );
    }
    for (r, node) in rows.iter().enumerate() {
        let y = AXIS_PX + ROW_PX * r as f64;
        let label = if *node == "*" { "all / unnamed" } else { node };
        let _ = write!(
            svg,
            "<text x=\"4\" y=\"{:.1}\" font-weight=\"bold\">{}</text><line x1=\"{LABEL_PX}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ccc\"/>",
            y + 17.0,
            esc(&truncate(label, 12)),
            y + ROW_PX / 2.0,
            LABEL_PX + plot_w,
            y + ROW_PX / 2.0
        );
        for (_, iv) in intervals.iter().filter(|(n, _)| n == node) {
            let (x0, x1) = (x(iv.start_ns), x(iv.end_ns));
            let _ = write!(
                svg,
                "<rect class=\"node-fault\" data-kind=\"{k}\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\" fill-opacity=\"0.7\"><title>{}</title></rect>",
                y + 4.0,
                (x1 - x0).max(2.0),
                ROW_PX - 8.0,
                fault_color(&iv.kind),
                esc(&format!(
                    "{node}: {} from {:.2} s to {:.2} s{}: {}",
                    iv.kind,
                    iv.start_ns as f64 / 1e9,
                    iv.end_ns as f64 / 1e9,
                    if iv.open_at_end { " (still active at the end)" } else { "" },
                    iv.detail
                )),
                k = esc(&iv.kind),
            );
        }
        if let Some((_, evs)) = events.iter().find(|(n, _)| n == node) {
            for e in evs.iter().take(MAX_TICKS) {
                let px = x(e.time_ns);
                let _ = write!(
                    svg,
                    "<g class=\"node-event\"><title>{}</title><line x1=\"{px:.1}\" y1=\"{:.1}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#1d2330\" stroke-width=\"2\"/></g>",
                    esc(&format!("{:.3} s {} {}", e.time_ns as f64 / 1e9, e.f, e.detail)),
                    y + 2.0,
                    y + ROW_PX - 2.0
                );
            }
        }
    }
    svg.push_str("</svg>");
    svg
}
