//! The `result.json` schema: every type a result file holds, in one place.
//!
//! [`crate::train`] produces the history, metrics and timings; the worker adds the
//! environment and writes the whole through [`super::RunDir::write_result`].

use crate::calibration::{Calibrated, Calibrator, Metrics, TemperatureFit};
use crate::device::GpuInfo;
use crate::spec::RunConfig;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Bumped whenever `result.json` changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

/// How a run ended: `result.json`'s `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    Failed,
}

/// The contents of `result.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub schema_version: u32,
    pub run_id: String,
    pub experiment: String,
    pub status: Outcome,
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

/// One epoch's numbers in `result.json`'s history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Mean training loss over the epoch's samples (as trained: dropout on).
    pub train_loss: f64,
    /// Mean NLL of the training labels, unsmoothed, over the same samples and passes:
    /// unlike the loss, comparable across ε and losses. Absent in older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_nll: Option<f64>,
    pub train_accuracy: f64,
    pub val_accuracy: Option<f64>,
    pub val_nll: Option<f64>,
    pub val_ece: Option<f64>,
    /// Wall time of the epoch, validation included.
    pub seconds: f64,
}

/// Final metrics of a completed run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalMetrics {
    pub test: Metrics,
    pub validation: Option<Metrics>,
    /// Temperature fitted on the validation split (when enabled).
    pub temperature: Option<TemperatureFit>,
    /// Test metrics of `softmax(z / T)`.
    pub test_scaled: Option<Metrics>,
    /// Every other post-hoc calibrator of `evaluation.calibrators`, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub calibrators: BTreeMap<Calibrator, Calibrated>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub train_seconds: f64,
    /// Validation passes and final evaluation, calibration included.
    pub eval_seconds: f64,
    pub train_samples_per_second: f64,
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
            hostname: super::lock::hostname(),
            slurm_job: super::lock::slurm_job(),
            gpu,
            started_at,
            finished_at: Utc::now(),
        }
    }
}

/// A result file written by another version of smoothlab: neither reread nor
/// overwritten (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{}: schema_version {found}, but this smoothlab reads version {SCHEMA_VERSION}; use the smoothlab that wrote it, or another --results directory", file.display())]
pub struct SchemaMismatch {
    pub file: PathBuf,
    pub found: u64,
}
