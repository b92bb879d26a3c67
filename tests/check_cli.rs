//! `distest check` on files that are no history: every checker refuses them with exit 3
//! and one sentence naming the file, instead of judging zero ops "valid".

mod common;

use common::{distest, text, TempDir};
use std::path::Path;

/// Every registered checker, with the options it needs.
const CHECKERS: &[&[&str]] = &[
    &["--checker", "stats"],
    &["--checker", "linearizable", "--model", "cas-register"],
    &["--checker", "list-append"],
    &["--checker", "rw-register"],
    &["--checker", "set"],
    &["--checker", "counter"],
    &["--checker", "unique-ids"],
    &["--checker", "total-queue"],
    &["--checker", "crdt-convergence", "--model", "g-counter"],
    &["--checker", "echo"],
    &["--checker", "kafka"],
];

fn check(path: &Path, args: &[&str]) -> std::process::Output {
    distest()
        .arg("check")
        .arg(path)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn empty_random_and_foreign_files_exit_3_for_every_checker() {
    let dir = TempDir::new("check-not-a-history");
    let mut random = Vec::with_capacity(100_000);
    let mut x: u32 = 12345;
    for _ in 0..100_000 {
        // A small LCG: random enough bytes without another dependency.
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        random.push((x >> 16) as u8);
    }
    let passwd = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
    let files: [(&str, &[u8]); 4] = [
        ("empty.jsonl", b""),
        ("random.bin", &random),
        ("passwd", passwd.as_bytes()),
        ("blank.edn", b"\n\n"),
    ];
    assert!(
        CHECKERS.len() >= distest_checkers::registry().len(),
        "every checker is tried"
    );
    for (name, bytes) in files {
        let path = dir.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        for args in CHECKERS {
            let out = check(&path, args);
            assert_eq!(
                out.status.code(),
                Some(3),
                "{name} {args:?}: {}",
                text(&out)
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                stderr.trim_end().lines().count(),
                1,
                "one sentence: {stderr}"
            );
            assert!(stderr.contains(name), "names the file: {stderr}");
            assert!(out.stdout.is_empty(), "no verdict: {}", text(&out));
        }
    }
}

#[test]
fn streaming_check_gives_the_same_results_document() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/jepsen");
    let cases: [(&str, &[&str]); 4] = [
        ("cas-register.edn", &["--checker", "linearizable,stats"]),
        (
            "cas-register.log",
            &["--checker", "linearizable", "--model", "register"],
        ),
        ("list-append.edn", &["--checker", "list-append,stats"]),
        ("elle-completions.edn", &["--checker", "stats"]),
    ];
    for (file, args) in cases {
        let path = data.join(file);
        let whole = check(&path, &[args, &["--json"]].concat());
        let streamed = check(&path, &[args, &["--json", "--stream"]].concat());
        assert_eq!(whole.status.code(), streamed.status.code(), "{file}");
        assert!(!whole.stdout.is_empty(), "{file}: {}", text(&whole));
        assert_eq!(
            String::from_utf8_lossy(&whole.stdout),
            String::from_utf8_lossy(&streamed.stdout),
            "{file}"
        );
    }
    // Files that are no history are refused alike.
    let dir = TempDir::new("check-stream-empty");
    let empty = dir.0.join("empty.jsonl");
    std::fs::write(&empty, b"").unwrap();
    let out = check(&empty, &["--stream", "--checker", "linearizable"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

/// Without `--checker`, a history file is only counted by `stats`: the verdict is unknown
/// (exit 2), never "valid", even on a history that a real checker finds invalid, and the
/// note names the checker that fits.
#[test]
fn a_file_checked_by_no_named_checker_is_not_valid() {
    let dir = TempDir::new("check-nothing-named");
    let path = dir.0.join("stale.jsonl");
    // A write of 2 completes, then a read returns the old value 1: not linearizable.
    let history = [
        r#"{"index":0,"process":0,"type":"invoke","f":"write","value":1,"time":1}"#,
        r#"{"index":1,"process":0,"type":"ok","f":"write","value":1,"time":2}"#,
        r#"{"index":2,"process":0,"type":"invoke","f":"write","value":2,"time":3}"#,
        r#"{"index":3,"process":0,"type":"ok","f":"write","value":2,"time":4}"#,
        r#"{"index":4,"process":1,"type":"invoke","f":"read","value":null,"time":5}"#,
        r#"{"index":5,"process":1,"type":"ok","f":"read","value":1,"time":6}"#,
    ]
    .join("\n");
    std::fs::write(&path, history).unwrap();
    let out = check(&path, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("verdict: unknown"), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--checker linearizable --model register"),
        "{stderr}"
    );
    let out = check(&path, &["--checker", "linearizable", "--model", "register"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}
