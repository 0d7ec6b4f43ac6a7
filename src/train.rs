//! The loop for one run, top to bottom: data, model, optimiser; per epoch a seeded
//! shuffle, index-selected batches on the device, one optimiser step per batch, then a
//! validation pass; finally test and validation predictions and their calibration.
//!
//! The loop never reads a number back from the device per batch: per-step losses and
//! correct counts stay on the device and are read a few times per epoch (which is also
//! where a NaN/Inf loss is caught, with its exact step).
//!
//! With a run directory the run saves its whole state there after every epoch and, when
//! a checkpoint is there at the start, continues from it ([`crate::store::Checkpoint`]).

use crate::calibration::catalog::{self, ACCURACY, ECE, NLL};
use crate::calibration::{self, Metrics, Predictions};
use crate::data::{self, Dataset, Split};
use crate::kernels::cpu;
use crate::loss::{Loss, Mix};
use crate::memory;
use crate::model::{self, Classifier, Model, Pass};
use crate::optim::{self, Optimizer};
use crate::rng::Rngs;
use crate::spec::{MixupSpec, RunConfig};
use crate::store::{Checkpoint, EpochRecord, FinalMetrics, RunDir, Timings};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Device reads per epoch for the running loss/accuracy (and the NaN check).
const READS_PER_EPOCH: usize = 8;

/// What a completed run hands to the store.
pub struct Trained {
    pub history: Vec<EpochRecord>,
    pub metrics: FinalMetrics,
    pub test: Predictions,
    pub validation: Option<Predictions>,
    pub vars: VarMap,
    pub timings: Timings,
}

/// A run that stopped, with the history it had.
#[derive(Debug)]
pub struct Failed {
    pub error: anyhow::Error,
    pub history: Vec<EpochRecord>,
    pub timings: Timings,
}

/// Where a run is: its epoch, the optimiser steps done out of its total, the training
/// samples done (what a samples/s figure is measured from), and the running training
/// loss of the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The epoch in progress, from 1 (the last one once all are done).
    pub epoch: u64,
    pub epochs: u64,
    pub done: u64,
    pub total: u64,
    /// Training samples done over all epochs, those of a resumed checkpoint included.
    pub samples: u64,
    pub loss: Option<f64>,
}

/// How a run talks to whoever drives it.
pub struct Hooks<'a> {
    /// Called at the start and a few times per epoch.
    pub progress: &'a dyn Fn(Progress),
    /// The run directory that keeps the epoch checkpoint; `None` trains without one.
    pub checkpoint: Option<&'a RunDir>,
    /// Called before each checkpoint write; an error stops the run (the caller uses it
    /// to make sure it still owns the run).
    pub before_write: &'a dyn Fn() -> Result<()>,
    /// Set (by a signal handler) to stop the run after the current step with
    /// [`Interrupted`], leaving the last checkpoint to resume from.
    pub interrupt: &'a AtomicBool,
}

impl Hooks<'static> {
    /// No progress reports, no checkpoints, no interruption.
    pub fn none() -> Self {
        static NEVER: AtomicBool = AtomicBool::new(false);
        Hooks {
            progress: &|_| {},
            checkpoint: None,
            before_write: &|| Ok(()),
            interrupt: &NEVER,
        }
    }
}

/// The run was asked to stop (SIGINT/SIGTERM); its last checkpoint is intact.
#[derive(Debug, thiserror::Error)]
#[error("interrupted after {epochs_done} complete epoch(s)")]
pub struct Interrupted {
    pub epochs_done: usize,
}

/// Trains one run on `device`.
pub fn run(config: &RunConfig, device: &Device, hooks: &Hooks) -> Result<Trained, Failed> {
    let mut state = State::default();
    match run_inner(config, device, hooks, &mut state) {
        Ok((metrics, test, validation, vars)) => Ok(Trained {
            history: state.history,
            metrics,
            test,
            validation,
            vars,
            timings: state.timings,
        }),
        Err(error) => Err(Failed {
            error,
            history: state.history,
            timings: state.timings,
        }),
    }
}

/// What survives a failure: the epochs done so far and the time spent.
#[derive(Default)]
struct State {
    history: Vec<EpochRecord>,
    timings: Timings,
}

fn run_inner(
    config: &RunConfig,
    device: &Device,
    hooks: &Hooks,
    state: &mut State,
) -> Result<(FinalMetrics, Predictions, Option<Predictions>, VarMap)> {
    let mut setup = Setup::new(config, device)?;
    let mut first_epoch = 0;
    if let Some(resumed) = hooks
        .checkpoint
        .map(|run_dir| run_dir.load_checkpoint(config, device))
        .transpose()?
        .flatten()
    {
        restore(&resumed, &setup.model.vars, &mut setup.optimizer)?;
        tracing::info!("resuming after epoch {}", resumed.epochs_done);
        first_epoch = resumed.epochs_done;
        setup.rngs = resumed.rngs;
        state.history = resumed.history;
        state.timings = resumed.timings;
    }

    let epochs = config.training.epochs;
    let steps = steps_per_epoch(config, &setup.data);
    let samples = first_epoch * setup.data.train.len();
    report_progress(hooks, first_epoch, epochs, steps, 0, samples, None);

    for epoch in first_epoch..epochs {
        let started = Instant::now();
        let totals = train_epoch(config, &mut setup, epoch, hooks)?;
        let train_seconds = started.elapsed().as_secs_f64();
        state.timings.train_seconds += train_seconds;

        let eval_started = Instant::now();
        let val_metrics = validate(setup.model.inference.as_ref(), &setup.data, config)
            .context("evaluating on the validation split")?;
        state.timings.eval_seconds += eval_started.elapsed().as_secs_f64();

        let record = EpochRecord {
            epoch: epoch + 1,
            lr: setup.optimizer.learning_rate(),
            train_loss: totals.loss,
            train_nll: Some(totals.nll),
            train_accuracy: totals.accuracy,
            val_accuracy: val_metrics.as_ref().map(|m| m.accuracy),
            val_nll: val_metrics.as_ref().map(|m| m.nll),
            val_ece: val_metrics.as_ref().map(|m| m.ece),
            seconds: started.elapsed().as_secs_f64(),
        };
        tracing::info!("{}", describe_epoch(&record, epochs));
        state.history.push(record);
        if let Some(run_dir) = hooks.checkpoint {
            (hooks.before_write)()?;
            let checkpoint = Checkpoint {
                epochs_done: epoch + 1,
                variables: setup
                    .model
                    .vars
                    .data()
                    .lock()
                    .expect("variable map lock")
                    .iter()
                    .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
                    .collect(),
                optimizer_state: setup.optimizer.state().into_iter().collect(),
                optimizer_steps: setup.optimizer.steps().into_iter().collect(),
                rngs: setup.rngs.clone(),
                history: state.history.clone(),
                timings: state.timings.clone(),
            };
            run_dir
                .save_checkpoint(config, &checkpoint)
                .context("saving the epoch checkpoint")?;
        }
    }
    state.timings.train_samples_per_second =
        (epochs * setup.data.train.len()) as f64 / state.timings.train_seconds.max(1e-9);

    let eval_started = Instant::now();
    let (metrics, test, validation) =
        final_evaluation(setup.model.inference.as_ref(), &setup.data, config)?;
    state.timings.eval_seconds += eval_started.elapsed().as_secs_f64();
    Ok((metrics, test, validation, setup.model.vars))
}

/// What a run trains with, as it is before its first epoch.
pub struct Setup {
    pub data: Dataset,
    pub model: Model,
    pub loss: Loss,
    pub optimizer: Optimizer,
    pub rngs: Rngs,
}

impl Setup {
    /// Loads the data and builds the model, optimiser and generators of `config`.
    pub fn new(config: &RunConfig, device: &Device) -> Result<Self> {
        let data =
            data::load(&config.dataset, config.seed, device).context("loading the data set")?;
        let model = model::build(
            &config.model,
            &data.sample_shape,
            data.classes,
            config.seed,
            device,
        )?;
        let loss =
            Loss::new(&config.loss, || data.train_class_counts()).context("setting up the loss")?;
        let optimizer = Optimizer::new(&config.optimizer, model.parameters());
        Ok(Self {
            data,
            model,
            loss,
            optimizer,
            rngs: Rngs::seeded(config.seed),
        })
    }
}

/// Optimiser steps in one epoch of `config` on `data`.
fn steps_per_epoch(config: &RunConfig, data: &Dataset) -> usize {
    let n = data.train.len();
    n.div_ceil(config.training.batch_size.min(n))
}

/// Reports `steps_done` of the `steps` of 0-based `epoch` done, with `samples` training
/// samples done in all.
fn report_progress(
    hooks: &Hooks,
    epoch: usize,
    epochs: usize,
    steps: usize,
    steps_done: usize,
    samples: usize,
    loss: Option<f64>,
) {
    (hooks.progress)(Progress {
        epoch: (epoch + 1).min(epochs) as u64,
        epochs: epochs as u64,
        done: (epoch * steps + steps_done) as u64,
        total: (epochs * steps) as u64,
        samples: samples as u64,
        loss,
    })
}

/// Mean training loss, unsmoothed NLL and accuracy over one epoch's samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochTotals {
    pub loss: f64,
    pub nll: f64,
    pub accuracy: f64,
}

/// Epoch `epoch` (0-based) of training: a seeded shuffle, then one [`train_step`] per
/// index-selected batch, the running loss and accuracy read a few times per epoch.
pub fn train_epoch(
    config: &RunConfig,
    setup: &mut Setup,
    epoch: usize,
    hooks: &Hooks,
) -> Result<EpochTotals> {
    let Setup {
        data,
        model,
        loss,
        optimizer,
        rngs,
    } = setup;
    let device = data.train.x.device();
    let n = data.train.len();
    let batch = config.training.batch_size.min(n);
    let steps = steps_per_epoch(config, data);
    let epochs = config.training.epochs;
    let base_lr = config.optimizer.lr();
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.shuffle(&mut rngs.shuffle);
    let order = Tensor::from_vec(order, n, device)?;
    let mut running = Running::default();
    for step in 0..steps {
        if hooks.interrupt.load(Ordering::Relaxed) {
            return Err(Interrupted { epochs_done: epoch }.into());
        }
        let start = step * batch;
        let len = batch.min(n - start);
        let idx = order.narrow(0, start, len)?;
        let x = data.train.x.index_select(&idx, 0)?;
        let x = match &data.augmentation {
            Some(augmentation) => augmentation.apply(&x, &mut rngs.augmentation)?,
            None => x,
        };
        let y = data.train.y.index_select(&idx, 0)?;
        let (x, mix) = match &config.training.mixup {
            Some(mixup) => mix_batch(mixup, &x, &y, &mut rngs.mixup)?,
            None => (x, None),
        };
        // The rate at the step's midpoint: warm-up's first step and cosine's last are not 0.
        let t = epoch as f64 + (step as f64 + 0.5) / steps as f64;
        optimizer.set_learning_rate(optim::learning_rate(&config.schedule, base_lr, epochs, t));

        let (value, tallies) = train_step(
            model,
            optimizer,
            loss,
            &x,
            &y,
            mix.as_ref(),
            &mut rngs.dropout,
        )?;
        crate::fault::point("step");
        running.push(value, tallies, len);
        if running.pending() * READS_PER_EPOCH >= steps || step + 1 == steps {
            running.read(epoch, step)?;
            report_progress(
                hooks,
                epoch,
                epochs,
                steps,
                step + 1,
                epoch * n + start + len,
                Some(running.mean_loss()),
            );
        }
    }
    Ok(EpochTotals {
        loss: running.mean_loss(),
        nll: running.mean_nll(),
        accuracy: running.accuracy(),
    })
}

/// A mixup batch: `λ·x + (1−λ)·x[perm]` with `λ ~ Beta(α, α)` and the permutation
/// drawn from the run's mixup stream, and what the loss needs to mix the labels alike.
fn mix_batch(
    mixup: &MixupSpec,
    x: &Tensor,
    y: &Tensor,
    rng: &mut ChaCha8Rng,
) -> Result<(Tensor, Option<Mix>)> {
    use rand_distr::Distribution;
    let beta = rand_distr::Beta::new(mixup.alpha, mixup.alpha)
        .with_context(|| format!("mixup with α = {}", mixup.alpha))?;
    let lambda: f64 = beta.sample(rng);
    let mut partner: Vec<u32> = (0..y.dims1()? as u32).collect();
    partner.shuffle(rng);
    let partner = Tensor::from_vec(partner, y.dims1()?, y.device())?;
    let mixed = ((x * lambda)? + (x.index_select(&partner, 0)? * (1.0 - lambda))?)?;
    let mix = Mix {
        partner_labels: y.index_select(&partner, 0)?,
        lambda,
    };
    Ok((mixed, Some(mix)))
}

/// One optimiser step on a batch, as training takes it: forward pass in training mode,
/// loss (of the mixup batch where `mix` is given), backward pass and update. Returns the
/// step's loss (detached) and its tallies, `[predictions equal to y, Σ −log p_y]` (f32;
/// the NLL of `y` unsmoothed, so that runs trained with different losses compare), both
/// still on the device: reading them back every step would stall the device.
pub fn train_step(
    model: &Model,
    optimizer: &mut Optimizer,
    loss: &Loss,
    x: &Tensor,
    y: &Tensor,
    mix: Option<&Mix>,
    dropout: &mut ChaCha8Rng,
) -> Result<(Tensor, Tensor)> {
    cpu::on_pool(x.device(), || {
        let logits = model.classifier.logits(x, &mut Pass::Train(dropout))?;
        let value = match mix {
            Some(mix) => loss.compute_mixed(&logits, y, mix)?,
            None => loss.compute(&logits, y)?,
        };
        optimizer.backward_step(&value)?;
        let logits = logits.detach();
        let correct = logits.argmax(1)?.eq(y)?.to_dtype(DType::F32)?.sum_all()?;
        let nll = candle_nn::ops::log_softmax(&logits, 1)?
            .gather(&y.unsqueeze(1)?, 1)?
            .sum_all()?
            .neg()?
            .to_dtype(DType::F32)?;
        Ok((value.detach(), Tensor::stack(&[correct, nll], 0)?))
    })
}

/// The validation pass after each epoch: the validation split's logits in evaluation
/// mode and their calibration metrics; `None` without a validation split.
pub fn validate(
    classifier: &dyn Classifier,
    data: &Dataset,
    config: &RunConfig,
) -> Result<Option<Metrics>> {
    data.val
        .as_ref()
        .map(|val| -> Result<Metrics> {
            let p = predict(
                classifier,
                val,
                data.classes,
                memory::eval_batch(config, &data.sample_shape, data.classes),
            )?;
            Ok(calibration::evaluate(&p, config.evaluation.bins, 1.0))
        })
        .transpose()
}

/// The evaluation at the end of a run: test and validation predictions, the temperature
/// fitted on the validation split (when enabled) and the metrics before and after it.
pub fn final_evaluation(
    classifier: &dyn Classifier,
    data: &Dataset,
    config: &RunConfig,
) -> Result<(FinalMetrics, Predictions, Option<Predictions>)> {
    let bins = config.evaluation.bins;
    let eval_batch = memory::eval_batch(config, &data.sample_shape, data.classes);
    let test = predict(classifier, &data.test, data.classes, eval_batch)
        .context("predicting the test split")?;
    let validation = data
        .val
        .as_ref()
        .map(|val| predict(classifier, val, data.classes, eval_batch))
        .transpose()
        .context("predicting the validation split")?;
    let temperature = match (&validation, config.evaluation.fits_temperature()) {
        (Some(val), true) => Some(calibration::fit_temperature(val)),
        _ => None,
    };
    let bootstrap = config.evaluation.bootstrap.with_seed(config.seed);
    let test_metrics = |temperature: f64| match &bootstrap {
        Some(b) => calibration::evaluate_with_intervals(&test, bins, temperature, b),
        None => calibration::evaluate(&test, bins, temperature),
    };
    let calibrators = match &validation {
        Some(val) => config
            .evaluation
            .other_calibrators()
            .map(|method| {
                calibration::calibrate(method, val, &test, bins, bootstrap.as_ref())
                    .map(|calibrated| (method, calibrated))
                    .with_context(|| format!("calibrating with {method}"))
            })
            .collect::<Result<_>>()?,
        None => Default::default(),
    };
    let metrics = FinalMetrics {
        test: test_metrics(1.0),
        validation: validation
            .as_ref()
            .map(|v| calibration::evaluate(v, bins, 1.0)),
        test_scaled: temperature
            .as_ref()
            .map(|fit| test_metrics(fit.temperature)),
        temperature,
        calibrators,
    };
    Ok((metrics, test, validation))
}

/// Puts a checkpoint's variables and optimiser state into a freshly built model.
fn restore(checkpoint: &Checkpoint, vars: &VarMap, optimizer: &mut Optimizer) -> Result<()> {
    let variables = vars.data().lock().expect("variable map lock");
    if variables.len() != checkpoint.variables.len() {
        bail!(
            "the checkpoint holds {} variables, the model has {}",
            checkpoint.variables.len(),
            variables.len()
        );
    }
    for (name, var) in variables.iter() {
        let saved = checkpoint
            .variables
            .get(name)
            .with_context(|| format!("the checkpoint has no variable `{name}`"))?;
        var.set(saved)
            .with_context(|| format!("restoring variable `{name}`"))?;
    }
    optimizer
        .restore(&checkpoint.optimizer_state, &checkpoint.optimizer_steps)
        .context("restoring the optimiser state")?;
    Ok(())
}

/// Per-step losses and tallies (correct count, NLL sum), still on the device until
/// [`Running::read`].
#[derive(Default)]
pub(crate) struct Running {
    losses: Vec<Tensor>,
    tallies: Vec<Tensor>,
    lens: Vec<usize>,
    /// Index within the epoch of the first step in `losses`.
    first_step: usize,
    loss_sum: f64,
    correct_sum: f64,
    nll_sum: f64,
    samples: usize,
}

impl Running {
    pub(crate) fn push(&mut self, loss: Tensor, tallies: Tensor, len: usize) {
        self.losses.push(loss);
        self.tallies.push(tallies);
        self.lens.push(len);
    }

    fn pending(&self) -> usize {
        self.losses.len()
    }

    /// One device read for all pending steps; fails on the first non-finite loss.
    pub(crate) fn read(&mut self, epoch: usize, last_step: usize) -> Result<()> {
        let losses = Tensor::stack(&self.losses, 0)?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?;
        let tallies = Tensor::stack(&self.tallies, 0)?.to_vec2::<f32>()?;
        for (i, (&loss, &len)) in losses.iter().zip(&self.lens).enumerate() {
            if !loss.is_finite() {
                bail!(
                    "the training loss became {loss} at epoch {} step {} (of this epoch, 1-based); lower the learning rate or check the data",
                    epoch + 1,
                    self.first_step + i + 1
                );
            }
            self.loss_sum += loss as f64 * len as f64;
            self.samples += len;
        }
        for tally in &tallies {
            self.correct_sum += tally[0] as f64;
            self.nll_sum += tally[1] as f64;
        }
        self.first_step = last_step + 1;
        self.losses.clear();
        self.tallies.clear();
        self.lens.clear();
        Ok(())
    }

    pub(crate) fn mean_loss(&self) -> f64 {
        self.loss_sum / self.samples.max(1) as f64
    }

    pub(crate) fn mean_nll(&self) -> f64 {
        self.nll_sum / self.samples.max(1) as f64
    }

    pub(crate) fn accuracy(&self) -> f64 {
        self.correct_sum / self.samples.max(1) as f64
    }
}

/// Logits of the whole split in evaluation mode, in large contiguous batches, read back once.
/// Pass [`Model::inference`](crate::model::Model::inference): through the trainable
/// network every batch would build an autograd graph.
pub fn predict(
    classifier: &dyn Classifier,
    split: &Split,
    classes: usize,
    batch: usize,
) -> Result<Predictions> {
    let n = split.len();
    let chunks = cpu::on_pool(split.x.device(), || {
        (0..n)
            .step_by(batch)
            .map(|start| {
                let x = split.x.narrow(0, start, batch.min(n - start))?;
                Ok(classifier.logits(&x, &mut Pass::Eval)?.detach())
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let logits = Tensor::cat(&chunks, 0)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let labels = split.y.to_vec1::<u32>()?;
    Ok(Predictions::new(logits, labels, classes)?)
}

fn describe_epoch(r: &EpochRecord, epochs: usize) -> String {
    let mut line = format!(
        "epoch {}/{epochs}: loss {:.4} {}",
        r.epoch,
        r.train_loss,
        ACCURACY.describe(r.train_accuracy)
    );
    if let (Some(acc), Some(nll), Some(ece)) = (r.val_accuracy, r.val_nll, r.val_ece) {
        let values = [(&ACCURACY, acc), (&NLL, nll), (&ECE, ece)];
        line += &format!(" | val {}", catalog::describe_values(&values));
    }
    line + &format!(" | lr {:.4} | {:.1}s", r.lr, r.seconds)
}
