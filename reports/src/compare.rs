//! Comparing runs side by side: `compare.html` (table, differences, overlaid charts) and
//! `compare.md` (the same table and differences, for publishing in a README or an issue).
//!
//! A row per run: target, workload, nemesis, seed, verdict, anomalies, ok ops/s, p50 and
//! p99 latency of ok ops. Then what differs between the runs (options, verdicts,
//! anomalies found by some runs only), then p50/p99 latency and throughput of every run
//! overlaid on one time axis.

use crate::analysis::{LatencyQuantiles, Summary};
use crate::error::{write_file, ReportError};
use crate::html::{badge, chips, compact_json, esc, page, table};
use crate::plot::{chart_svg, palette, segments, ChartSpec, Decor, Mark, Series, YAxis};
use crate::run_data::RunData;
use crate::run_page::{dir_name, href};
use distest_checkers::{OpType, Validity};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::{Component, Path, PathBuf};

/// Runs compared at once; beyond this the charts stop being readable.
pub const MAX_RUNS: usize = 50;
/// test.json keys that differ between any two runs by nature and say nothing.
const IGNORED_KEYS: &[&str] = &["started_at", "command", "distest_version"];

/// The two files a comparison writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompareOutput {
    pub html: PathBuf,
    pub markdown: PathBuf,
}

/// One run's row.
pub struct RunRow {
    pub label: String,
    pub dir: PathBuf,
    pub test: Value,
    pub valid: Option<Validity>,
    pub anomalies: Vec<String>,
    pub summary: Option<Summary>,
    quantiles: Option<LatencyQuantiles>,
    throughput: Option<(Vec<f64>, Vec<f64>)>,
    /// Why the run could not be read (it still gets a row: one broken run must not hide
    /// the others).
    pub error: Option<String>,
}

impl RunRow {
    fn label(dir: &Path, n: usize) -> String {
        let parent = dir
            .parent()
            .and_then(|p| p.file_name())
            .map(|p| format!("{}/", p.to_string_lossy()))
            .unwrap_or_default();
        format!("#{n} {parent}{}", dir_name(dir))
    }

    fn load(dir: &Path, n: usize) -> RunRow {
        match RunData::load(dir) {
            Ok(run) => Self::of(dir, n, run),
            Err(e) => RunRow {
                label: Self::label(dir, n),
                dir: dir.to_path_buf(),
                test: Value::Null,
                valid: None,
                anomalies: Vec::new(),
                summary: None,
                quantiles: None,
                throughput: None,
                error: Some(e.to_string()),
            },
        }
    }

    fn of(dir: &Path, n: usize, run: RunData) -> RunRow {
        let plots = run.plots();
        let throughput = plots.as_ref().map(|p| {
            let t = &p.throughput;
            let xs: Vec<f64> = (0..t.buckets.count).map(|b| t.buckets.mid_s(b)).collect();
            let ys: Vec<f64> = (0..t.buckets.count)
                .map(|b| {
                    t.series
                        .iter()
                        .filter(|(_, o, _)| *o == OpType::Ok)
                        .map(|(_, _, r)| r[b])
                        .sum()
                })
                .collect();
            (xs, ys)
        });
        RunRow {
            label: Self::label(dir, n),
            dir: dir.to_path_buf(),
            valid: run.results.as_ref().map(|r| r.valid),
            anomalies: run
                .results
                .as_ref()
                .map(|r| r.anomalies())
                .unwrap_or_default(),
            summary: plots.as_ref().map(|p| p.summary),
            quantiles: plots.as_ref().map(|p| p.quantiles.clone()),
            throughput,
            test: run.test_doc,
            error: None,
        }
    }

    fn field(&self, key: &str) -> String {
        match self.test.get(key) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect::<Vec<_>>()
                .join(","),
            Some(other) => compact_json(other, 60),
        }
    }
}

/// Compares `runs`, writing `compare.html` and `compare.md` into `out_dir`.
pub fn compare(runs: &[PathBuf], out_dir: &Path) -> Result<CompareOutput, ReportError> {
    compare_titled(
        runs,
        out_dir,
        &format!("{} runs compared", runs.len().min(MAX_RUNS)),
    )
}

/// [`compare`] with a title of the caller's (e.g. `suite nightly`).
pub fn compare_titled(
    runs: &[PathBuf],
    out_dir: &Path,
    title: &str,
) -> Result<CompareOutput, ReportError> {
    if runs.is_empty() {
        return Err(ReportError::NoRuns {
            path: out_dir.to_path_buf(),
        });
    }
    let rows = runs
        .iter()
        .take(MAX_RUNS)
        .enumerate()
        .map(|(i, d)| RunRow::load(d, i + 1))
        .collect::<Vec<_>>();
    std::fs::create_dir_all(out_dir).map_err(|e| ReportError::write(out_dir, e))?;
    let diffs = differences(&rows);
    let html_path = out_dir.join("compare.html");
    let md_path = out_dir.join("compare.md");
    write_file(
        &html_path,
        compare_html(title, &rows, &diffs, out_dir, runs.len())?,
    )?;
    write_file(&md_path, compare_markdown(title, &rows, &diffs))?;
    Ok(CompareOutput {
        html: html_path,
        markdown: md_path,
    })
}

const COLUMNS: &[&str] = &[
    "run",
    "target",
    "workload",
    "nemesis",
    "seed",
    "verdict",
    "anomalies",
    "ok ops/s",
    "p50 (ms)",
    "p99 (ms)",
];

fn number(v: Option<f64>) -> String {
    v.map(crate::plot::short_number)
        .unwrap_or_else(|| "–".into())
}

/// Cells in column order, unescaped text.
fn cells(r: &RunRow) -> Vec<String> {
    vec![
        r.label.clone(),
        r.field("target"),
        r.field("workload"),
        r.field("nemesis"),
        r.field("seed"),
        match (&r.error, r.valid) {
            (Some(e), _) => format!("unreadable: {e}"),
            (None, Some(v)) => v.as_str().to_string(),
            (None, None) => "not checked".into(),
        },
        r.anomalies.join(", "),
        number(r.summary.map(|s| s.ok_per_s)),
        number(r.summary.and_then(|s| s.p50_ms)),
        number(r.summary.and_then(|s| s.p99_ms)),
    ]
}

/// One line per way the runs differ: options, verdicts, anomalies seen by some only.
pub fn differences(rows: &[RunRow]) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    if rows.len() < 2 {
        return out;
    }
    let verdicts: Vec<String> = rows.iter().map(|r| cells(r)[5].clone()).collect();
    if verdicts.iter().collect::<BTreeSet<_>>().len() > 1 {
        out.push(("verdict".to_string(), verdicts));
    }
    let all: BTreeSet<&String> = rows.iter().flat_map(|r| &r.anomalies).collect();
    for a in all {
        let seen: Vec<String> = rows
            .iter()
            .map(|r| {
                if r.anomalies.contains(a) {
                    "found".into()
                } else {
                    "–".into()
                }
            })
            .collect();
        if seen.iter().any(|s| s == "–") {
            out.push((format!("anomaly {a}"), seen));
        }
    }
    let keys: BTreeSet<&String> = rows
        .iter()
        .filter_map(|r| r.test.as_object())
        .flat_map(|m| m.keys())
        .filter(|k| !IGNORED_KEYS.contains(&k.as_str()))
        .collect();
    for k in keys {
        let values: Vec<String> = rows.iter().map(|r| r.field(k)).collect();
        if values.iter().collect::<BTreeSet<_>>().len() > 1 {
            out.push((format!("option {k}"), values));
        }
    }
    out
}

fn compare_html(
    title: &str,
    rows: &[RunRow],
    diffs: &[(String, Vec<String>)],
    out_dir: &Path,
    asked: usize,
) -> Result<String, ReportError> {
    let mut body = format!("<h1>distest: {}</h1>", esc(title));
    if asked > rows.len() {
        let _ = write!(
            body,
            "<p class=\"warn\">Only the first {MAX_RUNS} of {asked} runs are compared.</p>"
        );
    }
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let c = cells(r);
            let page = r.dir.join("index.html");
            let target = if page.is_file() { page } else { r.dir.clone() };
            let mut out: Vec<String> = c.iter().map(|s| esc(s)).collect();
            out[0] = format!(
                "<a href=\"{}\">{}</a>",
                href(&relative(out_dir, &target)),
                esc(&c[0])
            );
            out[5] = match (&r.error, r.valid) {
                (Some(e), _) => format!("<span class=\"warn\">unreadable: {}</span>", esc(e)),
                (None, Some(v)) => badge(v),
                (None, None) => "<span class=\"note\">not checked</span>".into(),
            };
            out[6] = chips(&r.anomalies);
            out
        })
        .collect();
    body.push_str(&table("runs", COLUMNS, &table_rows));
    body.push_str("<h2>What differs</h2>");
    if diffs.is_empty() {
        body.push_str("<p>Nothing: same options, verdicts and anomalies.</p>");
    } else {
        let mut header = vec!["".to_string()];
        header.extend(rows.iter().map(|r| r.label.clone()));
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        let drows: Vec<Vec<String>> = diffs
            .iter()
            .map(|(k, vs)| {
                std::iter::once(esc(k))
                    .chain(vs.iter().map(|v| esc(v)))
                    .collect()
            })
            .collect();
        body.push_str(&table("diffs", &header, &drows));
    }
    body.push_str("<h2>Latency and throughput</h2><p class=\"note\">Each run on its own time axis from its start; p50 thick, p99 thin, same color per run.</p>");
    body.push_str(&format!("<figure>{}</figure>", overlay_latency(rows)?));
    body.push_str(&format!("<figure>{}</figure>", overlay_throughput(rows)?));
    Ok(page(&format!("distest: {title}"), &body))
}

fn overlay_latency(rows: &[RunRow]) -> Result<String, ReportError> {
    let mut series = Vec::new();
    let (mut lo, mut hi, mut x_max) = (f64::MAX, 0f64, 0f64);
    for (i, r) in rows.iter().enumerate() {
        let Some(q) = &r.quantiles else { continue };
        x_max = x_max.max(q.buckets.mid_s(q.buckets.count));
        for (name, values) in q.series.iter().filter(|(n, _)| *n == "p50" || *n == "p99") {
            for v in values.iter().flatten() {
                lo = lo.min(*v);
                hi = hi.max(*v);
            }
            series.push(Series {
                label: format!("{} {name}", short_label(&r.label)),
                color: palette(i),
                mark: Mark::Line {
                    segments: segments(
                        values
                            .iter()
                            .enumerate()
                            .map(|(b, v)| (q.buckets.mid_s(b), *v)),
                    ),
                    width: if *name == "p50" { 3 } else { 1 },
                },
            });
        }
    }
    if lo > hi {
        (lo, hi) = (0.1, 1.0);
    }
    chart_svg(
        &ChartSpec {
            name: "compare latency",
            title: "Latency quantiles of ok ops per run",
            x_max_s: x_max,
            y: YAxis::Log {
                min: lo.max(1e-3),
                max: hi,
            },
            y_desc: "latency (ms)",
            decor: &Decor::default(),
        },
        &series,
    )
}

fn overlay_throughput(rows: &[RunRow]) -> Result<String, ReportError> {
    let mut series = Vec::new();
    let (mut max, mut x_max) = (0f64, 0f64);
    for (i, r) in rows.iter().enumerate() {
        let Some((xs, ys)) = &r.throughput else {
            continue;
        };
        x_max = x_max.max(xs.last().copied().unwrap_or(0.0));
        max = ys.iter().copied().fold(max, f64::max);
        series.push(Series {
            label: short_label(&r.label),
            color: palette(i),
            mark: Mark::Line {
                segments: segments(xs.iter().zip(ys).map(|(x, y)| (*x, Some(*y)))),
                width: 2,
            },
        });
    }
    chart_svg(
        &ChartSpec {
            name: "compare throughput",
            title: "Throughput of ok ops per run",
            x_max_s: x_max,
            y: YAxis::Linear { max: max * 1.1 },
            y_desc: "throughput (ops/s)",
            decor: &Decor::default(),
        },
        &series,
    )
}

/// `#2 kv-register-partition/2026…` → `#2 2026…`: legends have little room.
fn short_label(label: &str) -> String {
    match label.split_once(' ') {
        Some((n, rest)) => format!("{n} {}", rest.rsplit('/').next().unwrap_or(rest)),
        None => label.to_string(),
    }
}

/// Markdown-safe cell text: no table breaks, no HTML, no link or emphasis syntax.
fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn md_table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut out = format!(
        "| {} |\n",
        header.iter().map(|h| md(h)).collect::<Vec<_>>().join(" | ")
    );
    out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
    for r in rows {
        out.push_str(&format!(
            "| {} |\n",
            r.iter().map(|c| md(c)).collect::<Vec<_>>().join(" | ")
        ));
    }
    out
}

fn compare_markdown(title: &str, rows: &[RunRow], diffs: &[(String, Vec<String>)]) -> String {
    let mut out = format!("# distest: {}\n\n", md(title));
    let header: Vec<String> = COLUMNS.iter().map(|s| s.to_string()).collect();
    out.push_str(&md_table(
        &header,
        &rows.iter().map(cells).collect::<Vec<_>>(),
    ));
    out.push_str("\n## What differs\n\n");
    if diffs.is_empty() {
        out.push_str("Nothing: same options, verdicts and anomalies.\n");
    } else {
        let mut header = vec![String::new()];
        header.extend(rows.iter().map(|r| r.label.clone()));
        let drows: Vec<Vec<String>> = diffs
            .iter()
            .map(|(k, vs)| {
                std::iter::once(k.clone())
                    .chain(vs.iter().cloned())
                    .collect()
            })
            .collect();
        out.push_str(&md_table(&header, &drows));
    }
    out
}

/// `to` relative to the directory `from` (both made absolute first), for portable links.
pub fn relative(from: &Path, to: &Path) -> PathBuf {
    let abs = |p: &Path| {
        std::fs::canonicalize(p).unwrap_or_else(|_| {
            std::env::current_dir()
                .map(|c| c.join(p))
                .unwrap_or_else(|_| p.to_path_buf())
        })
    };
    let (from, to) = (abs(from), abs(to));
    let f: Vec<Component<'_>> = from.components().collect();
    let t: Vec<Component<'_>> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c.as_os_str());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_cells_cannot_break_the_table_or_inject_html() {
        assert_eq!(md("a|b\n<script>"), "a\\|b &lt;script&gt;");
        assert_eq!(md("[x](javascript:1)"), "\\[x\\](javascript:1)");
    }

    #[test]
    fn relative_paths_climb_to_the_common_ancestor() {
        assert_eq!(
            relative(Path::new("/a/b/out"), Path::new("/a/c/run/index.html")),
            PathBuf::from("../../c/run/index.html")
        );
    }
}
