//! The store: run directories under `store/<target>-<workload>-<nemesis>/<timestamp>/`,
//! `store/latest` pointing at the newest run, and listing runs with their verdicts.

use anyhow::Context;
use distest_checkers::{Results, Validity};
use std::path::{Path, PathBuf};

/// A store rooted at a directory (default `./store`).
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// One run found in the store.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunEntry {
    /// `<target>-<workload>-<nemesis>`.
    pub test: String,
    /// The timestamp directory name.
    pub timestamp: String,
    pub path: PathBuf,
    /// `None` when the run has no (readable) results.json yet: it crashed or is running.
    pub valid: Option<Validity>,
    pub anomalies: Vec<String>,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates a fresh run directory and points `latest` at it.
    pub fn create_run(
        &self,
        target: &str,
        workload: &str,
        nemesis: &str,
    ) -> anyhow::Result<PathBuf> {
        let test = sanitize(&format!("{target}-{workload}-{nemesis}"));
        let base = self.root.join(&test);
        std::fs::create_dir_all(&base)
            .with_context(|| format!("could not create the store directory {}", base.display()))?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
        // Two runs in the same millisecond get a suffix rather than sharing a directory.
        let mut dir = base.join(&stamp);
        let mut n = 1;
        while dir.exists() {
            dir = base.join(format!("{stamp}-{n}"));
            n += 1;
        }
        std::fs::create_dir(&dir)
            .with_context(|| format!("could not create the run directory {}", dir.display()))?;
        self.point_latest(&dir)?;
        Ok(dir)
    }

    fn point_latest(&self, dir: &Path) -> anyhow::Result<()> {
        let latest = self.root.join("latest");
        let rel = dir.strip_prefix(&self.root).unwrap_or(dir);
        let _ = std::fs::remove_file(&latest);
        std::os::unix::fs::symlink(rel, &latest)
            .with_context(|| format!("could not point {} at the new run", latest.display()))
    }

    /// Every run, oldest first.
    pub fn runs(&self) -> anyhow::Result<Vec<RunEntry>> {
        let mut runs = Vec::new();
        let Ok(tests) = std::fs::read_dir(&self.root) else {
            return Ok(runs);
        };
        for test in tests.flatten() {
            let test_path = test.path();
            let name = test.file_name().to_string_lossy().to_string();
            if name == "latest" || !test_path.is_dir() || test_path.is_symlink() {
                continue;
            }
            let Ok(stamps) = std::fs::read_dir(&test_path) else {
                continue;
            };
            for stamp in stamps.flatten() {
                let path = stamp.path();
                if !path.is_dir() {
                    continue;
                }
                let results = read_results(&path);
                runs.push(RunEntry {
                    test: name.clone(),
                    timestamp: stamp.file_name().to_string_lossy().to_string(),
                    valid: results.as_ref().map(|r| r.valid),
                    anomalies: results.map(|r| r.anomalies()).unwrap_or_default(),
                    path,
                });
            }
        }
        runs.sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then(a.test.cmp(&b.test)));
        Ok(runs)
    }
}

/// Reads a run directory's results.json, if present and well-formed.
pub fn read_results(run_dir: &Path) -> Option<Results> {
    let text = std::fs::read_to_string(run_dir.join("results.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Keeps names path-safe: letters, digits, `-`, `_`, `.`, `,`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.,".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_runs_points_latest_and_lists_them() {
        let root = std::env::temp_dir().join(format!("dt-store-{}", std::process::id()));
        let store = Store::new(&root);
        let a = store.create_run("kv", "register", "partition").unwrap();
        let b = store.create_run("kv", "register", "partition").unwrap();
        assert_ne!(a, b);
        std::fs::write(
            b.join("results.json"),
            r#"{"valid": false, "checkers": {"linearizable": {"valid": false, "anomalies": ["nonlinearizable"]}}}"#,
        )
        .unwrap();
        let latest = std::fs::canonicalize(root.join("latest")).unwrap();
        assert_eq!(latest, std::fs::canonicalize(&b).unwrap());
        let runs = store.runs().unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[1].valid, Some(Validity::Invalid));
        assert_eq!(runs[1].anomalies, vec!["nonlinearizable".to_string()]);
        assert_eq!(runs[0].valid, None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
