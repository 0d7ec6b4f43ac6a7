//! A report's table as aligned text, Markdown, CSV or JSON. CSV and JSON carry every
//! number at full precision, one flat record per group, so that `pandas.read_csv` and
//! `pandas.read_json` load them as they are.

use super::summary::{key_text, value_text, Report, Stat};
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

/// An HTML `<table>` of the same cells (escaped), for the report page.
pub fn html_table(report: &Report) -> String {
    let (header, rows) = text_cells(report);
    let mut out = String::from("<table>\n<thead><tr>");
    for h in &header {
        let _ = write!(out, "<th>{}</th>", html_escape(h));
    }
    out += "</tr></thead>\n<tbody>\n";
    for row in &rows {
        out += "<tr>";
        for (c, cell) in row.iter().enumerate() {
            let class = if c < report.keys.len() {
                ""
            } else {
                " class=\"num\""
            };
            let _ = write!(out, "<td{class}>{}</td>", html_escape(cell));
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

pub fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
