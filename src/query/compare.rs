//! `smoothlab compare`: runs side by side, section by section — config, metrics (with
//! the difference to the first run), history, and the environment where it differs.

use super::{RunRow, Source};
use crate::report::format::{aligned, csv_rows, markdown_rows, Cell};
use crate::report::ReportFormat;
use crate::store::RunDir;
use crate::BadInput;
use anyhow::{Context, Result};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// The sections, by key prefix, and whether a section shows only what differs anyway.
const SECTIONS: [(&str, &[&str], bool); 4] = [
    ("config", &["config.", "swept."], false),
    (
        "metrics",
        &[
            "metrics.test.",
            "metrics.test_scaled.",
            "metrics.temperature.",
            "metrics.validation.",
        ],
        false,
    ),
    ("history", &["history.", "timings."], false),
    ("environment", &["environment."], true),
];

/// When a run started and finished: they differ between any two runs.
const ALWAYS_DIFFERENT: [&str; 2] = ["environment.started_at", "environment.finished_at"];

/// Keys whose values are lists of bins (reliability diagrams): too long to compare here.
fn is_listing(value: &Value) -> bool {
    matches!(value, Value::Array(items) if items.len() > 8)
}

/// `runs` side by side; with `only_changed`, only the keys whose values differ.
pub fn compare(runs: &[PathBuf], only_changed: bool, format: ReportFormat) -> Result<String> {
    let rows: Vec<RunRow> = runs
        .iter()
        .map(|dir| {
            let (result, json) = RunDir::new(dir)
                .result_json()
                .and_then(|r| r.context("it has no result.json"))
                .with_context(|| format!("{} is not a finished run", dir.display()))
                .map_err(BadInput)?;
            Ok(RunRow::new(
                &result.experiment,
                dir,
                Source::Result(&result, &json),
            ))
        })
        .collect::<Result<_>>()?;
    // Column names: the run ids, made unique (runs of two experiments, or one run given
    // twice, may share an id) so that no JSON record loses a column.
    let mut names: Vec<String> = Vec::new();
    for row in &rows {
        let id = super::runs::text(row.get("run_id"));
        let mut name = id.clone();
        let mut n = 1;
        while names.contains(&name) || name == "section" || name == "key" {
            n += 1;
            name = format!("{id} #{n}");
        }
        names.push(name);
    }
    let mut header = vec!["section".to_string(), "key".to_string()];
    header.extend(names.iter().cloned());
    let numeric_delta = rows.len() > 1;
    if numeric_delta {
        header.extend(names[1..].iter().map(|n| format!("Δ {n}")));
    }
    let mut table: Vec<Vec<Value>> = Vec::new();
    for (section, prefixes, changed_only) in SECTIONS {
        let keys: BTreeSet<&String> = rows
            .iter()
            .flat_map(|r| r.keys.keys())
            .filter(|k| prefixes.iter().any(|p| k.starts_with(p)))
            .filter(|k| !ALWAYS_DIFFERENT.contains(&k.as_str()))
            .collect();
        for key in keys {
            let values: Vec<&Value> = rows.iter().map(|r| r.get(key)).collect();
            if values.iter().any(|v| is_listing(v)) {
                continue;
            }
            let differs = values.iter().any(|v| *v != values[0]);
            if (only_changed || changed_only) && !differs {
                continue;
            }
            let mut line = vec![Value::from(section), Value::from(key.as_str())];
            line.extend(values.iter().map(|v| (*v).clone()));
            if numeric_delta {
                let first = values[0].as_f64();
                line.extend(values[1..].iter().map(|v| match (first, v.as_f64()) {
                    (Some(a), Some(b)) if section == "metrics" || section == "history" => {
                        serde_json::Number::from_f64(b - a).map_or(Value::Null, Value::Number)
                    }
                    _ => Value::Null,
                }));
            }
            table.push(line);
        }
    }
    Ok(match format {
        ReportFormat::Json => {
            let records: Vec<Value> = table
                .into_iter()
                .map(|line| Value::Object(header.iter().cloned().zip(line).collect()))
                .collect();
            serde_json::to_string_pretty(&records).expect("JSON values serialise") + "\n"
        }
        ReportFormat::Csv => {
            let cells: Vec<Vec<Cell>> = table
                .into_iter()
                .map(|line| line.into_iter().map(Cell::Value).collect())
                .collect();
            csv_rows(&header, &cells)
        }
        ReportFormat::Table | ReportFormat::Markdown => {
            let text: Vec<Vec<String>> = table
                .iter()
                .map(|line| line.iter().map(super::runs::text).collect())
                .collect();
            if format == ReportFormat::Table {
                aligned(&header, &text, 2)
            } else {
                markdown_rows(&header, &text, 2)
            }
        }
    })
}
