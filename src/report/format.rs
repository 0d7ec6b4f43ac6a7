//! A report's table as aligned text, Markdown, CSV or JSON. CSV and JSON carry every
//! number at full precision, one flat record per group, so that `pandas.read_csv` and
//! `pandas.read_json` load them as they are.

use super::figures::LOSS_KEY;
use super::summary::{
    key_text, value_text, Metric, Outcome, Report, Stat, EXPERIMENT_KEY, METRICS,
};
use crate::calibration::{catalog, Calibrator};
use crate::store::RunResult;
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// A CSV/JSON cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Value(Value),
    /// A statistic; `None` (no value) is an empty CSV cell and JSON `null`.
    Number(Option<f64>),
}

impl Cell {
    pub fn into_json(self) -> Value {
        match self {
            Cell::Value(v) => v,
            // JSON has no NaN or infinity: those become null like a missing value.
            Cell::Number(n) => n
                .and_then(serde_json::Number::from_f64)
                .map_or(Value::Null, Value::Number),
        }
    }

    fn csv(&self) -> String {
        match self {
            Cell::Value(Value::Null) | Cell::Number(None) => String::new(),
            Cell::Value(v) => csv_field(&value_text(v)),
            // Rust prints the shortest text that reads back as the same f64.
            Cell::Number(Some(n)) => n.to_string(),
        }
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The header and one row of cells per group: the keys, the run counts, each
/// metric's mean and standard deviation, and for a metric with bootstrap intervals
/// the group's interval (`<metric>_low`, `<metric>_high`: a single run's, or that of
/// several runs' test sets pooled; empty where there is none).
pub fn cells(report: &Report) -> (Vec<String>, Vec<Vec<Cell>>) {
    let mut header: Vec<String> = report.keys.clone();
    header.extend(["runs", "completed", "failed", "missing"].map(String::from));
    for m in &report.metrics {
        header.push(format!("{}_mean", m.name));
        header.push(format!("{}_std", m.name));
        if m.has_interval() {
            header.push(format!("{}_low", m.name));
            header.push(format!("{}_high", m.name));
        }
    }
    let rows = report
        .groups
        .iter()
        .map(|g| {
            let mut row: Vec<Cell> = g.key.iter().cloned().map(Cell::Value).collect();
            for count in [g.runs.len(), g.completed, g.failed, g.missing] {
                row.push(Cell::Value(Value::from(count)));
            }
            for (stat, m) in g.stats.iter().zip(&report.metrics) {
                row.push(Cell::Number(stat.mean));
                row.push(Cell::Number(stat.std));
                if m.has_interval() {
                    row.push(Cell::Number(stat.interval.map(|i| i.low)));
                    row.push(Cell::Number(stat.interval.map(|i| i.high)));
                }
            }
            row
        })
        .collect();
    (header, rows)
}

/// Flat JSON records, one per group: the columns of [`cells`].
pub fn records(report: &Report) -> Vec<Map<String, Value>> {
    let (header, rows) = cells(report);
    rows.into_iter()
        .map(|row| {
            header
                .iter()
                .cloned()
                .zip(row.into_iter().map(Cell::into_json))
                .collect()
        })
        .collect()
}

/// RFC 4180 CSV with a header line.
pub fn csv(report: &Report) -> String {
    let (header, rows) = cells(report);
    csv_rows(&header, &rows)
}

/// `header` and `rows` as RFC 4180 CSV.
pub fn csv_rows(header: &[String], rows: &[Vec<Cell>]) -> String {
    let mut out = header
        .iter()
        .map(|h| csv_field(h))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    for row in rows {
        out += &row.iter().map(Cell::csv).collect::<Vec<_>>().join(",");
        out.push('\n');
    }
    out
}

/// A JSON array of flat records.
pub fn json(report: &Report) -> String {
    let records: Vec<Value> = records(report).into_iter().map(Value::Object).collect();
    serde_json::to_string_pretty(&records).expect("JSON values serialise") + "\n"
}

/// `mean ± std` with the metric's decimals, followed by the bootstrap interval where
/// there is one (a single run's, or that of several runs' pooled test sets):
/// `0.034 ± 0.002 [0.031, 0.037]`; `-` without values.
fn mean_std(stat: &Stat, decimals: usize) -> String {
    match (stat.mean, stat.std, stat.interval) {
        (Some(mean), Some(std), Some(i)) => format!(
            "{mean:.decimals$} ± {std:.decimals$} [{:.decimals$}, {:.decimals$}]",
            i.low, i.high
        ),
        (Some(mean), Some(std), None) => format!("{mean:.decimals$} ± {std:.decimals$}"),
        (Some(mean), None, Some(i)) => {
            format!(
                "{mean:.decimals$} [{:.decimals$}, {:.decimals$}]",
                i.low, i.high
            )
        }
        (Some(mean), None, None) => format!("{mean:.decimals$}"),
        _ => "-".to_string(),
    }
}

/// Headings and text cells shared by the aligned table and Markdown.
fn text_cells(report: &Report) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header: Vec<String> = report.keys.clone();
    header.extend(["done", "failed", "missing"].map(String::from));
    header.extend(report.metrics.iter().map(|m| m.label.clone()));
    let rows = report
        .groups
        .iter()
        .map(|g| {
            let mut row: Vec<String> = report
                .keys
                .iter()
                .zip(&g.key)
                .map(|(k, v)| key_text(k, v))
                .collect();
            row.push(format!("{}/{}", g.completed, g.runs.len()));
            row.push(g.failed.to_string());
            row.push(g.missing.to_string());
            row.extend(
                g.stats
                    .iter()
                    .zip(&report.metrics)
                    .map(|(s, m)| mean_std(s, m.decimals)),
            );
            row
        })
        .collect();
    (header, rows)
}

fn with_notes(mut out: String, report: &Report, bullet: &str) -> String {
    let notes = report.notes();
    if !notes.is_empty() {
        out.push('\n');
        for note in notes {
            let _ = writeln!(out, "{bullet}{note}");
        }
    }
    out
}

/// Columns aligned for a terminal, then the failed and missing runs.
pub fn table(report: &Report) -> String {
    let (header, rows) = text_cells(report);
    with_notes(aligned(&header, &rows, report.keys.len()), report, "")
}

/// Columns aligned for a terminal: the first `left` to the left (keys), the rest to the
/// right (numbers).
pub fn aligned(header: &[String], rows: &[Vec<String>], left: usize) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let text = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, &w))| {
                if c < left {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ");
        text.trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    for row in rows {
        out += &line(row);
    }
    out
}

/// A GitHub-flavoured Markdown table, then the failed and missing runs as a list.
pub fn markdown(report: &Report) -> String {
    let (header, rows) = text_cells(report);
    with_notes(
        markdown_rows(&header, &rows, report.keys.len()),
        report,
        "- ",
    )
}

/// A GitHub-flavoured Markdown table, the first `left` columns aligned left.
pub fn markdown_rows(header: &[String], rows: &[Vec<String>], left: usize) -> String {
    let escape = |s: &String| s.replace('|', "\\|");
    let line = |cells: &[String]| {
        format!(
            "| {} |\n",
            cells.iter().map(escape).collect::<Vec<_>>().join(" | ")
        )
    };
    let mut out = line(header);
    let align: Vec<String> = (0..header.len())
        .map(|c| {
            if c < left {
                "---".to_string()
            } else {
                "---:".to_string()
            }
        })
        .collect();
    out += &line(&align);
    for row in rows {
        out += &line(row);
    }
    out
}

/// An HTML `<table>` of the same cells (escaped), each heading with its
/// [`column_notes`] entry as a tooltip, then the failed and missing runs, for the
/// report page.
pub fn html_table(report: &Report) -> String {
    let (_, rows) = text_cells(report);
    let mut out = String::from("<table>\n<thead><tr>");
    for column in column_notes(report) {
        out += &html_heading(&column.heading, column.note.as_deref());
    }
    out += "</tr></thead>\n<tbody>\n";
    for row in &rows {
        out += "<tr>";
        for (c, cell) in row.iter().enumerate() {
            if c < report.keys.len() {
                let _ = write!(out, "<td>{}</td>", html_escape(cell));
            } else {
                let _ = write!(out, "<td class=\"num\">{}</td>", html_stat_cell(cell));
            }
        }
        out += "</tr>\n";
    }
    out += "</tbody>\n</table>\n";
    let notes = report.notes();
    if !notes.is_empty() {
        out += "<ul class=\"notes\">\n";
        for note in notes {
            let _ = writeln!(out, "<li>{}</li>", html_escape(&note));
        }
        out += "</ul>\n";
    }
    out
}

/// A `<th>`, with `note` as its tooltip.
fn html_heading(heading: &str, note: Option<&str>) -> String {
    match note {
        Some(note) => format!(
            "<th title=\"{}\">{}</th>",
            html_escape(note),
            html_escape(heading)
        ),
        None => format!("<th>{}</th>", html_escape(heading)),
    }
}

/// A [`mean_std`] cell with its bootstrap interval in a span of its own, so that the
/// page can set it back from the value.
fn html_stat_cell(cell: &str) -> String {
    match cell.split_once(" [") {
        Some((value, interval)) => format!(
            "{} <span class=\"interval\">[{}</span>",
            html_escape(value),
            html_escape(interval)
        ),
        None => html_escape(cell),
    }
}

/// A column of the report table and what it holds.
pub struct ColumnNote {
    pub heading: String,
    /// `None` for a metric without a description here.
    pub note: Option<String>,
}

/// What every column of [`html_table`] holds, in its order; the definitions are the
/// README's ("Metrics", "Reports and figures").
pub fn column_notes(report: &Report) -> Vec<ColumnNote> {
    let bins = shared(report, |r| Some(r.metrics.as_ref()?.test.bins));
    let counts = [
        "completed runs / runs planned in the group",
        "runs that failed; listed under the table with the reason",
        "planned runs without a usable result yet (pending, running or stale); listed under the table",
    ];
    let notes = report
        .keys
        .iter()
        .map(|key| Some(key_note(key)))
        .chain(counts.map(|note| Some(note.to_string())))
        .chain(report.metrics.iter().map(|m| metric_note(m, bins)));
    let (header, _) = text_cells(report);
    header
        .into_iter()
        .zip(notes)
        .map(|(heading, note)| ColumnNote { heading, note })
        .collect()
}

/// How the statistic cells read: what `±` and the brackets are, at the bootstrap the
/// runs used when they all used the same one.
pub fn stat_notes(report: &Report) -> [(&'static str, String); 2] {
    let bootstrap = shared(report, |r| {
        let intervals = r.metrics.as_ref()?.test.intervals.as_ref()?;
        Some((intervals.level, intervals.resamples))
    })
    .map_or(String::new(), |(level, resamples)| {
        format!(
            " at {:.0} % ({resamples} resamples of the test samples)",
            100.0 * level
        )
    });
    [
        (
            "mean ± std",
            "the mean and the sample standard deviation (divisor n − 1, as pandas) over the group's completed runs, i.e. over its seeds; a single run has no ± part".to_string(),
        ),
        (
            "[low, high]",
            format!("the bootstrap percentile interval{bootstrap}: a single run's own, or for a group of several runs that of their test sets pooled (the saved predictions concatenated, after T each run's logits at its own T); the other calibrators are fitted per run, so their columns have no pooled interval"),
        ),
    ]
}

/// The value `of` gives every completed run, when they all give the same one.
fn shared<T: PartialEq>(report: &Report, of: impl Fn(&RunResult) -> Option<T>) -> Option<T> {
    let mut values = report.collected.runs.iter().filter_map(|r| of(r.result()?));
    let first = values.next()?;
    values.all(|v| v == first).then_some(first)
}

fn key_note(key: &str) -> String {
    match key {
        EXPERIMENT_KEY => "grouping key: the experiment's name (from its experiment file)".to_string(),
        LOSS_KEY => "grouping key: the whole loss section, by its label".to_string(),
        _ => format!("grouping key: the value of `{key}` in the runs' configs (a dash where a config has none)"),
    }
}

/// What a report metric is, from its CSV name; `bins` is the number of equal-width
/// confidence bins when every run used the same.
fn metric_note(metric: &Metric, bins: Option<usize>) -> Option<String> {
    if let Some(base) = metric.name.strip_suffix("_scaled") {
        return Some(format!(
            "{} of softmax(z/T) on the test set: after temperature scaling with the T fitted on the validation split (Guo et al. 2017)",
            measure_label(base)?
        ));
    }
    for calibrator in Calibrator::ALL {
        if let Some(base) = metric.name.strip_suffix(&format!("_{}", calibrator.name())) {
            return Some(format!(
                "{} of the test set after {}, fitted on each run's validation split",
                measure_label(base)?,
                calibrator.label()
            ));
        }
    }
    let bins = bins.map_or(String::new(), |m| format!("{m} "));
    Some(match metric.name.as_str() {
        "accuracy" => "test accuracy: the share of test samples whose prediction (argmax of the logits z) equals the label".to_string(),
        "nll" => "test negative log-likelihood: the mean of −log p_y, p = softmax(z)".to_string(),
        "brier" => "Brier score: (1/n) Σ_i Σ_k (p_ik − [k = y_i])², in [0, 2]".to_string(),
        "ece" => format!("expected calibration error over {bins}equal-width confidence bins B_m: Σ_m (|B_m|/n)·|acc(B_m) − conf(B_m)|, the confidence being max_k p_k (Guo et al. 2017)"),
        "smooth_ece" => "smooth ECE of the (confidence, correct) pairs: Gaussian kernel reflected at 0 and 1, at its fixed-point bandwidth σ, as relplot computes it (Błasiok & Nakkiran 2023)".to_string(),
        "adaptive_ece" => format!("the ECE sum over {bins}equal-mass bins: the samples sorted by confidence and cut into bins of (nearly) equal count"),
        "classwise_ece" => "for each class k, the ECE of p_k against [y = k] over the equal-width bins, averaged over the classes".to_string(),
        "temperature" => "T, the temperature fitted on the validation split to minimise the NLL of softmax(z/T): T > 1 softens over-confident probabilities, T < 1 sharpens under-confident ones".to_string(),
        "logit_gap" => "mean true-class logit gap z_y − mean_{k≠y} z_k on the test set: how far the true logit runs away from the others — what label smoothing bounds".to_string(),
        "train_seconds" => "training time of a run, in seconds".to_string(),
        _ => return None,
    })
}

/// The heading of a test-set metric by its `result.json` key.
fn measure_label(key: &str) -> Option<&'static str> {
    catalog::ALL.iter().find(|m| m.key == key).map(|m| m.label)
}

/// The metrics of the page's per-run table, by CSV name.
const RUN_METRICS: [&str; 5] = ["accuracy", "nll", "ece", "ece_scaled", "temperature"];

/// An HTML `<table>` with one row per planned run, group by group: its id, the grouping
/// keys, its status and its own accuracy, NLL, ECE, ECE after T and T.
pub fn html_run_table(report: &Report) -> String {
    let metrics: Vec<&Metric> = RUN_METRICS
        .iter()
        .filter_map(|name| METRICS.iter().find(|m| m.name == *name))
        .collect();
    let mut out = String::from("<table class=\"runs\">\n<thead><tr>");
    out += &html_heading(
        "run",
        Some("the run's id: its directory under the experiment's results"),
    );
    for key in &report.keys {
        out += &html_heading(key, Some(&key_note(key)));
    }
    out += &html_heading(
        "status",
        Some("completed, failed (with the reason) or missing (pending, running or stale)"),
    );
    let bins = shared(report, |r| Some(r.metrics.as_ref()?.test.bins));
    for metric in &metrics {
        out += &html_heading(&metric.label, metric_note(metric, bins).as_deref());
    }
    out += "</tr></thead>\n<tbody>\n";
    for run in report.groups.iter().flat_map(|g| report.runs(g)) {
        let (class, status) = match &run.outcome {
            Outcome::Completed(_) => ("completed", "completed".to_string()),
            Outcome::Failed { reason } => ("failed", format!("failed: {reason}")),
            Outcome::Missing { state } => ("missing", format!("missing: {state}")),
        };
        let _ = write!(
            out,
            "<tr class=\"{class}\"><td title=\"{}\"><code>{}</code></td>",
            html_escape(&run.dir.display().to_string()),
            html_escape(&run.run_id)
        );
        for key in &report.keys {
            let _ = write!(
                out,
                "<td>{}</td>",
                html_escape(&key_text(key, &run.key(key)))
            );
        }
        let _ = write!(out, "<td>{}</td>", html_escape(&status));
        for metric in &metrics {
            let value = run
                .result()
                .and_then(|r| metric.get(r))
                .map_or("-".to_string(), |v| format!("{v:.*}", metric.decimals));
            let _ = write!(out, "<td class=\"num\">{value}</td>");
        }
        out += "</tr>\n";
    }
    out += "</tbody>\n</table>\n";
    out
}

pub fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
