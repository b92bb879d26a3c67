//! `distest check` with the isolation checkers' options: models and anomalies by Elle's
//! names, rw-register's version-order inference flags, a transaction-order file, and
//! Jepsen EDN whose invocations carry no process. No root needed.

mod common;

use common::{distest, temp_store, text};
use std::path::Path;

/// One distest JSONL op line.
fn line(index: u64, process: u64, kind: &str, value: &str) -> String {
    format!(
        "{{\"index\":{index},\"time\":{index},\"process\":{process},\"type\":\"{kind}\",\"f\":\"txn\",\"value\":{value}}}\n"
    )
}

/// T1 writes x = 1 and, after reading y = 2, y = 3; T2 reads x = 1, writes x = 4 and y = 2.
/// Writes-follow-reads orders x: 1 < 4 and y: 2 < 3: a ww cycle.
fn write_cycle(dir: &Path) -> std::path::PathBuf {
    let t1 = r#"[["w","x",1],["r","y",2],["w","y",3]]"#;
    let t1_invoke = r#"[["w","x",1],["r","y",null],["w","y",3]]"#;
    let t2 = r#"[["r","x",1],["w","x",4],["w","y",2]]"#;
    let t2_invoke = r#"[["r","x",null],["w","x",4],["w","y",2]]"#;
    let text = [
        line(0, 0, "invoke", t1_invoke),
        line(1, 1, "invoke", t2_invoke),
        line(2, 0, "ok", t1),
        line(3, 1, "ok", t2),
    ]
    .concat();
    let path = dir.join("history.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

fn check(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = distest()
        .arg("check")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), doc, text(&out))
}

#[test]
fn inference_flags_models_and_anomalies_reach_the_checker() {
    let dir = temp_store("check-elle-flags");
    let h = write_cycle(&dir);
    let h = h.to_str().unwrap();
    let base = [
        "--checker",
        "rw-register",
        "--consistency-model",
        "read-uncommitted",
    ];
    // Without writes-follow-reads: a wr cycle, which read uncommitted allows.
    let (code, doc, out) = check(&[&[h][..], &base].concat());
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        doc["checkers"]["rw-register"]["anomalies"],
        serde_json::json!(["G1c"])
    );
    // With it: the ww cycle exists.
    let (code, doc, out) = check(&[&[h][..], &base, &["--wfr-keys"]].concat());
    assert_eq!(code, 1, "{out}");
    let ev = &doc["checkers"]["rw-register"]["evidence"];
    assert_eq!(
        ev["inference"],
        serde_json::json!(["initial-state", "wfr-keys"])
    );
    // Asked for G0 alone (Elle's :anomalies): the cycle Elle names is G1c, so G0 holds.
    let (code, _, out) = check(&[
        h,
        "--checker",
        "rw-register",
        "--anomalies",
        "G0",
        "--wfr-keys",
    ]);
    assert_eq!(code, 0, "{out}");
    // Asked for G1 (which G1c implies): invalid.
    let (code, _, out) = check(&[h, "--checker", "rw-register", "--anomalies", "G1,G0"]);
    assert_eq!(code, 1, "{out}");
    // Elle's transaction-order case: T1 read x = nil and wrote y = 2, T2 wrote x = 3 and
    // y = 4. Serializable as recorded; not if the database says T2 committed first.
    let t1 = r#"[["r","x",null],["w","y",2]]"#;
    let t2 = r#"[["w","x",3],["w","y",4]]"#;
    let h2 = dir.join("order-history.jsonl");
    std::fs::write(
        &h2,
        [
            line(0, 0, "invoke", t1),
            line(1, 0, "ok", t1),
            line(2, 1, "invoke", t2),
            line(3, 1, "ok", t2),
        ]
        .concat(),
    )
    .unwrap();
    let h2 = h2.to_str().unwrap();
    let order = dir.join("order.json");
    std::fs::write(&order, r#"{"1": 2, "3": 1}"#).unwrap();
    let ser = [
        "--checker",
        "rw-register",
        "--consistency-model",
        "serializable",
    ];
    let (code, _, out) = check(&[&[h2][..], &ser].concat());
    assert_eq!(code, 0, "{out}");
    let (code, doc, out) = check(
        &[
            &[h2][..],
            &ser,
            &["--transaction-order", order.to_str().unwrap()],
        ]
        .concat(),
    );
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        doc["checkers"]["rw-register"]["evidence"]["inference"],
        serde_json::json!(["initial-state", "transaction-order"])
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inference_flags_apply_to_a_run_directorys_own_checkers() {
    let dir = temp_store("check-elle-run-dir");
    write_cycle(&dir);
    std::fs::write(
        dir.join("test.json"),
        r#"{"checkers": [{"name": "rw-register", "consistency_model": "read-uncommitted"}]}"#,
    )
    .unwrap();
    let run = dir.to_str().unwrap();
    let (code, _, out) = check(&[run]);
    assert_eq!(code, 0, "{out}");
    let (code, doc, out) = check(&[run, "--wfr-keys"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        doc["checkers"]["rw-register"]["evidence"]["inference"],
        serde_json::json!(["initial-state", "wfr-keys"])
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_names_and_files_are_one_clear_sentence_and_exit_3() {
    let dir = temp_store("check-elle-bad");
    let h = write_cycle(&dir);
    let h = h.to_str().unwrap();
    for (args, needle) in [
        (
            vec![
                h,
                "--checker",
                "list-append",
                "--consistency-model",
                "serialisable",
            ],
            "PL-2.99",
        ),
        (
            vec![h, "--checker", "list-append", "--anomalies", "G-singel"],
            "G-single-item",
        ),
        (
            vec![
                h,
                "--checker",
                "rw-register",
                "--transaction-order",
                "/nonexistent/order.json",
            ],
            "transaction order",
        ),
    ] {
        let out = distest().arg("check").args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn process_less_edn_invocations_are_paired_with_their_completions() {
    let dir = temp_store("check-elle-edn");
    let path = dir.join("history.edn");
    // T1 appends 1 to x and y; T2 sees y but not x; T3 sees x: a G-single-item.
    std::fs::write(
        &path,
        "{:type :invoke :value [[:append :x 1] [:append [:y 0] 1]]}\n\
         {:type :ok     :value [[:append :x 1] [:append [:y 0] 1]]}\n\
         {:type :invoke :value [[:r :x nil] [:r [:y 0] nil]]}\n\
         {:type :ok     :value [[:r :x []] [:r [:y 0] [1]]]}\n\
         {:type :invoke :value [[:r :x nil]]}\n\
         {:type :ok     :value [[:r :x [1]]]}\n",
    )
    .unwrap();
    let (code, doc, out) = check(&[
        path.to_str().unwrap(),
        "--checker",
        "list-append",
        "--consistency-model",
        "serializable",
    ]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        doc["checkers"]["list-append"]["anomalies"],
        serde_json::json!(["G-single-item"])
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_history_piped_in_is_checked_like_the_file() {
    use std::io::Write;
    let dir = temp_store("check-elle-pipe");
    let h = write_cycle(&dir);
    let args = ["--checker", "rw-register", "--wfr-keys", "--json"];
    let (code, from_file, out) = check(&[&[h.to_str().unwrap()][..], &args[..3]].concat());
    assert_eq!(code, 1, "{out}");
    // Format given (Elle's streaming reader) or detected (the general reader).
    for format in [&["--format", "jsonl"][..], &[]] {
        let mut child = distest()
            .args(["check", "/dev/stdin"])
            .args(args)
            .args(format)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let history = std::fs::read(&h).unwrap();
        child.stdin.take().unwrap().write_all(&history).unwrap();
        let piped = child.wait_with_output().unwrap();
        assert_eq!(piped.status.code(), Some(1), "{format:?}");
        let piped: serde_json::Value = serde_json::from_slice(&piped.stdout).unwrap();
        assert_eq!(piped["checkers"], from_file["checkers"], "{format:?}");
    }
    // An EDN history piped in is read whole, not half-consumed by format detection.
    let edn = "{:process 0, :type :invoke, :f :txn, :value [[:append 1 1]]}\n{:process 0, :type :ok, :f :txn, :value [[:append 1 1]]}\n{:process 1, :type :invoke, :f :txn, :value [[:r 1 nil]]}\n{:process 1, :type :ok, :f :txn, :value [[:r 1 [1]]]}\n";
    let mut child = distest()
        .args(["check", "/dev/stdin", "--checker", "list-append", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(edn.as_bytes())
        .unwrap();
    let piped = child.wait_with_output().unwrap();
    assert_eq!(piped.status.code(), Some(0));
    std::fs::remove_dir_all(&dir).unwrap();
}
