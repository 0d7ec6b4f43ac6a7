//! `smoothlab runs`: the rows that pass a filter, sorted, with the chosen columns, as a
//! table, Markdown, CSV or JSON.

use super::expr::Filter;
use super::{check_key, Rows, RunRow};
use crate::report::format::{aligned, csv_rows, markdown_rows, Cell};
use crate::report::summary::value_text;
use crate::report::ReportFormat;
use crate::BadInput;
use anyhow::Result;
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::BTreeSet;

/// What `smoothlab runs` was asked for.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub filter: Option<String>,
    /// Keys to sort by, each ascending or (with a leading `-`) descending.
    pub sort: Vec<String>,
    /// Keys or globs; the default columns when empty.
    pub columns: Vec<String>,
    pub limit: Option<usize>,
}

/// The metric columns shown by default, after the swept keys and the status.
const DEFAULT_METRICS: [&str; 5] = [
    "metrics.test.accuracy",
    "metrics.test.nll",
    "metrics.test.ece",
    "metrics.test_scaled.ece",
    "metrics.temperature.temperature",
];

/// The rows of `rows` that pass `filter` (all of them without one). A key that no row
/// has is an error naming the nearest keys; so is a value of the wrong type.
pub fn select(rows: Vec<RunRow>, filter: Option<&str>) -> Result<Vec<RunRow>> {
    let Some(text) = filter else { return Ok(rows) };
    let filter = Filter::parse(text).map_err(|e| BadInput(e.into()))?;
    for (key, at) in filter.keys() {
        check_key(key, &rows).map_err(|e| {
            BadInput(e.context(format!(
                "--where {}, column {}",
                super::expr::quoted(text),
                filter.column(at)
            )))
        })?;
    }
    let mut kept = Vec::new();
    for row in rows {
        if filter.matches(&row).map_err(|e| BadInput(e.into()))? {
            kept.push(row);
        }
    }
    Ok(kept)
}

/// Every key of any row (for globs and for suggestions).
pub(super) fn all_keys(rows: &[RunRow]) -> BTreeSet<&str> {
    rows.iter()
        .flat_map(|r| r.keys.keys().map(String::as_str))
        .collect()
}

/// Answers `query` over `rows` in `format`. Keys are checked against every row, so
/// that a key the filter happens to leave no row with is not a mistake.
pub fn answer(rows: Rows, query: &Query, format: ReportFormat) -> Result<String> {
    let experiments = rows.experiments.len();
    let mut sort = Vec::new();
    for key in &query.sort {
        let (key, descending) = match key.strip_prefix('-') {
            Some(key) => (key, true),
            None => (key.as_str(), false),
        };
        check_key(key, &rows.rows).map_err(|e| BadInput(e.context("--sort")))?;
        sort.push((key.to_string(), descending));
    }
    let columns = if query.columns.is_empty() {
        let mut columns: Vec<String> = Vec::new();
        if experiments > 1 {
            columns.push("experiment".into());
        }
        // A swept section (`"optimizer": [{..}, {..}]`) shows by its `name`, as its run
        // ids do.
        let has = |key: &str| rows.rows.iter().any(|r| r.keys.contains_key(key));
        for key in &rows.swept {
            let whole = format!("swept.{key}");
            let name = format!("{whole}.name");
            columns.push(if !has(&whole) && has(&name) {
                name
            } else {
                whole
            });
        }
        columns.push("status".into());
        columns.extend(DEFAULT_METRICS.iter().map(|k| k.to_string()));
        columns
    } else {
        expand_columns(&query.columns, &rows.rows)?
    };
    let mut selected = select(rows.rows, query.filter.as_deref())?;
    selected.sort_by(|a, b| {
        sort.iter()
            .map(|(key, descending)| {
                let o = order(a.get(key), b.get(key));
                if *descending && !a.get(key).is_null() && !b.get(key).is_null() {
                    o.reverse()
                } else {
                    o
                }
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    });
    if let Some(limit) = query.limit {
        selected.truncate(limit);
    }
    Ok(render(&selected, &columns, format))
}

/// Keys and globs (`metrics.test.*ece*`) to the columns they name, in order.
fn expand_columns(asked: &[String], rows: &[RunRow]) -> Result<Vec<String>> {
    let mut columns: Vec<String> = Vec::new();
    for item in asked {
        if item.contains(['*', '?', '[']) {
            let pattern = glob::Pattern::new(item).map_err(|e| {
                BadInput(anyhow::anyhow!(
                    "--columns {item:?} is not a glob pattern: {e}"
                ))
            })?;
            let matched: Vec<String> = all_keys(rows)
                .into_iter()
                .filter(|k| pattern.matches(k))
                .map(String::from)
                .collect();
            if matched.is_empty() && !rows.is_empty() {
                return Err(BadInput(anyhow::anyhow!("--columns {item:?} matches no key")).into());
            }
            columns.extend(matched);
        } else {
            check_key(item, rows).map_err(|e| BadInput(e.context("--columns")))?;
            columns.push(item.clone());
        }
    }
    columns.dedup();
    Ok(columns)
}

/// Nulls last; numbers before strings before anything else; numbers by value.
fn order(a: &Value, b: &Value) -> Ordering {
    let rank = |v: &Value| match v {
        Value::Number(_) => 0,
        Value::String(_) => 1,
        Value::Bool(_) => 2,
        Value::Array(_) | Value::Object(_) => 3,
        Value::Null => 4,
    };
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            super::expr::number_order(x, y).unwrap_or(Ordering::Equal)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// A value for the aligned table and Markdown: numbers with at most 4 decimals.
pub(super) fn text(value: &Value) -> String {
    match value {
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if x != 0.0 && !(1e-4..1e6).contains(&x.abs()) {
                // 1e30, 2.5e-7: scientific, its mantissa trimmed.
                let text = format!("{x:.3e}");
                let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
                let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
                return format!("{mantissa}e{exponent}");
            }
            let text = format!("{x:.4}");
            let trimmed = text.trim_end_matches('0').trim_end_matches('.');
            if trimmed.is_empty() || trimmed == "-" || trimmed == "-0" {
                "0".to_string()
            } else {
                trimmed.to_string()
            }
        }
        other => value_text(other),
    }
}

fn render(rows: &[RunRow], columns: &[String], format: ReportFormat) -> String {
    match format {
        ReportFormat::Json => {
            let records: Vec<Value> = rows
                .iter()
                .map(|r| {
                    Value::Object(
                        columns
                            .iter()
                            .map(|c| (c.clone(), r.get(c).clone()))
                            .collect(),
                    )
                })
                .collect();
            serde_json::to_string_pretty(&records).expect("JSON values serialise") + "\n"
        }
        ReportFormat::Csv => {
            let cells: Vec<Vec<Cell>> = rows
                .iter()
                .map(|r| {
                    columns
                        .iter()
                        .map(|c| Cell::Value(r.get(c).clone()))
                        .collect()
                })
                .collect();
            csv_rows(columns, &cells)
        }
        ReportFormat::Table | ReportFormat::Markdown => {
            let text: Vec<Vec<String>> = rows
                .iter()
                .map(|r| columns.iter().map(|c| text(r.get(c))).collect())
                .collect();
            // Keys and text to the left, numbers to the right: the columns before the
            // first metric are the run's identity.
            let left = columns
                .iter()
                .position(|c| c.starts_with("metrics.") || c.starts_with("timings."))
                .unwrap_or(columns.len());
            let body = if format == ReportFormat::Table {
                aligned(columns, &text, left)
            } else {
                markdown_rows(columns, &text, left)
            };
            let count = format!("{} run(s)\n", rows.len());
            if format == ReportFormat::Table {
                body + &count
            } else {
                body
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_sort_last_and_numbers_by_value() {
        let mut values = vec![
            Value::Null,
            Value::from(0.5),
            Value::from("b"),
            Value::from(2),
            Value::from("a"),
        ];
        values.sort_by(order);
        assert_eq!(
            values,
            [
                Value::from(0.5),
                Value::from(2),
                Value::from("a"),
                Value::from("b"),
                Value::Null
            ]
        );
    }

    #[test]
    fn short_text_keeps_four_decimals() {
        assert_eq!(text(&Value::from(0.123456)), "0.1235");
        assert_eq!(text(&Value::from(0.1)), "0.1");
        assert_eq!(text(&Value::from(3)), "3");
        assert_eq!(text(&Value::from(0.0)), "0");
        assert_eq!(text(&Value::from(-0.00001)), "-1e-5");
        assert_eq!(text(&Value::from(1e30)), "1e30");
        assert_eq!(text(&Value::from(2.5e-7)), "2.5e-7");
        assert_eq!(text(&Value::from(-0.00004)), "-4e-5");
        assert_eq!(text(&Value::Null), "-");
    }
}
