//! The node program's stdin: messages are written straight into the (non-blocking) pipe
//! by whichever thread delivers them, so a message crosses a router with one thread
//! wake-up, not two. Only when the pipe is full (a slow or paused program) do messages
//! wait in a bounded backlog, which a drain thread writes out as the pipe empties; past
//! [`STDIN_QUEUE`] waiting messages, further ones are dropped as `stdin-full`.
//!
//! Order is kept: while anything waits in the backlog, new messages join it behind.

use super::{Shared, STDIN_QUEUE};
use crate::protocol::Head;
use distest_checkers::net::NetEventKind;
use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::ChildStdin;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// One message for the node, with what the journal needs to say about it.
pub(crate) struct Queued {
    id: u64,
    line: Vec<u8>,
    src: String,
    dest: String,
    body_type: Option<String>,
    msg_id: Option<u64>,
    in_reply_to: Option<u64>,
}

impl Queued {
    pub fn new(id: u64, json: &[u8], head: &Head<'_>) -> Queued {
        let mut line = Vec::with_capacity(json.len() + 1);
        line.extend_from_slice(json);
        line.push(b'\n');
        Queued {
            id,
            line,
            src: head.src.to_string(),
            dest: head.dest.to_string(),
            body_type: head.body.body_type.as_deref().map(str::to_string),
            msg_id: head.body.msg_id,
            in_reply_to: head.body.in_reply_to,
        }
    }

    pub fn record(&self, shared: &Shared, kind: NetEventKind, reason: Option<&str>) {
        shared.journal.record(
            kind,
            self.id,
            &shared.cfg.node,
            &self.src,
            &self.dest,
            self.body_type.as_deref(),
            self.msg_id,
            self.in_reply_to,
            reason,
        );
    }
}

struct State {
    pipe: ChildStdin,
    /// Messages waiting for room in the pipe; the first may be partly written.
    backlog: VecDeque<Queued>,
    /// Bytes of the first backlog message already written.
    written: usize,
    /// The program is gone (or its stdin closed): everything is dropped from now on.
    closed: bool,
}

/// The stdin of one generation of the node program.
pub(crate) struct StdinPipe {
    state: Mutex<State>,
    wake: Condvar,
}

/// What one non-blocking write attempt achieved.
enum Wrote {
    All,
    Part(usize),
    Full,
    Broken,
}

fn write_some(pipe: &mut ChildStdin, bytes: &[u8]) -> Wrote {
    let mut done = 0;
    while done < bytes.len() {
        match pipe.write(&bytes[done..]) {
            Ok(0) => return Wrote::Broken,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return if done == 0 {
                    Wrote::Full
                } else {
                    Wrote::Part(done)
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Wrote::Broken,
        }
    }
    Wrote::All
}

impl StdinPipe {
    pub fn new(pipe: ChildStdin) -> std::io::Result<StdinPipe> {
        let fd = pipe.as_raw_fd();
        // SAFETY: fcntl on a descriptor we own; only the O_NONBLOCK flag changes, and only
        // on our end of the pipe.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(StdinPipe {
            state: Mutex::new(State {
                pipe,
                backlog: VecDeque::new(),
                written: 0,
                closed: false,
            }),
            wake: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `q` to the program now if the pipe has room and nothing waits before it;
    /// else queues it (or drops it when the backlog is full or the program is gone).
    pub fn send(&self, shared: &Shared, q: Queued) {
        let mut s = self.lock();
        if s.closed {
            drop(s);
            q.record(shared, NetEventKind::Drop, Some("node-down"));
            return;
        }
        if !s.backlog.is_empty() {
            if s.backlog.len() >= STDIN_QUEUE {
                drop(s);
                q.record(shared, NetEventKind::Drop, Some("stdin-full"));
            } else {
                s.backlog.push_back(q);
            }
            return;
        }
        match write_some(&mut s.pipe, &q.line) {
            Wrote::All => q.record(shared, NetEventKind::Deliver, None),
            Wrote::Part(n) => {
                s.written = n;
                s.backlog.push_back(q);
                self.wake.notify_one();
            }
            Wrote::Full => {
                s.written = 0;
                s.backlog.push_back(q);
                self.wake.notify_one();
            }
            Wrote::Broken => {
                s.closed = true;
                drop(s);
                q.record(shared, NetEventKind::Drop, Some("node-down"));
            }
        }
    }

    /// Marks the program gone: what waits, and whatever comes later, is dropped.
    pub fn close(&self, shared: &Shared) {
        let mut s = self.lock();
        s.closed = true;
        let waiting: Vec<Queued> = s.backlog.drain(..).collect();
        drop(s);
        self.wake.notify_all();
        for q in waiting {
            q.record(shared, NetEventKind::Drop, Some("node-down"));
        }
    }

    /// The drain thread of one generation: writes the backlog out as the pipe empties,
    /// until the program is gone.
    pub fn drain(&self, shared: &Shared) {
        loop {
            let mut s = self.lock();
            while s.backlog.is_empty() && !s.closed {
                s = self
                    .wake
                    .wait_timeout(s, Duration::from_millis(200))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            if s.closed {
                return;
            }
            let fd = s.pipe.as_raw_fd();
            drop(s);
            // Wait for room without holding the lock, so deliveries can still queue.
            let mut poll = libc::pollfd {
                fd,
                events: libc::POLLOUT,
                revents: 0,
            };
            // SAFETY: one pollfd we own; the descriptor stays open while `self` lives.
            unsafe {
                libc::poll(&mut poll, 1, 100);
            }
            let mut guard = self.lock();
            let s = &mut *guard;
            while let Some(front) = s.backlog.front() {
                match write_some(&mut s.pipe, &front.line[s.written..]) {
                    Wrote::All => {
                        s.written = 0;
                        let q = s.backlog.pop_front().expect("front exists");
                        q.record(shared, NetEventKind::Deliver, None);
                    }
                    Wrote::Part(n) => {
                        s.written += n;
                        break;
                    }
                    Wrote::Full => break,
                    Wrote::Broken => {
                        drop(guard);
                        self.close(shared);
                        return;
                    }
                }
            }
        }
    }
}
