//! When a client sends its next op: a random stagger before the first one, exponential
//! (Poisson) gaps at `--rate`, and backoff while ops keep failing.

use crate::seed::{client, rng_for};
use rand::rngs::StdRng;
use rand::Rng;
use std::time::Duration;

/// Longest stagger before a client's first op.
pub const MAX_STAGGER: Duration = Duration::from_secs(5);
/// Longest gap between two ops of one client at a given rate.
pub const MAX_GAP: Duration = Duration::from_secs(10);
/// Backoff after the n-th failure in a row is `3 ms << n`, n at most this (192 ms).
pub const MAX_BACKOFF_STEPS: u32 = 6;

/// The pacing of one logical client thread, drawn from its own stream `clients/<thread>`.
pub struct Pace {
    /// Ops per second for this client; `None` = as fast as the system answers.
    rate: Option<f64>,
    rng: StdRng,
    failures_in_a_row: u32,
}

impl Pace {
    /// Pacing for client thread `thread` of a run seeded with `seed`, sending
    /// `rate_per_client` ops/s (or as fast as possible).
    pub fn for_client(seed: u64, thread: usize, rate_per_client: Option<f64>) -> Pace {
        Pace {
            rate: rate_per_client.map(|r| r.max(1e-3)),
            rng: rng_for(seed, &client(thread)),
            failures_in_a_row: 0,
        }
    }

    /// How long to wait before the first op, so clients at a rate do not move in lockstep.
    pub fn stagger(&mut self) -> Duration {
        match self.rate {
            Some(rate) => {
                let wait = self.rng.gen_range(0.0..1.0 / rate);
                Duration::from_secs_f64(wait).min(MAX_STAGGER)
            }
            None => Duration::ZERO,
        }
    }

    /// How long to wait after an op that succeeded (`ok`) or not, before the next.
    ///
    /// A node that refuses at once (no leader in a minority partition, connection refused)
    /// would otherwise be hammered in a tight loop, flooding the history with failures that
    /// say nothing new: back off exponentially while failures repeat. At a rate, add an
    /// exponential gap, which gives a Poisson arrival process.
    pub fn after(&mut self, ok: bool) -> Duration {
        let mut wait = Duration::ZERO;
        if ok {
            self.failures_in_a_row = 0;
        } else {
            self.failures_in_a_row = (self.failures_in_a_row + 1).min(MAX_BACKOFF_STEPS);
            wait += Duration::from_millis(3 << self.failures_in_a_row);
        }
        if let Some(rate) = self.rate {
            let gap = -self.rng.gen_range(f64::EPSILON..1.0f64).ln() / rate;
            wait += Duration::from_secs_f64(gap).min(MAX_GAP);
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_rate_only_failures_wait_and_the_backoff_is_bounded() {
        let mut pace = Pace::for_client(1, 0, None);
        assert_eq!(pace.stagger(), Duration::ZERO);
        assert_eq!(pace.after(true), Duration::ZERO);
        let waits: Vec<Duration> = (0..10).map(|_| pace.after(false)).collect();
        assert_eq!(waits[0], Duration::from_millis(6));
        assert_eq!(
            *waits.last().unwrap(),
            Duration::from_millis(3 << MAX_BACKOFF_STEPS)
        );
        assert_eq!(pace.after(true), Duration::ZERO);
    }

    #[test]
    fn gaps_at_a_rate_average_to_the_rate_and_replay_by_seed() {
        let gaps = |seed| {
            let mut pace = Pace::for_client(seed, 3, Some(100.0));
            (0..2000).map(|_| pace.after(true)).collect::<Vec<_>>()
        };
        let a = gaps(9);
        assert_eq!(a, gaps(9));
        assert_ne!(a, gaps(10));
        let mean = a.iter().map(Duration::as_secs_f64).sum::<f64>() / a.len() as f64;
        assert!((mean - 0.01).abs() < 0.002, "mean gap {mean}");
    }
}
