//! Numbers derived from a history: per-op latency samples, throughput and latency
//! quantiles over time, and the run's headline figures (ops/s, p50, p99).
//!
//! Quantiles and rates are computed over every op; only the scatter plot is downsampled
//! (see [`downsample`]), so a million-op run draws fast without lying about its tail.

use distest_checkers::{History, OpType};
use std::collections::HashMap;

/// One client op as the plots see it.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub index: u64,
    pub invoke_ns: u64,
    /// `None` when the op never completed (the run ended first).
    pub latency_ns: Option<u64>,
    /// Index into [`Samples::fs`].
    pub f: u16,
    pub outcome: OpType,
}

/// All client ops of a history plus the f names they refer to.
pub struct Samples {
    pub fs: Vec<String>,
    pub samples: Vec<Sample>,
    /// Time of the last op of the history (client or nemesis), the end of the run.
    pub end_ns: u64,
}

/// Distinct f names kept apart in plots; the rest are drawn as `other`.
pub const MAX_FS: usize = 8;

/// The f names of a history as plots number them: ids in order of first appearance
/// while reading ([`Self::id`]), then renumbered by name ([`Self::finish`]) so the same
/// f keeps its color and marker from run to run; past [`MAX_FS`] names, `other`, last.
#[derive(Default)]
pub struct FNames {
    fs: Vec<String>,
    ids: HashMap<String, u16>,
}

impl FNames {
    /// The id of `f` in order of appearance (`MAX_FS` for every f past the first ones).
    pub fn id(&mut self, f: &str) -> u16 {
        if let Some(&id) = self.ids.get(f) {
            return id;
        }
        if self.fs.len() < MAX_FS {
            self.fs.push(f.to_string());
            self.ids.insert(f.to_string(), (self.fs.len() - 1) as u16);
            return (self.fs.len() - 1) as u16;
        }
        if self.fs.len() == MAX_FS {
            self.fs.push("other".to_string());
        }
        MAX_FS as u16
    }

    /// The names in name order (`other` last) and, for each id [`Self::id`] gave, its
    /// id in that order.
    pub fn finish(self) -> (Vec<String>, Vec<u16>) {
        let mut fs = self.fs;
        let named = fs.len().min(MAX_FS);
        let mut order: Vec<usize> = (0..named).collect();
        order.sort_by(|&a, &b| fs[a].cmp(&fs[b]));
        let mut new_id = vec![0u16; fs.len()];
        for (new, &old) in order.iter().enumerate() {
            new_id[old] = new as u16;
        }
        if fs.len() > MAX_FS {
            new_id[MAX_FS] = MAX_FS as u16;
        }
        let mut sorted: Vec<String> = order.iter().map(|&i| fs[i].clone()).collect();
        sorted.extend(fs.drain(named..));
        (sorted, new_id)
    }
}

impl Samples {
    pub fn from_history(history: &History) -> Samples {
        let mut names = FNames::default();
        let mut samples = Vec::with_capacity(history.len() / 2);
        for pair in history.pairs() {
            samples.push(Sample {
                index: pair.invoke.index,
                invoke_ns: pair.invoke.time,
                latency_ns: pair
                    .completion
                    .map(|c| c.time.saturating_sub(pair.invoke.time)),
                f: names.id(&pair.invoke.f),
                outcome: pair.outcome(),
            });
        }
        let (fs, new_id) = names.finish();
        for x in &mut samples {
            x.f = new_id[x.f as usize];
        }
        let end_ns = history.ops().iter().map(|o| o.time).max().unwrap_or(0);
        Samples {
            fs,
            samples,
            end_ns,
        }
    }

    /// The run's length in seconds, never zero (rates divide by it).
    pub fn duration_s(&self) -> f64 {
        (self.end_ns as f64 / 1e9).max(1e-3)
    }
}

/// The `q` quantile (0..=1) of sorted values, nearest-rank.
pub fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Headline figures of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    pub ops: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    pub duration_s: f64,
    /// Successful ops per second over the whole run.
    pub ok_per_s: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl Summary {
    pub fn of(samples: &Samples) -> Summary {
        let mut s = Summary {
            duration_s: samples.duration_s(),
            ..Summary::default()
        };
        let mut ok_latencies = Vec::with_capacity(samples.samples.len());
        for x in &samples.samples {
            s.ops += 1;
            match x.outcome {
                OpType::Ok => {
                    s.ok += 1;
                    ok_latencies.extend(x.latency_ns);
                }
                OpType::Fail => s.fail += 1,
                _ => s.info += 1,
            }
        }
        ok_latencies.sort_unstable();
        s.ok_per_s = s.ok as f64 / s.duration_s;
        s.p50_ms = quantile(&ok_latencies, 0.5).map(ns_to_ms);
        s.p99_ms = quantile(&ok_latencies, 0.99).map(ns_to_ms);
        s
    }
}

pub fn ns_to_ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// Time buckets: a round width chosen so a run has at most ~`target` buckets. The last
/// bucket absorbs the run's tail (it spans one to two widths), so no bucket is a sliver
/// whose rate would be noise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Buckets {
    pub width_ns: u64,
    pub count: usize,
    pub end_ns: u64,
}

impl Buckets {
    pub fn for_run(end_ns: u64, target: usize) -> Buckets {
        let target = target.max(1) as u64;
        let raw = (end_ns / target).max(1);
        // Round up to 1, 2 or 5 times a power of ten so axis ticks and rates read well.
        let mut width_ns = 1u64;
        'outer: while width_ns < u64::MAX / 10 {
            for m in [1, 2, 5] {
                if width_ns * m >= raw {
                    width_ns *= m;
                    break 'outer;
                }
            }
            width_ns *= 10;
        }
        let count = ((end_ns / width_ns) as usize).max(1);
        Buckets {
            width_ns,
            count,
            end_ns,
        }
    }

    pub fn of(&self, t_ns: u64) -> usize {
        ((t_ns / self.width_ns) as usize).min(self.count - 1)
    }

    fn span_ns(&self, i: usize) -> (u64, u64) {
        let start = i as u64 * self.width_ns;
        let end = if i + 1 == self.count {
            self.end_ns.max(start + self.width_ns)
        } else {
            start + self.width_ns
        };
        (start, end)
    }

    /// The middle of bucket `i`, in seconds since the start.
    pub fn mid_s(&self, i: usize) -> f64 {
        let (a, b) = self.span_ns(i);
        (a + b) as f64 / 2e9
    }

    /// The length of bucket `i` in seconds (rates divide by it).
    pub fn width_s(&self, i: usize) -> f64 {
        let (a, b) = self.span_ns(i);
        (b - a) as f64 / 1e9
    }
}

/// Number of buckets plots aim for: fine enough to see a fault, coarse enough to be smooth.
pub const PLOT_BUCKETS: usize = 120;

/// Completions per second in each bucket, one series per (f, ok) and one each for all
/// fails and all infos, by completion time (ops that never completed are not counted).
#[derive(Clone, Debug)]
pub struct Throughput {
    pub buckets: Buckets,
    /// (label, outcome, rate per bucket in ops/s)
    pub series: Vec<(String, OpType, Vec<f64>)>,
}

impl Throughput {
    pub fn of(samples: &Samples) -> Throughput {
        let buckets = Buckets::for_run(samples.end_ns, PLOT_BUCKETS);
        let mut ok = vec![vec![0f64; buckets.count]; samples.fs.len()];
        let mut fail = vec![0f64; buckets.count];
        let mut info = vec![0f64; buckets.count];
        for x in &samples.samples {
            // Ops that never completed have no completion time: they are no rate at all.
            let Some(latency_ns) = x.latency_ns else {
                continue;
            };
            let b = buckets.of(x.invoke_ns + latency_ns);
            match x.outcome {
                OpType::Ok => ok[x.f as usize][b] += 1.0,
                OpType::Fail => fail[b] += 1.0,
                _ => info[b] += 1.0,
            }
        }
        Throughput::from_counts(buckets, &samples.fs, ok, fail, info)
    }

    /// Rates from completions counted per bucket: `ok` per f (in `fs` order), all fails,
    /// all infos.
    pub fn from_counts(
        buckets: Buckets,
        fs: &[String],
        mut ok: Vec<Vec<f64>>,
        mut fail: Vec<f64>,
        mut info: Vec<f64>,
    ) -> Throughput {
        // Counts to rates, each bucket by its own length (the last one is longer).
        for rates in ok.iter_mut().chain([&mut fail, &mut info]) {
            for (i, r) in rates.iter_mut().enumerate() {
                *r /= buckets.width_s(i);
            }
        }
        let mut series: Vec<(String, OpType, Vec<f64>)> = fs
            .iter()
            .zip(ok)
            .map(|(f, rates)| (format!("{f} ok"), OpType::Ok, rates))
            .collect();
        if fail.iter().any(|&r| r > 0.0) {
            series.push(("fail (all f)".into(), OpType::Fail, fail));
        }
        if info.iter().any(|&r| r > 0.0) {
            series.push(("info (all f)".into(), OpType::Info, info));
        }
        Throughput { buckets, series }
    }
}

/// Latency quantiles of ok ops per bucket, by invocation time.
#[derive(Clone, Debug)]
pub struct LatencyQuantiles {
    pub buckets: Buckets,
    /// (label, per bucket: quantile in ms or None when the bucket had no ok op)
    pub series: Vec<(&'static str, Vec<Option<f64>>)>,
}

pub const QUANTILES: &[(&str, f64)] = &[("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)];

impl LatencyQuantiles {
    pub fn of(samples: &Samples) -> LatencyQuantiles {
        let buckets = Buckets::for_run(samples.end_ns, PLOT_BUCKETS);
        let mut per_bucket: Vec<Vec<u64>> = vec![Vec::new(); buckets.count];
        for x in &samples.samples {
            if let (OpType::Ok, Some(l)) = (x.outcome, x.latency_ns) {
                per_bucket[buckets.of(x.invoke_ns)].push(l);
            }
        }
        for b in &mut per_bucket {
            b.sort_unstable();
        }
        let series = QUANTILES
            .iter()
            .map(|&(name, q)| {
                (
                    name,
                    per_bucket
                        .iter()
                        .map(|b| quantile(b, q).map(ns_to_ms))
                        .collect(),
                )
            })
            .collect();
        LatencyQuantiles { buckets, series }
    }
}

/// What the throughput and latency charts and the headline figures are drawn from:
/// computed from every op of a loaded history ([`Plots::of`]), or gathered in one pass
/// over a history too long to load (`crate::light`).
#[derive(Clone, Debug)]
pub struct Plots {
    pub fs: Vec<String>,
    /// Time of the last op of the history, the end of the run.
    pub end_ns: u64,
    pub summary: Summary,
    pub throughput: Throughput,
    pub quantiles: LatencyQuantiles,
    /// The latency scatter's points, at most the budget given.
    pub points: Vec<Sample>,
    /// Client ops that completed, so could be a point of the scatter.
    pub completed: u64,
}

impl Plots {
    /// The plots of every op, the scatter downsampled to `max_points` by [`downsample`].
    pub fn of(samples: &Samples, max_points: usize) -> Plots {
        let (points, _) = downsample(&samples.samples, max_points);
        Plots {
            fs: samples.fs.clone(),
            end_ns: samples.end_ns,
            summary: Summary::of(samples),
            throughput: Throughput::of(samples),
            quantiles: LatencyQuantiles::of(samples),
            points,
            completed: samples
                .samples
                .iter()
                .filter(|s| s.latency_ns.is_some())
                .count() as u64,
        }
    }

    /// The run's length in seconds, never zero (rates divide by it).
    pub fn duration_s(&self) -> f64 {
        (self.end_ns as f64 / 1e9).max(1e-3)
    }

    /// Whether the scatter shows fewer ops than completed.
    pub fn downsampled(&self) -> bool {
        (self.points.len() as u64) < self.completed
    }
}

/// The scatter's points: every fail and info op (up to `max_points`), then ok ops evenly
/// spaced to fill the budget, plus the slowest ok ops so the tail stays visible.
/// Returns the kept samples and whether anything was dropped.
pub fn downsample(samples: &[Sample], max_points: usize) -> (Vec<Sample>, bool) {
    let with_latency: Vec<&Sample> = samples.iter().filter(|s| s.latency_ns.is_some()).collect();
    if with_latency.len() <= max_points {
        return (with_latency.into_iter().copied().collect(), false);
    }
    let (ok, not_ok): (Vec<&Sample>, Vec<&Sample>) = with_latency
        .into_iter()
        .partition(|s| s.outcome == OpType::Ok);
    let mut kept: Vec<Sample> = stride(&not_ok, max_points);
    let room = max_points.saturating_sub(kept.len());
    let slowest_n = (room / 20).min(ok.len());
    let mut by_latency: Vec<&Sample> = ok.clone();
    if slowest_n > 0 {
        by_latency.select_nth_unstable_by_key(ok.len() - slowest_n, |s| s.latency_ns);
        kept.extend(by_latency[ok.len() - slowest_n..].iter().copied().copied());
    }
    kept.extend(stride(&ok, room - slowest_n));
    kept.sort_by_key(|s| s.index);
    kept.dedup_by_key(|s| s.index);
    (kept, true)
}

/// Every k-th element so that at most `n` remain, evenly over the whole slice.
fn stride(items: &[&Sample], n: usize) -> Vec<Sample> {
    if n == 0 {
        return Vec::new();
    }
    if items.len() <= n {
        return items.iter().copied().copied().collect();
    }
    (0..n).map(|i| *items[i * items.len() / n]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(index: u64, outcome: OpType, latency_ns: u64) -> Sample {
        Sample {
            index,
            invoke_ns: index * 1_000,
            latency_ns: Some(latency_ns),
            f: 0,
            outcome,
        }
    }

    #[test]
    fn quantile_is_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(50));
        assert_eq!(quantile(&v, 0.99), Some(99));
        assert_eq!(quantile(&v, 1.0), Some(100));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn buckets_have_round_widths_and_cover_the_run() {
        let b = Buckets::for_run(60_000_000_000, 120);
        assert_eq!(b.width_ns, 500_000_000);
        assert_eq!(b.count, 120);
        assert_eq!(b.of(60_000_000_000), b.count - 1);
        let tiny = Buckets::for_run(0, 120);
        assert_eq!(tiny.count, 1);
        // A tail of 0.3 widths joins the last bucket instead of making a sliver.
        let tail = Buckets::for_run(10_300_000_000, 10);
        assert_eq!((tail.width_ns, tail.count), (2_000_000_000, 5));
        assert!((tail.width_s(4) - 2.3).abs() < 1e-9);
        assert!((tail.mid_s(4) - 9.15).abs() < 1e-9);
    }

    #[test]
    fn f_names_are_ordered_by_name_with_other_last() {
        use distest_checkers::{Op, Process};
        let mut ops = Vec::new();
        for (p, f) in ["write", "read", "cas"]
            .iter()
            .chain(["f3", "f4", "f5", "f6", "f7", "f8", "f9"].iter())
            .enumerate()
        {
            let inv = Op::invoke(Process::Client(p as u64), *f, serde_json::Value::Null);
            ops.push(inv.complete(OpType::Ok, serde_json::Value::Null));
            ops.insert(ops.len() - 1, inv);
        }
        for (i, op) in ops.iter_mut().enumerate() {
            op.index = i as u64;
        }
        let s = Samples::from_history(&History::new(ops).unwrap());
        assert_eq!(
            s.fs,
            vec!["cas", "f3", "f4", "f5", "f6", "f7", "read", "write", "other"]
        );
        let write = s.samples.iter().find(|x| x.index == 0).unwrap();
        assert_eq!(s.fs[write.f as usize], "write");
        let f9 = s.samples.last().unwrap();
        assert_eq!(s.fs[f9.f as usize], "other");
    }

    #[test]
    fn throughput_is_completions_per_second_per_bucket() {
        let samples = Samples {
            fs: vec!["write".into()],
            samples: (0..100).map(|i| sample(i, OpType::Ok, 1_000)).collect(),
            end_ns: 1_000_000_000,
        };
        // 100 ops invoked within the first 0.1 ms, in the first 10 ms bucket: 10,000 ops/s.
        let t = Throughput::of(&samples);
        assert_eq!(t.buckets.width_ns, 10_000_000);
        assert!(
            (t.series[0].2[0] - 10_000.0).abs() < 1e-6,
            "{}",
            t.series[0].2[0]
        );
        assert_eq!(
            t.series.len(),
            1,
            "no fail or info series when there are none"
        );
    }

    #[test]
    fn downsample_keeps_every_failure_and_the_slowest_ops_within_budget() {
        let mut all: Vec<Sample> = (0..100_000).map(|i| sample(i, OpType::Ok, 1_000)).collect();
        all[777] = sample(777, OpType::Fail, 5);
        all[888] = sample(888, OpType::Info, 5);
        all[999].latency_ns = Some(9_999_999);
        let (kept, dropped) = downsample(&all, 2_000);
        assert!(dropped);
        assert!(kept.len() <= 2_000, "{}", kept.len());
        for i in [777, 888, 999] {
            assert!(kept.iter().any(|s| s.index == i), "op {i} was dropped");
        }
    }

    #[test]
    fn downsample_keeps_everything_under_budget() {
        let all: Vec<Sample> = (0..10).map(|i| sample(i, OpType::Ok, 1)).collect();
        let (kept, dropped) = downsample(&all, 100);
        assert_eq!(kept.len(), 10);
        assert!(!dropped);
    }
}
