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
