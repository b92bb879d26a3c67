//! The fault schedule: which fault op comes next and when it fires, as data.
//!
//! A schedule is a stream of [`FaultStep`]s (`at` after the main phase began, perform
//! `op`), built on `distest_generator::schedule`. The orchestrator only waits for each
//! step's time, hands its op to the [`Nemesis`] that performs it, and stops taking steps
//! when the main phase ends; then it heals. Nothing else decides about faults.
//!
//! - [`random`]: Jepsen's default, a fault every `--nemesis-interval` with jitter (times
//!   from the stream `nemesis/gaps`), the ops drawn by the nemeses themselves (each fault
//!   from its own stream, [`Composite`](crate::compose::Composite) choosing which moves
//!   next). Same seed, same node names: same steps.
//! - [`scripted`]: a fixed list of steps (a schedule file, a test). Ops may name their
//!   nodes or a mode resolved when they run (`{"targets": "primaries"}` = the leader).
//! - [`merge`]: schedules interleaved by time, so their faults overlap.
//!
//! The nemesis that performs a schedule's ops must know them all: build it from the
//! fault names the schedule uses ([`fault_names`]).

use crate::error::NemesisError;
use crate::nemesis::{FaultOp, Nemesis, NemesisContext};
use distest_generator::schedule::{Drawn, Gaps, Merge, Schedule, Step, Steps};
use std::time::Duration;

/// One timed fault op.
pub type FaultStep = Step<FaultOp>;
/// A stream of timed fault ops, in time order.
pub type FaultSchedule = Box<dyn Schedule<FaultOp>>;

/// Random faults of `names` (as `--nemesis` takes them) every `interval` on average.
/// The ops are drawn by a nemesis of their own, built from the same context: a nemesis's
/// draws depend only on the seed, the node names and its earlier draws, never on what
/// performing an op did, so they are the ops the performing nemesis would draw itself.
pub fn random(
    names: &[String],
    ctx: NemesisContext,
    interval: Duration,
) -> Result<FaultSchedule, NemesisError> {
    let seed = ctx.seed;
    let mut draw: Box<dyn Nemesis> = crate::build(names, ctx)?;
    Ok(Box::new(Drawn::new(Gaps::new(seed, interval), move || {
        draw.next_op()
    })))
}

/// A fixed list of steps, in time order.
pub fn scripted(steps: Vec<FaultStep>) -> FaultSchedule {
    Box::new(Steps::new(steps))
}

/// Several schedules interleaved by time (their faults overlap).
pub fn merge(schedules: Vec<FaultSchedule>) -> FaultSchedule {
    Box::new(Merge::new(schedules))
}

/// The names of the faults whose ops `steps` uses (`start-partition` → `partition`), in
/// registry order: what the performing nemesis must be built from.
pub fn fault_names(steps: &[FaultStep]) -> Result<Vec<String>, NemesisError> {
    let mut used = Vec::new();
    for step in steps {
        let owner = crate::FAULTS
            .iter()
            .find(|fault| fault.ops.contains(&step.op.f.as_str()))
            .ok_or_else(|| NemesisError::UnknownNemesis {
                name: step.op.f.clone(),
                valid: crate::FAULTS
                    .iter()
                    .flat_map(|fault| fault.ops.iter().copied())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        used.push(owner.name);
    }
    Ok(crate::FAULTS
        .iter()
        .filter(|fault| used.contains(&fault.name))
        .map(|fault| fault.name.to_string())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake;
    use distest_generator::schedule::take_until;
    use serde_json::json;

    fn ctx(seed: u64) -> NemesisContext {
        let (nodes, target) = fake::cluster(5);
        NemesisContext {
            nodes: fake::shells(&nodes),
            target,
            seed,
        }
    }

    fn steps(names: &str, seed: u64) -> Vec<FaultStep> {
        let mut s = random(&[names.to_string()], ctx(seed), Duration::from_secs(2)).unwrap();
        take_until(&mut s, Duration::from_secs(120))
    }

    #[test]
    fn a_random_schedule_replays_by_seed_times_and_ops() {
        let a = steps("all", 3);
        assert!(a.len() > 30, "{}", a.len());
        assert_eq!(a, steps("all", 3));
        assert_ne!(a, steps("all", 4));
        // The ops are the nemesis' own draws, in order.
        let mut nemesis = crate::build(&["all".to_string()], ctx(3)).unwrap();
        let drawn: Vec<FaultOp> = (0..a.len()).map(|_| nemesis.next_op()).collect();
        assert_eq!(a.iter().map(|s| s.op.clone()).collect::<Vec<_>>(), drawn);
    }

    #[test]
    fn scripted_steps_merge_with_a_random_schedule_by_time() {
        let script = vec![
            Step {
                at: Duration::from_millis(500),
                op: FaultOp::new(
                    "bump-clock",
                    json!({"targets": "primaries", "delta_ms": -2000}),
                ),
            },
            Step {
                at: Duration::ZERO,
                op: FaultOp::new("start-partition", json!({"shape": "isolate-leader"})),
            },
        ];
        assert_eq!(fault_names(&script).unwrap(), vec!["partition", "clock"]);
        let random = random(&["kill".to_string()], ctx(1), Duration::from_secs(1)).unwrap();
        let mut merged = merge(vec![scripted(script), random]);
        let steps = take_until(&mut merged, Duration::from_secs(5));
        assert_eq!(steps[0].op.f, "start-partition");
        assert_eq!(steps[1].op.f, "bump-clock");
        assert!(steps[2..]
            .iter()
            .all(|s| s.op.f == "kill" || s.op.f == "start"));
        assert!(steps.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(matches!(
            fault_names(&[Step {
                at: Duration::ZERO,
                op: FaultOp::new("reboot", json!(null))
            }]),
            Err(NemesisError::UnknownNemesis { .. })
        ));
    }
}
