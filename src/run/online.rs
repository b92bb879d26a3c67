//! Online checking while a run goes: every op the recorder appends to `history.jsonl` is
//! also handed, in the same order, to a checking thread that feeds the checkers' online
//! forms (`distest_checkers::online`). The first anomaly is known within a tick of the op
//! that completes it (the thread ticks every [`TICK`]); at the end the monitor gives the
//! verdict the offline check of the same history gives, without reading the file back.
//!
//! The channel to the thread is bounded: when checking falls behind, recording waits
//! (the run slows down rather than holding an unbounded backlog or dropping ops).

use distest_checkers::online::{Anomaly, OnlineCheck};
use distest_checkers::{CheckContext, Checker, Op, Results, Verdict};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the checking thread runs the checkers' deferred searches.
pub const TICK: Duration = Duration::from_millis(200);
/// Ops queued for the checking thread at most; past it, recording waits. A few tens of
/// milliseconds of ops at full speed: enough to smooth the checking of a settled part,
/// while the queue's ops (a transaction's value is a tree of JSON values, 0.5 to a few
/// KB) stay a few MB.
const QUEUE_OPS: usize = 1 << 13;
/// Events the checking thread takes between two looks at the clock.
const EVENTS_PER_CLOCK_READ: usize = 256;

enum Event {
    Op(Op),
    /// No op on this key will be invoked any more.
    Retire(Value),
    /// The history is over.
    Finish,
}

/// The first anomaly, when it was reported (ns since the run started).
#[derive(Clone, Debug, PartialEq)]
pub struct Reported {
    pub anomaly: Anomaly,
    pub reported_ns: u64,
}

#[derive(Default)]
struct Shared {
    first: Mutex<Option<Reported>>,
    /// Ops checked so far: the history is checked up to this index.
    checked: AtomicU64,
    /// Anomalies reported so far.
    anomalies: AtomicU64,
    /// Ops the checkers hold now.
    held: AtomicU64,
    /// The most they held at once (sampled at each retirement and tick).
    max_held: AtomicU64,
    /// For the first [`MAX_LATENCIES`] anomalies: ns from the op that completed each to
    /// its report.
    latencies_ns: Mutex<Vec<u64>>,
    thread: Mutex<Option<JoinHandle<Result<Results, String>>>>,
}

/// Report latencies kept (enough for a p99 over a long run).
const MAX_LATENCIES: usize = 1 << 16;

/// Feeds a run's ops to the online checkers on a thread of its own. A cheap handle:
/// the recorder keeps one to pass ops on, the orchestrator another to finish.
#[derive(Clone)]
pub struct OnlineMonitor {
    tx: SyncSender<Event>,
    shared: Arc<Shared>,
}

impl OnlineMonitor {
    /// Starts the checking thread. `now_ns` is the run clock; `on_first` is called once,
    /// on the checking thread, with the first anomaly (to print it, or stop the run);
    /// `offline(positions)` checks the recorded history (complete by then) once with
    /// the checkers at those positions, whose verdicts need the whole history again
    /// (`OnlineChecker::needs_history`), and returns their verdicts in that order.
    pub fn start(
        checkers: Vec<Box<dyn Checker>>,
        now_ns: impl Fn() -> u64 + Send + 'static,
        on_first: impl FnOnce(&Reported) + Send + 'static,
        offline: impl FnOnce(&[usize]) -> Vec<Verdict> + Send + 'static,
    ) -> OnlineMonitor {
        let (tx, rx) = sync_channel(QUEUE_OPS);
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("dt-online".into())
                .spawn(move || check_loop(rx, checkers, &shared, now_ns, on_first, offline))
                .ok()
        };
        *lock(&shared.thread) = thread;
        OnlineMonitor { tx, shared }
    }

    /// The next op of the history (the recorder calls this in recording order).
    pub fn op(&self, op: &Op) {
        // A closed channel means the thread stopped (on an error, kept for `finish`).
        let _ = self.tx.send(Event::Op(op.clone()));
    }

    /// No op on `key` will be invoked any more (call after recording its last
    /// invocation): once its ops in flight are done, the checkers judge and drop it.
    pub fn retire(&self, key: Value) {
        let _ = self.tx.send(Event::Retire(key));
    }

    /// The first anomaly reported so far.
    pub fn first_anomaly(&self) -> Option<Reported> {
        lock(&self.shared.first).clone()
    }

    /// Ops checked so far.
    pub fn checked_up_to(&self) -> u64 {
        self.shared.checked.load(Ordering::Relaxed)
    }

    /// Anomalies reported so far.
    pub fn anomaly_count(&self) -> u64 {
        self.shared.anomalies.load(Ordering::Relaxed)
    }

    /// How soon anomalies were reported after the op that completed each: (count, p50,
    /// p99, max) in milliseconds, over the first [`MAX_LATENCIES`] anomalies.
    pub fn report_latency_ms(&self) -> Option<(usize, f64, f64, f64)> {
        let mut l = lock(&self.shared.latencies_ns).clone();
        if l.is_empty() {
            return None;
        }
        l.sort_unstable();
        let q = |p: f64| l[((l.len() as f64 * p) as usize).min(l.len() - 1)] as f64 / 1e6;
        Some((l.len(), q(0.5), q(0.99), q(1.0)))
    }

    /// Ops the checkers hold now (the memory online checking uses grows with this).
    pub fn held_ops(&self) -> u64 {
        self.shared.held.load(Ordering::Relaxed)
    }

    /// The most ops the checkers held at once so far.
    pub fn max_held_ops(&self) -> u64 {
        self.shared.max_held.load(Ordering::Relaxed)
    }

    /// The history is over: the checkers' verdicts, as the offline check gives them.
    /// An error when an op broke the rules of a history (then check offline instead).
    pub fn finish(&self) -> Result<Results, String> {
        let _ = self.tx.send(Event::Finish);
        let thread = lock(&self.shared.thread).take();
        match thread {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err("the online checking thread panicked".to_string())),
            None => Err("the online checking thread could not be started".to_string()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn check_loop(
    rx: Receiver<Event>,
    checkers: Vec<Box<dyn Checker>>,
    shared: &Shared,
    now_ns: impl Fn() -> u64,
    on_first: impl FnOnce(&Reported),
    offline: impl FnOnce(&[usize]) -> Vec<Verdict>,
) -> Result<Results, String> {
    let ctx = CheckContext::default();
    let mut online = OnlineCheck::new(&checkers);
    let mut on_first = Some(on_first);
    let mut next_tick = Instant::now() + TICK;
    let mut note = |online: &mut OnlineCheck, found: &[Anomaly]| {
        if !found.is_empty() {
            let now = now_ns();
            let mut l = lock(&shared.latencies_ns);
            for a in found {
                if l.len() < MAX_LATENCIES {
                    l.push(now.saturating_sub(a.time));
                }
            }
        }
        if !found.is_empty() {
            if let (Some(first), Some(report)) = (online.first_anomaly(), on_first.take()) {
                let reported = Reported {
                    anomaly: first.clone(),
                    reported_ns: now_ns(),
                };
                *lock(&shared.first) = Some(reported.clone());
                report(&reported);
            }
        }
        shared.checked.store(online.op_count(), Ordering::Relaxed);
        shared
            .anomalies
            .store(online.anomaly_count(), Ordering::Relaxed);
        let held = online.held_ops() as u64;
        shared.held.store(held, Ordering::Relaxed);
        shared.max_held.fetch_max(held, Ordering::Relaxed);
    };
    'run: loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        let mut event = match rx.recv_timeout(wait) {
            Ok(event) => Some(event),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        // Events already queued are taken without reading the clock in between (it cost
        // as much as a transaction's bookkeeping), up to a bound.
        let mut taken = 0;
        while let Some(e) = event.take() {
            match e {
                Event::Op(op) => {
                    let found = online
                        .push(op, &ctx)
                        .map_err(|e| format!("the recorded history broke a rule: {e}"))?
                        .to_vec();
                    if !found.is_empty() {
                        note(&mut online, &found);
                    }
                }
                Event::Retire(key) => {
                    let found = online.retire(&key, false, &ctx).to_vec();
                    note(&mut online, &found);
                }
                Event::Finish => break 'run,
            }
            taken += 1;
            if taken < EVENTS_PER_CLOCK_READ {
                event = rx.try_recv().ok();
            }
        }
        if Instant::now() >= next_tick {
            let found = online.tick(&ctx).to_vec();
            note(&mut online, &found);
            next_tick = Instant::now() + TICK;
        }
    }
    let found = online.tick(&ctx).to_vec();
    note(&mut online, &found);
    Ok(online.finish_with(&ctx, offline))
}

#[cfg(test)]
mod tests {
    use super::*;
    use distest_checkers::{OpType, Process};
    use serde_json::json;

    fn checker(name: &str, model: Option<&str>) -> Box<dyn Checker> {
        distest_checkers::build(
            name,
            &distest_checkers::CheckerOptions {
                model: model.map(str::to_string),
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn a_stale_read_is_reported_while_ops_keep_coming_and_the_verdict_is_the_offline_one() {
        let start = Instant::now();
        let (seen_tx, seen_rx) = std::sync::mpsc::channel();
        let monitor = OnlineMonitor::start(
            vec![
                checker("linearizable", Some("cas-register")),
                checker("stats", None),
            ],
            move || start.elapsed().as_nanos() as u64,
            move |r| {
                let _ = seen_tx.send(r.clone());
            },
            |needing| {
                let none = || Verdict::unknown("no history file in this test");
                needing.iter().map(|_| none()).collect()
            },
        );
        let mut ops = Vec::new();
        let mut push = |op: Op| {
            let op = Op {
                index: ops.len() as u64,
                time: start.elapsed().as_nanos() as u64,
                ..op
            };
            monitor.op(&op);
            ops.push(op);
        };
        let w = Op::invoke(Process::Client(0), "write", json!(1)).with_key(json!(5));
        push(w.clone());
        push(w.complete(OpType::Ok, json!(1)));
        let r = Op::invoke(Process::Client(1), "read", json!(null)).with_key(json!(5));
        push(r.clone());
        push(r.complete(OpType::Ok, json!(0)));
        // Reported while the history goes on, within a few ticks.
        let reported = seen_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the stale read is reported while the run goes");
        assert_eq!(reported.anomaly.index, 3);
        assert_eq!(monitor.first_anomaly(), Some(reported));
        for i in 0..100u64 {
            let w = Op::invoke(Process::Client(0), "write", json!(i)).with_key(json!(6));
            push(w.clone());
            push(w.complete(OpType::Ok, json!(i)));
        }
        monitor.retire(json!(6));
        let results = monitor.finish().unwrap();
        let history = distest_checkers::History::new(ops).unwrap();
        let offline = distest_checkers::check_all(
            &history,
            &[
                checker("linearizable", Some("cas-register")),
                checker("stats", None),
            ],
            &CheckContext::default(),
        );
        assert_eq!(results, offline);
    }

    #[test]
    fn the_checkers_that_need_the_history_again_are_checked_offline_together_once() {
        let ops = {
            // An aborted append read back (G1a): list-append's verdict then needs the
            // history again; rw-register cannot read appends and needs it too.
            let t1 = Op::invoke(Process::Client(0), "txn", json!([["append", 1, 1]]));
            let t2 = Op::invoke(Process::Client(1), "txn", json!([["r", 1, null]]));
            let mut ops = vec![
                t1.clone(),
                t1.complete(OpType::Fail, json!([["append", 1, 1]])),
                t2.clone(),
                t2.complete(OpType::Ok, json!([["r", 1, [1]]])),
            ];
            for (i, op) in ops.iter_mut().enumerate() {
                op.index = i as u64;
                op.time = i as u64;
            }
            ops
        };
        let history = distest_checkers::History::new(ops.clone()).unwrap();
        let checkers = || {
            vec![
                checker("list-append", None),
                checker("stats", None),
                checker("rw-register", None),
            ]
        };
        let calls = Arc::new(Mutex::new(Vec::new()));
        let monitor = {
            let (calls, history) = (calls.clone(), history.clone());
            OnlineMonitor::start(
                checkers(),
                || 0,
                |_| {},
                move |needing| {
                    lock(&calls).push(needing.to_vec());
                    let all = checkers();
                    let ctx = CheckContext::default();
                    needing
                        .iter()
                        .map(|&i| all[i].check(&history, &ctx))
                        .collect()
                },
            )
        };
        for op in &ops {
            monitor.op(op);
        }
        monitor.retire(json!(1));
        let results = monitor.finish().unwrap();
        assert_eq!(*lock(&calls), vec![vec![0, 2]]);
        let offline = distest_checkers::check_all(&history, &checkers(), &CheckContext::default());
        assert_eq!(results, offline);
        assert_eq!(
            results.checkers["list-append"].valid,
            distest_checkers::Validity::Invalid
        );
    }
}
