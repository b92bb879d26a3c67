//! A target is one file plus one registry line: its entry alone puts it in `--help`,
//! makes `distest run --target NAME` work, says what its nodes need, and checks its
//! settings before anything is provisioned. No root needed: nothing here reaches a node.

mod common;
use common::*;

use std::path::Path;

fn stdout(args: &[&str]) -> (i32, String, String) {
    let out = distest().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn run_help_lists_every_target_with_its_about_workloads_and_settings() {
    let (code, help, _) = stdout(&["run", "--help"]);
    assert_eq!(code, 0);
    for (name, about) in [
        ("noop", "in-process, answers at once from shared memory"),
        ("kv", "the bundled Raft KV store"),
        ("postgres", "PostgreSQL (Debian's postgresql)"),
    ] {
        assert!(help.contains(name), "{name} missing from --help:\n{help}");
        assert!(
            help.contains(about),
            "{about:?} missing from --help:\n{help}"
        );
    }
    assert!(
        help.contains("isolation=read-committed|repeatable-read|serializable"),
        "{help}"
    );
    assert!(help.contains("read-mode=read-index|lease"), "{help}");
    // Faults come from their registry too; the old postgres-only flags stay hidden.
    assert!(help.contains("SIGSTOP the target's process"), "{help}");
    assert!(!help.contains("--replica-reads"), "{help}");
}

/// Every `"name"` literal of non-test code under `dir`, with the file it is in.
fn literal_in(dir: &Path, literal: &str, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            literal_in(&path, literal, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            if code.contains(&format!("\"{literal}\"")) {
                found.push(path.display().to_string());
            }
        }
    }
}

#[test]
fn only_a_targets_own_files_name_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let targets = src.join("targets");
    for target in ["noop", "postgres", "etcd"] {
        let mut found = Vec::new();
        literal_in(&src, target, &mut found);
        let own_file = targets.join(format!("{target}.rs")).display().to_string();
        let own_dir = targets.join(target).display().to_string();
        let strangers: Vec<&String> = found
            .iter()
            .filter(|f| **f != own_file && !f.starts_with(&own_dir))
            .collect();
        assert!(
            found.contains(&own_file) && strangers.is_empty(),
            "{target} is named outside its own files (its registry entry says all): {strangers:?}"
        );
    }
    let registry = std::fs::read_to_string(targets.join("mod.rs")).unwrap();
    assert_eq!(
        registry.matches("noop::entry()").count(),
        1,
        "one registry line"
    );
}

#[test]
fn the_noop_entry_alone_makes_a_run_work() {
    let store = TempDir::new("registry-noop");
    let out = distest()
        .args([
            "run",
            "--target",
            "noop",
            "--time-limit",
            "0.5",
            "--concurrency",
            "2",
        ])
        .args(["--recovery-time", "0", "--seed", "3", "--store"])
        .arg(&store.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let test: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(latest_run(&store.0).join("test.json")).unwrap(),
    )
    .unwrap();
    // The entry's defaults: its first workload, five virtual nodes.
    assert_eq!(test["workload"], "register");
    assert_eq!(test["nodes"].as_array().unwrap().len(), 5);
}

#[test]
fn packages_come_from_the_target_and_fault_registries() {
    let lines = |args: &[&str]| -> Vec<String> {
        let (code, out, err) = stdout(args);
        assert_eq!(code, 0, "{err}");
        out.lines().map(str::to_string).collect()
    };
    assert_eq!(
        lines(&[
            "env",
            "packages",
            "--target",
            "postgres",
            "--nemesis",
            "none"
        ]),
        vec!["postgresql"]
    );
    assert_eq!(
        lines(&["env", "packages", "--target", "noop", "--nemesis", "clock"]),
        vec!["libfaketime"]
    );
    assert_eq!(
        lines(&[
            "env",
            "packages",
            "--target",
            "kv",
            "--nemesis",
            "partition,latency"
        ]),
        vec!["iptables"]
    );
    let all = lines(&["env", "packages"]);
    for p in [
        "etcd-server",
        "postgresql",
        "libfaketime",
        "iptables",
        "fuse3",
    ] {
        assert!(all.contains(&p.to_string()), "{p} missing: {all:?}");
    }
}

#[test]
fn settings_are_checked_by_the_target_before_anything_is_provisioned() {
    let store = TempDir::new("registry-settings");
    let run = |args: &[&str]| {
        let out = distest()
            .arg("run")
            .args(args)
            .arg("--store")
            .arg(&store.0)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = run(&["--target", "kv", "--set", "color=blue"]);
    assert_eq!(code, Some(3));
    assert!(
        err.contains("no setting \"color\"") && err.contains("read-mode=read-index|lease"),
        "{err}"
    );
    let (code, err) = run(&["--target", "kv", "--set", "read-mode=psychic"]);
    assert_eq!(code, Some(3));
    assert!(
        err.contains("\"psychic\"") && err.contains("read-index, lease"),
        "{err}"
    );
    let (code, err) = run(&["--target", "noop", "--set", "read-mode=lease"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("it takes none"), "{err}");
    // The old flag is an alias of the setting, checked the same way.
    let (code, err) = run(&["--target", "postgres", "--isolation", "snapshot"]);
    assert_eq!(code, Some(3));
    assert!(
        err.contains("\"snapshot\"") && err.contains("repeatable-read"),
        "{err}"
    );
    let (code, err) = run(&[
        "--target",
        "postgres",
        "--set",
        "replica-reads=true",
        "--nodes",
        "local:1",
    ]);
    assert_eq!(code, Some(3));
    assert!(err.contains("at least two nodes"), "{err}");
    assert!(
        std::fs::read_dir(&store.0).unwrap().next().is_none(),
        "a refused run created nothing in the store"
    );
}
