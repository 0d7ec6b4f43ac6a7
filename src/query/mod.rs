//! Questions asked of results (`smoothlab runs`, `compare`, `report --where`): each run
//! directory becomes one row of flattened keys, which [`expr`] filters.
//!
//! The keys: `experiment`, `run_id`, `dir`, `status` (`completed`, `failed`, `running`,
//! `stale`, `pending`, or `damaged` for a result file that cannot be read), `error`,
//! `config.*`, `swept.*`, `metrics.test.*`, `metrics.test_scaled.*`,
//! `metrics.validation.*`, `metrics.temperature.*`, `environment.*`, `timings.*`,
//! `history.epochs` and `history.last.*` (the last epoch's record), and for unfinished
//! runs `progress.epochs_done`/`progress.epochs` from their checkpoint. Everything is
//! read from the run directories each time: there is no index to go stale.

pub mod compare;
pub mod expr;
pub mod runs;

use crate::spec::PlannedRun;
use crate::store::{ExperimentDir, RunDir, RunResult, RunState};
use anyhow::Result;
use rayon::prelude::*;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One run directory's flattened keys.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub keys: BTreeMap<String, Value>,
}

impl expr::Keys for RunRow {
    fn get(&self, key: &str) -> Option<&Value> {
        self.keys.get(key)
    }

    fn name(&self) -> String {
        match self.keys.get("dir") {
            Some(Value::String(dir)) => dir.clone(),
            _ => "?".to_string(),
        }
    }
}

impl RunRow {
    /// The row of a run with `result` (or, without one, the planned run's `config` and
    /// `swept` and the `status` from its lock), in experiment `experiment`.
    pub fn new(experiment: &str, dir: &Path, source: Source) -> Self {
        let mut keys = BTreeMap::new();
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        keys.insert("experiment".into(), Value::from(experiment));
        keys.insert("run_id".into(), Value::from(id));
        keys.insert("dir".into(), Value::from(dir.display().to_string()));
        let (status, error) = match source {
            Source::Result(result, value) => {
                let status = serde_json::to_value(result.status).unwrap_or(Value::Null);
                for section in ["config", "swept", "metrics", "environment", "timings"] {
                    if let Some(v) = value.get(section) {
                        flatten(section, v, &mut keys);
                    }
                }
                if let Some(Value::Array(history)) = value.get("history") {
                    keys.insert("history.epochs".into(), Value::from(history.len()));
                    if let Some(last) = history.last() {
                        flatten("history.last", last, &mut keys);
                    }
                }
                (
                    status,
                    result.error.clone().map_or(Value::Null, Value::from),
                )
            }
            Source::Planned {
                run,
                status,
                error,
                progress,
            } => {
                flatten(
                    "config",
                    &serde_json::to_value(&run.config).unwrap_or(Value::Null),
                    &mut keys,
                );
                let swept: Map<String, Value> = run.swept.iter().cloned().collect();
                flatten("swept", &Value::Object(swept), &mut keys);
                if let Some((done, of)) = progress {
                    keys.insert("progress.epochs_done".into(), Value::from(done));
                    keys.insert("progress.epochs".into(), Value::from(of));
                }
                (Value::from(status), error.map_or(Value::Null, Value::from))
            }
        };
        keys.insert("status".into(), status);
        keys.insert("error".into(), error);
        RunRow { keys }
    }

    pub fn get(&self, key: &str) -> &Value {
        self.keys.get(key).unwrap_or(&Value::Null)
    }
}

/// Where a row's keys come from.
pub enum Source<'a> {
    /// A result, and its file's JSON.
    Result(&'a RunResult, &'a Value),
    /// A planned run without a readable result.
    Planned {
        run: &'a PlannedRun,
        status: &'static str,
        error: Option<String>,
        /// Epochs done of the run's total, from its checkpoint.
        progress: Option<(usize, usize)>,
    },
}

/// Objects become `prefix.key` paths; lists and scalars are leaves. Lists of objects
/// (the reliability diagrams' bins) are left out: no expression compares them, no table
/// cell shows them (`smoothlab show` prints them), and they are most of a result's size.
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&format!("{prefix}.{k}"), v, out);
            }
        }
        Value::Array(items) if items.iter().any(Value::is_object) => {}
        leaf => {
            out.insert(prefix.to_string(), leaf.clone());
        }
    }
}

/// What was read: the rows, and each experiment's swept keys in sweep order.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    pub rows: Vec<RunRow>,
    pub swept: Vec<String>,
    pub experiments: Vec<String>,
}

/// Every run under `targets` (each an experiment's results directory or a directory of
/// them): the planned runs, finished or not, then the directories holding a result that
/// the current plan does not have.
pub fn collect(targets: &[PathBuf]) -> Result<Rows> {
    let mut collected = Rows::default();
    for target in targets {
        for dir in ExperimentDir::find(target)? {
            collect_experiment(&dir, &mut collected)?;
        }
    }
    Ok(collected)
}

fn collect_experiment(dir: &ExperimentDir, collected: &mut Rows) -> Result<()> {
    let (plan, dir) = crate::sweep::status::open(dir.path(), dir.path())?;
    let name = plan.experiment.name.clone();
    for key in plan.experiment.sweep.keys() {
        if !collected.swept.contains(key) {
            collected.swept.push(key.clone());
        }
    }
    // Reading and parsing the result files is nearly all of the time: in parallel.
    let planned: Vec<RunRow> = plan
        .runs
        .par_iter()
        .map(|run| planned_row(&name, &dir.run(&run.id), run))
        .collect();
    collected.rows.extend(planned);
    let ids: Vec<&str> = plan.runs.iter().map(|r| r.id.as_str()).collect();
    for other in dir.results_not_in(&ids)? {
        let run_dir = RunDir::new(&other);
        let row = match run_dir.result_json() {
            Ok(Some((result, json))) => RunRow::new(&name, &other, Source::Result(&result, &json)),
            Ok(None) => continue,
            Err(e) => damaged_row(&name, &other, &e),
        };
        collected.rows.push(row);
    }
    collected.experiments.push(name);
    Ok(())
}

/// The row of planned run `run` in `run_dir`.
fn planned_row(experiment: &str, run_dir: &RunDir, run: &PlannedRun) -> RunRow {
    let path = run_dir.path();
    match run_dir.result_json() {
        Ok(Some((result, json))) => {
            return RunRow::new(experiment, path, Source::Result(&result, &json))
        }
        Ok(None) => {}
        Err(e) => {
            return RunRow::new(
                experiment,
                path,
                Source::Planned {
                    run,
                    status: "damaged",
                    error: Some(format!("{e:#}")),
                    progress: None,
                },
            );
        }
    }
    let (status, error, progress) = match run_dir.inspect() {
        Ok(inspection) => {
            let (status, error) = match inspection.state {
                RunState::Running { .. } => ("running", None),
                RunState::Stale { reason, .. } => ("stale", Some(reason)),
                _ => ("pending", None),
            };
            let progress = inspection.checkpoint.map(|c| (c.epochs_done, c.epochs));
            (status, error, progress)
        }
        Err(e) => ("damaged", Some(format!("{e:#}")), None),
    };
    RunRow::new(
        experiment,
        path,
        Source::Planned {
            run,
            status,
            error,
            progress,
        },
    )
}

/// A directory not in the plan whose result cannot be read.
fn damaged_row(experiment: &str, dir: &Path, e: &anyhow::Error) -> RunRow {
    let mut keys = BTreeMap::new();
    let id = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    keys.insert("experiment".into(), Value::from(experiment));
    keys.insert("run_id".into(), id.map_or(Value::Null, Value::from));
    keys.insert("dir".into(), Value::from(dir.display().to_string()));
    keys.insert("status".into(), Value::from("damaged"));
    keys.insert("error".into(), Value::from(format!("{e:#}")));
    RunRow { keys }
}

/// An error for `key` when no row has it (and there are rows), naming the nearest keys
/// that exist.
pub fn check_key(key: &str, rows: &[RunRow]) -> Result<()> {
    if rows.is_empty() || rows.iter().any(|r| r.keys.contains_key(key)) {
        return Ok(());
    }
    let mut nearest: Vec<(usize, &str)> = runs::all_keys(rows)
        .into_iter()
        .map(|k| (strsim::levenshtein(key, k), k))
        .collect();
    nearest.sort();
    let shown: Vec<&str> = nearest.iter().take(5).map(|(_, k)| *k).collect();
    Err(crate::BadInput(anyhow::anyhow!(
        "no run has the key `{}`; the nearest keys: {}",
        crate::spec::excerpt(key).trim_matches('"'),
        shown.join(", ")
    ))
    .into())
}
