//! Schedules as data: timed steps, and streams of them that compose.
//!
//! A [`Step`] is "at `at` after the main phase began, do `op`". A [`Schedule`] yields
//! steps in time order; the orchestrator waits for each step's time and performs it, and
//! stops taking steps when the main phase ends. What the op is (a fault, in practice) is
//! the caller's type: the nemesis schedule is `Schedule<FaultOp>` (see
//! `distest_nemeses::schedule`). Building blocks:
//!
//! - [`Steps`]: a fixed list (a scripted schedule, read from a file or written in a test);
//! - [`Drawn`]: ops drawn one by one (from a seeded source) at the times of [`Gaps`],
//!   Jepsen's "a random fault every interval, with jitter";
//! - [`Merge`]: several schedules interleaved by time, so their steps overlap.

use crate::seed::{rng_for, NEMESIS_GAPS};
use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One timed step: `op`, due `at` after the main phase began.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step<T> {
    pub at: Duration,
    pub op: T,
}

/// A stream of steps in time order (each step's `at` at or after the previous one's).
/// `None` means the schedule has no more steps; a random schedule never ends, the main
/// phase's end does.
pub trait Schedule<T>: Send {
    fn next_step(&mut self) -> Option<Step<T>>;

    /// The steps due before `end`, for tests and dry runs (a schedule may be endless).
    fn take_until(&mut self, end: Duration) -> Vec<Step<T>>
    where
        Self: Sized,
    {
        take_until(self, end)
    }
}

/// [`Schedule::take_until`] for trait objects.
pub fn take_until<T>(schedule: &mut dyn Schedule<T>, end: Duration) -> Vec<Step<T>> {
    let mut steps = Vec::new();
    while let Some(step) = schedule.next_step() {
        if step.at >= end {
            break;
        }
        steps.push(step);
    }
    steps
}

impl<T> Schedule<T> for Box<dyn Schedule<T>> {
    fn next_step(&mut self) -> Option<Step<T>> {
        (**self).next_step()
    }
}

/// Jittered times: each gap is uniform in `[interval/2, 3·interval/2)` (Jepsen's
/// `stagger`), drawn from the stream `nemesis/gaps` of the run's seed.
pub struct Gaps {
    rng: StdRng,
    interval: Duration,
    now: Duration,
}

impl Gaps {
    pub fn new(seed: u64, interval: Duration) -> Gaps {
        Gaps::named(seed, NEMESIS_GAPS, interval)
    }

    /// Gaps from the stream `name`, for a schedule that needs its own (a composed one).
    pub fn named(seed: u64, name: &str, interval: Duration) -> Gaps {
        Gaps {
            rng: rng_for(seed, name),
            interval,
            now: Duration::ZERO,
        }
    }

    /// The time of the next step.
    pub fn next_at(&mut self) -> Duration {
        self.now += self.interval.mul_f64(self.rng.gen_range(0.5..1.5));
        self.now
    }
}

/// Ops drawn one at a time by `draw`, due at the times of `gaps`.
pub struct Drawn<F> {
    gaps: Gaps,
    draw: F,
}

impl<T, F: FnMut() -> T + Send> Drawn<F> {
    pub fn new(gaps: Gaps, draw: F) -> Drawn<F> {
        Drawn { gaps, draw }
    }
}

impl<T, F: FnMut() -> T + Send> Schedule<T> for Drawn<F> {
    fn next_step(&mut self) -> Option<Step<T>> {
        let at = self.gaps.next_at();
        Some(Step {
            at,
            op: (self.draw)(),
        })
    }
}

/// A fixed list of steps, sorted by time (stable: steps at the same time keep their order).
pub struct Steps<T> {
    steps: std::collections::VecDeque<Step<T>>,
}

impl<T> Steps<T> {
    pub fn new(mut steps: Vec<Step<T>>) -> Steps<T> {
        steps.sort_by_key(|s| s.at);
        Steps {
            steps: steps.into(),
        }
    }
}

impl<T: Send> Schedule<T> for Steps<T> {
    fn next_step(&mut self) -> Option<Step<T>> {
        self.steps.pop_front()
    }
}

/// One schedule of a [`Merge`] with its next step, drawn ahead.
type Part<T> = (Box<dyn Schedule<T>>, Option<Step<T>>);

/// Several schedules interleaved by time; on a tie the earlier-listed schedule goes first.
pub struct Merge<T> {
    parts: Vec<Part<T>>,
}

impl<T: Send> Merge<T> {
    pub fn new(parts: Vec<Box<dyn Schedule<T>>>) -> Merge<T> {
        Merge {
            parts: parts
                .into_iter()
                .map(|mut s| {
                    let head = s.next_step();
                    (s, head)
                })
                .collect(),
        }
    }
}

impl<T: Send> Schedule<T> for Merge<T> {
    fn next_step(&mut self) -> Option<Step<T>> {
        let earliest = self
            .parts
            .iter()
            .enumerate()
            .filter_map(|(i, (_, head))| head.as_ref().map(|h| (h.at, i)))
            .min()?
            .1;
        let (schedule, head) = &mut self.parts[earliest];
        let step = head.take();
        *head = schedule.next_step();
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn gaps_are_jittered_around_the_interval_and_replay_by_seed() {
        let times = |seed| {
            let mut g = Gaps::new(seed, secs(2.0));
            (0..100).map(|_| g.next_at()).collect::<Vec<_>>()
        };
        let a = times(5);
        assert_eq!(a, times(5));
        assert_ne!(a, times(6));
        let mut last = Duration::ZERO;
        for t in &a {
            let gap = *t - last;
            assert!(gap >= secs(1.0) && gap < secs(3.0), "{gap:?}");
            last = *t;
        }
    }

    #[test]
    fn drawn_steps_pair_each_draw_with_a_time() {
        let mut n = 0;
        let mut s = Drawn::new(Gaps::new(1, secs(1.0)), move || {
            n += 1;
            n
        });
        let steps = s.take_until(secs(10.0));
        assert!(steps.len() >= 6, "{}", steps.len());
        assert_eq!(
            steps.iter().map(|s| s.op).collect::<Vec<_>>(),
            (1..=steps.len()).collect::<Vec<_>>()
        );
        assert!(steps.windows(2).all(|w| w[0].at <= w[1].at));
    }

    #[test]
    fn merged_schedules_interleave_by_time_and_keep_order_on_ties() {
        let a = Steps::new(vec![
            Step {
                at: secs(0.0),
                op: "a0",
            },
            Step {
                at: secs(2.0),
                op: "a2",
            },
        ]);
        let b = Steps::new(vec![
            Step {
                at: secs(2.0),
                op: "b2",
            },
            Step {
                at: secs(1.0),
                op: "b1",
            },
            Step {
                at: secs(5.0),
                op: "b5",
            },
        ]);
        let mut merged = Merge::new(vec![Box::new(a), Box::new(b)]);
        let ops: Vec<&str> = merged
            .take_until(secs(4.0))
            .into_iter()
            .map(|s| s.op)
            .collect();
        assert_eq!(ops, vec!["a0", "b1", "a2", "b2"]);
        assert_eq!(
            merged.next_step().map(|s| s.op),
            None,
            "b5 was consumed by take_until"
        );
    }
}
