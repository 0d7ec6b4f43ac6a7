//! Figures for `smoothlab report`: reliability diagrams (binned and smoothed), lines and
//! bars with error bars, training curves and penultimate-layer projections. Each figure
//! is drawn twice, once as SVG and once as PNG, by the same code.
//!
//! Text is set in DejaVu Sans embedded in the binary (through plotters' `ab_glyph`
//! feature), so figures render the same on machines without any system font.
//!
//! This module holds what every figure shares: [`Figure`], rendering to both formats,
//! fonts, sizes, palettes and the page layout (title, panels, legend strip); `legend`
//! draws that strip and `axes` a panel's chart. Each figure kind has its own module.

mod axes;
mod bars;
mod error_bars;
mod legend;
mod lines;
mod reliability;
mod scatter;
mod smooth_reliability;
mod style;

pub use bars::{grouped_bars, BarGroup};
pub use error_bars::{error_bar_lines, MeanPoint, Series};
pub use lines::{line_panels, Line, LinePanel};
pub use reliability::{reliability_diagrams, reliability_overlay, OverlayPanel, ReliabilityPanel};
pub use scatter::{scatter_panels, ScatterPanel};
pub use smooth_reliability::{smooth_reliability_diagrams, SmoothReliabilityPanel};
pub use style::Style;

use anyhow::{ensure, Context, Result};
use legend::Legend;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A rendered figure: SVG text and PNG bytes of the same picture.
pub struct Figure {
    pub svg: String,
    pub png: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

impl Figure {
    /// Writes `<dir>/<stem>.svg` and `<dir>/<stem>.png` atomically (creating `dir`) and
    /// returns both paths.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<[PathBuf; 2]> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let svg = dir.join(format!("{stem}.svg"));
        let png = dir.join(format!("{stem}.png"));
        crate::atomic::write_bytes(&svg, self.svg.as_bytes())?;
        crate::atomic::write_bytes(&png, &self.png)?;
        Ok([svg, png])
    }
}

/// The family that plotters' defaults and `font` ask for: the embedded font is
/// registered under it.
const FONT: &str = "sans-serif";
const TITLE_SIZE: f64 = 20.0;
const CAPTION_SIZE: f64 = 16.0;
const AXIS_DESC_SIZE: f64 = 14.0;
const TICK_SIZE: f64 = 12.0;
const LEGEND_SIZE: f64 = 13.0;

const PANEL_WIDTH: u32 = 480;
const PANEL_HEIGHT: u32 = 420;
/// A one-line title's strip; each further line of a wrapped title adds a line.
const TITLE_HEIGHT: u32 = 40;
const TITLE_LINE: u32 = 24;
const TITLE_PADDING: u32 = 10;
const CAPTION_HEIGHT: u32 = 28;

/// Okabe & Ito's colour-blind-safe palette, without its yellow (too faint on white).
const LINE_COLOURS: [RGBColor; 7] = [
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0xCC, 0x79, 0xA7),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0x00, 0x00, 0x00),
];
/// Paul Tol's colour-blind-safe "muted" scheme and a grey: ten distinct classes.
const CLASS_COLOURS: [RGBColor; 10] = [
    RGBColor(0x33, 0x22, 0x88),
    RGBColor(0x88, 0xCC, 0xEE),
    RGBColor(0x44, 0xAA, 0x99),
    RGBColor(0x11, 0x77, 0x33),
    RGBColor(0x99, 0x99, 0x33),
    RGBColor(0xDD, 0xCC, 0x77),
    RGBColor(0xCC, 0x66, 0x77),
    RGBColor(0x88, 0x22, 0x55),
    RGBColor(0xAA, 0x44, 0x99),
    RGBColor(0x99, 0x99, 0x99),
];

fn line_colour(i: usize) -> RGBColor {
    LINE_COLOURS[i % LINE_COLOURS.len()]
}

fn class_colour(class: usize) -> RGBColor {
    CLASS_COLOURS[class % CLASS_COLOURS.len()]
}

/// Registers the embedded font with plotters, once per process.
fn register_fonts() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered = *REGISTERED
        .get_or_init(|| register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok());
    ensure!(
        registered,
        "the embedded DejaVu Sans font could not be loaded"
    );
    Ok(())
}

fn font(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::Name(FONT), size, FontStyle::Normal)
}

fn text(size: f64, h: HPos, v: VPos) -> TextStyle<'static> {
    font(size).color(&BLACK).pos(Pos::new(h, v))
}

/// A figure kind, as it draws its panels on any plotters backend. Every figure is a grid
/// of equal panels under its title with its legend below them; [`render`] lays that out.
trait Picture {
    /// How many panels; without any, one empty panel is drawn.
    fn panels(&self) -> usize;
    /// Panels per row (the rest wrap into further rows); default: all in one row.
    fn columns(&self) -> usize {
        self.panels()
    }
    /// The width and height of a panel in pixels at [`Style`]'s scale 1.
    fn panel_size(&self) -> (u32, u32);
    /// Draws panel `i` (or, at `i` = 0 of a picture without panels, an empty one).
    fn draw_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, i: usize) -> Result<()>
    where
        DB::ErrorType: 'static;
}

/// The panels' arrangement: rows and columns.
fn grid(picture: &impl Picture) -> (usize, usize) {
    let panels = picture.panels().max(1);
    let columns = picture.columns().clamp(1, panels);
    (panels.div_ceil(columns), columns)
}

/// Draws `picture` with `title` above and `legend` below, as SVG and as PNG, its panels
/// at `style`'s scale.
fn render(title: &str, legend: &Legend, picture: &impl Picture, style: Style) -> Result<Figure> {
    let (panel_width, panel_height) = picture.panel_size();
    let (panel_width, panel_height) = (style.scaled(panel_width), style.scaled(panel_height));
    let (rows, columns) = grid(picture);
    let width = panel_width * columns as u32;
    let legend = legend.layout(width)?;
    let title = wrap_to_width(title, TITLE_SIZE, width.saturating_sub(2 * TITLE_PADDING))?;
    let title_height = TITLE_HEIGHT + (title.len().max(1) as u32 - 1) * TITLE_LINE;
    let height = title_height + panel_height * rows as u32 + legend.height();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        draw(&root, &title, title_height, &legend, picture).context("drawing the SVG")?;
        root.present()?;
    }
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        draw(&root, &title, title_height, &legend, picture).context("drawing the PNG")?;
        root.present()?;
    }
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("encoding the PNG")?;
    writer.write_image_data(&rgb).context("encoding the PNG")?;
    writer.finish().context("encoding the PNG")?;
    Ok(Figure {
        svg,
        png,
        width,
        height,
    })
}

/// `text` in lines no wider than `width` pixels at font `size`, broken at spaces (a
/// longer word keeps a line of its own).
fn wrap_to_width(text: &str, size: f64, width: u32) -> Result<Vec<String>> {
    register_fonts()?;
    let mut lines: Vec<String> = vec![];
    for word in text.split(' ') {
        if let Some(line) = lines.last_mut() {
            let longer = format!("{line} {word}");
            if font(size).box_size(&longer)?.0 <= width {
                *line = longer;
                continue;
            }
        }
        lines.push(word.to_string());
    }
    Ok(lines)
}

/// Writes `heading` centred in a strip of `height` pixels at the top of `area` and
/// returns the rest.
fn headed<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    heading: &str,
    height: u32,
    size: f64,
) -> Result<DrawingArea<DB, Shift>>
where
    DB::ErrorType: 'static,
{
    let (strip, rest) = area.split_vertically(height);
    let (w, h) = strip.dim_in_pixel();
    if !heading.is_empty() {
        strip.draw_text(
            heading,
            &text(size, HPos::Center, VPos::Center),
            (w as i32 / 2, h as i32 / 2),
        )?;
    }
    Ok(rest)
}

/// Clears `root`, writes the figure title (its lines in a strip of `title_height`) and
/// legend, and draws the picture's panels in a grid of equal areas between them (one if
/// there are no panels, for an empty chart).
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &[String],
    title_height: u32,
    legend: &legend::LegendRows,
    picture: &impl Picture,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (strip, body) = root.split_vertically(title_height);
    let lines = title.len() as i32;
    let (w, h) = strip.dim_in_pixel();
    for (i, line) in title.iter().enumerate() {
        let offset = (2 * i as i32 - (lines - 1)) * TITLE_LINE as i32 / 2;
        strip.draw_text(
            line,
            &text(TITLE_SIZE, HPos::Center, VPos::Center),
            (w as i32 / 2, h as i32 / 2 + offset),
        )?;
    }
    let height = body.dim_in_pixel().1;
    let (panels_area, legend_area) = body.split_vertically(height - legend.height());
    legend.draw(&legend_area)?;
    let areas = panels_area.split_evenly(grid(picture));
    // A last row that is not full leaves its remaining areas blank.
    for (i, area) in areas.iter().enumerate().take(picture.panels().max(1)) {
        picture.draw_panel(area, i)?;
    }
    Ok(())
}
