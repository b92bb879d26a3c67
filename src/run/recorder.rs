//! The history recorder: gives each op its index and time and appends it to
//! `history.jsonl` while the run goes.
//!
//! One mutex orders index assignment, the clock reading and the write, so the file is in
//! real-time order with dense indices. The buffer is flushed at least every
//! `FLUSH_INTERVAL`, so a SIGKILLed control node loses at most that last moment. The ops
//! are not kept: each is also handed, in order, to online checking
//! ([`Recorder::attach_online`]), so memory stays flat however long the run.

use distest_checkers::format::write_jsonl_line;
use distest_checkers::{Op, OpType};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest time a recorded op may sit in memory before it reaches the file.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
/// Buffered bytes that trigger a write regardless of time.
const FLUSH_BYTES: usize = 256 * 1024;

/// Outcome counters for the progress line.
#[derive(Debug, Default)]
pub struct Counters {
    pub ok: AtomicU64,
    pub fail: AtomicU64,
    pub info: AtomicU64,
    /// Client invocations (Maelstrom's "ops" in msgs-per-op).
    pub invoked: AtomicU64,
    /// Nanoseconds spent inside `record` (index, clock, serialization, write): the
    /// recorder's own cost, reported by the overhead benchmark.
    pub record_ns: AtomicU64,
}

struct Inner {
    file: File,
    buffer: Vec<u8>,
    next_index: u64,
    last_flush: Instant,
    error: Option<String>,
    /// Online checking: fed every op in recording order (under the lock).
    online: Option<super::online::OnlineMonitor>,
}

/// Shared by every client task and the nemesis; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
    start: Instant,
    pub counters: Arc<Counters>,
    closed: Arc<AtomicBool>,
}

impl Recorder {
    /// Creates (truncates) `path` and starts the run clock now.
    pub fn create(path: &Path) -> std::io::Result<Recorder> {
        let file = File::create(path)?;
        Ok(Recorder {
            inner: Arc::new(Mutex::new(Inner {
                file,
                buffer: Vec::with_capacity(FLUSH_BYTES * 2),
                next_index: 0,
                last_flush: Instant::now(),
                error: None,
                online: None,
            })),
            start: Instant::now(),
            counters: Arc::new(Counters::default()),
            closed: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Hands every op recorded from now on to `online`, in recording order.
    pub fn attach_online(&self, online: super::online::OnlineMonitor) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).online = Some(online);
    }

    /// The online checking attached, if any.
    pub fn online(&self) -> Option<super::online::OnlineMonitor> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .online
            .clone()
    }

    /// No op on `key` will be invoked any more (its last invocation is recorded): online
    /// checking judges it once its ops in flight are done.
    pub fn retire(&self, key: &serde_json::Value) {
        if let Some(online) = &self.inner.lock().unwrap_or_else(|e| e.into_inner()).online {
            online.retire(key.clone());
        }
    }

    /// Nanoseconds since the run started.
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Appends `op` with the next index and the current time; returns the recorded op.
    pub fn record(&self, mut op: Op) -> Op {
        let entered = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        op.index = inner.next_index;
        op.time = self.now_ns();
        inner.next_index += 1;
        write_jsonl_line(&op, &mut inner.buffer);
        if let Some(online) = &inner.online {
            online.op(&op);
        }
        if inner.buffer.len() >= FLUSH_BYTES || inner.last_flush.elapsed() >= FLUSH_INTERVAL {
            Self::flush_locked(&mut inner);
        }
        drop(inner);
        self.counters
            .record_ns
            .fetch_add(entered.elapsed().as_nanos() as u64, Ordering::Relaxed);
        if op.is_client() {
            let c = match op.kind {
                OpType::Ok => Some(&self.counters.ok),
                OpType::Fail => Some(&self.counters.fail),
                OpType::Info => Some(&self.counters.info),
                OpType::Invoke => Some(&self.counters.invoked),
            };
            if let Some(c) = c {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        op
    }

    fn flush_locked(inner: &mut Inner) {
        if inner.buffer.is_empty() {
            return;
        }
        if let Err(e) = inner.file.write_all(&inner.buffer) {
            // Keep the first error; the run reports it at the end instead of dying mid-way.
            inner.error.get_or_insert_with(|| e.to_string());
        }
        inner.buffer.clear();
        inner.last_flush = Instant::now();
    }

    /// Writes out whatever is buffered (called by a timer and at the end).
    pub fn flush(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Self::flush_locked(&mut inner);
    }

    /// Starts a thread that flushes every `FLUSH_INTERVAL` until [`close`](Self::close).
    pub fn spawn_flusher(&self) -> std::thread::JoinHandle<()> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("dt-flusher".into())
            .spawn(move || {
                while !me.closed.load(Ordering::Relaxed) {
                    std::thread::sleep(FLUSH_INTERVAL / 2);
                    me.flush();
                }
            })
            .expect("spawning a thread")
    }

    /// Flushes, fsyncs and stops the flusher; returns the number of ops recorded.
    pub fn close(&self) -> Result<u64, String> {
        self.closed.store(true, Ordering::Relaxed);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Self::flush_locked(&mut inner);
        if let Err(e) = inner.file.sync_all() {
            inner.error.get_or_insert_with(|| e.to_string());
        }
        match &inner.error {
            Some(e) => Err(e.clone()),
            None => Ok(inner.next_index),
        }
    }

    pub fn ops_recorded(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_index
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distest_checkers::Process;
    use serde_json::json;

    #[test]
    fn records_dense_indices_in_order_and_reads_back_as_a_history() {
        let dir = std::env::temp_dir().join(format!("dt-recorder-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("history.jsonl");
        let rec = Recorder::create(&path).unwrap();
        let inv = rec.record(Op::invoke(Process::Client(0), "write", json!(1)));
        rec.record(inv.complete(OpType::Ok, json!(1)));
        assert_eq!(rec.close().unwrap(), 2);
        let h = distest_checkers::format::read_history(
            std::fs::File::open(&path).unwrap(),
            None,
            "history.jsonl",
        )
        .unwrap();
        assert_eq!(h.len(), 2);
        assert!(h.ops()[1].time >= h.ops()[0].time);
        assert_eq!(rec.counters.ok.load(Ordering::Relaxed), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
