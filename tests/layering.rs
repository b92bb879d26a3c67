//! The import rules of ARCHITECTURE.md ("which module must not import which"), checked on
//! the source: a module that starts importing what it must not fails here, not in review.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Non-test code of every `.rs` file under `dir` (or the file itself).
fn sources(path: &Path) -> Vec<(PathBuf, String)> {
    if path.is_file() {
        let text = std::fs::read_to_string(path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
        return vec![(path.to_path_buf(), code)];
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() || p.extension().is_some_and(|e| e == "rs") {
            out.extend(sources(&p));
        }
    }
    out
}

/// Lines of code (not comments) under `path` that mention any of `forbidden`.
fn uses(path: &str, forbidden: &[&str]) -> Vec<String> {
    let mut hits = Vec::new();
    for (file, code) in sources(&root().join(path)) {
        for (n, line) in code.lines().enumerate() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            if let Some(f) = forbidden.iter().find(|f| line.contains(*f)) {
                hits.push(format!("{}:{}: uses {f}", file.display(), n + 1));
            }
        }
    }
    hits
}

#[test]
fn modules_of_the_binary_import_only_downwards() {
    let rules: [(&str, &[&str]); 6] = [
        // The CLI calls the library; nothing calls the CLI.
        ("src/run", &["crate::commands"]),
        (
            "src/verify.rs",
            &[
                "crate::commands",
                "crate::run",
                "crate::targets",
                "crate::nodes",
            ],
        ),
        (
            "src/targets",
            &["crate::commands", "crate::run", "crate::verify"],
        ),
        (
            "src/nodes",
            &[
                "crate::commands",
                "crate::run",
                "crate::targets",
                "crate::verify",
            ],
        ),
        (
            "src/signals.rs",
            &["crate::commands", "crate::run", "crate::targets"],
        ),
        ("src/lib.rs", &["crate::commands::"]),
    ];
    let mut broken = Vec::new();
    for (path, forbidden) in rules {
        broken.extend(uses(path, forbidden));
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// The `distest-*` crates a crate's Cargo.toml depends on (dev-dependencies aside).
fn distest_deps(dir: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join(dir).join("Cargo.toml")).unwrap();
    let deps = text
        .split("[dependencies]")
        .nth(1)
        .unwrap_or("")
        .split("\n[")
        .next()
        .unwrap_or("");
    let mut names: Vec<String> = deps
        .lines()
        .filter_map(|l| l.split(['.', ' ', '=']).next())
        .filter(|n| n.starts_with("distest-") || *n == "raft-kv" || *n == "crdt-store")
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

#[test]
fn crates_depend_one_way() {
    let allowed: [(&str, &[&str]); 8] = [
        ("checkers", &[]),
        ("generator", &[]),
        ("lazyfs", &[]),
        ("rundir", &["distest-checkers"]),
        ("workloads", &["distest-checkers"]),
        ("nemeses", &["distest-generator"]),
        ("reports", &["distest-checkers", "distest-rundir"]),
        ("maelstrom", &["distest-checkers", "distest-workloads"]),
    ];
    for (dir, may) in allowed {
        let deps = distest_deps(dir);
        assert!(
            deps.iter().all(|d| may.contains(&d.as_str())),
            "{dir} depends on {deps:?}; it may only depend on {may:?}"
        );
    }
    for bundled in ["vendored-targets/raft-kv", "vendored-targets/crdt-store"] {
        assert!(
            distest_deps(bundled).is_empty(),
            "{bundled} depends on distest"
        );
    }
}
