//! The run report, `index.html`: one self-contained page that shows what happened and,
//! when something broke, where and why.
//!
//! Order follows the reader's questions: did it pass (verdict, anomalies), what was run
//! (options, seed), what did the system do under which faults (charts with fault bands,
//! per-node lanes), where exactly did it break (per checker: explanation, cycles,
//! counterexample, timelines), what did the nodes say then (log excerpts), raw files.

use crate::analysis::Summary;
use crate::charts;
use crate::cycle::cycle_html;
use crate::error::{write_file, ReportError};
use crate::evidence;
use crate::faults;
use crate::html::{
    badge, chips, compact_json, esc, json_details, page, table, truncate, verdict_class,
};
use crate::lanes::lanes_svg;
use crate::logs::{self, Selection};
use crate::plot::{fault_color, short_number, Decor, Marker};
use crate::run_data::RunData;
use crate::timeline;
use chrono::{DateTime, Duration, Utc};
use distest_checkers::{History, Results, Validity, Verdict};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Seconds of node log shown before the first and after the last op of interest.
const LOG_MARGIN_S: i64 = 5;
/// Longest span of ops of interest the log window covers, from the first of them.
const LOG_SPAN_NS: u64 = 10_000_000_000;
/// Bytes of raw evidence JSON shown per checker.
const MAX_EVIDENCE_BYTES: usize = 64 * 1024;
/// The chart files written beside index.html.
const CHART_FILES: [&str; 3] = ["throughput.svg", "latency.svg", "messages.svg"];
/// Nemesis events listed in the events table.
const MAX_EVENT_ROWS: usize = 500;

/// Renders `run_dir/index.html` (plus `latency.svg` and `throughput.svg`) and returns
/// the page's path.
pub fn render_run(run_dir: &Path) -> Result<PathBuf, ReportError> {
    render(&RunData::load(run_dir)?)
}

/// Renders the report of `run` (loaded from disk, or handed over by a run that just
/// finished) into its directory; returns the page's path.
pub fn render(run: &RunData) -> Result<PathBuf, ReportError> {
    let run_dir = run.dir.as_path();
    let html = run_html(run)?;
    let out = run_dir.join("index.html");
    write_file(&out, html.page)?;
    for name in CHART_FILES {
        match html.svgs.iter().find(|(n, _)| *n == name) {
            Some((_, svg)) => write_file(&run_dir.join(name), svg)?,
            // A chart from an earlier render that this one could not draw is stale.
            None => {
                let _ = std::fs::remove_file(run_dir.join(name));
            }
        }
    }
    Ok(out)
}

/// A rendered page plus the chart files written beside it.
pub struct RenderedRun {
    pub page: String,
    pub svgs: Vec<(&'static str, String)>,
}

/// Builds the page of a loaded run without writing anything.
pub fn run_html(run: &RunData) -> Result<RenderedRun, ReportError> {
    let mut body = String::new();
    let mut svgs = Vec::new();
    let title = run_title(run);
    let _ = write!(body, "<h1>{}</h1>", esc(&title));
    let focus = match (&run.results, &run.history) {
        (Some(results), Some(_)) => evidence::named_ops(results, run.history_len()),
        _ => BTreeSet::new(),
    };
    body.push_str(&verdict_block(run));
    if !run.notes.is_empty() {
        // Missing or broken inputs change what the page can say: shown before anything else.
        body.push_str("<ul class=\"notes\">");
        for n in &run.notes {
            let _ = write!(body, "<li class=\"warn\">{}</li>", esc(n));
        }
        body.push_str("</ul>");
    }
    let _ = write!(
        body,
        "<nav><a href=\"#checkers\">checkers</a><a href=\"#test\">test</a><a href=\"#perf\">throughput &amp; latency</a>\
         <a href=\"#nodes\">nodes &amp; faults</a>{}<a href=\"#anomalies\">anomalies</a><a href=\"#logs\">node logs</a><a href=\"#files\">raw files</a></nav>",
        if run.journal.is_some() {
            "<a href=\"#messages\">messages</a>"
        } else {
            ""
        }
    );
    body.push_str(&checkers_table(run));
    body.push_str(&test_section(run));
    if let Some(plots) = run.plots() {
        let empty = History::default();
        let h = run.history.as_ref().unwrap_or(&empty);
        let events = faults::nemesis_events(h);
        let intervals = faults::intervals(&events, plots.end_ns);
        let decor = Decor {
            bands: charts::bands(&intervals),
            markers: anomaly_markers(run, h),
        };
        body.push_str("<h2 id=\"perf\">Throughput and latency</h2>");
        body.push_str(&summary_table(&plots.summary));
        if let Some(light) = &run.light {
            body.push_str(&counts_tables(light));
        }
        body.push_str(&fault_legend(&intervals, !decor.markers.is_empty()));
        if plots.summary.ops == 0 {
            body.push_str("<p class=\"note\">The history has no client ops; nothing to plot.</p>");
        } else if plots.end_ns == 0 {
            body.push_str("<p class=\"note\">The history's ops carry no times (every <code>time</code> is 0, as in some imported histories), so rates and latencies cannot be drawn.</p>");
        } else {
            let tp = charts::throughput_svg(&plots, &decor)?;
            let lat = charts::latency_svg(&plots, &decor)?;
            let _ = write!(body, "<figure>{tp}</figure><figure>{lat}</figure>");
            if run.light.is_some() {
                let _ = write!(
                    body,
                    "<p class=\"note\">Downsampled: the scatter shows {} of {} completed ops (in each time bucket the slowest ok ops, a sample of the fail and info ops, an even sample of the rest). Rates are exact; the p50, p95 and p99 lines are within 1 %, the max line exact.</p>",
                    plots.points.len(),
                    plots.completed
                );
            } else if plots.downsampled() {
                let _ = write!(
                    body,
                    "<p class=\"note\">The scatter shows {} of {} ops: every fail and info op, the slowest ok ops and an even sample of the rest. Quantile lines and rates use every op.</p>",
                    charts::MAX_SCATTER_POINTS,
                    plots.summary.ops
                );
            }
            svgs.push(("throughput.svg", tp));
            svgs.push(("latency.svg", lat));
        }
        body.push_str(&nodes_section(run, &events, plots.end_ns));
        if let Some(section) = messages_section(
            run,
            plots.summary.ops,
            &events,
            plots.end_ns,
            &focus,
            &mut svgs,
        ) {
            body.push_str(&section);
        }
        body.push_str(&anomalies_section(run, run.history.as_ref()));
    } else {
        body.push_str("<h2 id=\"perf\">Throughput and latency</h2><p class=\"note\">No readable history: no charts.</p>");
        body.push_str(&anomalies_section(run, None));
    }
    body.push_str(&logs_section(run, &focus));
    body.push_str(&files_section(run, &svgs));
    let _ = write!(
        body,
        "<p class=\"note\">Written by distest-reports {} from {}.</p>",
        env!("CARGO_PKG_VERSION"),
        esc(&run.dir.display().to_string())
    );
    Ok(RenderedRun {
        page: page(&tab_title(run, &title), &body),
        svgs,
    })
}

/// The light form's exact counts: client ops by f and by node, per outcome.
fn counts_tables(light: &crate::light::Light) -> String {
    let rows = |counts: &[(String, [u64; 3])]| -> Vec<Vec<String>> {
        counts
            .iter()
            .map(|(name, c)| {
                vec![
                    esc(name),
                    c[0].to_string(),
                    c[1].to_string(),
                    c[2].to_string(),
                    (c[0] + c[1] + c[2]).to_string(),
                ]
            })
            .collect()
    };
    let mut out = table(
        "counts-f",
        &["f", "ok", "fail", "info", "ops"],
        &rows(&light.per_f),
    );
    if !light.per_node.is_empty() {
        out.push_str(&table(
            "counts-node",
            &["node", "ok", "fail", "info", "ops"],
            &rows(&light.per_node),
        ));
    }
    out
}

/// The browser tab's title: the verdict first, so a row of tabs reads at a glance.
fn tab_title(run: &RunData, title: &str) -> String {
    match &run.results {
        Some(r) => format!("{} — {title}", r.valid.as_str().to_uppercase()),
        None => title.to_string(),
    }
}

/// `distest run: kv · register · partition`, from whatever test.json has.
pub fn run_title(run: &RunData) -> String {
    let parts: Vec<String> = ["target", "workload", "nemesis"]
        .iter()
        .filter_map(|k| run.test_str(k))
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() {
        format!("distest run: {}", dir_name(&run.dir))
    } else {
        format!("distest run: {}", parts.join(" · "))
    }
}

pub fn dir_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| dir.display().to_string())
}

fn verdict_block(run: &RunData) -> String {
    let Some(results) = &run.results else {
        return "<div class=\"verdict unknown\"><span class=\"badge unknown\">unknown</span> No results and no readable history: nothing was checked.</div>".into();
    };
    let mut anomalies = results.anomalies();
    if results.interrupted {
        anomalies.push("interrupted".into());
    }
    if results.error.is_some() {
        anomalies.push("run failed".into());
    }
    let sentence = headline(results);
    format!(
        "<div class=\"verdict {}\">{} {}<div>{}</div></div>",
        verdict_class(results.valid),
        badge(results.valid),
        esc(&sentence),
        chips(&anomalies)
    )
}

/// One sentence saying what the verdict is and who said so; for a run that was
/// interrupted or failed, that comes first.
pub fn headline(results: &Results) -> String {
    let checkers = checkers_headline(results);
    match (&results.error, results.interrupted) {
        (Some(error), _) => format!("The run failed: {error}. {checkers}"),
        (None, true) => format!(
            "Interrupted: the run was cut short by a signal and did not run its course, so it cannot pass. {checkers}"
        ),
        (None, false) => checkers,
    }
}

fn checkers_headline(results: &Results) -> String {
    let by = |v: Validity| -> Vec<&str> {
        results
            .checkers
            .iter()
            .filter(|(_, c)| c.valid == v)
            .map(|(n, _)| n.as_str())
            .collect()
    };
    match results.valid {
        Validity::Valid => format!(
            "No anomaly found by {} checker(s): {}.",
            results.checkers.len(),
            by(Validity::Valid).join(", ")
        ),
        Validity::Invalid => {
            let a = results.anomalies();
            format!(
                "{} found by {}.",
                if a.is_empty() {
                    "An anomaly was".to_string()
                } else {
                    format!(
                        "{} anomal{}",
                        a.len(),
                        if a.len() == 1 { "y" } else { "ies" }
                    )
                },
                by(Validity::Invalid).join(", ")
            )
        }
        Validity::Unknown if results.checkers.is_empty() => {
            "No checker ran, so nothing is known.".into()
        }
        Validity::Unknown if by(Validity::Unknown).is_empty() => format!(
            "No anomaly found by {} checker(s) in what was recorded: {}.",
            results.checkers.len(),
            by(Validity::Valid).join(", ")
        ),
        Validity::Unknown => format!(
            "Undecided: {} could not reach a verdict.",
            by(Validity::Unknown).join(", ")
        ),
    }
}

fn checkers_table(run: &RunData) -> String {
    let Some(results) = &run.results else {
        return String::new();
    };
    let mut rows: Vec<(&String, &Verdict)> = results.checkers.iter().collect();
    rows.sort_by_key(|(_, v)| match v.valid {
        Validity::Invalid => 0,
        Validity::Unknown => 1,
        Validity::Valid => 2,
    });
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(name, v)| {
            let link = if v.valid == Validity::Valid {
                esc(name)
            } else {
                format!("<a href=\"#checker-{}\">{}</a>", anchor(name), esc(name))
            };
            vec![
                link,
                badge(v.valid),
                chips(&v.anomalies),
                esc(&truncate(&v.summary, 400)),
            ]
        })
        .collect();
    format!(
        "<h2 id=\"checkers\">Checkers</h2>{}",
        table(
            "checkers",
            &["checker", "verdict", "anomalies", "summary"],
            &rows
        )
    )
}

/// An id fragment: only characters safe in ids and URLs.
fn anchor(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn test_section(run: &RunData) -> String {
    let mut out = String::from("<h2 id=\"test\">Test</h2>");
    let Some(map) = run.test_doc.as_object() else {
        out.push_str("<p class=\"note\">No test.json: options and seed unknown.</p>");
        return out;
    };
    if let Some(seed) = map.get("seed") {
        let _ = write!(
            out,
            "<p>Seed <b class=\"mono\">{}</b>: rerun with the same options and this seed to replay the op mix and the fault schedule.</p>",
            esc(&compact_json(seed, 80))
        );
    }
    if let Some(cmd) = map.get("command") {
        let _ = write!(out, "<pre>{}</pre>", esc(&compact_json(cmd, 2000)));
    }
    let rows: Vec<Vec<String>> = map
        .iter()
        .filter(|(k, _)| k.as_str() != "command")
        .take(200)
        .map(|(k, v)| {
            vec![
                format!("<code>{}</code>", esc(k)),
                format!("<span class=\"mono\">{}</span>", esc(&compact_json(v, 400))),
            ]
        })
        .collect();
    out.push_str(&table("options", &["option", "value"], &rows));
    out
}

fn summary_table(s: &Summary) -> String {
    let ms = |v: Option<f64>| {
        v.map(|x| format!("{} ms", short_number(x)))
            .unwrap_or_else(|| "–".into())
    };
    table(
        "summary",
        &[
            "client ops",
            "ok",
            "fail",
            "info",
            "duration",
            "ok ops/s",
            "p50 latency (ok)",
            "p99 latency (ok)",
        ],
        &[vec![
            s.ops.to_string(),
            s.ok.to_string(),
            s.fail.to_string(),
            s.info.to_string(),
            format!("{} s", short_number(s.duration_s)),
            short_number(s.ok_per_s),
            ms(s.p50_ms),
            ms(s.p99_ms),
        ]],
    )
}

fn fault_legend(intervals: &[faults::FaultInterval], markers: bool) -> String {
    let marker_note = if markers {
        " <span><i class=\"sw\" style=\"background:#cf222e\"></i>dashed red line: where a checker found an anomaly</span>"
    } else {
        ""
    };
    if intervals.is_empty() {
        return format!("<p class=\"legend\">No fault was active during the run (no fault op took effect).{marker_note}</p>");
    }
    let mut kinds: Vec<&str> = intervals.iter().map(|i| i.kind.as_str()).collect();
    kinds.sort();
    kinds.dedup();
    let mut out = String::from("<p class=\"legend\">Shaded bands: faults active. ");
    for k in kinds {
        let n = intervals.iter().filter(|i| i.kind == k).count();
        let _ = write!(
            out,
            "<span><i class=\"sw\" style=\"background:{}\"></i>{} ({n})</span>",
            fault_color(k),
            esc(k)
        );
    }
    out.push_str(marker_note);
    out.push_str("</p>");
    out
}

/// One marker per timeline window of each non-valid checker, at its first op of interest.
fn anomaly_markers(run: &RunData, h: &History) -> Vec<Marker> {
    let Some(results) = &run.results else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, v) in results
        .checkers
        .iter()
        .filter(|(_, v)| v.valid != Validity::Valid)
    {
        let focus = evidence::op_indices(&v.evidence, run.history_len());
        let (windows, _) = timeline::windows(h, &focus);
        for w in windows {
            let in_window: Vec<u64> = focus
                .range(h.ops()[w.first].index..=h.ops()[w.last].index)
                .copied()
                .collect();
            let Some(first) = in_window
                .iter()
                .filter_map(|&i| run.op(i))
                .map(|o| o.time)
                .min()
            else {
                continue;
            };
            out.push(Marker {
                at_s: first as f64 / 1e9,
                title: format!(
                    "{name}: {} at ops {}",
                    if v.anomalies.is_empty() {
                        "anomaly".to_string()
                    } else {
                        v.anomalies.join(", ")
                    },
                    in_window
                        .iter()
                        .take(8)
                        .map(|i| format!("#{i}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    out
}

fn nodes_section(run: &RunData, events: &[faults::NemesisEvent<'_>], end_ns: u64) -> String {
    let mut out = String::from("<h2 id=\"nodes\">Nodes and faults</h2>");
    if events.is_empty() {
        out.push_str("<p class=\"note\">The nemesis did nothing in this run.</p>");
        return out;
    }
    let nodes = run.node_names();
    let per_node = faults::node_events(events, &nodes);
    let node_iv = faults::node_intervals(events, &nodes, end_ns);
    out.push_str("<figure>");
    out.push_str(&lanes_svg(&nodes, &node_iv, &per_node, end_ns));
    out.push_str("</figure>");
    let rows: Vec<Vec<String>> = events
        .iter()
        .take(MAX_EVENT_ROWS)
        .map(|e| {
            let named = faults::nodes_in(&e.op.value, &nodes);
            vec![
                format!(
                    "<span class=\"mono\">{:.3} s</span>",
                    e.time_ns as f64 / 1e9
                ),
                format!("#{}", e.op.index),
                esc(&e.op.f),
                esc(&named.join(", ")),
                match &e.op.error {
                    // A fault that failed to apply is as important as one that did.
                    Some(err) => format!(
                        "<span class=\"mono\">{}</span> <span class=\"warn\">error: {}</span>",
                        esc(&compact_json(&e.op.value, 300)),
                        esc(&compact_json(err, 300))
                    ),
                    None => format!(
                        "<span class=\"mono\">{}</span>",
                        esc(&compact_json(&e.op.value, 300))
                    ),
                },
            ]
        })
        .collect();
    let _ = write!(
        out,
        "<details{}><summary>{} nemesis event(s)</summary>{}</details>",
        if events.len() <= 40 { " open" } else { "" },
        events.len(),
        table(
            "events",
            &["time", "op", "f", "nodes", "value (what was done)"],
            &rows
        )
    );
    if events.len() > MAX_EVENT_ROWS {
        let _ = write!(
            out,
            "<p class=\"note\">First {MAX_EVENT_ROWS} events shown; all are in history.jsonl.</p>"
        );
    }
    out
}

/// Op indices referenced by non-valid checkers' evidence.
/// The message section (runs with a journal): Maelstrom's network statistics and the
/// message-flow diagram of a window, by default around the first op of interest (the
/// first anomaly), else the first fault.
fn messages_section(
    run: &RunData,
    client_ops: u64,
    events: &[faults::NemesisEvent<'_>],
    end_ns: u64,
    focus: &BTreeSet<u64>,
    svgs: &mut Vec<(&'static str, String)>,
) -> Option<String> {
    let journal = run.journal.as_ref()?;
    let mut out = String::from("<h2 id=\"messages\">Messages</h2>");
    let stats = distest_checkers::net::stats(journal, client_ops);
    let rows: Vec<Vec<String>> = ["all", "clients", "servers"]
        .iter()
        .map(|class| {
            let c = &stats[class];
            let n = |k: &str| c[k].as_f64().map_or("—".to_string(), short_number);
            vec![
                esc(class),
                n("send-count"),
                n("recv-count"),
                n("drop-count"),
                n("msg-count"),
                n("msgs-per-op"),
            ]
        })
        .collect();
    out.push_str(&table(
        "net",
        &[
            "messages",
            "sent",
            "delivered",
            "dropped",
            "distinct",
            "msgs-per-op",
        ],
        &rows,
    ));
    if let Some(reasons) = stats["drops-by-reason"]
        .as_object()
        .filter(|r| !r.is_empty())
    {
        let list: Vec<String> = reasons
            .iter()
            .map(|(k, v)| format!("{} {}", v, esc(k)))
            .collect();
        let _ = write!(
            out,
            "<p class=\"note\">Drops by reason: {} (<code>network</code>: sent but never delivered, a partition or packet loss).</p>",
            list.join(", ")
        );
    }
    let messages = journal.messages();
    let anchor = focus
        .iter()
        .filter_map(|&i| run.op(i))
        .map(|o| o.time)
        .min()
        .or_else(|| events.first().map(|e| e.time_ns));
    let Some(window) = run
        .messages_window
        .or_else(|| crate::lamport::default_window(&messages, anchor))
    else {
        out.push_str("<p class=\"note\">The journal holds no messages.</p>");
        return Some(out);
    };
    let nodes = run.node_names();
    let node_iv = faults::node_intervals(events, &nodes, end_ns);
    let svg = crate::lamport::lamport_svg(&messages, &nodes, &node_iv, window);
    let _ = write!(
        out,
        "<p class=\"note\">Messages from {} s to {} s{}: one lane per client, node and service, time flowing down; a red cross is a dropped message (hover for why), dashed arrows are replies, shaded spans are faults on that node. <code>distest report --messages-window FROM-TO</code> draws another window (seconds).</p><figure>{svg}</figure>",
        short_number(window.from_ns as f64 / 1e9),
        short_number(window.to_ns as f64 / 1e9),
        if run.messages_window.is_some() {
            ""
        } else if anchor.is_some() && !focus.is_empty() {
            ", around the first anomaly"
        } else {
            ""
        }
    );
    svgs.push(("messages.svg", svg));
    Some(out)
}

fn anomalies_section(run: &RunData, history: Option<&History>) -> String {
    let mut out = String::from("<h2 id=\"anomalies\">Anomalies</h2>");
    let Some(results) = &run.results else {
        out.push_str("<p class=\"note\">No results.</p>");
        return out;
    };
    let bad: Vec<(&String, &Verdict)> = results
        .checkers
        .iter()
        .filter(|(_, v)| v.valid != Validity::Valid)
        .collect();
    if bad.is_empty() {
        out.push_str("<p>None: every checker found the history valid.</p>");
        return out;
    }
    for (name, v) in bad {
        out.push_str(&checker_view(name, v, history, run.history_len()));
    }
    out
}

/// `history_len`: the whole history's, which `history` holds only part of in the light
/// form.
fn checker_view(name: &str, v: &Verdict, history: Option<&History>, history_len: usize) -> String {
    let mut out = format!(
        "<section class=\"checker\" id=\"checker-{}\"><h3>{} {}</h3><div>{}</div>",
        anchor(name),
        esc(name),
        badge(v.valid),
        chips(&v.anomalies)
    );
    if !v.summary.is_empty() {
        let _ = write!(out, "<p>{}</p>", esc(&v.summary));
    }
    if !v.explanation.is_empty() {
        let _ = write!(
            out,
            "<pre class=\"explanation\">{}</pre>",
            esc(&truncate(&v.explanation, 20_000))
        );
    }
    let (cycles, total) = evidence::cycles(&v.evidence);
    if !cycles.is_empty() {
        let _ = write!(out, "<h4>Dependency cycles ({total})</h4>");
        for c in &cycles {
            out.push_str(&cycle_html(c));
        }
        if total > cycles.len() {
            let _ = write!(
                out,
                "<p class=\"note\">{} more cycles are in results.json.</p>",
                total - cycles.len()
            );
        }
    }
    if name.contains("linear") {
        out.push_str(&linearizable_view(&v.evidence, history));
    }
    if let Some(h) = history {
        let focus = evidence::op_indices(&v.evidence, history_len);
        if !focus.is_empty() {
            let (windows, cut) = timeline::windows(h, &focus);
            let highlight = timeline::Highlight {
                primary: primary_ops(&v.evidence, history_len),
                focus: focus.clone(),
                key: evidence::linearizable(&v.evidence).key,
            };
            let _ = write!(
                out,
                "<h4>Timeline around the {} op(s) the checker points at</h4><p class=\"note\">Columns are processes, bars run from invocation to completion (blue ok, red fail, orange info or never completed); outlined bars are the ones the checker names, in red where it says the history breaks. Hover a bar for the full op.</p>",
                focus.len()
            );
            for w in windows {
                let _ = write!(
                    out,
                    "<figure class=\"timeline\"><figcaption class=\"note\">history entries {} to {}</figcaption>{}</figure>",
                    h.ops()[w.first].index,
                    h.ops()[w.last].index,
                    timeline::timeline_svg(h, w, &highlight)
                );
            }
            if cut {
                out.push_str("<p class=\"note\">More referenced ops lie outside the windows shown; see the evidence.</p>");
            }
        }
    }
    if !v.evidence.is_null() {
        out.push_str(&json_details(
            "Raw evidence (JSON)",
            &v.evidence,
            MAX_EVIDENCE_BYTES,
        ));
    }
    out.push_str("</section>");
    out
}

fn linearizable_view(ev: &Value, history: Option<&History>) -> String {
    let lin = evidence::linearizable(ev);
    if lin == evidence::Linearizable::default() {
        return String::new();
    }
    let mut out = String::from("<h4>Linearizability counterexample</h4>");
    if let Some(key) = &lin.key {
        let _ = write!(
            out,
            "<p>Key <code>{}</code>.</p>",
            esc(&compact_json(key, 200))
        );
    }
    if let Some(op) = &lin.failing_op {
        let index = op
            .as_u64()
            .or_else(|| op.get("index").and_then(Value::as_u64));
        let found = index
            .zip(history)
            .and_then(|(i, h)| Some((timeline::position(h, i)?, h)));
        let described = match found {
            Some((i, h)) => {
                let mut pair: Vec<usize> = std::iter::once(i).chain(h.partner(i)).collect();
                pair.sort_unstable();
                pair.iter()
                    .map(|&p| h.ops()[p].to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            }
            _ => op_text(op),
        };
        let _ = write!(
            out,
            "<p>It breaks at this op: no order of the ops before it that the model accepts can justify its result.</p><pre>{}</pre>",
            esc(&described)
        );
    }
    if let Some(observed) = &lin.observed {
        let _ = write!(
            out,
            "<p>It returned <code>{}</code>.</p>",
            esc(&compact_json(observed, 300))
        );
    }
    if !lin.involved.is_empty() {
        // `p3@n2`: process 3 talking to node n2, so a read served by a node cut off from
        // the others shows as such.
        let rows: Vec<Vec<String>> = lin
            .involved
            .iter()
            .map(|op| {
                let node = op.get("node").and_then(Value::as_str).unwrap_or("?");
                vec![
                    format!("<span class=\"mono\">{}</span>", esc(&op_text(op))),
                    esc(node),
                ]
            })
            .collect();
        let any_node = lin.involved.iter().any(|op| op.get("node").is_some());
        let _ = write!(
            out,
            "<p>The ops involved: the failing op, the ops concurrent with it, the last op before it{}:</p>{}",
            if any_node {
                " (<code>p3@n2</code> is process 3 talking to node n2)"
            } else {
                ""
            },
            table("involved", &["op", "node"], &rows)
        );
    }
    if !lin.prefix.is_empty() {
        let rows: Vec<Vec<String>> = lin
            .prefix
            .iter()
            .map(|(op, state)| {
                vec![
                    format!("<span class=\"mono\">{}</span>", esc(&op_text(op))),
                    format!(
                        "<span class=\"mono\">{}</span>",
                        esc(&state
                            .as_ref()
                            .map(|s| compact_json(s, 200))
                            .unwrap_or_default())
                    ),
                ]
            })
            .collect();
        let _ = write!(
            out,
            "<p>The longest order the model accepts{}, its last steps:</p>{}",
            lin.prefix_len
                .map(|n| format!(" ({n} ops)"))
                .unwrap_or_default(),
            table("prefix", &["op", "model state after it"], &rows)
        );
    }
    if !lin.states.is_empty() {
        let _ = write!(
            out,
            "<p>The states the model could be in when the op ran ({}{}), none of which allows its result:</p><ol class=\"mono\">",
            lin.states.len(),
            if lin.states.len() == evidence::MAX_STATES {
                "+"
            } else {
                ""
            }
        );
        for s in &lin.states {
            let _ = write!(out, "<li>{}</li>", esc(&compact_json(s, 300)));
        }
        out.push_str("</ol>");
    }
    out
}

fn logs_section(run: &RunData, focus: &BTreeSet<u64>) -> String {
    let mut out = String::from("<h2 id=\"logs\">Node logs</h2>");
    let nodes = run.node_names();
    let window = log_window(run, focus);
    let excerpts = logs::excerpts(&run.dir, &nodes, window);
    if excerpts.is_empty() {
        out.push_str(
            "<p class=\"note\">No node logs in this run directory (nodes/&lt;node&gt;/*.log).</p>",
        );
        return out;
    }
    match window {
        Some((a, b)) => {
            let _ = write!(
                out,
                "<p class=\"note\">Lines stamped between {} and {} (the ops the checkers point at, ± {LOG_MARGIN_S} s); logs whose timestamps could not be aligned show their last lines.</p>",
                a.to_rfc3339(),
                b.to_rfc3339()
            );
        }
        None => out.push_str("<p class=\"note\">The last lines of each log (no anomaly to align on, or no started_at in test.json).</p>"),
    }
    let clock_faults = run.history.as_ref().is_some_and(|h| {
        h.nemesis_ops().any(
            |op| matches!(faults::role(&op.f), Some(faults::FaultRole::Start(k)) if k == "clock"),
        )
    });
    if clock_faults && window.is_some() {
        out.push_str("<p class=\"warn\">The nemesis moved node clocks in this run: a skewed node stamps its lines with its own wrong time, so its excerpt may be shifted by the offsets listed under Nodes and faults.</p>");
    }
    for ex in excerpts {
        let how = match ex.selection {
            Selection::Aligned => "around the failure",
            Selection::Tail => "last lines",
        };
        let mut text = String::new();
        for (n, line) in &ex.lines {
            let _ = writeln!(text, "{n:>6}  {}", esc(line));
        }
        let _ = write!(
            out,
            "<details{}><summary><b>{}</b> <a href=\"{}\">{}</a> — {how}{}</summary><pre class=\"mono\">{text}</pre></details>",
            if ex.selection == Selection::Aligned { " open" } else { "" },
            esc(&ex.node),
            href(&ex.rel_path),
            esc(&ex.rel_path.display().to_string()),
            if ex.cut { " (excerpt)" } else { "" },
        );
    }
    out
}

/// Wall-clock span of the ops of interest, from `started_at` plus their op times.
fn log_window(run: &RunData, focus: &BTreeSet<u64>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let started = DateTime::parse_from_rfc3339(run.started_at()?).ok()?;
    let times: Vec<u64> = focus
        .iter()
        .filter_map(|&i| run.op(i))
        .map(|op| op.time)
        .collect();
    // Centered on the first anomaly: a window spanning anomalies minutes apart would
    // fill the excerpt with lines unrelated to either.
    let min = *times.iter().min()?;
    let max = times
        .iter()
        .copied()
        .filter(|&t| t <= min.saturating_add(LOG_SPAN_NS))
        .max()?;
    let at = |ns: u64| {
        started.with_timezone(&Utc) + Duration::nanoseconds(ns.min(i64::MAX as u64) as i64)
    };
    Some((
        at(min) - Duration::seconds(LOG_MARGIN_S),
        at(max) + Duration::seconds(LOG_MARGIN_S),
    ))
}

fn files_section(run: &RunData, svgs: &[(&'static str, String)]) -> String {
    let mut links: Vec<PathBuf> = [
        "test.json",
        "history.jsonl",
        "history.edn",
        "results.json",
        "messages.jsonl",
        "distest.log",
    ]
    .iter()
    .map(PathBuf::from)
    .filter(|p| run.dir.join(p).is_file())
    .collect();
    links.extend(svgs.iter().map(|(n, _)| PathBuf::from(n)));
    links.extend(
        logs::log_files(&run.dir, &run.node_names())
            .into_iter()
            .map(|(_, p)| p.strip_prefix(&run.dir).map(Path::to_path_buf).unwrap_or(p)),
    );
    let mut out = String::from("<h2 id=\"files\">Raw files</h2><ul>");
    for l in links {
        let _ = write!(
            out,
            "<li><a href=\"{}\">{}</a></li>",
            href(&l),
            esc(&l.display().to_string())
        );
    }
    out.push_str("</ul>");
    out
}

/// The op(s) at which a checker says the history breaks (`failing_op`), as indices.
fn primary_ops(ev: &Value, history_len: usize) -> BTreeSet<u64> {
    let lin = evidence::linearizable(ev);
    lin.failing_op
        .map(|op| evidence::op_indices(&serde_json::json!({ "failing_op": op }), history_len))
        .unwrap_or_default()
}

/// An op reference from evidence as text: its `display` if the checker gave one.
fn op_text(op: &Value) -> String {
    match op.get("display").and_then(Value::as_str) {
        Some(d) => truncate(d, 300),
        None => compact_json(op, 300),
    }
}

/// A relative link to `path`: each segment percent-encoded, so names cannot break out.
pub fn href(path: &Path) -> String {
    let mut out = String::new();
    for (i, seg) in path.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        for b in seg.to_string_lossy().bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn href_encodes_everything_but_safe_characters() {
        assert_eq!(
            href(Path::new("nodes/n1/a b\"<.log")),
            "nodes/n1/a%20b%22%3C.log"
        );
    }

    #[test]
    fn anchors_are_id_safe() {
        assert_eq!(anchor("list-append \"x\""), "list-append__x_");
    }
}
