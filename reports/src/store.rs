//! The store's front page, `store/index.html`: every run with its verdict and links.
//!
//! Only `test.json` and `results.json` are read per run (never the history), so a store
//! of hundreds of runs indexes in moments. The walk is bounded in depth and count and
//! does not follow symlinks (`store/latest` points at a run already listed).

use crate::error::{write_file, ReportError};
use crate::html::{badge, chips, compact_json, esc, page, table};
use crate::run_page::{dir_name, href};
use crate::rundir::RunData;
use std::path::{Path, PathBuf};

/// `store/<target>-<workload>-<nemesis>/<timestamp>/` is two levels; one more for slack.
const MAX_DEPTH: usize = 3;
/// Runs listed at most; directory entries looked at at most.
pub const MAX_RUNS: usize = 10_000;
const MAX_ENTRIES: usize = 200_000;

/// Whether `dir` looks like a run directory.
pub fn is_run_dir(dir: &Path) -> bool {
    ["test.json", "history.jsonl", "history.edn", "results.json"]
        .iter()
        .any(|f| dir.join(f).is_file())
}

/// Run directories under `store`, sorted by path (timestamps sort in time order).
pub fn find_runs(store: &Path) -> Vec<PathBuf> {
    let mut runs = Vec::new();
    let mut stack = vec![(store.to_path_buf(), 0usize)];
    let mut seen = 0usize;
    while let Some((dir, depth)) = stack.pop() {
        if is_run_dir(&dir) {
            runs.push(dir);
            if runs.len() >= MAX_RUNS {
                break;
            }
            continue;
        }
        if depth >= MAX_DEPTH {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            seen += 1;
            if seen > MAX_ENTRIES {
                break;
            }
            // file_type() does not follow symlinks: `latest` is skipped here.
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push((e.path(), depth + 1));
            }
        }
    }
    runs.sort();
    runs
}

/// Writes `store/index.html` listing every run, newest first; returns its path.
pub fn store_index(store: &Path) -> Result<PathBuf, ReportError> {
    if !store.is_dir() {
        return Err(ReportError::read(store, "it is not a directory"));
    }
    let runs = find_runs(store);
    let mut rows = Vec::with_capacity(runs.len());
    for dir in runs.iter().rev() {
        let rel = dir.strip_prefix(store).unwrap_or(dir);
        let run = match RunData::load_meta(dir) {
            Ok(r) => r,
            Err(e) => {
                rows.push(vec![
                    esc(&rel.display().to_string()),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    esc(&e.to_string()),
                    String::new(),
                ]);
                continue;
            }
        };
        let link_target = if dir.join("index.html").is_file() {
            rel.join("index.html")
        } else {
            rel.to_path_buf()
        };
        let (verdict, anomalies) = match &run.results {
            Some(r) => (badge(r.valid), chips(&r.anomalies())),
            None => (
                "<span class=\"note\">not checked</span>".to_string(),
                String::new(),
            ),
        };
        let field = |k: &str| esc(&run.test_str(k).unwrap_or_default());
        let mut files = Vec::new();
        for f in ["results.json", "history.jsonl", "test.json"] {
            if dir.join(f).is_file() {
                files.push(format!("<a href=\"{}\">{f}</a>", href(&rel.join(f))));
            }
        }
        rows.push(vec![
            format!(
                "<a href=\"{}\">{}</a>",
                href(&link_target),
                esc(&rel.display().to_string())
            ),
            field("started_at"),
            field("target"),
            field("workload"),
            field("nemesis"),
            run.test
                .get("seed")
                .map(|s| esc(&compact_json(s, 40)))
                .unwrap_or_default(),
            format!("{verdict} {anomalies}"),
            files.join(" "),
        ]);
    }
    let compare_link = if store.join("compare.html").is_file() {
        " <a href=\"compare.html\">Comparison of the runs</a>."
    } else {
        ""
    };
    let body = format!(
        "<h1>distest runs in {}</h1><p>{} run(s), newest first.{}{compare_link}</p>{}",
        esc(&dir_name(store)),
        rows.len(),
        if rows.len() >= MAX_RUNS {
            " The list stops at 10000 runs."
        } else {
            ""
        },
        table(
            "runs",
            &["run", "started", "target", "workload", "nemesis", "seed", "verdict", "files"],
            &rows
        )
    );
    let out = store.join("index.html");
    write_file(&out, page("distest runs", &body))?;
    Ok(out)
}
