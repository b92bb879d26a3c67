//! The light form of a run's report, for a history too long to load: one pass over the
//! file with the checkers' streaming reader (`format::stream_history`), in memory bounded
//! whatever the history's length.
//!
//! What a page needs from every op is gathered exactly where it is cheap and bounded by
//! design where it is not:
//! - counts (per f and outcome, per node) and throughput per time bucket: exact;
//! - latency quantiles per time bucket: from a log histogram with 64 sub-buckets per
//!   power of two (within 0.8 %), the maximum exact;
//! - the latency scatter: per time bucket the slowest ok ops, an even sample of the fail
//!   and info ops and one of the ok ops, at most [`MAX_SCATTER_POINTS`] in all, so the
//!   slowest ops are never sampled away;
//! - nemesis ops: all of them (they are few; at most [`MAX_NEMESIS_OPS`]);
//! - client ops: only those within [`CONTEXT_OPS`] of an op the results name (a checker's
//!   evidence, `first_anomaly`), in at most [`MAX_WINDOWS`] windows, plus their partners.
//!
//! The kept ops form a [`History`] whose ops keep their original indices
//! ([`History::subsequence`]); the page finds ops in it by index
//! ([`crate::timeline::position`]).

use crate::analysis::{
    ns_to_ms, Buckets, FNames, LatencyQuantiles, Plots, Sample, Summary, Throughput, PLOT_BUCKETS,
    QUANTILES,
};
use crate::charts::MAX_SCATTER_POINTS;
use crate::run_data::MAX_NODES;
use distest_checkers::format::stream_history;
use distest_checkers::{History, HistoryError, Op, OpType, Process};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Histories larger than this are reported in the light form (unless [`LIGHT_BYTES_ENV`]
/// says otherwise): loading one takes about 300 bytes of memory per op.
pub const DEFAULT_LIGHT_BYTES: u64 = 256 << 20;
/// Environment variable overriding [`DEFAULT_LIGHT_BYTES`] (bytes; `0` makes every
/// report light, which tests use).
pub const LIGHT_BYTES_ENV: &str = "DISTEST_REPORT_LIGHT_BYTES";
/// Ops kept before and after each op of interest.
pub const CONTEXT_OPS: u64 = 120;
/// Windows of ops kept around ops of interest, the earliest first.
pub const MAX_WINDOWS: usize = 16;
/// Nemesis ops kept (a fault every few seconds for a day is ~50,000; the bands and the
/// event table need only their start and stop).
pub const MAX_NEMESIS_OPS: usize = 100_000;
/// Bytes read from the end of the file to find when the run ended.
const TAIL_BYTES: u64 = 256 << 10;

/// Size above which a history is reported in the light form.
pub fn threshold_bytes() -> u64 {
    std::env::var(LIGHT_BYTES_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_LIGHT_BYTES)
}

/// What one pass over a history gathered.
#[derive(Clone, Debug)]
pub struct Light {
    pub plots: Plots,
    /// Ops read (client and nemesis).
    pub ops: u64,
    pub size_bytes: u64,
    /// Index ranges of client ops kept (inclusive), around the ops of interest.
    pub windows: Vec<(u64, u64)>,
    /// More ops of interest than [`MAX_WINDOWS`] windows hold.
    pub windows_cut: bool,
    /// More nemesis ops than [`MAX_NEMESIS_OPS`].
    pub nemesis_cut: bool,
    /// Client ops by f: ok, fail, info (a missing completion counts as info).
    pub per_f: Vec<(String, [u64; 3])>,
    /// Client ops by the node they went to (the invocation's `node`), same columns.
    pub per_node: Vec<(String, [u64; 3])>,
    /// Completions without an invocation, ignored.
    pub orphans: u64,
    /// Why reading stopped before the end of the file, one sentence.
    pub error: Option<String>,
    /// The file ends in a line without its newline (a run killed while writing it),
    /// which was left out.
    pub torn_tail: bool,
}

impl Light {
    /// What the page must say about being drawn from this summary, one sentence each:
    /// how much the plots show and what the timelines leave out; then anything wrong.
    pub fn notes(&self) -> Vec<String> {
        let p = &self.plots;
        let timelines = if self.windows.is_empty() {
            "the results name no op, so no timeline is drawn".to_string()
        } else {
            format!(
                "timelines show only the ops within {CONTEXT_OPS} history entries of the ops the results name ({} window(s){})",
                self.windows.len(),
                if self.windows_cut {
                    ", the earliest; more anomalies lie beyond them"
                } else {
                    ""
                }
            )
        };
        let mut notes = vec![format!(
            "The history is long ({} MB, {} ops), so this page was drawn from one pass over it in bounded memory: counts and throughput are exact; the latency plot is downsampled to {} of {} completed ops (in each time bucket the slowest ok ops, a sample of the fail and info ops and an even sample of the rest), its p50/p95/p99 lines within 1 % and its max exact; {timelines}.",
            self.size_bytes >> 20,
            self.ops,
            p.points.len(),
            p.completed,
        )];
        if self.nemesis_cut {
            notes.push(format!("The history has more than {MAX_NEMESIS_OPS} nemesis ops; only the first {MAX_NEMESIS_OPS} are drawn."));
        }
        if self.orphans > 0 {
            notes.push(format!(
                "{} completion(s) have no invocation before them and were not counted; `distest check` says what is wrong with the history.",
                self.orphans
            ));
        }
        if self.torn_tail {
            notes.push("The history's last line is cut short (the run was killed while writing it), so that op was left out.".into());
        }
        if let Some(e) = &self.error {
            notes.push(format!(
                "The history could not be read to its end ({e}); the page shows the {} ops before that.",
                self.ops
            ));
        }
        notes
    }
}

/// Reads `path` in one pass (two when its last lines do not say when the run ended),
/// keeping the ops within [`CONTEXT_OPS`] of the indices in `focus`. Returns the summary
/// and the ops kept, or why nothing could be read.
pub fn read(
    path: &Path,
    size_bytes: u64,
    focus: &BTreeSet<u64>,
) -> Result<(Light, Option<History>), String> {
    let (windows, windows_cut) = windows_around(focus);
    // One read of the tail gives both where the whole lines end and when the run ended;
    // only a tail without a newline needs the backward scan.
    let tail = read_tail(path, size_bytes);
    let whole = match tail.iter().rposition(|&b| b == b'\n') {
        Some(i) => size_bytes - tail.len() as u64 + i as u64 + 1,
        None => whole_lines_bytes(path, size_bytes),
    };
    let mut buckets = Buckets::for_run(tail_end_ns(&tail, size_bytes), PLOT_BUCKETS);
    let mut pass = Pass::read(path, whole, buckets, &windows)?;
    let actual = Buckets::for_run(pass.end_ns, PLOT_BUCKETS);
    if actual != buckets {
        // The last lines were not the latest (or not JSON): the buckets must cover the
        // real run, so read again with them. Still bounded, twice the time.
        buckets = actual;
        pass = Pass::read(path, whole, buckets, &windows)?;
    }
    let (mut light, kept) = pass.finish(buckets, size_bytes, windows_cut);
    light.torn_tail = whole < size_bytes;
    Ok((light, kept))
}

/// Merged index ranges of [`CONTEXT_OPS`] around each op of interest, at most
/// [`MAX_WINDOWS`]; and whether some were left out.
fn windows_around(focus: &BTreeSet<u64>) -> (Vec<(u64, u64)>, bool) {
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut cut = false;
    for &i in focus {
        let (lo, hi) = (i.saturating_sub(CONTEXT_OPS), i.saturating_add(CONTEXT_OPS));
        let full = out.len() == MAX_WINDOWS;
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ if full => cut = true,
            _ => out.push((lo, hi)),
        }
    }
    (out, cut)
}

/// The length of the file up to its last newline: a last line without one was cut
/// short by a killed writer and is left out. The whole file when it has no newline
/// (then it is no history, and the reader says why).
fn whole_lines_bytes(path: &Path, size_bytes: u64) -> u64 {
    const CHUNK: u64 = 64 << 10;
    let Ok(mut file) = std::fs::File::open(path) else {
        return size_bytes;
    };
    let mut end = size_bytes;
    let mut chunk = Vec::with_capacity(CHUNK as usize);
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        chunk.clear();
        if file.seek(SeekFrom::Start(start)).is_err()
            || (&mut file)
                .take(end - start)
                .read_to_end(&mut chunk)
                .is_err()
        {
            return size_bytes;
        }
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return start + i as u64 + 1;
        }
        end = start;
    }
    size_bytes
}

/// The last [`TAIL_BYTES`] of a file of `size_bytes`; empty when they cannot be read.
fn read_tail(path: &Path, size_bytes: u64) -> Vec<u8> {
    let mut tail = Vec::new();
    let read = std::fs::File::open(path).and_then(|mut file| {
        file.seek(SeekFrom::Start(size_bytes.saturating_sub(TAIL_BYTES)))?;
        file.take(TAIL_BYTES).read_to_end(&mut tail)
    });
    if read.is_err() {
        tail.clear();
    }
    tail
}

/// The latest op time among the whole lines of `tail`, the end of a JSONL file of
/// `size_bytes`; 0 if none parses.
fn tail_end_ns(tail: &[u8], size_bytes: u64) -> u64 {
    tail.split(|&b| b == b'\n')
        .skip(usize::from(size_bytes > TAIL_BYTES)) // the first piece may be a line's end
        .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
        .filter_map(|v| v.get("time").and_then(serde_json::Value::as_u64))
        .max()
        .unwrap_or(0)
}

/// Histogram of latencies: exact below 64 ns, then 64 sub-buckets per power of two.
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
const HIST_LEN: usize = (SUB + (64 - SUB_BITS as u64) * SUB) as usize;

fn hist_slot(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let e = 63 - v.leading_zeros();
    let m = (v >> (e - SUB_BITS)) & (SUB - 1);
    (SUB + u64::from(e - SUB_BITS) * SUB + m) as usize
}

/// The middle of slot `s`'s range.
fn hist_value(s: usize) -> u64 {
    let s = s as u64;
    if s < SUB {
        return s;
    }
    let (e, m) = ((s - SUB) / SUB, (s - SUB) % SUB);
    let width = 1u64 << e;
    ((SUB + m) << e) + width / 2
}

/// Latencies of ok ops in one time bucket (or the whole run).
#[derive(Clone, Default)]
struct Histogram {
    /// Empty until the first value.
    counts: Vec<u64>,
    n: u64,
    min: u64,
    max: u64,
}

impl Histogram {
    fn add(&mut self, v: u64) {
        if self.counts.is_empty() {
            self.counts = vec![0; HIST_LEN];
            self.min = v;
        }
        self.counts[hist_slot(v)] += 1;
        self.n += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// The histogram of both: one bucket's latencies added to another's.
    fn merge(mut self, other: &Histogram) -> Histogram {
        if other.n == 0 {
            return self;
        }
        if self.n == 0 {
            return other.clone();
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.n += other.n;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self
    }

    /// Nearest-rank quantile, as [`crate::analysis::quantile`] over the exact values, to
    /// within a slot; the maximum is exact.
    fn quantile(&self, q: f64) -> Option<u64> {
        if self.n == 0 {
            return None;
        }
        if q >= 1.0 {
            return Some(self.max);
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0u64;
        for (slot, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(hist_value(slot).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }
}

/// At most `cap` items, an even sample of all offered (reservoir sampling, seeded so the
/// same file gives the same page).
struct Reservoir {
    cap: usize,
    seen: u64,
    kept: Vec<Sample>,
}

impl Reservoir {
    fn new(cap: usize) -> Reservoir {
        Reservoir {
            cap,
            seen: 0,
            kept: Vec::new(),
        }
    }

    fn offer(&mut self, s: Sample, rng: &mut u64) {
        self.seen += 1;
        if self.kept.len() < self.cap {
            self.kept.push(s);
            return;
        }
        let j = splitmix(rng) % self.seen;
        if (j as usize) < self.cap {
            self.kept[j as usize] = s;
        }
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A sample ordered by latency (then index), for the heap of the slowest.
#[derive(Clone, Copy)]
struct Slow(Sample);

impl Slow {
    fn key(&self) -> (u64, u64) {
        (self.0.latency_ns.unwrap_or(0), self.0.index)
    }
}
impl PartialEq for Slow {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Slow {}
impl PartialOrd for Slow {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Slow {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// The scatter's candidates in one time bucket.
struct Points {
    slowest_cap: usize,
    /// Min-heap: the fastest of the slowest on top, replaced by anything slower.
    slowest: BinaryHeap<Reverse<Slow>>,
    ok: Reservoir,
    not_ok: Reservoir,
}

impl Points {
    fn new(budget: usize) -> Points {
        let slowest_cap = (budget / 10).max(1);
        let not_ok = budget * 2 / 5;
        Points {
            slowest_cap,
            slowest: BinaryHeap::new(),
            ok: Reservoir::new(budget.saturating_sub(slowest_cap + not_ok)),
            not_ok: Reservoir::new(not_ok),
        }
    }

    fn offer(&mut self, s: Sample, rng: &mut u64) {
        if s.outcome != OpType::Ok {
            self.not_ok.offer(s, rng);
            return;
        }
        let slow = Slow(s);
        if self.slowest.len() < self.slowest_cap {
            self.slowest.push(Reverse(slow));
        } else if self.slowest.peek().is_some_and(|top| top.0 < slow) {
            self.slowest.pop();
            self.slowest.push(Reverse(slow));
        }
        self.ok.offer(s, rng);
    }
}

/// An invocation waiting for its completion.
struct Open {
    op: Op,
    f: u16,
    kept: bool,
}

/// The state of one pass over the file.
struct Pass {
    windows: Vec<(u64, u64)>,
    names: FNames,
    buckets: Buckets,
    open: HashMap<Process, Open>,
    /// Completions per bucket: ok by f id (order of appearance), fail, info.
    ok: Vec<Vec<f64>>,
    fail: Vec<f64>,
    info: Vec<f64>,
    latency: Vec<Histogram>,
    points: Vec<Points>,
    rng: u64,
    counts: Vec<[u64; 3]>,
    per_node: BTreeMap<String, [u64; 3]>,
    ops: u64,
    completed: u64,
    orphans: u64,
    end_ns: u64,
    kept: Vec<Op>,
    kept_nemesis: usize,
    nemesis_cut: bool,
    error: Option<String>,
}

fn column(outcome: OpType) -> usize {
    match outcome {
        OpType::Ok => 0,
        OpType::Fail => 1,
        _ => 2,
    }
}

impl Pass {
    /// Reads the first `bytes` of `path`.
    fn read(
        path: &Path,
        bytes: u64,
        buckets: Buckets,
        windows: &[(u64, u64)],
    ) -> Result<Pass, String> {
        let budget = (MAX_SCATTER_POINTS / buckets.count).max(1);
        let mut pass = Pass {
            windows: windows.to_vec(),
            names: FNames::default(),
            buckets,
            open: HashMap::new(),
            ok: Vec::new(),
            fail: vec![0.0; buckets.count],
            info: vec![0.0; buckets.count],
            latency: vec![Histogram::default(); buckets.count],
            points: (0..buckets.count).map(|_| Points::new(budget)).collect(),
            rng: 0x5EED,
            counts: Vec::new(),
            per_node: BTreeMap::new(),
            ops: 0,
            completed: 0,
            orphans: 0,
            end_ns: 0,
            kept: Vec::new(),
            kept_nemesis: 0,
            nemesis_cut: false,
            error: None,
        };
        let file = std::fs::File::open(path)
            .map_err(|e| format!("{} could not be opened ({e})", path.display()))?;
        let read = stream_history(
            std::io::BufReader::with_capacity(1 << 20, file.take(bytes)),
            None,
            &path.display().to_string(),
            None,
            |op| {
                pass.take(op);
                Ok::<(), HistoryError>(())
            },
        );
        if let Err(e) = read {
            if pass.ops == 0 {
                return Err(e.to_string());
            }
            pass.error = Some(e.to_string());
        }
        Ok(pass)
    }

    fn in_window(windows: &[(u64, u64)], index: u64) -> bool {
        windows.iter().any(|&(lo, hi)| lo <= index && index <= hi)
    }

    fn take(&mut self, op: Op) {
        self.ops += 1;
        self.end_ns = self.end_ns.max(op.time);
        if !op.is_client() {
            if self.kept_nemesis < MAX_NEMESIS_OPS {
                self.kept_nemesis += 1;
                self.kept.push(op);
            } else {
                self.nemesis_cut = true;
            }
            return;
        }
        let kept = Self::in_window(&self.windows, op.index);
        if op.is_invoke() {
            let f = self.names.id(&op.f);
            if kept {
                self.kept.push(op.clone());
            }
            // A process invoking while in flight breaks the rules (the checkers say
            // so); its earlier invocation is counted as never completed.
            if let Some(prev) = self.open.insert(op.process, Open { op, f, kept }) {
                self.unfinished(prev);
            }
            return;
        }
        let Some(inv) = self.open.remove(&op.process) else {
            self.orphans += 1;
            return;
        };
        let latency_ns = op.time.saturating_sub(inv.op.time);
        let sample = Sample {
            index: inv.op.index,
            invoke_ns: inv.op.time,
            latency_ns: Some(latency_ns),
            f: inv.f,
            outcome: op.kind,
        };
        self.completed += 1;
        self.count(&inv, op.kind);
        let (done, invoked) = (self.buckets.of(op.time), self.buckets.of(inv.op.time));
        match op.kind {
            OpType::Ok => {
                let f = inv.f as usize;
                if self.ok.len() <= f {
                    self.ok.resize(f + 1, vec![0.0; self.buckets.count]);
                }
                self.ok[f][done] += 1.0;
                self.latency[invoked].add(latency_ns);
            }
            OpType::Fail => self.fail[done] += 1.0,
            _ => self.info[done] += 1.0,
        }
        self.points[invoked].offer(sample, &mut self.rng);
        if kept || inv.kept {
            if !inv.kept {
                self.kept.push(inv.op);
            }
            self.kept.push(op);
        }
    }

    fn count(&mut self, inv: &Open, outcome: OpType) {
        let f = inv.f as usize;
        if self.counts.len() <= f {
            self.counts.resize(f + 1, [0; 3]);
        }
        self.counts[f][column(outcome)] += 1;
        if let Some(node) = &inv.op.node {
            let key = if self.per_node.len() < MAX_NODES || self.per_node.contains_key(node) {
                node.clone()
            } else {
                "other".to_string()
            };
            self.per_node.entry(key).or_default()[column(outcome)] += 1;
        }
    }

    /// An invocation that never completed: counted as info, drawn nowhere (as in the
    /// full form, it has no latency and no completion time).
    fn unfinished(&mut self, inv: Open) {
        self.count(&inv, OpType::Info);
    }

    fn finish(
        mut self,
        buckets: Buckets,
        size_bytes: u64,
        windows_cut: bool,
    ) -> (Light, Option<History>) {
        for (_, inv) in std::mem::take(&mut self.open) {
            self.unfinished(inv);
        }
        let (fs, new_id) = self.names.finish();
        // Ids of appearance to ids by name, for every table kept by f.
        let mut ok = vec![vec![0.0; buckets.count]; fs.len()];
        for (old, rates) in self.ok.into_iter().enumerate() {
            ok[new_id[old] as usize] = rates;
        }
        let mut counts = vec![[0u64; 3]; fs.len()];
        for (old, c) in self.counts.into_iter().enumerate() {
            counts[new_id[old] as usize] = c;
        }
        let mut points: Vec<Sample> = Vec::new();
        for p in self.points {
            points.extend(p.slowest.into_iter().map(|Reverse(Slow(s))| s));
            points.extend(p.ok.kept);
            points.extend(p.not_ok.kept);
        }
        for s in &mut points {
            s.f = new_id[s.f as usize];
        }
        points.sort_by_key(|s| s.index);
        points.dedup_by_key(|s| s.index);
        let (ok_n, fail_n, info_n) = counts
            .iter()
            .fold((0, 0, 0), |(a, b, c), x| (a + x[0], b + x[1], c + x[2]));
        let duration_s = (self.end_ns as f64 / 1e9).max(1e-3);
        // Every invocation is counted once: completed, superseded or still open at the end.
        let all_ok = self
            .latency
            .iter()
            .fold(Histogram::default(), Histogram::merge);
        let summary = Summary {
            ops: ok_n + fail_n + info_n,
            ok: ok_n,
            fail: fail_n,
            info: info_n,
            duration_s,
            ok_per_s: ok_n as f64 / duration_s,
            p50_ms: all_ok.quantile(0.5).map(ns_to_ms),
            p99_ms: all_ok.quantile(0.99).map(ns_to_ms),
        };
        let quantiles = LatencyQuantiles {
            buckets,
            series: QUANTILES
                .iter()
                .map(|&(name, q)| {
                    (
                        name,
                        self.latency
                            .iter()
                            .map(|h| h.quantile(q).map(ns_to_ms))
                            .collect(),
                    )
                })
                .collect(),
        };
        let plots = Plots {
            throughput: Throughput::from_counts(buckets, &fs, ok, self.fail, self.info),
            fs: fs.clone(),
            end_ns: self.end_ns,
            summary,
            quantiles,
            points,
            completed: self.completed,
        };
        self.kept.sort_by_key(|o| o.index);
        self.kept.dedup_by_key(|o| o.index);
        let history = History::subsequence(self.kept).ok();
        let light = Light {
            plots,
            ops: self.ops,
            size_bytes,
            windows: self.windows,
            windows_cut,
            nemesis_cut: self.nemesis_cut,
            per_f: fs.into_iter().zip(counts).collect(),
            per_node: self.per_node.into_iter().collect(),
            orphans: self.orphans,
            error: self.error,
            torn_tail: false,
        };
        (light, history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_slots_are_exact_below_64_and_within_a_64th_above() {
        for v in [
            0u64,
            1,
            63,
            64,
            65,
            127,
            128,
            1000,
            1_234_567,
            u64::MAX / 3,
            u64::MAX,
        ] {
            let mid = hist_value(hist_slot(v));
            let err = mid.abs_diff(v) as f64 / v.max(1) as f64;
            assert!(err <= 1.0 / 64.0, "{v}: {mid} ({err})");
            assert!(hist_slot(v) < HIST_LEN);
        }
        assert_eq!(hist_value(hist_slot(42)), 42);
    }

    #[test]
    fn histogram_quantiles_are_near_the_exact_ones() {
        let mut h = Histogram::default();
        let mut exact: Vec<u64> = (1..=10_000u64).map(|i| i * 997 % 1_000_003).collect();
        for &v in &exact {
            h.add(v);
        }
        exact.sort_unstable();
        for q in [0.5, 0.95, 0.99] {
            let want = crate::analysis::quantile(&exact, q).unwrap() as f64;
            let got = h.quantile(q).unwrap() as f64;
            assert!((got - want).abs() / want < 0.02, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.quantile(1.0), exact.last().copied());
    }

    #[test]
    fn merged_histograms_are_the_histogram_of_all_values() {
        let values: Vec<u64> = (1..=5_000u64).map(|i| i * 7919 % 200_003).collect();
        let mut whole = Histogram::default();
        let mut parts = vec![Histogram::default(); 7];
        for (i, &v) in values.iter().enumerate() {
            whole.add(v);
            // Some parts stay empty.
            parts[(i * i) % 5].add(v);
        }
        let merged = parts.iter().fold(Histogram::default(), Histogram::merge);
        assert_eq!(merged.n, whole.n);
        assert_eq!((merged.min, merged.max), (whole.min, whole.max));
        assert_eq!(merged.counts, whole.counts);
        for q in [0.5, 0.99, 1.0] {
            assert_eq!(merged.quantile(q), whole.quantile(q));
        }
        assert_eq!(
            Histogram::default()
                .merge(&Histogram::default())
                .quantile(0.5),
            None
        );
    }

    #[test]
    fn windows_merge_and_are_capped() {
        let focus: BTreeSet<u64> = [5, 100, 1_000, 1_050].into_iter().collect();
        let (w, cut) = windows_around(&focus);
        assert_eq!(w, vec![(0, 220), (880, 1_170)]);
        assert!(!cut);
        let many: BTreeSet<u64> = (0..100).map(|i| i * 10_000).collect();
        let (w, cut) = windows_around(&many);
        assert_eq!(w.len(), MAX_WINDOWS);
        assert!(cut);
    }
}
