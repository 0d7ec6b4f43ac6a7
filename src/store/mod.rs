//! The results directory: its layout, the `result.json` schema ([`schema`]), and every
//! read and write of a run's files. No other module knows a file name in it.
//!
//! ```text
//! results/<experiment>/           an ExperimentDir
//!   experiment.json               the experiment file as given
//!   <run-id>/                     a RunDir
//!     config.json                 the resolved config of this run
//!     result.json                 status, metrics, history, environment, timings
//!     predictions.safetensors     test.logits/test.labels (+ val.*)
//!     model.safetensors           final weights (when the experiment sets save_model)
//!     checkpoint.safetensors      the last epoch's state, while the run is unfinished
//!     lock                        held while a worker trains the run ([`lock`])
//!     attempts/<time>-<pid>/      earlier attempts' result, predictions and model
//!   slurm/                        the Slurm array's logs (`smoothlab slurm`)
//! ```
//! Every file is written through [`crate::atomic`], so a crash never leaves a
//! half-written file.

mod checkpoint;
pub mod lock;
pub mod schema;
mod state;

pub use checkpoint::{Checkpoint, CheckpointProgress};
pub use schema::{
    Environment, EpochRecord, FinalMetrics, Outcome, RunResult, SchemaMismatch, Timings,
    SCHEMA_VERSION,
};
pub use state::{CheckpointState, Inspection, RunState, Stored};

use crate::calibration::Predictions;
use crate::spec::RunConfig;
use crate::{atomic, BadInput};
use anyhow::{bail, Context, Result};
use candle_core::Device;
use candle_nn::VarMap;
use chrono::Utc;
use serde::Deserialize as _;
use serde_json::Value;
use std::path::{Path, PathBuf};

const EXPERIMENT_FILE: &str = "experiment.json";
const RESULT_FILE: &str = "result.json";
const CONFIG_FILE: &str = "config.json";
const PREDICTIONS_FILE: &str = "predictions.safetensors";
const MODEL_FILE: &str = "model.safetensors";
const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
const ATTEMPTS_DIR: &str = "attempts";
const SLURM_LOGS_DIR: &str = "slurm";
/// The extension an unusable checkpoint is renamed to.
const UNUSABLE_EXTENSION: &str = "unusable";

/// One experiment's results directory, `<results>/<experiment>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExperimentDir {
    path: PathBuf,
}

impl ExperimentDir {
    /// The directory of experiment `name` under the results directory `results`.
    pub fn new(results: &Path, name: &str) -> Self {
        Self {
            path: results.join(name),
        }
    }

    /// `path` itself, when it holds the experiment file that `run` keeps.
    pub fn existing(path: &Path) -> Option<Self> {
        path.join(EXPERIMENT_FILE).is_file().then(|| Self {
            path: path.to_path_buf(),
        })
    }

    /// `path` as an experiment directory, or else the experiment directories directly
    /// inside it (sorted); an error naming `path` when there are none.
    pub fn find(path: &Path) -> Result<Vec<Self>> {
        if let Some(dir) = Self::existing(path) {
            return Ok(vec![dir]);
        }
        let mut found: Vec<Self> = std::fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))
            .map_err(BadInput)?
            .filter_map(|e| e.ok())
            .filter_map(|e| Self::existing(&e.path()))
            .collect();
        found.sort_by(|a, b| a.path.cmp(&b.path));
        if found.is_empty() {
            return Err(BadInput(anyhow::anyhow!(
                "{} holds no {EXPERIMENT_FILE}, and neither does any directory in it: give the results directory that `smoothlab run` wrote (results/<experiment>) or its parent",
                path.display()
            ))
            .into());
        }
        Ok(found)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The experiment file kept beside the runs.
    pub fn experiment_file(&self) -> PathBuf {
        self.path.join(EXPERIMENT_FILE)
    }

    /// An error for a directory that holds no experiment file (`status`, `report`).
    pub fn no_experiment_file(path: &Path) -> BadInput {
        BadInput(anyhow::anyhow!(
            "{} holds no {EXPERIMENT_FILE}: give an experiment file or the results directory of one experiment",
            path.display()
        ))
    }

    /// Where the tasks of a Slurm array write their logs.
    pub fn slurm_logs(&self) -> PathBuf {
        self.path.join(SLURM_LOGS_DIR)
    }

    pub fn run(&self, run_id: &str) -> RunDir {
        RunDir::new(&self.path.join(run_id))
    }

    /// Creates the directory and keeps the experiment file `text`, byte for byte,
    /// beside its runs. An older, different copy is kept as
    /// `experiment.<time>-<pid>.json` rather than overwritten.
    pub fn create(&self, text: &str) -> Result<()> {
        // A plain file where a directory belongs is the user's to move (exit 2).
        if let Some(file) = self.path.ancestors().find(|p| p.exists()) {
            if !file.is_dir() {
                return Err(BadInput(anyhow::anyhow!(
                    "{} is a file, not a directory: give --results a directory (it is created when missing)",
                    file.display()
                ))
                .into());
            }
        }
        std::fs::create_dir_all(&self.path)
            .with_context(|| format!("creating {}", self.path.display()))?;
        let path = self.experiment_file();
        atomic::remove_abandoned(&path);
        match crate::files::read_to_string(&path) {
            Ok(existing) if existing == text => return Ok(()),
            Ok(_) => {
                let aside = self.path.join(format!("experiment.{}.json", stamp()));
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
        atomic::write_bytes(&path, text.as_bytes())
    }

    /// Run directories holding a result whose id is not in `planned` (written for an
    /// earlier version of the experiment file), sorted.
    pub fn results_not_in(&self, planned: &[&str]) -> Result<Vec<PathBuf>> {
        // A set: a sweep of 10,000 runs has as many directories to look up.
        let planned: std::collections::HashSet<&str> = planned.iter().copied().collect();
        let mut others: Vec<PathBuf> = std::fs::read_dir(&self.path)
            .with_context(|| format!("reading {}", self.path.display()))?
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name();
                !planned.contains(name.to_string_lossy().as_ref())
                    && e.path().join(RESULT_FILE).is_file()
            })
            .map(|e| e.path())
            .collect();
        others.sort();
        Ok(others)
    }
}

/// `<time>-<pid>`: unique names for the copies kept aside.
fn stamp() -> String {
    format!(
        "{}-{}",
        Utc::now().format("%Y%m%dT%H%M%S%.6f"),
        std::process::id()
    )
}

/// One run's directory, `<results>/<experiment>/<run-id>/`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn create(&self) -> Result<()> {
        std::fs::create_dir_all(&self.path)
            .with_context(|| format!("creating {}", self.path.display()))
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The epoch checkpoint's path (for messages and tests; reads and writes go through
    /// [`Self::save_checkpoint`] and [`Self::load_checkpoint`]).
    pub fn checkpoint_file(&self) -> PathBuf {
        self.file(CHECKPOINT_FILE)
    }

    /// Where [`Self::load_checkpoint`] moves a checkpoint it cannot use.
    pub fn unusable_checkpoint_file(&self) -> PathBuf {
        self.checkpoint_file().with_extension(UNUSABLE_EXTENSION)
    }

    fn model_file(&self) -> PathBuf {
        self.file(MODEL_FILE)
    }

    fn predictions_file(&self) -> PathBuf {
        self.file(PREDICTIONS_FILE)
    }

    fn result_file(&self) -> PathBuf {
        self.file(RESULT_FILE)
    }

    // --- result.json --------------------------------------------------------------

    /// What the run's `result.json` says, without changing anything.
    pub fn stored(&self) -> Result<Stored> {
        if !self.result_file().exists() {
            return Ok(Stored::Nothing);
        }
        match read_result(&self.path) {
            Ok(r) if r.status == Outcome::Completed => Ok(Stored::Completed {
                finished_at: r.environment.finished_at,
            }),
            Ok(r) => Ok(Stored::Failed {
                reason: r.error.unwrap_or_default(),
                finished_at: r.environment.finished_at,
            }),
            Err(e) if e.is::<SchemaMismatch>() => Err(e),
            Err(e) => Ok(Stored::Unreadable(format!("{e:#}"))),
        }
    }

    pub fn read_result(&self) -> Result<RunResult> {
        read_result(&self.path)
    }

    /// The run's result and its JSON, or `None` while it has none.
    pub fn result_json(&self) -> Result<Option<(RunResult, Value)>> {
        if !self.result_file().exists() {
            return Ok(None);
        }
        read_result_json(&self.path).map(Some)
    }

    pub fn write_result(&self, result: &RunResult) -> Result<()> {
        atomic::write_json(&self.result_file(), result)
    }

    // --- config.json --------------------------------------------------------------

    /// Writes `config.json`, or checks that an existing one is this run's config: a
    /// different config in the same directory means a hash collision or a hand edit, and
    /// overwriting it would lose a result.
    pub fn write_or_check_config(&self, run_id: &str, config: &RunConfig) -> Result<()> {
        let path = self.file(CONFIG_FILE);
        if path.exists() {
            let text = crate::files::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let existing: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            if existing != serde_json::to_value(config)? {
                bail!(
                    "{} holds a different config than run {run_id} expects; move that directory away to rerun it",
                    path.display(),
                );
            }
            return Ok(());
        }
        atomic::write_json(&path, config)
    }

    // --- predictions and model ----------------------------------------------------

    /// Writes the test (and validation) logits and labels as `test.*` (and `val.*`).
    pub fn write_predictions(&self, test: &Predictions, val: Option<&Predictions>) -> Result<()> {
        let mut splits = vec![("test", test)];
        splits.extend(val.map(|v| ("val", v)));
        let bytes = crate::calibration::io::safetensors_bytes(&splits)?;
        atomic::write_bytes(&self.predictions_file(), &bytes)
    }

    /// The test logits and labels [`Self::write_predictions`] wrote.
    pub fn read_test_predictions(&self) -> Result<Predictions> {
        crate::calibration::io::read_predictions_split(&self.predictions_file(), Some("test"))
    }

    pub fn write_model(&self, vars: &VarMap) -> Result<()> {
        atomic::write_with(&self.model_file(), |temp| Ok(vars.save(temp)?))
    }

    /// Loads the saved weights into `vars` (a freshly built model of the run's config).
    /// A missing file is bad input: the weights are saved only with `save_model`.
    pub fn load_model(&self, vars: &mut VarMap) -> Result<()> {
        let weights = self.model_file();
        if !weights.is_file() {
            return Err(BadInput(anyhow::anyhow!(
                "{} is missing: the run's weights are saved only when the experiment sets \"save_model\": true (it changes no run id; rerun the run with --force)",
                weights.display()
            ))
            .into());
        }
        // A damaged or foreign file is the input's fault, not the program's.
        vars.load(&weights).map_err(|e| {
            BadInput(anyhow::anyhow!(
                "{}: not the weights of this run's model: {e}",
                weights.display()
            ))
            .into()
        })
    }

    // --- checkpoint ---------------------------------------------------------------

    pub fn save_checkpoint(&self, config: &RunConfig, checkpoint: &Checkpoint) -> Result<()> {
        checkpoint::save(&self.checkpoint_file(), config, checkpoint)
    }

    /// The checkpoint to resume from, if there is a usable one: an unreadable checkpoint
    /// or one of another config is set aside (renamed `*.unusable`) and the run starts
    /// afresh.
    pub fn load_checkpoint(
        &self,
        config: &RunConfig,
        device: &Device,
    ) -> Result<Option<Checkpoint>> {
        let path = self.checkpoint_file();
        match checkpoint::load(&path, config, device) {
            Ok(found) => Ok(found),
            Err(e) => {
                let aside = self.unusable_checkpoint_file();
                tracing::warn!(
                    "{e:#}; starting from scratch, the file is kept as {}",
                    aside.display()
                );
                std::fs::rename(&path, &aside)
                    .with_context(|| format!("moving {} aside", path.display()))?;
                Ok(None)
            }
        }
    }

    /// How far the checkpoint got, from its header alone; `None` without one.
    pub fn checkpoint_progress(&self) -> Result<Option<CheckpointProgress>> {
        checkpoint::peek(&self.checkpoint_file())
    }

    /// Removes the run's checkpoint, if any: a completed run's result says everything.
    pub fn remove_checkpoint(&self) -> Result<()> {
        let path = self.checkpoint_file();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }

    // --- lock ---------------------------------------------------------------------

    /// Claims the run (the directory must exist), taking over a stale lock.
    pub fn claim(&self) -> Result<lock::Claim> {
        lock::claim(&self.path)
    }

    /// The run's lock, if there is one.
    pub fn lock_holder(&self) -> Result<Option<lock::Holder>> {
        lock::inspect(&self.path)
    }

    /// Succeeds while the run's lock is still the claim with `token`.
    pub fn check_lock(&self, token: &str) -> Result<()> {
        lock::check_owner(&self.file(lock::LOCK_FILE), token)
    }

    // --- attempts and leftovers ---------------------------------------------------

    /// Moves the files of a previous attempt at the run (its result, predictions and
    /// model) into `attempts/<time>-<pid>/`, so that rerunning it never destroys an
    /// earlier result, even if the rerun fails.
    ///
    /// Without a result there is no earlier attempt to keep: predictions or a model
    /// without one were written by an attempt killed just before it stored its result,
    /// and are removed (the resumed run writes them again).
    pub fn archive_attempt(&self) -> Result<Option<PathBuf>> {
        let files: Vec<PathBuf> = [RESULT_FILE, PREDICTIONS_FILE, MODEL_FILE]
            .iter()
            .map(|name| self.file(name))
            .filter(|path| path.exists())
            .collect();
        if files.is_empty() {
            return Ok(None);
        }
        if !self.result_file().exists() {
            for file in files {
                std::fs::remove_file(&file)
                    .with_context(|| format!("removing the unfinished {}", file.display()))?;
                tracing::info!("removed {}, left by an unfinished attempt", file.display());
            }
            return Ok(None);
        }
        let archive = self.path.join(ATTEMPTS_DIR).join(stamp());
        std::fs::create_dir_all(&archive)
            .with_context(|| format!("creating {}", archive.display()))?;
        for file in files {
            let target = archive.join(file.file_name().expect("a file name"));
            std::fs::rename(&file, &target)
                .with_context(|| format!("moving {} to {}", file.display(), target.display()))?;
        }
        Ok(Some(archive))
    }

    /// Cleans up after a worker killed between storing its result and exiting: its
    /// lock, its temporary files and, for a completed run, its checkpoint. Leaves the
    /// run alone while a live worker holds it.
    pub fn tidy_finished(&self, completed: bool) -> Result<()> {
        let untidy = std::fs::read_dir(&self.path)
            .map(|entries| {
                entries.filter_map(Result::ok).any(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name == lock::LOCK_FILE
                        || (completed && name == CHECKPOINT_FILE)
                        || atomic::is_temporary(&name)
                })
            })
            .unwrap_or(false);
        if !untidy {
            return Ok(());
        }
        let lock::Claim::Acquired(lock) = self.claim()? else {
            return Ok(());
        };
        self.remove_leftovers()?;
        if completed {
            self.remove_checkpoint()?;
        }
        drop(lock);
        Ok(())
    }

    /// Removes the temporary files that a killed writer left (see [`crate::atomic`]).
    /// Only the run's lock holder calls this, so no write is in flight.
    pub fn remove_leftovers(&self) -> Result<()> {
        let entries = match std::fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("listing {}", self.path.display())),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if atomic::is_temporary(&name) {
                let path = entry.path();
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing the leftover {}", path.display()))?;
                tracing::info!("removed {}, left by an interrupted write", path.display());
            }
        }
        Ok(())
    }
}

/// Reads a `result.json`, or the one inside a run directory.
pub fn read_result(path: &Path) -> Result<RunResult> {
    read_result_json(path).map(|(result, _)| result)
}

/// [`read_result`], with the file's JSON as read (for queries over its keys).
pub fn read_result_json(path: &Path) -> Result<(RunResult, Value)> {
    let file = if path.is_dir() {
        path.join(RESULT_FILE)
    } else {
        path.to_path_buf()
    };
    let text = crate::files::read_to_string(&file)
        .with_context(|| format!("reading {}", file.display()))?;
    let not_a_result = || format!("{} is not a smoothlab result file", file.display());
    let value: Value = serde_json::from_str(&text).with_context(not_a_result)?;
    if let Some(found) = value.get("schema_version").and_then(Value::as_u64) {
        if found != u64::from(SCHEMA_VERSION) {
            return Err(SchemaMismatch { file, found }.into());
        }
    }
    let result = RunResult::deserialize(&value).with_context(not_a_result)?;
    Ok((result, value))
}
