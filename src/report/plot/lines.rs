//! Panels of lines in a grid (the training curves), each line with an optional band,
//! one legend for all.

use super::axes::{axes, chart, padded_range, X_LABEL_AREA};
use super::legend::{Key, Legend};
use super::{
    headed, line_colour, render, Figure, Picture, Style, CAPTION_HEIGHT, CAPTION_SIZE,
    PANEL_HEIGHT, PANEL_WIDTH,
};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;

/// One panel of lines with its own axes.
pub struct LinePanel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub lines: Vec<Line>,
}

/// A named polyline, and around it a band (x, low, high), e.g. ± std over seeds.
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub band: Vec<(f64, f64, f64)>,
}

/// Panels of lines, `columns` per row, each with its own axes; lines with the same label
/// have the same colour in every panel and one shared legend. Lines and bands break at
/// non-finite points.
pub fn line_panels(
    title: &str,
    panels: &[LinePanel],
    columns: usize,
    style: Style,
) -> Result<Figure> {
    let mut colours: BTreeMap<&str, usize> = BTreeMap::new();
    let mut entries = Vec::new();
    for line in panels.iter().flat_map(|p| &p.lines) {
        if !colours.contains_key(line.label.as_str()) {
            colours.insert(&line.label, entries.len());
            entries.push((Key::Line(line_colour(entries.len())), line.label.clone()));
        }
    }
    let legend = Legend::new(entries);
    let picture = LinePanels {
        panels,
        colours,
        columns,
    };
    render(title, &legend, &picture, style)
}

/// Splits `points` into runs of finite points, so that a line breaks where a value is
/// missing instead of joining across it.
fn finite_runs(points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    points
        .split(|(x, y)| !(x.is_finite() && y.is_finite()))
        .filter(|run| !run.is_empty())
        .map(<[_]>::to_vec)
        .collect()
}

struct LinePanels<'a> {
    panels: &'a [LinePanel],
    /// Line colour index by label, shared by all panels.
    colours: BTreeMap<&'a str, usize>,
    columns: usize,
}

impl Picture for LinePanels<'_> {
    fn panels(&self) -> usize {
        self.panels.len()
    }

    fn columns(&self) -> usize {
        self.columns
    }

    fn panel_size(&self) -> (u32, u32) {
        (PANEL_WIDTH, PANEL_HEIGHT)
    }

    fn draw_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, i: usize) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let empty = LinePanel {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            lines: Vec::new(),
        };
        let panel = self.panels.get(i).unwrap_or(&empty);
        let body = headed(area, &panel.title, CAPTION_HEIGHT, CAPTION_SIZE)?;
        let band_ends = panel
            .lines
            .iter()
            .flat_map(|l| &l.band)
            .flat_map(|&(x, low, high)| [(x, low), (x, high)]);
        let finite: Vec<(f64, f64)> = panel
            .lines
            .iter()
            .flat_map(|l| l.points.iter().copied())
            .chain(band_ends)
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        let x = padded_range(finite.iter().map(|p| p.0));
        let y = padded_range(finite.iter().map(|p| p.1));
        let mut chart = chart(&body, x, y, X_LABEL_AREA)?;
        axes(&mut chart, &panel.x_label, &panel.y_label)?;
        for line in &panel.lines {
            let colour = line_colour(self.colours[line.label.as_str()]);
            let finite = |&(x, low, high): &(f64, f64, f64)| {
                x.is_finite() && low.is_finite() && high.is_finite()
            };
            for run in line.band.split(|b| !finite(b)).filter(|r| r.len() > 1) {
                let mut outline: Vec<(f64, f64)> = run.iter().map(|&(x, _, h)| (x, h)).collect();
                outline.extend(run.iter().rev().map(|&(x, low, _)| (x, low)));
                chart.draw_series([Polygon::new(outline, colour.mix(0.18).filled())])?;
            }
        }
        for line in &panel.lines {
            let colour = line_colour(self.colours[line.label.as_str()]);
            for run in finite_runs(&line.points) {
                // A lone point would draw no line; mark it instead.
                if let [point] = run[..] {
                    chart.draw_series([Circle::new(point, 3, colour.filled())])?;
                } else {
                    chart.draw_series(LineSeries::new(run, colour.stroke_width(2)))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_break_at_non_finite_points() {
        let runs = finite_runs(&[
            (0.0, 1.0),
            (1.0, f64::NAN),
            (2.0, 2.0),
            (3.0, 3.0),
            (f64::INFINITY, 0.0),
        ]);
        assert_eq!(runs, vec![vec![(0.0, 1.0)], vec![(2.0, 2.0), (3.0, 3.0)]]);
        assert!(finite_runs(&[(f64::NAN, 0.0)]).is_empty());
    }
}
