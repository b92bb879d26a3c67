//! Fault schedules from the command line, without root: a wrong schedule file or a fault
//! named in two `+` timelines fails before anything is provisioned (exit 3, one sentence
//! naming the step), and the detection suite expands to its documented matrix.

mod common;
use common::*;

fn run_with(store: &std::path::Path, args: &[&str]) -> std::process::Output {
    distest()
        .arg("run")
        .args(["--target", "kv", "--time-limit", "1", "--store"])
        .arg(store)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_wrong_schedule_file_fails_before_provisioning_with_the_step_named() {
    let dir = TempDir::new("schedule-cli-bad");
    let file = dir.0.join("bad.toml");
    std::fs::write(
        &file,
        "[[step]]\nat = 0.0\nf = \"start-partition\"\nvalue = { isolate = [\"@leader\"] }\n\n[[step]]\nat = 1.0\nf = \"reboot\"\n",
    )
    .unwrap();
    let store = dir.0.join("store");
    let out = run_with(&store, &["--nemesis-schedule", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("step 2 has f = \"reboot\""), "{err}");
    assert!(
        err.contains("start-partition"),
        "the valid ops are listed: {err}"
    );
    assert!(!store.exists(), "nothing was provisioned or stored");

    std::fs::write(
        &file,
        "[[step]]\nat = 0.0\nf = \"kill\"\nvalue = { nodes = [\"@cut\"] }\n",
    )
    .unwrap();
    let out = run_with(&store, &["--nemesis-schedule", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refers to @cut"),
        "{}",
        text(&out)
    );
    let missing = dir.0.join("missing.toml");
    let out = run_with(&store, &["--nemesis-schedule", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be read"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_fault_in_two_timelines_is_refused() {
    let dir = TempDir::new("schedule-cli-plus");
    let store = dir.0.join("store");
    let out = run_with(&store, &["--nemesis", "partition+kill,partition"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("two timelines"),
        "{}",
        text(&out)
    );
    assert!(!store.exists());
}

#[test]
fn the_detection_suite_runs_every_bug_and_the_correct_build_under_every_fault() {
    let suite = format!("{}/examples/detection.toml", env!("CARGO_MANIFEST_DIR"));
    let out = distest()
        .args(["suite", &suite, "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let listed = String::from_utf8_lossy(&out.stdout);
    let runs: Vec<&str> = listed.lines().collect();
    for bug in [
        "stale-read",
        "ack-before-commit",
        "lease-no-margin",
        "commit-old-term",
    ] {
        let rows = runs
            .iter()
            .filter(|r| r.contains(&format!("bug {bug} seed")))
            .count();
        assert!(rows >= 3, "{bug} runs with three seeds: {listed}");
    }
    for fault in [
        "register partition seed",
        "register membership seed",
        "register partition+clock seed",
        "lease-clock-step.toml seed",
        "figure-8.toml seed",
    ] {
        assert!(
            runs.iter()
                .any(|r| r.contains(fault) && !r.contains(" bug ")),
            "the correct build runs under {fault}: {listed}"
        );
    }
}

#[test]
fn membership_on_a_target_that_cannot_change_members_refuses_the_run_by_preflight() {
    let dir = TempDir::new("schedule-cli-preflight");
    let file = dir.0.join("members.toml");
    std::fs::write(
        &file,
        "[[step]]\nat = 0.5\nf = \"remove-member\"\nvalue = { nodes = [\"n1\"] }\n",
    )
    .unwrap();
    for args in [
        vec!["--nemesis", "membership"],
        // A fault only the schedule file names is preflighted too.
        vec!["--nemesis-schedule", file.to_str().unwrap()],
    ] {
        let store = dir.0.join("store");
        let out = distest()
            .args(["run", "--target", "noop", "--time-limit", "1", "--store"])
            .arg(&store)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("refused before it started")
                && err.contains("membership cannot act on this target"),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("panicked"),
            "{args:?}: one sentence, no panic: {err}"
        );
    }
}
