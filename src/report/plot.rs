//! Figures for `smoothlab report`: reliability diagrams, lines with error bars, training
//! curves and penultimate-layer projections. Each figure is drawn twice, once as SVG and
//! once as PNG, by the same code.
//!
//! Text is set in DejaVu Sans embedded in the binary (through plotters' `ab_glyph`
//! feature), so figures render the same on machines without any system font.

use crate::calibration::ReliabilityBin;
use anyhow::{ensure, Context, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::collections::BTreeMap;
use std::ops::Range;
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

/// One reliability diagram: its title, its bins and, if known, its ECE.
pub struct ReliabilityPanel<'a> {
    pub title: String,
    pub bins: &'a [ReliabilityBin],
    pub ece: Option<f64>,
}

/// A named series of means with standard deviations.
pub struct Series {
    pub label: String,
    pub points: Vec<MeanPoint>,
}

/// A mean and standard deviation at `x`.
pub struct MeanPoint {
    pub x: f64,
    pub mean: f64,
    pub std: f64,
}

/// One panel of lines with its own axes.
pub struct LinePanel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub lines: Vec<Line>,
}

/// A named polyline.
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// One scatter panel; `classes[i]` indexes `class_names` and colours `points[i]`.
pub struct ScatterPanel {
    pub title: String,
    pub points: Vec<(f64, f64)>,
    pub classes: Vec<usize>,
    pub class_names: Vec<String>,
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
    render(&Reliability {
        title,
        panels,
        legend,
    })
}

/// Lines with error bars in one chart: one line per series (points sorted by x), a bar
/// of ± std at each point whose std is finite and positive. Non-finite points are left out.
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
    render(&ErrorBars {
        title,
        x_label,
        y_label,
        series,
        legend,
    })
}

/// Panels of lines side by side, each with its own axes; lines with the same label have
/// the same colour in every panel and one shared legend. Lines break at non-finite points.
pub fn line_panels(title: &str, panels: &[LinePanel]) -> Result<Figure> {
    let mut colours: BTreeMap<&str, usize> = BTreeMap::new();
    let mut entries = Vec::new();
    for line in panels.iter().flat_map(|p| &p.lines) {
        if !colours.contains_key(line.label.as_str()) {
            colours.insert(&line.label, entries.len());
            entries.push((Key::Line(line_colour(entries.len())), line.label.clone()));
        }
    }
    let legend = Legend::new(entries, figure_width(PANEL_WIDTH, panels.len()))?;
    render(&LinePanels {
        title,
        panels,
        colours,
        legend,
    })
}

/// Scatter panels side by side with equal x and y scales, points coloured by class, one
/// shared legend naming the classes (by the first panel that names each).
pub fn scatter_panels(title: &str, panels: &[ScatterPanel]) -> Result<Figure> {
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
        figure_width(PANEL_WIDTH, panels.len()),
    )?;
    render(&Scatter {
        title,
        panels,
        legend,
    })
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
/// A reliability panel: caption, diagram, and the histogram below it.
const RELIABILITY_HEIGHT: u32 = 560;
const HISTOGRAM_HEIGHT: u32 = 170;
const ERROR_BAR_WIDTH: u32 = 640;
const TITLE_HEIGHT: u32 = 40;
const CAPTION_HEIGHT: u32 = 28;
const MARGIN: u32 = 8;
/// Room for the last x tick label, centred on the right edge.
const MARGIN_RIGHT: u32 = 20;
const X_LABEL_AREA: u32 = 44;
const Y_LABEL_AREA: u32 = 60;

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
const ACCURACY: RGBColor = RGBColor(0x00, 0x72, 0xB2);
const ACCURACY_EDGE: RGBColor = RGBColor(0x00, 0x3F, 0x63);
const GAP: RGBColor = RGBColor(0xD5, 0x5E, 0x00);
const DIAGONAL: RGBColor = RGBColor(0x40, 0x40, 0x40);
const SHARE: RGBColor = RGBColor(0xA0, 0xA0, 0xA0);
const SHARE_EDGE: RGBColor = RGBColor(0x60, 0x60, 0x60);
const GRID: RGBColor = RGBColor(0xE4, 0xE4, 0xE4);

fn line_colour(i: usize) -> RGBColor {
    LINE_COLOURS[i % LINE_COLOURS.len()]
}

fn class_colour(class: usize) -> RGBColor {
    CLASS_COLOURS[class % CLASS_COLOURS.len()]
}

fn figure_width(panel_width: u32, panels: usize) -> u32 {
    panel_width * panels.max(1) as u32
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

/// A figure that can be drawn on any plotters backend.
trait Picture {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static;
}

fn render(picture: &impl Picture) -> Result<Figure> {
    let (width, height) = picture.size();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        picture.draw(&root).context("drawing the SVG")?;
        root.present()?;
    }
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        picture.draw(&root).context("drawing the PNG")?;
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

/// How a legend entry is marked.
enum Key {
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

/// A legend strip below the panels, its entries wrapped into centred rows, so that it
/// never covers data.
struct Legend {
    entries: Vec<(Key, String)>,
    /// Per row, its entries' indices and widths in pixels.
    rows: Vec<Vec<(usize, i32)>>,
}

impl Legend {
    fn new(entries: Vec<(Key, String)>, width: u32) -> Result<Self> {
        register_fonts()?;
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
        Ok(Self { entries, rows })
    }

    fn height(&self) -> u32 {
        if self.rows.is_empty() {
            0
        } else {
            self.rows.len() as u32 * LEGEND_ROW + 2 * LEGEND_PADDING
        }
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()>
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

/// Clears `root`, writes the figure title and legend, and returns `panels` equal areas
/// side by side between them (one if there are no panels, for an empty chart).
fn layout<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    legend: &Legend,
    panels: usize,
) -> Result<Vec<DrawingArea<DB, Shift>>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let body = headed(root, title, TITLE_HEIGHT, TITLE_SIZE)?;
    let height = body.dim_in_pixel().1;
    let (panels_area, legend_area) = body.split_vertically(height - legend.height());
    legend.draw(&legend_area)?;
    Ok(panels_area.split_evenly((1, panels.max(1))))
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn chart<'a, DB: DrawingBackend>(
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
fn plot_size((width, height): (u32, u32), x_label_area: u32) -> (f64, f64) {
    let w = width
        .saturating_sub(MARGIN + MARGIN_RIGHT + Y_LABEL_AREA)
        .max(1);
    let h = height.saturating_sub(2 * MARGIN + x_label_area).max(1);
    (f64::from(w), f64::from(h))
}

fn axes<DB: DrawingBackend>(chart: &mut Chart<DB>, x_label: &str, y_label: &str) -> Result<()>
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
fn tick(value: &f64) -> String {
    let rounded: f64 = format!("{value:.9e}").parse().unwrap_or(*value);
    // Adding zero turns -0 into 0.
    format!("{}", rounded + 0.0)
}

/// The span of the finite `values`, padded by 5% on each side; a single value (or values
/// too close to tell apart) gets a small span around it, and no value [0, 1].
fn padded_range(values: impl IntoIterator<Item = f64>) -> Range<f64> {
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

/// Splits `points` into runs of finite points, so that a line breaks where a value is
/// missing instead of joining across it.
fn finite_runs(points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    points
        .split(|(x, y)| !(x.is_finite() && y.is_finite()))
        .filter(|run| !run.is_empty())
        .map(<[_]>::to_vec)
        .collect()
}

struct Reliability<'a> {
    title: &'a str,
    panels: &'a [ReliabilityPanel<'a>],
    legend: Legend,
}

impl Picture for Reliability<'_> {
    fn size(&self) -> (u32, u32) {
        (
            figure_width(PANEL_WIDTH, self.panels.len()),
            TITLE_HEIGHT + RELIABILITY_HEIGHT + self.legend.height(),
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let areas = layout(root, self.title, &self.legend, self.panels.len())?;
        for (i, area) in areas.iter().enumerate() {
            match self.panels.get(i) {
                Some(panel) => reliability_panel(area, &panel.title, panel.bins, panel.ece)?,
                None => reliability_panel(area, "", &[], None)?,
            }
        }
        Ok(())
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

struct ErrorBars<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    series: &'a [Series],
    legend: Legend,
}

impl Picture for ErrorBars<'_> {
    fn size(&self) -> (u32, u32) {
        (
            ERROR_BAR_WIDTH,
            TITLE_HEIGHT + PANEL_HEIGHT + self.legend.height(),
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let areas = layout(root, self.title, &self.legend, 1)?;
        // Finite points only, in order of x; a bar only where the std is positive.
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
        let has_bar = |p: &MeanPoint| p.std.is_finite() && p.std > 0.0;
        let x = padded_range(series.iter().flatten().map(|p| p.x));
        let y = padded_range(series.iter().flatten().flat_map(|p| {
            let std = if has_bar(p) { p.std } else { 0.0 };
            [p.mean - std, p.mean + std]
        }));
        let mut chart = chart(&areas[0], x, y, X_LABEL_AREA)?;
        axes(&mut chart, self.x_label, self.y_label)?;
        for (i, points) in series.iter().enumerate() {
            let colour = line_colour(i);
            let style = colour.stroke_width(2);
            chart.draw_series(LineSeries::new(points.iter().map(|p| (p.x, p.mean)), style))?;
            for p in points.iter().filter(|p| has_bar(p)) {
                let (low, high) = (p.mean - p.std, p.mean + p.std);
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

struct LinePanels<'a> {
    title: &'a str,
    panels: &'a [LinePanel],
    /// Line colour index by label, shared by all panels.
    colours: BTreeMap<&'a str, usize>,
    legend: Legend,
}

impl Picture for LinePanels<'_> {
    fn size(&self) -> (u32, u32) {
        (
            figure_width(PANEL_WIDTH, self.panels.len()),
            TITLE_HEIGHT + PANEL_HEIGHT + self.legend.height(),
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let areas = layout(root, self.title, &self.legend, self.panels.len())?;
        let empty = LinePanel {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            lines: Vec::new(),
        };
        for (i, area) in areas.iter().enumerate() {
            let panel = self.panels.get(i).unwrap_or(&empty);
            let body = headed(area, &panel.title, CAPTION_HEIGHT, CAPTION_SIZE)?;
            let finite: Vec<(f64, f64)> = panel
                .lines
                .iter()
                .flat_map(|l| &l.points)
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            let x = padded_range(finite.iter().map(|p| p.0));
            let y = padded_range(finite.iter().map(|p| p.1));
            let mut chart = chart(&body, x, y, X_LABEL_AREA)?;
            axes(&mut chart, &panel.x_label, &panel.y_label)?;
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
        }
        Ok(())
    }
}

struct Scatter<'a> {
    title: &'a str,
    panels: &'a [ScatterPanel],
    legend: Legend,
}

impl Picture for Scatter<'_> {
    fn size(&self) -> (u32, u32) {
        (
            figure_width(PANEL_WIDTH, self.panels.len()),
            TITLE_HEIGHT + PANEL_HEIGHT + self.legend.height(),
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let areas = layout(root, self.title, &self.legend, self.panels.len())?;
        for (i, area) in areas.iter().enumerate() {
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
            chart.draw_series(points.iter().map(|&(point, class)| {
                Circle::new(point, 2, class_colour(class).mix(0.8).filled())
            }))?;
        }
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

    #[test]
    fn equal_aspect_gives_both_axes_one_scale() {
        let (x, y) = equal_aspect(0.0..10.0, 0.0..1.0, (400.0, 200.0));
        assert_eq!(x, 0.0..10.0);
        assert_eq!(y, -2.0..3.0);
        let (x, y) = equal_aspect(0.0..1.0, 0.0..10.0, (400.0, 200.0));
        assert_eq!((x, y), (-9.5..10.5, 0.0..10.0));
    }

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(&10.0), "10");
        assert_eq!(tick(&(0.1 * 3.0)), "0.3");
        assert_eq!(tick(&-0.0), "0");
        assert_eq!(tick(&0.025), "0.025");
        assert_eq!(tick(&-2.5), "-2.5");
    }

    #[test]
    fn legend_entries_wrap_into_rows() {
        let entries = |n: usize| {
            (0..n)
                .map(|i| (Key::Line(line_colour(i)), format!("group number {i}")))
                .collect()
        };
        let one = Legend::new(entries(1), 480).unwrap();
        assert_eq!(
            (one.rows.len(), one.height()),
            (1, LEGEND_ROW + 2 * LEGEND_PADDING)
        );
        let many = Legend::new(entries(12), 480).unwrap();
        assert!(many.rows.len() > 2);
        assert_eq!(many.rows.iter().map(Vec::len).sum::<usize>(), 12);
        for row in &many.rows {
            let width: i32 = row.iter().map(|(_, w)| w + ENTRY_GAP).sum::<i32>() - ENTRY_GAP;
            assert!(row.len() == 1 || width <= 480 - 2 * LEGEND_PADDING as i32);
        }
        assert_eq!(Legend::new(Vec::new(), 480).unwrap().height(), 0);
    }
}
