//! The store's front page, `store/index.html`: every run with its verdict and links.
//!
//! Only `test.json` and `results.json` are read per run (never the history), so a store
//! of hundreds of runs indexes in moments. Runs are found by `distest_rundir::find_runs`
//! (bounded, symlinks not followed).

use crate::error::{write_file, ReportError};
use crate::html::{badge, chips, compact_json, esc, page, table};
use crate::run_data::RunData;
use crate::run_page::{dir_name, href};
use distest_rundir::{files, find_runs};
use std::path::{Path, PathBuf};

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
            Some(r) => {
                let mut notes = r.anomalies();
                if r.interrupted {
                    notes.push("interrupted".into());
                }
                if r.error.is_some() {
                    notes.push("run failed".into());
                }
                (badge(r.valid), chips(&notes))
            }
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
            run.test_doc
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
        if rows.len() >= distest_rundir::store::MAX_RUNS {
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
    let out = store.join(files::INDEX_HTML);
    write_file(&out, page("distest runs", &body))?;
    Ok(out)
}
