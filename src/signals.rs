//! The one SIGINT/SIGTERM handler of the process, and the [`StopFlag`] it raises.
//!
//! Two commands need Ctrl-C, in two ways, through one handler thread:
//! - [`OnSignal::Stop`] (`run`, `suite`): the first signal raises the flag: the main phase
//!   ends, and heal, check and report still happen; a second signal exits at once (130),
//!   leaving cleanup to `distest env down`.
//! - [`OnSignal::CleanupAndExit`] (`env up`): run every cleanup registered with
//!   `nodes::cleanup::register_cleanup` (newest first) and exit with 128 + the signal
//!   (130, 143); a second signal during cleanup exits at once.

use crate::nodes::cleanup;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Shared stop flag: set by Ctrl-C/SIGTERM or the end of the main phase.
#[derive(Clone, Default, Debug)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What the first SIGINT/SIGTERM does.
#[derive(Clone, Debug)]
pub enum OnSignal {
    /// Raise this flag; a second signal exits at once.
    Stop(StopFlag),
    /// Run the registered cleanups, then exit.
    CleanupAndExit,
}

fn action() -> &'static Mutex<OnSignal> {
    static ACTION: OnceLock<Mutex<OnSignal>> = OnceLock::new();
    ACTION.get_or_init(|| Mutex::new(OnSignal::CleanupAndExit))
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

fn signal_thread(ready: std::sync::mpsc::Sender<Result<(), String>>) {
    use tokio::signal::unix::{signal, SignalKind};
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
        let code = tokio::select! {
            _ = int.recv() => 130,
            _ = term.recv() => 143,
        };
        let on = action().lock().unwrap_or_else(|e| e.into_inner()).clone();
        match on {
            OnSignal::Stop(flag) => {
                flag.stop();
                // Second signal: the user insists. Leave at once.
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                std::process::exit(130);
            }
            OnSignal::CleanupAndExit => {
                cleanup::mark_interrupted();
                eprintln!("distest: interrupted; cleaning up (signal again to exit at once)");
                let work = tokio::task::spawn_blocking(cleanup::run_all_and_wait);
                tokio::select! {
                    _ = work => {}
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                std::process::exit(code);
            }
        }
    });
}
