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
//! - [`scripted`]: a fixed list of steps (a test); [`Script`] a schedule file, round after
//!   round. Ops may name their nodes, a mode resolved when they run (`{"targets":
//!   "primaries"}`) or selectors (`@leader`, see `select.rs`).
//! - [`merge`]: schedules interleaved by time, so their faults overlap.
//! - [`for_run`]: what a run performs: `--nemesis` timelines (`a,b` one timeline, `a+b`
//!   one per `+`) merged with the schedule file; [`performer`] the nemesis that performs
//!   (and preflights, and heals) them all.
//!
//! The nemesis that performs a schedule's ops must know them all: build it from the
//! fault names the schedule uses ([`fault_names`]).

use crate::error::NemesisError;
use crate::nemesis::{FaultOp, Nemesis, NemesisContext};
use crate::script::Script;
use crate::select::{Selecting, AWAIT_LEADER};
use distest_generator::schedule::{Drawn, Gaps, Merge, Schedule, Step, Steps};
use distest_generator::seed::NEMESIS_GAPS;
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
    let gaps = Gaps::new(ctx.seed, interval);
    random_on(names, ctx, gaps)
}

/// [`random`] with the times of `gaps`.
fn random_on(
    names: &[String],
    ctx: NemesisContext,
    gaps: Gaps,
) -> Result<FaultSchedule, NemesisError> {
    let mut draw: Box<dyn Nemesis> = crate::build(names, ctx)?;
    Ok(Box::new(Drawn::new(gaps, move || draw.next_op())))
}

/// A fixed list of steps, in time order.
pub fn scripted(steps: Vec<FaultStep>) -> FaultSchedule {
    Box::new(Steps::new(steps))
}

/// Several schedules interleaved by time (their faults overlap).
pub fn merge(schedules: Vec<FaultSchedule>) -> FaultSchedule {
    Box::new(Merge::new(schedules))
}

/// The timelines of `--nemesis` values: `+` separates timelines, `,` the faults of one
/// (`["partition", "kill+clock"]` is `partition,kill` and `clock`). Empty names and
/// `none` drop out; a timeline left empty disappears.
pub fn timelines(names: &[String]) -> Vec<Vec<String>> {
    names
        .join(",")
        .split('+')
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty() && *n != "none")
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty())
        .collect()
}

/// The faults of `--nemesis` values in timeline order; a fault named in two timelines is
/// refused (both would draw the same ops from its one stream).
pub fn check_timelines(names: &[String]) -> Result<Vec<String>, NemesisError> {
    let mut faults: Vec<String> = Vec::new();
    for line in timelines(names) {
        for fault in crate::resolve_names(&line)? {
            if faults.iter().any(|f| f == fault.name) {
                return Err(NemesisError::BadValue {
                    f: "--nemesis".into(),
                    reason: format!(
                        "{} is named in two timelines; a fault runs in one timeline only (join faults of one timeline with `,`, timelines with `+`)",
                        fault.name
                    ),
                });
            }
            faults.push(fault.name.to_string());
        }
    }
    Ok(faults)
}

/// The faults a run performs: those of the `--nemesis` timelines, then those the
/// schedule file's ops use, each once. What the performing nemesis is built from, what
/// provisioning installs packages for, what preflight checks.
pub fn run_fault_names(
    names: &[String],
    script: Option<&Script>,
) -> Result<Vec<String>, NemesisError> {
    let mut faults = check_timelines(names)?;
    if let Some(script) = script {
        for name in fault_names_of_ops(&script.fault_ops())? {
            if !faults.contains(&name) {
                faults.push(name);
            }
        }
    }
    Ok(faults)
}

/// The nemesis that performs (and heals) every op a run's schedule ([`for_run`]) holds,
/// selectors and `await-leader` included; `None` when the run has no faults.
pub fn performer(
    names: &[String],
    script: Option<&Script>,
    ctx: NemesisContext,
) -> Result<Option<Box<dyn Nemesis>>, NemesisError> {
    let faults = run_fault_names(names, script)?;
    if faults.is_empty() && script.is_none() {
        return Ok(None);
    }
    Ok(Some(Box::new(Selecting::new(
        crate::build(&faults, ctx.clone())?,
        &ctx,
    ))))
}

/// What a run performs: the `--nemesis` timelines (each drawn at its own jittered times:
/// `nemesis/gaps` for the first, `nemesis/gaps/+1`, ... for the others, so `a,b` replays
/// as it always did) merged with `script`. `None`: no faults. [`performer`] builds the
/// nemesis that performs it.
pub fn for_run(
    names: &[String],
    script: Option<&Script>,
    ctx: NemesisContext,
    interval: Duration,
) -> Result<Option<FaultSchedule>, NemesisError> {
    check_timelines(names)?;
    let mut schedules: Vec<FaultSchedule> = Vec::new();
    for (i, line) in timelines(names).iter().enumerate() {
        let stream = if i == 0 {
            NEMESIS_GAPS.to_string()
        } else {
            format!("{NEMESIS_GAPS}/+{i}")
        };
        let gaps = Gaps::named(ctx.seed, &stream, interval);
        schedules.push(random_on(line, ctx.clone(), gaps)?);
    }
    if let Some(script) = script {
        schedules.push(Box::new(ScriptSchedule::new(script.clone())));
    }
    Ok(match schedules.len() {
        0 => None,
        1 => schedules.pop(),
        _ => Some(merge(schedules)),
    })
}

/// A schedule file's steps, round after round.
pub struct ScriptSchedule {
    steps: std::vec::IntoIter<(Duration, FaultOp)>,
    script: Script,
    round: u32,
}

impl ScriptSchedule {
    pub fn new(script: Script) -> ScriptSchedule {
        ScriptSchedule {
            steps: script.steps.clone().into_iter(),
            script,
            round: 0,
        }
    }
}

impl Schedule<FaultOp> for ScriptSchedule {
    fn next_step(&mut self) -> Option<FaultStep> {
        loop {
            if let Some((at, op)) = self.steps.next() {
                let start = self.script.repeat_every.unwrap_or(Duration::ZERO) * self.round;
                return Some(Step { at: start + at, op });
            }
            self.script.repeat_every?;
            self.round = self.round.checked_add(1)?;
            self.steps = self.script.steps.clone().into_iter();
        }
    }
}

/// The names of the faults whose ops `steps` uses (`start-partition` → `partition`), in
/// registry order: what the performing nemesis must be built from.
pub fn fault_names(steps: &[FaultStep]) -> Result<Vec<String>, NemesisError> {
    let ops: Vec<&str> = steps.iter().map(|s| s.op.f.as_str()).collect();
    fault_names_of_ops(&ops)
}

/// The faults performing `ops` (`await-leader` needs none), in registry order.
fn fault_names_of_ops(ops: &[&str]) -> Result<Vec<String>, NemesisError> {
    let mut used = Vec::new();
    for f in ops.iter().filter(|f| **f != AWAIT_LEADER) {
        let owner = crate::FAULTS
            .iter()
            .find(|fault| fault.ops.contains(f))
            .ok_or_else(|| NemesisError::UnknownNemesis {
                name: f.to_string(),
                valid: all_ops().join(", "),
            })?;
        used.push(owner.name);
    }
    Ok(crate::FAULTS
        .iter()
        .filter(|fault| used.contains(&fault.name))
        .map(|fault| fault.name.to_string())
        .collect())
}

/// Every fault op a schedule may use, `await-leader` included.
pub fn all_ops() -> Vec<&'static str> {
    let mut ops: Vec<&str> = crate::FAULTS
        .iter()
        .flat_map(|fault| fault.ops.iter().copied())
        .collect();
    ops.push(AWAIT_LEADER);
    ops
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

    #[test]
    fn plus_separates_timelines_and_comma_the_faults_of_one() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            timelines(&names(&["partition", "kill+clock"])),
            vec![names(&["partition", "kill"]), names(&["clock"])]
        );
        assert_eq!(timelines(&names(&["none"])), Vec::<Vec<String>>::new());
        assert_eq!(
            timelines(&names(&["partition+"])),
            vec![names(&["partition"])]
        );
    }

    fn run_steps(names: &str, seed: u64, secs: u64) -> Vec<FaultStep> {
        let mut s = for_run(
            &[names.to_string()],
            None,
            ctx(seed),
            Duration::from_secs(2),
        )
        .unwrap()
        .unwrap();
        take_until(&mut s, Duration::from_secs(secs))
    }

    #[test]
    fn one_timeline_replays_as_the_random_schedule_always_did() {
        assert_eq!(
            run_steps("partition,kill", 5, 60),
            steps("partition,kill", 5)[..]
                .iter()
                .filter(|s| s.at < Duration::from_secs(60))
                .cloned()
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn timelines_run_side_by_side_overlap_and_replay_by_seed() {
        let a = run_steps("partition+clock", 7, 300);
        assert_eq!(a, run_steps("partition+clock", 7, 300));
        assert_ne!(a, run_steps("partition+clock", 8, 300));
        // Each timeline keeps its own start/stop rhythm ...
        let of = |pred: &dyn Fn(&str) -> bool| a.iter().filter(|s| pred(&s.op.f)).count();
        let partitions = of(&|f| f.ends_with("-partition"));
        let clocks = of(&|f| f.ends_with("-clock"));
        assert!(partitions > 100 && clocks > 100, "{partitions} {clocks}");
        // ... so a clock fault starts while a partition is in force, which one timeline
        // of `partition,clock` does only when its single draw says so.
        let mut partitioned = false;
        let mut overlaps = 0;
        for s in &a {
            match s.op.f.as_str() {
                "start-partition" => partitioned = true,
                "stop-partition" => partitioned = false,
                "bump-clock" | "strobe-clock" | "skew-clock" if partitioned => overlaps += 1,
                _ => {}
            }
        }
        assert!(overlaps > 20, "{overlaps}");
        let err = for_run(
            &["partition+partition,kill".to_string()],
            None,
            ctx(1),
            Duration::from_secs(1),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("two timelines"), "{err}");
    }

    #[test]
    fn a_script_repeats_by_round_and_merges_with_random_faults() {
        let script = Script::parse(
            r#"
            repeat_every = 10.0
            [[step]]
            at = 1.0
            f = "start-partition"
            value = { isolate = ["@leader"] }
            [[step]]
            at = 4.0
            f = "stop-partition"
            "#,
            "s.toml",
            &all_ops(),
        )
        .unwrap();
        let names = ["kill".to_string()];
        let mut s = for_run(&names, Some(&script), ctx(1), Duration::from_secs(3))
            .unwrap()
            .unwrap();
        let nemesis = performer(&names, Some(&script), ctx(1)).unwrap().unwrap();
        assert_eq!(
            run_fault_names(&names, Some(&script)).unwrap(),
            vec!["kill", "partition"]
        );
        let steps = take_until(&mut s, Duration::from_secs(35));
        let scripted: Vec<(u64, &str)> = steps
            .iter()
            .filter(|s| s.op.f.ends_with("-partition"))
            .map(|s| (s.at.as_secs(), s.op.f.as_str()))
            .collect();
        assert_eq!(
            scripted,
            vec![
                (1, "start-partition"),
                (4, "stop-partition"),
                (11, "start-partition"),
                (14, "stop-partition"),
                (21, "start-partition"),
                (24, "stop-partition"),
                (31, "start-partition"),
                (34, "stop-partition")
            ]
        );
        assert!(steps.iter().any(|s| s.op.f == "kill"));
        assert!(steps.windows(2).all(|w| w[0].at <= w[1].at));
        let performs = nemesis.performs();
        for f in ["start-partition", "kill", "await-leader"] {
            assert!(performs.contains(&f), "{performs:?}");
        }
        let mut once: FaultSchedule = Box::new(ScriptSchedule::new(Script {
            repeat_every: None,
            ..script
        }));
        assert_eq!(take_until(&mut once, Duration::MAX).len(), 2);
    }
}
