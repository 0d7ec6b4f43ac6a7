//! Sweep expansion: the experiment's defaults-filled JSON is the template, each sweep
//! path must exist in it, and every combination is re-parsed and re-validated as a
//! whole experiment so a swept value gets exactly the checks a written one gets.

use super::parse::{parse_experiment, Invalid};
use super::run_id::run_id;
use super::types::*;
use super::SpecError;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Settings that describe the experiment rather than a run, so they cannot be swept.
const NOT_SWEEPABLE: [&str; 4] = ["name", "device", "save_model", "sweep"];

/// The validated experiment and every run it expands to, in sweep order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub file: PathBuf,
    /// The file's text exactly as given (saved beside the results).
    pub text: String,
    /// The experiment with defaults filled in (sweep values not applied).
    pub experiment: Experiment,
    pub runs: Vec<PlannedRun>,
}

/// One resolved run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlannedRun {
    /// `<slug of swept values>_<8 hex digits of the config hash>`; a directory name.
    pub id: String,
    /// The swept settings of this run, in sweep order.
    pub swept: Vec<(String, Value)>,
    pub config: RunConfig,
}

pub(super) fn expand(file: &Path, text: &str, raw: Value) -> Result<Plan, SpecError> {
    let experiment = parse_experiment(&raw).map_err(|e| e.in_file(file))?;
    let mut template = serde_json::to_value(&experiment).expect("experiment serialises");
    template
        .as_object_mut()
        .expect("experiment is an object")
        .remove("sweep");

    let axes = sweep_axes(&experiment.sweep, &template).map_err(|e| e.in_file(file))?;
    let mut runs: Vec<PlannedRun> = Vec::new();
    for combination in cartesian_product(&axes) {
        let mut value = template.clone();
        for (path, v) in &combination {
            set_path(&mut value, path, (*v).clone());
        }
        let resolved = parse_experiment(&value).map_err(|e| {
            let label = combination
                .iter()
                .map(|(p, v)| format!("{p}={v}"))
                .collect::<Vec<_>>()
                .join(", ");
            Invalid::new(
                "sweep",
                format!(
                    "the run with {label} is invalid: at `{}`: {}",
                    e.path, e.message
                ),
            )
            .in_file(file)
        })?;
        let swept: Vec<(String, Value)> = combination
            .into_iter()
            .map(|(p, v)| (p.to_string(), v.clone()))
            .collect();
        let config = resolved.run_config();
        let id = run_id(&swept, &config);
        if let Some(other) = runs.iter().find(|r| r.id == id) {
            let message = if other.config == config {
                format!("two sweep combinations resolve to the same run `{id}`")
            } else {
                format!("run id collision for `{id}`; change a swept value")
            };
            return Err(Invalid::new("sweep", message).in_file(file));
        }
        runs.push(PlannedRun { id, swept, config });
    }
    Ok(Plan {
        file: file.to_path_buf(),
        text: text.to_string(),
        experiment,
        runs,
    })
}

/// Checks each sweep axis against the template and returns them in file order.
fn sweep_axes<'a>(
    sweep: &'a Map<String, Value>,
    template: &Value,
) -> Result<Vec<(&'a str, &'a [Value])>, Invalid> {
    let mut axes = Vec::new();
    for (path, values) in sweep {
        let at = format!("sweep[{path:?}]");
        let root = path.split('.').next().unwrap_or_default();
        if NOT_SWEEPABLE.contains(&root) {
            return Err(Invalid::new(at, format!("`{root}` cannot be swept")));
        }
        lookup_path(template, path).map_err(|message| Invalid::new(&at, message))?;
        let values = match values {
            Value::Array(v) if !v.is_empty() => v.as_slice(),
            Value::Array(_) => {
                return Err(Invalid::new(
                    at,
                    "expected a non-empty list of values, got []",
                ))
            }
            other => {
                return Err(Invalid::new(
                    at,
                    format!("expected a list of values, got {other}"),
                ))
            }
        };
        for (i, v) in values.iter().enumerate() {
            if values[..i].contains(v) {
                return Err(Invalid::new(
                    format!("{at}[{i}]"),
                    format!("{v} is listed twice"),
                ));
            }
            let mut candidate = template.clone();
            set_path(&mut candidate, path, v.clone());
            parse_experiment(&candidate).map_err(|e| {
                let mut message = format!("{v} is not valid for `{}`: {}", e.path, e.message);
                if let Some(section) = path.strip_suffix(".name") {
                    message += &format!(
                        " (the other `{section}` settings stay as written; to sweep between \
                         kinds, sweep `{section}` itself with a list of complete objects)"
                    );
                }
                Invalid::new(format!("{at}[{i}]"), message)
            })?;
        }
        axes.push((path.as_str(), values));
    }
    Ok(axes)
}

/// Finds a dotted path in a JSON object tree; the error lists the keys that do exist.
fn lookup_path<'v>(root: &'v Value, path: &str) -> Result<&'v Value, String> {
    let mut node = root;
    let mut walked = Vec::new();
    for key in path.split('.') {
        let Some(map) = node.as_object() else {
            return Err(format!(
                "`{}` is not an object, so it has no `{key}`",
                walked.join(".")
            ));
        };
        node = map.get(key).ok_or_else(|| {
            let place = if walked.is_empty() {
                "the top level".to_string()
            } else {
                format!("`{}`", walked.join("."))
            };
            let known: Vec<&str> = map.keys().map(String::as_str).collect();
            format!(
                "no setting `{path}`: {place} has no `{key}` (it has: {})",
                known.join(", ")
            )
        })?;
        walked.push(key);
    }
    Ok(node)
}

/// Sets an existing dotted path (checked by [`lookup_path`] first).
fn set_path(root: &mut Value, path: &str, value: Value) {
    let mut node = root;
    for key in path.split('.') {
        node = node.get_mut(key).expect("sweep path was checked");
    }
    *node = value;
}

/// All combinations of the axes, first axis outermost.
fn cartesian_product<'a>(axes: &[(&'a str, &'a [Value])]) -> Vec<Vec<(&'a str, &'a Value)>> {
    axes.iter().fold(vec![Vec::new()], |acc, (path, values)| {
        acc.iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut next = prefix.clone();
                    next.push((*path, v));
                    next
                })
            })
            .collect()
    })
}
