//! Random streams derived from the run's one seed by name.
//!
//! [`rng_for`]`(seed, name)` is the only way distest turns a seed into randomness. The
//! derivation is part of the replay contract: a seed recorded in `test.json` must give the
//! same op mix and fault schedule in every later version, so it never changes. It is
//! `StdRng::seed_from_u64(seed ^ fnv1a_64(name))`: FNV-1a is stable across Rust versions
//! and platforms, unlike `DefaultHasher`.
//!
//! Names in use (a new stream takes a new name; never reuse or rename one):
//!
//! | name | stream |
//! |---|---|
//! | `workload` | the client op mix (one workload generator shared by all clients) |
//! | `clients/<thread>` | pacing of logical client `<thread>` (stagger, gaps at `--rate`) |
//! | `nemesis/gaps` | the jittered times between random fault steps |
//! | `nemesis/gaps/+<n>` | the same for the n-th further timeline of `--nemesis a+b` (n from 1) |
//! | `partition`, `kill`, `pause`, `clock`, `loss`, `latency`, `membership` | each fault's own draws (which nodes, shapes, offsets) |
//! | `compose` | which of several composed faults moves next |
//! | `script` | the choices of schedule-file selectors (`@follower`) |
//! | `latency-delayer/<start>/<node>` | the jitter of the delayer latency's `<start>`-th start runs on `<node>` |
//!
//! Each fault drawing from its own stream is what keeps `partition`'s draws the same
//! when `kill` is added next to it.

use rand::rngs::StdRng;
use rand::SeedableRng;

/// The stream of the op mix.
pub const WORKLOAD: &str = "workload";
/// The stream of the times between random fault steps.
pub const NEMESIS_GAPS: &str = "nemesis/gaps";

/// The name of client thread `thread`'s pacing stream.
pub fn client(thread: usize) -> String {
    format!("clients/{thread}")
}

/// 64-bit FNV-1a of `name`.
pub fn fnv1a_64(name: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The random stream called `name` of the run seeded with `seed`.
pub fn rng_for(seed: u64, name: &str) -> StdRng {
    StdRng::seed_from_u64(seed ^ fnv1a_64(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_differ_by_name_and_repeat_by_seed() {
        let a: u64 = rng_for(1, "kill").gen();
        let b: u64 = rng_for(1, "pause").gen();
        let c: u64 = rng_for(1, "kill").gen();
        let d: u64 = rng_for(2, "kill").gen();
        assert_ne!(a, b);
        assert_eq!(a, c);
        assert_ne!(a, d);
    }

    /// `rng_for(42, "workload")`'s first u64, as this derivation and rand's `StdRng` give it.
    const PINNED: u64 = 12_285_036_505_191_380_620;

    #[test]
    fn the_derivation_is_pinned() {
        // The replay contract: these values must never change.
        assert_eq!(fnv1a_64(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(rng_for(42, "workload").gen::<u64>(), PINNED);
        let mut pinned = rng_for(7, "clients/0");
        let x: u32 = pinned.gen();
        let mut again = StdRng::seed_from_u64(7 ^ fnv1a_64("clients/0"));
        assert_eq!(x, again.gen::<u32>());
    }
}
