//! Comparisons and the store index over hand-written run directories.

mod common;

use common::*;
use std::path::PathBuf;

fn store_with_two_runs(store: &std::path::Path) -> (PathBuf, PathBuf) {
    let good = store.join("kv-register-kill").join("20261125T080000");
    let bad = store.join("kv-register-partition").join("20261125T090000");
    std::fs::create_dir_all(&good).unwrap();
    std::fs::create_dir_all(&bad).unwrap();
    valid_run(
        &good,
        &HistorySpec {
            seed: 3,
            faults: false,
            ..HistorySpec::default()
        },
    );
    invalid_run(
        &bad,
        &HistorySpec {
            seed: 4,
            ..HistorySpec::default()
        },
    );
    (good, bad)
}

#[test]
fn compare_of_a_valid_and_an_invalid_run_shows_both_rows_and_what_differs() {
    let tmp = TempDir::new("compare");
    let (good, bad) = store_with_two_runs(tmp.path());
    let out = tmp.path().join("out");
    let written = distest_reports::compare(&[good, bad], &out).unwrap();
    let html = std::fs::read_to_string(&written.html).unwrap();
    let md = std::fs::read_to_string(&written.markdown).unwrap();
    assert!(html.contains("#1 kv-register-kill/20261125T080000"));
    assert!(html.contains("#2 kv-register-partition/20261125T090000"));
    assert!(html.contains("badge valid") && html.contains("badge invalid"));
    // Links are relative so the output can be published with the store.
    assert!(
        html.contains("href=\"../kv-register-partition/20261125T090000\""),
        "{html}"
    );
    for differs in [
        "verdict",
        "anomaly G1c",
        "anomaly nonlinearizable",
        "option nemesis",
        "option seed",
    ] {
        assert!(
            html.contains(&format!("<td>{differs}</td>")),
            "html lacks {differs}"
        );
        assert!(
            md.contains(&format!("| {} |", differs)),
            "markdown lacks {differs}:\n{md}"
        );
    }
    assert!(!html.contains("<td>option started_at</td>"));
    let md_rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| #")).collect();
    assert_eq!(md_rows.len(), 2, "{md}");
    assert!(md_rows[0].contains("| valid |") && md_rows[1].contains("| invalid |"));
    assert_eq!(html.matches("<svg").count(), 2, "two overlaid charts");
    assert!(has_text(&html, "latency (ms)") && has_text(&html, "throughput (ops/s)"));
    assert!(has_text(&html, "#1 20261125T080000 p50") && has_text(&html, "#2 20261125T090000"));
}

#[test]
fn compare_of_nothing_is_an_error() {
    let tmp = TempDir::new("compare-none");
    let err = distest_reports::compare(&[], tmp.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no run directories"), "{err}");
}

#[test]
fn store_index_lists_every_run_once_with_its_verdict() {
    let tmp = TempDir::new("store");
    let (_, bad) = store_with_two_runs(tmp.path());
    std::os::unix::fs::symlink(&bad, tmp.path().join("latest")).unwrap();
    distest_reports::render_run(&bad).unwrap();
    let runs = distest_reports::find_runs(tmp.path());
    assert_eq!(runs.len(), 2, "{runs:?}");
    let index = distest_reports::store_index(tmp.path()).unwrap();
    let html = std::fs::read_to_string(index).unwrap();
    assert!(html.contains("2 run(s), newest first"));
    let bad_at = html
        .find("kv-register-partition/20261125T090000/index.html")
        .expect("link to the rendered page");
    let good_at = html.find("kv-register-kill/20261125T080000").unwrap();
    assert!(bad_at < good_at, "newest first");
    assert!(html.contains("badge valid") && html.contains("badge invalid"));
    assert!(html.contains("<span class=\"chip\">G1c</span>"));
}

#[test]
fn an_unreadable_run_gets_a_row_saying_why_and_does_not_hide_the_others() {
    let tmp = TempDir::new("compare-broken");
    let (good, _) = store_with_two_runs(tmp.path());
    let empty = tmp.path().join("crashed-before-start");
    std::fs::create_dir_all(&empty).unwrap();
    let written = distest_reports::compare(&[good, empty], &tmp.path().join("out")).unwrap();
    let md = std::fs::read_to_string(&written.markdown).unwrap();
    let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| #")).collect();
    assert_eq!(rows.len(), 2, "{md}");
    assert!(rows[0].contains("| valid |"));
    assert!(
        rows[1].contains("unreadable: ") && rows[1].contains("holds neither a history"),
        "{}",
        rows[1]
    );
}
