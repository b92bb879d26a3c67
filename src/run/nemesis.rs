//! The nemesis thread: performs the fault schedule's steps at their times until the main
//! phase ends, then heals. Which fault comes next and when it fires is the schedule's
//! (`distest_nemeses::schedule`); this thread only waits, performs, records.
//!
//! Step times count from the start of the main phase, minus the time spent performing
//! earlier steps: a slow step (a strobe blocks for its duration) delays the rest instead
//! of making them pile up, so the gaps between faults stay the schedule's.
//!
//! A fault aimed at the primaries while none is elected does nothing and says so; it is
//! tried again a second later, up to [`NO_PRIMARIES_RETRIES`] times within the main
//! phase, every try recorded. Without this, a schedule that happened to strike during
//! an election left a requested fault never applied, and the run could not pass.

use super::log::RunLog;
use super::progress::Progress;
use super::recorder::Recorder;
use crate::signals::StopFlag;
use distest_checkers::{Op, OpType, Process};
use distest_nemeses::schedule::FaultSchedule;
use distest_nemeses::{FaultOp, Nemesis, NemesisError};
use serde_json::Value;
use std::time::{Duration, Instant};

/// How often a waiting nemesis thread looks at the stop flags.
const POLL: Duration = Duration::from_millis(20);
/// A fault op that found no primaries (no leader elected right now) is tried again this
/// many times, this long apart (elections take a few seconds under faults).
const NO_PRIMARIES_RETRIES: usize = 5;
const NO_PRIMARIES_WAIT: Duration = Duration::from_secs(1);

/// What the nemesis thread needs.
pub struct NemesisThread {
    /// Performs the schedule's ops and heals them.
    pub nemesis: Box<dyn Nemesis>,
    pub schedule: FaultSchedule,
    pub recorder: Recorder,
    /// When the main phase began: step times count from here.
    pub main_start: Instant,
    pub deadline: Instant,
    /// Raised when the main phase is over.
    pub main_done: StopFlag,
    /// Raised by Ctrl-C.
    pub stop: StopFlag,
    pub log: RunLog,
    pub progress: Progress,
}

impl NemesisThread {
    /// Starts the thread; joining it returns every fault op's completion and the heal
    /// errors.
    pub fn spawn(self) -> std::thread::JoinHandle<super::NemesisOutcome> {
        std::thread::Builder::new()
            .name("dt-nemesis".into())
            .spawn(move || self.run())
            .expect("spawning the nemesis thread")
    }

    fn over(&self) -> bool {
        self.main_done.is_stopped() || self.stop.is_stopped()
    }

    /// Sleeps until `until`; `false` when the main phase ended (or its deadline came)
    /// first.
    fn wait_until(&self, until: Instant) -> bool {
        while Instant::now() < until && !self.over() {
            std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
        }
        !self.over() && Instant::now() < self.deadline
    }

    /// Performs and records one fault op; `false` when it found no primaries to act on
    /// (it did nothing, and may succeed once a leader is elected).
    fn perform(&mut self, op: &FaultOp, outcome: &mut super::NemesisOutcome) -> bool {
        let invoked = record_fault_invoke(&self.recorder, op);
        let result = self.nemesis.invoke(op);
        let retry = matches!(result, Err(NemesisError::NoPrimaries { .. }));
        outcome.note_finding(&result);
        outcome
            .completions
            .push((op.f.clone(), result.as_ref().err().map(ToString::to_string)));
        record_fault_completion(&self.recorder, invoked, result, &self.log);
        self.progress.set_faults(self.nemesis.active());
        !retry
    }

    fn run(mut self) -> super::NemesisOutcome {
        let mut outcome = super::NemesisOutcome::default();
        // Time spent inside `invoke` so far.
        let mut busy = Duration::ZERO;
        while let Some(step) = self.schedule.next_step() {
            // No new fault once the main phase is over: only the heal remains.
            if !self.wait_until(self.main_start + step.at + busy) {
                break;
            }
            let began = Instant::now();
            let mut retries = 0;
            // A fault aimed at the primaries while none is elected did nothing: it is
            // tried again shortly (each try recorded), rather than left never applied.
            while !self.perform(&step.op, &mut outcome)
                && retries < NO_PRIMARIES_RETRIES
                && self.wait_until(Instant::now() + NO_PRIMARIES_WAIT)
            {
                retries += 1;
            }
            busy += began.elapsed();
        }
        // `heal` reports its ops once it has performed them all, so their invocations
        // land after the effect; what matters to readers of the history — a fault ends
        // no later than its stop op's completion — still holds.
        for (op, result) in self.nemesis.heal() {
            // As for every fault op, the nodes that did not start again are findings; the
            // heal failed only if something else went wrong too.
            outcome.note_finding(&result);
            match &result {
                Err(e) if !e.is_finding() => outcome.heal_errors.push(e.to_string()),
                _ => {}
            }
            outcome
                .completions
                .push((op.f.clone(), result.as_ref().err().map(ToString::to_string)));
            let invoked = record_fault_invoke(&self.recorder, &op);
            record_fault_completion(&self.recorder, invoked, result, &self.log);
        }
        self.progress.set_faults(self.nemesis.active());
        outcome
    }
}

/// Records a fault's invocation; call it before performing the fault, so the history's
/// invoke precedes the effect.
fn record_fault_invoke(recorder: &Recorder, op: &FaultOp) -> Op {
    let mut inv = Op::invoke(Process::Nemesis, op.f.clone(), op.value.clone());
    inv.kind = OpType::Info;
    recorder.record(inv)
}

/// Records a fault's completion: what was done, or why it failed.
fn record_fault_completion(
    recorder: &Recorder,
    inv: Op,
    result: Result<Value, NemesisError>,
    log: &RunLog,
) {
    let mut done = inv.clone();
    match result {
        Ok(value) => {
            log.line(&format!("nemesis {} {}", inv.f, value));
            done.value = value;
        }
        Err(e) => {
            log.line(&format!("nemesis {} failed: {e}", inv.f));
            done.error = Some(Value::String(e.to_string()));
        }
    }
    recorder.record(done);
}

#[cfg(test)]
mod tests {
    use super::*;
    use distest_nemeses::schedule::{scripted, FaultStep};
    use distest_nemeses::HealLog;
    use serde_json::json;

    /// Finds no primaries `misses` times, then acts.
    struct Leaderless {
        misses: usize,
        tries: usize,
    }

    impl Nemesis for Leaderless {
        fn name(&self) -> &str {
            "kill"
        }
        fn performs(&self) -> Vec<&'static str> {
            vec!["kill", "start"]
        }
        fn next_op(&mut self) -> FaultOp {
            FaultOp::new("kill", json!("primaries"))
        }
        fn invoke(&mut self, op: &FaultOp) -> Result<Value, NemesisError> {
            self.tries += 1;
            if self.tries <= self.misses {
                return Err(NemesisError::NoPrimaries { f: op.f.clone() });
            }
            Ok(json!(["n1"]))
        }
        fn heal(&mut self) -> HealLog {
            Vec::new()
        }
        fn active(&self) -> Vec<String> {
            Vec::new()
        }
        fn preflight(&self) -> Result<(), NemesisError> {
            Ok(())
        }
    }

    fn run_once(misses: usize, main_phase: Duration) -> Vec<(String, Option<String>)> {
        let dir = std::env::temp_dir().join(format!(
            "dt-nemesis-retry-{}-{misses}-{}",
            std::process::id(),
            main_phase.as_millis()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let recorder = Recorder::create(&dir.join("history.jsonl")).unwrap();
        let progress = Progress::start(recorder.clone(), main_phase.as_secs_f64());
        let now = Instant::now();
        let thread = NemesisThread {
            nemesis: Box::new(Leaderless { misses, tries: 0 }),
            schedule: scripted(vec![FaultStep {
                at: Duration::ZERO,
                op: FaultOp::new("kill", json!("primaries")),
            }]),
            recorder: recorder.clone(),
            main_start: now,
            deadline: now + main_phase,
            main_done: StopFlag::default(),
            stop: StopFlag::default(),
            log: RunLog::in_memory(),
            progress: progress.clone(),
        };
        let completions = thread.spawn().join().unwrap().completions;
        progress.finish();
        let _ = std::fs::remove_dir_all(&dir);
        completions
    }

    #[test]
    fn a_fault_that_finds_no_primaries_is_tried_again_until_one_is_elected() {
        let completions = run_once(2, Duration::from_secs(30));
        let errors: Vec<bool> = completions.iter().map(|(_, e)| e.is_some()).collect();
        assert_eq!(errors, [true, true, false], "{completions:?}");
    }

    #[test]
    fn retries_stop_after_their_budget_and_at_the_end_of_the_main_phase() {
        let completions = run_once(usize::MAX, Duration::from_secs(30));
        assert_eq!(
            completions.len(),
            1 + NO_PRIMARIES_RETRIES,
            "{completions:?}"
        );
        let completions = run_once(usize::MAX, Duration::from_millis(1_500));
        assert_eq!(
            completions.len(),
            2,
            "one retry fits before the deadline: {completions:?}"
        );
    }
}
