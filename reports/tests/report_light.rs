//! The light form of the report (a history too long to load, read in one pass): forced
//! on small histories so it can be compared with the full form of the same run.

mod common;

use common::*;
use distest_checkers::OpType;
use distest_reports::charts::MAX_SCATTER_POINTS;
use distest_reports::run_page::run_html;
use distest_reports::RunData;
use std::io::Write;

fn both(dir: &std::path::Path) -> (RunData, RunData) {
    (
        RunData::load(dir).expect("full form"),
        RunData::load_light(dir).expect("light form"),
    )
}

#[test]
fn light_counts_equal_the_full_forms_and_the_scatter_is_capped() {
    let tmp = TempDir::new("light-counts");
    let ops = invalid_run(
        tmp.path(),
        &HistorySpec {
            pairs: 40_000,
            concurrency: 10,
            ..HistorySpec::default()
        },
    );
    let (full, light) = both(tmp.path());
    assert!(full.light.is_none(), "a small history loads whole");
    let l = light.light.as_ref().expect("light summary");
    assert_eq!(l.ops, ops.len() as u64);
    let (fp, lp) = (full.plots().unwrap(), light.plots().unwrap());
    let (fs, ls) = (fp.summary, lp.summary);
    assert_eq!(
        (fs.ops, fs.ok, fs.fail, fs.info),
        (ls.ops, ls.ok, ls.fail, ls.info)
    );
    assert_eq!(fp.fs, lp.fs);
    assert_eq!(fp.end_ns, lp.end_ns);
    assert_eq!(fp.throughput.buckets, lp.throughput.buckets);
    assert_eq!(
        fp.throughput.series, lp.throughput.series,
        "rates are exact"
    );
    // The max line is exact, the other quantiles within a histogram slot.
    for ((name, f), (_, lq)) in fp.quantiles.series.iter().zip(&lp.quantiles.series) {
        for (a, b) in f.iter().zip(lq) {
            match (a, b) {
                (Some(a), Some(b)) if *name == "max" => assert_eq!(a, b),
                (Some(a), Some(b)) => assert!((a - b).abs() <= a * 0.01, "{name}: {a} vs {b}"),
                (None, None) => {}
                other => panic!("{name}: {other:?}"),
            }
        }
    }
    for (a, b) in [(fs.p50_ms, ls.p50_ms), (fs.p99_ms, ls.p99_ms)] {
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!((a - b).abs() <= a * 0.01, "{a} vs {b}");
    }
    // Counts per f add up to the exact totals.
    let by_f: u64 = l.per_f.iter().map(|(_, c)| c.iter().sum::<u64>()).sum();
    assert_eq!(by_f, fs.ops);
    // Downsampled, within budget, the slowest op kept.
    assert!(lp.points.len() <= MAX_SCATTER_POINTS, "{}", lp.points.len());
    assert!(
        (lp.points.len() as u64) < lp.completed,
        "40,000 ops must be downsampled"
    );
    let slowest = fp
        .points
        .iter()
        .max_by_key(|s| s.latency_ns)
        .expect("points");
    assert!(
        lp.points
            .iter()
            .any(|s| s.index == slowest.index && s.outcome == OpType::Ok),
        "the slowest op must stay visible"
    );
    // Only the ops around the anomalies are held, and they include the ones named.
    let kept = light.history.as_ref().expect("kept ops");
    assert!(kept.len() < ops.len() / 20, "kept {} ops", kept.len());
    let failing = full.results.as_ref().unwrap().checkers["linearizable"].evidence["failing_op"]
        .as_u64()
        .unwrap();
    assert_eq!(light.op(failing).map(|o| o.index), Some(failing));
    assert_eq!(light.history_len(), ops.len());
    // The page says so, and draws the timeline of the anomaly.
    let page = run_html(&light).unwrap().page;
    assert!(page.contains("drawn from one pass"), "the note is missing");
    assert!(page.contains(&format!(
        "downsampled to {} of {} completed ops",
        lp.points.len(),
        lp.completed
    )));
    assert!(page.contains("timelines show only the ops within 120 history entries"));
    assert!(page.contains("<figure class=\"timeline\">"));
    // The full page has neither note, as before.
    let full_page = run_html(&full).unwrap().page;
    assert!(!full_page.contains("drawn from one pass"));
}

#[test]
fn light_form_of_a_valid_run_has_counts_and_plots_but_no_timeline() {
    let tmp = TempDir::new("light-valid");
    let ops = valid_run(
        tmp.path(),
        &HistorySpec {
            pairs: 3_000,
            ..HistorySpec::default()
        },
    );
    let (full, light) = both(tmp.path());
    let l = light.light.as_ref().unwrap();
    assert!(l.windows.is_empty());
    let kept = light.history.as_ref().unwrap();
    assert!(
        kept.ops().iter().all(|o| !o.is_client()),
        "no client op is kept without an anomaly"
    );
    assert_eq!(
        kept.len(),
        ops.iter().filter(|o| !o.is_client()).count(),
        "every nemesis op is kept"
    );
    assert_eq!(
        full.plots().unwrap().summary.ops,
        light.plots().unwrap().summary.ops
    );
    let html = run_html(&light).unwrap();
    assert!(html
        .page
        .contains("the results name no op, so no timeline is drawn"));
    assert!(!html.page.contains("<figure class=\"timeline\">"));
    assert!(html.svgs.iter().any(|(n, _)| *n == "latency.svg"));
    assert!(html.svgs.iter().any(|(n, _)| *n == "throughput.svg"));
    // Fault bands come from the nemesis ops, as in the full form.
    assert!(html.page.contains("Shaded bands: faults active"));
}

#[test]
fn a_truncated_last_line_keeps_what_was_read_and_says_so() {
    let tmp = TempDir::new("light-torn");
    let ops = valid_run(tmp.path(), &HistorySpec::default());
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(tmp.path().join("history.jsonl"))
        .unwrap();
    f.write_all(br#"{"index":99999,"time":1,"process":0,"type":"inv"#)
        .unwrap();
    drop(f);
    let light = RunData::load_light(tmp.path()).unwrap();
    let l = light.light.as_ref().expect("what was read is kept");
    assert_eq!(l.ops, ops.len() as u64);
    let said: Vec<&String> = light
        .notes
        .iter()
        .filter(|n| n.contains("last line is cut short"))
        .collect();
    assert_eq!(said.len(), 1, "{:?}", light.notes);
    assert!(said[0].ends_with('.'), "{}", said[0]);
    eprintln!("{}", said[0]);
    run_html(&light).unwrap();
}

#[test]
fn a_file_that_is_no_history_is_one_sentence_not_a_panic() {
    for (tag, text) in [
        ("text", &b"hello, this is not a history\nat all\n"[..]),
        ("binary", &[0u8, 159, 146, 150, 255, 10, 1, 2][..]),
        ("empty", &b""[..]),
    ] {
        let tmp = TempDir::new(&format!("light-bad-{tag}"));
        std::fs::write(tmp.path().join("history.jsonl"), text).unwrap();
        std::fs::write(tmp.path().join("results.json"), valid_results().to_string()).unwrap();
        let light = RunData::load_light(tmp.path()).unwrap();
        assert!(light.light.is_none() || tag == "empty", "{tag}");
        let said: Vec<&String> = light
            .notes
            .iter()
            .filter(|n| n.contains("could not be read"))
            .collect();
        assert_eq!(said.len(), 1, "{tag}: {:?}", light.notes);
        let page = run_html(&light).unwrap().page;
        assert!(page.contains("No readable history"), "{tag}");
    }
}
