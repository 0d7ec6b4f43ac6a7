//! `smoothlab bench epoch`: the epoch of a real run, timed where the user waits.
//!
//! One model case (`bench models`' cases) is trained as an experiment on a data set of
//! real size: 60,000 MNIST-shaped or 50,000 CIFAR-shaped images, synthetic by default
//! or read from files (MNIST IDX or CIFAR-10 binary, so that another framework can
//! train on the same bytes). A tenth is held out for validation, as every run does.
//! Everything goes through the training code itself: [`Setup::new`] loads the data
//! and builds the model, then each epoch is [`train_epoch`] (the seeded shuffle, the
//! batch gathers, the steps, the periodic reads) followed by [`validate`], each timed;
//! [`final_evaluation`] (what ends a run) is timed once at the end.
//!
//! Warm-up epochs come first and are reported but left out of the figures. At the end
//! of each epoch the process's peak resident size is read from /proc/self/status and
//! reset, so each epoch has its own peak and memory growth across epochs shows.

use super::machine::{process_memory_mb, reset_peak_memory, BenchEnvironment};
use super::models::{median, LossCase, ModelCase};
use crate::spec::{
    CifarSpec, DatasetSpec, EvaluationSpec, MnistSpec, RunConfig, ScheduleSpec, SyntheticSpec,
    TrainingSpec,
};
use crate::train::{final_evaluation, train_epoch, validate, Hooks, Setup};
use anyhow::{Context, Result};
use candle_core::Device;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

const CLASSES: usize = 10;
const VAL_FRACTION: f64 = 0.1;
/// The memory budget the project sets: twice the data set plus this, in MB.
const BUDGET_EXTRA_MB: f64 = 200.0;

#[derive(Debug, Clone)]
pub struct EpochOptions {
    pub model: ModelCase,
    pub loss: LossCase,
    /// A directory of MNIST IDX files (MNIST-shaped models) or CIFAR-10 binary batches
    /// (the ResNet); `None`: synthetic data of the model's input shape.
    pub data: Option<PathBuf>,
    /// Training samples before the validation split; `None`: 60,000 MNIST-shaped or
    /// 50,000 CIFAR-shaped synthetic samples, or all that the files hold.
    pub samples: Option<usize>,
    /// Untimed epochs first.
    pub warmup_epochs: usize,
    /// Timed epochs; the median is reported.
    pub epochs: usize,
    pub batch_size: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct EpochBench {
    pub benchmark: String,
    pub environment: BenchEnvironment,
    /// The `bench models` case (model and optimiser) and its loss.
    pub case: String,
    pub model: String,
    pub loss: String,
    /// One sample, `[channels, height, width]`.
    pub input: [usize; 3],
    /// `synthetic`, or the directory the images were read from.
    pub data: String,
    pub config: RunConfig,
    pub parameters: usize,
    pub train_samples: usize,
    pub validation_samples: usize,
    pub test_samples: usize,
    pub warmup_epochs: usize,
    /// Every epoch, warm-up ones first.
    pub epochs: Vec<TimedEpoch>,
    /// Training samples per second of the timed epochs: median, minimum, maximum.
    pub samples_per_second: f64,
    pub min_samples_per_second: f64,
    pub max_samples_per_second: f64,
    pub evaluation_share: EvaluationShare,
    pub memory: Memory,
}

/// One epoch: its training (shuffle, gathers, steps, reads) and its validation pass.
#[derive(Debug, Clone, Serialize)]
pub struct TimedEpoch {
    pub epoch: usize,
    pub warmup: bool,
    pub train_seconds: f64,
    pub samples_per_second: f64,
    /// Validation predictions and their calibration metrics.
    pub validation_seconds: f64,
    pub train_loss: f64,
    pub val_accuracy: Option<f64>,
    /// Peak resident memory (MB) over the epoch; `None` where /proc is missing.
    pub peak_mb: Option<f64>,
    /// Resident at the epoch's end.
    pub rss_mb: Option<f64>,
}

/// The timed epochs' medians, against the evaluation around them, in seconds.
#[derive(Debug, Clone, Serialize)]
pub struct EvaluationShare {
    pub train_steps: usize,
    pub train_seconds: f64,
    pub validation_seconds: f64,
    /// Once per run: test and validation predictions, temperature fit, test metrics
    /// before and after scaling, validation metrics.
    pub final_evaluation_seconds: f64,
    /// `validation / (train + validation)`: the evaluation's share of every epoch.
    pub epoch_share: f64,
    /// `(validation + final) / (train + validation + final)`: a one-epoch run's share.
    pub one_epoch_run_share: f64,
}

/// Resident memory, in MB (10⁶ bytes); `None` where /proc is missing. On a GPU these
/// are host figures only.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    /// All samples the run holds (training, validation and test) as f32.
    pub dataset_mb: f64,
    /// `2 × dataset_mb + 200`.
    pub budget_mb: f64,
    /// Whether each window's peak is its own (false: every peak is the peak since the
    /// process started).
    pub peak_reset: bool,
    /// Peak before training starts: reading or generating the data, the validation
    /// split, the upload, the model.
    pub load_peak_mb: Option<f64>,
    /// Peak of the final evaluation.
    pub final_evaluation_peak_mb: Option<f64>,
    /// The largest of all the peaks.
    pub peak_mb: Option<f64>,
    pub within_budget: Option<bool>,
}

impl EpochBench {
    pub fn run(options: &EpochOptions, device: &Device) -> Result<Self> {
        let config = run_config(options);
        let mut setup = Setup::new(&config, device)?;
        let load_peak_mb = process_memory_mb("VmHWM");
        let peak_reset = reset_peak_memory();
        let train_samples = setup.data.train.len();
        let validation_samples = setup.data.val.as_ref().map_or(0, |v| v.len());
        let test_samples = setup.data.test.len();
        let mut epochs = Vec::new();
        for epoch in 0..options.warmup_epochs + options.epochs {
            epochs.push(
                timed_epoch(&config, &mut setup, epoch, epoch < options.warmup_epochs)
                    .with_context(|| format!("epoch {}", epoch + 1))?,
            );
        }
        let start = Instant::now();
        final_evaluation(setup.model.inference.as_ref(), &setup.data, &config)
            .context("the final evaluation")?;
        let final_evaluation_seconds = start.elapsed().as_secs_f64();
        let final_evaluation_peak_mb = process_memory_mb("VmHWM");

        let timed: Vec<&TimedEpoch> = epochs.iter().filter(|e| !e.warmup).collect();
        let sorted = |f: fn(&TimedEpoch) -> f64| {
            let mut v: Vec<f64> = timed.iter().map(|&e| f(e)).collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let rates = sorted(|e| e.samples_per_second);
        let train_seconds = median(&sorted(|e| e.train_seconds));
        let validation_seconds = median(&sorted(|e| e.validation_seconds));
        let evaluation = validation_seconds + final_evaluation_seconds;
        let sample_values: usize = setup.data.sample_shape.iter().product();
        let dataset_mb =
            ((train_samples + validation_samples + test_samples) * sample_values * 4) as f64 / 1e6;
        let budget_mb = 2.0 * dataset_mb + BUDGET_EXTRA_MB;
        let peak_mb = std::iter::once(load_peak_mb)
            .chain(epochs.iter().map(|e| e.peak_mb))
            .chain(std::iter::once(final_evaluation_peak_mb))
            .flatten()
            .reduce(f64::max);
        let parameters = setup
            .model
            .parameters()
            .iter()
            .map(|(_, var)| var.elem_count())
            .sum();
        Ok(Self {
            benchmark: "epoch".into(),
            environment: BenchEnvironment::current(device),
            case: options.model.name().into(),
            model: options.model.model_name().into(),
            loss: config.loss.slug(),
            input: options.model.input(),
            data: options
                .data
                .as_ref()
                .map_or("synthetic".into(), |d| d.display().to_string()),
            config,
            parameters,
            train_samples,
            validation_samples,
            test_samples,
            warmup_epochs: options.warmup_epochs,
            evaluation_share: EvaluationShare {
                train_steps: train_samples.div_ceil(options.batch_size.min(train_samples)),
                train_seconds,
                validation_seconds,
                final_evaluation_seconds,
                epoch_share: validation_seconds / (train_seconds + validation_seconds),
                one_epoch_run_share: evaluation / (train_seconds + evaluation),
            },
            epochs,
            samples_per_second: median(&rates),
            min_samples_per_second: rates[0],
            max_samples_per_second: rates[rates.len() - 1],
            memory: Memory {
                dataset_mb,
                budget_mb,
                peak_reset,
                load_peak_mb,
                final_evaluation_peak_mb,
                peak_mb,
                within_budget: peak_mb.map(|p| p <= budget_mb),
            },
        })
    }

    pub fn table(&self) -> String {
        let e = &self.evaluation_share;
        let m = &self.memory;
        let mb = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.1} MB"));
        let mut out = self.environment.header();
        out += &format!(
            "epochs of {} ({}, loss {}, {} parameters), batch {}, on {} {:?} samples from {} \
             ({} training, {} validation; {} test)\n",
            self.model,
            self.case,
            self.loss,
            self.parameters,
            self.config.training.batch_size,
            self.train_samples + self.validation_samples,
            self.input,
            self.data,
            self.train_samples,
            self.validation_samples,
            self.test_samples
        );
        for epoch in &self.epochs {
            out += &format!(
                "  epoch {:<3}{} train {:8.3} s {:>10.1} samples/s | validation {:7.3} s | \
                 loss {:.4}, val acc {} | peak {:>10}, resident {:>10}\n",
                epoch.epoch,
                if epoch.warmup {
                    " (warm-up)"
                } else {
                    "          "
                },
                epoch.train_seconds,
                epoch.samples_per_second,
                epoch.validation_seconds,
                epoch.train_loss,
                epoch
                    .val_accuracy
                    .map_or("n/a".to_string(), |a| format!("{a:.4}")),
                mb(epoch.peak_mb),
                mb(epoch.rss_mb),
            );
        }
        out += &format!(
            "training: {:.1} samples/s, the median of {} epochs ({:.1}-{:.1}), {} steps each\n",
            self.samples_per_second,
            self.epochs.len() - self.warmup_epochs,
            self.min_samples_per_second,
            self.max_samples_per_second,
            e.train_steps
        );
        out += &format!(
            "evaluation: validation {:.3} s = {:.1} % of an epoch; end of run (test + validation \
             predictions, temperature fit, metrics) {:.3} s; a one-epoch run evaluates {:.1} % of its time\n",
            e.validation_seconds,
            100.0 * e.epoch_share,
            e.final_evaluation_seconds,
            100.0 * e.one_epoch_run_share
        );
        out += &format!(
            "peak resident memory {}: {} (data set {:.1} MB as f32, budget 2 x data + \
             {BUDGET_EXTRA_MB} = {:.1} MB); loading {}, final evaluation {}{}\n",
            mb(m.peak_mb),
            match m.within_budget {
                Some(true) => "within the budget",
                Some(false) => "OVER the budget",
                None => "not measurable here",
            },
            m.dataset_mb,
            m.budget_mb,
            mb(m.load_peak_mb),
            mb(m.final_evaluation_peak_mb),
            if m.peak_reset {
                ""
            } else {
                "; peaks could not be reset: each is the peak since the start"
            }
        );
        out
    }
}

/// One epoch's training and validation pass, timed, with the epoch's memory peak.
fn timed_epoch(
    config: &RunConfig,
    setup: &mut Setup,
    epoch: usize,
    warmup: bool,
) -> Result<TimedEpoch> {
    let start = Instant::now();
    // The epoch's last read of the running loss waits for the device.
    let totals = train_epoch(config, setup, epoch, &Hooks::none())?;
    let train_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let metrics = validate(setup.model.inference.as_ref(), &setup.data, config)?;
    let validation_seconds = start.elapsed().as_secs_f64();
    let (peak_mb, rss_mb) = (process_memory_mb("VmHWM"), process_memory_mb("VmRSS"));
    reset_peak_memory();
    Ok(TimedEpoch {
        epoch: epoch + 1,
        warmup,
        train_seconds,
        samples_per_second: setup.data.train.len() as f64 / train_seconds,
        validation_seconds,
        train_loss: totals.loss,
        val_accuracy: metrics.map(|m| m.accuracy),
        peak_mb,
        rss_mb,
    })
}

/// The case as an experiment: its model, optimiser and loss, a constant learning rate,
/// 15 bins and temperature scaling, on the data the options name.
fn run_config(options: &EpochOptions) -> RunConfig {
    let case = options.model;
    let input = case.input();
    let cifar_shaped = input[0] == 3;
    let dataset = match &options.data {
        None => {
            let train_size = options
                .samples
                .unwrap_or(if cifar_shaped { 50_000 } else { 60_000 });
            let features = input.iter().product();
            DatasetSpec::Synthetic(SyntheticSpec {
                classes: CLASSES,
                features,
                shape: Some(input.to_vec()),
                train_size,
                // The real sets' proportions: 10,000 test images to 60,000 or 50,000.
                test_size: (train_size / if cifar_shaped { 5 } else { 6 }).max(1),
                val_fraction: VAL_FRACTION,
                ..SyntheticSpec::default()
            })
        }
        Some(dir) if cifar_shaped => DatasetSpec::Cifar10(CifarSpec {
            dir: Some(dir.clone()),
            val_fraction: VAL_FRACTION,
            train_subset: options.samples,
            test_subset: None,
            // A run of the papers' recipe would augment; the PyTorch loop it is
            // compared with does not, so neither side does.
            augment: false,
        }),
        Some(dir) => DatasetSpec::Mnist(MnistSpec {
            dir: Some(dir.clone()),
            val_fraction: VAL_FRACTION,
            train_subset: options.samples,
            test_subset: None,
        }),
    };
    RunConfig {
        dataset,
        model: case.model(),
        loss: options.loss.spec(),
        optimizer: case.optimizer(),
        schedule: ScheduleSpec::Constant(Default::default()),
        training: TrainingSpec {
            epochs: options.warmup_epochs + options.epochs,
            batch_size: options.batch_size,
            ..TrainingSpec::default()
        },
        evaluation: EvaluationSpec::default(),
        seed: 0,
    }
}
