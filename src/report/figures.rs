//! The report's figures, drawn from a grouped [`Report`] with [`super::plot`]:
//! reliability diagrams per group (binned, and smoothed with a bootstrap band, before
//! and after temperature scaling) and every group's curves overlaid, metrics against
//! the smoothing ε with error bars, their per-method bar charts when the loss section
//! itself is swept, the calibrators compared when runs fitted more than temperature
//! scaling, and training curves with bands over seeds. Every title names the data set,
//! the model and the test set's size.

use super::plot::{self, Figure, Line, LinePanel, MeanPoint, ReliabilityPanel, Series, Style};
use super::plot::{BarGroup, OverlayPanel, SmoothReliabilityPanel};
use super::pooled::pooled_test;
use super::summary::{Group, Report, Stat};
use crate::calibration::calibrators::top_label;
use crate::calibration::smooth::smooth_reliability;
use crate::calibration::{Bootstrap, Calibrator, Metrics, ReliabilityBin};
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

/// What the error bars of the comparison figures show.
const ERROR_BARS: &str = "± std over seeds, or one run's bootstrap interval";

/// The bootstrap of the smoothed reliability diagrams' bands: relplot's default of
/// 200 resamples at 95 %, from a fixed seed so that a report redraws the same band.
const BAND_BOOTSTRAP: Bootstrap = Bootstrap {
    resamples: 200,
    level: 0.95,
    seed: 0,
};

/// The calibrator-comparison figures (Guo et al. 2017, Tables 1 and 2): the stem
/// prefix, the metric and the y axis.
const CALIBRATOR_COMPARED: [(&str, &str, &str); 2] =
    [("ece", "ece", "test ECE"), ("nll", "nll", "test NLL")];

/// A figure and the file stem it is saved under.
pub struct NamedFigure {
    pub stem: String,
    pub figure: Figure,
}

/// Every figure the report has data for, drawn at `style`.
pub fn all(report: &Report, style: Style) -> Result<Vec<NamedFigure>> {
    let setting = Setting::of(report);
    let subject = &setting.subject;
    // Per group with a completed run: its label and pooled bins.
    let mut pooled: Vec<(String, PooledBins)> = vec![];
    let mut figures = vec![];
    for group in &report.groups {
        if let Some(bins) = PooledBins::of(report, group) {
            let label = report.label(group);
            let figure = reliability(&label, &bins, subject, style)?;
            pooled.push((label, bins));
            let mut stem = format!("reliability-{}", slug(&report.label(group)));
            // Labels that differ only in characters a file name cannot hold.
            if figures.iter().any(|f: &NamedFigure| f.stem == stem) {
                stem = format!("{stem}-{}", figures.len() + 1);
            }
            if let Some(smooth) = smoothed_reliability(report, group, subject, style)? {
                figures.push(NamedFigure {
                    stem: format!("smooth-{stem}"),
                    figure: smooth,
                });
            }
            figures.push(NamedFigure { stem, figure });
        }
    }
    if let Some(figure) = reliability_overlay(&pooled, &setting, style)? {
        figures.push(NamedFigure {
            stem: "reliability-overlay".to_string(),
            figure,
        });
    }
    for &(name, metrics, y_label) in &COMPARED {
        let series = against_smoothing(report, metrics);
        if !series.is_empty() {
            let title =
                format!("{setting}: {y_label} against label smoothing ε (mean, {ERROR_BARS})");
            let figure = plot::error_bar_lines(&title, "smoothing ε", y_label, &series, style)?;
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
                .map(|&m| report.metrics[metric_index(report, m)].label.clone())
                .collect();
            let title = format!("{setting}: {y_label} per training method (mean, {ERROR_BARS})");
            figures.push(NamedFigure {
                stem: format!("{name}-by-method"),
                figure: plot::grouped_bars(&title, y_label, &measures, &groups, style)?,
            });
        }
    }
    for &(name, metric, y_label) in &CALIBRATOR_COMPARED {
        if let Some((measures, groups)) = by_calibrator(report, metric) {
            let title =
                format!("{setting}: {y_label} per post-hoc calibrator (mean, {ERROR_BARS})");
            figures.push(NamedFigure {
                stem: format!("{name}-by-calibrator"),
                figure: plot::grouped_bars(&title, y_label, &measures, &groups, style)?,
            });
        }
    }
    let panels = training_curves(report);
    if panels.iter().any(|p| !p.lines.is_empty()) {
        let title = format!("{setting}: training curves (mean over seeds, band ± std)");
        figures.push(NamedFigure {
            stem: "training-curves".to_string(),
            figure: plot::line_panels(&title, &panels, CURVE_COLUMNS, style)?,
        });
    }
    Ok(figures)
}

/// Panels per row of the training curves.
const CURVE_COLUMNS: usize = 3;

/// What the titles say the runs are: the data set and the model of the completed runs
/// (several of either joined by " / "), and the test set's size per run.
struct Setting {
    subject: String,
    test_sizes: String,
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.test_sizes.as_str() {
            "" => write!(f, "{}", self.subject),
            sizes => write!(f, "{}, N = {sizes} test samples per run", self.subject),
        }
    }
}

impl Setting {
    fn of(report: &Report) -> Self {
        let results: Vec<_> = report
            .collected
            .runs
            .iter()
            .filter_map(|r| r.result())
            .collect();
        let distinct = |labels: &mut dyn Iterator<Item = String>| {
            let mut seen: Vec<String> = vec![];
            for label in labels {
                if !seen.contains(&label) {
                    seen.push(label);
                }
            }
            seen.join(" / ")
        };
        let data = distinct(&mut results.iter().map(|r| r.config.dataset.label()));
        let models = distinct(&mut results.iter().map(|r| r.config.model.label()));
        let sizes = distinct(
            &mut results
                .iter()
                .filter_map(|r| Some(thousands(r.metrics.as_ref()?.test.n))),
        );
        let subject = if data.is_empty() {
            "no completed runs".to_string()
        } else {
            format!("{data}, {models}")
        };
        Self {
            subject,
            test_sizes: sizes,
        }
    }
}

/// `n` with a comma between thousands: 10,000.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The position in the report's metrics of one the figures know by name.
fn metric_index(report: &Report, name: &str) -> usize {
    report
        .metric_index(name)
        .expect("a metric every report has")
}

/// A group's statistic as a point: the mean, with the std over seeds as its error bar,
/// or a single run's bootstrap interval.
fn mean_point(x: f64, stat: &Stat) -> Option<MeanPoint> {
    let mean = stat.mean?;
    let error = match (stat.std, stat.interval) {
        (Some(std), _) => Some((mean - std, mean + std)),
        (None, Some(interval)) => Some((interval.low, interval.high)),
        (None, None) => None,
    };
    Some(MeanPoint { x, mean, error })
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
fn by_method(report: &Report, metric_names: &[&str]) -> Option<Vec<BarGroup>> {
    varied_key(report, LOSS_KEY)?;
    let indices: Vec<usize> = metric_names
        .iter()
        .map(|&name| metric_index(report, name))
        .collect();
    Some(bar_groups(report, &indices))
}

/// One cluster per group with a bar per metric at `indices`.
fn bar_groups(report: &Report, indices: &[usize]) -> Vec<BarGroup> {
    report
        .groups
        .iter()
        .map(|group| BarGroup {
            label: report.label(group),
            bars: indices
                .iter()
                .map(|&i| mean_point(0.0, &group.stats[i]))
                .collect(),
        })
        .collect()
}

/// `metric` uncalibrated, after temperature scaling and after each other calibrator the
/// runs fitted: the bars' names and the clusters, one per group. `None` when the runs
/// fitted nothing beyond temperature scaling.
fn by_calibrator(report: &Report, metric: &str) -> Option<(Vec<String>, Vec<BarGroup>)> {
    let others: Vec<(String, usize)> = Calibrator::ALL
        .iter()
        .filter(|&&c| c != Calibrator::Temperature)
        .filter_map(|c| {
            let index = report.metric_index(&format!("{metric}_{}", c.name()))?;
            Some((c.label().to_string(), index))
        })
        .collect();
    if others.is_empty() {
        return None;
    }
    let mut columns = vec![
        ("uncalibrated".to_string(), metric_index(report, metric)),
        (
            Calibrator::Temperature.label().to_string(),
            metric_index(report, &format!("{metric}_scaled")),
        ),
    ];
    columns.extend(others);
    let (names, indices): (Vec<String>, Vec<usize>) = columns.into_iter().unzip();
    Some((names, bar_groups(report, &indices)))
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

/// A group's test-set bins pooled over its completed runs, before and (when every run
/// fitted it) after temperature scaling, with the runs' own ECEs and mean T.
struct PooledBins {
    runs: usize,
    before: Vec<ReliabilityBin>,
    runs_ece: Vec<f64>,
    after: Option<ScaledBins>,
}

struct ScaledBins {
    bins: Vec<ReliabilityBin>,
    runs_ece: Vec<f64>,
    mean_temperature: f64,
}

impl PooledBins {
    /// `None` when the group has no completed run.
    fn of(report: &Report, group: &Group) -> Option<Self> {
        let metrics: Vec<_> = report
            .runs(group)
            .filter_map(|r| r.result()?.metrics.as_ref())
            .collect();
        if metrics.is_empty() {
            return None;
        }
        let scaled: Option<Vec<(&Metrics, f64)>> = metrics
            .iter()
            .map(|m| Some((m.test_scaled.as_ref()?, m.temperature.as_ref()?.temperature)))
            .collect();
        let after = scaled.map(|scaled| ScaledBins {
            bins: pool_bins(scaled.iter().map(|(m, _)| m.reliability.as_slice())),
            runs_ece: scaled.iter().map(|(m, _)| m.ece).collect(),
            mean_temperature: scaled.iter().map(|(_, t)| t).sum::<f64>() / scaled.len() as f64,
        });
        Some(Self {
            runs: metrics.len(),
            before: pool_bins(metrics.iter().map(|m| m.test.reliability.as_slice())),
            runs_ece: metrics.iter().map(|m| m.test.ece).collect(),
            after,
        })
    }
}

/// A group's reliability diagrams from its pooled bins. The ECE written on a panel is
/// the pooled bins' (the figure says so), which differs from the table's mean of the
/// runs' ECEs: both are written when the group has several runs.
fn reliability(label: &str, pooled: &PooledBins, subject: &str, style: Style) -> Result<Figure> {
    let mut panels = vec![ReliabilityPanel {
        title: "before temperature scaling".to_string(),
        bins: &pooled.before,
        notes: ece_notes(&pooled.before, &pooled.runs_ece),
    }];
    if let Some(after) = &pooled.after {
        panels.push(ReliabilityPanel {
            title: format!(
                "after temperature scaling (mean T = {:.3})",
                after.mean_temperature
            ),
            bins: &after.bins,
            notes: ece_notes(&after.bins, &after.runs_ece),
        });
    }
    let n: usize = pooled.before.iter().map(|b| b.count).sum();
    let title = format!(
        "{label} — {subject}, test set N = {} ({} run(s) pooled), {} bins",
        thousands(n),
        pooled.runs,
        pooled.before.len()
    );
    plot::reliability_diagrams(&title, &panels, style)
}

/// A panel's ECE lines: the pooled bins' ECE, and with several runs the mean of theirs.
fn ece_notes(pooled: &[ReliabilityBin], runs_ece: &[f64]) -> Vec<String> {
    let Some(ece) = binned_ece(pooled) else {
        return vec![];
    };
    if runs_ece.len() < 2 {
        return vec![format!("ECE = {ece:.4}")];
    }
    let mean = runs_ece.iter().sum::<f64>() / runs_ece.len() as f64;
    vec![
        format!("ECE of the pooled bins = {ece:.4}"),
        format!("mean of the runs' ECE = {mean:.4}"),
    ]
}

/// Every group's pooled reliability curve in one panel, before and (when every group
/// has it) after temperature scaling; `None` with fewer than two groups.
fn reliability_overlay(
    pooled: &[(String, PooledBins)],
    setting: &Setting,
    style: Style,
) -> Result<Option<Figure>> {
    let Some((_, first)) = pooled.first().filter(|_| pooled.len() >= 2) else {
        return Ok(None);
    };
    let mut panels = vec![OverlayPanel {
        title: "before temperature scaling".to_string(),
        curves: pooled
            .iter()
            .map(|(label, bins)| (label.clone(), bins.before.as_slice()))
            .collect(),
    }];
    let after: Option<Vec<(String, &[ReliabilityBin])>> = pooled
        .iter()
        .map(|(label, bins)| Some((label.clone(), bins.after.as_ref()?.bins.as_slice())))
        .collect();
    if let Some(curves) = after {
        panels.push(OverlayPanel {
            title: "after temperature scaling".to_string(),
            curves,
        });
    }
    let title = format!(
        "{setting}: reliability per group, test sets pooled over each group's runs, {} bins",
        first.before.len()
    );
    plot::reliability_overlay(&title, &panels, style).map(Some)
}

/// The group's smoothed reliability diagrams from its completed runs' saved test
/// predictions pooled (after temperature scaling, each run's logits at its own T), with
/// [`BAND_BOOTSTRAP`]'s band. `None`, with a warning, when a run's predictions cannot be
/// read: a diagram of some of the runs would not match the binned one.
fn smoothed_reliability(
    report: &Report,
    group: &Group,
    subject: &str,
    style: Style,
) -> Result<Option<Figure>> {
    let pooled = match pooled_test(report.runs(group)) {
        Ok(Some(pooled)) => pooled,
        Ok(None) => return Ok(None),
        Err(error) => {
            tracing::warn!(
                "no smoothed reliability diagram for {}: {error:#}",
                report.label(group)
            );
            return Ok(None);
        }
    };
    let sets = [("before temperature scaling", Some(&pooled.raw))]
        .into_iter()
        .chain([("after temperature scaling", pooled.scaled.as_ref())]);
    let curves: Vec<(&str, _)> = sets
        .filter_map(|(title, predictions)| {
            let (confidences, correct) = top_label(predictions?);
            let curve = smooth_reliability(&confidences, &correct, Some(&BAND_BOOTSTRAP));
            Some((title, curve))
        })
        .collect();
    let panels: Vec<SmoothReliabilityPanel> = curves
        .iter()
        .map(|(title, curve)| SmoothReliabilityPanel {
            title: title.to_string(),
            curve,
        })
        .collect();
    let title = format!(
        "{} — {subject}, test set N = {} ({} run(s) pooled), smoothed",
        report.label(group),
        thousands(pooled.raw.len()),
        pooled.runs
    );
    let band = format!(
        "{:.0} % bootstrap band ({} resamples)",
        BAND_BOOTSTRAP.level * 100.0,
        BAND_BOOTSTRAP.resamples
    );
    plot::smooth_reliability_diagrams(&title, &band, &panels, style).map(Some)
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
            let m = metric_index(report, name);
            let Some(point) = mean_point(x, &group.stats[m]) else {
                continue;
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
                        label.push(report.metrics[m].label.clone());
                    }
                    let label = if label.is_empty() {
                        report.metrics[m].label.clone()
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

/// Per epoch, one line per group: the mean over the group's completed runs that have
/// the epoch, with a band of ± the std over them. The training loss is as trained (with
/// smoothing or the method's own terms), so the unsmoothed training NLL stands beside it.
fn training_curves(report: &Report) -> Vec<LinePanel> {
    type Get = fn(&crate::store::EpochRecord) -> Option<f64>;
    let panels: [(&str, &str, Get); 5] = [
        ("training loss (as trained)", "loss", |e| Some(e.train_loss)),
        ("training NLL (unsmoothed)", "NLL", |e| e.train_nll),
        ("validation NLL", "NLL", |e| e.val_nll),
        ("validation accuracy", "accuracy", |e| e.val_accuracy),
        ("validation ECE", "ECE", |e| e.val_ece),
    ];
    panels
        .iter()
        .map(|&(title, y_label, get)| {
            let lines = report
                .groups
                .iter()
                .filter_map(|group| {
                    let mut per_epoch: Vec<Vec<f64>> = vec![];
                    for run in report.runs(group) {
                        let Some(result) = run.result() else {
                            continue;
                        };
                        for (i, epoch) in result.history.iter().enumerate() {
                            if per_epoch.len() <= i {
                                per_epoch.push(vec![]);
                            }
                            if let Some(v) = get(epoch).filter(|v| v.is_finite()) {
                                per_epoch[i].push(v);
                            }
                        }
                    }
                    let stats: Vec<(f64, f64, Option<f64>)> = per_epoch
                        .iter()
                        .enumerate()
                        .filter(|(_, values)| !values.is_empty())
                        .filter_map(|(i, values)| {
                            let stat = Stat::of(values);
                            Some(((i + 1) as f64, stat.mean?, stat.std))
                        })
                        .collect();
                    (!stats.is_empty()).then(|| Line {
                        label: report.label(group),
                        points: stats.iter().map(|&(x, mean, _)| (x, mean)).collect(),
                        band: stats
                            .iter()
                            .filter_map(|&(x, mean, std)| Some((x, mean - std?, mean + std?)))
                            .collect(),
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
