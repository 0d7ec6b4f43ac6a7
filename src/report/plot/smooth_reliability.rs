//! Smoothed reliability diagrams (relplot's style): the kernel-smoothed accuracy against
//! confidence with its bootstrap band, and the density of the confidences below.

use super::axes::{axes, chart, X_LABEL_AREA};
use super::legend::{Key, Legend};
use super::reliability::{
    diagonal, histogram_split, ACCURACY, DIAGONAL, RELIABILITY_HEIGHT, SHARE,
};
use super::{
    headed, render, text, Figure, Picture, Style, AXIS_DESC_SIZE, CAPTION_HEIGHT, CAPTION_SIZE,
    PANEL_WIDTH,
};
use crate::calibration::smooth::SmoothReliability;
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// One smoothed diagram and its caption.
pub struct SmoothReliabilityPanel<'a> {
    pub title: String,
    pub curve: &'a SmoothReliability,
}

/// Smoothed reliability diagrams side by side, one panel per entry of `panels`; the
/// band's level is named in the legend.
pub fn smooth_reliability_diagrams(
    title: &str,
    band_label: &str,
    panels: &[SmoothReliabilityPanel],
    style: Style,
) -> Result<Figure> {
    let legend = Legend::new(vec![
        (Key::Line(ACCURACY), "smoothed accuracy".into()),
        (Key::Swatch(ACCURACY.mix(0.2), BAND_EDGE), band_label.into()),
        (Key::Dashed(DIAGONAL), "perfect calibration".into()),
        (
            Key::Swatch(SHARE.mix(0.6), SHARE),
            "density of confidences".into(),
        ),
    ]);
    render(title, &legend, &Smooth { panels }, style)
}

/// The band's colour over white, to outline its legend swatch.
const BAND_EDGE: RGBColor = RGBColor(0xCC, 0xE3, 0xF0);

struct Smooth<'a> {
    panels: &'a [SmoothReliabilityPanel<'a>],
}

impl Picture for Smooth<'_> {
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
        let Some(panel) = self.panels.get(i) else {
            let body = headed(area, "", CAPTION_HEIGHT, CAPTION_SIZE)?;
            let mut empty = chart(&body, 0.0..1.0, 0.0..1.0, X_LABEL_AREA)?;
            return axes(&mut empty, "confidence", "accuracy");
        };
        smooth_panel(area, &panel.title, panel.curve)
    }
}

/// Below this density (1 is uniform on [0, 1]) the smoothed accuracy is the kernel's
/// extrapolation from distant confidences, not an estimate: it is not drawn.
const MIN_DRAWN_DENSITY: f64 = 0.05;

/// The runs of mesh indices whose density is at least [`MIN_DRAWN_DENSITY`].
fn drawn_segments(density: &[f64]) -> Vec<std::ops::Range<usize>> {
    let mut segments: Vec<std::ops::Range<usize>> = vec![];
    for (j, d) in density.iter().enumerate() {
        if *d < MIN_DRAWN_DENSITY || !d.is_finite() {
            continue;
        }
        match segments.last_mut() {
            Some(last) if last.end == j => last.end = j + 1,
            _ => segments.push(j..j + 1),
        }
    }
    segments
}

fn smooth_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    curve: &SmoothReliability,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let body = headed(area, title, CAPTION_HEIGHT, CAPTION_SIZE)?;
    let main_height = histogram_split(body.dim_in_pixel().1);
    let (main, histogram) = body.split_vertically(main_height);
    // The curve where there are confidences to estimate it from, finite, clamped to
    // the unit square the chart spans.
    let unit = |v: f64| v.clamp(0.0, 1.0);
    let segments = drawn_segments(&curve.density);
    let points = |values: &[f64], range: &std::ops::Range<usize>| -> Vec<(f64, f64)> {
        range
            .clone()
            .map(|j| (curve.mesh[j], values[j]))
            .filter(|(t, v)| t.is_finite() && v.is_finite())
            .map(|(t, v)| (t, unit(v)))
            .collect()
    };

    let mut top = chart(&main, 0.0..1.0, 0.0..1.0, 28)?;
    axes(&mut top, "", "accuracy")?;
    if let Some(band) = &curve.band {
        let low: Vec<f64> = band.iter().map(|i| i.low).collect();
        let high: Vec<f64> = band.iter().map(|i| i.high).collect();
        for range in &segments {
            let mut outline = points(&high, range);
            outline.extend(points(&low, range).into_iter().rev());
            top.draw_series([Polygon::new(outline, ACCURACY.mix(0.2).filled())])?;
        }
    }
    diagonal(&mut top, 0.0..1.0)?;
    for range in &segments {
        top.draw_series(LineSeries::new(
            points(&curve.accuracy, range),
            ACCURACY.stroke_width(2),
        ))?;
    }
    let ece = curve.smooth_ece;
    top.draw_series([Text::new(
        format!("smooth ECE = {:.4} (σ = {:.3})", ece.value, ece.sigma),
        (0.03, 0.97),
        text(AXIS_DESC_SIZE, HPos::Left, VPos::Top),
    )])?;

    let tallest = curve
        .density
        .iter()
        .copied()
        .filter(|d| d.is_finite())
        .fold(0.0, f64::max);
    let y = 0.0..if tallest > 0.0 { tallest * 1.1 } else { 1.0 };
    let mut bottom = chart(&histogram, 0.0..1.0, y, X_LABEL_AREA)?;
    axes(&mut bottom, "confidence", "density")?;
    let density: Vec<(f64, f64)> = curve
        .mesh
        .iter()
        .zip(&curve.density)
        .filter(|(_, d)| d.is_finite())
        .map(|(&t, &d)| (t, d))
        .collect();
    let mut area = vec![(0.0, 0.0)];
    area.extend(density.iter().copied());
    area.push((1.0, 0.0));
    bottom.draw_series([Polygon::new(area, SHARE.mix(0.6).filled())])?;
    bottom.draw_series(LineSeries::new(density, SHARE.stroke_width(1)))?;
    Ok(())
}
