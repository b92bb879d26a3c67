//! The one SIGINT/SIGTERM handler of the process, and the [`StopFlag`] it raises.
//!
//! Two commands need Ctrl-C, in two ways, through one handler thread:
//! - [`OnSignal::Stop`] (`run`, `suite`), in three steps, each announced by one line on
//!   stderr: the first signal ends the main phase (faults are healed, the recovery wait
//!   and final reads still happen, the nodes are torn down, what was recorded is checked
//!   and reported, and the run is marked interrupted); the second skips every wait
//!   (recovery wait, final reads, ops in flight) but still heals and tears down; the
//!   third exits at once (128 + the signal), saying what is left on the nodes (see
//!   [`set_leftover_note`]) and that `distest env down` removes it.
//! - [`OnSignal::CleanupAndExit`] (`env up`): run every cleanup registered with
//!   `nodes::cleanup::register_cleanup` (newest first) and exit with 128 + the signal
//!   (130, 143); a second signal during cleanup exits at once.

use crate::nodes::cleanup;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// How far a run has been asked to stop; levels only go up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum StopLevel {
    Running = 0,
    /// End the main phase (the time limit, or a first signal); everything after it runs.
    Stop = 1,
    /// Skip every wait (recovery, final reads, ops in flight); still heal and tear down.
    Hurry = 2,
}

#[derive(Debug, Default)]
struct StopState {
    level: AtomicU8,
    /// The signal that interrupted the run (0: none), as its number.
    signal: AtomicU8,
    /// Wakes async waits when the level reaches [`StopLevel::Hurry`].
    hurry: tokio::sync::Notify,
}

/// Shared stop flag: raised by Ctrl-C/SIGTERM or the end of the main phase.
#[derive(Clone, Default, Debug)]
pub struct StopFlag(Arc<StopState>);

impl StopFlag {
    /// Ends the main phase (not an interruption: the time limit uses it too).
    pub fn stop(&self) {
        self.raise(StopLevel::Stop);
    }

    /// Ends the main phase because of `signal` (SIGINT/SIGTERM): the run is interrupted.
    pub fn interrupt(&self, signal: i32) {
        let _ = self.0.signal.compare_exchange(
            0,
            signal.clamp(1, 255) as u8,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        self.raise(StopLevel::Stop);
    }

    /// Skips every wait from now on; heal and teardown still happen.
    pub fn hurry(&self) {
        self.raise(StopLevel::Hurry);
        self.0.hurry.notify_waiters();
    }

    fn raise(&self, level: StopLevel) {
        self.0.level.fetch_max(level as u8, Ordering::SeqCst);
    }

    pub fn level(&self) -> StopLevel {
        match self.0.level.load(Ordering::SeqCst) {
            0 => StopLevel::Running,
            1 => StopLevel::Stop,
            _ => StopLevel::Hurry,
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.level() >= StopLevel::Stop
    }

    pub fn is_hurried(&self) -> bool {
        self.level() >= StopLevel::Hurry
    }

    /// The signal that interrupted the run (`SIGINT`, `SIGTERM`), if one did.
    pub fn interrupted_by(&self) -> Option<&'static str> {
        match self.0.signal.load(Ordering::SeqCst) {
            0 => None,
            2 => Some("SIGINT"),
            15 => Some("SIGTERM"),
            _ => Some("a signal"),
        }
    }

    /// Resolves once the run is asked to hurry (at once if it already is).
    pub async fn hurried(&self) {
        loop {
            let notified = self.0.hurry.notified();
            tokio::pin!(notified);
            // Registered before the check, so a `hurry` in between is not missed.
            notified.as_mut().enable();
            if self.is_hurried() {
                return;
            }
            notified.await;
        }
    }
}

/// What the first SIGINT/SIGTERM does.
#[derive(Clone, Debug)]
pub enum OnSignal {
    /// Raise this flag; a second signal hurries it, a third exits at once.
    Stop(StopFlag),
    /// Run the registered cleanups, then exit.
    CleanupAndExit,
}

fn action() -> &'static Mutex<OnSignal> {
    static ACTION: OnceLock<Mutex<OnSignal>> = OnceLock::new();
    ACTION.get_or_init(|| Mutex::new(OnSignal::CleanupAndExit))
}

fn leftover_note() -> &'static Mutex<Option<String>> {
    static NOTE: OnceLock<Mutex<Option<String>>> = OnceLock::new();
    NOTE.get_or_init(|| Mutex::new(None))
}

/// Says what a run has on its nodes right now and how to remove it (`None`: nothing),
/// for the line a third signal prints before the process abandons them.
pub fn set_leftover_note(note: Option<String>) {
    *leftover_note().lock().unwrap_or_else(|e| e.into_inner()) = note;
}

/// Makes `on` what the first signal does, starting the handler thread once per process.
pub fn install(on: OnSignal) -> anyhow::Result<()> {
    *action().lock().unwrap_or_else(|e| e.into_inner()) = on;
    static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
    STARTED
        .get_or_init(|| {
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("dt-signals".into())
                .spawn(move || signal_thread(ready_tx))
                .map_err(|e| e.to_string())?;
            ready_rx
                .recv_timeout(Duration::from_secs(10))
                .map_err(|_| "the signal thread did not start within 10 s".to_string())?
        })
        .clone()
        .map_err(|message| {
            anyhow::anyhow!("could not install the SIGINT/SIGTERM handler: {message}")
        })
}

/// One line on stderr, on a line of its own even when a progress bar is drawn there.
fn say(line: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("\r\x1b[2K{line}");
    } else {
        eprintln!("{line}");
    }
}

/// The lines the three signals of a run print, in order (`name` = SIGINT/SIGTERM).
pub fn stop_messages(name: &str, note: Option<&str>) -> [String; 3] {
    let left = match note {
        Some(note) => format!("left behind: {note}"),
        None => "nothing of the run is left on the nodes".to_string(),
    };
    [
        format!("distest: {name}: stopping the run: faults are healed, the nodes torn down, and what was recorded is checked and reported as interrupted (signal again to skip the waits)"),
        format!("distest: second {name}: skipping the recovery wait, final reads and ops in flight; still healing and tearing down (a third signal exits at once)"),
        format!("distest: third {name}: exiting now without cleaning up; {left}"),
    ]
}

/// Every SIGINT/SIGTERM delivered to the process, counted in the handler itself: tokio's
/// wake-ups fold signals that come close together (two Ctrl-C 30 ms apart on a loaded
/// machine) into one, and each of the three steps must still happen.
static DELIVERED: AtomicUsize = AtomicUsize::new(0);
/// The numbers of the first three signals delivered, in order (0: not yet).
static SEEN: [AtomicU8; 3] = [AtomicU8::new(0), AtomicU8::new(0), AtomicU8::new(0)];

/// Counts each delivery of `signal`. Registered before tokio's own handler, so the count
/// is up to date when tokio wakes the signal thread.
fn count_deliveries(signal: i32) -> std::io::Result<()> {
    let action = move || {
        let i = DELIVERED.fetch_add(1, Ordering::SeqCst);
        if let Some(seen) = SEEN.get(i) {
            seen.store(signal as u8, Ordering::SeqCst);
        }
    };
    // SAFETY: the action only touches atomics, which is async-signal-safe.
    unsafe { signal_hook_registry::register(signal, action) }.map(|_| ())
}

/// The number and name of the `i`-th signal delivered (from 0; the last one seen for any
/// later one).
fn seen(i: usize) -> (i32, &'static str) {
    let number = SEEN[i.min(SEEN.len() - 1)].load(Ordering::SeqCst);
    match number {
        15 => (15, "SIGTERM"),
        _ => (2, "SIGINT"),
    }
}

fn signal_thread(ready: std::sync::mpsc::Sender<Result<(), String>>) {
    use tokio::signal::unix::{signal, SignalKind};
    if let Err(e) = count_deliveries(2).and_then(|_| count_deliveries(15)) {
        let _ = ready.send(Err(e.to_string()));
        return;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    runtime.block_on(async move {
        let (mut int, mut term) = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(i), Ok(t)) => (i, t),
            (Err(e), _) | (_, Err(e)) => {
                let _ = ready.send(Err(e.to_string()));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        // Signals handled so far; each wake-up handles every signal delivered since.
        let mut handled = 0;
        let mut cleanup: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            match cleanup.as_mut() {
                None => next(&mut int, &mut term).await,
                Some(work) => tokio::select! {
                    _ = work => std::process::exit(128 + seen(0).0),
                    _ = next(&mut int, &mut term) => {}
                },
            }
            while handled < DELIVERED.load(Ordering::SeqCst) {
                let (number, name) = seen(handled);
                let on = action().lock().unwrap_or_else(|e| e.into_inner()).clone();
                match (on, handled) {
                    (OnSignal::Stop(flag), 0) => {
                        say(&stop_messages(name, None)[0]);
                        flag.interrupt(number);
                    }
                    (OnSignal::Stop(flag), 1) => {
                        say(&stop_messages(name, None)[1]);
                        flag.hurry();
                    }
                    (OnSignal::Stop(_), _) => {
                        let note = leftover_note()
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .clone();
                        say(&stop_messages(name, note.as_deref())[2]);
                        std::process::exit(128 + number);
                    }
                    (OnSignal::CleanupAndExit, 0) => {
                        cleanup::mark_interrupted();
                        say("distest: interrupted; cleaning up (signal again to exit at once)");
                        cleanup = Some(tokio::task::spawn_blocking(cleanup::run_all_and_wait));
                    }
                    (OnSignal::CleanupAndExit, _) => std::process::exit(128 + seen(0).0),
                }
                handled += 1;
            }
        }
    });
}

/// Waits for the next wake-up by SIGINT or SIGTERM (several signals may be behind one).
async fn next(int: &mut tokio::signal::unix::Signal, term: &mut tokio::signal::unix::Signal) {
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_only_go_up_and_the_time_limit_is_not_an_interruption() {
        let flag = StopFlag::default();
        assert_eq!(flag.level(), StopLevel::Running);
        flag.stop();
        assert!(flag.is_stopped() && !flag.is_hurried());
        assert_eq!(flag.interrupted_by(), None);
        flag.interrupt(15);
        flag.interrupt(2);
        assert_eq!(
            flag.interrupted_by(),
            Some("SIGTERM"),
            "the first signal counts"
        );
        flag.hurry();
        flag.stop();
        assert_eq!(flag.level(), StopLevel::Hurry);
    }

    #[test]
    fn an_async_wait_wakes_when_hurried_also_if_hurried_before() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let flag = StopFlag::default();
        let waiter = flag.clone();
        let hurrier = flag.clone();
        rt.block_on(async move {
            let wait = tokio::spawn(async move { waiter.hurried().await });
            tokio::time::sleep(Duration::from_millis(20)).await;
            hurrier.hurry();
            tokio::time::timeout(Duration::from_secs(5), wait)
                .await
                .expect("woken")
                .unwrap();
            tokio::time::timeout(Duration::from_secs(1), flag.hurried())
                .await
                .expect("already hurried resolves at once");
        });
    }

    #[test]
    fn each_signal_says_in_one_line_what_happens_now() {
        let lines = stop_messages(
            "SIGINT",
            Some("local cluster tr1; `distest env down --cluster tr1` removes it"),
        );
        for line in &lines {
            assert!(!line.contains('\n'), "{line}");
            assert!(line.starts_with("distest: "), "{line}");
        }
        assert!(lines[0].contains("healed") && lines[0].contains("interrupted"));
        assert!(lines[1].contains("skipping") && lines[1].contains("tearing down"));
        assert!(lines[2].contains("distest env down --cluster tr1"));
        assert!(stop_messages("SIGTERM", None)[2].contains("nothing"));
    }
}
