//! `smoothlab bench`: throughput measurements, printed with what they ran on. Timings
//! live here, never in tests: this machine is shared and noisy, so each figure is the
//! median of several repetitions.

mod epoch;
mod machine;
mod models;

pub use epoch::{EpochBench, EpochOptions};
pub use machine::BenchEnvironment;
pub use models::{LossCase, ModelCase, ModelsBench, ModelsOptions};

use crate::calibration::calibrators::top_label;
use crate::calibration::scaling::{fit_affine, Form};
use crate::calibration::smooth::smooth_ece;
use crate::calibration::{
    evaluate, evaluate_with_intervals, fit_temperature, Bootstrap, Metrics, Predictions,
    TemperatureFit,
};
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
    /// The smooth ECE (bandwidth search included) of `metrics_shape`'s top-label
    /// confidences.
    pub smooth_ece_seconds: f64,
    /// The whole suite with `bootstrap_resamples` bootstrap intervals on
    /// `bootstrap_shape` logits, against the suite alone.
    pub bootstrap_shape: [usize; 2],
    pub bootstrap_resamples: usize,
    pub bootstrap_seconds: f64,
    pub bootstrap_suite_seconds: f64,
    /// Matrix scaling fitted on `matrix_shape` validation logits.
    pub matrix_shape: [usize; 2],
    pub matrix_seconds: f64,
    pub matrix_iterations: u64,
    pub matrix_converged: bool,
    /// The calibration code is single-threaded; recorded for completeness.
    pub threads: usize,
}

impl CalibrationBench {
    /// Times the full metric suite and the smooth ECE on 1,000,000 × 10 logits, the
    /// temperature fit on 100,000 × 100, 200 bootstrap resamples of the suite on
    /// 100,000 × 10 and matrix scaling on 5,000 × 100, each the median of `repeats` runs.
    pub fn run(repeats: usize) -> Self {
        let bins = NonZeroUsize::new(15).expect("15 > 0");
        let large = random_predictions(1_000_000, 10, 1);
        let (metrics, metrics_seconds) = median_time(repeats, || evaluate(&large, bins, 1.0));
        let wide = random_predictions(100_000, 100, 2);
        let (fit, fit_seconds) = median_time(repeats, || fit_temperature(&wide));
        check_sane(&metrics, &fit);
        let (confidences, correct) = top_label(&large);
        let (smooth, smooth_ece_seconds) =
            median_time(repeats, || smooth_ece(&confidences, &correct));
        assert!(smooth.value.is_finite(), "smooth ECE {smooth:?}");
        let medium = random_predictions(100_000, 10, 3);
        let bootstrap = Bootstrap {
            resamples: 200,
            level: 0.95,
            seed: 0,
        };
        let (_, bootstrap_seconds) = median_time(repeats, || {
            evaluate_with_intervals(&medium, bins, 1.0, &bootstrap)
        });
        let (_, bootstrap_suite_seconds) = median_time(repeats, || evaluate(&medium, bins, 1.0));
        let many = random_predictions(5_000, 100, 4);
        let (matrix, matrix_seconds) = median_time(repeats, || fit_affine(Form::Matrix, &many));
        Self {
            repeats,
            metrics_shape: [large.len(), large.classes()],
            metrics_seconds,
            fit_shape: [wide.len(), wide.classes()],
            fit_seconds,
            fit_passes: fit.iterations,
            smooth_ece_seconds,
            bootstrap_shape: [medium.len(), medium.classes()],
            bootstrap_resamples: bootstrap.resamples,
            bootstrap_seconds,
            bootstrap_suite_seconds,
            matrix_shape: [many.len(), many.classes()],
            matrix_seconds,
            matrix_iterations: matrix.iterations,
            matrix_converged: matrix.converged,
            threads: 1,
        }
    }

    pub fn table(&self) -> String {
        format!(
            "calibration suite, median of {} runs, 1 thread\n\
             all metrics (15 bins)   {:>9} x {:<4} {:8.3} s\n\
             smooth ECE              {:>9} x {:<4} {:8.3} s\n\
             temperature fit         {:>9} x {:<4} {:8.3} s  ({} passes)\n\
             suite + {} bootstraps  {:>9} x {:<4} {:8.3} s  (the suite alone {:.3} s)\n\
             matrix scaling fit      {:>9} x {:<4} {:8.3} s  ({} L-BFGS iterations{})\n",
            self.repeats,
            self.metrics_shape[0],
            self.metrics_shape[1],
            self.metrics_seconds,
            self.metrics_shape[0],
            self.metrics_shape[1],
            self.smooth_ece_seconds,
            self.fit_shape[0],
            self.fit_shape[1],
            self.fit_seconds,
            self.fit_passes,
            self.bootstrap_resamples,
            self.bootstrap_shape[0],
            self.bootstrap_shape[1],
            self.bootstrap_seconds,
            self.bootstrap_suite_seconds,
            self.matrix_shape[0],
            self.matrix_shape[1],
            self.matrix_seconds,
            self.matrix_iterations,
            if self.matrix_converged {
                ", converged"
            } else {
                ", NOT converged"
            }
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
