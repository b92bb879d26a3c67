//! The delayer's I/O shell: the kernel's NFQUEUE (through the `nfq` crate) feeding a
//! [`Hold`], one thread, woken by packets, by the next due time or by a signal.
//!
//! Waiting needs the queue's netlink socket, which `nfq` does not expose (no `AsRawFd`),
//! and its blocking `recv` cannot wait with a deadline. So [`Delayer::bind`] notes the
//! sockets this process has before and after `Queue::open` (it runs before any other
//! thread exists, so the one new socket is the queue's), receives without blocking, and
//! waits in `ppoll` until the socket is readable or the next packet is due. SIGTERM,
//! SIGINT and SIGHUP are blocked except inside `ppoll`, so a stop request is never lost
//! between checking the flag and going to sleep.

use super::hold::{Admit, Hold, HoldConfig};
use super::DelayerStats;
use nfq::{Message, Queue, Verdict};
use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::signal::{self, SigHandler, SigSet, Signal};
use nix::sys::time::TimeSpec;
use std::collections::BTreeSet;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Packets the kernel may queue that we have not read yet, on top of those we hold; past
/// it the kernel lets packets pass (fail-open), never drops them.
const UNREAD_BACKLOG: u32 = 1024;
/// How often the stats file is rewritten while the delayer runs.
const STATS_INTERVAL: Duration = Duration::from_secs(1);
/// Packets read per round before the due ones are let go.
const RECV_BATCH: usize = 64;
/// Consecutive socket errors after which the delayer gives up: the socket is broken.
const MAX_ERRORS_IN_A_ROW: u32 = 1000;
/// Signals that ask the delayer to let every held packet go and exit.
const STOP_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_: nix::libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// A bound queue, ready to serve.
pub(super) struct Delayer {
    queue: Queue,
    fd: RawFd,
    queue_num: u16,
}

impl Delayer {
    /// Opens a netlink socket, binds queue `queue_num` (copying packet metadata only: the
    /// verdict needs just the packet id), and lets the kernel keep at most `limit` +
    /// [`UNREAD_BACKLOG`] packets waiting, passing the rest (fail-open).
    pub(super) fn bind(queue_num: u16, limit: usize) -> io::Result<Delayer> {
        let before = sockets()?;
        let mut queue = Queue::open()?;
        let after = sockets()?;
        let fresh: Vec<RawFd> = after
            .difference(&before)
            .map(|(fd, _)| *fd)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let fd = match fresh[..] {
            [fd] => fd,
            _ => {
                return Err(io::Error::other(format!(
                    "could not tell which socket is the queue's: {} new sockets appeared while opening it",
                    fresh.len()
                )))
            }
        };
        queue.bind(queue_num)?;
        queue.set_copy_range(queue_num, 0)?;
        let max_len = u32::try_from(limit)
            .unwrap_or(u32::MAX)
            .saturating_add(UNREAD_BACKLOG);
        queue.set_queue_max_len(queue_num, max_len)?;
        queue.set_fail_open(queue_num, true)?;
        queue.set_nonblocking(true);
        Ok(Delayer {
            queue,
            fd,
            queue_num,
        })
    }

    /// Binds and unbinds: proves this kernel queues packets to user space.
    pub(super) fn probe(queue_num: u16) -> io::Result<()> {
        let mut delayer = Delayer::bind(queue_num, 1)?;
        delayer.queue.unbind(delayer.queue_num)
    }

    /// Holds every packet the queue receives for its delay until a stop signal arrives,
    /// then lets every held packet go at once and returns what it did. Writes the stats
    /// to `stats_file` every [`STATS_INTERVAL`] and at the end.
    pub(super) fn serve(
        mut self,
        config: HoldConfig,
        seed: u64,
        stats_file: &Path,
    ) -> io::Result<DelayerStats> {
        let wait_mask = block_stop_signals()?;
        let mut hold: Hold<Message> = Hold::new(config, seed);
        let mut errors = 0u64;
        let mut errors_in_a_row = 0u32;
        let mut due = Vec::new();
        let mut next_stats = Instant::now();
        let stats = |hold: &Hold<Message>, errors| DelayerStats {
            hold: hold.stats(),
            errors,
        };
        loop {
            // Read what is waiting (a bounded batch: under a flood, due packets must not
            // wait for the socket to run dry), then let go of what is due.
            let mut drained = false;
            for _ in 0..RECV_BATCH {
                match self.queue.recv() {
                    Ok(message) => {
                        errors_in_a_row = 0;
                        if let Admit::PassNow(message) = hold.admit(Instant::now(), message) {
                            self.accept(message, &mut errors);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        drained = true;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        // An error reply to an earlier verdict (the packet was gone), or
                        // ENOBUFS: counted, not fatal, unless the socket keeps failing.
                        errors += 1;
                        errors_in_a_row += 1;
                        if errors_in_a_row >= MAX_ERRORS_IN_A_ROW {
                            return Err(e);
                        }
                    }
                }
            }
            hold.release_due(Instant::now(), &mut due);
            for message in due.drain(..) {
                self.accept(message, &mut errors);
            }
            let now = Instant::now();
            if now >= next_stats {
                write_stats(stats_file, &stats(&hold, errors));
                next_stats = now + STATS_INTERVAL;
            }
            if STOP.load(Ordering::SeqCst) {
                break;
            }
            if !drained {
                continue;
            }
            let wake = hold.next_due().map_or(next_stats, |d| d.min(next_stats));
            self.wait(wake.saturating_duration_since(now), wait_mask)?;
        }
        hold.drain(&mut due);
        for message in due.drain(..) {
            self.accept(message, &mut errors);
        }
        let last = stats(&hold, errors);
        write_stats(stats_file, &last);
        Ok(last)
    }

    fn accept(&mut self, mut message: Message, errors: &mut u64) {
        message.set_verdict(Verdict::Accept);
        if self.queue.verdict(message).is_err() {
            *errors += 1;
        }
    }

    /// Sleeps until the socket is readable, `timeout` passed or a stop signal arrived.
    fn wait(&self, timeout: Duration, unblocked: SigSet) -> io::Result<()> {
        // SAFETY: `self.fd` is the queue's socket, open for as long as `self.queue` lives.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match ppoll(
            &mut fds,
            Some(TimeSpec::from_duration(timeout)),
            Some(unblocked),
        ) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(e) => Err(io::Error::from(e)),
        }
    }
}

/// Installs the stop handler, blocks the stop signals (they are let through only while
/// waiting) and returns the mask to wait with.
fn block_stop_signals() -> io::Result<SigSet> {
    let mut stop = SigSet::empty();
    for sig in STOP_SIGNALS {
        stop.add(sig);
        let action = signal::SigAction::new(
            SigHandler::Handler(request_stop),
            signal::SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { signal::sigaction(sig, &action) }.map_err(io::Error::from)?;
    }
    let mut old = SigSet::empty();
    signal::sigprocmask(signal::SigmaskHow::SIG_BLOCK, Some(&stop), Some(&mut old))
        .map_err(io::Error::from)?;
    for sig in STOP_SIGNALS {
        old.remove(sig);
    }
    Ok(old)
}

/// Writes the stats atomically (temp file, rename): a reader never sees half of them.
/// Failure is only logged: the stats are a report, the delaying matters more.
fn write_stats(path: &Path, stats: &DelayerStats) {
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_string(stats).expect("stats serialize");
    if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path)) {
        eprintln!("could not write {}: {e}", path.display());
    }
}

/// This process' open sockets: (fd, `socket:[inode]`).
fn sockets() -> io::Result<BTreeSet<(RawFd, String)>> {
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let Some(fd) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Ok(target) = std::fs::read_link(entry.path()) {
            let target = target.to_string_lossy().into_owned();
            if target.starts_with("socket:") {
                found.insert((fd, target));
            }
        }
    }
    Ok(found)
}
