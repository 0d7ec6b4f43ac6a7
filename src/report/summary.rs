//! `smoothlab report`: the runs of one or several experiments grouped by configuration,
//! with the mean and standard deviation over each group's completed runs (seeds).
//!
//! Every planned run is accounted for: a group counts its completed, failed and missing
//! (pending, running or stale) runs, so a sweep still in progress reports what it has.

use super::pooled::pooled_test;
use crate::calibration::catalog::{self, Measure};
use crate::calibration::{
    evaluate_with_intervals, Bootstrap, Calibrator, Interval, Intervals, Predictions,
    TemperatureFit,
};
use crate::store::{ExperimentDir, FinalMetrics, RunResult, RunState};
use crate::sweep::status;
use crate::BadInput;
use anyhow::Result;
use serde_json::Value;
use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

/// The pseudo-key that groups by experiment (the name in its experiment file).
pub const EXPERIMENT_KEY: &str = "experiment";

/// One planned run of a report.
#[derive(Debug, Clone)]
pub struct ReportRun {
    pub experiment: String,
    pub run_id: String,
    pub dir: PathBuf,
    /// The resolved config as JSON: what grouping keys look into.
    pub config: Value,
    pub outcome: Outcome,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Completed(Box<RunResult>),
    Failed {
        reason: String,
    },
    /// Planned, without a usable result yet: `pending`, `running` or `stale`, or the
    /// reason its result file is damaged.
    Missing {
        state: String,
    },
}

impl ReportRun {
    pub fn result(&self) -> Option<&RunResult> {
        match &self.outcome {
            Outcome::Completed(result) => Some(result),
            _ => None,
        }
    }

    /// The value at a dotted `key` of the config (or the experiment name), `Null` where
    /// the config has no such key.
    pub fn key(&self, key: &str) -> Value {
        if key == EXPERIMENT_KEY {
            return Value::String(self.experiment.clone());
        }
        key.split('.')
            .try_fold(&self.config, |value, part| value.get(part))
            .cloned()
            .unwrap_or(Value::Null)
    }
}

/// The runs found under a results directory.
#[derive(Debug, Clone)]
pub struct Collected {
    pub runs: Vec<ReportRun>,
    /// The swept keys of every experiment, in sweep order, without duplicates.
    pub swept: Vec<String>,
    pub experiments: Vec<String>,
    /// Run directories that hold a result but are not in their experiment's current plan
    /// (written for an earlier version of the experiment file): named, not mixed in.
    pub not_in_plan: Vec<PathBuf>,
}

/// Reads `dir`: the results directory of one experiment (it holds the `experiment.json`
/// that `run` keeps) or a directory of such directories.
pub fn collect(dir: &Path) -> Result<Collected> {
    let experiment_dirs = ExperimentDir::find(dir)?;
    let mut collected = Collected {
        runs: vec![],
        swept: vec![],
        experiments: vec![],
        not_in_plan: vec![],
    };
    for experiment_dir in experiment_dirs {
        collect_experiment(&experiment_dir, &mut collected)?;
    }
    Ok(collected)
}

fn collect_experiment(dir: &ExperimentDir, collected: &mut Collected) -> Result<()> {
    let (plan, dir) = status::open(dir.path(), dir.path())?;
    let name = plan.experiment.name.clone();
    for key in plan.experiment.sweep.keys() {
        if !collected.swept.contains(key) {
            collected.swept.push(key.clone());
        }
    }
    let statuses = status::collect(&plan, &dir)?;
    for (run, row) in plan.runs.iter().zip(statuses) {
        let run_dir = dir.run(&run.id);
        let missing = |state: &str| Outcome::Missing {
            state: match &row.inspection.unreadable_result {
                Some(reason) => {
                    format!("{state}; damaged result, the next run redoes it: {reason}")
                }
                None => state.to_string(),
            },
        };
        let outcome = match row.inspection.state {
            RunState::Done => Outcome::Completed(Box::new(run_dir.read_result()?)),
            RunState::Failed { reason } => Outcome::Failed { reason },
            RunState::Running { .. } => missing("running"),
            RunState::Stale { .. } => missing("stale"),
            RunState::Pending => missing("pending"),
        };
        collected.runs.push(ReportRun {
            experiment: name.clone(),
            run_id: run.id.clone(),
            dir: run_dir.path().to_path_buf(),
            config: serde_json::to_value(&run.config)?,
            outcome,
        });
    }
    let planned: Vec<&str> = plan.runs.iter().map(|r| r.id.as_str()).collect();
    collected.not_in_plan.extend(dir.results_not_in(&planned)?);
    collected.experiments.push(name);
    Ok(())
}

/// A metric of a completed run, as a report column.
#[derive(Clone)]
pub struct Metric {
    /// Column name in CSV and JSON (`<name>_mean`, `<name>_std`).
    pub name: String,
    /// Column heading in tables.
    pub label: String,
    pub decimals: usize,
    source: Source,
}

impl std::fmt::Debug for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// Where a [`Metric`] reads a run's value.
#[derive(Clone, Copy)]
enum Source {
    /// A metric of the test set.
    Test(&'static Measure),
    /// A metric of the test set after temperature scaling.
    Scaled(&'static Measure),
    /// A metric of the test set after another calibrator.
    Calibrated(Calibrator, &'static Measure),
    /// A number of the temperature fit.
    Fit(&'static Measure<TemperatureFit>),
    TrainSeconds,
}

impl Metric {
    /// A column as the catalogue names and rounds `measure`.
    fn catalogued<Of>(measure: &Measure<Of>, source: Source) -> Self {
        Self {
            name: measure.key.to_string(),
            label: measure.label.to_string(),
            decimals: measure.decimals,
            source,
        }
    }

    fn test(measure: &'static Measure) -> Self {
        Self::catalogued(measure, Source::Test(measure))
    }

    fn scaled(measure: &'static Measure) -> Self {
        Self::catalogued(measure, Source::Scaled(measure)).named(
            format!("{}_scaled", measure.key),
            format!("{} after T", measure.label),
        )
    }

    fn calibrated(calibrator: Calibrator, measure: &'static Measure) -> Self {
        Self::catalogued(measure, Source::Calibrated(calibrator, measure)).named(
            format!("{}_{}", measure.key, calibrator.name()),
            format!("{} after {}", measure.label, calibrator.name()),
        )
    }

    fn fit(measure: &'static Measure<TemperatureFit>) -> Self {
        Self::catalogued(measure, Source::Fit(measure))
    }

    /// The same column under another name and heading.
    fn named(self, name: impl Into<String>, label: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            label: label.into(),
            ..self
        }
    }

    /// The run's value, if it has one.
    pub fn get(&self, r: &RunResult) -> Option<f64> {
        match self.source {
            Source::Test(measure) => measure.of(&test(r)?.test),
            Source::Scaled(measure) => measure.of(test(r)?.test_scaled.as_ref()?),
            Source::Calibrated(calibrator, measure) => {
                measure.of(&test(r)?.calibrators.get(&calibrator)?.test)
            }
            Source::Fit(measure) => measure.of(test(r)?.temperature.as_ref()?),
            Source::TrainSeconds => Some(r.timings.train_seconds),
        }
    }

    /// Whether runs can have a bootstrap interval of this metric.
    pub fn has_interval(&self) -> bool {
        match self.source {
            Source::Test(measure) | Source::Scaled(measure) | Source::Calibrated(_, measure) => {
                Intervals::KEYS.contains(&measure.key)
            }
            Source::Fit(_) | Source::TrainSeconds => false,
        }
    }

    /// This metric's interval among a group's pooled intervals: test-set metrics raw
    /// and after temperature scaling (the other calibrators are fitted per run, so
    /// their outputs do not pool).
    fn pooled_interval(&self, pooled: &PooledIntervals) -> Option<Interval> {
        match self.source {
            Source::Test(measure) => pooled.raw.of(measure.key),
            Source::Scaled(measure) => pooled.scaled.as_ref()?.of(measure.key),
            Source::Calibrated(..) | Source::Fit(_) | Source::TrainSeconds => None,
        }
    }

    /// The run's bootstrap interval of this metric, if it has one.
    pub fn interval(&self, r: &RunResult) -> Option<Interval> {
        let (metrics, measure) = match self.source {
            Source::Test(measure) => (&test(r)?.test, measure),
            Source::Scaled(measure) => (test(r)?.test_scaled.as_ref()?, measure),
            Source::Calibrated(calibrator, measure) => {
                (&test(r)?.calibrators.get(&calibrator)?.test, measure)
            }
            Source::Fit(_) | Source::TrainSeconds => return None,
        };
        metrics.intervals.as_ref()?.of(measure.key)
    }
}

/// The bootstrap intervals of a group's test predictions pooled over its runs, raw and
/// after temperature scaling, at the resamples and level its runs used (from seed 0).
struct PooledIntervals {
    raw: Intervals,
    scaled: Option<Intervals>,
}

impl PooledIntervals {
    /// `None` (with a warning where a file is at fault) when the runs drew no
    /// intervals or their predictions cannot be pooled.
    fn of<'a>(runs: impl Iterator<Item = &'a ReportRun> + Clone) -> Option<Self> {
        let first = runs.clone().find_map(|r| test(r.result()?))?;
        let drawn = first.test.intervals.as_ref()?;
        let bootstrap = Bootstrap {
            resamples: drawn.resamples,
            level: drawn.level,
            seed: 0,
        };
        let bins = NonZeroUsize::new(first.test.bins)?;
        let pooled = match pooled_test(runs) {
            Ok(pooled) => pooled?,
            Err(error) => {
                tracing::warn!("no pooled intervals: {error:#}");
                return None;
            }
        };
        let intervals = |p: &Predictions| {
            evaluate_with_intervals(p, bins, 1.0, &bootstrap)
                .intervals
                .expect("drawn with a bootstrap")
        };
        Some(Self {
            raw: intervals(&pooled.raw),
            scaled: pooled.scaled.as_ref().map(intervals),
        })
    }
}

fn test(r: &RunResult) -> Option<&FinalMetrics> {
    r.metrics.as_ref()
}

/// The metrics every report has: test-set figures of the [`catalog`], before and after
/// temperature scaling, and the training time. A report adds a column group per other
/// calibrator its runs have ([`calibrator_metrics`]).
pub static METRICS: LazyLock<Vec<Metric>> = LazyLock::new(|| {
    use catalog::{
        ACCURACY, ADAPTIVE_ECE, BRIER, CLASSWISE_ECE, ECE, NLL, SMOOTH_ECE, TRUE_LOGIT_GAP,
    };
    let mut metrics: Vec<Metric> = [
        &ACCURACY,
        &NLL,
        &BRIER,
        &ECE,
        &SMOOTH_ECE,
        &ADAPTIVE_ECE,
        &CLASSWISE_ECE,
    ]
    .map(Metric::test)
    .into();
    metrics.extend([&ECE, &NLL].map(Metric::scaled));
    metrics.push(Metric::fit(&catalog::TEMPERATURE));
    // Shorter than in the catalogue: `logit_gap` is the column CSV and JSON readers know.
    metrics.push(Metric::test(&TRUE_LOGIT_GAP).named("logit_gap", "logit gap"));
    metrics.push(Metric {
        name: "train_seconds".to_string(),
        label: "train s".to_string(),
        decimals: 1,
        source: Source::TrainSeconds,
    });
    metrics
});

/// ECE, smooth ECE and NLL after each calibrator (other than temperature scaling, which
/// [`METRICS`] has) that some completed run of `runs` fitted, in [`Calibrator::ALL`]'s
/// order.
fn calibrator_metrics(runs: &[ReportRun]) -> Vec<Metric> {
    use catalog::{ECE, NLL, SMOOTH_ECE};
    let fitted: BTreeSet<Calibrator> = runs
        .iter()
        .filter_map(ReportRun::result)
        .filter_map(test)
        .flat_map(|m| m.calibrators.keys().copied())
        .collect();
    fitted
        .into_iter()
        .flat_map(|c| [&ECE, &SMOOTH_ECE, &NLL].map(|m| Metric::calibrated(c, m)))
        .collect()
}

/// Mean and sample standard deviation (divisor n − 1, as pandas' and R's `sd`) of the
/// values a metric has in a group's completed runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    pub n: usize,
    pub mean: Option<f64>,
    /// `None` with fewer than two values.
    pub std: Option<f64>,
    /// With a single value, that run's bootstrap interval; with several, the interval
    /// of the runs' test sets pooled (raw and temperature-scaled metrics only).
    pub interval: Option<Interval>,
}

impl Stat {
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        let mean = (n > 0).then(|| values.iter().sum::<f64>() / n as f64);
        let std = mean.filter(|_| n > 1).map(|mean| {
            let squares: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
            (squares / (n - 1) as f64).sqrt()
        });
        Self {
            n,
            mean,
            std,
            interval: None,
        }
    }
}

/// One group of runs: the same value at every grouping key.
#[derive(Debug, Clone)]
pub struct Group {
    pub key: Vec<Value>,
    /// Indices into [`Collected::runs`], in plan order.
    pub runs: Vec<usize>,
    pub completed: usize,
    pub failed: usize,
    pub missing: usize,
    /// One per [`METRICS`] entry.
    pub stats: Vec<Stat>,
}

/// Runs grouped by `keys`.
#[derive(Debug, Clone)]
pub struct Report {
    pub keys: Vec<String>,
    /// [`METRICS`], then the calibrator columns; one [`Stat`] per entry in each group.
    pub metrics: Vec<Metric>,
    pub groups: Vec<Group>,
    pub collected: Collected,
}

/// The default grouping: every swept key but the seed, and the experiment when there
/// are several.
pub fn default_keys(collected: &Collected) -> Vec<String> {
    let mut keys = vec![];
    if collected.experiments.len() > 1 {
        keys.push(EXPERIMENT_KEY.to_string());
    }
    keys.extend(collected.swept.iter().filter(|k| *k != "seed").cloned());
    keys
}

impl Report {
    /// The position in [`Self::metrics`] (and each group's stats) of the metric `name`.
    pub fn metric_index(&self, name: &str) -> Option<usize> {
        self.metrics.iter().position(|m| m.name == name)
    }

    /// Keeps only the metrics called `names` (their CSV names without `_mean`), in that
    /// order; a name the report has no column for is bad input.
    pub fn keep_metrics(&mut self, names: &[String]) -> Result<()> {
        let indices = names
            .iter()
            .map(|name| {
                self.metric_index(name).ok_or_else(|| {
                    let known: Vec<&str> = self.metrics.iter().map(|m| m.name.as_str()).collect();
                    BadInput(anyhow::anyhow!(
                        "--metrics {name}: no such column in this report; expected one of {}",
                        known.join(", ")
                    ))
                })
            })
            .collect::<Result<Vec<usize>, BadInput>>()?;
        self.metrics = indices.iter().map(|&i| self.metrics[i].clone()).collect();
        for group in &mut self.groups {
            group.stats = indices.iter().map(|&i| group.stats[i]).collect();
        }
        Ok(())
    }

    /// Groups `collected` by `keys` (dotted config paths or `experiment`); groups appear
    /// in the order of their first run. A key that no run's config has is bad input.
    pub fn new(collected: Collected, keys: Vec<String>) -> Result<Self> {
        for key in &keys {
            if collected.runs.iter().all(|r| r.key(key).is_null()) {
                let known = config_keys(&collected.runs);
                return Err(BadInput(anyhow::anyhow!(
                    "--by {key}: no run has this key; expected `experiment` or a dotted config path: {}",
                    known.join(", ")
                ))
                .into());
            }
        }
        let mut groups: Vec<Group> = vec![];
        for (index, run) in collected.runs.iter().enumerate() {
            let key: Vec<Value> = keys.iter().map(|k| run.key(k)).collect();
            let group = match groups.iter_mut().position(|g| g.key == key) {
                Some(i) => &mut groups[i],
                None => {
                    groups.push(Group {
                        key,
                        runs: vec![],
                        completed: 0,
                        failed: 0,
                        missing: 0,
                        stats: vec![],
                    });
                    groups.last_mut().expect("just pushed")
                }
            };
            group.runs.push(index);
            match run.outcome {
                Outcome::Completed(_) => group.completed += 1,
                Outcome::Failed { .. } => group.failed += 1,
                Outcome::Missing { .. } => group.missing += 1,
            }
        }
        let mut metrics = METRICS.clone();
        metrics.extend(calibrator_metrics(&collected.runs));
        for group in &mut groups {
            group.stats = metrics
                .iter()
                .map(|metric| {
                    let results: Vec<&RunResult> = group
                        .runs
                        .iter()
                        .filter_map(|&i| collected.runs[i].result())
                        .filter(|r| metric.get(r).is_some())
                        .collect();
                    let values: Vec<f64> = results.iter().filter_map(|r| metric.get(r)).collect();
                    let mut stat = Stat::of(&values);
                    if let [only] = results[..] {
                        stat.interval = metric.interval(only);
                    }
                    stat
                })
                .collect();
            if group.completed >= 2 {
                let runs = group.runs.iter().map(|&i| &collected.runs[i]);
                if let Some(pooled) = PooledIntervals::of(runs) {
                    for (stat, metric) in group.stats.iter_mut().zip(&metrics) {
                        stat.interval = metric.pooled_interval(&pooled);
                    }
                }
            }
        }
        Ok(Self {
            keys,
            metrics,
            groups,
            collected,
        })
    }

    /// The runs of `group`.
    pub fn runs<'a>(&'a self, group: &'a Group) -> impl Iterator<Item = &'a ReportRun> + 'a {
        group.runs.iter().map(|&i| &self.collected.runs[i])
    }

    /// A group's key as `a=1, b=x` (or `all runs` without keys).
    pub fn label(&self, group: &Group) -> String {
        if self.keys.is_empty() {
            return "all runs".to_string();
        }
        self.keys
            .iter()
            .zip(&group.key)
            .map(|(k, v)| key_label(k, v))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Failed and missing runs, one line each, and the run directories left out.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = vec![];
        for run in &self.collected.runs {
            match &run.outcome {
                Outcome::Completed(_) => {}
                Outcome::Failed { reason } => {
                    notes.push(format!("failed: {} ({reason})", run.dir.display()))
                }
                Outcome::Missing { state } => {
                    notes.push(format!("missing: {} ({state})", run.dir.display()))
                }
            }
        }
        for dir in &self.collected.not_in_plan {
            notes.push(format!(
                "left out: {} (not in the current plan of its experiment.json)",
                dir.display()
            ));
        }
        notes
    }
}

/// `key=value` for labels, with the key shortened by [`short_key`]; a loss section by
/// its own label (`focal γ=3`).
pub fn key_label(key: &str, value: &Value) -> String {
    match loss_label(key, value) {
        Some(label) => label,
        None => format!("{}={}", short_key(key), value_text(value)),
    }
}

/// A grouping key's value as a table cell: [`value_text`], a loss section by its label.
pub fn key_text(key: &str, value: &Value) -> String {
    loss_label(key, value).unwrap_or_else(|| value_text(value))
}

/// The label of a whole loss section.
fn loss_label(key: &str, value: &Value) -> Option<String> {
    use serde::Deserialize;
    (key == super::figures::LOSS_KEY)
        .then(|| crate::spec::LossSpec::deserialize(value).ok())
        .flatten()
        .map(|loss| loss.label())
}

/// A config value as text: strings without quotes, `-` for a missing key.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The last part of a dotted key (`loss.smoothing` → `smoothing`) unless that is
/// ambiguous in a short label.
fn short_key(key: &str) -> &str {
    match key.rsplit_once('.') {
        Some((_, last)) if last != "name" => last,
        _ => key,
    }
}

/// Every leaf path of the runs' configs, for the error message of an unknown key.
fn config_keys(runs: &[ReportRun]) -> Vec<String> {
    fn walk(prefix: &str, value: &Value, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&path, v, out);
                }
            }
            _ => {
                out.insert(prefix.to_string());
            }
        }
    }
    let mut keys = BTreeSet::new();
    for run in runs {
        walk("", &run.config, &mut keys);
    }
    keys.into_iter().collect()
}
