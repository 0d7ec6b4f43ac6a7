//! A panel's chart: its margins, axes, grid and tick labels, and the ranges it spans.

use super::{font, AXIS_DESC_SIZE, TICK_SIZE};
use anyhow::Result;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::ops::Range;

const MARGIN: u32 = 8;
/// Room for the last x tick label, centred on the right edge.
const MARGIN_RIGHT: u32 = 20;
pub(super) const X_LABEL_AREA: u32 = 44;
const Y_LABEL_AREA: u32 = 60;

const GRID: RGBColor = RGBColor(0xE4, 0xE4, 0xE4);

pub(super) type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

pub(super) fn chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    x: Range<f64>,
    y: Range<f64>,
    x_label_area: u32,
) -> Result<Chart<'a, DB>>
where
    DB::ErrorType: 'static,
{
    Ok(ChartBuilder::on(area)
        .margin(MARGIN)
        .margin_right(MARGIN_RIGHT)
        .x_label_area_size(x_label_area)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(x, y)?)
}

/// The plotting area's size in pixels of a `chart` on an area of `size`.
pub(super) fn plot_size((width, height): (u32, u32), x_label_area: u32) -> (f64, f64) {
    let w = width
        .saturating_sub(MARGIN + MARGIN_RIGHT + Y_LABEL_AREA)
        .max(1);
    let h = height.saturating_sub(2 * MARGIN + x_label_area).max(1);
    (f64::from(w), f64::from(h))
}

pub(super) fn axes<DB: DrawingBackend>(
    chart: &mut Chart<DB>,
    x_label: &str,
    y_label: &str,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let mut mesh = chart.configure_mesh();
    // An empty description would still write an empty text element.
    if !x_label.is_empty() {
        mesh.x_desc(x_label);
    }
    if !y_label.is_empty() {
        mesh.y_desc(y_label);
    }
    mesh.axis_desc_style(font(AXIS_DESC_SIZE))
        .label_style(font(TICK_SIZE))
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .x_labels(6)
        .y_labels(6)
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .draw()?;
    Ok(())
}

/// A tick label as short as its value allows: "10" rather than "10.0", and "0.3" rather
/// than the "0.30000000000000004" that stepping by 0.1 can give.
pub(super) fn tick(value: &f64) -> String {
    let rounded: f64 = format!("{value:.9e}").parse().unwrap_or(*value);
    // Adding zero turns -0 into 0.
    format!("{}", rounded + 0.0)
}

/// The span of the finite `values`, padded by 5% on each side; a single value (or values
/// too close to tell apart) gets a small span around it, and no value [0, 1].
pub(super) fn padded_range(values: impl IntoIterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return 0.0..1.0;
    }
    let span = hi - lo;
    let magnitude = lo.abs().max(hi.abs());
    if span <= magnitude * 1e-9 {
        let pad = if magnitude > 0.0 {
            magnitude * 0.05
        } else {
            0.5
        };
        return lo - pad..hi + pad;
    }
    lo - span * 0.05..hi + span * 0.05
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_pad_the_finite_values() {
        let r = padded_range([1.0, f64::NAN, 3.0, f64::NEG_INFINITY]);
        assert!((r.start - 0.9).abs() < 1e-12 && (r.end - 3.1).abs() < 1e-12);
        assert_eq!(padded_range([]), 0.0..1.0);
        assert_eq!(padded_range([f64::NAN]), 0.0..1.0);
        assert_eq!(padded_range([0.0, 0.0]), -0.5..0.5);
        let single = padded_range([2.0]);
        assert!(single.start < 2.0 && single.end > 2.0);
        let close = padded_range([1.0, 1.0 + 1e-15]);
        assert!(close.end - close.start > 0.01);
    }

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(&10.0), "10");
        assert_eq!(tick(&(0.1 * 3.0)), "0.3");
        assert_eq!(tick(&-0.0), "0");
        assert_eq!(tick(&0.025), "0.025");
        assert_eq!(tick(&-2.5), "-2.5");
    }
}
