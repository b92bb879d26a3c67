//! `distest report` and `distest compare` on run directories written by hand.

#[path = "../reports/tests/common/mod.rs"]
mod common;

use common::*;
use std::process::Command;

fn distest(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_distest"))
        .args(args)
        .output()
        .expect("run distest");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn report_writes_index_html_and_prints_its_path() {
    let tmp = TempDir::new("cli-report");
    invalid_run(tmp.path(), &HistorySpec::default());
    let (code, stdout, stderr) = distest(&["report".as_ref(), tmp.path().as_os_str()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout.trim(),
        tmp.path().join("index.html").display().to_string()
    );
    let html = std::fs::read_to_string(tmp.path().join("index.html")).unwrap();
    assert!(html.contains("class=\"verdict invalid\""));
}

#[test]
fn report_of_a_history_over_the_light_threshold_is_drawn_in_one_pass_and_says_so() {
    let tmp = TempDir::new("cli-light");
    invalid_run(tmp.path(), &HistorySpec::default());
    let out = Command::new(env!("CARGO_BIN_EXE_distest"))
        .args(["report".as_ref(), tmp.path().as_os_str()])
        .env("DISTEST_REPORT_LIGHT_BYTES", "1000")
        .output()
        .expect("run distest");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let html = std::fs::read_to_string(tmp.path().join("index.html")).unwrap();
    assert!(html.contains("drawn from one pass over it in bounded memory"));
    assert!(html.contains("<figure class=\"timeline\">"));
    // Without the override the same small history is drawn whole, as before.
    let (code, _, stderr) = distest(&["report".as_ref(), tmp.path().as_os_str()]);
    assert_eq!(code, 0, "{stderr}");
    let html = std::fs::read_to_string(tmp.path().join("index.html")).unwrap();
    assert!(!html.contains("drawn from one pass"));
}

#[test]
fn report_on_a_directory_without_a_run_fails_with_exit_3_and_one_sentence() {
    let tmp = TempDir::new("cli-empty");
    let (code, _, stderr) = distest(&["report".as_ref(), tmp.path().as_os_str()]);
    assert_eq!(code, 3);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("holds neither a history"), "{stderr}");
}

#[test]
fn compare_store_compares_every_run_and_indexes_the_store() {
    let tmp = TempDir::new("cli-compare");
    let store = tmp.path();
    let a = store.join("kv-register-kill").join("20261125T080000");
    let b = store.join("kv-register-partition").join("20261125T090000");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    valid_run(
        &a,
        &HistorySpec {
            faults: false,
            ..HistorySpec::default()
        },
    );
    invalid_run(&b, &HistorySpec::default());
    let (code, stdout, stderr) =
        distest(&["compare".as_ref(), "--store".as_ref(), store.as_os_str()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("compare.html") && stdout.contains("compare.md"),
        "{stdout}"
    );
    let md = std::fs::read_to_string(store.join("compare.md")).unwrap();
    assert_eq!(
        md.lines().filter(|l| l.starts_with("| #")).count(),
        2,
        "{md}"
    );
    assert!(
        store.join("index.html").is_file(),
        "the store index was not refreshed"
    );

    let out = tmp.path().join("published");
    let (code, _, stderr) = distest(&[
        "compare".as_ref(),
        a.as_os_str(),
        b.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(out.join("compare.html").is_file());
    let (code, _, stderr) = distest(&["compare".as_ref()]);
    assert_eq!(code, 3);
    assert!(stderr.contains("nothing to compare"), "{stderr}");
}
