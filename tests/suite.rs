//! `distest suite`: a two-run matrix, one with a planted bug, ends with exit 1, a
//! comparison report naming both runs, and JUnit XML a JUnit parser reads with exactly
//! the planted bug's checker failing.

use std::process::Command;

#[test]
fn a_small_suite_with_a_planted_bug_exits_1_with_comparison_and_junit() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root to build network namespaces (run the tests as root)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("dt-test-suite-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = dir.join("store");
    let suite = dir.join("suite.toml");
    std::fs::write(
        &suite,
        format!(
            r#"
name = "smoke"
store = "{}"
nodes = "local:3"
cluster = "sui"
subnet = "10.77.155.0/24"
base_dir = "{}"
time_limit = 10
nemesis_interval = 3
recovery_time = 1
seeds = [2]

[[matrix]]
target = ["kv"]
workload = ["register"]
nemesis = ["partition"]
bug = ["", "stale-read"]
"#,
            store.display(),
            dir.join("nodes").display()
        ),
    )
    .unwrap();
    let junit = dir.join("junit.xml");
    let out = Command::new(env!("CARGO_BIN_EXE_distest"))
        .arg("suite")
        .arg(&suite)
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{log}");

    // The comparison names both runs, the valid one and the invalid one.
    let md = std::fs::read_to_string(store.join("compare.md")).expect("compare.md");
    let html = std::fs::read_to_string(store.join("compare.html")).expect("compare.html");
    assert!(md.matches("kv-register-partition").count() >= 2, "{md}");
    assert!(md.contains("valid") && md.contains("invalid"), "{md}");
    assert!(html.contains("invalid"));
    assert!(store.join("index.html").is_file(), "store index");

    // JUnit: parse it and count failures.
    let xml = std::fs::read_to_string(&junit).unwrap();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut cases, mut failures) = (0, 0);
    loop {
        match reader.read_event().expect("well-formed JUnit XML") {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                match e.name().as_ref() {
                    b"testcase" => cases += 1,
                    b"failure" => failures += 1,
                    _ => {}
                }
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(cases, 4, "two runs × (linearizable, stats): {xml}");
    assert_eq!(
        failures, 1,
        "only the planted bug's linearizability fails: {xml}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
