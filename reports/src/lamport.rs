//! The message-flow (Lamport) diagram of a window of a run: one vertical lane per
//! participant (clients, nodes, services), time flowing down, one arrow per message from
//! its sending to its delivery, and the faults that hit each node shaded on its lane —
//! the picture people draw by hand to understand a protocol.
//!
//! A dropped message ends in a red cross where the router dropped it (its reason in the
//! tooltip); a message the network lost (a partition, loss) ends in a red cross halfway,
//! dashed. The window is chosen by the caller, by default around the first anomaly
//! ([`default_window`]).

use crate::faults::FaultInterval;
use crate::html::{esc, truncate};
use crate::plot::{fault_color, short_number};
use distest_checkers::net::{is_client, Fate, Message};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Most arrows a diagram draws; a window holding more is narrowed by [`default_window`].
pub const MAX_ARROWS: usize = 300;
/// Client lanes drawn before the remaining clients share one lane.
const MAX_CLIENT_LANES: usize = 6;
const LANE_PX: f64 = 120.0;
const AXIS_PX: f64 = 70.0;
const HEADER_PX: f64 = 36.0;
const PLOT_PX: f64 = 860.0;
/// Arrows labelled with their body type, at most (labels of a dense window would overlap).
const MAX_LABELS: usize = 120;

/// A window of the run's time, in ns since the run started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub from_ns: u64,
    pub to_ns: u64,
}

impl Window {
    fn holds(&self, m: &Message) -> bool {
        let end = match &m.fate {
            Fate::Delivered { time } | Fate::Dropped { time, .. } => *time,
            Fate::Undelivered => m.sent,
        };
        m.sent <= self.to_ns && end >= self.from_ns
    }
}

/// Messages whose journey overlaps `window`.
pub fn in_window(messages: &[Message], window: Window) -> Vec<&Message> {
    messages.iter().filter(|m| window.holds(m)).collect()
}

/// A window around `anchor_ns` (the first anomaly, else the first fault, else the first
/// message): half a second either side, narrowed until at most [`MAX_ARROWS`] messages
/// fall in it, widened (up to 5 s either side) while it holds very few.
pub fn default_window(messages: &[Message], anchor_ns: Option<u64>) -> Option<Window> {
    let anchor = anchor_ns.or_else(|| messages.iter().map(|m| m.sent).min())?;
    let around = |half: u64| Window {
        from_ns: anchor.saturating_sub(half),
        to_ns: anchor.saturating_add(half),
    };
    let count = |w: Window| messages.iter().filter(|m| w.holds(m)).count();
    let mut half: u64 = 500_000_000;
    while count(around(half)) > MAX_ARROWS && half > 1_000_000 {
        half /= 2;
    }
    while count(around(half)) < 20 && half < 5_000_000_000 {
        let wider = around(half * 2);
        if count(wider) > MAX_ARROWS {
            break;
        }
        half *= 2;
    }
    Some(around(half))
}

/// The lanes of a diagram: clients first (the busiest few, the rest on one shared lane),
/// then the nodes in their order, then the services.
fn lanes(messages: &[&Message], nodes: &[String]) -> (Vec<String>, BTreeMap<String, usize>) {
    let mut client_use: BTreeMap<&str, usize> = BTreeMap::new();
    let mut others: Vec<&str> = Vec::new();
    for m in messages {
        for p in [m.src.as_str(), m.dest.as_str()] {
            if is_client(p) {
                *client_use.entry(p).or_default() += 1;
            } else if !nodes.iter().any(|n| n == p) && !others.contains(&p) {
                others.push(p);
            }
        }
    }
    let mut clients: Vec<(&str, usize)> = client_use.into_iter().collect();
    clients.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let shown: Vec<&str> = clients.iter().take(MAX_CLIENT_LANES).map(|c| c.0).collect();
    let mut names: Vec<String> = shown.iter().map(|c| c.to_string()).collect();
    names.sort_by_key(|c| c[1..].parse::<u64>().unwrap_or(u64::MAX));
    let shared = clients.len() > MAX_CLIENT_LANES;
    if shared {
        names.push("other clients".into());
    }
    names.extend(nodes.iter().cloned());
    others.sort();
    names.extend(others.iter().map(|s| s.to_string()));
    let mut index: BTreeMap<String, usize> = names
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, n)| (n, i))
        .collect();
    if shared {
        let lane = index["other clients"];
        for (c, _) in clients.iter().skip(MAX_CLIENT_LANES) {
            index.insert(c.to_string(), lane);
        }
    }
    (names, index)
}

/// The diagram of `messages` in `window`, with `intervals` (per node) shaded.
pub fn lamport_svg(
    messages: &[Message],
    nodes: &[String],
    intervals: &[(String, FaultInterval)],
    window: Window,
) -> String {
    let mut shown = in_window(messages, window);
    shown.sort_by_key(|m| (m.sent, m.id));
    let truncated = shown.len() > MAX_ARROWS;
    shown.truncate(MAX_ARROWS);
    let (names, lane_of) = lanes(&shown, nodes);
    let width = AXIS_PX + LANE_PX * names.len().max(1) as f64 + 20.0;
    let height = HEADER_PX + PLOT_PX + 30.0;
    let span = (window.to_ns.saturating_sub(window.from_ns)).max(1) as f64;
    let y = |t: u64| {
        HEADER_PX
            + PLOT_PX * ((t.clamp(window.from_ns, window.to_ns) - window.from_ns) as f64 / span)
    };
    let x = |lane: usize| AXIS_PX + LANE_PX * (lane as f64 + 0.5);
    let mut svg = format!(
        "<svg class=\"lamport\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">\
         <title>Messages from {} s to {} s</title><rect width=\"{width}\" height=\"{height}\" fill=\"#fff\"/>\
         <defs><marker id=\"lamport-arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"context-stroke\"/></marker></defs>",
        short_number(window.from_ns as f64 / 1e9),
        short_number(window.to_ns as f64 / 1e9)
    );
    // Time axis: about ten ticks at round multiples of the step, in seconds since the
    // run started, with as many decimals as the step needs (15 ms steps: 1.015 s, ...).
    let step_ns = (crate::plot::nice_max(span / 1e6 / 10.0).max(0.001) * 1e6) as u64;
    let step_ns = step_ns.max(1);
    let decimals = (0..=9)
        .find(|d| step_ns.is_multiple_of(10u64.pow(9 - *d as u32)))
        .unwrap_or(9);
    let first = window.from_ns.div_ceil(step_ns) * step_ns;
    for t in (first..=window.to_ns).step_by(step_ns as usize).take(21) {
        let py = y(t);
        let _ = write!(
            svg,
            "<line x1=\"{AXIS_PX}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#f0f0f0\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#666\">{:.decimals$} s</text>",
            width - 20.0,
            AXIS_PX - 6.0,
            py + 4.0,
            t as f64 / 1e9
        );
    }
    // Lanes, with the faults that hit each node shaded on it.
    for (i, name) in names.iter().enumerate() {
        let lx = x(i);
        let _ = write!(
            svg,
            "<text x=\"{lx:.1}\" y=\"22\" text-anchor=\"middle\" font-weight=\"bold\">{}</text><line x1=\"{lx:.1}\" y1=\"{HEADER_PX}\" x2=\"{lx:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>",
            esc(&truncate(name, 14)),
            HEADER_PX + PLOT_PX
        );
        for (_, iv) in intervals.iter().filter(|(n, _)| n == name) {
            if iv.end_ns < window.from_ns || iv.start_ns > window.to_ns {
                continue;
            }
            let (y0, y1) = (y(iv.start_ns), y(iv.end_ns));
            let _ = write!(
                svg,
                "<rect class=\"lane-fault\" data-kind=\"{k}\" x=\"{:.1}\" y=\"{y0:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\" fill-opacity=\"0.3\"><title>{}</title></rect>",
                lx - LANE_PX * 0.3,
                LANE_PX * 0.6,
                (y1 - y0).max(2.0),
                fault_color(&iv.kind),
                esc(&format!("{name}: {} from {:.3} s to {:.3} s: {}", iv.kind, iv.start_ns as f64 / 1e9, iv.end_ns as f64 / 1e9, iv.detail)),
                k = esc(&iv.kind),
            );
        }
    }
    let labels = shown.len() <= MAX_LABELS;
    for m in &shown {
        let (Some(&a), Some(&b)) = (lane_of.get(&m.src), lane_of.get(&m.dest)) else {
            continue;
        };
        let (x0, y0) = (x(a), y(m.sent));
        let kind = m.body_type.as_deref().unwrap_or("?");
        let reply = m.in_reply_to.is_some();
        let color = if is_client(&m.src) || is_client(&m.dest) {
            "#4c72b0"
        } else {
            "#333"
        };
        let (x1, y1, fate, class, stroke) = match &m.fate {
            Fate::Delivered { time } => (
                x(b),
                y(*time),
                format!("delivered at {:.6} s", *time as f64 / 1e9),
                "delivered",
                color,
            ),
            Fate::Dropped { time, reason } => {
                let (tx, ty) = (x(b), y(*time));
                (
                    x0 + (tx - x0) * 0.6,
                    y0 + (ty - y0) * 0.6,
                    format!("dropped at {:.6} s: {reason}", *time as f64 / 1e9),
                    "dropped",
                    "#c0392b",
                )
            }
            Fate::Undelivered => (
                x0 + (x(b) - x0) * 0.5,
                y0 + 6.0,
                "lost by the network (never delivered)".to_string(),
                "lost",
                "#c0392b",
            ),
        };
        let title = format!(
            "{} → {}: {kind}{}{} — sent at {:.6} s, {fate} (journal id {})",
            m.src,
            m.dest,
            m.msg_id.map(|i| format!(" msg_id {i}")).unwrap_or_default(),
            m.in_reply_to
                .map(|i| format!(" in_reply_to {i}"))
                .unwrap_or_default(),
            m.sent as f64 / 1e9,
            m.id
        );
        let dash = if class == "lost" || reply {
            " stroke-dasharray=\"4 3\""
        } else {
            ""
        };
        let marker = if class == "delivered" {
            " marker-end=\"url(#lamport-arrow)\""
        } else {
            ""
        };
        let _ = write!(
            svg,
            "<g class=\"msg {class}\"><title>{}</title><line x1=\"{x0:.1}\" y1=\"{y0:.1}\" x2=\"{x1:.1}\" y2=\"{y1:.1}\" stroke=\"{stroke}\" stroke-width=\"1.2\"{dash}{marker}/>",
            esc(&title)
        );
        if class != "delivered" {
            let _ = write!(
                svg,
                "<text x=\"{x1:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#c0392b\" font-size=\"13\" font-weight=\"bold\">×</text>",
                y1 + 4.0
            );
        }
        if labels {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{stroke}\" font-size=\"9\">{}</text>",
                (x0 + x1) / 2.0,
                (y0 + y1) / 2.0 - 3.0,
                esc(&truncate(kind, 16))
            );
        }
        svg.push_str("</g>");
    }
    if truncated {
        let _ = write!(
            svg,
            "<text x=\"{AXIS_PX}\" y=\"{:.1}\" fill=\"#c0392b\">Only the first {MAX_ARROWS} messages of this window are drawn; choose a narrower window.</text>",
            height - 8.0
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: u64, src: &str, dest: &str, sent: u64, fate: Fate) -> Message {
        Message {
            id,
            src: src.into(),
            dest: dest.into(),
            body_type: Some("gossip".into()),
            msg_id: Some(id),
            in_reply_to: None,
            sent,
            fate,
        }
    }

    fn nodes() -> Vec<String> {
        vec!["n1".into(), "n2".into()]
    }

    #[test]
    fn arrows_crosses_and_fault_shading_are_drawn() {
        let ms = vec![
            msg(1, "c3", "n1", 10, Fate::Delivered { time: 20 }),
            msg(2, "n1", "n2", 30, Fate::Delivered { time: 40 }),
            msg(3, "n1", "n2", 50, Fate::Undelivered),
            msg(
                4,
                "n2",
                "lin-kv",
                60,
                Fate::Dropped {
                    time: 61,
                    reason: "node-down".into(),
                },
            ),
        ];
        let iv = FaultInterval {
            kind: "partition".into(),
            start_ns: 45,
            end_ns: 70,
            open_at_end: false,
            detail: "halves".into(),
            start_index: 0,
        };
        let svg = lamport_svg(
            &ms,
            &nodes(),
            &[("n2".into(), iv)],
            Window {
                from_ns: 0,
                to_ns: 100,
            },
        );
        assert_eq!(svg.matches("class=\"msg delivered\"").count(), 2);
        assert_eq!(svg.matches("class=\"msg lost\"").count(), 1);
        assert_eq!(svg.matches("class=\"msg dropped\"").count(), 1);
        assert!(svg.contains("dropped at 0.000000 s: node-down"), "{svg}");
        assert!(svg.contains("class=\"lane-fault\" data-kind=\"partition\""));
        // Lanes: the client, the nodes, then the service.
        let order: Vec<usize> = [">c3<", ">n1<", ">n2<", ">lin-kv<"]
            .iter()
            .map(|l| svg.find(l).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    }

    #[test]
    fn the_default_window_narrows_around_the_anchor_to_what_can_be_drawn() {
        let ms: Vec<Message> = (0..10_000)
            .map(|i| {
                msg(
                    i,
                    "n1",
                    "n2",
                    i * 1_000_000,
                    Fate::Delivered {
                        time: i * 1_000_000 + 10,
                    },
                )
            })
            .collect();
        let w = default_window(&ms, Some(5_000_000_000)).unwrap();
        assert!(w.from_ns <= 5_000_000_000 && w.to_ns >= 5_000_000_000);
        let n = in_window(&ms, w).len();
        assert!((20..=MAX_ARROWS).contains(&n), "{n} in {w:?}");
        // A sparse run widens the window to show something.
        let sparse: Vec<Message> = (0..30)
            .map(|i| msg(i, "n1", "n2", i * 300_000_000, Fate::Undelivered))
            .collect();
        let w = default_window(&sparse, None).unwrap();
        assert!(in_window(&sparse, w).len() >= 20, "{w:?}");
        assert_eq!(default_window(&[], None), None);
    }

    #[test]
    fn ticks_sit_on_round_times_with_the_decimals_they_need() {
        let w = Window {
            from_ns: 1_003_400_000,
            to_ns: 1_153_400_000,
        };
        let svg = lamport_svg(&[], &nodes(), &[], w);
        for label in [">1.005 s<", ">1.020 s<", ">1.140 s<"] {
            assert!(svg.contains(label), "{label} in {svg}");
        }
        assert!(
            !svg.contains(">1.0034"),
            "no tick at the window's odd start"
        );
    }

    #[test]
    fn many_clients_share_a_lane() {
        let ms: Vec<Message> = (0..20)
            .map(|i| {
                msg(
                    i,
                    &format!("c{i}"),
                    "n1",
                    i,
                    Fate::Delivered { time: i + 1 },
                )
            })
            .collect();
        let svg = lamport_svg(
            &ms,
            &nodes(),
            &[],
            Window {
                from_ns: 0,
                to_ns: 100,
            },
        );
        assert!(svg.contains(">other clients<"));
        assert_eq!(
            svg.matches("class=\"msg delivered\"").count(),
            20,
            "every message still drawn"
        );
    }
}
