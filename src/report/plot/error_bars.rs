//! Lines of means with error bars, in one chart.

use super::axes::{axes, chart, padded_range, X_LABEL_AREA};
use super::legend::{Key, Legend};
use super::{line_colour, render, Figure, Picture, Style, PANEL_HEIGHT};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

/// A named series of means with error bars.
pub struct Series {
    pub label: String,
    pub points: Vec<MeanPoint>,
}

/// A mean at `x` and the ends of its error bar (± std over seeds, or an interval).
pub struct MeanPoint {
    pub x: f64,
    pub mean: f64,
    pub error: Option<(f64, f64)>,
}

impl MeanPoint {
    /// The error bar's ends where they are finite and apart.
    pub fn bar(&self) -> Option<(f64, f64)> {
        self.error
            .filter(|(low, high)| low.is_finite() && high.is_finite() && low < high)
    }

    /// The lowest and highest values the point draws.
    pub fn extent(&self) -> [f64; 2] {
        self.bar().map_or([self.mean; 2], |(low, high)| {
            [low.min(self.mean), high.max(self.mean)]
        })
    }
}

/// Lines with error bars in one chart: one line per series (points sorted by x), a bar
/// at each point that has one. Non-finite points are left out.
pub fn error_bar_lines(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    style: Style,
) -> Result<Figure> {
    let legend = Legend::new(
        series
            .iter()
            .enumerate()
            .map(|(i, s)| (Key::LineDot(line_colour(i)), s.label.clone()))
            .collect(),
    );
    render(
        title,
        &legend,
        &ErrorBars {
            x_label,
            y_label,
            series,
        },
        style,
    )
}

const ERROR_BAR_WIDTH: u32 = 640;

/// The y range of lines of means: their points and error bars, padded; from 0 when every
/// value is ≥ 0 and the smallest is under half the largest (an ECE or an error: how far
/// it is from 0 is part of the picture); otherwise at least a tenth of the largest
/// magnitude tall, so that accuracies of 0.904 and 0.907 do not fill the chart from
/// bottom to top as if one had collapsed.
fn y_range(values: impl IntoIterator<Item = f64>) -> std::ops::Range<f64> {
    let values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    let mut range = padded_range(values.iter().copied());
    let (Some(lo), Some(hi)) = (
        values.iter().copied().reduce(f64::min),
        values.iter().copied().reduce(f64::max),
    ) else {
        return range;
    };
    if lo >= 0.0 && lo < 0.5 * hi {
        range.start = 0.0;
        return range;
    }
    let least = 0.1 * lo.abs().max(hi.abs());
    let span = range.end - range.start;
    if span < least {
        let middle = (range.start + range.end) / 2.0;
        range = middle - least / 2.0..middle + least / 2.0;
    }
    range
}

struct ErrorBars<'a> {
    x_label: &'a str,
    y_label: &'a str,
    series: &'a [Series],
}

impl Picture for ErrorBars<'_> {
    fn panels(&self) -> usize {
        1
    }

    fn panel_size(&self) -> (u32, u32) {
        (ERROR_BAR_WIDTH, PANEL_HEIGHT)
    }

    fn draw_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, _: usize) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        // Finite points only, in order of x.
        let series: Vec<Vec<&MeanPoint>> = self
            .series
            .iter()
            .map(|s| {
                let mut points: Vec<&MeanPoint> = s
                    .points
                    .iter()
                    .filter(|p| p.x.is_finite() && p.mean.is_finite())
                    .collect();
                points.sort_by(|a, b| a.x.total_cmp(&b.x));
                points
            })
            .collect();
        let x = padded_range(series.iter().flatten().map(|p| p.x));
        let y = y_range(series.iter().flatten().flat_map(|p| p.extent()));
        let mut chart = chart(area, x, y, X_LABEL_AREA)?;
        axes(&mut chart, self.x_label, self.y_label)?;
        for (i, points) in series.iter().enumerate() {
            let colour = line_colour(i);
            let style = colour.stroke_width(2);
            chart.draw_series(LineSeries::new(points.iter().map(|p| (p.x, p.mean)), style))?;
            for (p, (low, high)) in points.iter().filter_map(|p| Some((p, p.bar()?))) {
                chart.draw_series([PathElement::new(vec![(p.x, low), (p.x, high)], style)])?;
                for end in [low, high] {
                    chart.draw_series([EmptyElement::at((p.x, end))
                        + PathElement::new(vec![(-5, 0), (5, 0)], style)])?;
                }
            }
            chart.draw_series(
                points
                    .iter()
                    .map(|p| Circle::new((p.x, p.mean), 4, colour.filled())),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_differences_are_not_magnified_and_errors_start_at_zero() {
        let accuracy = y_range([0.904, 0.9075]);
        assert!(accuracy.end - accuracy.start >= 0.0907 - 1e-12);
        assert!(accuracy.start < 0.904 && accuracy.end > 0.9075);
        let ece = y_range([0.011, 0.061]);
        assert_eq!(ece.start, 0.0);
        assert!(ece.end > 0.061);
        // Spread-out values keep their padded range.
        let spread = y_range([0.5, 0.9]);
        assert!((spread.start - 0.48).abs() < 1e-12 && (spread.end - 0.92).abs() < 1e-12);
        assert_eq!(y_range([]), 0.0..1.0);
    }
}
