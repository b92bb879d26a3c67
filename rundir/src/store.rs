//! The store: run directories under `store/<target>-<workload>-<nemesis>/<timestamp>/`,
//! `store/latest` pointing at the newest run, and the one bounded walk that finds runs
//! (used by `distest ls`, `compare --store` and the store's index page).

use crate::files;
use crate::run_dir::RunDir;
use distest_checkers::Validity;
use std::path::{Path, PathBuf};

/// `store/<test>/<timestamp>/` is two levels; one more for slack.
const MAX_DEPTH: usize = 3;
/// Runs listed at most; directory entries looked at at most.
pub const MAX_RUNS: usize = 10_000;
const MAX_ENTRIES: usize = 200_000;

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
    /// The run was cut short by a signal (`"interrupted": true` in its results.json).
    pub interrupted: bool,
    /// Why the run itself failed, when it did.
    pub error: Option<String>,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates a fresh run directory for `<target>-<workload>-<nemesis>` and points
    /// `latest` at it.
    pub fn create_run(
        &self,
        target: &str,
        workload: &str,
        nemesis: &str,
    ) -> std::io::Result<RunDir> {
        let test = sanitize(&format!("{target}-{workload}-{nemesis}"));
        let base = self.root.join(&test);
        std::fs::create_dir_all(&base)
            .map_err(|e| with_path(e, "create the store directory", &base))?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
        // Two runs in the same millisecond get a suffix rather than sharing a directory.
        let mut dir = base.join(&stamp);
        let mut n = 1;
        while dir.exists() {
            dir = base.join(format!("{stamp}-{n}"));
            n += 1;
        }
        std::fs::create_dir(&dir).map_err(|e| with_path(e, "create the run directory", &dir))?;
        self.point_latest(&dir)?;
        Ok(RunDir::new(dir))
    }

    fn point_latest(&self, dir: &Path) -> std::io::Result<()> {
        let latest = self.root.join(files::LATEST);
        let rel = dir.strip_prefix(&self.root).unwrap_or(dir);
        let _ = std::fs::remove_file(&latest);
        std::os::unix::fs::symlink(rel, &latest)
            .map_err(|e| with_path(e, "point at the new run", &latest))
    }

    /// Every run, oldest first, with its verdict.
    pub fn runs(&self) -> Vec<RunEntry> {
        let mut runs: Vec<RunEntry> = find_runs(&self.root)
            .into_iter()
            .map(|path| {
                let name = |p: Option<&Path>| {
                    p.and_then(Path::file_name)
                        .map(|n| n.to_string_lossy().to_string())
                        .unwrap_or_default()
                };
                let results = RunDir::new(&path).read_results().ok().flatten();
                RunEntry {
                    test: name(path.parent()),
                    timestamp: name(Some(&path)),
                    valid: results.as_ref().map(|r| r.valid),
                    anomalies: results.as_ref().map(|r| r.anomalies()).unwrap_or_default(),
                    interrupted: results.as_ref().is_some_and(|r| r.interrupted),
                    error: results.and_then(|r| r.error),
                    path,
                }
            })
            .collect();
        runs.sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then(a.test.cmp(&b.test)));
        runs
    }
}

fn with_path(e: std::io::Error, what: &str, path: &Path) -> std::io::Error {
    std::io::Error::new(
        e.kind(),
        format!("could not {what} {}: {e}", path.display()),
    )
}

/// Whether `dir` looks like a run directory (holds any of [`files::RUN_MARKERS`]).
pub fn is_run_dir(dir: &Path) -> bool {
    files::RUN_MARKERS.iter().any(|f| dir.join(f).is_file())
}

/// Run directories under `store`, sorted by path (timestamps sort in time order). The
/// walk is bounded in depth and count and does not follow symlinks (`latest` points at a
/// run already listed).
pub fn find_runs(store: &Path) -> Vec<PathBuf> {
    let mut runs = Vec::new();
    let mut stack = vec![(store.to_path_buf(), 0usize)];
    let mut seen = 0usize;
    while let Some((dir, depth)) = stack.pop() {
        if is_run_dir(&dir) {
            runs.push(dir);
            if runs.len() >= MAX_RUNS {
                break;
            }
            continue;
        }
        if depth >= MAX_DEPTH {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            seen += 1;
            if seen > MAX_ENTRIES {
                break;
            }
            // file_type() does not follow symlinks: `latest` is skipped here.
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push((e.path(), depth + 1));
            }
        }
    }
    runs.sort();
    runs
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
        std::fs::write(a.file(files::TEST_JSON), "{}").unwrap();
        std::fs::write(
            b.file(files::RESULTS_JSON),
            r#"{"valid": false, "checkers": {"linearizable": {"valid": false, "anomalies": ["nonlinearizable"]}}}"#,
        )
        .unwrap();
        let latest = std::fs::canonicalize(root.join(files::LATEST)).unwrap();
        assert_eq!(latest, std::fs::canonicalize(b.path()).unwrap());
        let runs = store.runs();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[1].valid, Some(Validity::Invalid));
        assert_eq!(runs[1].anomalies, vec!["nonlinearizable".to_string()]);
        assert_eq!(runs[0].valid, None);
        assert_eq!(runs[0].test, "kv-register-partition");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
