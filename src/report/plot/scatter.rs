//! Scatter panels with equal scales on both axes, points coloured by class (the
//! penultimate-layer projections).

use super::axes::{axes, chart, padded_range, plot_size, X_LABEL_AREA};
use super::legend::{Key, Legend};
use super::{
    class_colour, headed, render, Figure, Picture, Style, CAPTION_HEIGHT, CAPTION_SIZE,
    PANEL_HEIGHT, PANEL_WIDTH,
};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::ops::Range;

/// One scatter panel; `classes[i]` indexes `class_names` and colours `points[i]`.
pub struct ScatterPanel {
    pub title: String,
    pub points: Vec<(f64, f64)>,
    pub classes: Vec<usize>,
    pub class_names: Vec<String>,
}

/// Scatter panels side by side with equal x and y scales, points coloured by class, one
/// shared legend naming the classes (by the first panel that names each).
pub fn scatter_panels(title: &str, panels: &[ScatterPanel], style: Style) -> Result<Figure> {
    let mut names: BTreeMap<usize, String> = BTreeMap::new();
    for panel in panels {
        for (class, name) in panel.class_names.iter().enumerate() {
            names.entry(class).or_insert_with(|| name.clone());
        }
    }
    for panel in panels {
        for &class in &panel.classes {
            names
                .entry(class)
                .or_insert_with(|| format!("class {class}"));
        }
    }
    let legend = Legend::new(
        names
            .into_iter()
            .map(|(class, name)| (Key::Dot(class_colour(class)), name))
            .collect(),
    );
    render(title, &legend, &Scatter { panels }, style)
}

struct Scatter<'a> {
    panels: &'a [ScatterPanel],
}

impl Picture for Scatter<'_> {
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
        let points: Vec<((f64, f64), usize)> = panel
            .into_iter()
            .flat_map(|p| p.points.iter().copied().zip(p.classes.iter().copied()))
            .filter(|((x, y), _)| x.is_finite() && y.is_finite())
            .collect();
        let (x, y) = equal_aspect(
            padded_range(points.iter().map(|p| p.0 .0)),
            padded_range(points.iter().map(|p| p.0 .1)),
            plot_size(body.dim_in_pixel(), X_LABEL_AREA),
        );
        let mut chart = chart(&body, x, y, X_LABEL_AREA)?;
        axes(&mut chart, "", "")?;
        chart.draw_series(
            points.iter().map(|&(point, class)| {
                Circle::new(point, 2, class_colour(class).mix(0.8).filled())
            }),
        )?;
        Ok(())
    }
}

/// Widens `x` or `y` about its centre so that one unit spans as many pixels on both axes
/// of a plotting area of `size` pixels.
fn equal_aspect(
    x: Range<f64>,
    y: Range<f64>,
    (width, height): (f64, f64),
) -> (Range<f64>, Range<f64>) {
    let per_pixel = ((x.end - x.start) / width).max((y.end - y.start) / height);
    let around = |r: Range<f64>, pixels: f64| {
        let (centre, half) = ((r.start + r.end) / 2.0, per_pixel * pixels / 2.0);
        centre - half..centre + half
    };
    (around(x, width), around(y, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_aspect_gives_both_axes_one_scale() {
        let (x, y) = equal_aspect(0.0..10.0, 0.0..1.0, (400.0, 200.0));
        assert_eq!(x, 0.0..10.0);
        assert_eq!(y, -2.0..3.0);
        let (x, y) = equal_aspect(0.0..1.0, 0.0..10.0, (400.0, 200.0));
        assert_eq!((x, y), (-9.5..10.5, 0.0..10.0));
    }
}
