//! The router's side of the message journal: events go over a channel to one writer
//! thread, which appends them as JSON Lines and flushes every [`FLUSH_EVERY`] (and on
//! demand, and when the router stops), so recording never blocks message traffic.
//!
//! The writer sleeps between rounds instead of waiting on the channel: recording an event
//! never wakes a thread (two context switches per message would cost more CPU than the
//! routing itself on a busy machine).

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use distest_checkers::net::{NetEvent, NetEventKind};
use std::io::Write;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// How often the writer takes what was recorded.
const ROUND: Duration = Duration::from_millis(20);

enum Entry {
    Event(NetEvent),
    Flush(Sender<()>),
}

/// A handle for recording events; cheap to clone. Without a journal file it records
/// nothing.
#[derive(Clone)]
pub struct Journal {
    tx: Option<Sender<Entry>>,
    writer: Option<std::thread::Thread>,
}

/// The writer thread; joining it flushes what is left.
pub struct JournalThread(Option<JoinHandle<()>>);

impl Journal {
    /// A journal appending to `path`, or one that records nothing when `None`.
    pub fn open(path: Option<&Path>) -> std::io::Result<(Journal, JournalThread)> {
        let Some(path) = path else {
            return Ok((
                Journal {
                    tx: None,
                    writer: None,
                },
                JournalThread(None),
            ));
        };
        let file = open_append(path)?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let handle = std::thread::Builder::new()
            .name("dt-journal".into())
            .spawn(move || write_loop(rx, std::io::BufWriter::with_capacity(1 << 16, file)))?;
        let writer = Some(handle.thread().clone());
        Ok((
            Journal {
                tx: Some(tx),
                writer,
            },
            JournalThread(Some(handle)),
        ))
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        event: NetEventKind,
        id: u64,
        at: &str,
        src: &str,
        dest: &str,
        body_type: Option<&str>,
        msg_id: Option<u64>,
        in_reply_to: Option<u64>,
        reason: Option<&str>,
    ) {
        let Some(tx) = &self.tx else { return };
        let _ = tx.send(Entry::Event(NetEvent {
            time: mono_ns(),
            event,
            id,
            at: at.to_string(),
            src: src.to_string(),
            dest: dest.to_string(),
            body_type: body_type.map(str::to_string),
            msg_id,
            in_reply_to,
            reason: reason.map(str::to_string),
        }));
    }

    /// Returns once everything recorded so far is in the file.
    pub fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (ack, done) = crossbeam_channel::bounded(1);
        if tx.send(Entry::Flush(ack)).is_ok() {
            if let Some(w) = &self.writer {
                w.unpark();
            }
            let _ = done.recv_timeout(Duration::from_secs(10));
        }
    }
}

impl JournalThread {
    /// Waits for the writer to write everything and stop; every [`Journal`] handle must
    /// have been dropped first.
    pub fn join(mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}

fn write_loop(rx: Receiver<Entry>, mut out: impl Write) {
    let mut last_flush = std::time::Instant::now();
    loop {
        std::thread::park_timeout(ROUND);
        loop {
            match rx.try_recv() {
                Ok(Entry::Event(e)) => {
                    if serde_json::to_writer(&mut out, &e).is_ok() {
                        let _ = out.write_all(b"\n");
                    }
                }
                Ok(Entry::Flush(ack)) => {
                    let _ = out.flush();
                    last_flush = std::time::Instant::now();
                    let _ = ack.send(());
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let _ = out.flush();
                    return;
                }
            }
        }
        if last_flush.elapsed() >= FLUSH_EVERY {
            let _ = out.flush();
            last_flush = std::time::Instant::now();
        }
    }
}

/// Opens `path` for appending, creating it and its directory when missing.
pub(crate) fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// This machine's monotonic clock in nanoseconds (`CLOCK_MONOTONIC`): shared by every
/// network namespace of a machine, never moved by clock faults (which fake only the node
/// program's wall clock).
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists
    // on Linux.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
