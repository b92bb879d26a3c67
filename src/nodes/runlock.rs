//! Who runs on a local cluster: the run lock `<base>/<id>.run.lock`.
//!
//! A run holds an exclusive `flock` on the file from before it provisions until its nodes
//! are torn down. The kernel drops the lock when the process dies, even by SIGKILL, so
//! "locked" means exactly "a live run owns the cluster". Inside the file the run writes a
//! [`RunRecord`] (which process, since when, whether it found the cluster already up) and
//! empties it once it has torn down what it started. A record found in an unlocked file
//! is therefore a run that did not finish (killed, abandoned on a third Ctrl-C, or told to
//! `--leave-running`): whatever the cluster holds is that run's, and the next run removes
//! it before it starts. `distest env down` consults the same lock.

use super::NodesError;
use nix::fcntl::{Flock, FlockArg};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// What a run says about itself in its cluster's run lock.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    pub pid: u32,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// The command line, for the message that names a live or dead run.
    #[serde(default)]
    pub command: String,
    /// The cluster was up before the run (`distest env up`): the run leaves it up.
    #[serde(default)]
    pub cluster_was_up: bool,
    /// The run ended with `--leave-running`: its target is still up on purpose.
    #[serde(default)]
    pub left_running: bool,
}

impl RunRecord {
    /// A record of this process, now.
    pub fn of_this_process(cluster_was_up: bool) -> RunRecord {
        RunRecord {
            pid: std::process::id(),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            cluster_was_up,
            left_running: false,
        }
    }

    /// `pid 1234, started 2024-05-01T13:02:11Z: distest run --target kv`.
    pub fn describe(&self) -> String {
        let mut text = format!("pid {}, started {}", self.pid, self.started_at);
        if !self.command.is_empty() {
            // Long command lines are cut, visibly: a cut `--base-dir` must not read as a
            // flag without a value.
            let mut command: String = self.command.chars().take(160).collect();
            if command.len() < self.command.len() {
                command.push_str(" …");
            }
            text.push_str(&format!(": {command}"));
        }
        text
    }
}

/// The run lock file of cluster `cluster_id` under `base_dir`.
pub fn path(base_dir: &Path, cluster_id: &str) -> PathBuf {
    base_dir.join(format!("{cluster_id}.run.lock"))
}

/// A held run lock; dropping it releases the lock (the record stays unless cleared).
#[derive(Debug)]
pub struct RunLock {
    file: Flock<std::fs::File>,
    path: PathBuf,
}

/// Why a run lock could not be taken.
#[derive(Debug)]
pub enum Taken {
    /// Ours now, with the record a run before left in it (`None`: it finished cleanly).
    Free(RunLock, Option<RunRecord>),
    /// A live run holds it; its record, when it wrote one.
    InUse(Option<RunRecord>),
}

impl RunLock {
    /// Takes the lock without waiting, creating `base_dir` and the file when missing.
    pub fn take(base_dir: &Path, cluster_id: &str) -> Result<Taken, NodesError> {
        let path = path(base_dir, cluster_id);
        let io = |source| NodesError::Io {
            what: "could not open the run lock".into(),
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(base_dir).map_err(io)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut file) => {
                let previous = read_record(&mut file);
                Ok(Taken::Free(RunLock { file, path }, previous))
            }
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                Ok(Taken::InUse(read_record(&mut file)))
            }
            Err((_, errno)) => Err(io(std::io::Error::from(errno))),
        }
    }

    /// Replaces the record.
    pub fn write(&mut self, record: &RunRecord) -> Result<(), NodesError> {
        let text = serde_json::to_string(record).map_err(|e| NodesError::BadSpec(e.to_string()))?;
        self.replace(text.as_bytes())
    }

    /// Empties the record: the run left nothing behind.
    pub fn clear(&mut self) -> Result<(), NodesError> {
        self.replace(b"")
    }

    fn replace(&mut self, bytes: &[u8]) -> Result<(), NodesError> {
        let path = self.path.clone();
        let file: &mut std::fs::File = &mut self.file;
        (|| {
            file.set_len(0)?;
            file.rewind()?;
            file.write_all(bytes)?;
            file.sync_data()
        })()
        .map_err(|source| NodesError::Io {
            what: "could not write the run lock".into(),
            path,
            source,
        })
    }
}

/// The record in the lock file; an empty or unreadable one is none (a run that cannot
/// even be named still left what the cluster holds, which the evidence finds).
fn read_record(file: &mut std::fs::File) -> Option<RunRecord> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    if text.trim().is_empty() {
        return None;
    }
    Some(serde_json::from_str(&text).unwrap_or_else(|_| RunRecord {
        pid: 0,
        started_at: "at an unknown time".into(),
        command: String::new(),
        cluster_was_up: false,
        left_running: false,
    }))
}

/// The live run holding cluster `cluster_id`'s lock, if one does (`Ok(None)` when no run
/// holds it, or no run ever used `base_dir`). Creates nothing.
pub fn live_holder(base_dir: &Path, cluster_id: &str) -> Result<Option<RunRecord>, NodesError> {
    let path = path(base_dir, cluster_id);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(NodesError::Io {
                what: "could not open the run lock".into(),
                path,
                source,
            })
        }
    };
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_) => Ok(None),
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            Ok(Some(read_record(&mut file).unwrap_or_else(|| RunRecord {
                pid: 0,
                started_at: "just now".into(),
                command: String::new(),
                cluster_was_up: false,
                left_running: false,
            })))
        }
        Err((_, errno)) => Err(NodesError::Io {
            what: "could not lock".into(),
            path,
            source: std::io::Error::from(errno),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dt-runlock-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_record_left_in_a_free_lock_is_a_run_that_did_not_finish() {
        let dir = base("record");
        let Taken::Free(mut lock, previous) = RunLock::take(&dir, "x").unwrap() else {
            panic!("a fresh lock is free")
        };
        assert_eq!(previous, None);
        let record = RunRecord::of_this_process(true);
        lock.write(&record).unwrap();
        assert_eq!(
            live_holder(&dir, "x").unwrap().map(|r| r.pid),
            Some(std::process::id())
        );
        // Another open file description (what another process has) cannot take it.
        let Taken::InUse(Some(holder)) = RunLock::take(&dir, "x").unwrap() else {
            panic!("held")
        };
        assert_eq!(holder, record);
        drop(lock); // the process "died": the kernel released the lock, the record stays
        assert_eq!(live_holder(&dir, "x").unwrap(), None);
        let Taken::Free(mut lock, Some(previous)) = RunLock::take(&dir, "x").unwrap() else {
            panic!("free, with the dead run's record")
        };
        assert!(previous.cluster_was_up);
        assert!(previous
            .describe()
            .starts_with(&format!("pid {}", std::process::id())));
        lock.clear().unwrap();
        drop(lock);
        let Taken::Free(_, None) = RunLock::take(&dir, "x").unwrap() else {
            panic!("a cleared record is a run that finished")
        };
        assert_eq!(live_holder(&dir, "nosuch").unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
