//! Lines of means with error bars, in one chart.

use super::axes::{axes, chart, padded_range, X_LABEL_AREA};
use super::legend::{Key, Legend};
use super::{line_colour, render, Figure, Picture, PANEL_HEIGHT};
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
) -> Result<Figure> {
    let legend = Legend::new(
        series
            .iter()
            .enumerate()
            .map(|(i, s)| (Key::LineDot(line_colour(i)), s.label.clone()))
            .collect(),
        ERROR_BAR_WIDTH,
    )?;
    render(
        title,
        &legend,
        &ErrorBars {
            x_label,
            y_label,
            series,
        },
    )
}

const ERROR_BAR_WIDTH: u32 = 640;

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
        let y = padded_range(series.iter().flatten().flat_map(|p| p.extent()));
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
