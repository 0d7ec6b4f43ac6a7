//! What a run directory says about its run, in one vocabulary: [`Stored`] is what its
//! `result.json` records, [`RunState`] what `status` and `report` show (the result, the
//! lock and the checkpoint together).

use super::lock::Holder;
use super::RunDir;
use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What a run's `result.json` records.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// No result yet.
    Nothing,
    Completed {
        finished_at: DateTime<Utc>,
    },
    Failed {
        reason: String,
        finished_at: DateTime<Utc>,
    },
    /// A `result.json` that is not a smoothlab result (damaged, or written by hand); the
    /// run is redone and the file kept under `attempts/`.
    Unreadable(String),
}

/// A planned run's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RunState {
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

impl RunState {
    pub fn name(&self) -> &'static str {
        match self {
            RunState::Done => "done",
            RunState::Failed { .. } => "failed",
            RunState::Running { .. } => "running",
            RunState::Stale { .. } => "stale",
            RunState::Pending => "pending",
        }
    }
}

/// Epochs done in a checkpoint, of the run's total.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CheckpointState {
    pub epochs_done: usize,
    pub epochs: usize,
}

/// A run directory's state with the details `status` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inspection {
    #[serde(flatten)]
    pub state: RunState,
    /// How far the last checkpoint of an unfinished run got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointState>,
    /// `result.json` exists but is not a smoothlab result; the next run redoes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable_result: Option<String>,
}

impl RunDir {
    /// The run's state, read from its result, lock and checkpoint without changing
    /// anything.
    pub fn inspect(&self) -> Result<Inspection> {
        let stored = self.stored()?;
        let held = self.lock_holder()?;
        let mut unreadable_result = None;
        let state = match (stored, held) {
            (Stored::Completed { .. }, _) => RunState::Done,
            (
                _,
                Some(Holder::Live {
                    info,
                    heartbeat_age,
                }),
            ) => RunState::Running {
                holder: info.map(|i| i.holder()),
                heartbeat_age_s: heartbeat_age.as_secs(),
            },
            (Stored::Failed { reason, .. }, _) => RunState::Failed { reason },
            (stored, held) => {
                if let Stored::Unreadable(reason) = stored {
                    unreadable_result = Some(reason);
                }
                match held {
                    Some(Holder::Stale { info, reason }) => RunState::Stale {
                        holder: info.map(|i| i.holder()),
                        reason,
                    },
                    _ => RunState::Pending,
                }
            }
        };
        let checkpoint = match state {
            RunState::Done => None,
            _ => self
                .checkpoint_progress()
                .unwrap_or_else(|e| {
                    tracing::warn!("{e:#}");
                    None
                })
                .map(|p| CheckpointState {
                    epochs_done: p.epochs_done,
                    epochs: p.epochs,
                }),
        };
        Ok(Inspection {
            state,
            checkpoint,
            unreadable_result,
        })
    }
}
