//! Result files: the `result.json` schema, atomic writes and the state of a run directory.
//!
//! ```text
//! results/<experiment>/
//!   experiment.json               the experiment file as given
//!   <run-id>/config.json          the resolved config of this run
//!   <run-id>/result.json          status, metrics, history, environment, timings
//!   <run-id>/predictions.safetensors   test.logits/test.labels (+ val.*)
//!   <run-id>/model.safetensors    final weights (training.save_model)
//! ```
//! Every file is written to a temporary file in the same directory and renamed into
//! place, so a crash never leaves a half-written file.

use crate::spec::RunConfig;
use crate::train::{EpochRecord, FinalMetrics, Timings};
use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bumped whenever `result.json` changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

pub const RESULT_FILE: &str = "result.json";
pub const CONFIG_FILE: &str = "config.json";
pub const PREDICTIONS_FILE: &str = "predictions.safetensors";
pub const MODEL_FILE: &str = "model.safetensors";
pub const EXPERIMENT_FILE: &str = "experiment.json";

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
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

impl Environment {
    /// The environment of this process on `device`, for a run that started at `started_at`.
    pub fn current(device: &str, started_at: DateTime<Utc>) -> Self {
        let commit = env!("SMOOTHLAB_GIT_COMMIT");
        Self {
            smoothlab_version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: (!commit.is_empty()).then(|| commit.to_string()),
            candle_version: env!("SMOOTHLAB_CANDLE_VERSION").to_string(),
            device: device.to_string(),
            threads: candle_core::utils::get_num_threads(),
            hostname: hostname(),
            started_at,
            finished_at: Utc::now(),
        }
    }
}

fn hostname() -> Option<String> {
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
    Completed,
    Failed(String),
}

/// Reads the state of the run in `run_dir`. A `result.json` that does not parse (written
/// by something else, or by hand) is moved aside to `result.json.unreadable-<time>` so
/// that it is kept while the run is redone.
pub fn run_state(run_dir: &Path) -> Result<RunState> {
    let path = run_dir.join(RESULT_FILE);
    if !path.exists() {
        return Ok(RunState::Pending);
    }
    match read_result(&path) {
        Ok(r) if r.status == RunStatus::Completed => Ok(RunState::Completed),
        Ok(r) => Ok(RunState::Failed(r.error.unwrap_or_default())),
        Err(e) => {
            let aside = run_dir.join(format!(
                "{RESULT_FILE}.unreadable-{}",
                Utc::now().format("%Y%m%dT%H%M%S")
            ));
            tracing::warn!(
                "{e:#}; keeping it as {} and redoing the run",
                aside.display()
            );
            std::fs::rename(&path, &aside)
                .with_context(|| format!("moving {} aside", path.display()))?;
            Ok(RunState::Pending)
        }
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
    let result: RunResult = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a smoothlab result file", file.display()))?;
    if result.schema_version != SCHEMA_VERSION {
        bail!(
            "{} has schema_version {}, this smoothlab reads {SCHEMA_VERSION}",
            file.display(),
            result.schema_version
        );
    }
    Ok(result)
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(value).context("serialising JSON")?;
    text.push(b'\n');
    write_bytes(path, &text)
}

/// Lets `write` create a temporary file beside `path` (any writer that takes a path,
/// such as `VarMap::save`), syncs it, and renames it into place.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let temp = temporary_path(path);
    let result = write(&temp).and_then(|()| {
        std::fs::File::open(&temp)?.sync_all()?;
        std::fs::rename(&temp, path)?;
        sync_parent(path)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |temp| {
        Ok(std::fs::File::create(temp)?.write_all(bytes)?)
    })
}

/// `.name.tmp-<pid>-<n>` beside `path`: unique per process and per write (so concurrent
/// writers never share one), hidden from listings.
fn temporary_path(path: &Path) -> PathBuf {
    static WRITES: AtomicUsize = AtomicUsize::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// Makes the rename itself durable.
fn sync_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
