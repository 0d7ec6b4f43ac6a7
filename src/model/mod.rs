//! Classifiers as plain structs over candle-nn layers. Every model exposes its
//! penultimate features and its last (linear) layer separately, so the logits are
//! `head(features(x))` and the last layer's weight rows are the class templates.

mod init;
mod mlp;

pub use init::SeededVars;
pub use mlp::Mlp;

use crate::rng::{seeded, Stream};
use crate::spec::ModelSpec;
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Whether a forward pass trains (dropout on, drawing from the run's generator) or evaluates.
pub enum Pass<'a> {
    Train(&'a mut ChaCha8Rng),
    Eval,
}

pub trait Classifier: Send + Sync {
    /// Penultimate-layer activations, `[batch, features]`.
    fn features(&self, x: &Tensor, pass: &mut Pass) -> candle_core::Result<Tensor>;
    /// The last layer: features to logits, `[batch, classes]`.
    fn head(&self, features: &Tensor) -> candle_core::Result<Tensor>;

    fn logits(&self, x: &Tensor, pass: &mut Pass) -> candle_core::Result<Tensor> {
        self.head(&self.features(x, pass)?)
    }
}

/// A freshly initialised model and the variables it trains.
pub struct Model {
    pub classifier: Box<dyn Classifier>,
    pub vars: VarMap,
}

/// Builds the model of `spec` for samples of `sample_shape` and `classes` outputs, its
/// weights drawn from the run's seed.
pub fn build(
    spec: &ModelSpec,
    sample_shape: &[usize],
    classes: usize,
    seed: u64,
    device: &Device,
) -> Result<Model> {
    let vars = VarMap::new();
    let backend = SeededVars::new(vars.clone(), seeded(seed, Stream::WeightInit));
    let vb = VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone());
    let classifier: Box<dyn Classifier> = match spec {
        ModelSpec::Mlp(m) => {
            let inputs = sample_shape.iter().product();
            Box::new(
                Mlp::new(inputs, &m.hidden, classes, m.dropout, vb).context("building the MLP")?,
            )
        }
    };
    Ok(Model { classifier, vars })
}

/// Inverted dropout with a mask drawn on the host from the run's generator (candle's own
/// dropout draws from an unseeded RNG on CPU).
pub fn dropout(x: &Tensor, p: f64, pass: &mut Pass) -> candle_core::Result<Tensor> {
    let Pass::Train(rng) = pass else {
        return Ok(x.clone());
    };
    if p == 0.0 {
        return Ok(x.clone());
    }
    let keep = 1.0 - p;
    let scale = (1.0 / keep) as f32;
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| {
            if rng.random::<f64>() < keep {
                scale
            } else {
                0.0
            }
        })
        .collect();
    x * Tensor::from_vec(mask, x.shape(), x.device())?
}
