//! The report's figures, drawn from a grouped [`Report`] with [`super::plot`]:
//! reliability diagrams per group (before and after temperature scaling), metrics
//! against the smoothing ε with error bars, their per-method bar charts when the loss
//! section itself is swept, and training curves.

use super::plot::{self, Figure, Line, LinePanel, MeanPoint, ReliabilityPanel, Series};
use super::summary::{Group, Report, METRICS};
use crate::calibration::ReliabilityBin;
use anyhow::Result;
use serde_json::Value;

/// The key the "against ε" figures put on their x axis.
pub const SMOOTHING_KEY: &str = "loss.smoothing";

/// The key of the whole loss section: grouping by it compares training methods.
pub const LOSS_KEY: &str = "loss";

/// The metrics drawn against ε and per method: the figures' stem prefix, the report
/// metrics they show and the y axis.
const COMPARED: [(&str, &[&str], &str); 3] = [
    ("ece", &["ece", "ece_scaled"], "test ECE (15 bins)"),
    ("accuracy", &["accuracy"], "test accuracy"),
    ("logit-gap", &["logit_gap"], "mean true-class logit gap"),
];

/// A figure and the file stem it is saved under.
pub struct NamedFigure {
    pub stem: String,
    pub figure: Figure,
}

/// Every figure the report has data for.
pub fn all(report: &Report) -> Result<Vec<NamedFigure>> {
    let mut figures = vec![];
    for group in &report.groups {
        if let Some(figure) = reliability(report, group)? {
            let mut stem = format!("reliability-{}", slug(&report.label(group)));
            // Labels that differ only in characters a file name cannot hold.
            if figures.iter().any(|f: &NamedFigure| f.stem == stem) {
                stem = format!("{stem}-{}", figures.len() + 1);
            }
            figures.push(NamedFigure { stem, figure });
        }
    }
    for &(name, metrics, y_label) in &COMPARED {
        let series = against_smoothing(report, metrics);
        if !series.is_empty() {
            let title = format!("{y_label} against label smoothing ε (mean ± std over seeds)");
            let figure = plot::error_bar_lines(&title, "smoothing ε", y_label, &series)?;
            figures.push(NamedFigure {
                stem: format!("{name}-vs-smoothing"),
                figure,
            });
        }
    }
    for &(name, metrics, y_label) in &COMPARED {
        if let Some(groups) = by_method(report, metrics) {
            let measures: Vec<String> = metrics
                .iter()
                .map(|&m| METRICS[metric_index(m)].label.clone())
                .collect();
            let title = format!("{y_label} per training method (mean ± std over seeds)");
            figures.push(NamedFigure {
                stem: format!("{name}-by-method"),
                figure: plot::grouped_bars(&title, y_label, &measures, &groups)?,
            });
        }
    }
    let panels = training_curves(report);
    if panels.iter().any(|p| !p.lines.is_empty()) {
        figures.push(NamedFigure {
            stem: "training-curves".to_string(),
            figure: plot::line_panels("Training curves (mean over seeds)", &panels)?,
        });
    }
    Ok(figures)
}

/// The position in [`METRICS`] of the metric called `name`.
fn metric_index(name: &str) -> usize {
    METRICS
        .iter()
        .position(|m| m.name == name)
        .expect("a known metric")
}

/// The position of grouping key `key` when its groups take at least two values.
fn varied_key(report: &Report, key: &str) -> Option<usize> {
    let index = report.keys.iter().position(|k| k == key)?;
    let distinct: std::collections::BTreeSet<String> = report
        .groups
        .iter()
        .map(|g| g.key[index].to_string())
        .collect();
    (distinct.len() >= 2).then_some(index)
}

/// The method-comparison counterpart of the "against ε" figures: one cluster of bars
/// per group, when the whole loss section is a grouping key with several values.
fn by_method(report: &Report, metric_names: &[&str]) -> Option<Vec<plot::BarGroup>> {
    varied_key(report, LOSS_KEY)?;
    let groups = report
        .groups
        .iter()
        .map(|group| plot::BarGroup {
            label: report.label(group),
            bars: metric_names
                .iter()
                .map(|&name| {
                    let stat = group.stats[metric_index(name)];
                    Some(MeanPoint {
                        x: 0.0,
                        mean: stat.mean?,
                        std: stat.std.unwrap_or(0.0),
                    })
                })
                .collect(),
        })
        .collect();
    Some(groups)
}

/// File-name-safe text: letters, digits, `.`, `_` and `-`.
fn slug(label: &str) -> String {
    let mut out = String::new();
    for c in label.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// The bins of several runs pooled: counts add up, mean confidence and accuracy are
/// count-weighted. Runs binned differently from the first are left out.
pub fn pool_bins<'a>(runs: impl IntoIterator<Item = &'a [ReliabilityBin]>) -> Vec<ReliabilityBin> {
    let mut pooled: Vec<ReliabilityBin> = vec![];
    let mut sums: Vec<(f64, f64)> = vec![];
    for bins in runs {
        if pooled.is_empty() {
            pooled = bins.to_vec();
            for bin in &mut pooled {
                bin.count = 0;
            }
            sums = vec![(0.0, 0.0); bins.len()];
        }
        let same_edges = bins.len() == pooled.len()
            && bins
                .iter()
                .zip(&pooled)
                .all(|(a, b)| a.lower == b.lower && a.upper == b.upper);
        if !same_edges {
            continue;
        }
        for ((bin, total), sum) in bins.iter().zip(&mut pooled).zip(&mut sums) {
            if let (Some(conf), Some(acc)) = (bin.confidence, bin.accuracy) {
                total.count += bin.count;
                sum.0 += conf * bin.count as f64;
                sum.1 += acc * bin.count as f64;
            }
        }
    }
    for (bin, (conf, acc)) in pooled.iter_mut().zip(sums) {
        let n = bin.count as f64;
        bin.confidence = (bin.count > 0).then(|| conf / n);
        bin.accuracy = (bin.count > 0).then(|| acc / n);
    }
    pooled
}

/// ECE of binned data: Σ_m (|B_m|/n)·|acc(B_m) − conf(B_m)|.
pub fn binned_ece(bins: &[ReliabilityBin]) -> Option<f64> {
    let n: usize = bins.iter().map(|b| b.count).sum();
    (n > 0).then(|| {
        bins.iter()
            .filter_map(|b| Some(b.count as f64 * (b.accuracy? - b.confidence?).abs()))
            .sum::<f64>()
            / n as f64
    })
}

/// The group's reliability diagrams pooled over its completed runs: before and (when
/// fitted) after temperature scaling.
fn reliability(report: &Report, group: &Group) -> Result<Option<Figure>> {
    let metrics: Vec<_> = report
        .runs(group)
        .filter_map(|r| r.result()?.metrics.as_ref())
        .collect();
    if metrics.is_empty() {
        return Ok(None);
    }
    let before = pool_bins(metrics.iter().map(|m| m.test.reliability.as_slice()));
    let scaled: Vec<_> = metrics
        .iter()
        .filter_map(|m| m.test_scaled.as_ref())
        .collect();
    let after = pool_bins(scaled.iter().map(|m| m.reliability.as_slice()));
    let temperatures: Vec<f64> = metrics
        .iter()
        .filter_map(|m| Some(m.temperature.as_ref()?.temperature))
        .collect();
    let mut panels = vec![ReliabilityPanel {
        title: "before temperature scaling".to_string(),
        bins: &before,
        ece: binned_ece(&before),
    }];
    if !scaled.is_empty() {
        let mean_t = temperatures.iter().sum::<f64>() / temperatures.len().max(1) as f64;
        panels.push(ReliabilityPanel {
            title: format!("after temperature scaling (mean T = {mean_t:.3})"),
            bins: &after,
            ece: binned_ece(&after),
        });
    }
    let title = format!(
        "{} — test set, {} run(s) pooled",
        report.label(group),
        metrics.len()
    );
    plot::reliability_diagrams(&title, &panels).map(Some)
}

/// One series per combination of the other grouping keys and per metric, x = ε.
/// Empty when ε is not a grouping key or takes a single value.
fn against_smoothing(report: &Report, metric_names: &[&str]) -> Vec<Series> {
    let Some(x_index) = varied_key(report, SMOOTHING_KEY) else {
        return vec![];
    };
    let mut series: Vec<(Vec<Value>, &str, Series)> = vec![];
    for group in &report.groups {
        let Some(x) = group.key[x_index].as_f64() else {
            continue;
        };
        let others: Vec<Value> = group
            .key
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != x_index)
            .map(|(_, v)| v.clone())
            .collect();
        for &name in metric_names {
            let m = METRICS
                .iter()
                .position(|m| m.name == name)
                .expect("a known metric");
            let stat = group.stats[m];
            let Some(mean) = stat.mean else { continue };
            let point = MeanPoint {
                x,
                mean,
                std: stat.std.unwrap_or(0.0),
            };
            match series
                .iter_mut()
                .find(|(o, n, _)| *o == others && *n == name)
            {
                Some((_, _, s)) => s.points.push(point),
                None => {
                    let mut label: Vec<String> = report
                        .keys
                        .iter()
                        .zip(&group.key)
                        .enumerate()
                        .filter(|(i, _)| *i != x_index)
                        .map(|(_, (k, v))| super::summary::key_label(k, v))
                        .collect();
                    if metric_names.len() > 1 {
                        label.push(METRICS[m].label.clone());
                    }
                    let label = if label.is_empty() {
                        METRICS[m].label.clone()
                    } else {
                        label.join(", ")
                    };
                    series.push((
                        others.clone(),
                        name,
                        Series {
                            label,
                            points: vec![point],
                        },
                    ));
                }
            }
        }
    }
    series
        .into_iter()
        .map(|(_, _, mut s)| {
            s.points.sort_by(|a, b| a.x.total_cmp(&b.x));
            s
        })
        .collect()
}

/// Training loss and validation ECE per epoch, one line per group (the mean over the
/// group's completed runs that have the epoch).
fn training_curves(report: &Report) -> Vec<LinePanel> {
    type Get = fn(&crate::store::EpochRecord) -> Option<f64>;
    let panels: [(&str, &str, Get); 2] = [
        ("training loss", "loss", |e| Some(e.train_loss)),
        ("validation ECE", "ECE", |e| e.val_ece),
    ];
    panels
        .iter()
        .map(|&(title, y_label, get)| {
            let lines = report
                .groups
                .iter()
                .filter_map(|group| {
                    let mut sums: Vec<(f64, usize)> = vec![];
                    for run in report.runs(group) {
                        let history = match &run.outcome {
                            super::summary::Outcome::Completed(r) => &r.history,
                            _ => continue,
                        };
                        for (i, epoch) in history.iter().enumerate() {
                            if sums.len() <= i {
                                sums.push((0.0, 0));
                            }
                            if let Some(v) = get(epoch).filter(|v| v.is_finite()) {
                                sums[i].0 += v;
                                sums[i].1 += 1;
                            }
                        }
                    }
                    let points: Vec<(f64, f64)> = sums
                        .iter()
                        .enumerate()
                        .filter(|(_, (_, n))| *n > 0)
                        .map(|(i, (sum, n))| ((i + 1) as f64, sum / *n as f64))
                        .collect();
                    (!points.is_empty()).then(|| Line {
                        label: report.label(group),
                        points,
                    })
                })
                .collect();
            LinePanel {
                title: title.to_string(),
                x_label: "epoch".to_string(),
                y_label: y_label.to_string(),
                lines,
            }
        })
        .collect()
}
