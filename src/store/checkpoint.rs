//! The epoch checkpoint: everything a run needs to continue exactly where it stopped.
//!
//! One safetensors file, written atomically at the end of every epoch: the model's
//! variables (`model.<name>`, BatchNorm running statistics included), the optimiser's
//! state (`optimizer.<parameter>.<momentum_buffer|exp_avg|exp_avg_sq>`) and, in the
//! header's metadata, the epochs done, the three random generators' exact positions,
//! the per-parameter step counts, the history and the timings. A resumed run replays
//! nothing and draws the same numbers, so on the same machine it ends with the same
//! weights and metrics as an uninterrupted one.

use super::schema::{EpochRecord, Timings};
use crate::atomic;
use crate::rng::Rngs;
use crate::spec::RunConfig;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// The metadata key holding [`Meta`] as JSON.
const META_KEY: &str = "smoothlab.checkpoint";
/// Bumped when the checkpoint layout changes; an older one is ignored, not misread.
const FORMAT: u32 = 1;
const MODEL_PREFIX: &str = "model.";
const OPTIMIZER_PREFIX: &str = "optimizer.";

/// The state of a run after `epochs_done` epochs.
pub struct Checkpoint {
    pub epochs_done: usize,
    pub variables: HashMap<String, Tensor>,
    pub optimizer_state: HashMap<String, Tensor>,
    pub optimizer_steps: HashMap<String, u64>,
    pub rngs: Rngs,
    pub history: Vec<EpochRecord>,
    pub timings: Timings,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    format: u32,
    /// The run's resolved config: a checkpoint of another config is never resumed.
    config: RunConfig,
    epochs_done: usize,
    optimizer_steps: HashMap<String, u64>,
    rngs: Rngs,
    history: Vec<EpochRecord>,
    timings: Timings,
}

/// Writes `checkpoint` of the run with `config` to `path` atomically.
pub(super) fn save(path: &Path, config: &RunConfig, checkpoint: &Checkpoint) -> Result<()> {
    let meta = Meta {
        format: FORMAT,
        config: config.clone(),
        epochs_done: checkpoint.epochs_done,
        optimizer_steps: checkpoint.optimizer_steps.clone(),
        rngs: checkpoint.rngs.clone(),
        history: checkpoint.history.clone(),
        timings: checkpoint.timings.clone(),
    };
    let mut tensors = Vec::new();
    for (prefix, map) in [
        (MODEL_PREFIX, &checkpoint.variables),
        (OPTIMIZER_PREFIX, &checkpoint.optimizer_state),
    ] {
        for (name, tensor) in map {
            // Host copies: safetensors serialises from host memory on every device.
            tensors.push((format!("{prefix}{name}"), tensor.to_device(&Device::Cpu)?));
        }
    }
    let header = HashMap::from([(META_KEY.to_string(), serde_json::to_string(&meta)?)]);
    let bytes =
        safetensors::serialize(tensors, Some(header)).context("serialising the checkpoint")?;
    atomic::write_bytes(path, &bytes)
}

/// Reads the checkpoint at `path` if there is one for this `config`. A checkpoint of a
/// different config or format is an error (the caller decides to start afresh).
pub(super) fn load(path: &Path, config: &RunConfig, device: &Device) -> Result<Option<Checkpoint>> {
    let bytes = match crate::files::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let checkpoint = (|| {
        let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes)?;
        let Some(text) = metadata.metadata().as_ref().and_then(|m| m.get(META_KEY)) else {
            bail!("no `{META_KEY}` entry in the header");
        };
        let meta: Meta = serde_json::from_str(text).context("reading the header entry")?;
        if meta.format != FORMAT {
            bail!("format {}, expected {FORMAT}", meta.format);
        }
        if &meta.config != config {
            bail!("it belongs to another config");
        }
        let mut variables = HashMap::new();
        let mut optimizer_state = HashMap::new();
        for (name, tensor) in candle_core::safetensors::load_buffer(&bytes, device)? {
            if let Some(name) = name.strip_prefix(MODEL_PREFIX) {
                variables.insert(name.to_string(), tensor);
            } else if let Some(name) = name.strip_prefix(OPTIMIZER_PREFIX) {
                optimizer_state.insert(name.to_string(), tensor);
            } else {
                bail!("unexpected tensor `{name}`");
            }
        }
        Ok(Checkpoint {
            epochs_done: meta.epochs_done,
            variables,
            optimizer_state,
            optimizer_steps: meta.optimizer_steps,
            rngs: meta.rngs,
            history: meta.history,
            timings: meta.timings,
        })
    })()
    .with_context(|| format!("{} is not a checkpoint of this run", path.display()))?;
    Ok(Some(checkpoint))
}

/// How far a checkpoint got, from its header alone.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointProgress {
    pub epochs_done: usize,
    pub epochs: usize,
    pub history: Vec<EpochRecord>,
}

/// How far the checkpoint at `path` got, from its header alone (the tensors are not
/// read); `None` when there is no checkpoint.
pub(super) fn peek(path: &Path) -> Result<Option<CheckpointProgress>> {
    use std::io::Read;
    let mut file = match crate::files::open_regular(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let meta = (|| {
        let mut length = [0u8; 8];
        file.read_exact(&mut length)?;
        let length = u64::from_le_bytes(length);
        // safetensors caps headers at 100 MB.
        if length > 100_000_000 {
            bail!("header length {length} is implausible");
        }
        let mut header = vec![0u8; length as usize];
        file.read_exact(&mut header)?;
        let header: serde_json::Value = serde_json::from_slice(&header)?;
        let text = header["__metadata__"][META_KEY]
            .as_str()
            .with_context(|| format!("no `{META_KEY}` entry in the header"))?;
        Ok(serde_json::from_str::<Meta>(text)?)
    })()
    .with_context(|| format!("{} is not a smoothlab checkpoint", path.display()))?;
    Ok(Some(CheckpointProgress {
        epochs_done: meta.epochs_done,
        epochs: meta.config.training.epochs,
        history: meta.history,
    }))
}
