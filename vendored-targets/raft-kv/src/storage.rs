//! The node's disk: an append-only write-ahead log (`wal.log`) of length-prefixed,
//! checksummed records, and the latest snapshot (`snapshot.json`, replaced atomically by
//! write-to-temp, fsync, rename, fsync of the directory).
//!
//! Every `persist` hands its records to the operating system before it returns; with
//! fsync on (the correct build) they are also on disk. Without (the `no-fsync` bug, like
//! etcd's `--unsafe-no-fsync`) no fsync is ever issued — not for the WAL, the snapshot or
//! the directory — so the data sits in the kernel's page cache: a process crash loses
//! nothing, a power failure (distest's `--nemesis disk`) loses whatever was not yet
//! written back.
//!
//! Record: `[len: u32 LE][crc32 of payload: u32 LE][payload: JSON]`. Recovery replays
//! records until the first short or corrupt one and truncates the file there: a crash in
//! the middle of a write leaves a torn tail, never a corrupt log. When a snapshot is
//! stored, the WAL is rewritten with only what follows it.

use crate::raft::{DurableError, DurableState, Entry, HardState, Index, LogOp, Snapshot};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Bound on one record; anything larger is treated as corruption.
const MAX_RECORD_BYTES: usize = 256 << 20;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("cannot {what} {path}: {source}; check the --data-dir permissions and free space")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "snapshot file {path} is unreadable ({reason}); restore it or wipe the data directory"
    )]
    BadSnapshot { path: PathBuf, reason: String },
    #[error("{0}")]
    Replay(#[from] DurableError),
    #[error("data directory {0} is in use by another raft-kv process; stop it first or use another --data-dir")]
    Locked(PathBuf),
}

#[derive(Serialize, Deserialize)]
enum Record {
    HardState(HardState),
    Entry(Entry),
    Truncate(Index),
}

pub struct Storage {
    dir: PathBuf,
    /// Held for the life of the node: two processes on one data directory would
    /// interleave their WAL writes.
    _lock: nix::fcntl::Flock<File>,
    wal: BufWriter<File>,
    /// What the disk holds (once synced): used to rewrite the WAL after a snapshot.
    mirror: DurableState,
    /// Records written since the last fsync.
    dirty: bool,
    /// False under the `no-fsync` bug: never fsync anything.
    fsync: bool,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Io { what, path, source }
}

impl Storage {
    /// Opens (or creates) the data directory and recovers its state, cutting a torn tail.
    /// `fsync: false` is the `no-fsync` bug.
    pub fn open(dir: &Path, fsync: bool) -> Result<(Storage, DurableState), StorageError> {
        fs::create_dir_all(dir).map_err(io("create", dir))?;
        let lock_path = dir.join("LOCK");
        let lock_file = File::create(&lock_path).map_err(io("create", &lock_path))?;
        let lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|_| StorageError::Locked(dir.to_path_buf()))?;
        let snap_path = dir.join("snapshot.json");
        let mut state = DurableState::default();
        if snap_path.exists() {
            let text = fs::read_to_string(&snap_path).map_err(io("read", &snap_path))?;
            let snap: Snapshot =
                serde_json::from_str(&text).map_err(|e| StorageError::BadSnapshot {
                    path: snap_path.clone(),
                    reason: e.to_string(),
                })?;
            state.snapshot = Some(snap);
        }
        let wal_path = dir.join("wal.log");
        let mut bytes = Vec::new();
        if wal_path.exists() {
            File::open(&wal_path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(io("read", &wal_path))?;
        }
        let (records, good_len) = decode_records(&bytes);
        for r in records {
            match r {
                Record::HardState(hs) => state.hard_state = hs,
                Record::Entry(e) => state.append_one(e)?,
                Record::Truncate(from) => state.apply(&LogOp::Truncate { from })?,
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&wal_path)
            .map_err(io("open", &wal_path))?;
        if good_len < bytes.len() {
            // A torn tail from a crash mid-write: those bytes were never acknowledged.
            file.set_len(good_len as u64)
                .map_err(io("truncate", &wal_path))?;
            if fsync {
                file.sync_all().map_err(io("fsync", &wal_path))?;
            }
        }
        let storage = Storage {
            dir: dir.to_path_buf(),
            _lock: lock,
            wal: BufWriter::with_capacity(1 << 20, file),
            mirror: state.clone(),
            dirty: false,
            fsync,
        };
        Ok((storage, state))
    }

    /// Writes the hard state and log operations in order; when this returns they are on
    /// disk (fsync), or under the `no-fsync` bug only handed to the operating system.
    pub fn persist(
        &mut self,
        hard_state: Option<&HardState>,
        ops: &[LogOp],
    ) -> Result<(), StorageError> {
        if let Some(hs) = hard_state {
            self.write_record(&Record::HardState(hs.clone()))?;
            self.mirror.hard_state = hs.clone();
        }
        for op in ops {
            match op {
                LogOp::Truncate { from } => self.write_record(&Record::Truncate(*from))?,
                LogOp::Append(entries) => {
                    for e in entries {
                        self.write_record(&Record::Entry(e.clone()))?;
                    }
                }
                LogOp::Snapshot(snap) => {
                    self.mirror.apply(op)?;
                    self.store_snapshot(snap)?;
                    continue;
                }
            }
            self.mirror.apply(op)?;
        }
        self.sync()
    }

    /// Hands our buffer to the OS and fsyncs the WAL (only the former under `no-fsync`).
    pub fn sync(&mut self) -> Result<(), StorageError> {
        if !self.dirty {
            return Ok(());
        }
        let path = self.dir.join("wal.log");
        self.wal.flush().map_err(io("write", &path))?;
        if self.fsync {
            self.wal.get_ref().sync_data().map_err(io("fsync", &path))?;
        }
        self.dirty = false;
        Ok(())
    }

    fn write_record(&mut self, r: &Record) -> Result<(), StorageError> {
        let payload = serde_json::to_vec(r).expect("records always serialize");
        let mut frame = Vec::with_capacity(payload.len() + 8);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        let path = self.dir.join("wal.log");
        self.wal.write_all(&frame).map_err(io("write", &path))?;
        self.dirty = true;
        Ok(())
    }

    /// Stores a snapshot durably, then rewrites the WAL with only what follows it.
    fn store_snapshot(&mut self, snap: &Snapshot) -> Result<(), StorageError> {
        // Earlier records (e.g. a truncation) must be durable before the snapshot is.
        self.dirty = true;
        self.sync()?;
        let path = self.dir.join("snapshot.json");
        let text = serde_json::to_vec(snap).expect("snapshots always serialize");
        write_atomically(&self.dir, &path, &text, self.fsync)?;
        let mut bytes = Vec::new();
        let mut records = vec![Record::HardState(self.mirror.hard_state.clone())];
        records.extend(self.mirror.entries.iter().cloned().map(Record::Entry));
        for r in &records {
            let payload = serde_json::to_vec(r).expect("records always serialize");
            bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&crc32(&payload).to_le_bytes());
            bytes.extend_from_slice(&payload);
        }
        let wal_path = self.dir.join("wal.log");
        write_atomically(&self.dir, &wal_path, &bytes, self.fsync)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&wal_path)
            .map_err(io("open", &wal_path))?;
        self.wal = BufWriter::with_capacity(1 << 20, file);
        self.dirty = false;
        Ok(())
    }
}

impl Storage {
    /// Dies like `kill -9`: our buffer is discarded, the lock released.
    #[cfg(test)]
    fn crash(self) {
        let (_file, _unflushed) = self.wal.into_parts();
    }
}

/// Replaces `path` by `bytes`: temp file, fsync, rename, fsync of the directory (the
/// fsyncs left out when `fsync` is false).
fn write_atomically(
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    fsync: bool,
) -> Result<(), StorageError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
    f.write_all(bytes).map_err(io("write", &tmp))?;
    if fsync {
        f.sync_all().map_err(io("fsync", &tmp))?;
    }
    fs::rename(&tmp, path).map_err(io("rename", path))?;
    if fsync {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync", dir))?;
    }
    Ok(())
}

/// Decodes records up to the first torn or corrupt one; returns them and the length of
/// the good prefix.
fn decode_records(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut pos = 0;
    while bytes.len() - pos >= 8 {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes"));
        if len > MAX_RECORD_BYTES || bytes.len() - pos - 8 < len {
            break;
        }
        let payload = &bytes[pos + 8..pos + 8 + len];
        if crc32(payload) != crc {
            break;
        }
        let Ok(record) = serde_json::from_slice(payload) else {
            break;
        };
        records.push(record);
        pos += 8 + len;
    }
    (records, pos)
}

/// CRC-32 (IEEE), bitwise: records are small and this keeps the crate dependency-free.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{EntryKind, Membership};

    /// A temp dir removed on drop, also when the test panics.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(name: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!(
                "dt-raftkv-{name}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = fs::remove_dir_all(&p);
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn e(term: u64, index: Index) -> Entry {
        Entry {
            term,
            index,
            kind: EntryKind::Command(format!("cmd{index}")),
        }
    }

    #[test]
    fn a_data_directory_cannot_be_opened_twice() {
        let dir = TempDir::new("lock");
        let (first, _) = Storage::open(&dir.0, true).unwrap();
        assert!(matches!(
            Storage::open(&dir.0, true),
            Err(StorageError::Locked(_))
        ));
        drop(first);
        assert!(
            Storage::open(&dir.0, true).is_ok(),
            "the lock goes with the process"
        );
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn recovery_cuts_a_torn_tail_and_keeps_acknowledged_records() {
        let dir = TempDir::new("torn");
        {
            let (mut s, _) = Storage::open(&dir.0, true).unwrap();
            let hs = HardState {
                term: 3,
                vote: Some("n2".into()),
            };
            s.persist(Some(&hs), &[LogOp::Append(vec![e(1, 1), e(3, 2)])])
                .unwrap();
        }
        let wal = dir.0.join("wal.log");
        let good_len = fs::metadata(&wal).unwrap().len();
        // A crash mid-write: a record header promising more bytes than exist.
        let mut f = OpenOptions::new().append(true).open(&wal).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, b'{']).unwrap();
        drop(f);
        let (mut s, state) = Storage::open(&dir.0, true).unwrap();
        assert_eq!(state.hard_state.term, 3);
        assert_eq!(state.entries, vec![e(1, 1), e(3, 2)]);
        assert_eq!(fs::metadata(&wal).unwrap().len(), good_len, "tail cut");
        // The log keeps working after the cut.
        s.persist(None, &[LogOp::Append(vec![e(3, 3)])]).unwrap();
        drop(s);
        let (_, state) = Storage::open(&dir.0, true).unwrap();
        assert_eq!(state.last_index(), 3);
    }

    #[test]
    fn a_corrupt_record_ends_recovery_there() {
        let dir = TempDir::new("corrupt");
        {
            let (mut s, _) = Storage::open(&dir.0, true).unwrap();
            s.persist(None, &[LogOp::Append(vec![e(1, 1), e(1, 2)])])
                .unwrap();
        }
        let wal = dir.0.join("wal.log");
        let mut bytes = fs::read(&wal).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0xFF; // flip a bit inside the second record
        fs::write(&wal, &bytes).unwrap();
        let (_, state) = Storage::open(&dir.0, true).unwrap();
        assert_eq!(state.entries, vec![e(1, 1)]);
    }

    #[test]
    fn snapshot_compacts_the_wal_and_survives_restart() {
        let dir = TempDir::new("snap");
        let snap = Snapshot {
            index: 2,
            term: 1,
            membership: Membership::default(),
            data: "{\"data\":{}}".into(),
        };
        {
            let (mut s, _) = Storage::open(&dir.0, true).unwrap();
            s.persist(
                None,
                &[
                    LogOp::Append(vec![e(1, 1), e(1, 2), e(1, 3)]),
                    LogOp::Snapshot(snap.clone()),
                    LogOp::Append(vec![e(2, 4)]),
                ],
            )
            .unwrap();
        }
        let (_, state) = Storage::open(&dir.0, true).unwrap();
        assert_eq!(state.snapshot, Some(snap));
        assert_eq!(state.entries, vec![e(1, 3), e(2, 4)]);
    }

    #[test]
    fn without_fsync_records_still_reach_the_os_and_survive_a_process_crash() {
        // The `no-fsync` bug as in real systems: nothing is fsynced, but every record is
        // written to the OS at once, so a crash of the process (not of the machine) loses
        // nothing. Losing the page cache takes a power failure: distest's disk nemesis.
        let dir = TempDir::new("nosync");
        {
            let (mut s, _) = Storage::open(&dir.0, false).unwrap();
            s.persist(None, &[LogOp::Append(vec![e(1, 1)])]).unwrap();
            s.persist(None, &[LogOp::Append(vec![e(1, 2)])]).unwrap();
            s.crash();
        }
        let (_, state) = Storage::open(&dir.0, false).unwrap();
        assert_eq!(state.entries, vec![e(1, 1), e(1, 2)]);
    }
}
