//! An Elle cycle drawn as a small graph: transactions on a circle, dependency edges as
//! labelled arrows, and beneath it one line per edge saying why it exists.
//!
//! Arrowheads are drawn as polygons rather than SVG markers: marker ids would have to be
//! unique across every graph inlined in one page.

use crate::evidence::{txn_label, Cycle};
use crate::html::{esc, table, truncate};
use std::f64::consts::PI;
use std::fmt::Write;

const SIZE_PX: f64 = 360.0;
const NODE_R_PX: f64 = 24.0;

/// Edge colors by dependency type (Elle's: ww, wr, rw, realtime, process).
fn edge_color(kind: &str) -> &'static str {
    match kind.to_ascii_lowercase().as_str() {
        "ww" => "#1f77b4",
        "wr" => "#2ca02c",
        "rw" => "#d62728",
        "rt" | "realtime" | "real-time" => "#9467bd",
        "process" => "#8c564b",
        _ => "#555555",
    }
}

/// The graph (SVG) and the table of edges (HTML) for one cycle.
///
/// Transactions are named T1, T2, ... in the order the checker listed them (its `cycle`
/// members, else first appearance in the steps), as Elle's explanations name them; the
/// op index (`#12`) is shown beside each name.
pub fn cycle_html(cycle: &Cycle) -> String {
    let mut nodes: Vec<String> = cycle.members.iter().map(|(k, _)| k.clone()).collect();
    for s in &cycle.steps {
        for v in [&s.from, &s.to] {
            let l = txn_label(v);
            if !nodes.contains(&l) {
                nodes.push(l);
            }
        }
    }
    let name = |key: &str| match nodes.iter().position(|n| n == key) {
        Some(i) => format!("T{}", i + 1),
        None => key.to_string(),
    };
    let n = nodes.len().max(1);
    // Two transactions side by side need only a strip; more sit on a circle.
    let height_px = if n <= 2 { SIZE_PX * 0.55 } else { SIZE_PX };
    let (cx0, cy0) = (SIZE_PX / 2.0, height_px / 2.0);
    let ring = if n == 1 {
        0.0
    } else {
        SIZE_PX / 2.0 - NODE_R_PX - 30.0
    };
    let start_angle = if n == 2 { PI } else { -PI / 2.0 };
    let pos: Vec<(f64, f64)> = (0..n)
        .map(|i| {
            let a = start_angle + 2.0 * PI * i as f64 / n as f64;
            (cx0 + ring * a.cos(), cy0 + ring * a.sin())
        })
        .collect();
    let mut svg = format!(
        "<svg class=\"cycle\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{SIZE_PX}\" height=\"{height_px}\" viewBox=\"0 0 {SIZE_PX} {height_px}\" font-family=\"sans-serif\" font-size=\"12\"><title>{}</title><rect width=\"{SIZE_PX}\" height=\"{height_px}\" fill=\"#fff\"/>",
        esc(&cycle.name)
    );
    for s in &cycle.steps {
        let a = nodes
            .iter()
            .position(|x| *x == txn_label(&s.from))
            .unwrap_or(0);
        let b = nodes
            .iter()
            .position(|x| *x == txn_label(&s.to))
            .unwrap_or(0);
        let color = edge_color(&s.kind);
        let title = esc(&truncate(
            &format!(
                "{} → {} ({}): {}",
                name(&nodes[a]),
                name(&nodes[b]),
                s.kind,
                s.why
            ),
            400,
        ));
        if a == b {
            let (x, y) = pos[a];
            let _ = write!(svg, "<g class=\"edge\"><title>{title}</title><circle cx=\"{x:.1}\" cy=\"{:.1}\" r=\"14\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/></g>", y - NODE_R_PX - 10.0);
            continue;
        }
        let (x1, y1) = pos[a];
        let (x2, y2) = pos[b];
        // Bend every edge to its left so that a→b and b→a do not overlap.
        let (dx, dy) = (x2 - x1, y2 - y1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (nx, ny) = (-dy / len, dx / len);
        let bend = 28.0;
        let (cx, cy) = ((x1 + x2) / 2.0 + nx * bend, (y1 + y2) / 2.0 + ny * bend);
        // End points on the node circles, along the curve's tangents.
        let shrink = |(px, py): (f64, f64), (qx, qy): (f64, f64)| {
            let (ux, uy) = (qx - px, qy - py);
            let l = (ux * ux + uy * uy).sqrt().max(1.0);
            (px + ux / l * NODE_R_PX, py + uy / l * NODE_R_PX)
        };
        let (sx, sy) = shrink((x1, y1), (cx, cy));
        let (ex, ey) = shrink((x2, y2), (cx, cy));
        let (tx, ty) = (ex - cx, ey - cy);
        let tl = (tx * tx + ty * ty).sqrt().max(1.0);
        let (ux, uy) = (tx / tl, ty / tl);
        let head = format!(
            "{ex:.1},{ey:.1} {:.1},{:.1} {:.1},{:.1}",
            ex - ux * 10.0 - uy * 5.0,
            ey - uy * 10.0 + ux * 5.0,
            ex - ux * 10.0 + uy * 5.0,
            ey - uy * 10.0 - ux * 5.0
        );
        let (lx, ly) = ((x1 + x2) / 4.0 + cx / 2.0, (y1 + y2) / 4.0 + cy / 2.0);
        let _ = write!(
            svg,
            "<g class=\"edge\"><title>{title}</title><path d=\"M{sx:.1},{sy:.1} Q{cx:.1},{cy:.1} {ex:.1},{ey:.1}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/><polygon points=\"{head}\" fill=\"{color}\"/>\
             <text x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"middle\" fill=\"{color}\" font-weight=\"bold\" stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\">{}</text></g>",
            esc(&truncate(&s.kind, 12))
        );
    }
    for (l, (x, y)) in nodes.iter().zip(&pos) {
        let _ = write!(
            svg,
            "<g class=\"txn\"><circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{NODE_R_PX}\" fill=\"#f3f5f8\" stroke=\"#1d2330\" stroke-width=\"1.5\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-weight=\"bold\">{}</text><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\" fill=\"#57606a\">{}</text></g>",
            y,
            esc(&name(l)),
            y + 12.0,
            esc(&truncate(l, 9))
        );
    }
    svg.push_str("</svg>");
    let rows: Vec<Vec<String>> = cycle
        .steps
        .iter()
        .map(|s| {
            let named = |v: &serde_json::Value| {
                let key = txn_label(v);
                format!(
                    "{} <span class=\"note\">{}</span>",
                    esc(&name(&key)),
                    esc(&key)
                )
            };
            vec![
                named(&s.from),
                named(&s.to),
                format!(
                    "<b style=\"color:{}\">{}</b>",
                    edge_color(&s.kind),
                    esc(&s.kind)
                ),
                esc(&truncate(&s.why, 600)),
            ]
        })
        .collect();
    let members = if cycle.members.is_empty() {
        String::new()
    } else {
        let rows: Vec<Vec<String>> = cycle
            .members
            .iter()
            .map(|(l, t)| {
                vec![
                    esc(&name(l)),
                    format!("<span class=\"mono\">{}</span>", esc(&truncate(t, 600))),
                ]
            })
            .collect();
        table("members", &["transaction", "op"], &rows)
    };
    format!(
        "<div class=\"cycle-view\"><h4>{}</h4><figure>{svg}</figure>{members}{}</div>",
        esc(&cycle.name),
        table("edges", &["from", "to", "type", "why"], &rows)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::Step;
    use serde_json::json;

    #[test]
    fn a_two_transaction_cycle_has_two_nodes_two_arrows_and_escaped_reasons() {
        let cycle = Cycle {
            members: vec![("#3".into(), "#3 <ok>".into())],
            name: "G1c".into(),
            steps: vec![
                Step {
                    from: json!(3),
                    to: json!(8),
                    kind: "wr".into(),
                    why: "T8 read <3>".into(),
                },
                Step {
                    from: json!(8),
                    to: json!(3),
                    kind: "ww".into(),
                    why: "x".into(),
                },
            ],
        };
        let html = cycle_html(&cycle);
        assert_eq!(html.matches("class=\"txn\"").count(), 2);
        assert_eq!(html.matches("<polygon").count(), 2);
        assert!(html.contains("T8 read &lt;3&gt;"));
        assert!(html.contains("#3 &lt;ok&gt;"));
        // Named T1, T2 in the checker's order, op index beside.
        assert!(html.contains(">T1</text>") && html.contains(">#3</text>"));
        assert!(html.contains("T2 → T1 (ww)"));
        assert!(!html.contains("<3>"));
    }
}
