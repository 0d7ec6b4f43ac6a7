//! Grouped bars of means with error bars: one cluster per
//! category (a training method), one bar per measure in each.

use super::axes::{chart, padded_range};
use super::legend::{Key, Legend};
use super::{font, line_colour, render, text, Figure, MeanPoint, Picture, Style};
use super::{AXIS_DESC_SIZE, PANEL_HEIGHT, TICK_SIZE};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// One category's bars, in the order of the figure's measures; `None` where it has no
/// value for a measure.
pub struct BarGroup {
    pub label: String,
    pub bars: Vec<Option<MeanPoint>>,
}

/// Room under the bars for the category labels: up to three lines.
const CATEGORY_LABEL_AREA: u32 = 56;
/// Width per category; the figure is at least [`MIN_WIDTH`].
const CATEGORY_WIDTH: u32 = 90;
const MIN_WIDTH: u32 = 640;

/// `label` in lines of at most `width` characters, broken at spaces (a longer word
/// keeps a line of its own).
fn wrap(label: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in label.split(' ') {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// Grouped bars: `measures` names the bars of each group (the legend), `groups` the
/// clusters along the x axis. The y axis starts at 0 when every value is ≥ 0.
pub fn grouped_bars(
    title: &str,
    y_label: &str,
    measures: &[String],
    groups: &[BarGroup],
    style: Style,
) -> Result<Figure> {
    let width = (CATEGORY_WIDTH * groups.len() as u32 + 120).max(MIN_WIDTH);
    let legend = Legend::new(
        measures
            .iter()
            .enumerate()
            .map(|(i, m)| {
                (
                    Key::Swatch(line_colour(i).to_rgba(), line_colour(i)),
                    m.clone(),
                )
            })
            .collect(),
    );
    render(
        title,
        &legend,
        &Bars {
            y_label,
            measures: measures.len(),
            groups,
            width,
        },
        style,
    )
}

struct Bars<'a> {
    y_label: &'a str,
    measures: usize,
    groups: &'a [BarGroup],
    width: u32,
}

impl Picture for Bars<'_> {
    fn panels(&self) -> usize {
        1
    }

    fn panel_size(&self) -> (u32, u32) {
        (self.width, PANEL_HEIGHT)
    }

    fn draw_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, _: usize) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let finite = |p: &&MeanPoint| p.mean.is_finite();
        let values = self
            .groups
            .iter()
            .flat_map(|g| g.bars.iter().flatten())
            .filter(finite);
        let mut y = padded_range(values.clone().flat_map(|p| p.extent()));
        if values.clone().all(|p| p.extent()[0] >= 0.0) {
            y.start = 0.0;
        }
        let x = -0.5..self.groups.len() as f64 - 0.5;
        let mut chart = chart(area, x, y, CATEGORY_LABEL_AREA)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .disable_x_axis()
            .y_desc(self.y_label)
            .axis_desc_style(font(AXIS_DESC_SIZE))
            .label_style(font(TICK_SIZE))
            .bold_line_style(RGBColor(0xE4, 0xE4, 0xE4))
            .light_line_style(TRANSPARENT)
            .y_labels(6)
            .draw()?;
        // Characters of a category label per line: a tick-size character is about 0.55
        // of the font size wide, and a label keeps a little space from its neighbours.
        let category_width =
            chart.plotting_area().dim_in_pixel().0 as f64 / self.groups.len().max(1) as f64;
        let label_chars = ((category_width - 10.0) / (TICK_SIZE * 0.55)).max(4.0) as usize;
        // Bars share 80 % of each category's width.
        let bar = 0.8 / self.measures.max(1) as f64;
        for (i, group) in self.groups.iter().enumerate() {
            for (j, point) in group.bars.iter().enumerate() {
                let Some(point) = point.as_ref().filter(|p| p.mean.is_finite()) else {
                    continue;
                };
                let left = i as f64 - 0.4 + j as f64 * bar;
                let colour = line_colour(j);
                chart.draw_series([Rectangle::new(
                    [
                        (left, 0.0_f64.max(chart.y_range().start)),
                        (left + bar * 0.9, point.mean),
                    ],
                    colour.filled(),
                )])?;
                if let Some((low, high)) = point.bar() {
                    let middle = left + bar * 0.45;
                    let style = BLACK.stroke_width(1);
                    chart.draw_series([PathElement::new(
                        vec![(middle, low), (middle, high)],
                        style,
                    )])?;
                    for end in [low, high] {
                        chart.draw_series([EmptyElement::at((middle, end))
                            + PathElement::new(vec![(-4, 0), (4, 0)], style)])?;
                    }
                }
            }
            // The category's label under its cluster, wrapped to the cluster's width.
            let base = chart.y_range().start;
            for (line, words) in wrap(&group.label, label_chars).into_iter().enumerate() {
                chart.draw_series([EmptyElement::at((i as f64, base))
                    + Text::new(
                        words,
                        (0, 8 + line as i32 * (TICK_SIZE as i32 + 2)),
                        text(TICK_SIZE, HPos::Center, VPos::Top),
                    )])?;
            }
        }
        Ok(())
    }
}
