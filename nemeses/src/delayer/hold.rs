//! The delayer's pure core: which held packet to let go when.
//!
//! Each packet admitted is held until `arrival + delay + u`, `u` drawn uniformly from
//! `[-jitter, +jitter]` (never before its arrival). Packets leave in order of those due
//! times, so with jitter a later packet can leave before an earlier one: that is the
//! reordering the fault promises, and [`HoldStats::reordered`] counts it. Nothing here
//! reads a clock or touches a socket: time comes in as arguments, so the schedule is
//! testable to the microsecond.
//!
//! The hold is bounded: at [`HoldConfig::limit`] packets held, a new packet is handed back
//! at once ([`Admit::PassNow`]) and counted in [`HoldStats::passed_when_full`], so a flood
//! costs neither unbounded memory nor silently dropped traffic.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::time::{Duration, Instant};

/// How long to hold packets and how many at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HoldConfig {
    pub delay: Duration,
    /// Each packet's hold is `delay ± jitter`, uniformly; `jitter <= delay` keeps it ≥ 0.
    pub jitter: Duration,
    /// Most packets held at once; more pass at once.
    pub limit: usize,
}

/// What happened to an admitted packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit<T> {
    /// Held; it comes out of [`Hold::release_due`] once due.
    Held,
    /// The hold is full: let this packet go now, undelayed.
    PassNow(T),
}

/// What the delayer did, as written to its stats file and reported by `stop-latency`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HoldStats {
    /// Packets that reached the delayer.
    pub received: u64,
    /// Packets held for their delay and then let go.
    pub delayed: u64,
    /// Packets let go undelayed because `limit` packets were already held.
    pub passed_when_full: u64,
    /// Packets let go while a packet that arrived before them was still held.
    pub reordered: u64,
    /// Most packets held at once.
    pub max_held: u64,
    /// How late packets left after their due time (waiting for a CPU, mostly), µs: the
    /// median, the 99th percentile (upper bucket edges: 10 µs wide below 1 ms, 1 ms wide
    /// above) and the worst.
    pub late_p50_us: u64,
    pub late_p99_us: u64,
    pub late_max_us: u64,
}

/// Fine buckets of 10 µs below 1 ms, coarse ones of 1 ms below 1 s, one beyond: a fixed
/// 9 KiB whatever the traffic.
const FINE_BUCKETS: usize = 100;
const COARSE_BUCKETS: usize = 999;

/// A histogram of how late packets left.
#[derive(Clone)]
struct Lateness {
    buckets: Box<[u64; FINE_BUCKETS + COARSE_BUCKETS + 1]>,
    count: u64,
    max_us: u64,
}

impl Lateness {
    fn new() -> Lateness {
        Lateness {
            buckets: Box::new([0; FINE_BUCKETS + COARSE_BUCKETS + 1]),
            count: 0,
            max_us: 0,
        }
    }

    fn record(&mut self, late: Duration) {
        let us = late.as_micros().min(u128::from(u64::MAX)) as u64;
        let bucket = if us < 1_000 {
            (us / 10) as usize
        } else {
            (FINE_BUCKETS - 1 + (us / 1_000) as usize).min(FINE_BUCKETS + COARSE_BUCKETS)
        };
        self.buckets[bucket] += 1;
        self.count += 1;
        self.max_us = self.max_us.max(us);
    }

    /// The upper edge (µs) of the bucket holding the `q`-quantile; 0 with no samples.
    fn quantile_us(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((self.count as f64 * q).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let edge = if i < FINE_BUCKETS {
                    (i as u64 + 1) * 10
                } else {
                    (i - FINE_BUCKETS + 2) as u64 * 1_000
                };
                return edge.min(self.max_us);
            }
        }
        self.max_us
    }
}

struct Entry<T> {
    due: Instant,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// Packets held until due, earliest due first.
pub struct Hold<T> {
    config: HoldConfig,
    rng: StdRng,
    heap: BinaryHeap<Reverse<Entry<T>>>,
    /// Arrival numbers of the held packets: a release is out of order when a smaller one
    /// is still here.
    held_seqs: BTreeSet<u64>,
    next_seq: u64,
    stats: HoldStats,
    lateness: Lateness,
}

impl<T> Hold<T> {
    pub fn new(config: HoldConfig, seed: u64) -> Hold<T> {
        assert!(config.limit > 0, "a hold must be able to hold a packet");
        assert!(
            config.jitter <= config.delay,
            "jitter beyond the delay would hold packets for negative times"
        );
        Hold {
            config,
            rng: StdRng::seed_from_u64(seed),
            heap: BinaryHeap::with_capacity(config.limit.min(1 << 16)),
            held_seqs: BTreeSet::new(),
            next_seq: 0,
            stats: HoldStats::default(),
            lateness: Lateness::new(),
        }
    }

    /// Takes a packet that arrived at `now`.
    pub fn admit(&mut self, now: Instant, item: T) -> Admit<T> {
        self.stats.received += 1;
        if self.heap.len() >= self.config.limit {
            self.stats.passed_when_full += 1;
            return Admit::PassNow(item);
        }
        let hold = self.draw_hold();
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse(Entry {
            due: now + hold,
            seq,
            item,
        }));
        self.held_seqs.insert(seq);
        self.stats.max_held = self.stats.max_held.max(self.heap.len() as u64);
        debug_assert_eq!(self.heap.len(), self.held_seqs.len());
        Admit::Held
    }

    fn draw_hold(&mut self) -> Duration {
        let delay_us = self.config.delay.as_micros() as i64;
        let jitter_us = self.config.jitter.as_micros() as i64;
        let offset_us = if jitter_us > 0 {
            self.rng.gen_range(-jitter_us..=jitter_us)
        } else {
            0
        };
        Duration::from_micros((delay_us + offset_us).max(0) as u64)
    }

    /// When the next held packet is due, if any is held.
    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(e)| e.due)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Appends every packet due at `now` to `out`, earliest due first.
    pub fn release_due(&mut self, now: Instant, out: &mut Vec<T>) {
        while self.heap.peek().is_some_and(|Reverse(e)| e.due <= now) {
            out.push(self.pop(Some(now)));
        }
    }

    /// Appends every held packet to `out`, earliest due first (shutdown: nothing is lost;
    /// these leave early, so they do not count as late).
    pub fn drain(&mut self, out: &mut Vec<T>) {
        while !self.heap.is_empty() {
            out.push(self.pop(None));
        }
    }

    fn pop(&mut self, now: Option<Instant>) -> T {
        let Reverse(entry) = self
            .heap
            .pop()
            .expect("pop is only called on a non-empty hold");
        if let Some(now) = now {
            self.lateness
                .record(now.saturating_duration_since(entry.due));
        }
        let first = self.held_seqs.pop_first().expect("one seq per held packet");
        if first != entry.seq {
            self.stats.reordered += 1;
            self.held_seqs.remove(&entry.seq);
            self.held_seqs.insert(first);
        }
        self.stats.delayed += 1;
        entry.item
    }

    pub fn stats(&self) -> HoldStats {
        HoldStats {
            late_p50_us: self.lateness.quantile_us(0.5),
            late_p99_us: self.lateness.quantile_us(0.99),
            late_max_us: self.lateness.max_us,
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(delay_ms: u64, jitter_ms: u64, limit: usize) -> HoldConfig {
        HoldConfig {
            delay: Duration::from_millis(delay_ms),
            jitter: Duration::from_millis(jitter_ms),
            limit,
        }
    }

    #[test]
    fn without_jitter_packets_leave_in_order_exactly_one_delay_later() {
        let t0 = Instant::now();
        let mut hold = Hold::new(config(50, 0, 10), 1);
        for i in 0..5u64 {
            assert_eq!(hold.admit(t0 + Duration::from_millis(i), i), Admit::Held);
        }
        let mut out = Vec::new();
        hold.release_due(t0 + Duration::from_micros(49_999), &mut out);
        assert!(out.is_empty(), "nothing leaves before its delay");
        assert_eq!(hold.next_due(), Some(t0 + Duration::from_millis(50)));
        hold.release_due(t0 + Duration::from_millis(52), &mut out);
        assert_eq!(out, vec![0, 1, 2]);
        hold.release_due(t0 + Duration::from_millis(60), &mut out);
        assert_eq!(out, vec![0, 1, 2, 3, 4]);
        let stats = hold.stats();
        assert_eq!(
            (
                stats.received,
                stats.delayed,
                stats.reordered,
                stats.max_held
            ),
            (5, 5, 0, 5)
        );
        assert!(hold.is_empty() && hold.next_due().is_none());
    }

    #[test]
    fn jitter_keeps_every_hold_within_delay_plus_minus_jitter_and_reorders() {
        let t0 = Instant::now();
        let mut hold = Hold::new(config(50, 20, 10_000), 7);
        // One packet every 100 µs: with ±20 ms jitter, neighbours often swap.
        for i in 0..2_000u64 {
            hold.admit(t0 + Duration::from_micros(100 * i), i);
        }
        let mut released: Vec<(u64, Instant)> = Vec::new();
        let mut now = t0;
        let mut out = Vec::new();
        while !hold.is_empty() {
            now = hold.next_due().unwrap().max(now);
            hold.release_due(now, &mut out);
            released.extend(out.drain(..).map(|i| (i, now)));
        }
        for (i, at) in &released {
            let held = *at - (t0 + Duration::from_micros(100 * i));
            assert!(
                held >= Duration::from_millis(30) && held <= Duration::from_millis(70),
                "packet {i} held {held:?}"
            );
        }
        let out_of_order = released.windows(2).filter(|w| w[1].0 < w[0].0).count();
        let stats = hold.stats();
        assert!(out_of_order > 100, "{out_of_order}");
        assert!(stats.reordered >= out_of_order as u64, "{stats:?}");
        assert_eq!(stats.delayed, 2_000);
    }

    #[test]
    fn reordered_counts_packets_that_overtake_an_earlier_one() {
        let t0 = Instant::now();
        let mut hold = Hold::new(config(0, 0, 10), 1);
        // Zero delay: due at arrival; arrivals given out of time order to force overtaking.
        hold.admit(t0 + Duration::from_millis(5), "a");
        hold.admit(t0 + Duration::from_millis(1), "b");
        hold.admit(t0 + Duration::from_millis(9), "c");
        let mut out = Vec::new();
        hold.drain(&mut out);
        assert_eq!(out, vec!["b", "a", "c"]);
        assert_eq!(
            hold.stats().reordered,
            1,
            "only b overtook a packet still held"
        );
    }

    #[test]
    fn a_full_hold_passes_packets_at_once_and_counts_them() {
        let t0 = Instant::now();
        let mut hold = Hold::new(config(1_000, 0, 3), 1);
        for i in 0..3 {
            assert_eq!(hold.admit(t0, i), Admit::Held);
        }
        assert_eq!(hold.admit(t0, 3), Admit::PassNow(3));
        assert_eq!(hold.admit(t0, 4), Admit::PassNow(4));
        assert_eq!(hold.len(), 3);
        let mut out = Vec::new();
        hold.release_due(t0 + Duration::from_secs(1), &mut out);
        assert_eq!(hold.admit(t0 + Duration::from_secs(1), 5), Admit::Held);
        let stats = hold.stats();
        assert_eq!(
            (stats.received, stats.passed_when_full, stats.max_held),
            (6, 2, 3)
        );
    }

    #[test]
    fn lateness_is_measured_from_the_due_time() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let us = Duration::from_micros;
        let mut hold = Hold::new(config(10, 0, 1_000), 1);
        let mut out = Vec::new();
        // 98 packets leave 25 µs late, one 3.5 ms late, one 2 s late.
        for i in 0..98u64 {
            hold.admit(t0, i);
        }
        hold.release_due(t0 + ms(10) + us(25), &mut out);
        hold.admit(t0 + ms(20), 98);
        hold.release_due(t0 + ms(30) + us(3_500), &mut out);
        hold.admit(t0 + ms(100), 99);
        hold.release_due(t0 + ms(110) + ms(2_000), &mut out);
        assert_eq!(out.len(), 100);
        let stats = hold.stats();
        assert_eq!(
            (stats.late_p50_us, stats.late_p99_us, stats.late_max_us),
            (30, 4_000, 2_000_000),
            "{stats:?}"
        );
        let mut drained = Hold::new(config(10, 0, 4), 1);
        drained.admit(t0, 1);
        drained.drain(&mut out);
        assert_eq!(
            drained.stats().late_max_us,
            0,
            "drained packets are not late"
        );
    }

    #[test]
    fn zero_delay_releases_in_the_same_round() {
        let t0 = Instant::now();
        let mut hold = Hold::new(config(0, 0, 4), 1);
        hold.admit(t0, 1);
        let mut out = Vec::new();
        hold.release_due(t0, &mut out);
        assert_eq!(out, vec![1]);
    }
}
