//! `smoothlab bench`: throughput measurements, printed with what they ran on. Timings
//! live here, never in tests: this machine is shared and noisy, so each figure is the
//! median of several repetitions.

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
