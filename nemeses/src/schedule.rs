//! The seeded schedule: per-fault RNGs derived from the run's seed, the start/stop
//! alternation of one fault, and the choice of which fault moves next when several are
//! composed.
//!
//! Replay is the point: the sequence of ops depends only on the seed, the node names and
//! the ops drawn before, never on timing or on whether an op succeeded.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// At most this many composed faults are in effect at once. Jepsen lets faults overlap,
/// which finds more bugs than strict turns, but with six faults unbounded overlap would
/// mostly leave a cluster that cannot make any progress.
pub const MAX_OPEN_FAULTS: usize = 2;

/// An RNG for the part of the schedule called `name`. Each fault gets its own stream, so
/// adding `kill` to `partition` does not change which partitions are drawn.
pub(crate) fn rng_for(seed: u64, name: &str) -> StdRng {
    // FNV-1a: stable across Rust versions and platforms, unlike `DefaultHasher`.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    StdRng::seed_from_u64(seed ^ hash)
}

/// Start/stop alternation of one fault, beginning with a start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FlipFlop {
    started: bool,
}

impl FlipFlop {
    /// True when the next op is a start; flips the state.
    pub(crate) fn next_is_start(&mut self) -> bool {
        self.started = !self.started;
        self.started
    }

    /// After a heal every fault is stopped, so the next op is a start again.
    pub(crate) fn reset(&mut self) {
        self.started = false;
    }
}

/// Which of the composed faults draws the next op, given which are `open` (started and
/// not yet stopped): any of them while fewer than [`MAX_OPEN_FAULTS`] are open, else one
/// of the open ones, whose next op is then its stop.
pub(crate) fn pick_part(open: &[bool], rng: &mut StdRng) -> usize {
    assert!(!open.is_empty(), "a composed nemesis has at least one part");
    let open_count = open.iter().filter(|o| **o).count();
    if open_count < MAX_OPEN_FAULTS {
        return rng.gen_range(0..open.len());
    }
    let candidates: Vec<usize> = (0..open.len()).filter(|i| open[*i]).collect();
    candidates[rng.gen_range(0..candidates.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flip_flop_starts_with_a_start_and_alternates() {
        let mut ff = FlipFlop::default();
        assert!(ff.next_is_start());
        assert!(!ff.next_is_start());
        assert!(ff.next_is_start());
        ff.reset();
        assert!(ff.next_is_start());
    }

    #[test]
    fn rng_streams_differ_by_name_and_repeat_by_seed() {
        let a: u64 = rng_for(1, "kill").gen();
        let b: u64 = rng_for(1, "pause").gen();
        let c: u64 = rng_for(1, "kill").gen();
        assert_ne!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn pick_part_only_picks_open_parts_at_the_limit() {
        let mut rng = rng_for(3, "compose");
        let open = [true, false, true, false];
        for _ in 0..100 {
            assert!(open[pick_part(&open, &mut rng)]);
        }
    }
}
