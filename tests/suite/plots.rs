//! Report figures render to well-formed SVG and non-blank PNG of the stated size, with
//! their text, for ordinary data and for degenerate data (empty bins, NaN, a single
//! point, nothing at all).
//!
//! With SMOOTHLAB_PLOT_SAMPLES=<dir>, every figure drawn here is also written to <dir>
//! for a look.

use smoothlab::calibration::smooth::smooth_reliability;
use smoothlab::calibration::{Bootstrap, ReliabilityBin};
use smoothlab::report::plot::{
    error_bar_lines, line_panels, reliability_diagrams, reliability_overlay, scatter_panels,
    smooth_reliability_diagrams, Figure, Line, LinePanel, MeanPoint, OverlayPanel,
    ReliabilityPanel, ScatterPanel, Series, SmoothReliabilityPanel, Style,
};
use std::collections::HashSet;

/// Checks `figure` and returns its decoded RGB pixels.
fn check(figure: &Figure, name: &str, texts: &[&str]) -> Vec<[u8; 3]> {
    if let Some(dir) = std::env::var_os("SMOOTHLAB_PLOT_SAMPLES") {
        figure.write(dir.as_ref(), name).unwrap();
    }
    check_svg(figure, texts);
    check_png(figure)
}

/// Checks that the SVG is well formed, of the figure's size, and writes `texts`; returns
/// all its texts.
fn check_svg(figure: &Figure, texts: &[&str]) -> Vec<String> {
    let doc = roxmltree::Document::parse(&figure.svg).expect("well-formed SVG");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.attribute("width"),
        Some(figure.width.to_string().as_str())
    );
    assert_eq!(
        root.attribute("height"),
        Some(figure.height.to_string().as_str())
    );
    let written: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_owned())
        .collect();
    for text in texts {
        assert!(
            written.iter().any(|w| w == text),
            "{text:?} is not among the SVG's texts {written:?}"
        );
    }
    written
}

fn check_png(figure: &Figure) -> Vec<[u8; 3]> {
    let decoder = png::Decoder::new(std::io::Cursor::new(&figure.png));
    let mut reader = decoder.read_info().expect("a PNG header");
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buffer).expect("PNG image data");
    assert_eq!((info.width, info.height), (figure.width, figure.height));
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let pixels: Vec<[u8; 3]> = buffer[..info.buffer_size()]
        .chunks_exact(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    let colours: HashSet<[u8; 3]> = pixels.iter().copied().collect();
    assert!(colours.len() >= 8, "only {} colours", colours.len());
    let drawn = pixels.iter().filter(|&&p| p != [255; 3]).count();
    assert!(
        drawn * 100 >= pixels.len(),
        "only {drawn} of {} pixels are drawn",
        pixels.len()
    );
    pixels
}

/// Ten equal-width bins, overconfident: accuracy below confidence.
fn overconfident_bins() -> Vec<ReliabilityBin> {
    (0..10)
        .map(|i| {
            let (lower, upper) = (i as f64 / 10.0, (i + 1) as f64 / 10.0);
            let count = [0, 0, 3, 12, 30, 45, 60, 90, 150, 600][i];
            let confidence = (lower + upper) / 2.0;
            ReliabilityBin {
                lower,
                upper,
                count,
                confidence: (count > 0).then_some(confidence),
                accuracy: (count > 0).then_some(confidence * 0.85),
            }
        })
        .collect()
}

#[test]
fn reliability_diagrams_render_panels_side_by_side() {
    let before = overconfident_bins();
    let after: Vec<ReliabilityBin> = before
        .iter()
        .map(|b| ReliabilityBin {
            accuracy: b.confidence.map(|c| (c * 0.98).min(1.0)),
            ..b.clone()
        })
        .collect();
    let figure = reliability_diagrams(
        "MNIST, mlp, ε = 0",
        &[
            ReliabilityPanel {
                title: "before temperature scaling".into(),
                bins: &before,
                notes: vec!["ECE = 0.0712".into()],
            },
            ReliabilityPanel {
                title: "after, T = 1.42".into(),
                bins: &after,
                notes: vec!["ECE of the pooled bins = 0.0123".into(), "second".into()],
            },
        ],
        Style::default(),
    )
    .unwrap();
    assert_eq!(figure.width, 2 * 480);
    let pixels = check(
        &figure,
        "reliability",
        &[
            "MNIST, mlp, ε = 0",
            "before temperature scaling",
            "after, T = 1.42",
            "ECE = 0.0712",
            "ECE of the pooled bins = 0.0123",
            "second",
            "accuracy",
            "confidence",
            "samples",
            "perfect calibration",
            "over-confidence gap",
            "under-confidence gap",
            // Every non-empty bin's count over its bar, on the log axis' decades.
            "3",
            "600",
            "100",
        ],
    );
    // Over-confident bins only: above the legend (which shows both), the vermillion gap
    // fill is drawn and the green one is not.
    let panels = above_legend(&figure, &pixels);
    assert!(panels.contains(&OVER_FILL));
    assert!(!panels.contains(&UNDER_FILL));
}

const OVER_FILL: [u8; 3] = [0xF2, 0xBF, 0x99];
const UNDER_FILL: [u8; 3] = [0x99, 0xD8, 0xC7];

/// The pixels of a one-row figure above its one-row legend strip.
fn above_legend<'a>(figure: &Figure, pixels: &'a [[u8; 3]]) -> &'a [[u8; 3]] {
    &pixels[..(figure.height as usize - 80) * figure.width as usize]
}

#[test]
fn under_confident_bins_have_their_own_gap_colour() {
    let bins: Vec<ReliabilityBin> = overconfident_bins()
        .into_iter()
        .map(|b| ReliabilityBin {
            accuracy: b.confidence.map(|c| (c * 1.1).min(1.0)),
            ..b
        })
        .collect();
    let figure = reliability_diagrams(
        "under-confident",
        &[ReliabilityPanel {
            title: "all under".into(),
            bins: &bins,
            notes: vec![],
        }],
        Style::default(),
    )
    .unwrap();
    let pixels = check(&figure, "reliability_under", &["all under"]);
    let panels = above_legend(&figure, &pixels);
    assert!(panels.contains(&UNDER_FILL));
    assert!(!panels.contains(&OVER_FILL));
}

#[test]
fn the_figure_scale_sizes_panels_and_keeps_text() {
    let bins = overconfident_bins();
    let draw = |style| {
        reliability_diagrams(
            "scaled",
            &[ReliabilityPanel {
                title: "one".into(),
                bins: &bins,
                notes: vec![],
            }],
            style,
        )
        .unwrap()
    };
    let (normal, small) = (draw(Style::default()), draw(Style::new(0.75).unwrap()));
    assert_eq!((normal.width, small.width), (480, 360));
    assert!(small.height < normal.height);
    check(&small, "reliability_small", &["scaled", "one", "accuracy"]);
    assert!(Style::new(0.4).is_err() && Style::new(3.5).is_err());
}

#[test]
fn reliability_overlays_draw_every_group_in_one_panel() {
    let over = overconfident_bins();
    let calibrated: Vec<ReliabilityBin> = over
        .iter()
        .map(|b| ReliabilityBin {
            accuracy: b.confidence,
            ..b.clone()
        })
        .collect();
    let panels = [
        OverlayPanel {
            title: "before".into(),
            curves: vec![("ε = 0".into(), &over), ("ε = 0.1".into(), &calibrated)],
        },
        OverlayPanel {
            title: "after".into(),
            curves: vec![("ε = 0".into(), &calibrated), ("ε = 0.1".into(), &[])],
        },
    ];
    let figure = reliability_overlay("overlay", &panels, Style::default()).unwrap();
    assert_eq!(figure.width, 2 * 480);
    check(
        &figure,
        "reliability_overlay",
        &[
            "overlay",
            "before",
            "after",
            "ε = 0",
            "ε = 0.1",
            "perfect calibration",
        ],
    );
    let nothing = reliability_overlay("none", &[], Style::default()).unwrap();
    check(&nothing, "reliability_overlay_none", &["none"]);
}

#[test]
fn reliability_diagrams_skip_empty_bins_and_need_no_bins_or_panels() {
    let empty: Vec<ReliabilityBin> = (0..5)
        .map(|i| ReliabilityBin {
            lower: i as f64 / 5.0,
            upper: (i + 1) as f64 / 5.0,
            count: 0,
            confidence: None,
            accuracy: None,
        })
        .collect();
    let mut nan = overconfident_bins();
    nan[5].accuracy = Some(f64::NAN);
    nan[6].confidence = Some(f64::INFINITY);
    let figure = reliability_diagrams(
        "degenerate",
        &[
            ReliabilityPanel {
                title: "no samples".into(),
                bins: &empty,
                notes: vec![],
            },
            ReliabilityPanel {
                title: "no bins".into(),
                bins: &[],
                notes: vec![],
            },
            ReliabilityPanel {
                title: "NaN".into(),
                bins: &nan,
                notes: vec!["ECE = 0.5000".into()],
            },
        ],
        Style::default(),
    )
    .unwrap();
    check(
        &figure,
        "reliability_degenerate",
        &["no samples", "no bins", "ECE = 0.5000"],
    );
    assert!(!figure.svg.contains("= NaN"));

    let figure = reliability_diagrams("nothing", &[], Style::default()).unwrap();
    check(&figure, "reliability_none", &["nothing", "accuracy"]);
}

#[test]
fn error_bar_lines_render_series_with_a_legend() {
    let series = |label: &str, offset: f64| Series {
        label: label.into(),
        points: [0.0, 0.05, 0.1, 0.2, 0.3]
            .iter()
            .map(|&x| {
                let mean = 0.02 + offset + 0.3 * (x - 0.1f64).powi(2);
                let std = 0.004 + x * 0.01;
                MeanPoint {
                    x,
                    mean,
                    error: Some((mean - std, mean + std)),
                }
            })
            .collect(),
    };
    let figure = error_bar_lines(
        "ECE against label smoothing",
        "smoothing ε",
        "ECE",
        &[
            series("mlp, raw", 0.02),
            series("mlp, temperature scaled", 0.0),
            series("resnet20, raw", 0.04),
        ],
        Style::default(),
    )
    .unwrap();
    check(
        &figure,
        "error_bars",
        &[
            "ECE against label smoothing",
            "smoothing ε",
            "ECE",
            "mlp, raw",
            "mlp, temperature scaled",
            "resnet20, raw",
        ],
    );
}

#[test]
fn error_bar_lines_skip_non_finite_points_and_draw_single_points_and_nothing() {
    let point = |x, mean: f64, std: f64| MeanPoint {
        x,
        mean,
        error: Some((mean - std, mean + std)),
    };
    let figure = error_bar_lines(
        "degenerate",
        "x",
        "y",
        &[
            Series {
                label: "with NaN".into(),
                points: vec![
                    point(0.0, 1.0, f64::NAN),
                    point(0.1, f64::NAN, 0.1),
                    point(f64::INFINITY, 1.0, 0.1),
                    point(0.2, 1.5, 0.0),
                    point(0.3, 1.2, f64::INFINITY),
                ],
            },
            Series {
                label: "single".into(),
                points: vec![point(0.1, 1.1, 0.2)],
            },
            Series {
                label: "empty".into(),
                points: vec![],
            },
        ],
        Style::default(),
    )
    .unwrap();
    check(
        &figure,
        "error_bars_degenerate",
        &["with NaN", "single", "empty"],
    );

    let single = error_bar_lines(
        "one point",
        "x",
        "y",
        &[Series {
            label: "only".into(),
            points: vec![point(0.1, 0.5, 0.0)],
        }],
        Style::default(),
    )
    .unwrap();
    check(&single, "error_bars_single", &["one point", "only"]);

    let nothing = error_bar_lines("no series", "x", "y", &[], Style::default()).unwrap();
    check(&nothing, "error_bars_none", &["no series", "x", "y"]);
}

#[test]
fn line_panels_share_colours_and_legend() {
    let curve = |label: &str, scale: f64, f: fn(f64) -> f64| Line {
        label: label.into(),
        points: (1..=30).map(|e| (e as f64, scale * f(e as f64))).collect(),
        band: (1..=30)
            .map(|e| {
                let y = scale * f(e as f64);
                (e as f64, 0.9 * y, 1.1 * y)
            })
            .collect(),
    };
    let figure = line_panels(
        "training curves",
        &[
            LinePanel {
                title: "train loss".into(),
                x_label: "epoch".into(),
                y_label: "loss".into(),
                lines: vec![
                    curve("ε = 0", 1.0, |e| 2.0 / e),
                    curve("ε = 0.1", 1.3, |e| 2.0 / e + 0.1),
                ],
            },
            LinePanel {
                title: "validation ECE".into(),
                x_label: "epoch".into(),
                y_label: "ECE".into(),
                lines: vec![
                    curve("ε = 0", 0.01, |e| 1.0 + e / 10.0),
                    curve("ε = 0.1", 0.01, |e| 3.0 - e / 20.0),
                ],
            },
        ],
        2,
        Style::default(),
    )
    .unwrap();
    let texts = [
        "training curves",
        "train loss",
        "validation ECE",
        "epoch",
        "loss",
    ];
    check(
        &figure,
        "line_panels",
        &[&texts[..], &["ECE", "ε = 0", "ε = 0.1"]].concat(),
    );
    // One legend entry per label, not per line.
    let written = check_svg(&figure, &[]);
    assert_eq!(written.iter().filter(|t| *t == "ε = 0.1").count(), 1);
}

#[test]
fn line_panels_break_at_non_finite_points_and_draw_single_points_and_nothing() {
    let figure = line_panels(
        "degenerate",
        &[
            LinePanel {
                title: "diverged".into(),
                x_label: "epoch".into(),
                y_label: "loss".into(),
                lines: vec![Line {
                    label: "NaN after epoch 3".into(),
                    points: vec![
                        (1.0, 2.0),
                        (2.0, 1.0),
                        (3.0, f64::NAN),
                        (4.0, 0.5),
                        (5.0, 0.4),
                    ],
                    band: vec![(1.0, 1.5, 2.5), (2.0, f64::NAN, 1.2), (4.0, 0.4, 0.6)],
                }],
            },
            LinePanel {
                title: "one epoch".into(),
                x_label: "epoch".into(),
                y_label: "ECE".into(),
                lines: vec![Line {
                    label: "single".into(),
                    points: vec![(1.0, 0.03)],
                    band: vec![(1.0, 0.02, 0.04)],
                }],
            },
            LinePanel {
                title: "no lines".into(),
                x_label: "epoch".into(),
                y_label: "accuracy".into(),
                lines: vec![Line {
                    label: "empty".into(),
                    points: vec![],
                    band: vec![],
                }],
            },
        ],
        2,
        Style::default(),
    )
    .unwrap();
    check(
        &figure,
        "line_panels_degenerate",
        &["diverged", "one epoch", "no lines", "single"],
    );
    // Three panels, two per row: the figure is two panels wide and two rows tall.
    let single_row = line_panels("degenerate", &[], 2, Style::default()).unwrap();
    assert_eq!(figure.width, 2 * 480);
    assert!(figure.height > single_row.height + 300);
    let nothing = line_panels("no panels", &[], 3, Style::default()).unwrap();
    check(&nothing, "line_panels_none", &["no panels"]);
}

/// `per_class` points in a tight or loose cluster around each class's corner of a circle.
fn clusters(classes: usize, per_class: usize, spread: f64) -> (Vec<(f64, f64)>, Vec<usize>) {
    let mut points = Vec::new();
    let mut labels = Vec::new();
    for class in 0..classes {
        let angle = class as f64 / classes as f64 * std::f64::consts::TAU;
        for i in 0..per_class {
            let t = i as f64 * 2.399963;
            let r = spread * (i as f64 / per_class as f64).sqrt();
            points.push((
                3.0 * angle.cos() + r * t.cos(),
                2.0 * angle.sin() + r * t.sin(),
            ));
            labels.push(class);
        }
    }
    (points, labels)
}

#[test]
fn scatter_panels_colour_points_by_class() {
    let names: Vec<String> = ["airplane", "automobile", "bird"]
        .map(String::from)
        .to_vec();
    let panel = |title: &str, spread| {
        let (points, classes) = clusters(3, 200, spread);
        ScatterPanel {
            title: title.into(),
            points,
            classes,
            class_names: names.clone(),
        }
    };
    let figure = scatter_panels(
        "penultimate layer, CIFAR-10",
        &[panel("ε = 0", 1.2), panel("ε = 0.1", 0.4)],
        Style::default(),
    )
    .unwrap();
    let pixels = check(
        &figure,
        "scatter",
        &[
            "penultimate layer, CIFAR-10",
            "ε = 0",
            "ε = 0.1",
            "airplane",
            "automobile",
            "bird",
        ],
    );
    let colours: HashSet<[u8; 3]> = pixels.into_iter().collect();
    assert!(colours.len() >= 20);
}

#[test]
fn scatter_panels_handle_unnamed_classes_single_points_and_nothing() {
    let figure = scatter_panels(
        "degenerate",
        &[
            ScatterPanel {
                title: "unnamed and NaN".into(),
                points: vec![(0.0, 0.0), (f64::NAN, 1.0), (2.0, 1.0), (3.0, 3.0)],
                // One class fewer than points: the last point has none and is left out.
                classes: vec![0, 1, 12],
                class_names: vec![],
            },
            ScatterPanel {
                title: "single".into(),
                points: vec![(1.0, 1.0)],
                classes: vec![0],
                class_names: vec!["zero".into()],
            },
            ScatterPanel {
                title: "empty".into(),
                points: vec![],
                classes: vec![],
                class_names: vec![],
            },
        ],
        Style::default(),
    )
    .unwrap();
    // Class 0 is named by the second panel only.
    check(
        &figure,
        "scatter_degenerate",
        &["single", "zero", "class 1", "class 12"],
    );
    assert!(!check_svg(&figure, &[]).iter().any(|t| t == "class 0"));
    let nothing = scatter_panels("no panels", &[], Style::default()).unwrap();
    check(&nothing, "scatter_none", &["no panels"]);
}

#[test]
fn png_text_is_rasterised() {
    let titled = |title: &str| error_bar_lines(title, "x", "y", &[], Style::default()).unwrap();
    let (a, b) = (
        check_png(&titled("first title")),
        check_png(&titled("second")),
    );
    let title_strip = 40 * 640;
    let dark = |pixels: &[[u8; 3]]| {
        pixels[..title_strip]
            .iter()
            .filter(|p| p.iter().all(|&c| c < 100))
            .count()
    };
    assert!(
        dark(&a) > 50 && dark(&b) > 50,
        "no glyphs in the title strip"
    );
    assert_ne!(a[..title_strip], b[..title_strip]);
    assert_eq!(a[title_strip..], b[title_strip..]);
}

#[test]
fn figure_write_writes_svg_and_png() {
    let figure = error_bar_lines("written", "x", "y", &[], Style::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("figures");
    let [svg, png] = figure.write(&target, "ece").unwrap();
    assert_eq!(svg, target.join("ece.svg"));
    assert_eq!(png, target.join("ece.png"));
    assert_eq!(std::fs::read_to_string(&svg).unwrap(), figure.svg);
    assert_eq!(std::fs::read(&png).unwrap(), figure.png);
    let mut names: Vec<_> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["ece.png", "ece.svg"]);
}

#[test]
fn smooth_reliability_diagrams_draw_curve_band_and_density() {
    // Confidences in [0.5, 1), right as often as the square of the confidence.
    let confidences: Vec<f64> = (0..2000)
        .map(|i| 0.5 + 0.5 * (i as f64 + 0.5) / 2000.0)
        .collect();
    let correct: Vec<bool> = confidences
        .iter()
        .enumerate()
        .map(|(i, c)| ((i * 7919) % 1000) as f64 / 1000.0 < c * c)
        .collect();
    let bootstrap = Bootstrap {
        resamples: 50,
        level: 0.9,
        seed: 0,
    };
    let banded = smooth_reliability(&confidences, &correct, Some(&bootstrap));
    let plain = smooth_reliability(&confidences, &correct, None);
    let figure = smooth_reliability_diagrams(
        "smoothed",
        "90 % band",
        &[
            SmoothReliabilityPanel {
                title: "with a band".into(),
                curve: &banded,
            },
            SmoothReliabilityPanel {
                title: "without".into(),
                curve: &plain,
            },
        ],
        Style::default(),
    )
    .unwrap();
    let label = format!(
        "smooth ECE = {:.4} (σ = {:.3})",
        banded.smooth_ece.value, banded.smooth_ece.sigma
    );
    check(
        &figure,
        "smooth_reliability",
        &["with a band", "without", "90 % band", "density", &label],
    );
    assert!(figure.width > 2 * 400);
}

#[test]
fn a_title_wider_than_its_figure_wraps_instead_of_being_clipped() {
    let series = [Series {
        label: "one".into(),
        points: vec![MeanPoint {
            x: 0.0,
            mean: 1.0,
            error: None,
        }],
    }];
    let short = error_bar_lines("short", "x", "y", &series, Style::default()).unwrap();
    let words = "a title far longer than the figure is wide, which must wrap onto further lines instead of running off both edges";
    let long = error_bar_lines(words, "x", "y", &series, Style::default()).unwrap();
    assert_eq!(long.width, short.width);
    assert!(long.height > short.height);
    let written = check_svg(&long, &[]);
    let lines: Vec<&String> = written
        .iter()
        .filter(|t| words.contains(t.as_str()))
        .collect();
    assert!(lines.len() >= 2, "{written:?}");
    let rejoined: Vec<&str> = lines.iter().map(|l| l.as_str()).collect();
    assert_eq!(rejoined.join(" "), words);
}
