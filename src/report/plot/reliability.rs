//! Reliability diagrams: accuracy against confidence per bin, with each bin's binomial
//! interval and sample count, and an overlay of several groups' curves in one panel.

use super::axes::{axes, chart, plot_size, tick, Chart, X_LABEL_AREA};
use super::legend::{Key, Legend};
use super::{
    font, headed, line_colour, render, text, Figure, Picture, Style, AXIS_DESC_SIZE,
    CAPTION_HEIGHT, CAPTION_SIZE, PANEL_HEIGHT, PANEL_WIDTH, TICK_SIZE,
};
use crate::calibration::ReliabilityBin;
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use plotters::style::FontTransform;

/// One reliability diagram: its caption, its bins and the lines written in its corner
/// (the ECE, and what it was computed over).
pub struct ReliabilityPanel<'a> {
    pub title: String,
    pub bins: &'a [ReliabilityBin],
    pub notes: Vec<String>,
}

/// Reliability diagrams side by side, one panel per entry of `panels`: accuracy per
/// confidence bin as bars with a 95 % Wilson interval, the gap to the bin's mean
/// confidence in one colour where the bin is over-confident and another where it is
/// under-confident, the diagonal of perfect calibration, the panel's notes, and below
/// it the samples per bin on a log scale, each bar labelled with its count.
pub fn reliability_diagrams(
    title: &str,
    panels: &[ReliabilityPanel],
    style: Style,
) -> Result<Figure> {
    let legend = Legend::new(vec![
        (
            Key::Swatch(ACCURACY.mix(0.85), ACCURACY_EDGE),
            "accuracy (95 % Wilson interval)".into(),
        ),
        (
            Key::Swatch(OVER_FILL.to_rgba(), OVER),
            "over-confidence gap".into(),
        ),
        (
            Key::Swatch(UNDER_FILL.to_rgba(), UNDER),
            "under-confidence gap".into(),
        ),
        (Key::Dashed(DIAGONAL), "perfect calibration".into()),
        (
            Key::Swatch(SHARE.to_rgba(), SHARE_EDGE),
            "samples per bin (log scale)".into(),
        ),
    ]);
    render(title, &legend, &Reliability { panels }, style)
}

/// A reliability panel: caption, diagram, and the histogram below it.
pub(super) const RELIABILITY_HEIGHT: u32 = 560;
/// The histogram's share of a panel's height below its caption.
const HISTOGRAM_SHARE: f64 = 0.34;

/// The height of the diagram above the histogram in a panel body `height` pixels tall.
pub(super) fn histogram_split(height: u32) -> u32 {
    (f64::from(height) * (1.0 - HISTOGRAM_SHARE)).round() as u32
}

pub(super) const ACCURACY: RGBColor = RGBColor(0x00, 0x72, 0xB2);
const ACCURACY_EDGE: RGBColor = RGBColor(0x00, 0x3F, 0x63);
/// Okabe & Ito's vermillion and bluish green, the fills lightened and opaque so that a
/// gap drawn over an accuracy bar keeps its own colour.
const OVER: RGBColor = RGBColor(0xD5, 0x5E, 0x00);
const OVER_FILL: RGBColor = RGBColor(0xF2, 0xBF, 0x99);
const UNDER: RGBColor = RGBColor(0x00, 0x9E, 0x73);
const UNDER_FILL: RGBColor = RGBColor(0x99, 0xD8, 0xC7);
pub(super) const DIAGONAL: RGBColor = RGBColor(0x40, 0x40, 0x40);
pub(super) const SHARE: RGBColor = RGBColor(0xA0, 0xA0, 0xA0);
const SHARE_EDGE: RGBColor = RGBColor(0x60, 0x60, 0x60);
/// The count labels' size: smaller than the ticks, to fit over bins of 1/15 of a panel.
const COUNT_SIZE: f64 = TICK_SIZE - 2.0;

/// z of a two-sided 95 % normal interval.
const Z_95: f64 = 1.959_963_984_540_054;

/// The Wilson score interval (Wilson 1927) for a proportion `p` observed in `n` trials
/// at normal quantile `z`: unlike the normal approximation it stays inside [0, 1] and
/// is not empty at p = 0 or 1, which is what small bins need.
pub fn wilson_interval(p: f64, n: usize, z: f64) -> (f64, f64) {
    let n = n as f64;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = z / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

struct Reliability<'a> {
    panels: &'a [ReliabilityPanel<'a>],
}

impl Picture for Reliability<'_> {
    fn panels(&self) -> usize {
        self.panels.len()
    }

    fn panel_size(&self) -> (u32, u32) {
        (PANEL_WIDTH, RELIABILITY_HEIGHT)
    }

    fn draw_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, i: usize) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        match self.panels.get(i) {
            Some(panel) => reliability_panel(area, panel),
            None => reliability_panel(
                area,
                &ReliabilityPanel {
                    title: String::new(),
                    bins: &[],
                    notes: vec![],
                },
            ),
        }
    }
}

/// The dashed diagonal of perfect calibration over the confidences `x`.
pub(super) fn diagonal<DB: DrawingBackend>(
    chart: &mut Chart<DB>,
    x: std::ops::Range<f64>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart.draw_series(DashedLineSeries::new(
        [(x.start, x.start), (x.end, x.end)],
        6,
        4,
        DIAGONAL.stroke_width(1),
    ))?;
    Ok(())
}

/// The confidence range the bins' edges span, or [0, 1].
fn confidence_range(bins: &[ReliabilityBin]) -> std::ops::Range<f64> {
    let edges = bins
        .iter()
        .flat_map(|b| [b.lower, b.upper])
        .filter(|e| e.is_finite());
    let (lo, hi) = edges.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), e| {
        (lo.min(e), hi.max(e))
    });
    if lo < hi {
        lo..hi
    } else {
        0.0..1.0
    }
}

/// A bin's accuracy and mean confidence where it has samples and both are finite.
fn drawn(bin: &ReliabilityBin) -> Option<(f64, f64)> {
    let accuracy = bin.accuracy.filter(|v| v.is_finite())?;
    let confidence = bin.confidence.filter(|v| v.is_finite())?;
    (bin.count > 0).then_some((accuracy, confidence))
}

fn reliability_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &ReliabilityPanel,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let bins = panel.bins;
    let body = headed(area, &panel.title, CAPTION_HEIGHT, CAPTION_SIZE)?;
    let (main, histogram) = body.split_vertically(histogram_split(body.dim_in_pixel().1));
    let x = confidence_range(bins);

    let mut top = chart(&main, x.clone(), 0.0..1.0, 28)?;
    axes(&mut top, "", "accuracy")?;
    // Each shape is filled, then outlined, so that neighbouring bars stay apart.
    for style in [ACCURACY.mix(0.85).filled(), ACCURACY_EDGE.stroke_width(1)] {
        top.draw_series(bins.iter().filter_map(|b| {
            let (accuracy, _) = drawn(b)?;
            Some(Rectangle::new([(b.lower, 0.0), (b.upper, accuracy)], style))
        }))?;
    }
    for (fill, edge, over) in [(OVER_FILL, OVER, true), (UNDER_FILL, UNDER, false)] {
        for style in [fill.filled(), edge.stroke_width(2)] {
            top.draw_series(bins.iter().filter_map(|b| {
                let (accuracy, confidence) = drawn(b)?;
                ((confidence > accuracy) == over && confidence != accuracy)
                    .then(|| Rectangle::new([(b.lower, accuracy), (b.upper, confidence)], style))
            }))?;
        }
    }
    let whisker = BLACK.stroke_width(1);
    for b in bins {
        let Some((accuracy, _)) = drawn(b) else {
            continue;
        };
        let (low, high) = wilson_interval(accuracy, b.count, Z_95);
        let middle = (b.lower + b.upper) / 2.0;
        top.draw_series([PathElement::new(
            vec![(middle, low), (middle, high)],
            whisker,
        )])?;
        for end in [low, high] {
            top.draw_series([
                EmptyElement::at((middle, end)) + PathElement::new(vec![(-3, 0), (3, 0)], whisker)
            ])?;
        }
    }
    diagonal(&mut top, x.clone())?;
    for (line, note) in panel.notes.iter().enumerate() {
        let at = (
            x.start + 0.03 * (x.end - x.start),
            0.97 - 0.06 * line as f64,
        );
        top.draw_series([Text::new(
            note.clone(),
            at,
            text(AXIS_DESC_SIZE, HPos::Left, VPos::Top),
        )])?;
    }
    count_histogram(&histogram, x, bins)
}

/// Samples per bin on a log scale, each bar labelled with its count: a bin of 2 samples
/// is then visibly not one of 9,566, and bins other than the last stay visible.
fn count_histogram<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    x: std::ops::Range<f64>,
    bins: &[ReliabilityBin],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    // log10 of the count; a bin of one sample gets a bar from the axis' floor.
    let floor = -0.3;
    let tallest = bins
        .iter()
        .map(|b| (b.count.max(1) as f64).log10())
        .fold(0.0, f64::max);
    // Room above the tallest bar for its vertical label.
    let (_, plot_height) = plot_size(area.dim_in_pixel(), X_LABEL_AREA);
    let digits = bins
        .iter()
        .map(|b| b.count.to_string().len())
        .max()
        .unwrap_or(1);
    let label_height = (digits as f64 * COUNT_SIZE * 0.62 + 6.0).min(plot_height * 0.4);
    let span = (tallest - floor).max(1.0) * plot_height / (plot_height - label_height);
    let decade = (plot_height - label_height) / (tallest - floor).max(1.0);
    let every = if decade < TICK_SIZE * 1.4 { 2 } else { 1 };
    let mut chart = chart(area, x, floor..floor + span, X_LABEL_AREA)?;
    chart
        .configure_mesh()
        .x_desc("confidence")
        .y_desc("samples")
        .axis_desc_style(font(AXIS_DESC_SIZE))
        .label_style(font(TICK_SIZE))
        .x_labels(6)
        .y_labels(12)
        .x_label_formatter(&tick)
        .y_label_formatter(&|v| {
            // No ticks in the room above the bars that only their labels use, and every
            // other power of ten where a decade is shorter than a label.
            let whole = v.round() as i64;
            if *v > tallest.floor() + 1e-9 || whole % every != 0 {
                String::new()
            } else {
                power_of_ten_label(*v)
            }
        })
        .bold_line_style(RGBColor(0xE4, 0xE4, 0xE4))
        .light_line_style(TRANSPARENT)
        .draw()?;
    let counted = || bins.iter().filter(|b| b.count > 0);
    for style in [SHARE.filled(), SHARE_EDGE.stroke_width(1)] {
        chart.draw_series(counted().map(|b| {
            let height = (b.count as f64).log10();
            Rectangle::new([(b.lower, floor), (b.upper, height)], style)
        }))?;
    }
    let vertical = font(COUNT_SIZE)
        .transform(FontTransform::Rotate270)
        .color(&BLACK)
        .pos(plotters::style::text_anchor::Pos::new(
            HPos::Left,
            VPos::Center,
        ));
    for b in counted() {
        let top = (b.count as f64).log10();
        chart.draw_series([EmptyElement::at(((b.lower + b.upper) / 2.0, top))
            + Text::new(b.count.to_string(), (0, -3), vertical.clone())])?;
    }
    Ok(())
}

/// The tick label of a log10 axis: the power of ten at whole exponents, nothing between.
fn power_of_ten_label(exponent: f64) -> String {
    let whole = exponent.round();
    if (exponent - whole).abs() > 1e-9 || whole < 0.0 {
        return String::new();
    }
    match whole as u32 {
        e @ 0..=2 => 10u32.pow(e).to_string(),
        e @ 3..=5 => format!("{}k", 10u32.pow(e - 3)),
        e => format!("{}M", 10u64.pow(e.saturating_sub(6))),
    }
}

/// Several groups' reliability curves in one panel: one panel per entry (e.g. before and
/// after temperature scaling), each curve the bins' (mean confidence, accuracy).
pub struct OverlayPanel<'a> {
    pub title: String,
    pub curves: Vec<(String, &'a [ReliabilityBin])>,
}

/// Reliability curves of every group in one panel each, against the diagonal; a curve
/// keeps its colour across panels (its position in each panel's `curves`).
pub fn reliability_overlay(title: &str, panels: &[OverlayPanel], style: Style) -> Result<Figure> {
    let mut entries = vec![];
    if let Some(first) = panels.first() {
        for (i, (label, _)) in first.curves.iter().enumerate() {
            entries.push((Key::LineDot(line_colour(i)), label.clone()));
        }
    }
    entries.push((Key::Dashed(DIAGONAL), "perfect calibration".into()));
    render(title, &Legend::new(entries), &Overlay { panels }, style)
}

struct Overlay<'a> {
    panels: &'a [OverlayPanel<'a>],
}

impl Picture for Overlay<'_> {
    fn panels(&self) -> usize {
        self.panels.len()
    }

    fn panel_size(&self) -> (u32, u32) {
        (PANEL_WIDTH, PANEL_HEIGHT)
    }

    fn draw_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, i: usize) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let panel = self.panels.get(i);
        let body = headed(
            area,
            panel.map_or("", |p| &p.title),
            CAPTION_HEIGHT,
            CAPTION_SIZE,
        )?;
        let mut chart = chart(&body, 0.0..1.0, 0.0..1.0, X_LABEL_AREA)?;
        axes(&mut chart, "mean confidence of the bin", "accuracy")?;
        diagonal(&mut chart, 0.0..1.0)?;
        for (j, (_, bins)) in panel.iter().flat_map(|p| p.curves.iter()).enumerate() {
            let colour = line_colour(j);
            let points: Vec<(f64, f64)> = bins
                .iter()
                .filter_map(drawn)
                .map(|(accuracy, confidence)| (confidence, accuracy))
                .collect();
            chart.draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?;
            chart.draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, colour.filled())),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_intervals_match_the_published_values() {
        // 0 of 10 and 10 of 10 (Newcombe 1998, Table I: 0.0000–0.2775), 5 of 10
        // (0.2366–0.7634, as statsmodels' proportion_confint(method="wilson") gives).
        let (low, high) = wilson_interval(0.0, 10, Z_95);
        assert!(low == 0.0 && (high - 0.2775).abs() < 5e-5, "{low} {high}");
        let (low, high) = wilson_interval(1.0, 10, Z_95);
        assert!(
            (low - 0.7225).abs() < 5e-5 && (high - 1.0).abs() < 1e-12,
            "{low} {high}"
        );
        let (low, high) = wilson_interval(0.5, 10, Z_95);
        assert!((low - 0.2366).abs() < 5e-5 && (high - 0.7634).abs() < 5e-5);
        // One sample: wide, inside [0, 1].
        let (low, high) = wilson_interval(1.0, 1, Z_95);
        assert!(low > 0.0 && low < 0.3 && high == 1.0);
    }

    #[test]
    fn log_ticks_are_named_at_powers_of_ten_only() {
        assert_eq!(power_of_ten_label(0.0), "1");
        assert_eq!(power_of_ten_label(2.0), "100");
        assert_eq!(power_of_ten_label(4.0), "10k");
        assert_eq!(power_of_ten_label(6.0), "1M");
        assert_eq!(power_of_ten_label(2.5), "");
        assert_eq!(power_of_ten_label(-1.0), "");
    }
}
