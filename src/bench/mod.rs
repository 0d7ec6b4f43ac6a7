//! `smoothlab bench`: throughput measurements, printed with what they ran on. Timings
//! live here, never in tests: this machine is shared and noisy, so each figure is the
//! median of several repetitions.

mod epoch;
mod machine;
mod models;

pub use epoch::{EpochBench, EpochOptions};
pub use machine::BenchEnvironment;
pub use models::{LossCase, ModelCase, ModelsBench, ModelsOptions};

use crate::calibration::{evaluate, fit_temperature, Metrics, Predictions, TemperatureFit};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::num::NonZeroUsize;
use std::time::Instant;

/// Timings of the calibration suite on large random logits.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationBench {
    pub repeats: usize,
    /// Every metric of [`evaluate`] (no temperature fit) on `metrics_shape` logits.
    pub metrics_shape: [usize; 2],
    pub metrics_seconds: f64,
    /// [`fit_temperature`] on `fit_shape` logits.
    pub fit_shape: [usize; 2],
    pub fit_seconds: f64,
    pub fit_passes: usize,
    /// The calibration code is single-threaded; recorded for completeness.
    pub threads: usize,
}

impl CalibrationBench {
    /// Times the full metric suite on 1,000,000 × 10 logits and the temperature fit on
    /// 100,000 × 100, each the median of `repeats` runs.
    pub fn run(repeats: usize) -> Self {
        let bins = NonZeroUsize::new(15).expect("15 > 0");
        let large = random_predictions(1_000_000, 10, 1);
        let (metrics, metrics_seconds) = median_time(repeats, || evaluate(&large, bins, 1.0));
        let wide = random_predictions(100_000, 100, 2);
        let (fit, fit_seconds) = median_time(repeats, || fit_temperature(&wide));
        check_sane(&metrics, &fit);
        Self {
            repeats,
            metrics_shape: [large.len(), large.classes()],
            metrics_seconds,
            fit_shape: [wide.len(), wide.classes()],
            fit_seconds,
            fit_passes: fit.iterations,
            threads: 1,
        }
    }

    pub fn table(&self) -> String {
        format!(
            "calibration suite, median of {} runs, 1 thread\n\
             all metrics (15 bins)   {:>9} x {:<4} {:8.3} s\n\
             temperature fit         {:>9} x {:<4} {:8.3} s  ({} passes)\n",
            self.repeats,
            self.metrics_shape[0],
            self.metrics_shape[1],
            self.metrics_seconds,
            self.fit_shape[0],
            self.fit_shape[1],
            self.fit_seconds,
            self.fit_passes
        )
    }
}

/// Keeps the optimiser from discarding the work, and catches a broken suite.
fn check_sane(metrics: &Metrics, fit: &TemperatureFit) {
    assert!(
        metrics.ece.is_finite() && fit.temperature > 0.0,
        "benchmark produced {metrics:?} {fit:?}"
    );
}

/// Logits uniform in [-4, 4) with the label's logit raised by 3: right often, not always.
fn random_predictions(n: usize, classes: usize, seed: u64) -> Predictions {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let labels: Vec<u32> = (0..n)
        .map(|_| rng.random_range(0..classes as u32))
        .collect();
    let mut logits: Vec<f32> = (0..n * classes)
        .map(|_| rng.random_range(-4.0..4.0))
        .collect();
    for (row, &label) in logits.chunks_exact_mut(classes).zip(&labels) {
        row[label as usize] += 3.0;
    }
    Predictions::new(logits, labels, classes).expect("generated predictions are valid")
}

/// Runs `f` `repeats` times; returns the last result and the median wall time.
fn median_time<T>(repeats: usize, mut f: impl FnMut() -> T) -> (T, f64) {
    let mut times = Vec::with_capacity(repeats);
    let mut result = None;
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        result = Some(f());
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    (result.expect("at least one repeat"), times[times.len() / 2])
}

/// Training throughput of one model with one convolution implementation.
#[derive(Debug, Clone, Serialize)]
pub struct TrainCase {
    pub model: String,
    /// One sample, `[channels, height, width]`.
    pub input: [usize; 3],
    pub conv: String,
    pub batch_size: usize,
    pub steps: usize,
    /// Forward, smoothed cross-entropy, backward and SGD step.
    pub samples_per_second: f64,
}

/// LeNet-5 on MNIST-shaped and ResNet-20 on CIFAR-shaped random batches, each with
/// candle's `conv2d` and (on the CPU) with smoothlab's fused convolution, measured in
/// one process so that the ratio is meaningful on a noisy machine.
#[derive(Debug, Clone, Serialize)]
pub struct TrainBench {
    /// `cpu` or `cuda:N`.
    pub device: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<crate::device::GpuInfo>,
    pub threads: usize,
    /// The binary's allocator (`mimalloc` with the default feature, else `system`).
    pub allocator: String,
    pub cases: Vec<TrainCase>,
}

impl TrainBench {
    pub fn run(
        steps: usize,
        batch_size: usize,
        device: &candle_core::Device,
    ) -> anyhow::Result<Self> {
        use crate::model::ConvAlgorithm;
        use crate::spec::{Lenet5Spec, ModelSpec, ResnetSpec};
        let models = [
            (
                "LeNet-5",
                ModelSpec::Lenet5(Lenet5Spec::default()),
                [1, 28, 28],
            ),
            (
                "ResNet-20",
                ModelSpec::Resnet(ResnetSpec::default()),
                [3, 32, 32],
            ),
        ];
        let mut cases = Vec::new();
        for (name, spec, input) in &models {
            // The fused custom op has only a CPU implementation.
            let algorithms: &[_] = if device.is_cpu() {
                &[
                    ("candle", ConvAlgorithm::Candle),
                    ("fused", ConvAlgorithm::Fused),
                ]
            } else {
                &[("candle", ConvAlgorithm::Candle)]
            };
            for &(conv, algorithm) in algorithms {
                let samples_per_second =
                    train_throughput(spec, *input, algorithm, steps, batch_size, device)?;
                cases.push(TrainCase {
                    model: name.to_string(),
                    input: *input,
                    conv: conv.to_string(),
                    batch_size,
                    steps,
                    samples_per_second,
                });
            }
        }
        Ok(Self {
            device: crate::device::describe(device),
            gpu: crate::device::gpu_info(device),
            threads: candle_core::utils::get_num_threads(),
            allocator: machine::allocator().into(),
            cases,
        })
    }

    pub fn table(&self) -> String {
        let on = match &self.gpu {
            Some(gpu) => format!("{} ({})", self.device, gpu.name),
            None if self.device == "cpu" => format!("the CPU, {} threads", self.threads),
            None => self.device.clone(),
        };
        let mut out = format!(
            "training throughput on {on}, {} allocator (a run's training step: forward, loss, backward, SGD update, accuracy)\n\
             model       input      conv    batch  steps   samples/s\n",
            self.allocator
        );
        for case in &self.cases {
            out += &format!(
                "{:<11} {:<10} {:<7} {:>5} {:>6} {:>11.1}\n",
                case.model,
                case.input.map(|d| d.to_string()).join("x"),
                case.conv,
                case.batch_size,
                case.steps,
                case.samples_per_second
            );
        }
        for fused in self.cases.iter().filter(|c| c.conv == "fused") {
            let candle = self
                .cases
                .iter()
                .find(|c| c.model == fused.model && c.conv == "candle");
            if let Some(candle) = candle {
                out += &format!(
                    "{}: fused / candle = {:.2}x\n",
                    candle.model,
                    fused.samples_per_second / candle.samples_per_second
                );
            }
        }
        out
    }
}

/// Samples per second over `steps` training steps, after one untimed warm-up step
/// (which on a GPU also loads the kernels).
fn train_throughput(
    spec: &crate::spec::ModelSpec,
    input: [usize; 3],
    algorithm: crate::model::ConvAlgorithm,
    steps: usize,
    batch: usize,
    device: &candle_core::Device,
) -> anyhow::Result<f64> {
    use crate::spec::OptimizerSpec;
    use candle_core::Tensor;
    let classes = 10;
    let model = crate::model::build_with(spec, &input, classes, 0, device, algorithm)?;
    let mut optimizer = crate::optim::Optimizer::new(&OptimizerSpec::default(), model.parameters());
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let pixels: Vec<f32> = (0..batch * input.iter().product::<usize>())
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let x = Tensor::from_vec(pixels, (batch, input[0], input[1], input[2]), device)?;
    let labels: Vec<u32> = (0..batch)
        .map(|_| rng.random_range(0..classes as u32))
        .collect();
    let y = Tensor::from_vec(labels, batch, device)?;
    let loss = crate::loss::Loss::cross_entropy();
    let mut dropout_rng = ChaCha8Rng::seed_from_u64(4);
    let mut step = || -> anyhow::Result<()> {
        crate::train::train_step(
            &model,
            &mut optimizer,
            &loss,
            &x,
            &y,
            None,
            &mut dropout_rng,
        )?;
        Ok(())
    };
    step()?;
    device.synchronize()?;
    let start = Instant::now();
    for _ in 0..steps {
        step()?;
    }
    // GPU kernels run asynchronously: wait for the last step before stopping the clock.
    device.synchronize()?;
    Ok((steps * batch) as f64 / start.elapsed().as_secs_f64())
}
