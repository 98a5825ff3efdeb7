//! The plots, drawn by `plotters` into SVG strings: x/y plots (lines and points), rows of
//! gauges (a value or an interval against its limits, one row per check or metric), and small
//! multiples (a metric's history, one panel per metric). Each SVG carries its title as a
//! `<title>` element and an `aria-label`, so readers and tests can find it by name.
//!
//! Inputs are already bounded in size (see `series`); non-finite values are dropped, and a
//! degenerate range is widened, so a plot never fails on odd data; a drawing error becomes a
//! [`PlotError`] that the page shows in words.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::html::esc;

/// The candidate's colour.
pub(crate) const CANDIDATE: RGBColor = RGBColor(31, 119, 180);
/// The baseline's colour.
pub(crate) const BASELINE: RGBColor = RGBColor(230, 120, 20);
/// Passed.
pub(crate) const PASS: RGBColor = RGBColor(46, 125, 50);
/// Failed.
pub(crate) const FAIL: RGBColor = RGBColor(198, 40, 40);
/// Inconclusive.
pub(crate) const AMBER: RGBColor = RGBColor(249, 168, 37);
/// Invalid (the measurement cannot be trusted).
pub(crate) const INVALID: RGBColor = RGBColor(106, 27, 154);
/// Limits and reference lines.
pub(crate) const GREY: RGBColor = RGBColor(97, 97, 97);

const FONT: &str = "sans-serif";
const WIDTH: u32 = 900;

/// A plot that could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("the plot could not be drawn: {0}")]
pub(crate) struct PlotError(String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for PlotError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        PlotError(e.to_string())
    }
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Draw {
    /// A line of this width.
    Line(u32),
    /// Dots of this radius and opacity.
    Points(u32, f64),
}

/// One series of an [`Xy`] plot.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    /// Legend text (none: not in the legend).
    pub(crate) label: String,
    /// Colour.
    pub(crate) color: RGBColor,
    /// Line or points.
    pub(crate) draw: Draw,
    /// The points.
    pub(crate) points: Vec<(f64, f64)>,
}

/// A horizontal reference line (e.g. the concurrency limit).
#[derive(Debug, Clone)]
pub(crate) struct HLine {
    /// Where.
    pub(crate) y: f64,
    /// Legend text.
    pub(crate) label: String,
}

/// An x/y plot.
#[derive(Debug, Clone)]
pub(crate) struct Xy<'a> {
    /// Title (the SVG's `<title>`).
    pub(crate) title: &'a str,
    /// X axis description.
    pub(crate) x_desc: &'a str,
    /// Y axis description.
    pub(crate) y_desc: &'a str,
    /// The series, drawn in order.
    pub(crate) series: Vec<Series>,
    /// Reference lines.
    pub(crate) hlines: Vec<HLine>,
    /// The legend in the lower right corner (where a distribution curve leaves room), not the
    /// upper left.
    pub(crate) legend_lower_right: bool,
}

/// `[lo, hi]` of the finite `values`, widened when empty or degenerate.
fn range(values: impl Iterator<Item = f64>, from_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return (0.0, 1.0);
    }
    if from_zero {
        lo = lo.min(0.0);
    }
    if hi - lo < 1e-9 * hi.abs().max(1.0) {
        let pad = (hi.abs() * 0.1).max(1e-3);
        lo -= pad;
        hi += pad;
        if from_zero {
            lo = lo.max(0.0);
        }
    }
    (lo, hi)
}

/// Draws on an SVG of `size` and returns it with `title` as its `<title>`.
fn svg(
    title: &str,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), PlotError>,
) -> Result<String, PlotError> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    with_title(&buf, title)
}

/// The SVG with a `<title>`, an `aria-label`, `role="img"` and the page's class.
fn with_title(svg: &str, title: &str) -> Result<String, PlotError> {
    let rest = svg
        .strip_prefix("<svg ")
        .ok_or_else(|| PlotError("the backend wrote no <svg> element".into()))?;
    let end = rest
        .find('>')
        .ok_or_else(|| PlotError("the <svg> tag is not closed".into()))?;
    let t = esc(title);
    Ok(format!(
        "<svg class=\"plot\" role=\"img\" aria-label=\"{t}\" {}>\n<title>{t}</title>{}",
        &rest[..end],
        &rest[end + 1..]
    ))
}

/// Lines and points against shared axes, with a legend.
pub(crate) fn xy(p: &Xy) -> Result<String, PlotError> {
    let xs = p.series.iter().flat_map(|s| s.points.iter().map(|q| q.0));
    let (x0, x1) = range(xs, false);
    let ys = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|q| q.1))
        .chain(p.hlines.iter().map(|h| h.y));
    let (y0, y1) = range(ys, true);
    let y1 = y1 + (y1 - y0) * 0.05;
    svg(p.title, (WIDTH, 380), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(p.x_desc)
            .y_desc(p.y_desc)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;
        let mut legend = false;
        for s in &p.series {
            let points = s
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite());
            let color = s.color;
            let drawn = match s.draw {
                Draw::Line(w) => {
                    chart.draw_series(LineSeries::new(points, color.stroke_width(w)))?
                }
                Draw::Points(r, alpha) => chart
                    .draw_series(points.map(|q| Circle::new(q, r, color.mix(alpha).filled())))?,
            };
            if !s.label.is_empty() {
                legend = true;
                drawn.label(s.label.as_str()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                });
            }
        }
        for h in &p.hlines {
            legend = true;
            chart
                .draw_series(LineSeries::new(
                    [(x0, h.y), (x1, h.y)],
                    GREY.mix(0.8).stroke_width(1),
                ))?
                .label(h.label.as_str())
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREY.stroke_width(1)));
        }
        if legend {
            chart
                .configure_series_labels()
                .position(if p.legend_lower_right {
                    SeriesLabelPosition::LowerRight
                } else {
                    SeriesLabelPosition::UpperLeft
                })
                .label_font((FONT, 13))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .draw()?;
        }
        Ok(())
    })
}

/// A vertical mark on a gauge row (a limit, a baseline value).
#[derive(Debug, Clone)]
pub(crate) struct Mark {
    /// Where.
    pub(crate) at: f64,
    /// What (written above it).
    pub(crate) label: String,
}

/// One gauge row: a value and/or an interval in the outcome's colour, against marks, with the
/// allowed region shaded.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// The row's heading.
    pub(crate) label: String,
    /// The value.
    pub(crate) point: Option<f64>,
    /// An interval around it.
    pub(crate) interval: Option<(f64, f64)>,
    /// The outcome's colour.
    pub(crate) color: RGBColor,
    /// Limits and references.
    pub(crate) marks: Vec<Mark>,
    /// The region that passes (an open end: unbounded).
    pub(crate) allowed: Option<(Option<f64>, Option<f64>)>,
}

/// One row per check or metric, each on its own axis.
pub(crate) fn rows(title: &str, rows: &[Row]) -> Result<String, PlotError> {
    const ROW_H: u32 = 96;
    let height = ROW_H * rows.len().max(1) as u32;
    svg(title, (WIDTH, height), |root| {
        let panels = root.split_evenly((rows.len().max(1), 1));
        for (row, area) in rows.iter().zip(panels.iter()) {
            gauge(row, area)?;
        }
        Ok(())
    })
}

fn gauge(row: &Row, area: &DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), PlotError> {
    let values = row
        .point
        .into_iter()
        .chain(row.interval.into_iter().flat_map(|(a, b)| [a, b]))
        .chain(row.marks.iter().map(|m| m.at));
    let (lo, hi) = range(values, false);
    let pad = (hi - lo) * 0.15;
    let (x0, x1) = (lo - pad, hi + pad);
    let mut chart = ChartBuilder::on(area)
        .margin_left(12)
        .margin_right(24)
        .margin_top(4)
        .caption(row.label.as_str(), (FONT, 15))
        .x_label_area_size(24)
        .y_label_area_size(8)
        .build_cartesian_2d(x0..x1, 0.0..1.0)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_labels(8)
        .label_style((FONT, 12))
        .light_line_style(RGBColor(240, 240, 240))
        .draw()?;
    if let Some((a, b)) = row.allowed {
        let (a, b) = (a.unwrap_or(x0).max(x0), b.unwrap_or(x1).min(x1));
        if a < b {
            chart.draw_series(std::iter::once(Rectangle::new(
                [(a, 0.25), (b, 0.75)],
                PASS.mix(0.12).filled(),
            )))?;
        }
    }
    for m in &row.marks {
        chart.draw_series(LineSeries::new(
            [(m.at, 0.1), (m.at, 0.85)],
            GREY.stroke_width(2),
        ))?;
        chart.draw_series(std::iter::once(Text::new(
            m.label.clone(),
            (m.at, 0.98),
            (FONT, 12).into_font().color(&GREY),
        )))?;
    }
    if let Some((a, b)) = row.interval {
        let style = row.color.stroke_width(5);
        chart.draw_series(LineSeries::new([(a, 0.5), (b, 0.5)], style))?;
        for end in [a, b] {
            chart.draw_series(LineSeries::new([(end, 0.35), (end, 0.65)], style))?;
        }
    }
    match row.point {
        Some(v) if v.is_finite() => {
            chart.draw_series(std::iter::once(Circle::new(
                (v, 0.5),
                7,
                row.color.filled(),
            )))?;
        }
        _ if row.interval.is_none() => {
            chart.draw_series(std::iter::once(Text::new(
                "no value",
                ((x0 + x1) / 2.0, 0.5),
                (FONT, 14).into_font().color(&row.color),
            )))?;
        }
        _ => {}
    }
    Ok(())
}

/// One panel of [`small_multiples`]: a metric over runs, then the current run.
#[derive(Debug, Clone)]
pub(crate) struct Panel {
    /// The metric's name (the panel's heading).
    pub(crate) metric: String,
    /// `(run index, value)` of the earlier runs.
    pub(crate) history: Vec<(f64, f64)>,
    /// `(run index, value, colour)` of the run judged now.
    pub(crate) current: Option<(f64, f64, RGBColor)>,
}

/// One panel per metric, two a row, sharing the run labels of the x axis.
pub(crate) fn small_multiples(
    title: &str,
    runs: &[String],
    panels: &[Panel],
) -> Result<String, PlotError> {
    const PANEL_H: u32 = 230;
    let grid_rows = panels.len().div_ceil(2).max(1);
    let height = PANEL_H * grid_rows as u32;
    let n = runs.len().max(1) as f64;
    let label = |v: &f64| -> String {
        let i = v.round();
        if (v - i).abs() > 1e-6 || i < 0.0 {
            return String::new();
        }
        runs.get(i as usize)
            .map(|s| s.chars().take(12).collect())
            .unwrap_or_default()
    };
    svg(title, (WIDTH, height), |root| {
        let areas = root.split_evenly((grid_rows, 2));
        for (panel, area) in panels.iter().zip(areas.iter()) {
            let ys = panel
                .history
                .iter()
                .map(|p| p.1)
                .chain(panel.current.map(|c| c.1));
            let (lo, hi) = range(ys, false);
            let pad = (hi - lo) * 0.1;
            let mut chart = ChartBuilder::on(area)
                .margin(8)
                .caption(panel.metric.as_str(), (FONT, 14))
                .x_label_area_size(28)
                .y_label_area_size(56)
                .build_cartesian_2d(-0.5..(n - 0.5), (lo - pad)..(hi + pad))?;
            chart
                .configure_mesh()
                .x_labels(runs.len().clamp(1, 8))
                .x_label_formatter(&label)
                .label_style((FONT, 11))
                .light_line_style(RGBColor(240, 240, 240))
                .draw()?;
            let points: Vec<(f64, f64)> = panel
                .history
                .iter()
                .copied()
                .filter(|p| p.1.is_finite())
                .collect();
            chart.draw_series(LineSeries::new(
                points.iter().copied(),
                GREY.stroke_width(2),
            ))?;
            chart.draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, 4, CANDIDATE.filled())),
            )?;
            if let Some((x, y, color)) = panel.current.filter(|c| c.1.is_finite()) {
                chart.draw_series(std::iter::once(Circle::new((x, y), 7, color.filled())))?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(points: Vec<(f64, f64)>) -> Series {
        Series {
            label: "candidate".into(),
            color: CANDIDATE,
            draw: Draw::Line(2),
            points,
        }
    }

    #[test]
    fn a_plot_carries_its_escaped_title_and_draws_its_series() {
        let svg = xy(&Xy {
            title: "TTFT <distribution>",
            x_desc: "seconds",
            y_desc: "fraction",
            series: vec![line(vec![(0.0, 0.0), (1.0, 0.5), (2.0, 1.0)])],
            hlines: vec![],
            legend_lower_right: false,
        })
        .unwrap();
        assert!(svg.starts_with(
            "<svg class=\"plot\" role=\"img\" aria-label=\"TTFT &lt;distribution&gt;\" width="
        ));
        assert!(svg.contains("<title>TTFT &lt;distribution&gt;</title>"));
        assert!(svg.contains("<polyline"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(!svg.contains("style="), "presentation attributes only");
    }

    #[test]
    fn odd_data_still_draws() {
        for points in [
            vec![],
            vec![(1.0, 1.0)],
            vec![(f64::NAN, 1.0), (f64::INFINITY, f64::NAN)],
        ] {
            assert!(
                xy(&Xy {
                    title: "t",
                    x_desc: "",
                    y_desc: "",
                    series: vec![line(points)],
                    hlines: vec![],
                    legend_lower_right: true,
                })
                .is_ok()
            );
        }
        let empty = Row {
            label: "x".into(),
            point: None,
            interval: None,
            color: FAIL,
            marks: vec![],
            allowed: None,
        };
        assert!(rows("r", &[empty]).unwrap().contains("no value"));
        assert!(rows("r", &[]).is_ok());
        assert!(small_multiples("h", &[], &[]).is_ok());
    }
}
