//! Reliability diagrams: accuracy against confidence per bin, with the share of samples.

use super::axes::{axes, chart, X_LABEL_AREA};
use super::legend::{Key, Legend};
use super::{
    figure_width, headed, render, text, Figure, Picture, AXIS_DESC_SIZE, CAPTION_HEIGHT,
    CAPTION_SIZE, PANEL_WIDTH,
};
use crate::calibration::ReliabilityBin;
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// One reliability diagram: its title, its bins and, if known, its ECE.
pub struct ReliabilityPanel<'a> {
    pub title: String,
    pub bins: &'a [ReliabilityBin],
    pub ece: Option<f64>,
}

/// Reliability diagrams side by side, one panel per entry of `panels`: accuracy per
/// confidence bin as bars, the gap to the bin's mean confidence shaded, the diagonal of
/// perfect calibration, the ECE if given, and below it the share of samples per bin.
pub fn reliability_diagrams(title: &str, panels: &[ReliabilityPanel]) -> Result<Figure> {
    let legend = Legend::new(
        vec![
            (
                Key::Swatch(ACCURACY.mix(0.85), ACCURACY_EDGE),
                "accuracy".into(),
            ),
            (
                Key::Swatch(GAP.mix(0.3), GAP),
                "gap to mean confidence".into(),
            ),
            (Key::Dashed(DIAGONAL), "perfect calibration".into()),
            (
                Key::Swatch(SHARE.to_rgba(), SHARE_EDGE),
                "share of samples".into(),
            ),
        ],
        figure_width(PANEL_WIDTH, panels.len()),
    )?;
    render(title, &legend, &Reliability { panels })
}

/// A reliability panel: caption, diagram, and the histogram below it.
pub(super) const RELIABILITY_HEIGHT: u32 = 560;
pub(super) const HISTOGRAM_HEIGHT: u32 = 170;

pub(super) const ACCURACY: RGBColor = RGBColor(0x00, 0x72, 0xB2);
const ACCURACY_EDGE: RGBColor = RGBColor(0x00, 0x3F, 0x63);
const GAP: RGBColor = RGBColor(0xD5, 0x5E, 0x00);
pub(super) const DIAGONAL: RGBColor = RGBColor(0x40, 0x40, 0x40);
pub(super) const SHARE: RGBColor = RGBColor(0xA0, 0xA0, 0xA0);
const SHARE_EDGE: RGBColor = RGBColor(0x60, 0x60, 0x60);

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
            Some(panel) => reliability_panel(area, &panel.title, panel.bins, panel.ece),
            None => reliability_panel(area, "", &[], None),
        }
    }
}

fn reliability_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    bins: &[ReliabilityBin],
    ece: Option<f64>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let body = headed(area, title, CAPTION_HEIGHT, CAPTION_SIZE)?;
    let main_height = body.dim_in_pixel().1.saturating_sub(HISTOGRAM_HEIGHT);
    let (main, histogram) = body.split_vertically(main_height);

    // Confidences lie in [0, 1]; the bins' edges say which part of it was binned.
    let edges = bins
        .iter()
        .flat_map(|b| [b.lower, b.upper])
        .filter(|e| e.is_finite());
    let (lo, hi) = edges.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), e| {
        (lo.min(e), hi.max(e))
    });
    let x = if lo < hi { lo..hi } else { 0.0..1.0 };
    // Only bins with samples and finite values draw anything.
    let filled = |value: Option<f64>| value.filter(|v| v.is_finite());

    let mut top = chart(&main, x.clone(), 0.0..1.0, 28)?;
    axes(&mut top, "", "accuracy")?;
    // Each shape is filled, then outlined, so that neighbouring bars stay apart.
    for style in [ACCURACY.mix(0.85).filled(), ACCURACY_EDGE.stroke_width(1)] {
        top.draw_series(bins.iter().filter_map(|b| {
            let accuracy = filled(b.accuracy)?;
            Some(Rectangle::new([(b.lower, 0.0), (b.upper, accuracy)], style))
        }))?;
    }
    for style in [GAP.mix(0.3).filled(), GAP.stroke_width(2)] {
        top.draw_series(bins.iter().filter_map(|b| {
            let (accuracy, confidence) = (filled(b.accuracy)?, filled(b.confidence)?);
            Some(Rectangle::new(
                [(b.lower, accuracy), (b.upper, confidence)],
                style,
            ))
        }))?;
    }
    top.draw_series(DashedLineSeries::new(
        [(x.start, x.start), (x.end, x.end)],
        6,
        4,
        DIAGONAL.stroke_width(1),
    ))?;
    if let Some(ece) = ece.filter(|e| e.is_finite()) {
        let at = (x.start + 0.03 * (x.end - x.start), 0.97);
        top.draw_series([Text::new(
            format!("ECE = {ece:.4}"),
            at,
            text(AXIS_DESC_SIZE, HPos::Left, VPos::Top),
        )])?;
    }

    let total: usize = bins.iter().map(|b| b.count).sum();
    let share = |b: &ReliabilityBin| b.count as f64 / total as f64;
    let tallest = bins.iter().map(share).fold(0.0, f64::max);
    let y = if tallest > 0.0 {
        0.0..tallest * 1.1
    } else {
        0.0..1.0
    };
    let mut bottom = chart(&histogram, x, y, X_LABEL_AREA)?;
    axes(&mut bottom, "confidence", "share")?;
    for style in [SHARE.filled(), SHARE_EDGE.stroke_width(1)] {
        bottom.draw_series(
            bins.iter()
                .filter(|b| b.count > 0)
                .map(|b| Rectangle::new([(b.lower, 0.0), (b.upper, share(b))], style)),
        )?;
    }
    Ok(())
}
