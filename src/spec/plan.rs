//! Sweep expansion: the experiment's defaults-filled JSON is the template, each sweep
//! path must exist in it, and every combination is re-parsed and re-validated as a
//! whole experiment so a swept value gets exactly the checks a written one gets.

use super::parse::{parse_experiment, Invalid};
use super::run_id::run_id;
use super::types::*;
use super::SpecError;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The most runs one experiment may plan: far beyond what a cluster runs as one sweep,
/// and an expansion of it takes seconds.
const MAX_RUNS: usize = 100_000;

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
    let planned = axes
        .iter()
        .try_fold(1usize, |n, (_, values)| n.checked_mul(values.len()))
        .filter(|&n| n <= MAX_RUNS);
    let Some(planned) = planned else {
        let sizes: Vec<String> = axes.iter().map(|(_, v)| v.len().to_string()).collect();
        return Err(Invalid::new(
            "sweep",
            format!(
                "the sweep expands to {} runs, more than the {MAX_RUNS} one experiment may plan; split it into several experiments",
                sizes.join(" × ")
            ),
        )
        .in_file(file));
    };
    let mut runs: Vec<PlannedRun> = Vec::with_capacity(planned);
    // Run ids and resolved configs seen so far, each with its run's position.
    let mut ids: HashMap<String, usize> = HashMap::with_capacity(planned);
    let mut configs: HashMap<String, usize> = HashMap::with_capacity(planned);
    for combination in cartesian_product(&axes) {
        let label = || {
            combination
                .iter()
                .map(|(p, v)| format!("{p}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let invalid = |path: &str, message: &str| {
            Invalid::new(
                "sweep",
                format!(
                    "the run with {} is invalid: at `{path}`: {message}",
                    label()
                ),
            )
            .in_file(file)
        };
        let mut value = template.clone();
        // A whole section is set before the paths inside it, whatever the file's order:
        // a dotted path inside a swept section composes with each of its values.
        let mut applied: Vec<&(&str, &Value)> = combination.iter().collect();
        applied.sort_by_key(|(path, _)| path.split('.').count());
        for (path, v) in applied {
            set_path(&mut value, path, (*v).clone()).map_err(|m| invalid(path, &m))?;
        }
        let resolved = parse_experiment(&value).map_err(|e| invalid(&e.path, &e.message))?;
        let swept: Vec<(String, Value)> = combination
            .iter()
            .map(|(p, v)| (p.to_string(), (*v).clone()))
            .collect();
        let config = resolved.run_config();
        let id = run_id(&swept, &config);
        let canonical = serde_json::to_string(&config).expect("config serialises");
        if let Some(&other) = configs.get(&canonical) {
            return Err(Invalid::new(
                "sweep",
                format!(
                    "the runs with {} and with {} resolve to the same config; remove one of the values",
                    describe(&runs[other].swept),
                    label()
                ),
            )
            .in_file(file));
        }
        if ids.contains_key(&id) {
            return Err(Invalid::new(
                "sweep",
                format!("run id collision for `{id}`; change a swept value"),
            )
            .in_file(file));
        }
        ids.insert(id.clone(), runs.len());
        configs.insert(canonical, runs.len());
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
        // Inside a section that is swept too, the path is checked against each of that
        // section's values when the combinations are parsed.
        let in_swept_section = sweep
            .keys()
            .any(|other| path.len() > other.len() && path.starts_with(&format!("{other}.")));
        if !in_swept_section {
            lookup_path(template, path)
                .map(|_| ())
                .or_else(|message| optional_field(template, path, values).ok_or(message))
                .map_err(|message| Invalid::new(&at, message))?;
        }
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
        let mut seen = HashSet::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            if !seen.insert(v.to_string()) {
                return Err(Invalid::new(
                    format!("{at}[{i}]"),
                    format!("{v} is listed twice"),
                ));
            }
            if in_swept_section {
                continue;
            }
            let mut candidate = template.clone();
            set_path(&mut candidate, path, v.clone()).map_err(|m| Invalid::new(&at, m))?;
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

/// An optional setting left out of the template (`training.mixup`) can be swept too:
/// accepted where its parent exists and the first swept value parses there (each value is
/// then checked like any other); a misspelt key fails that parse.
fn optional_field(template: &Value, path: &str, values: &Value) -> Option<()> {
    let first = values.as_array()?.first()?;
    let mut candidate = template.clone();
    set_path(&mut candidate, path, first.clone()).ok()?;
    parse_experiment(&candidate).ok().map(|_| ())
}

/// Sets a dotted path: every object on the way must exist (checked by [`lookup_path`]
/// for paths in the template); the last key may be new, for a path inside a swept
/// section whose value does not spell it out (the parse that follows judges it).
fn set_path(root: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let (parents, last) = match path.rsplit_once('.') {
        Some((parents, last)) => (Some(parents), last),
        None => (None, path),
    };
    let mut node = root;
    for key in parents.into_iter().flat_map(|p| p.split('.')) {
        node = node
            .get_mut(key)
            .ok_or_else(|| format!("the swept value has no `{key}` to set `{path}` in"))?;
    }
    let object = node
        .as_object_mut()
        .ok_or_else(|| format!("`{path}` is not inside an object"))?;
    object.insert(last.to_string(), value);
    Ok(())
}

/// `a=1, b=2` for messages.
fn describe(swept: &[(String, Value)]) -> String {
    swept
        .iter()
        .map(|(p, v)| format!("{p}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
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
