//! The nemesis thread: performs the fault schedule's steps at their times until the main
//! phase ends, then heals. Which fault comes next and when it fires is the schedule's
//! (`distest_nemeses::schedule`); this thread only waits, performs, records.
//!
//! Step times count from the start of the main phase, minus the time spent performing
//! earlier steps: a slow step (a strobe blocks for its duration) delays the rest instead
//! of making them pile up, so the gaps between faults stay the schedule's.

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

    fn run(mut self) -> super::NemesisOutcome {
        let mut outcome = super::NemesisOutcome::default();
        // Time spent inside `invoke` so far.
        let mut busy = Duration::ZERO;
        while let Some(step) = self.schedule.next_step() {
            let due = self.main_start + step.at + busy;
            while Instant::now() < due && !self.over() {
                std::thread::sleep(POLL.min(due.saturating_duration_since(Instant::now())));
            }
            // No new fault once the main phase is over: only the heal remains.
            if self.over() || Instant::now() >= self.deadline {
                break;
            }
            let began = Instant::now();
            let invoked = record_fault_invoke(&self.recorder, &step.op);
            let result = self.nemesis.invoke(&step.op);
            outcome.completions.push((
                step.op.f.clone(),
                result.as_ref().err().map(ToString::to_string),
            ));
            record_fault_completion(&self.recorder, invoked, result, &self.log);
            busy += began.elapsed();
            self.progress.set_faults(self.nemesis.active());
        }
        // `heal` reports its ops once it has performed them all, so their invocations
        // land after the effect; what matters to readers of the history — a fault ends
        // no later than its stop op's completion — still holds.
        for (op, result) in self.nemesis.heal() {
            if let Err(e) = &result {
                outcome.heal_errors.push(e.to_string());
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
