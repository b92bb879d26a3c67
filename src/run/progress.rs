//! Live progress: phase, ops ok/fail/info, ops/s, active faults, time left.
//!
//! On a terminal it is a spinner line on stderr (indicatif). When stdout is not a
//! terminal (CI logs, a pipe), a run would otherwise look hung until its end, so one plain
//! line goes to stdout every [`PLAIN_EVERY`] instead:
//!
//! `progress: main 20 s | ok 1843 fail 12 info 3 | 92 ops/s | faults: partition halves | 40 s left`
//!
//! Fields are added to the line with [`Progress::add_field`]; each shows as
//! ` | name: value` while its closure returns `Some`. Online checking adds how far it
//! checked and where the first anomaly is, and the first anomaly is also printed once,
//! on a line of its own, as soon as it is found.

use super::recorder::Recorder;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the plain line is printed when stdout is not a terminal.
pub const PLAIN_EVERY: Duration = Duration::from_secs(10);
/// How often the spinner's text is refreshed.
const BAR_EVERY: Duration = Duration::from_millis(500);

type Field = (String, Box<dyn Fn() -> Option<String> + Send + Sync>);

#[derive(Clone)]
pub struct Progress {
    /// The spinner, when stdout is a terminal.
    bar: Option<ProgressBar>,
    state: Arc<Mutex<State>>,
    fields: Arc<Mutex<Vec<Field>>>,
    recorder: Recorder,
    time_limit_s: f64,
}

#[derive(Default)]
struct State {
    phase: String,
    faults: Vec<String>,
    finished: bool,
}

/// The counts a line is made of, at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    /// Seconds since the run's clock started.
    pub at_s: f64,
}

impl Counts {
    fn total(&self) -> u64 {
        self.ok + self.fail + self.info
    }
}

/// One progress line: `now` against `before` (for the rate), plus extra fields.
pub fn line(
    phase: &str,
    faults: &[String],
    now: Counts,
    before: Counts,
    time_limit_s: f64,
    extra: &[(String, String)],
) -> String {
    let dt = (now.at_s - before.at_s).max(1e-3);
    let rate = now.total().saturating_sub(before.total()) as f64 / dt;
    let faults = if faults.is_empty() {
        "none".to_string()
    } else {
        faults.join(", ")
    };
    let left = (time_limit_s - now.at_s).max(0.0);
    let mut text = format!(
        "{phase} {:.0} s | ok {} fail {} info {} | {rate:.0} ops/s | faults: {faults} | {left:.0} s left",
        now.at_s, now.ok, now.fail, now.info
    );
    for (name, value) in extra {
        text.push_str(&format!(" | {name}: {value}"));
    }
    text
}

impl Progress {
    pub fn start(recorder: Recorder, time_limit_s: f64) -> Progress {
        let terminal = std::io::stdout().is_terminal();
        let bar = terminal.then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        let p = Progress {
            bar,
            state: Arc::default(),
            fields: Arc::default(),
            recorder,
            time_limit_s,
        };
        let online = recorder_fields(&p);
        let ticker = p.clone();
        let every = if terminal { BAR_EVERY } else { PLAIN_EVERY };
        std::thread::Builder::new()
            .name("dt-progress".into())
            .spawn(move || {
                let mut before = ticker.counts();
                let mut slept = Duration::ZERO;
                let mut announced = false;
                while !ticker.is_finished() {
                    std::thread::sleep(Duration::from_millis(100));
                    if !announced {
                        announced = online.announce(&ticker);
                    }
                    slept += Duration::from_millis(100);
                    if slept < every {
                        continue;
                    }
                    slept = Duration::ZERO;
                    let now = ticker.counts();
                    let text = ticker.text(now, before);
                    before = now;
                    match &ticker.bar {
                        Some(bar) => bar.set_message(text),
                        None if !ticker.is_finished() => println!("progress: {text}"),
                        None => {}
                    }
                }
            })
            .ok();
        p
    }

    fn is_finished(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .finished
    }

    fn counts(&self) -> Counts {
        let c = &self.recorder.counters;
        Counts {
            ok: c.ok.load(Ordering::Relaxed),
            fail: c.fail.load(Ordering::Relaxed),
            info: c.info.load(Ordering::Relaxed),
            at_s: self.recorder.elapsed().as_secs_f64(),
        }
    }

    fn text(&self, now: Counts, before: Counts) -> String {
        let extra: Vec<(String, String)> = self
            .fields
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(name, f)| f().map(|v| (name.clone(), v)))
            .collect();
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        line(&s.phase, &s.faults, now, before, self.time_limit_s, &extra)
    }

    pub fn phase(&self, phase: &str) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).phase = phase.to_string();
        if let Some(bar) = &self.bar {
            let now = self.counts();
            bar.set_message(self.text(now, now));
        }
    }

    pub fn set_faults(&self, faults: Vec<String>) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).faults = faults;
    }

    /// Adds ` | name: value` to every line from now on, while `value` returns `Some`.
    pub fn add_field(
        &self,
        name: &str,
        value: impl Fn() -> Option<String> + Send + Sync + 'static,
    ) {
        self.fields
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name.to_string(), Box::new(value)));
    }

    /// A line of its own, above the spinner when there is one.
    fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    pub fn finish(&self) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .finished = true;
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// What online checking (when attached to the recorder) shows: fields on the line, and
/// the first anomaly announced once.
struct OnlineFields(Recorder);

impl OnlineFields {
    /// Prints the first anomaly if there is one yet; true once it was printed.
    fn announce(&self, progress: &Progress) -> bool {
        let Some(first) = self.0.online().and_then(|o| o.first_anomaly()) else {
            return false;
        };
        progress.println(&format!("first anomaly: {}", super::describe_first(&first)));
        true
    }
}

/// Adds online checking's fields to `progress`; returns what announces its first anomaly.
fn recorder_fields(progress: &Progress) -> OnlineFields {
    let r = progress.recorder.clone();
    progress.add_field("checked", move || {
        r.online().map(|o| o.checked_up_to().to_string())
    });
    let r = progress.recorder.clone();
    progress.add_field("first anomaly at op", move || {
        r.online()
            .and_then(|o| o.first_anomaly())
            .map(|a| a.anomaly.index.to_string())
    });
    OnlineFields(progress.recorder.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_has_phase_counts_rate_faults_time_left_and_extra_fields() {
        let before = Counts {
            ok: 100,
            fail: 0,
            info: 0,
            at_s: 10.0,
        };
        let now = Counts {
            ok: 1_000,
            fail: 50,
            info: 50,
            at_s: 20.0,
        };
        let text = line(
            "main",
            &["partition halves".into()],
            now,
            before,
            60.0,
            &[("checked up to".into(), "op 900".into())],
        );
        assert_eq!(
            text,
            "main 20 s | ok 1000 fail 50 info 50 | 100 ops/s | faults: partition halves | 40 s left | checked up to: op 900"
        );
        let idle = line("heal", &[], now, now, 10.0, &[]);
        assert!(idle.contains("0 ops/s | faults: none | 0 s left"), "{idle}");
    }
}
