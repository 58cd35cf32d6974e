//! SVG charts of benchmark reports, written by hand (no plotting dependency).
//!
//! Two chart kinds cover the benchmark figures: a grouped bar chart (latency by operation)
//! and a line chart (latency by nesting depth, throughput and latency by concurrency). Each
//! has axes with "nice" ticks (1, 2, 5 × 10ⁿ on a linear scale, decades on a log scale),
//! axis labels, a title and a legend. [`charts`] picks the figures a set of reports supports.

use std::fmt::Write as _;

use super::BenchError;
use super::report::{Latency, OpStats, Report, RunResult};

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 100.0;
/// The `stroke-dasharray` attribute of dashed series.
const DASH: &str = r#" stroke-dasharray="6 4""#;
const PALETTE: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

/// Escapes text for SVG content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A number as a short tick label (`0.05`, `1.5`, `20`, `12k`).
fn tick_label(v: f64) -> String {
    if v != 0.0 && v.abs() >= 10_000.0 {
        return format!("{}k", trim(v / 1000.0));
    }
    trim(v)
}

fn trim(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// The smallest of 1, 2, 5 × 10ⁿ at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let fraction = raw / magnitude;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// A value axis: linear from zero, or logarithmic over whole decades.
#[derive(Debug, Clone)]
struct Axis {
    log: bool,
    min: f64,
    max: f64,
    ticks: Vec<f64>,
}

impl Axis {
    /// An axis covering `values` (non-finite and, for log scales, non-positive ones ignored).
    fn fit(values: &[f64], allow_log: bool) -> Axis {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let max = finite.iter().copied().fold(0.0_f64, f64::max);
        let min_pos = finite
            .iter()
            .copied()
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min);
        if allow_log && min_pos.is_finite() && max / min_pos > 50.0 {
            let lo = min_pos.log10().floor() as i32;
            let hi = (max.log10().ceil() as i32).max(lo + 1);
            let mut ticks = Vec::new();
            for e in lo..=hi {
                let decade = 10f64.powi(e);
                ticks.push(decade);
                if hi - lo <= 2 && e < hi {
                    ticks.push(2.0 * decade);
                    ticks.push(5.0 * decade);
                }
            }
            return Axis {
                log: true,
                min: 10f64.powi(lo),
                max: 10f64.powi(hi),
                ticks,
            };
        }
        let max = if max > 0.0 { max } else { 1.0 };
        let step = nice_step(max / 5.0);
        let top = (max / step).ceil() * step;
        let count = (top / step).round() as usize;
        Axis {
            log: false,
            min: 0.0,
            max: top,
            ticks: (0..=count).map(|i| i as f64 * step).collect(),
        }
    }

    /// Position of `v` in `0..=1` along the axis.
    fn fraction(&self, v: f64) -> f64 {
        if self.log {
            let v = v.max(self.min);
            (v.log10() - self.min.log10()) / (self.max.log10() - self.min.log10())
        } else {
            (v - self.min) / (self.max - self.min)
        }
    }
}

/// An SVG document being built.
struct Svg {
    body: String,
}

impl Svg {
    fn new(title: &str) -> Svg {
        let mut body = String::new();
        let _ = writeln!(
            body,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(body, "<title>{}</title>", escape(title));
        let _ = writeln!(
            body,
            r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
        );
        let _ = writeln!(
            body,
            r#"<text x="{}" y="28" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
            (LEFT + WIDTH - RIGHT) / 2.0,
            escape(title)
        );
        Svg { body }
    }

    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, style: &str) {
        let _ = writeln!(
            self.body,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" {style}/>"#
        );
    }

    fn text(&mut self, x: f64, y: f64, anchor: &str, extra: &str, text: &str) {
        let _ = writeln!(
            self.body,
            r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}"{extra}>{}</text>"#,
            escape(text)
        );
    }

    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, title: Option<&str>) {
        match title {
            Some(t) => {
                let _ = writeln!(
                    self.body,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{fill}"><title>{}</title></rect>"#,
                    escape(t)
                );
            }
            None => {
                let _ = writeln!(
                    self.body,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{fill}"/>"#
                );
            }
        }
    }

    fn finish(mut self) -> String {
        self.body.push_str("</svg>\n");
        self.body
    }

    fn plot_left() -> f64 {
        LEFT
    }
    fn plot_right() -> f64 {
        WIDTH - RIGHT
    }
    fn plot_top() -> f64 {
        TOP
    }
    fn plot_bottom() -> f64 {
        HEIGHT - BOTTOM
    }

    fn y_of(axis: &Axis, v: f64) -> f64 {
        Self::plot_bottom() - axis.fraction(v) * (Self::plot_bottom() - Self::plot_top())
    }

    /// The y axis with grid lines, tick labels and the axis label.
    fn y_axis(&mut self, axis: &Axis, label: &str) {
        for &t in &axis.ticks {
            let y = Self::y_of(axis, t);
            self.line(
                Self::plot_left(),
                y,
                Self::plot_right(),
                y,
                r##"stroke="#e0e0e0" stroke-width="1""##,
            );
            self.text(Self::plot_left() - 6.0, y + 4.0, "end", "", &tick_label(t));
        }
        self.line(
            Self::plot_left(),
            Self::plot_top(),
            Self::plot_left(),
            Self::plot_bottom(),
            r#"stroke="black" stroke-width="1""#,
        );
        self.line(
            Self::plot_left(),
            Self::plot_bottom(),
            Self::plot_right(),
            Self::plot_bottom(),
            r#"stroke="black" stroke-width="1""#,
        );
        let cy = (Self::plot_top() + Self::plot_bottom()) / 2.0;
        let scale = if axis.log { " (log scale)" } else { "" };
        let _ = writeln!(
            self.body,
            r#"<text x="20" y="{cy:.1}" text-anchor="middle" transform="rotate(-90 20 {cy:.1})">{}{}</text>"#,
            escape(label),
            scale
        );
    }

    fn x_label(&mut self, label: &str) {
        self.text(
            (Self::plot_left() + Self::plot_right()) / 2.0,
            Self::plot_bottom() + 45.0,
            "middle",
            "",
            label,
        );
    }

    /// The legend to the right of the plot; `line` draws line swatches instead of squares.
    fn legend(&mut self, names: &[String], line: bool, dashed_from: Option<usize>) {
        let x = Self::plot_right() + 20.0;
        for (i, name) in names.iter().enumerate() {
            let y = Self::plot_top() + 10.0 + i as f64 * 22.0;
            let color = PALETTE[i % PALETTE.len()];
            if line {
                let dash = if dashed_from.is_some_and(|d| i >= d) {
                    DASH
                } else {
                    ""
                };
                self.line(
                    x,
                    y,
                    x + 24.0,
                    y,
                    &format!(r#"stroke="{color}" stroke-width="2.5"{dash}"#),
                );
            } else {
                self.rect(x, y - 7.0, 14.0, 14.0, color, None);
            }
            self.text(x + 32.0, y + 4.0, "start", "", name);
        }
    }
}

/// Bars of several series over categories (e.g. p50/p95/p99 per operation).
#[derive(Debug, Clone)]
pub struct BarChart {
    pub title: String,
    pub y_label: String,
    pub categories: Vec<String>,
    /// Series name and one value per category (`None`: no bar).
    pub series: Vec<(String, Vec<Option<f64>>)>,
}

/// Lines of several series over a numeric x axis.
#[derive(Debug, Clone)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Spread x values by log₂ (for 1, 2, 4, … or 1, 8, 64) with a tick per value.
    pub x_log2: bool,
    /// A log y axis when the values span more than a factor 50.
    pub y_log_allowed: bool,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// Series from this index on are drawn dashed (e.g. the baseline or the denied checks).
    pub dashed_from: Option<usize>,
}

/// Renders a bar chart (log y axis when the values span more than a factor 50).
pub fn bar_chart(chart: &BarChart) -> String {
    let values: Vec<f64> = chart
        .series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten().copied())
        .collect();
    let axis = Axis::fit(&values, true);
    let mut svg = Svg::new(&chart.title);
    svg.y_axis(&axis, &chart.y_label);
    let n = chart.categories.len().max(1) as f64;
    let band = (Svg::plot_right() - Svg::plot_left()) / n;
    let groups = chart.series.len().max(1) as f64;
    let bar_w = band * 0.8 / groups;
    for (ci, category) in chart.categories.iter().enumerate() {
        let band_x = Svg::plot_left() + ci as f64 * band;
        for (si, (name, vals)) in chart.series.iter().enumerate() {
            let Some(v) = vals.get(ci).copied().flatten().filter(|v| v.is_finite()) else {
                continue;
            };
            let top = Svg::y_of(&axis, v.max(axis.min)).max(Svg::plot_top());
            let x = band_x + band * 0.1 + si as f64 * bar_w;
            svg.rect(
                x,
                top,
                bar_w.max(1.0),
                (Svg::plot_bottom() - top).max(0.0),
                PALETTE[si % PALETTE.len()],
                Some(&format!("{category} {name}: {}", trim(v))),
            );
        }
        let cx = band_x + band / 2.0;
        let cy = Svg::plot_bottom() + 12.0;
        let _ = writeln!(
            svg.body,
            r#"<text x="{cx:.1}" y="{cy:.1}" text-anchor="end" transform="rotate(-30 {cx:.1} {cy:.1})">{}</text>"#,
            escape(category)
        );
    }
    let names: Vec<String> = chart.series.iter().map(|(n, _)| n.clone()).collect();
    svg.legend(&names, false, None);
    svg.finish()
}

/// Renders a line chart with a marker per point.
pub fn line_chart(chart: &LineChart) -> String {
    let ys: Vec<f64> = chart
        .series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .collect();
    let y_axis = Axis::fit(&ys, chart.y_log_allowed);
    let mut xs: Vec<f64> = chart
        .series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
        .filter(|x| x.is_finite())
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let log2 = chart.x_log2 && xs.iter().all(|x| *x > 0.0);
    let tx = |x: f64| if log2 { x.log2() } else { x };
    let (lo, hi) = match (xs.first(), xs.last()) {
        (Some(a), Some(b)) if tx(*b) > tx(*a) => (tx(*a), tx(*b)),
        (Some(a), _) => (tx(*a) - 1.0, tx(*a) + 1.0),
        _ => (0.0, 1.0),
    };
    let pad = (Svg::plot_right() - Svg::plot_left()) * 0.05;
    let x_of = |x: f64| {
        Svg::plot_left()
            + pad
            + (tx(x) - lo) / (hi - lo) * (Svg::plot_right() - Svg::plot_left() - 2.0 * pad)
    };
    let mut svg = Svg::new(&chart.title);
    svg.y_axis(&y_axis, &chart.y_label);
    let x_ticks: Vec<f64> = if log2 || xs.len() <= 12 {
        xs.clone()
    } else {
        Axis::fit(&xs, false).ticks
    };
    for x in x_ticks {
        let px = x_of(x);
        svg.line(
            px,
            Svg::plot_bottom(),
            px,
            Svg::plot_bottom() + 5.0,
            r#"stroke="black" stroke-width="1""#,
        );
        svg.text(px, Svg::plot_bottom() + 18.0, "middle", "", &tick_label(x));
    }
    svg.x_label(&chart.x_label);
    for (si, (name, points)) in chart.series.iter().enumerate() {
        let color = PALETTE[si % PALETTE.len()];
        let mut pts: Vec<(f64, f64)> = points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let coords: Vec<String> = pts
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", x_of(*x), Svg::y_of(&y_axis, *y)))
            .collect();
        let dash = if chart.dashed_from.is_some_and(|d| si >= d) {
            DASH
        } else {
            ""
        };
        if coords.len() > 1 {
            let _ = writeln!(
                svg.body,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2.5"{dash}/>"#,
                coords.join(" ")
            );
        }
        for (x, y) in &pts {
            let _ = writeln!(
                svg.body,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{color}"><title>{}</title></circle>"#,
                x_of(*x),
                Svg::y_of(&y_axis, *y),
                escape(&format!("{name} at {}: {}", trim(*x), trim(*y)))
            );
        }
    }
    let names: Vec<String> = chart.series.iter().map(|(n, _)| n.clone()).collect();
    svg.legend(&names, true, chart.dashed_from);
    svg.finish()
}

// ---- the benchmark figures -----------------------------------------------------------------

fn lat(s: &OpStats, f: fn(&Latency) -> f64) -> Option<f64> {
    s.latency_ms.as_ref().map(f)
}

/// Latency by operation for the mixed run with the most operations.
fn latency_by_operation(reports: &[Report]) -> Option<String> {
    let runs: Vec<&RunResult> = reports.iter().flat_map(|r| &r.runs).collect();
    let mixed = runs
        .iter()
        .filter(|r| r.workload == "mix")
        .max_by_key(|r| {
            // Most operations first; among equals, the earliest input (max_by_key keeps the
            // last maximum, hence the reversed index).
            let ops = r.operations.iter().filter(|o| !o.aggregate).count();
            (
                ops,
                usize::MAX - runs.iter().position(|x| std::ptr::eq(*x, **r)).unwrap_or(0),
            )
        })?;
    let mut rows: Vec<(String, &OpStats)> = mixed
        .operations
        .iter()
        .filter(|o| !o.aggregate && o.latency_ms.is_some())
        .map(|o| (o.operation.clone(), o))
        .collect();
    let noop = runs
        .iter()
        .filter(|r| r.workload == "noop")
        .min_by_key(|r| r.concurrency.abs_diff(mixed.concurrency))
        .map(|r| r.operation("noop").unwrap_or(&r.total));
    if let Some(n) = noop.filter(|n| n.latency_ms.is_some()) {
        rows.push(("noop (health)".into(), n));
    }
    if rows.is_empty() {
        return None;
    }
    let series = [
        ("p50", (|l: &Latency| l.p50) as fn(&Latency) -> f64),
        ("p95", |l| l.p95),
        ("p99", |l| l.p99),
    ]
    .into_iter()
    .map(|(name, f)| {
        (
            name.to_string(),
            rows.iter().map(|(_, s)| lat(s, f)).collect(),
        )
    })
    .collect();
    Some(bar_chart(&BarChart {
        title: format!(
            "Latency by operation (concurrency {}, {})",
            mixed.concurrency,
            mixed.consistency.as_deref().unwrap_or("n/a")
        ),
        y_label: "latency (ms)".into(),
        categories: rows.into_iter().map(|(label, _)| label).collect(),
        series,
    }))
}

/// Check latency by depth from the first depth result.
fn latency_by_depth(reports: &[Report]) -> Option<String> {
    let depth = reports.iter().flat_map(|r| &r.depth).next()?;
    if depth.rows.is_empty() {
        return None;
    }
    let points = |pick: fn(&super::report::DepthRow) -> &OpStats, f: fn(&Latency) -> f64| {
        depth
            .rows
            .iter()
            .filter_map(|r| lat(pick(r), f).map(|v| (f64::from(r.depth), v)))
            .collect::<Vec<_>>()
    };
    Some(line_chart(&LineChart {
        title: format!(
            "Check latency by group nesting depth (concurrency {})",
            depth.concurrency
        ),
        x_label: "nesting depth (groups in the chain)".into(),
        y_label: "latency (ms)".into(),
        x_log2: true,
        y_log_allowed: false,
        series: vec![
            ("allowed p50".into(), points(|r| &r.positive, |l| l.p50)),
            ("allowed p99".into(), points(|r| &r.positive, |l| l.p99)),
            ("denied p50".into(), points(|r| &r.negative, |l| l.p50)),
            ("denied p99".into(), points(|r| &r.negative, |l| l.p99)),
        ],
        dashed_from: Some(2),
    }))
}

/// The report whose mixed runs cover the most concurrencies (a sweep), with those runs.
fn concurrency_runs(reports: &[Report]) -> Option<(Vec<&RunResult>, Vec<&RunResult>)> {
    let best = reports.iter().max_by_key(|r| {
        let mut c: Vec<u32> = r
            .runs
            .iter()
            .filter(|x| x.workload == "mix" && x.check_stats().is_some())
            .map(|x| x.concurrency)
            .collect();
        c.sort_unstable();
        c.dedup();
        c.len()
    })?;
    let mut checks: Vec<&RunResult> = best
        .runs
        .iter()
        .filter(|x| x.workload == "mix" && x.check_stats().is_some())
        .collect();
    checks.sort_by_key(|r| r.concurrency);
    checks.dedup_by_key(|r| r.concurrency);
    if checks.len() < 2 {
        return None;
    }
    let mut noops: Vec<&RunResult> = best.runs.iter().filter(|x| x.workload == "noop").collect();
    noops.sort_by_key(|r| r.concurrency);
    noops.dedup_by_key(|r| r.concurrency);
    Some((checks, noops))
}

fn throughput_by_concurrency(reports: &[Report]) -> Option<String> {
    let (checks, noops) = concurrency_runs(reports)?;
    let qps = |runs: &[&RunResult], check: bool| {
        runs.iter()
            .filter_map(|r| {
                let s = if check { r.check_stats()? } else { &r.total };
                Some((f64::from(r.concurrency), s.qps))
            })
            .collect::<Vec<_>>()
    };
    let mut series = vec![("check".to_string(), qps(&checks, true))];
    if !noops.is_empty() {
        series.push(("noop (health)".into(), qps(&noops, false)));
    }
    Some(line_chart(&LineChart {
        title: "Throughput by concurrency".into(),
        x_label: "concurrent requests in flight".into(),
        y_label: "requests per second".into(),
        x_log2: true,
        y_log_allowed: false,
        series,
        dashed_from: Some(1),
    }))
}

fn latency_by_concurrency(reports: &[Report]) -> Option<String> {
    let (checks, noops) = concurrency_runs(reports)?;
    let points = |runs: &[&RunResult], check: bool, f: fn(&Latency) -> f64| {
        runs.iter()
            .filter_map(|r| {
                let s = if check { r.check_stats()? } else { &r.total };
                Some((f64::from(r.concurrency), lat(s, f)?))
            })
            .collect::<Vec<_>>()
    };
    let mut series = vec![
        ("check p50".to_string(), points(&checks, true, |l| l.p50)),
        ("check p99".to_string(), points(&checks, true, |l| l.p99)),
    ];
    if !noops.is_empty() {
        series.push(("noop p50".into(), points(&noops, false, |l| l.p50)));
        series.push(("noop p99".into(), points(&noops, false, |l| l.p99)));
    }
    Some(line_chart(&LineChart {
        title: "Check latency by concurrency".into(),
        x_label: "concurrent requests in flight".into(),
        y_label: "latency (ms)".into(),
        x_log2: true,
        y_log_allowed: true,
        series,
        dashed_from: Some(2),
    }))
}

/// Every figure the reports support, as `(file name, SVG text)`.
pub fn charts(reports: &[Report]) -> Result<Vec<(&'static str, String)>, BenchError> {
    let mut out = Vec::new();
    if let Some(svg) = latency_by_operation(reports) {
        out.push(("latency-by-operation.svg", svg));
    }
    if let Some(svg) = latency_by_depth(reports) {
        out.push(("latency-by-depth.svg", svg));
    }
    if let Some(svg) = throughput_by_concurrency(reports) {
        out.push(("throughput-by-concurrency.svg", svg));
    }
    if let Some(svg) = latency_by_concurrency(reports) {
        out.push(("latency-by-concurrency.svg", svg));
    }
    if out.is_empty() {
        return Err(BenchError::Plot(
            "the inputs hold nothing to plot (expected `bench run`, `bench depth` or \
             `bench sweep` JSON reports with measurements)"
                .into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::{DepthResult, DepthRow, OpRecord};

    /// Checks that tags nest properly and that text has no raw `<` or stray `&`.
    fn assert_well_formed(svg: &str) {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let text = &rest[..start];
            for (i, _) in text.match_indices('&') {
                let entity = &text[i..];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                        .iter()
                        .any(|e| entity.starts_with(e)),
                    "stray & in {text:?}"
                );
            }
            let end = rest[start..].find('>').expect("unclosed tag") + start;
            let tag = &rest[start + 1..end];
            assert!(!tag.contains('<'), "`<` inside a tag: {tag}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(
                    stack.pop().as_deref(),
                    Some(name.trim()),
                    "mismatched </{name}>"
                );
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().unwrap_or_default();
                stack.push(name.to_string());
            }
            rest = &rest[end + 1..];
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    }

    #[test]
    fn bar_chart_is_well_formed_and_has_every_series() {
        let svg = bar_chart(&BarChart {
            title: "Latency <by> operation & more".into(),
            y_label: "latency (ms)".into(),
            categories: vec!["check.direct".into(), "lookup_resources".into()],
            series: vec![
                ("p50".into(), vec![Some(0.5), Some(40.0)]),
                ("p99".into(), vec![Some(1.5), None]),
            ],
        });
        assert_well_formed(&svg);
        assert!(svg.contains("Latency &lt;by&gt; operation &amp; more"));
        assert!(svg.contains(">p50</text>") && svg.contains(">p99</text>"));
        assert!(svg.contains("check.direct p50: 0.5"));
        assert!(svg.contains("lookup_resources p50: 40"));
        assert!(!svg.contains("lookup_resources p99"));
        // 0.5 … 40 spans more than 50×: log scale.
        assert!(svg.contains("(log scale)"));
    }

    #[test]
    fn line_chart_is_well_formed_with_points_on_log2_x() {
        let svg = line_chart(&LineChart {
            title: "depth".into(),
            x_label: "depth".into(),
            y_label: "ms".into(),
            x_log2: true,
            y_log_allowed: false,
            series: vec![
                ("a".into(), vec![(1.0, 1.0), (2.0, 2.0), (32.0, 3.0)]),
                ("b".into(), vec![(1.0, 0.5)]),
            ],
            dashed_from: Some(1),
        });
        assert_well_formed(&svg);
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 4);
        // Only the second series (its legend swatch) is dashed; the first one's line is not.
        assert_eq!(svg.matches("stroke-dasharray").count(), 1);
        assert!(svg.contains("a at 32: 3"));
        // Ticks at the data points.
        for t in [">1</text>", ">2</text>", ">32</text>"] {
            assert!(svg.contains(t), "{t}");
        }
    }

    #[test]
    fn axes_have_nice_ticks() {
        let a = Axis::fit(&[0.0, 7.3], false);
        assert_eq!(a.ticks, [0.0, 2.0, 4.0, 6.0, 8.0]);
        let a = Axis::fit(&[0.2, 300.0], true);
        assert!(a.log);
        assert_eq!((a.min, a.max), (0.1, 1000.0));
        assert!((a.fraction(10.0) - 2.0 / 4.0).abs() < 1e-9);
        let a = Axis::fit(&[], false);
        assert_eq!(a.max, 1.0);
        assert_eq!(tick_label(25_000.0), "25k");
        assert_eq!(tick_label(0.05), "0.05");
        assert_eq!(tick_label(2.0), "2");
    }

    fn stats(name: &str, ms: &[u64]) -> OpStats {
        let rec = OpRecord {
            samples_ns: ms.iter().map(|m| m * 1_000_000).collect(),
            ..OpRecord::default()
        };
        rec.stats(name, 1.0)
    }

    fn run(workload: &str, concurrency: u32, ops: Vec<OpStats>) -> RunResult {
        RunResult {
            workload: workload.into(),
            concurrency,
            connections: 1,
            client_threads: 1,
            consistency: Some("full".into()),
            mix: None,
            dataset: None,
            verify: false,
            hot_checks: None,
            warmup_s: 0.0,
            duration_s: 1.0,
            client_cpu: None,
            total: ops[0].clone(),
            operations: ops,
        }
    }

    #[test]
    fn charts_from_a_sweep_report() {
        let mut report = Report::new("sweep", "http://x");
        for c in [1, 8, 64] {
            report.runs.push(run("noop", c, vec![stats("noop", &[1])]));
            report.runs.push(run(
                "mix",
                c,
                vec![
                    stats("check.direct", &[2, 3]),
                    stats("check.negative", &[4]),
                ],
            ));
        }
        // A mixed run has no `check` aggregate here, so it has several check kinds and no
        // single check figure: add the aggregate the workload would produce.
        for r in &mut report.runs {
            if r.workload == "mix" {
                let mut agg = stats("check", &[2, 3, 4]);
                agg.aggregate = true;
                r.operations.push(agg);
            }
        }
        report.depth.push(DepthResult {
            concurrency: 1,
            connections: 1,
            consistency: "full".into(),
            verify: true,
            warmup_s: 0.0,
            duration_s: 1.0,
            client_cpu: None,
            rows: [1, 2, 4]
                .iter()
                .map(|&d| DepthRow {
                    depth: d,
                    positive: stats("p", &[u64::from(d)]),
                    negative: stats("n", &[u64::from(d) + 1]),
                    lookup_resources: None,
                    lookup_subjects: None,
                })
                .collect(),
        });
        let charts = charts(&[report]).unwrap();
        let names: Vec<&str> = charts.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "latency-by-operation.svg",
                "latency-by-depth.svg",
                "throughput-by-concurrency.svg",
                "latency-by-concurrency.svg"
            ]
        );
        for (_, svg) in &charts {
            assert_well_formed(svg);
        }
        assert!(charts[0].1.contains("noop (health)"));
        assert!(charts[2].1.contains(">check</text>"));
        assert!(charts[1].1.contains("denied p99"));
        assert!(matches!(
            super::charts(&[Report::new("run", "x")]),
            Err(BenchError::Plot(_))
        ));
    }
}
