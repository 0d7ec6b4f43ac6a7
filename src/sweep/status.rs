//! `smoothlab status`: the state of every planned run, read from the results directory
//! without changing anything.

use crate::spec::Plan;
use crate::store::{ExperimentDir, Inspection, RunState};
use anyhow::Result;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// A run's row in the status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusRow {
    pub run_id: String,
    /// 0-based position in the plan (what `--shard` partitions).
    pub position: usize,
    #[serde(flatten)]
    pub inspection: Inspection,
}

/// The plan and experiment directory that `target` names: an experiment file (whose
/// runs live under `results`), or an experiment's results directory, which holds the
/// experiment file that `run` keeps.
pub fn open(target: &Path, results: &Path) -> Result<(Plan, ExperimentDir)> {
    if !target.is_dir() {
        let plan = crate::spec::load(target)?;
        let dir = super::experiment_dir(&plan, results);
        return Ok((plan, dir));
    }
    let dir =
        ExperimentDir::existing(target).ok_or_else(|| ExperimentDir::no_experiment_file(target))?;
    Ok((crate::spec::load(&dir.experiment_file())?, dir))
}

/// The status of every run of `plan` in the experiment directory `dir`.
pub fn collect(plan: &Plan, dir: &ExperimentDir) -> Result<Vec<StatusRow>> {
    plan.runs
        .iter()
        .enumerate()
        .map(|(position, run)| {
            Ok(StatusRow {
                run_id: run.id.clone(),
                position,
                inspection: dir.run(&run.id).inspect()?,
            })
        })
        .collect()
}

/// `N run(s): a done, b failed, c running, d stale, e pending`.
pub fn summary_line(statuses: &[StatusRow]) -> String {
    let count = |name| {
        statuses
            .iter()
            .filter(|s| s.inspection.state.name() == name)
            .count()
    };
    format!(
        "{} run(s): {} done, {} failed, {} running, {} stale, {} pending",
        statuses.len(),
        count("done"),
        count("failed"),
        count("running"),
        count("stale"),
        count("pending")
    )
}

/// One line per run, then the summary line.
pub fn table(statuses: &[StatusRow]) -> String {
    let width = statuses.iter().map(|s| s.run_id.len()).max().unwrap_or(0);
    let mut out = String::new();
    for s in statuses {
        let mut detail = match &s.inspection.state {
            RunState::Failed { reason } => reason.clone(),
            RunState::Running {
                holder,
                heartbeat_age_s,
            } => format!(
                "by {} (heartbeat {heartbeat_age_s} s ago)",
                holder
                    .as_deref()
                    .unwrap_or("a worker still writing its lock")
            ),
            RunState::Stale { holder, reason } => format!(
                "lock of {} ({reason}); the next worker takes it over",
                holder.as_deref().unwrap_or("an unknown worker")
            ),
            RunState::Done | RunState::Pending => String::new(),
        };
        if let Some(c) = s.inspection.checkpoint {
            let resumes = format!("checkpoint after epoch {}/{}", c.epochs_done, c.epochs);
            detail = if detail.is_empty() {
                resumes
            } else {
                format!("{detail}; {resumes}")
            };
        }
        if let Some(reason) = &s.inspection.unreadable_result {
            let _ = write!(detail, " (unreadable result.json, redone: {reason})");
        }
        let line = format!(
            "  {:<width$}  {:<8} {detail}",
            s.run_id,
            s.inspection.state.name()
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out + &summary_line(statuses) + "\n"
}

/// The sweep's expected time left, from the completed runs' durations (train and
/// evaluation time from their results, read once each into `durations`) and how far the
/// running ones' checkpoints are.
pub fn eta(
    dir: &ExperimentDir,
    statuses: &[StatusRow],
    durations: &mut std::collections::HashMap<String, f64>,
) -> String {
    let mut remaining = 0.0;
    let mut running = 0usize;
    for s in statuses {
        match &s.inspection.state {
            RunState::Done => {
                if !durations.contains_key(&s.run_id) {
                    if let Ok(result) = dir.run(&s.run_id).read_result() {
                        let t = result.timings.train_seconds + result.timings.eval_seconds;
                        durations.insert(s.run_id.clone(), t);
                    }
                }
            }
            RunState::Failed { .. } => {}
            RunState::Running { .. } => {
                running += 1;
                remaining += match s.inspection.checkpoint {
                    Some(c) if c.epochs > 0 => 1.0 - c.epochs_done as f64 / c.epochs as f64,
                    _ => 1.0,
                };
            }
            RunState::Stale { .. } | RunState::Pending => remaining += 1.0,
        }
    }
    if remaining == 0.0 {
        return "nothing left to run".to_string();
    }
    if durations.is_empty() {
        return "time left: known once a run has completed".to_string();
    }
    let mean = durations.values().sum::<f64>() / durations.len() as f64;
    let seconds = mean * remaining / running.max(1) as f64;
    format!(
        "time left: about {} ({remaining:.1} run(s) of {mean:.0} s on average, {running} running)",
        human_duration(seconds)
    )
}

/// `42 s`, `7 min`, `3.2 h`.
fn human_duration(seconds: f64) -> String {
    if seconds < 90.0 {
        format!("{seconds:.0} s")
    } else if seconds < 5400.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

/// Whether no run is left to train or waiting to be taken over.
pub fn finished(statuses: &[StatusRow]) -> bool {
    statuses
        .iter()
        .all(|s| matches!(s.inspection.state, RunState::Done | RunState::Failed { .. }))
}
