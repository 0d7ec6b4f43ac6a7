//! The legend strip below a figure's panels.

use super::{font, register_fonts, text, LEGEND_SIZE};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// How a legend entry is marked.
pub(super) enum Key {
    Swatch(RGBAColor, RGBColor),
    Line(RGBColor),
    Dashed(RGBColor),
    LineDot(RGBColor),
    Dot(RGBColor),
}

const KEY_WIDTH: i32 = 26;
const KEY_GAP: i32 = 6;
const ENTRY_GAP: i32 = 22;
const LEGEND_ROW: u32 = 22;
const LEGEND_PADDING: u32 = 8;

/// A legend strip below the panels, its entries wrapped into centred rows (once the
/// figure's width is known: [`Legend::layout`]), so that it never covers data.
pub(super) struct Legend {
    entries: Vec<(Key, String)>,
}

/// A legend laid out for a width: per row, its entries' indices and widths in pixels.
pub(super) struct LegendRows<'a> {
    entries: &'a [(Key, String)],
    rows: Vec<Vec<(usize, i32)>>,
}

impl Legend {
    pub(super) fn new(entries: Vec<(Key, String)>) -> Self {
        Self { entries }
    }

    pub(super) fn layout(&self, width: u32) -> Result<LegendRows<'_>> {
        register_fonts()?;
        let entries = &self.entries;
        let room = width.saturating_sub(2 * LEGEND_PADDING) as i32;
        let mut rows: Vec<Vec<(usize, i32)>> = Vec::new();
        let mut row_width = 0;
        for (i, (_, label)) in entries.iter().enumerate() {
            let entry_width = KEY_WIDTH + KEY_GAP + font(LEGEND_SIZE).box_size(label)?.0 as i32;
            match rows.last_mut() {
                Some(row) if row_width + ENTRY_GAP + entry_width <= room => {
                    row.push((i, entry_width));
                    row_width += ENTRY_GAP + entry_width;
                }
                _ => {
                    rows.push(vec![(i, entry_width)]);
                    row_width = entry_width;
                }
            }
        }
        Ok(LegendRows { entries, rows })
    }
}

impl LegendRows<'_> {
    pub(super) fn height(&self) -> u32 {
        if self.rows.is_empty() {
            0
        } else {
            self.rows.len() as u32 * LEGEND_ROW + 2 * LEGEND_PADDING
        }
    }

    pub(super) fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let width = area.dim_in_pixel().0 as i32;
        for (r, row) in self.rows.iter().enumerate() {
            let row_width: i32 = row.iter().map(|(_, w)| w + ENTRY_GAP).sum::<i32>() - ENTRY_GAP;
            let y = (LEGEND_PADDING + r as u32 * LEGEND_ROW + LEGEND_ROW / 2) as i32;
            let mut x = ((width - row_width) / 2).max(0);
            for &(i, entry_width) in row {
                let (key, label) = &self.entries[i];
                let middle = (x + KEY_WIDTH / 2, y);
                let line = |colour: RGBColor| {
                    PathElement::new(vec![(x, y), (x + KEY_WIDTH, y)], colour.stroke_width(2))
                };
                match *key {
                    Key::Swatch(fill, edge) => {
                        let corners = [(x + 3, y - 6), (x + KEY_WIDTH - 3, y + 6)];
                        area.draw(&Rectangle::new(corners, fill.filled()))?;
                        area.draw(&Rectangle::new(corners, edge.stroke_width(1)))?;
                    }
                    Key::Line(colour) => area.draw(&line(colour))?,
                    Key::Dashed(colour) => {
                        for start in (x..x + KEY_WIDTH).step_by(10) {
                            area.draw(&PathElement::new(
                                vec![(start, y), (start + 6, y)],
                                colour.stroke_width(1),
                            ))?;
                        }
                    }
                    Key::LineDot(colour) => {
                        area.draw(&line(colour))?;
                        area.draw(&Circle::new(middle, 4, colour.filled()))?;
                    }
                    Key::Dot(colour) => area.draw(&Circle::new(middle, 4, colour.filled()))?,
                }
                area.draw_text(
                    label,
                    &text(LEGEND_SIZE, HPos::Left, VPos::Center),
                    (x + KEY_WIDTH + KEY_GAP, y),
                )?;
                x += entry_width + ENTRY_GAP;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::line_colour;
    use super::*;

    #[test]
    fn legend_entries_wrap_into_rows() {
        let entries = |n: usize| {
            (0..n)
                .map(|i| (Key::Line(line_colour(i)), format!("group number {i}")))
                .collect()
        };
        let one = Legend::new(entries(1));
        let one = one.layout(480).unwrap();
        assert_eq!(
            (one.rows.len(), one.height()),
            (1, LEGEND_ROW + 2 * LEGEND_PADDING)
        );
        let many = Legend::new(entries(12));
        let many = many.layout(480).unwrap();
        assert!(many.rows.len() > 2);
        assert_eq!(many.rows.iter().map(Vec::len).sum::<usize>(), 12);
        for row in &many.rows {
            let width: i32 = row.iter().map(|(_, w)| w + ENTRY_GAP).sum::<i32>() - ENTRY_GAP;
            assert!(row.len() == 1 || width <= 480 - 2 * LEGEND_PADDING as i32);
        }
        let none = Legend::new(Vec::new());
        assert_eq!(none.layout(480).unwrap().height(), 0);
    }
}
