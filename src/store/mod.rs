//! Result files: the `result.json` schema, atomic writes and the state of a run directory.
//!
//! ```text
//! results/<experiment>/
//!   experiment.json               the experiment file as given
//!   <run-id>/config.json          the resolved config of this run
//!   <run-id>/result.json          status, metrics, history, environment, timings
//!   <run-id>/predictions.safetensors   test.logits/test.labels (+ val.*)
//!   <run-id>/model.safetensors    final weights (when the experiment sets save_model)
//!   <run-id>/checkpoint.safetensors    the last epoch's state, while the run is unfinished
//!   <run-id>/lock                 held while a worker trains the run ([`lock`])
//! ```
//! Every file is written through [`crate::atomic`], so a crash never leaves a
//! half-written file.

pub mod lock;

use crate::spec::RunConfig;
use crate::train::{EpochRecord, FinalMetrics, Timings};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Bumped whenever `result.json` changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

pub const RESULT_FILE: &str = "result.json";
pub const CONFIG_FILE: &str = "config.json";
pub const PREDICTIONS_FILE: &str = "predictions.safetensors";
pub const MODEL_FILE: &str = "model.safetensors";
pub const EXPERIMENT_FILE: &str = "experiment.json";
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Completed,
    Failed,
}

/// The contents of `result.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub schema_version: u32,
    pub run_id: String,
    pub experiment: String,
    pub status: RunStatus,
    /// Why the run failed (`status = failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The swept settings of this run (dotted path → value).
    pub swept: Map<String, Value>,
    pub config: RunConfig,
    pub history: Vec<EpochRecord>,
    /// Present when `status = completed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<FinalMetrics>,
    pub environment: Environment,
    pub timings: Timings,
}

/// Where and with what a run was produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub smoothlab_version: String,
    /// Commit the binary was built from, when built inside a git checkout.
    pub git_commit: Option<String>,
    pub candle_version: String,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Threads candle's CPU kernels use (`RAYON_NUM_THREADS` or the physical core count).
    pub threads: usize,
    pub hostname: Option<String>,
    /// `<array job id>_<task id>` (or the job id) of the Slurm job that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_job: Option<String>,
    /// The GPU, when the device is CUDA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuInfo>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

/// What a CUDA run ran on: enough to tell apart results from different GPUs, drivers
/// and builds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    pub name: String,
    /// `major.minor`, e.g. `9.0` for H100/H200.
    pub compute_capability: String,
    pub memory_mib: u64,
    /// The NVIDIA kernel driver, e.g. `580.65.06` (Linux only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// The newest CUDA version the driver supports, e.g. `13.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_cuda_version: Option<String>,
    /// The CUDA version smoothlab was built against.
    pub cuda_build_version: String,
}

impl Environment {
    /// The environment of this process on `device` (`gpu` when it is CUDA), for a run
    /// that started at `started_at`.
    pub fn current(device: &str, gpu: Option<GpuInfo>, started_at: DateTime<Utc>) -> Self {
        let commit = env!("SMOOTHLAB_GIT_COMMIT");
        Self {
            smoothlab_version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: (!commit.is_empty()).then(|| commit.to_string()),
            candle_version: env!("SMOOTHLAB_CANDLE_VERSION").to_string(),
            device: device.to_string(),
            threads: candle_core::utils::get_num_threads(),
            hostname: hostname(),
            slurm_job: lock::slurm_job(),
            gpu,
            started_at,
            finished_at: Utc::now(),
        }
    }
}

pub(crate) fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// What is on disk for one planned run.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    Pending,
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

/// A result file written by another version of smoothlab: neither reread nor
/// overwritten (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{}: schema_version {found}, but this smoothlab reads version {SCHEMA_VERSION}; use the smoothlab that wrote it, or another --results directory", file.display())]
pub struct SchemaMismatch {
    pub file: PathBuf,
    pub found: u64,
}

/// Reads the state of the run in `run_dir` without changing anything.
pub fn run_state(run_dir: &Path) -> Result<RunState> {
    let path = run_dir.join(RESULT_FILE);
    if !path.exists() {
        return Ok(RunState::Pending);
    }
    match read_result(&path) {
        Ok(r) if r.status == RunStatus::Completed => Ok(RunState::Completed {
            finished_at: r.environment.finished_at,
        }),
        Ok(r) => Ok(RunState::Failed {
            reason: r.error.unwrap_or_default(),
            finished_at: r.environment.finished_at,
        }),
        Err(e) if e.is::<SchemaMismatch>() => Err(e),
        Err(e) => Ok(RunState::Unreadable(format!("{e:#}"))),
    }
}

/// Reads a `result.json`, or the one inside a run directory.
pub fn read_result(path: &Path) -> Result<RunResult> {
    let file = if path.is_dir() {
        path.join(RESULT_FILE)
    } else {
        path.to_path_buf()
    };
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let not_a_result = || format!("{} is not a smoothlab result file", file.display());
    let value: Value = serde_json::from_str(&text).with_context(not_a_result)?;
    if let Some(found) = value.get("schema_version").and_then(Value::as_u64) {
        if found != u64::from(SCHEMA_VERSION) {
            return Err(SchemaMismatch { file, found }.into());
        }
    }
    serde_json::from_value(value).with_context(not_a_result)
}

/// Moves the files of a previous attempt at a run (its result, predictions and model)
/// into `attempts/<time>-<pid>/` inside the run directory, so that rerunning it never
/// destroys an earlier result, even if the rerun fails.
///
/// Without a result there is no earlier attempt to keep: predictions or a model without
/// one were written by an attempt killed just before it stored its result, and are
/// removed (the resumed run writes them again).
pub fn archive_attempt(run_dir: &Path) -> Result<Option<PathBuf>> {
    let files: Vec<PathBuf> = [RESULT_FILE, PREDICTIONS_FILE, MODEL_FILE]
        .iter()
        .map(|name| run_dir.join(name))
        .filter(|path| path.exists())
        .collect();
    if files.is_empty() {
        return Ok(None);
    }
    if !run_dir.join(RESULT_FILE).exists() {
        for file in files {
            std::fs::remove_file(&file)
                .with_context(|| format!("removing the unfinished {}", file.display()))?;
            tracing::info!("removed {}, left by an unfinished attempt", file.display());
        }
        return Ok(None);
    }
    let stamp = format!(
        "{}-{}",
        Utc::now().format("%Y%m%dT%H%M%S%.6f"),
        std::process::id()
    );
    let archive = run_dir.join("attempts").join(stamp);
    std::fs::create_dir_all(&archive).with_context(|| format!("creating {}", archive.display()))?;
    for file in files {
        let target = archive.join(file.file_name().expect("a file name"));
        std::fs::rename(&file, &target)
            .with_context(|| format!("moving {} to {}", file.display(), target.display()))?;
    }
    Ok(Some(archive))
}

/// Cleans up after a worker killed between storing its result and exiting: its lock, its
/// temporary files and, for a completed run, its checkpoint. Leaves the run alone while
/// a live worker holds it.
pub fn tidy_finished(run_dir: &Path, completed: bool) -> Result<()> {
    let untidy = std::fs::read_dir(run_dir)
        .map(|entries| {
            entries.filter_map(Result::ok).any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name == lock::LOCK_FILE
                    || (completed && name == CHECKPOINT_FILE)
                    || crate::atomic::is_temporary(&name)
            })
        })
        .unwrap_or(false);
    if !untidy {
        return Ok(());
    }
    let lock::Claim::Acquired(lock) = lock::claim(run_dir)? else {
        return Ok(());
    };
    remove_leftovers(run_dir)?;
    if completed {
        remove_checkpoint(run_dir)?;
    }
    drop(lock);
    Ok(())
}

/// Removes the run's checkpoint, if any: a completed run's result says everything.
pub fn remove_checkpoint(run_dir: &Path) -> Result<()> {
    let path = run_dir.join(CHECKPOINT_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

/// Removes the temporary files that a killed writer left in `run_dir` (see
/// [`crate::atomic`]). Only the run's lock holder calls this, so no write is in flight.
pub fn remove_leftovers(run_dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(run_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", run_dir.display())),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if crate::atomic::is_temporary(&name) {
            let path = entry.path();
            std::fs::remove_file(&path)
                .with_context(|| format!("removing the leftover {}", path.display()))?;
            tracing::info!("removed {}, left by an interrupted write", path.display());
        }
    }
    Ok(())
}
