//! End-to-end: run directories written by hand are rendered into index.html.

mod common;

use common::*;
use serde_json::json;

fn render(dir: &std::path::Path) -> String {
    let out = distest_reports::render_run(dir).expect("render");
    assert_eq!(out, dir.join("index.html"));
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn invalid_run_page_shows_verdict_charts_cycles_timelines_and_logs() {
    let tmp = TempDir::new("page");
    invalid_run(tmp.path(), &HistorySpec::default());
    let html = render(tmp.path());
    assert!(html.contains("class=\"verdict invalid\""));
    assert!(html.contains("<title>INVALID — distest run: kv · register · partition</title>"));
    assert!(html.contains("nonlinearizable") && html.contains("G1c"));
    assert!(html.contains("Seed <b class=\"mono\">7</b>"));
    assert!(html.contains("data-kind=\"partition\"") && html.contains("data-kind=\"kill\""));
    assert!(html.contains("class=\"cycle\""), "Elle cycle graph missing");
    assert!(
        html.contains("read [1] of key x, appended by T1"),
        "edge explanations missing"
    );
    assert!(html.contains("Linearizability counterexample"));
    assert!(
        html.contains("class=\"op focus\""),
        "timeline does not outline the ops"
    );
    assert!(
        html.contains("around the failure"),
        "logs not aligned on the anomaly"
    );
    assert!(
        html.contains("moved node clocks"),
        "clock skew caveat missing"
    );
    assert!(
        !html.contains("<script"),
        "the page must work without script"
    );
    assert!(
        !html.contains("src=\"http"),
        "the page must not load anything"
    );
    assert!(tmp.path().join("latency.svg").is_file());
    assert!(tmp.path().join("throughput.svg").is_file());
}

#[test]
fn valid_run_page_says_valid_and_shows_no_anomaly_views() {
    let tmp = TempDir::new("valid");
    valid_run(
        tmp.path(),
        &HistorySpec {
            faults: false,
            ..HistorySpec::default()
        },
    );
    let html = render(tmp.path());
    assert!(html.contains("class=\"verdict valid\""));
    assert!(html.contains("None: every checker found the history valid."));
    assert!(!html.contains("class=\"op focus\""));
    assert!(html.contains("No fault was active"));
}

#[test]
fn hostile_values_appear_only_escaped() {
    let tmp = TempDir::new("hostile");
    let spec = HistorySpec {
        hostile_values: true,
        ..HistorySpec::default()
    };
    let ops = invalid_run(tmp.path(), &spec);
    // Hostile strings everywhere a run directory can carry them.
    let mut results = invalid_results(&ops);
    results["checkers"]["linearizable"]["summary"] = json!(HOSTILE[0]);
    results["checkers"]["linearizable"]["explanation"] = json!(HOSTILE.join("\n"));
    results["checkers"]["linearizable"]["anomalies"] = json!([HOSTILE[1]]);
    results["checkers"]["linearizable"]["evidence"]["configs"] =
        json!([HOSTILE[2], {"k": HOSTILE[3]}]);
    results["checkers"]["list-append"]["evidence"]["cycles"][0]["steps"][0]["why"] =
        json!(HOSTILE[1]);
    results["checkers"]["list-append"]["evidence"]["cycles"][0]["steps"][0]["type"] =
        json!(HOSTILE[2]);
    results["checkers"][HOSTILE[3]] = json!({"valid": "unknown", "anomalies": [HOSTILE[2]], "summary": HOSTILE[1], "explanation": "", "evidence": {"ops": [1]}});
    std::fs::write(tmp.path().join("results.json"), results.to_string()).unwrap();
    let mut test = test_json("partition", 1);
    test["target"] = json!(HOSTILE[1]);
    test[HOSTILE[0]] = json!(HOSTILE[3]);
    test["command"] = json!(HOSTILE[2]);
    std::fs::write(tmp.path().join("test.json"), test.to_string()).unwrap();
    let html = render(tmp.path());
    for h in HOSTILE {
        assert!(!html.contains(h), "raw {h:?} in the page");
        let escaped = distest_reports::html::esc(h);
        assert!(
            html.contains(&escaped),
            "escaped {escaped:?} missing: the test did not exercise it"
        );
    }
    assert!(!html.contains("<script"), "a script element got through");
    assert!(!html.contains("<img"), "an img element got through");
    assert_eq!(
        html.matches("<svg").count(),
        html.matches("</svg>").count(),
        "an SVG was closed early"
    );
    for svg in ["latency.svg", "throughput.svg"] {
        let text = std::fs::read_to_string(tmp.path().join(svg)).unwrap();
        assert!(!text.contains("<script") && !text.contains("<img"), "{svg}");
    }
}

#[test]
fn a_directory_with_only_a_history_is_checked_with_stats() {
    let tmp = TempDir::new("bare");
    write_history(tmp.path(), &generate(&HistorySpec::default()));
    let html = render(tmp.path());
    assert!(
        html.contains("stats checker only"),
        "the page must say where the verdict came from"
    );
    assert!(html.contains("<td>stats</td>") || html.contains(">stats<"));
    assert!(html.contains("No test.json"));
    assert!(
        !tmp.path().join("results.json").exists(),
        "rendering must not write results"
    );
}

#[test]
fn broken_files_become_notes_not_failures() {
    let tmp = TempDir::new("broken");
    invalid_run(tmp.path(), &HistorySpec::default());
    std::fs::write(tmp.path().join("test.json"), "{not json").unwrap();
    std::fs::write(tmp.path().join("results.json"), "{\"valid\": 3}").unwrap();
    let html = render(tmp.path());
    assert!(html.contains("test.json is not valid JSON"));
    assert!(html.contains("results.json does not have the results shape"));
    assert!(html.contains("stats checker only"));
}

#[test]
fn a_history_that_cannot_be_parsed_still_gives_a_page_with_the_results() {
    let tmp = TempDir::new("badhist");
    let ops = invalid_run(tmp.path(), &HistorySpec::default());
    std::fs::write(
        tmp.path().join("history.jsonl"),
        "{\"index\": 0, \"oops\"\n",
    )
    .unwrap();
    let html = render(tmp.path());
    assert!(html.contains("The history could not be read"));
    assert!(html.contains("class=\"verdict invalid\""));
    assert!(ops.len() > 10);
}

#[test]
fn a_history_without_times_says_why_it_has_no_charts() {
    let tmp = TempDir::new("notimes");
    let mut ops = generate(&HistorySpec {
        faults: false,
        ..HistorySpec::default()
    });
    write_history(tmp.path(), &ops);
    render(tmp.path());
    assert!(tmp.path().join("latency.svg").exists());
    for op in &mut ops {
        op.time = 0;
    }
    write_history(tmp.path(), &ops);
    // Re-rendered without times: the earlier charts are stale and must go.
    let html = render(tmp.path());
    assert!(html.contains("carry no times"));
    assert!(!tmp.path().join("latency.svg").exists());
    assert!(!html.contains("href=\"latency.svg\""));
}

#[test]
fn an_empty_directory_is_refused_with_a_sentence_that_says_what_to_pass() {
    let tmp = TempDir::new("empty");
    let err = distest_reports::render_run(tmp.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds neither a history"), "{err}");
    assert!(err.contains("pass a run directory"), "{err}");
    let missing = tmp.path().join("nope");
    let err = distest_reports::render_run(&missing)
        .unwrap_err()
        .to_string();
    assert!(err.contains("could not read"), "{err}");
}

#[test]
fn large_history_page_stays_bounded() {
    // 100k ops render in about a second in debug; the page size no longer grows with the
    // history past the scatter's point budget (1M ops measured in benches/large_history.rs).
    let tmp = TempDir::new("large");
    invalid_run(
        tmp.path(),
        &HistorySpec {
            pairs: 50_000,
            concurrency: 20,
            ..HistorySpec::default()
        },
    );
    let start = std::time::Instant::now();
    let html = render(tmp.path());
    let elapsed = start.elapsed();
    let size = html.len();
    assert!(size < 8 << 20, "page is {size} bytes");
    assert!(
        html.contains("The scatter shows 20000 of"),
        "scatter not downsampled"
    );
    eprintln!("100k-op page: {size} bytes in {elapsed:?}");
}
