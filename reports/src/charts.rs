//! The run's two charts, throughput and latency over time, built from [`Plots`] with
//! the fault intervals as bands; shared by the run page and the comparison.

use crate::analysis::Plots;
use crate::error::ReportError;
use crate::faults::FaultInterval;
use crate::plot::{
    chart_svg, palette, segments, Band, ChartSpec, Decor, Mark, Series, Shape, YAxis, FAIL_RGB,
    INFO_RGB, OK_RGB,
};
use distest_checkers::OpType;
use plotters::style::RGBColor;

/// Points drawn in the latency scatter at most (fail and info ops first).
pub const MAX_SCATTER_POINTS: usize = 20_000;

/// Bands for the fault intervals, with a tooltip saying what and when.
pub fn bands(intervals: &[FaultInterval]) -> Vec<Band> {
    intervals
        .iter()
        .map(|i| {
            let (s, e) = (i.start_ns as f64 / 1e9, i.end_ns as f64 / 1e9);
            Band {
                start_s: s,
                end_s: e,
                kind: i.kind.clone(),
                title: format!(
                    "{} from {:.2} s to {:.2} s{}: {}",
                    i.kind,
                    s,
                    e,
                    if i.open_at_end {
                        " (still active at the end)"
                    } else {
                        ""
                    },
                    i.detail
                ),
            }
        })
        .collect()
}

/// Completions per second over time, per f (ok) and for all fails and infos.
pub fn throughput_svg(plots: &Plots, decor: &Decor) -> Result<String, ReportError> {
    let t = &plots.throughput;
    let mut max = 0f64;
    let series: Vec<Series> = t
        .series
        .iter()
        .enumerate()
        .map(|(i, (label, outcome, rates))| {
            max = rates.iter().copied().fold(max, f64::max);
            Series {
                label: label.clone(),
                color: outcome_or(*outcome, palette(i)),
                mark: Mark::Line {
                    segments: segments(
                        rates
                            .iter()
                            .enumerate()
                            .map(|(b, r)| (t.buckets.mid_s(b), Some(*r))),
                    ),
                    width: 2,
                },
            }
        })
        .collect();
    chart_svg(
        &ChartSpec {
            name: "throughput",
            title: "Throughput",
            x_max_s: plots.duration_s(),
            y: YAxis::Linear { max: max * 1.1 },
            y_desc: "throughput (ops/s)",
            decor,
        },
        &series,
    )
}

fn outcome_or(outcome: OpType, ok_color: RGBColor) -> RGBColor {
    match outcome {
        OpType::Ok => ok_color,
        OpType::Fail => FAIL_RGB,
        _ => INFO_RGB,
    }
}

/// Latency scatter (color = outcome, shape = f) of the plots' points with quantile lines
/// of ok ops.
pub fn latency_svg(plots: &Plots, decor: &Decor) -> Result<String, ReportError> {
    let (points, q) = (&plots.points, &plots.quantiles);
    let mut series = Vec::new();
    let (mut lo, mut hi) = (f64::MAX, 0f64);
    for outcome in [OpType::Ok, OpType::Fail, OpType::Info] {
        for (f_id, f) in plots.fs.iter().enumerate() {
            let pts: Vec<(f64, f64)> = points
                .iter()
                .filter(|s| s.outcome == outcome && s.f as usize == f_id)
                .filter_map(|s| Some((s.invoke_ns as f64 / 1e9, s.latency_ns? as f64 / 1e6)))
                .collect();
            if pts.is_empty() {
                continue;
            }
            for &(_, y) in &pts {
                lo = lo.min(y);
                hi = hi.max(y);
            }
            series.push(Series {
                label: format!("{f} {outcome}"),
                color: outcome_or(outcome, OK_RGB),
                mark: Mark::Points {
                    points: pts,
                    shape: Shape::nth(f_id),
                },
            });
        }
    }
    const Q_COLORS: [RGBColor; 4] = [
        RGBColor(0x11, 0x11, 0x11),
        RGBColor(0x55, 0x55, 0x99),
        RGBColor(0x99, 0x33, 0x99),
        RGBColor(0x99, 0x99, 0x99),
    ];
    for (i, (name, values)) in q.series.iter().enumerate() {
        series.push(Series {
            label: format!("{name} (ok)"),
            color: Q_COLORS[i % Q_COLORS.len()],
            mark: Mark::Line {
                segments: segments(
                    values
                        .iter()
                        .enumerate()
                        .map(|(b, v)| (q.buckets.mid_s(b), *v)),
                ),
                width: if i == 0 { 2 } else { 1 },
            },
        });
    }
    if lo > hi {
        (lo, hi) = (0.1, 1.0);
    }
    chart_svg(
        &ChartSpec {
            name: "latency",
            title: "Latency by invocation time",
            x_max_s: plots.duration_s(),
            y: YAxis::Log {
                min: lo.max(1e-3),
                max: hi,
            },
            y_desc: "latency (ms)",
            decor,
        },
        &series,
    )
}
