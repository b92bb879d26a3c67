//! SVG charts drawn with plotters: latency scatter with quantile lines, throughput, and
//! the overlaid per-run charts of a comparison.
//!
//! Every chart shares one frame (time since start on x, a labelled unit on y, a legend
//! column on the right) and the nemesis' active intervals drawn as shaded bands behind
//! the data. Bands are inserted as our own `<rect class="band">` elements (with a
//! `<title>` tooltip) so they sit behind the points and tests can find them. A log y
//! axis is drawn by plotting log10 of the value and labelling ticks with 10^v.

use crate::error::ReportError;
use crate::html::esc;
use plotters::prelude::*;
use std::fmt::Write;

/// Chart size in pixels.
pub const WIDTH_PX: u32 = 1180;
pub const HEIGHT_PX: u32 = 400;
/// Width of the legend column on the right.
const LEGEND_PX: u32 = 190;
/// Legend entries drawn; more would not fit the chart's height.
const MAX_LEGEND: usize = 20;

/// A nemesis interval to shade, in seconds since the start.
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    pub start_s: f64,
    pub end_s: f64,
    pub kind: String,
    /// Tooltip text (untrusted: escaped when written).
    pub title: String,
}

/// A moment to point at (where a checker found an anomaly), drawn as a vertical line
/// above the data.
#[derive(Clone, Debug, PartialEq)]
pub struct Marker {
    pub at_s: f64,
    /// Tooltip text (untrusted: escaped when written).
    pub title: String,
}

/// What is drawn over the time axis besides the data: fault bands and anomaly markers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decor {
    pub bands: Vec<Band>,
    pub markers: Vec<Marker>,
}

/// Outcome colors, shared with the timeline: ok blue, fail red, info orange (Jepsen's).
pub const OK_RGB: RGBColor = RGBColor(0x3d, 0x85, 0xc6);
pub const FAIL_RGB: RGBColor = RGBColor(0xd6, 0x27, 0x28);
pub const INFO_RGB: RGBColor = RGBColor(0xf0, 0x8c, 0x00);

/// A palette for f names and runs, distinguishable and not red/orange (kept for outcomes).
pub const PALETTE: &[RGBColor] = &[
    RGBColor(0x3d, 0x85, 0xc6),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x1f, 0x3a, 0x93),
];

pub fn palette(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// The band color of a fault kind: fixed for the common kinds, hashed for the rest.
pub fn fault_color(kind: &str) -> &'static str {
    const OTHERS: &[&str] = &["#9edae5", "#c5b0d5", "#dbdb8d", "#c49c94", "#f7b6d2"];
    match kind {
        "partition" => "#7aa6d6",
        "kill" => "#e07b7b",
        "pause" => "#a58bd1",
        "clock" => "#e3c35a",
        "loss" => "#5fb7a8",
        "latency" => "#8fc97a",
        other => OTHERS[other.bytes().map(usize::from).sum::<usize>() % OTHERS.len()],
    }
}

pub fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// Marker shapes, to tell f names apart when color already means the outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Circle,
    Triangle,
    Cross,
    Square,
}

impl Shape {
    pub fn nth(i: usize) -> Shape {
        [Shape::Circle, Shape::Triangle, Shape::Cross, Shape::Square][i % 4]
    }
}

/// What a series draws.
pub enum Mark {
    /// Polylines; a gap (no data) splits a line into segments.
    Line {
        segments: Vec<Vec<(f64, f64)>>,
        width: u32,
    },
    Points {
        points: Vec<(f64, f64)>,
        shape: Shape,
    },
}

pub struct Series {
    pub label: String,
    pub color: RGBColor,
    pub mark: Mark,
}

/// The y axis: a linear range, or a log range (both bounds > 0).
#[derive(Clone, Copy, Debug)]
pub enum YAxis {
    Linear { max: f64 },
    Log { min: f64, max: f64 },
}

pub struct ChartSpec<'a> {
    /// Which chart, for error messages and the SVG's accessible name.
    pub name: &'static str,
    pub title: &'a str,
    pub x_max_s: f64,
    pub y: YAxis,
    /// The y axis description, with its unit: "latency (ms)".
    pub y_desc: &'a str,
    pub decor: &'a Decor,
}

pub const X_DESC: &str = "time since start (s)";

fn plot_err(chart: &'static str) -> impl Fn(Box<dyn std::fmt::Display>) -> ReportError {
    move |e| ReportError::Plot {
        chart,
        message: e.to_string(),
    }
}

fn boxed<E: std::fmt::Display + 'static>(e: E) -> Box<dyn std::fmt::Display> {
    Box::new(e)
}

/// Draws `series` in the frame of `spec`; returns the SVG document as a string.
pub fn chart_svg(spec: &ChartSpec<'_>, series: &[Series]) -> Result<String, ReportError> {
    let err = plot_err(spec.name);
    let x_max = if spec.x_max_s.is_finite() && spec.x_max_s > 0.0 {
        spec.x_max_s
    } else {
        1.0
    };
    let (y_lo, y_hi, log) = match spec.y {
        YAxis::Linear { max } => (0.0, nice_max(max), false),
        YAxis::Log { min, max } => {
            let lo = min.max(1e-6).log10().floor();
            let hi = max.max(min * 10.0).max(1e-6).log10().ceil().max(lo + 1.0);
            (lo, hi, true)
        }
    };
    let ty = |y: f64| {
        if log {
            y.max(10f64.powf(y_lo)).log10()
        } else {
            y
        }
    };
    let fmt_y = move |v: &f64| {
        if log {
            short_number(10f64.powf(*v))
        } else {
            short_number(*v)
        }
    };
    let mut svg = String::new();
    let mut bands_px = Vec::new();
    let mut markers_px = Vec::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, HEIGHT_PX)).into_drawing_area();
        let (plot_area, legend_area) = root.split_horizontally(WIDTH_PX - LEGEND_PX);
        let mut chart = ChartBuilder::on(&plot_area)
            .caption(spec.title, ("sans-serif", 17))
            .margin(10)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max, y_lo..y_hi)
            .map_err(|e| err(boxed(e)))?;
        // On a log axis, one label per decade (1, 10, 100 ms) instead of 3.16, 31.6...
        let y_labels = if log { (y_hi - y_lo) as usize + 1 } else { 10 };
        chart
            .configure_mesh()
            .y_labels(y_labels.clamp(2, 12))
            .x_desc(X_DESC)
            .y_desc(spec.y_desc)
            .y_label_formatter(&fmt_y)
            .x_label_formatter(&|v| short_number(*v))
            .light_line_style(RGBColor(0xf0, 0xf0, 0xf0))
            .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
            .axis_desc_style(("sans-serif", 14))
            .draw()
            .map_err(|e| err(boxed(e)))?;
        for b in &spec.decor.bands {
            let s = b.start_s.clamp(0.0, x_max);
            let e = b.end_s.clamp(s, x_max);
            let (x0, y0) = chart.backend_coord(&(s, y_hi));
            let (x1, y1) = chart.backend_coord(&(e, y_lo));
            bands_px.push((b, x0, y0, (x1 - x0).max(2), y1 - y0));
        }
        for m in &spec.decor.markers {
            let (x, y0) = chart.backend_coord(&(m.at_s.clamp(0.0, x_max), y_hi));
            let (_, y1) = chart.backend_coord(&(m.at_s.clamp(0.0, x_max), y_lo));
            markers_px.push((m, x, y0, y1));
        }
        for s in series {
            match &s.mark {
                Mark::Line { segments, width } => {
                    for seg in segments {
                        chart
                            .draw_series(LineSeries::new(
                                seg.iter().map(|&(x, y)| (x, ty(y))),
                                s.color.stroke_width(*width),
                            ))
                            .map_err(|e| err(boxed(e)))?;
                    }
                }
                Mark::Points { points, shape } => {
                    let style = ShapeStyle::from(&s.color.mix(0.55)).filled();
                    let pts = points.iter().map(|&(x, y)| (x, ty(y)));
                    draw_points(&mut chart, pts, *shape, style).map_err(&err)?;
                }
            }
        }
        draw_legend(&legend_area, series).map_err(&err)?;
        root.present().map_err(|e| err(boxed(e)))?;
    }
    Ok(insert_markers(
        insert_bands(svg, spec, &bands_px),
        &markers_px,
    ))
}

/// Adds the anomaly markers just before `</svg>`, so they are painted over the data.
fn insert_markers(mut svg: String, markers: &[(&Marker, i32, i32, i32)]) -> String {
    let Some(close) = svg.rfind("</svg>") else {
        return svg;
    };
    let mut extra = String::new();
    for (m, x, y0, y1) in markers {
        let _ = writeln!(
            extra,
            "<g class=\"marker\"><title>{}</title><line x1=\"{x}\" y1=\"{y0}\" x2=\"{x}\" y2=\"{y1}\" stroke=\"#cf222e\" stroke-width=\"2\" stroke-dasharray=\"6 3\"/>\
             <polygon points=\"{},{y0} {},{y0} {x},{}\" fill=\"#cf222e\"/></g>",
            esc(&m.title),
            x - 6,
            x + 6,
            y0 + 9
        );
    }
    svg.insert_str(close, &extra);
    svg
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn draw_points(
    chart: &mut Chart<'_, '_>,
    pts: impl Iterator<Item = (f64, f64)>,
    shape: Shape,
    style: ShapeStyle,
) -> Result<(), Box<dyn std::fmt::Display>> {
    match shape {
        Shape::Circle => chart
            .draw_series(pts.map(|p| Circle::new(p, 2, style)))
            .map(|_| ())
            .map_err(boxed),
        Shape::Triangle => chart
            .draw_series(pts.map(|p| TriangleMarker::new(p, 3, style)))
            .map(|_| ())
            .map_err(boxed),
        Shape::Cross => chart
            .draw_series(pts.map(|p| Cross::new(p, 3, style.stroke_width(1))))
            .map(|_| ())
            .map_err(boxed),
        Shape::Square => chart
            .draw_series(
                pts.map(|p| EmptyElement::at(p) + Rectangle::new([(-2, -2), (2, 2)], style)),
            )
            .map(|_| ())
            .map_err(boxed),
    }
}

fn draw_legend(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    series: &[Series],
) -> Result<(), Box<dyn std::fmt::Display>> {
    let font = ("sans-serif", 13).into_font().color(&BLACK);
    let mut y = 44;
    let mut seen: Vec<&str> = Vec::new();
    for s in series {
        if seen.contains(&s.label.as_str()) {
            continue;
        }
        if seen.len() == MAX_LEGEND {
            area.draw(&Text::new("…", (10, y), font.clone()))
                .map_err(boxed)?;
            break;
        }
        seen.push(&s.label);
        let style = ShapeStyle::from(&s.color).filled();
        let (mx, my) = (14, y + 7);
        match &s.mark {
            Mark::Line { width, .. } => area
                .draw(&PathElement::new(
                    vec![(4, my), (24, my)],
                    s.color.stroke_width((*width).max(2)),
                ))
                .map_err(boxed)?,
            Mark::Points { shape, .. } => match shape {
                Shape::Circle => area.draw(&Circle::new((mx, my), 4, style)).map_err(boxed)?,
                Shape::Triangle => area
                    .draw(&TriangleMarker::new((mx, my), 5, style))
                    .map_err(boxed)?,
                Shape::Cross => area
                    .draw(&Cross::new((mx, my), 4, style.stroke_width(2)))
                    .map_err(boxed)?,
                Shape::Square => area
                    .draw(&Rectangle::new([(mx - 4, my - 4), (mx + 4, my + 4)], style))
                    .map_err(boxed)?,
            },
        }
        area.draw(&Text::new(
            crate::html::truncate(&s.label, 22),
            (32, y),
            font.clone(),
        ))
        .map_err(boxed)?;
        y += 19;
    }
    Ok(())
}

/// Adds a white background and the fault bands right after the `<svg>` tag, so they are
/// painted first, behind grid and data.
fn insert_bands(
    svg: String,
    spec: &ChartSpec<'_>,
    bands: &[(&Band, i32, i32, i32, i32)],
) -> String {
    let Some(open_end) = svg.find('>') else {
        return svg;
    };
    let mut extra = format!(
        "\n<title>{}</title>\n<rect class=\"bg\" x=\"0\" y=\"0\" width=\"{WIDTH_PX}\" height=\"{HEIGHT_PX}\" fill=\"#ffffff\"/>\n",
        esc(spec.title)
    );
    for (b, x, y, w, h) in bands {
        let _ = writeln!(
            extra,
            "<rect class=\"band\" data-kind=\"{kind}\" x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" fill=\"{color}\" fill-opacity=\"0.22\"><title>{title}</title></rect>\
             <text class=\"band-label\" x=\"{tx}\" y=\"{ty}\" font-size=\"10\" font-family=\"sans-serif\" fill=\"#555\">{kind}</text>",
            kind = esc(&b.kind),
            color = fault_color(&b.kind),
            title = esc(&b.title),
            tx = x + 2,
            ty = y + 10,
        );
    }
    let mut out = String::with_capacity(svg.len() + extra.len());
    out.push_str(&svg[..=open_end]);
    out.push_str(&extra);
    out.push_str(&svg[open_end + 1..]);
    out
}

/// The next round number (1, 2, 5 × 10^k) at or above `v`, at least 1.
pub fn nice_max(v: f64) -> f64 {
    if !v.is_finite() || v <= 1.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

/// Axis tick text: few significant digits, no trailing zeros.
pub fn short_number(v: f64) -> String {
    let a = v.abs();
    let s = if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Splits `values` (one per bucket, `None` = no data) into line segments at the gaps.
pub fn segments(points: impl Iterator<Item = (f64, Option<f64>)>) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (x, y) in points {
        match y {
            Some(y) if y.is_finite() => out.last_mut().expect("never empty").push((x, y)),
            _ => {
                if !out.last().expect("never empty").is_empty() {
                    out.push(Vec::new());
                }
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(decor: &Decor) -> ChartSpec<'_> {
        ChartSpec {
            name: "test",
            title: "Latency <of> ops",
            x_max_s: 10.0,
            y: YAxis::Log {
                min: 0.5,
                max: 200.0,
            },
            y_desc: "latency (ms)",
            decor,
        }
    }

    #[test]
    fn chart_has_one_band_per_interval_axis_units_and_escaped_labels() {
        let bands = vec![
            Band {
                start_s: 1.0,
                end_s: 2.0,
                kind: "partition".into(),
                title: "a</svg>".into(),
            },
            Band {
                start_s: 5.0,
                end_s: 20.0,
                kind: "kill".into(),
                title: "n1".into(),
            },
        ];
        let series = vec![
            Series {
                label: "read ok <x>".into(),
                color: OK_RGB,
                mark: Mark::Points {
                    points: vec![(1.0, 1.0), (2.0, 100.0)],
                    shape: Shape::Triangle,
                },
            },
            Series {
                label: "p99".into(),
                color: BLACK,
                mark: Mark::Line {
                    segments: vec![vec![(0.0, 1.0), (9.0, 2.0)]],
                    width: 2,
                },
            },
        ];
        let decor = Decor {
            bands,
            markers: vec![Marker {
                at_s: 3.0,
                title: "anomaly <here>".into(),
            }],
        };
        let svg = chart_svg(&spec(&decor), &series).unwrap();
        assert_eq!(svg.matches("class=\"marker\"").count(), 1);
        assert!(svg.contains("anomaly &lt;here&gt;"));
        assert!(
            svg.find("class=\"marker\"") > svg.find("<polyline"),
            "markers go over the data"
        );
        assert_eq!(svg.matches("class=\"band\"").count(), 2, "{svg}");
        assert!(svg.contains("data-kind=\"partition\""));
        assert!(svg.contains("time since start (s)"));
        assert!(svg.contains("latency (ms)"));
        assert!(svg.contains("a&lt;/svg&gt;"));
        assert!(!svg.contains("<x>"));
        assert!(!svg.contains("a</svg>"));
        assert_eq!(svg.matches("</svg>").count(), 1);
        // The band ending past the run is clipped to the plot.
        assert!(svg.contains("<polygon") || svg.contains("<polyline"));
    }

    #[test]
    fn segments_break_at_gaps() {
        let s = segments(
            [
                (0.0, Some(1.0)),
                (1.0, None),
                (2.0, Some(2.0)),
                (3.0, Some(3.0)),
            ]
            .into_iter(),
        );
        assert_eq!(s, vec![vec![(0.0, 1.0)], vec![(2.0, 2.0), (3.0, 3.0)]]);
    }

    #[test]
    fn axis_numbers_are_short() {
        assert_eq!(short_number(1000.0), "1000");
        assert_eq!(short_number(3.1623), "3.16");
        assert_eq!(short_number(0.5), "0.5");
        assert_eq!(nice_max(730.0), 800.0);
        assert_eq!(nice_max(130.0), 150.0);
        assert_eq!(nice_max(2035.0), 2500.0);
    }
}
