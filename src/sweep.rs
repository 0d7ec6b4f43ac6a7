//! Executes a plan: decide per run whether to skip it, train it, and store the outcome.
//! A failing run is recorded and the sweep goes on.

use crate::device;
use crate::progress;
use crate::spec::{DeviceSpec, Plan, PlannedRun};
use crate::store::{self, Environment, RunResult, RunState, RunStatus};
use crate::train;
use anyhow::{bail, Context, Result};
use candle_core::Device;
use chrono::Utc;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// How `smoothlab run` treats a plan.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Parent of `<experiment>/`.
    pub results: PathBuf,
    /// Overrides the experiment's `device`.
    pub device: Option<DeviceSpec>,
    /// Rerun completed runs too.
    pub force: bool,
    /// Rerun runs whose last attempt failed (they are otherwise skipped and reported).
    pub retry_failed: bool,
}

/// What one invocation did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    pub completed: Vec<String>,
    pub skipped: Vec<String>,
    /// Run id and reason, for runs that failed now or earlier (and were not retried).
    pub failed: Vec<(String, String)>,
}

impl Summary {
    pub fn line(&self) -> String {
        let mut line = format!(
            "{} run(s): {} completed now, {} already done, {} failed",
            self.completed.len() + self.skipped.len() + self.failed.len(),
            self.completed.len(),
            self.skipped.len(),
            self.failed.len()
        );
        for (id, reason) in &self.failed {
            let _ = write!(line, "\n  failed: {id}: {reason}");
        }
        line
    }
}

/// The directory holding the experiment's runs.
pub fn experiment_dir(plan: &Plan, results: &Path) -> PathBuf {
    results.join(&plan.experiment.name)
}

/// The state of every planned run, without changing anything (`--dry-run`, `status`).
pub fn states<'p>(plan: &'p Plan, results: &Path) -> Result<Vec<(&'p PlannedRun, RunState)>> {
    let dir = experiment_dir(plan, results);
    plan.runs
        .iter()
        .map(|run| Ok((run, store::run_state(&dir.join(&run.id))?)))
        .collect()
}

/// Runs every run of `plan` that needs running.
pub fn run(plan: &Plan, options: &RunOptions) -> Result<Summary> {
    // The device first: a device this build cannot use must leave the results untouched.
    let device = device::open(options.device.unwrap_or(plan.experiment.device))?;
    let device_name = device::describe(&device);
    let dir = experiment_dir(plan, &options.results);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    save_experiment(plan, &dir)?;

    let mut summary = Summary::default();
    let total = plan.runs.len();
    for (i, run) in plan.runs.iter().enumerate() {
        let run_dir = dir.join(&run.id);
        let label = format!("[{}/{total}] {}", i + 1, run.id);
        match store::run_state(&run_dir)? {
            RunState::Pending => {}
            RunState::Completed if !options.force => {
                println!("{label}: already completed, skipped");
                summary.skipped.push(run.id.clone());
                continue;
            }
            RunState::Failed(reason) if !options.force && !options.retry_failed => {
                println!("{label}: failed earlier, skipped (--retry-failed reruns it): {reason}");
                summary.failed.push((run.id.clone(), reason));
                continue;
            }
            RunState::Unreadable(reason) => tracing::warn!("{reason}; redoing the run"),
            RunState::Completed | RunState::Failed(_) => {}
        }
        if let Some(archive) = store::archive_attempt(&run_dir)? {
            println!(
                "{label}: the previous attempt is kept in {}",
                archive.display()
            );
        }
        println!("{label}: training on {device_name}");
        let result = execute(plan, run, &run_dir, &device, &device_name, &label)?;
        match result.status {
            RunStatus::Completed => {
                println!("{label}: {}", describe_outcome(&result));
                summary.completed.push(run.id.clone());
            }
            RunStatus::Failed => {
                let reason = result.error.unwrap_or_default();
                println!("{label}: FAILED: {reason}");
                summary.failed.push((run.id.clone(), reason));
            }
        }
    }
    Ok(summary)
}

/// Trains one run and writes its files. Errors here are about the results directory
/// itself (not the run) and stop the sweep.
fn execute(
    plan: &Plan,
    run: &PlannedRun,
    run_dir: &Path,
    device: &Device,
    device_name: &str,
    label: &str,
) -> Result<RunResult> {
    std::fs::create_dir_all(run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    check_config(run, run_dir)?;
    let started_at = Utc::now();
    let bar = progress::bar(0, label.to_string());
    let outcome = train::run(&run.config, device, &bar);
    bar.finish_and_clear();

    let (status, error, history, metrics, timings) = match outcome {
        Ok(trained) => {
            write_predictions(run_dir, &trained)?;
            if plan.experiment.save_model {
                let path = run_dir.join(store::MODEL_FILE);
                store::write_atomic_with(&path, |temp| Ok(trained.vars.save(temp)?))?;
            }
            (
                RunStatus::Completed,
                None,
                trained.history,
                Some(trained.metrics),
                trained.timings,
            )
        }
        Err(failed) => (
            RunStatus::Failed,
            Some(format!("{:#}", failed.error)),
            failed.history,
            None,
            failed.timings,
        ),
    };
    let result = RunResult {
        schema_version: store::SCHEMA_VERSION,
        run_id: run.id.clone(),
        experiment: plan.experiment.name.clone(),
        status,
        error,
        swept: run.swept.iter().cloned().collect(),
        config: run.config.clone(),
        history,
        metrics,
        environment: Environment::current(device_name, started_at),
        timings,
    };
    store::write_json(&run_dir.join(store::RESULT_FILE), &result)?;
    Ok(result)
}

/// Writes `config.json`, or checks that an existing one is this run's config: a different
/// config in the same directory means a hash collision or a hand edit, and overwriting
/// it would lose a result.
fn check_config(run: &PlannedRun, run_dir: &Path) -> Result<()> {
    let path = run_dir.join(store::CONFIG_FILE);
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let existing: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        if existing != serde_json::to_value(&run.config)? {
            bail!(
                "{} holds a different config than run {} expects; move that directory away to rerun it",
                path.display(),
                run.id
            );
        }
        return Ok(());
    }
    store::write_json(&path, &run.config)
}

/// Keeps the experiment file, byte for byte, beside its runs. An older, different copy
/// is kept as `experiment.<time>-<pid>.json` rather than overwritten.
fn save_experiment(plan: &Plan, dir: &Path) -> Result<()> {
    let path = dir.join(store::EXPERIMENT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if text == plan.text => return Ok(()),
        Ok(_) => {
            let aside = dir.join(format!(
                "experiment.{}-{}.json",
                Utc::now().format("%Y%m%dT%H%M%S%.6f"),
                std::process::id()
            ));
            match std::fs::rename(&path, &aside) {
                Ok(()) => tracing::info!(
                    "the experiment file changed; the previous one is kept as {}",
                    aside.display()
                ),
                // Another worker moved it first.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("keeping the previous {}", path.display()))
                }
            }
        }
        Err(_) => {}
    }
    store::write_bytes(&path, plan.text.as_bytes())
}

fn write_predictions(run_dir: &Path, trained: &train::Trained) -> Result<()> {
    let mut splits = vec![("test", &trained.test)];
    splits.extend(trained.validation.as_ref().map(|v| ("val", v)));
    let bytes = crate::calibration::io::safetensors_bytes(&splits)?;
    store::write_bytes(&run_dir.join(store::PREDICTIONS_FILE), &bytes)
}

fn describe_outcome(result: &RunResult) -> String {
    let Some(m) = &result.metrics else {
        return "completed".to_string();
    };
    let t = &m.test;
    let mut line = format!(
        "test acc {:.4} nll {:.4} ece {:.4} logit gap {:.2}",
        t.accuracy, t.nll, t.ece, t.mean_true_logit_gap
    );
    if let (Some(fit), Some(scaled)) = (&m.temperature, &m.test_scaled) {
        let _ = write!(
            line,
            " | T {:.3}: nll {:.4} ece {:.4}",
            fit.temperature, scaled.nll, scaled.ece
        );
    }
    let _ = write!(
        line,
        " | {:.1}s",
        result.timings.train_seconds + result.timings.eval_seconds
    );
    line
}

/// The plan with each run's state, one line per run (`--dry-run`).
pub fn describe_plan(plan: &Plan, results: &Path) -> Result<String> {
    let dir = experiment_dir(plan, results);
    let mut out = format!(
        "{}: {} run(s) in {}\n",
        plan.file.display(),
        plan.runs.len(),
        dir.display()
    );
    for (run, state) in states(plan, results)? {
        let state = match state {
            RunState::Pending => "pending".to_string(),
            RunState::Completed => "completed".to_string(),
            RunState::Failed(reason) => format!("failed: {reason}"),
            RunState::Unreadable(reason) => format!("unreadable, will be redone: {reason}"),
        };
        let _ = writeln!(out, "  {:<48} {state}", run.id);
    }
    Ok(out)
}
