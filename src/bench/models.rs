//! `smoothlab bench models`: training throughput of the reference models in samples/s,
//! through the same step as a real run ([`crate::train::train_step`]: forward, loss,
//! backward, update, accuracy bookkeeping on the device), with the same
//! index-selected batches and the same periodic read-back of the running loss.
//! `scripts/bench_pytorch.py` measures the same cases in PyTorch.

use super::machine::BenchEnvironment;
use crate::data::Split;
use crate::loss::Loss;
use crate::optim::Optimizer;
use crate::rng::{seeded, Stream};
use crate::spec::{
    AdamwSpec, BrierSpec, ConfidencePenaltySpec, FocalAdaptiveSpec, FocalSpec, Lenet5Spec,
    LossSpec, MblsSpec, MlpSpec, MmceSpec, ModelSpec, OptimizerSpec, ResnetSpec, SgdSpec,
    SmoothedCeSpec,
};
use crate::train::{train_step, Running};
use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;
use std::fmt;
use std::time::Instant;

const CLASSES: usize = 10;
/// Distinct random batches, cycled: enough that the figure is not that of one batch
/// kept hot in cache, few enough that generating them costs nothing.
const DISTINCT_BATCHES: usize = 20;
const SEED: u64 = 0;

/// One benchmarked model with its optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelCase {
    MlpSgd,
    MlpAdamw,
    Lenet5,
    Lenet5Adamw,
    Resnet20,
    Resnet20Adamw,
}

impl ModelCase {
    pub const ALL: [Self; 6] = [
        Self::MlpSgd,
        Self::MlpAdamw,
        Self::Lenet5,
        Self::Lenet5Adamw,
        Self::Resnet20,
        Self::Resnet20Adamw,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::MlpSgd => "mlp-sgd",
            Self::MlpAdamw => "mlp-adamw",
            Self::Lenet5 => "lenet5",
            Self::Lenet5Adamw => "lenet5-adamw",
            Self::Resnet20 => "resnet20",
            Self::Resnet20Adamw => "resnet20-adamw",
        }
    }

    pub(super) fn model_name(self) -> &'static str {
        match self {
            Self::MlpSgd | Self::MlpAdamw => "MLP 784-512-512-10",
            Self::Lenet5 | Self::Lenet5Adamw => "LeNet-5",
            Self::Resnet20 | Self::Resnet20Adamw => "ResNet-20",
        }
    }

    /// One sample: MNIST-shaped for the MLP and LeNet-5, CIFAR-shaped for the ResNet.
    pub(super) fn input(self) -> [usize; 3] {
        match self {
            Self::Resnet20 | Self::Resnet20Adamw => [3, 32, 32],
            _ => [1, 28, 28],
        }
    }

    pub(super) fn model(self) -> ModelSpec {
        match self {
            Self::MlpSgd | Self::MlpAdamw => ModelSpec::Mlp(MlpSpec {
                hidden: vec![512, 512],
                dropout: 0.0,
            }),
            Self::Lenet5 | Self::Lenet5Adamw => ModelSpec::Lenet5(Lenet5Spec::default()),
            Self::Resnet20 | Self::Resnet20Adamw => ModelSpec::Resnet(ResnetSpec {
                depth: 20,
                width: 16,
            }),
        }
    }

    /// SGD with plain momentum and no weight decay, or AdamW with PyTorch's defaults
    /// and weight decay 0.01: what `scripts/bench_pytorch.py` uses too.
    pub fn optimizer(self) -> OptimizerSpec {
        match self {
            Self::MlpAdamw | Self::Lenet5Adamw | Self::Resnet20Adamw => {
                OptimizerSpec::Adamw(AdamwSpec {
                    lr: 1e-3,
                    weight_decay: 0.01,
                    ..AdamwSpec::default()
                })
            }
            _ => OptimizerSpec::Sgd(SgdSpec {
                lr: 0.01,
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.0,
                decoupled_weight_decay: false,
            }),
        }
    }
}

impl fmt::Display for ModelCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ModelCase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        case_named(&Self::ALL, Self::name, s)
    }
}

/// One benchmarked loss, at the setting its study uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossCase {
    /// Label smoothing, ε = 0.1.
    Smoothed,
    CrossEntropy,
    /// γ = 3.
    Focal,
    Flsd53,
    /// β = 0.1.
    ConfidencePenalty,
    Brier,
    /// λ = 2.
    Mmce,
    /// m = 10, α = 0.1.
    Mbls,
}

impl LossCase {
    pub const ALL: [Self; 8] = [
        Self::Smoothed,
        Self::CrossEntropy,
        Self::Focal,
        Self::Flsd53,
        Self::ConfidencePenalty,
        Self::Brier,
        Self::Mmce,
        Self::Mbls,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Smoothed => "ls",
            Self::CrossEntropy => "ce",
            Self::Focal => "focal",
            Self::Flsd53 => "flsd53",
            Self::ConfidencePenalty => "cp",
            Self::Brier => "brier",
            Self::Mmce => "mmce",
            Self::Mbls => "mbls",
        }
    }

    pub fn spec(self) -> LossSpec {
        match self {
            Self::Smoothed => LossSpec::SmoothedCe(SmoothedCeSpec {
                smoothing: 0.1,
                ..SmoothedCeSpec::default()
            }),
            Self::CrossEntropy => LossSpec::SmoothedCe(SmoothedCeSpec::default()),
            Self::Focal => LossSpec::Focal(FocalSpec::default()),
            Self::Flsd53 => LossSpec::FocalAdaptive(FocalAdaptiveSpec::default()),
            Self::ConfidencePenalty => {
                LossSpec::ConfidencePenalty(ConfidencePenaltySpec::default())
            }
            Self::Brier => LossSpec::Brier(BrierSpec::default()),
            Self::Mmce => LossSpec::Mmce(MmceSpec::default()),
            Self::Mbls => LossSpec::Mbls(MblsSpec::default()),
        }
    }
}

/// The case of `all` called `name`, or an error listing the names.
fn case_named<T: Copy>(all: &[T], name: fn(T) -> &'static str, s: &str) -> Result<T, String> {
    all.iter()
        .copied()
        .find(|&case| name(case) == s)
        .ok_or_else(|| {
            let names: Vec<_> = all.iter().map(|&c| name(c)).collect();
            format!("expected one of {}, got {s:?}", names.join(", "))
        })
}

impl std::str::FromStr for LossCase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        case_named(&Self::ALL, Self::name, s)
    }
}

/// How much to measure.
#[derive(Debug, Clone)]
pub struct ModelsOptions {
    pub cases: Vec<ModelCase>,
    /// Each case is measured with each of these losses, in turn.
    pub losses: Vec<LossCase>,
    pub batch_size: usize,
    /// Untimed steps before the first repetition.
    pub warmup: usize,
    /// Timed steps per repetition.
    pub steps: usize,
    pub repeats: usize,
}

/// The figures of one case.
#[derive(Debug, Clone, Serialize)]
pub struct ModelResult {
    pub case: String,
    pub model: String,
    /// One sample, `[channels, height, width]`.
    pub input: [usize; 3],
    /// Trained parameters (BatchNorm's running statistics excluded): the PyTorch side
    /// reports its own, so that a mismatch in the models shows.
    pub parameters: usize,
    pub optimizer: OptimizerSpec,
    /// The loss's short name (`LossSpec::slug`) and its whole section.
    pub loss: String,
    pub loss_spec: LossSpec,
    pub batch_size: usize,
    pub warmup_steps: usize,
    pub steps: usize,
    pub repeats: usize,
    /// Median over the repetitions.
    pub samples_per_second: f64,
    pub min_samples_per_second: f64,
    pub max_samples_per_second: f64,
    /// Each repetition's figure, in order.
    pub repeat_samples_per_second: Vec<f64>,
    /// Mean training loss of the first and of the last repetition: finite, and falling
    /// as the model fits the few batches.
    pub first_loss: f64,
    pub last_loss: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelsBench {
    pub benchmark: String,
    pub environment: BenchEnvironment,
    pub distinct_batches: usize,
    pub cases: Vec<ModelResult>,
}

impl ModelsBench {
    pub fn run(options: &ModelsOptions, device: &Device) -> Result<Self> {
        let cases = options
            .cases
            .iter()
            .flat_map(|&case| options.losses.iter().map(move |&loss| (case, loss)))
            .map(|(case, loss)| {
                measure(case, loss.spec(), options, device)
                    .with_context(|| format!("case {case} with loss {}", loss.name()))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            benchmark: "models".into(),
            environment: BenchEnvironment::current(device),
            distinct_batches: DISTINCT_BATCHES,
            cases,
        })
    }

    pub fn table(&self) -> String {
        let mut out = self.environment.header();
        if let Some(first) = self.cases.first() {
            out += &format!(
                "training throughput: batch {}, {} random batches cycled; \
                 warm-up {} steps, then the median of {} repetitions of {} steps\n",
                first.batch_size,
                self.distinct_batches,
                first.warmup_steps,
                first.repeats,
                first.steps
            );
        }
        out += &format!(
            "{:<10} {:<19} {:<8} {:<27} {:<14} {:>10} {:>10} {:>10}  {}\n",
            "case",
            "model",
            "input",
            "optimizer",
            "loss",
            "samples/s",
            "min",
            "max",
            "loss first → last"
        );
        for case in &self.cases {
            out += &format!(
                "{:<10} {:<19} {:<8} {:<27} {:<14} {:>10.1} {:>10.1} {:>10.1}  {:.4} → {:.4}\n",
                case.case,
                case.model,
                case.input.map(|d| d.to_string()).join("x"),
                describe_optimizer(&case.optimizer),
                case.loss,
                case.samples_per_second,
                case.min_samples_per_second,
                case.max_samples_per_second,
                case.first_loss,
                case.last_loss
            );
        }
        out
    }
}

fn describe_optimizer(spec: &OptimizerSpec) -> String {
    match spec {
        OptimizerSpec::Sgd(s) => format!("SGD lr {} momentum {}", s.lr, s.momentum),
        OptimizerSpec::Adamw(a) => format!("AdamW lr {} wd {}", a.lr, a.weight_decay),
    }
}

fn measure(
    case: ModelCase,
    loss_spec: LossSpec,
    options: &ModelsOptions,
    device: &Device,
) -> Result<ModelResult> {
    let input = case.input();
    let batch = options.batch_size;
    let model = crate::model::build(&case.model(), &input, CLASSES, SEED, device)?;
    let parameters = model
        .parameters()
        .iter()
        .map(|(_, var)| var.elem_count())
        .sum();
    let mut optimizer = Optimizer::new(&case.optimizer(), model.parameters());
    let (pool, order) = random_pool(input, batch, device).context("generating the batches")?;
    let loss = Loss::new(&loss_spec, || crate::data::class_counts(&pool.y, CLASSES))?;
    let mut dropout = seeded(SEED, Stream::Dropout);
    let mut taken = 0;
    // As in an epoch of training: a batch is an index selection from the data on the
    // device, and the running loss and accuracy stay there until read.
    let mut step = |running: &mut Running| -> Result<()> {
        let idx = order.narrow(0, (taken % DISTINCT_BATCHES) * batch, batch)?;
        taken += 1;
        let x = pool.x.index_select(&idx, 0)?;
        let y = pool.y.index_select(&idx, 0)?;
        let (value, tallies) =
            train_step(&model, &mut optimizer, &loss, &x, &y, None, &mut dropout)?;
        running.push(value, tallies, batch);
        Ok(())
    };

    let mut warmup = Running::default();
    for _ in 0..options.warmup {
        step(&mut warmup)?;
    }
    if options.warmup > 0 {
        warmup.read(0, options.warmup - 1)?;
    }
    let mut rates = Vec::with_capacity(options.repeats);
    let mut losses = Vec::with_capacity(options.repeats);
    for _ in 0..options.repeats {
        let mut running = Running::default();
        let start = Instant::now();
        for _ in 0..options.steps {
            step(&mut running)?;
        }
        // Reading the losses back waits for the device, so it belongs to the timing.
        running.read(0, options.steps - 1)?;
        rates.push((options.steps * batch) as f64 / start.elapsed().as_secs_f64());
        losses.push(running.mean_loss());
    }
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(ModelResult {
        case: case.name().into(),
        model: case.model_name().into(),
        input,
        parameters,
        optimizer: case.optimizer(),
        loss: loss_spec.slug(),
        loss_spec,
        batch_size: batch,
        warmup_steps: options.warmup,
        steps: options.steps,
        repeats: options.repeats,
        samples_per_second: median(&sorted),
        min_samples_per_second: sorted[0],
        max_samples_per_second: sorted[sorted.len() - 1],
        repeat_samples_per_second: rates,
        first_loss: losses[0],
        last_loss: losses[losses.len() - 1],
    })
}

/// The median of sorted, non-empty `values` (the mean of the middle two for an even count).
pub(super) fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// `DISTINCT_BATCHES` batches of inputs uniform in [-1, 1) with uniform labels, and a
/// seeded permutation of them whose consecutive chunks are the batches.
fn random_pool(input: [usize; 3], batch: usize, device: &Device) -> Result<(Split, Tensor)> {
    let n = DISTINCT_BATCHES * batch;
    let mut rng = seeded(SEED, Stream::SyntheticTrain);
    let pixels: Vec<f32> = (0..n * input.iter().product::<usize>())
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let labels: Vec<u32> = (0..n)
        .map(|_| rng.random_range(0..CLASSES as u32))
        .collect();
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.shuffle(&mut seeded(SEED, Stream::Shuffle));
    Ok((
        Split {
            x: Tensor::from_vec(pixels, (n, input[0], input[1], input[2]), device)?,
            y: Tensor::from_vec(labels, n, device)?,
        },
        Tensor::from_vec(order, n, device)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case's name parses back to it, and an `-adamw` case is its SGD twin's model,
    /// input and label with AdamW in place of SGD: the pairs `bench-vs-pytorch.sh`
    /// compares with the same pairs in `bench_pytorch.py`.
    #[test]
    fn the_adamw_cases_are_their_sgd_twins_with_adamw() {
        for case in ModelCase::ALL {
            assert_eq!(case.name().parse::<ModelCase>(), Ok(case));
            let adamw = matches!(case.optimizer(), OptimizerSpec::Adamw(_));
            assert_eq!(adamw, case.name().ends_with("-adamw"), "{case}");
        }
        for (sgd, adamw) in [
            (ModelCase::MlpSgd, ModelCase::MlpAdamw),
            (ModelCase::Lenet5, ModelCase::Lenet5Adamw),
            (ModelCase::Resnet20, ModelCase::Resnet20Adamw),
        ] {
            assert_eq!(sgd.model_name(), adamw.model_name());
            assert_eq!(sgd.input(), adamw.input());
            assert_eq!(sgd.model(), adamw.model());
        }
    }
}
