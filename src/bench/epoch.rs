//! `smoothlab bench epoch`: where the time of an MLP epoch on MNIST-sized data goes
//! (training against the evaluation after it), and the peak memory of a short run.
//!
//! Both go through the training code itself on a synthetic data set of MNIST's shape
//! (784 features, 10 classes, 60,000 training and 10,000 test samples by default, a
//! tenth of the training samples held out for validation as a run does):
//!
//! - the time split calls [`train_epoch`], [`validate`] (what follows every epoch) and
//!   [`final_evaluation`] (what ends a run) in turn and times each;
//! - the memory figure is a whole [`crate::train::run`] of a few epochs, whose progress
//!   reports (one at the end of each epoch's training) read the process's peak resident
//!   size from /proc/self/status and reset it, so each epoch gets its own peak.

use super::machine::{process_memory_mb, reset_peak_memory, BenchEnvironment};
use super::models::ModelCase;
use crate::spec::{
    DatasetSpec, EvaluationSpec, LossSpec, MlpSpec, ModelSpec, RunConfig, ScheduleSpec,
    SmoothedCeSpec, SyntheticSpec, TrainingSpec,
};
use crate::train::{self, final_evaluation, train_epoch, validate, Hooks, Progress, Setup};
use anyhow::{Context, Result};
use candle_core::Device;
use serde::Serialize;
use std::cell::RefCell;
use std::time::Instant;

const FEATURES: usize = 784;
const VAL_FRACTION: f64 = 0.1;
/// Timings of the (short) evaluation steps are the median of this many.
const EVAL_REPEATS: usize = 3;
/// The memory budget the project sets: twice the data set plus this, in MB.
const BUDGET_EXTRA_MB: f64 = 200.0;

#[derive(Debug, Clone)]
pub struct EpochOptions {
    /// Training samples before the validation split.
    pub samples: usize,
    /// Epochs of the run whose memory is measured.
    pub epochs: usize,
    pub batch_size: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct EpochBench {
    pub benchmark: String,
    pub environment: BenchEnvironment,
    pub model: String,
    /// The run both measurements train (the time split uses one epoch of it).
    pub config: RunConfig,
    pub train_samples: usize,
    pub validation_samples: usize,
    pub test_samples: usize,
    pub evaluation_share: EvaluationShare,
    pub memory: MemoryRun,
}

/// One epoch's training against the evaluation around it, in seconds.
#[derive(Debug, Clone, Serialize)]
pub struct EvaluationShare {
    pub train_steps: usize,
    pub train_seconds: f64,
    /// Validation predictions and their calibration metrics, after every epoch.
    pub validation_seconds: f64,
    /// Once per run: test and validation predictions, temperature fit, test metrics
    /// before and after scaling, validation metrics.
    pub final_evaluation_seconds: f64,
    /// `validation / (train + validation)`: the evaluation's share of every epoch.
    pub epoch_share: f64,
    /// `(validation + final) / (train + validation + final)`: a one-epoch run's share.
    pub one_epoch_run_share: f64,
}

/// Resident memory of a whole run, in MB (10⁶ bytes); `None` where /proc is missing.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryRun {
    pub epochs: usize,
    /// All samples the run loads (training, validation and test) as f32.
    pub dataset_mb: f64,
    /// `2 × dataset_mb + 200`.
    pub budget_mb: f64,
    /// Whether each window's peak is its own (false: every peak is the peak since the
    /// process started).
    pub peak_reset: bool,
    /// Peak before training starts: data generation and upload, model construction.
    pub load_peak_mb: Option<f64>,
    pub per_epoch: Vec<EpochMemory>,
    /// Peak from the end of the last epoch's training to the end of the run: its
    /// validation pass and the final evaluation.
    pub final_evaluation_peak_mb: Option<f64>,
    /// The largest of the peaks above.
    pub peak_mb: Option<f64>,
    pub within_budget: Option<bool>,
    /// The run's own timings (`result.json`'s `timings`).
    pub train_seconds: f64,
    pub eval_seconds: f64,
}

/// One epoch of the memory run.
#[derive(Debug, Clone, Serialize)]
pub struct EpochMemory {
    pub epoch: usize,
    /// Peak over this epoch's training steps and the validation pass before them (the
    /// first epoch's starts from whatever loading left resident).
    pub peak_mb: Option<f64>,
    /// Resident at the end of this epoch's training.
    pub rss_mb: Option<f64>,
    pub seconds: f64,
    pub train_loss: f64,
    pub val_accuracy: Option<f64>,
}

impl EpochBench {
    pub fn run(options: &EpochOptions, device: &Device) -> Result<Self> {
        let config = run_config(options);
        let test_samples = test_samples(options.samples);
        // The memory run first: a fresh process has no other peak to hide it.
        let memory =
            memory_run(&config, options, test_samples, device).context("the memory run")?;
        let (evaluation_share, train_samples, validation_samples) =
            evaluation_share(&config, device).context("timing one epoch")?;
        Ok(Self {
            benchmark: "epoch".into(),
            environment: BenchEnvironment::current(device),
            model: "MLP 784-512-512-10".into(),
            config,
            train_samples,
            validation_samples,
            test_samples,
            evaluation_share,
            memory,
        })
    }

    pub fn table(&self) -> String {
        let e = &self.evaluation_share;
        let m = &self.memory;
        let mut out = self.environment.header();
        out += &format!(
            "one epoch of {}, batch {}, on {} synthetic {FEATURES}-dim samples \
             ({} training, {} validation; {} test)\n",
            self.model,
            self.config.training.batch_size,
            self.train_samples + self.validation_samples,
            self.train_samples,
            self.validation_samples,
            self.test_samples
        );
        out += &format!(
            "  training, {} steps                           {:8.3} s\n",
            e.train_steps, e.train_seconds
        );
        out += &format!(
            "  validation predictions + calibration metrics {:8.3} s  {:.1} % of the epoch\n",
            e.validation_seconds,
            100.0 * e.epoch_share
        );
        out += &format!(
            "  end of run: test + validation predictions,\n    \
             temperature fit, metrics                     {:8.3} s  a one-epoch run evaluates {:.1} % of its time\n",
            e.final_evaluation_seconds,
            100.0 * e.one_epoch_run_share
        );
        out += &format!(
            "peak resident memory of a {}-epoch run through the training loop \
             (data set {:.1} MB as f32, budget 2 × data + {BUDGET_EXTRA_MB} = {:.1} MB){}\n",
            m.epochs,
            m.dataset_mb,
            m.budget_mb,
            if m.peak_reset {
                ""
            } else {
                "; peaks could not be reset: each is the peak since the start"
            }
        );
        let mb = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.1} MB"));
        out += &format!("  loading, model        peak {:>10}\n", mb(m.load_peak_mb));
        for epoch in &m.per_epoch {
            out += &format!(
                "  epoch {:<3}             peak {:>10}, resident {:>10} at its end | loss {:.4}, val acc {}, {:.1} s\n",
                epoch.epoch,
                mb(epoch.peak_mb),
                mb(epoch.rss_mb),
                epoch.train_loss,
                epoch
                    .val_accuracy
                    .map_or("n/a".to_string(), |a| format!("{a:.4}")),
                epoch.seconds
            );
        }
        out += &format!(
            "  final evaluation      peak {:>10}\n",
            mb(m.final_evaluation_peak_mb)
        );
        out += &format!(
            "  peak {}: {}; training {:.1} s, evaluation {:.1} s\n",
            mb(m.peak_mb),
            match m.within_budget {
                Some(true) => "within the budget",
                Some(false) => "OVER the budget",
                None => "not measurable here",
            },
            m.train_seconds,
            m.eval_seconds
        );
        out
    }
}

/// MNIST's proportions: 10,000 test samples to 60,000 training ones.
fn test_samples(samples: usize) -> usize {
    (samples / 6).max(1)
}

/// The `mlp-sgd` case of `bench models` as an experiment on MNIST-shaped data.
fn run_config(options: &EpochOptions) -> RunConfig {
    RunConfig {
        dataset: DatasetSpec::Synthetic(SyntheticSpec {
            classes: 10,
            features: FEATURES,
            train_size: options.samples,
            test_size: test_samples(options.samples),
            val_fraction: VAL_FRACTION,
            ..SyntheticSpec::default()
        }),
        model: ModelSpec::Mlp(MlpSpec {
            hidden: vec![512, 512],
            dropout: 0.0,
        }),
        loss: LossSpec::SmoothedCe(SmoothedCeSpec {
            smoothing: 0.1,
            ..SmoothedCeSpec::default()
        }),
        optimizer: ModelCase::MlpSgd.optimizer(),
        schedule: ScheduleSpec::Constant(Default::default()),
        training: TrainingSpec {
            epochs: options.epochs,
            batch_size: options.batch_size,
            ..TrainingSpec::default()
        },
        evaluation: EvaluationSpec::default(),
        seed: 0,
    }
}

fn evaluation_share(
    config: &RunConfig,
    device: &Device,
) -> Result<(EvaluationShare, usize, usize)> {
    let mut setup = Setup::new(config, device)?;
    let start = Instant::now();
    train_epoch(config, &mut setup, 0, &Hooks::none())?;
    let Setup { data, model, .. } = setup;
    let train_seconds = start.elapsed().as_secs_f64();
    let classifier = model.inference.as_ref();
    let validation_seconds = median_seconds(|| validate(classifier, &data, config).map(drop))?;
    let final_evaluation_seconds =
        median_seconds(|| final_evaluation(classifier, &data, config).map(drop))?;
    let n = data.train.len();
    let evaluation = validation_seconds + final_evaluation_seconds;
    Ok((
        EvaluationShare {
            train_steps: n.div_ceil(config.training.batch_size.min(n)),
            train_seconds,
            validation_seconds,
            final_evaluation_seconds,
            epoch_share: validation_seconds / (train_seconds + validation_seconds),
            one_epoch_run_share: evaluation / (train_seconds + evaluation),
        },
        n,
        data.val.as_ref().map_or(0, |v| v.len()),
    ))
}

fn median_seconds(mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut times = Vec::with_capacity(EVAL_REPEATS);
    for _ in 0..EVAL_REPEATS {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[EVAL_REPEATS / 2])
}

/// Peaks seen by the progress hook: one before training, one per epoch.
#[derive(Default)]
struct Probe {
    load_peak: Option<f64>,
    reset: bool,
    /// Peak and resident size at the end of each epoch's training.
    epochs: Vec<(Option<f64>, Option<f64>)>,
}

impl Probe {
    fn observe(&mut self, progress: Progress, epochs: usize) {
        let steps = progress.total / epochs.max(1) as u64;
        if progress.done == 0 {
            // The first report: the data is loaded and the model built.
            self.load_peak = process_memory_mb("VmHWM");
            self.reset = reset_peak_memory();
        } else if steps > 0 && progress.done.is_multiple_of(steps) {
            // The last step of an epoch (reports fall there, before its validation pass).
            self.epochs
                .push((process_memory_mb("VmHWM"), process_memory_mb("VmRSS")));
            reset_peak_memory();
        }
    }
}

fn memory_run(
    config: &RunConfig,
    options: &EpochOptions,
    test_samples: usize,
    device: &Device,
) -> Result<MemoryRun> {
    let probe = RefCell::new(Probe::default());
    let progress = |p: Progress| probe.borrow_mut().observe(p, options.epochs);
    let hooks = Hooks {
        progress: &progress,
        ..Hooks::none()
    };
    let trained = train::run(config, device, &hooks).map_err(|failed| failed.error)?;
    let final_peak = process_memory_mb("VmHWM");
    let probe = probe.into_inner();
    let dataset_mb = ((options.samples + test_samples) * FEATURES * 4) as f64 / 1e6;
    let budget_mb = 2.0 * dataset_mb + BUDGET_EXTRA_MB;
    let per_epoch: Vec<EpochMemory> = trained
        .history
        .iter()
        .zip(
            probe
                .epochs
                .iter()
                .copied()
                .chain(std::iter::repeat((None, None))),
        )
        .map(|(record, (peak_mb, rss_mb))| EpochMemory {
            epoch: record.epoch,
            peak_mb,
            rss_mb,
            seconds: record.seconds,
            train_loss: record.train_loss,
            val_accuracy: record.val_accuracy,
        })
        .collect();
    let peak_mb = std::iter::once(probe.load_peak)
        .chain(per_epoch.iter().map(|e| e.peak_mb))
        .chain(std::iter::once(final_peak))
        .flatten()
        .reduce(f64::max);
    Ok(MemoryRun {
        epochs: options.epochs,
        dataset_mb,
        budget_mb,
        peak_reset: probe.reset,
        load_peak_mb: probe.load_peak,
        per_epoch,
        final_evaluation_peak_mb: final_peak,
        peak_mb,
        within_budget: peak_mb.map(|p| p <= budget_mb),
        train_seconds: trained.timings.train_seconds,
        eval_seconds: trained.timings.eval_seconds,
    })
}
