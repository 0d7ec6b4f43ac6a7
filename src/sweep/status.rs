//! `smoothlab status`: the state of every planned run, read from the results directory
//! without changing anything.

use crate::spec::{Plan, PlannedRun};
use crate::store::lock::{self, Holder};
use crate::store::{self, RunState};
use crate::train::checkpoint;
use crate::BadInput;
use anyhow::Result;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One planned run's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    Done,
    Failed {
        reason: String,
    },
    /// A live worker holds the run's lock.
    Running {
        holder: Option<String>,
        heartbeat_age_s: u64,
    },
    /// A lock whose worker is gone; the next worker takes the run over.
    Stale {
        holder: Option<String>,
        reason: String,
    },
    Pending,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Done => "done",
            State::Failed { .. } => "failed",
            State::Running { .. } => "running",
            State::Stale { .. } => "stale",
            State::Pending => "pending",
        }
    }
}

/// Epochs done in a checkpoint, of the run's total.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CheckpointState {
    pub epochs_done: usize,
    pub epochs: usize,
}

/// A run's row in the status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunStatus {
    pub run_id: String,
    /// 0-based position in the plan (what `--shard` partitions).
    pub position: usize,
    #[serde(flatten)]
    pub state: State,
    /// How far the last checkpoint of an unfinished run got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointState>,
    /// `result.json` exists but is not a smoothlab result; the next run redoes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable_result: Option<String>,
}

/// The status of every run of `plan` in the experiment directory `dir`.
/// The plan and experiment directory that `target` names: an experiment file (whose
/// runs live under `results`), or an experiment's results directory, which holds the
/// experiment file that `run` keeps.
pub fn open(target: &Path, results: &Path) -> Result<(Plan, PathBuf)> {
    if !target.is_dir() {
        let plan = crate::spec::load(target)?;
        let dir = super::experiment_dir(&plan, results);
        return Ok((plan, dir));
    }
    let file = target.join(store::EXPERIMENT_FILE);
    if !file.is_file() {
        return Err(BadInput(anyhow::anyhow!(
            "{} holds no {}: give an experiment file or the results directory of one experiment",
            target.display(),
            store::EXPERIMENT_FILE
        ))
        .into());
    }
    Ok((crate::spec::load(&file)?, target.to_path_buf()))
}

pub fn collect(plan: &Plan, dir: &Path) -> Result<Vec<RunStatus>> {
    plan.runs
        .iter()
        .enumerate()
        .map(|(position, run)| of_run(run, position, &dir.join(&run.id)))
        .collect()
}

fn of_run(run: &PlannedRun, position: usize, run_dir: &Path) -> Result<RunStatus> {
    let stored = store::run_state(run_dir)?;
    let held = lock::inspect(run_dir)?;
    let mut unreadable_result = None;
    let state = match (stored, held) {
        (RunState::Completed { .. }, _) => State::Done,
        (
            _,
            Some(Holder::Live {
                info,
                heartbeat_age,
            }),
        ) => State::Running {
            holder: info.map(|i| i.holder()),
            heartbeat_age_s: heartbeat_age.as_secs(),
        },
        (RunState::Failed { reason, .. }, _) => State::Failed { reason },
        (stored, held) => {
            if let RunState::Unreadable(reason) = stored {
                unreadable_result = Some(reason);
            }
            match held {
                Some(Holder::Stale { info, reason }) => State::Stale {
                    holder: info.map(|i| i.holder()),
                    reason,
                },
                _ => State::Pending,
            }
        }
    };
    let checkpoint = match state {
        State::Done => None,
        _ => checkpoint::peek(&run_dir.join(store::CHECKPOINT_FILE))
            .unwrap_or_else(|e| {
                tracing::warn!("{e:#}");
                None
            })
            .map(|p| CheckpointState {
                epochs_done: p.epochs_done,
                epochs: p.epochs,
            }),
    };
    Ok(RunStatus {
        run_id: run.id.clone(),
        position,
        state,
        checkpoint,
        unreadable_result,
    })
}

/// `N run(s): a done, b failed, c running, d stale, e pending`.
pub fn summary_line(statuses: &[RunStatus]) -> String {
    let count = |name| statuses.iter().filter(|s| s.state.name() == name).count();
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
pub fn table(statuses: &[RunStatus]) -> String {
    let width = statuses.iter().map(|s| s.run_id.len()).max().unwrap_or(0);
    let mut out = String::new();
    for s in statuses {
        let mut detail = match &s.state {
            State::Failed { reason } => reason.clone(),
            State::Running {
                holder,
                heartbeat_age_s,
            } => format!(
                "by {} (heartbeat {heartbeat_age_s} s ago)",
                holder
                    .as_deref()
                    .unwrap_or("a worker still writing its lock")
            ),
            State::Stale { holder, reason } => format!(
                "lock of {} ({reason}); the next worker takes it over",
                holder.as_deref().unwrap_or("an unknown worker")
            ),
            State::Done | State::Pending => String::new(),
        };
        if let Some(c) = s.checkpoint {
            let resumes = format!("checkpoint after epoch {}/{}", c.epochs_done, c.epochs);
            detail = if detail.is_empty() {
                resumes
            } else {
                format!("{detail}; {resumes}")
            };
        }
        if let Some(reason) = &s.unreadable_result {
            let _ = write!(detail, " (unreadable result.json, redone: {reason})");
        }
        let line = format!("  {:<width$}  {:<8} {detail}", s.run_id, s.state.name());
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out + &summary_line(statuses) + "\n"
}
