//! Live progress on the terminal: phase, ops ok/fail/info, ops/s, active faults, time
//! left. Hidden automatically when stderr is not a terminal (CI logs stay clean).

use super::recorder::Recorder;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
    state: Arc<Mutex<State>>,
    recorder: Recorder,
    time_limit_s: f64,
}

#[derive(Default)]
struct State {
    phase: String,
    faults: Vec<String>,
    last_ok: u64,
    last_s: f64,
    /// The first anomaly was printed.
    announced: bool,
}

impl Progress {
    pub fn start(recorder: Recorder, time_limit_s: f64) -> Progress {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(250));
        let p = Progress {
            bar,
            state: Arc::default(),
            recorder,
            time_limit_s,
        };
        let ticker = p.clone();
        std::thread::Builder::new()
            .name("dt-progress".into())
            .spawn(move || {
                while !ticker.bar.is_finished() {
                    ticker.refresh();
                    std::thread::sleep(Duration::from_millis(500));
                }
            })
            .ok();
        p
    }

    pub fn phase(&self, phase: &str) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).phase = phase.to_string();
        self.refresh();
    }

    pub fn set_faults(&self, faults: Vec<String>) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).faults = faults;
    }

    fn refresh(&self) {
        let c = &self.recorder.counters;
        let ok = c.ok.load(Ordering::Relaxed);
        let fail = c.fail.load(Ordering::Relaxed);
        let info = c.info.load(Ordering::Relaxed);
        let now = self.recorder.elapsed().as_secs_f64();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let dt = (now - s.last_s).max(1e-3);
        let rate = (ok + fail + info).saturating_sub(s.last_ok) as f64 / dt;
        s.last_ok = ok + fail + info;
        s.last_s = now;
        let left = (self.time_limit_s - now).max(0.0);
        let faults = if s.faults.is_empty() {
            "none".to_string()
        } else {
            s.faults.join(", ")
        };
        let checked = match self.recorder.online() {
            Some(online) => {
                let first = online.first_anomaly();
                if let (Some(r), false) = (&first, s.announced) {
                    // Printed once above the live line (or plainly without a terminal).
                    let line = format!("first anomaly: {}", super::describe_first(r));
                    if self.bar.is_hidden() {
                        eprintln!("{line}");
                    } else {
                        self.bar.println(line);
                    }
                    s.announced = true;
                }
                let anomaly = first.map_or(String::new(), |r| {
                    format!(" | first anomaly at op {}", r.anomaly.index)
                });
                format!(" | checked {}{anomaly}", online.checked_up_to())
            }
            None => String::new(),
        };
        self.bar.set_message(format!(
            "[{}] ok {ok} fail {fail} info {info} | {rate:.0} ops/s{checked} | faults: {faults} | {left:.0} s left",
            s.phase
        ));
    }

    pub fn finish(&self) {
        self.refresh();
        self.bar.finish_and_clear();
    }
}
