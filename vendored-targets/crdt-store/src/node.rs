//! One replica: its CRDT state, its clock, and durable storage of both.
//!
//! Every update is applied to a copy of the state, the copy is written to the data
//! directory and fsynced, and only then does it replace the live state and get
//! acknowledged. So a replica killed at any moment restarts with every write it
//! acknowledged, and a failed fsync leaves memory and disk agreeing (the client hears
//! an indeterminate error). Calls block on the disk: the server runs them on tokio's
//! blocking pool.

use crate::crdt::{Bugs, Hlc, State, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// File name of the replica's state inside its data directory.
pub const STATE_FILE: &str = "crdt-state.json";

/// An error answered to a client as `{"error", "definite", "message"}`.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("{message}")]
pub struct ApiError {
    pub status: u16,
    /// A short machine-readable kind: `bad-request`, `not-found`, `storage`.
    pub kind: &'static str,
    /// True when the request certainly had no effect; false when it may have.
    pub definite: bool,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            kind: "bad-request",
            definite: true,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 404,
            kind: "not-found",
            definite: true,
            message: message.into(),
        }
    }

    pub fn body(&self) -> Value {
        json!({"error": self.kind, "definite": self.definite, "message": self.message})
    }
}

/// Why a replica could not start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error("cannot create data directory {path}: {source}; check that the parent exists and is writable")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid crdt-store state ({source}); move it away to start empty")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// What is written to disk: the state plus the next OR-set tag number, so tags stay
/// unique across restarts.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Durable {
    state: State,
    next_tag: u64,
}

struct Inner {
    durable: Durable,
    hlc: Hlc,
}

/// One replica of the store.
pub struct Node {
    pub id: String,
    pub bugs: Bugs,
    /// Added to the system clock; lets tests skew a node without libfaketime.
    clock_offset_ms: i64,
    data_dir: PathBuf,
    inner: Mutex<Inner>,
}

impl Node {
    /// Opens (or creates) the replica stored in `data_dir`.
    pub fn open(
        id: &str,
        data_dir: &Path,
        bugs: Bugs,
        clock_offset_ms: i64,
    ) -> Result<Node, StartError> {
        fs::create_dir_all(data_dir).map_err(|source| StartError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(STATE_FILE);
        let durable = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| StartError::Corrupt { path, source })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Durable::default(),
            Err(source) => return Err(StartError::Read { path, source }),
        };
        // The clock must not run behind any timestamp already stored, or a write after a
        // restart could lose to one from before it.
        let mut hlc = Hlc::default();
        for ts in durable.state.timestamps() {
            hlc.observe(ts);
        }
        Ok(Node {
            id: id.to_string(),
            bugs,
            clock_offset_ms,
            data_dir: data_dir.to_path_buf(),
            inner: Mutex::new(Inner { durable, hlc }),
        })
    }

    /// The wall clock in ms (libc time, so libfaketime can skew it) plus the test offset.
    fn now_ms(&self) -> u64 {
        let since_epoch_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        since_epoch_ms.saturating_add(self.clock_offset_ms).max(0) as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied update: updates are
        // made on a copy. So a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `update` to a copy of the durable state, persists the copy, then commits it.
    fn update<T>(&self, update: impl FnOnce(&mut Durable, &mut Hlc) -> T) -> Result<T, ApiError> {
        let mut inner = self.lock();
        let mut next = inner.durable.clone();
        let mut hlc = inner.hlc.clone();
        let out = update(&mut next, &mut hlc);
        self.persist(&next)?;
        inner.durable = next;
        inner.hlc = hlc;
        Ok(out)
    }

    /// Writes `durable` to a temporary file, fsyncs it, renames it over the state file and
    /// fsyncs the directory, so the file is always either the old or the new state.
    fn persist(&self, durable: &Durable) -> Result<(), ApiError> {
        let storage = |what: &str, e: std::io::Error| ApiError {
            status: 500,
            kind: "storage",
            definite: false,
            message: format!(
                "could not {what} in {}: {e}; the write may or may not have taken effect",
                self.data_dir.display()
            ),
        };
        let bytes =
            serde_json::to_vec(durable).map_err(|e| storage("serialize the state", e.into()))?;
        let tmp = self.data_dir.join(format!("{STATE_FILE}.tmp"));
        let mut file = File::create(&tmp).map_err(|e| storage("create the state file", e))?;
        file.write_all(&bytes)
            .map_err(|e| storage("write the state file", e))?;
        file.sync_all()
            .map_err(|e| storage("fsync the state file", e))?;
        fs::rename(&tmp, self.data_dir.join(STATE_FILE))
            .map_err(|e| storage("rename the state file", e))?;
        File::open(&self.data_dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| storage("fsync the data directory", e))
    }

    pub fn counter_add(&self, name: &str, delta: i64) -> Result<Value, ApiError> {
        let id = self.id.clone();
        self.update(|d, _| {
            let c = d.state.counters.entry(name.to_string()).or_default();
            c.add(&id, delta);
            json!({"value": c.value()})
        })
    }

    pub fn counter_get(&self, name: &str) -> Value {
        let inner = self.lock();
        json!({"value": inner.durable.state.counters.get(name).map_or(0, |c| c.value())})
    }

    pub fn set_add(&self, name: &str, element: Value) -> Result<Value, ApiError> {
        let id = self.id.clone();
        self.update(|d, _| {
            let tag = format!("{id}#{}", d.next_tag);
            d.next_tag += 1;
            d.state
                .sets
                .entry(name.to_string())
                .or_default()
                .add(&element, tag.clone());
            json!({"element": element, "tag": tag})
        })
    }

    pub fn set_remove(&self, name: &str, element: Value) -> Result<Value, ApiError> {
        self.update(|d, _| {
            let observed = d
                .state
                .sets
                .entry(name.to_string())
                .or_default()
                .remove(&element);
            json!({"element": element, "observed": observed})
        })
    }

    pub fn set_get(&self, name: &str) -> Value {
        let inner = self.lock();
        let elements = inner
            .durable
            .state
            .sets
            .get(name)
            .map(|s| s.elements())
            .unwrap_or_default();
        json!({"elements": elements})
    }

    pub fn register_put(&self, name: &str, value: Value) -> Result<Value, ApiError> {
        let now_ms = self.now_ms();
        let wall_clock = self.bugs.lww_wall_clock;
        let id = self.id.clone();
        self.update(|d, hlc| {
            let ts = if wall_clock {
                Timestamp {
                    wall_ms: now_ms,
                    logical: 0,
                    node: id,
                }
            } else {
                hlc.tick(now_ms, &id)
            };
            d.state
                .registers
                .entry(name.to_string())
                .or_default()
                .write(value.clone(), ts.clone());
            json!({"value": value, "timestamp": ts})
        })
    }

    pub fn register_get(&self, name: &str) -> Value {
        let inner = self.lock();
        match inner.durable.state.registers.get(name) {
            Some(r) if r.value.is_some() => json!({"value": r.value, "timestamp": r.timestamp}),
            _ => json!({"value": null, "timestamp": null}),
        }
    }

    /// The whole state, as anti-entropy sends it.
    pub fn snapshot(&self) -> State {
        self.lock().durable.state.clone()
    }

    /// Merges a peer's state; persists only when something changed.
    pub fn merge(&self, theirs: &State) -> Result<bool, ApiError> {
        {
            let inner = self.lock();
            let mut probe = inner.durable.state.clone();
            if !probe.merge(theirs, self.bugs) {
                return Ok(false);
            }
        }
        let bugs = self.bugs;
        self.update(|d, hlc| {
            let changed = d.state.merge(theirs, bugs);
            if !bugs.lww_wall_clock {
                for ts in theirs.timestamps() {
                    hlc.observe(ts);
                }
            }
            changed
        })
    }

    /// Sizes for `/status`.
    pub fn counts(&self) -> Value {
        let inner = self.lock();
        let s = &inner.durable.state;
        json!({"counters": s.counters.len(), "sets": s.sets.len(), "registers": s.registers.len()})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary data directory removed on drop, also when a test panics.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let path = std::env::temp_dir().join(format!("dt-crdt-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn acknowledged_writes_survive_reopening_and_tags_stay_unique() {
        let dir = TempDir::new("reopen");
        let node = Node::open("n1", &dir.0, Bugs::default(), 0).unwrap();
        node.counter_add("c", 5).unwrap();
        let first = node.set_add("s", json!(1)).unwrap();
        node.register_put("r", json!("x")).unwrap();
        drop(node);
        let node = Node::open("n1", &dir.0, Bugs::default(), 0).unwrap();
        assert_eq!(node.counter_get("c"), json!({"value": 5}));
        assert_eq!(node.set_get("s"), json!({"elements": [1]}));
        assert_eq!(node.register_get("r")["value"], json!("x"));
        let second = node.set_add("s", json!(1)).unwrap();
        assert_ne!(first["tag"], second["tag"]);
    }

    #[test]
    fn a_corrupt_state_file_refuses_to_start_with_a_clear_error() {
        let dir = TempDir::new("corrupt");
        fs::create_dir_all(&dir.0).unwrap();
        fs::write(dir.0.join(STATE_FILE), b"{not json").unwrap();
        let err = Node::open("n1", &dir.0, Bugs::default(), 0).err().unwrap();
        assert!(err.to_string().contains("move it away"), "{err}");
    }

    #[test]
    fn remove_reports_the_tags_it_observed() {
        let dir = TempDir::new("observed");
        let node = Node::open("n1", &dir.0, Bugs::default(), 0).unwrap();
        let added = node.set_add("s", json!("e")).unwrap();
        let removed = node.set_remove("s", json!("e")).unwrap();
        assert_eq!(removed["observed"], json!([added["tag"]]));
        assert_eq!(node.set_get("s"), json!({"elements": []}));
    }
}
