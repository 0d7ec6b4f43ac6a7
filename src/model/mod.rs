//! Classifiers as plain structs over candle-nn layers. Every model exposes its
//! penultimate features and its last (linear) layer separately, so the logits are
//! `head(features(x))` and the last layer's weight rows are the class templates.

mod conv;
mod dense;
mod init;
mod lenet;
mod mlp;
mod norm;
mod resnet;

pub use crate::kernels::Activation;
pub use conv::{max_pool2, Conv2d, ConvAlgorithm, ConvShape};
pub use dense::Dense;
pub use init::SeededVars;
pub use lenet::Lenet5;
pub use mlp::Mlp;
pub use norm::BatchNorm2d;
pub use resnet::Resnet;

use crate::rng::{seeded, Stream};
use crate::spec::ModelSpec;
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor, Var};
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

/// A freshly initialised model and its variables.
pub struct Model {
    /// The network over the variables themselves: what training differentiates.
    pub classifier: Box<dyn Classifier>,
    /// The same network over detached views of the same storage, so it always sees the
    /// current weights and running statistics. candle has no "no-grad" mode: a forward
    /// pass through variables records an autograd graph that keeps every intermediate
    /// alive until the output is dropped (gigabytes for a ResNet evaluated in large
    /// batches). Forward passes through this one record nothing.
    pub inference: Box<dyn Classifier>,
    /// Every variable, BatchNorm running statistics included (what is saved).
    pub vars: VarMap,
}

/// Variables that are state rather than parameters: candle-nn's BatchNorm keeps its
/// running statistics in the VarMap (so that they are saved with the weights), but
/// they are updated by the forward pass, never by the optimiser.
const BUFFER_SUFFIXES: [&str; 2] = [".running_mean", ".running_var"];

fn is_buffer(name: &str) -> bool {
    BUFFER_SUFFIXES.iter().any(|s| name.ends_with(s))
}

impl Model {
    /// The variables the optimiser updates, by name.
    pub fn parameters(&self) -> Vec<(String, Var)> {
        self.vars
            .data()
            .lock()
            .expect("variable map lock")
            .iter()
            .filter(|(name, _)| !is_buffer(name))
            .map(|(name, var)| (name.clone(), var.clone()))
            .collect()
    }
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
    build_with(
        spec,
        sample_shape,
        classes,
        seed,
        device,
        ConvAlgorithm::for_device(device),
    )
}

/// [`build`] with a chosen convolution implementation (the benchmark compares them).
pub fn build_with(
    spec: &ModelSpec,
    sample_shape: &[usize],
    classes: usize,
    seed: u64,
    device: &Device,
    algorithm: ConvAlgorithm,
) -> Result<Model> {
    let vars = VarMap::new();
    let backend = SeededVars::new(vars.clone(), seeded(seed, Stream::WeightInit));
    let vb = VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone());
    let classifier = construct(spec, sample_shape, classes, algorithm, vb)?;
    // Running statistics stay variables: candle-nn's BatchNorm copies a non-variable
    // tensor into a fresh variable (which would freeze them at their initial values),
    // and its evaluation pass reads them detached anyway.
    let views = vars
        .data()
        .lock()
        .expect("variable map lock")
        .iter()
        .map(|(name, var)| {
            let view = if is_buffer(name) {
                var.as_tensor().clone()
            } else {
                var.as_detached_tensor()
            };
            (name.clone(), view)
        })
        .collect();
    let vb = VarBuilder::from_tensors(views, DType::F32, device);
    let inference = construct(spec, sample_shape, classes, algorithm, vb)?;
    Ok(Model {
        classifier,
        inference,
        vars,
    })
}

fn construct(
    spec: &ModelSpec,
    sample_shape: &[usize],
    classes: usize,
    algorithm: ConvAlgorithm,
    vb: VarBuilder,
) -> Result<Box<dyn Classifier>> {
    Ok(match spec {
        ModelSpec::Mlp(m) => {
            let inputs = sample_shape.iter().product();
            Box::new(
                Mlp::new(inputs, &m.hidden, classes, m.dropout, vb).context("building the MLP")?,
            )
        }
        ModelSpec::Lenet5(m) => Box::new(
            Lenet5::new(sample_shape, classes, m.dropout, algorithm, vb)
                .context("building LeNet-5")?,
        ),
        ModelSpec::Resnet(m) => {
            let [channels, _, _] = *sample_shape else {
                anyhow::bail!(
                    "a ResNet takes images [channels, height, width], got samples of shape {sample_shape:?}"
                );
            };
            Box::new(
                Resnet::new(channels, m.depth, m.width, classes, algorithm, vb)
                    .with_context(|| format!("building ResNet-{}", m.depth))?,
            )
        }
    })
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
