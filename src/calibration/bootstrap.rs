//! Bootstrap confidence intervals of a set's headline metrics: `B` resamples of the
//! samples with replacement (drawn from a seeded stream), each metric recomputed on
//! each, and the percentile interval at a stated level (the quantiles as numpy's
//! default linear interpolation computes them).
//!
//! A resample is a vector of counts (how often each sample was drawn), so every metric
//! is a weighted sum over the per-sample values computed once: accuracy, NLL and Brier
//! are weighted means, the ECE re-bins the weights, and the smooth ECE is recomputed at
//! the full set's bandwidth (searching the bandwidth again in each resample would cost
//! ten times as much and move the interval by far less than its width).

use std::num::NonZeroUsize;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::binning::bin_index;
use super::smooth::smooth_ece_at;
use crate::rng::{seeded, Stream};

/// How many resamples, at what level, from which seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bootstrap {
    pub resamples: usize,
    pub level: f64,
    pub seed: u64,
}

/// A percentile interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// The intervals of one set, with how they were drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intervals {
    pub resamples: usize,
    pub level: f64,
    pub accuracy: Interval,
    pub nll: Interval,
    pub brier: Interval,
    pub ece: Interval,
    pub smooth_ece: Interval,
}

impl Intervals {
    /// The JSON keys of the metrics with intervals, as in [`super::Metrics`].
    pub const KEYS: [&'static str; 5] = ["accuracy", "nll", "brier", "ece", "smooth_ece"];

    /// The interval of the metric with JSON key `key`, if it has one.
    pub fn of(&self, key: &str) -> Option<Interval> {
        match key {
            "accuracy" => Some(self.accuracy),
            "nll" => Some(self.nll),
            "brier" => Some(self.brier),
            "ece" => Some(self.ece),
            "smooth_ece" => Some(self.smooth_ece),
            _ => None,
        }
    }
}

/// What each sample contributes.
pub struct Samples<'a> {
    pub confidences: &'a [f64],
    pub correct: &'a [bool],
    pub nll: &'a [f64],
    pub brier: &'a [f64],
}

impl Bootstrap {
    /// The intervals of `samples` with `bins` ECE bins; the smooth ECE at `sigma`.
    pub fn intervals(&self, samples: &Samples, bins: NonZeroUsize, sigma: f64) -> Intervals {
        let n = samples.confidences.len();
        let bin_of: Vec<usize> = samples
            .confidences
            .iter()
            .map(|&c| bin_index(c, bins))
            .collect();
        let mut values: [Vec<f64>; 5] = Default::default();
        self.each_resample(n, |counts| {
            let mean = |per_sample: &[f64]| {
                per_sample
                    .iter()
                    .zip(counts)
                    .map(|(v, w)| v * w)
                    .sum::<f64>()
                    / n as f64
            };
            let mut hits = 0.0;
            let mut bin_count = vec![0.0; bins.get()];
            let mut bin_hits = vec![0.0; bins.get()];
            let mut bin_confidence = vec![0.0; bins.get()];
            for i in 0..n {
                let (w, m) = (counts[i], bin_of[i]);
                let hit = if samples.correct[i] { w } else { 0.0 };
                hits += hit;
                bin_count[m] += w;
                bin_hits[m] += hit;
                bin_confidence[m] += w * samples.confidences[i];
            }
            let ece = (0..bins.get())
                .map(|m| (bin_hits[m] - bin_confidence[m]).abs())
                .sum::<f64>()
                / n as f64;
            values[0].push(hits / n as f64);
            values[1].push(mean(samples.nll));
            values[2].push(mean(samples.brier));
            values[3].push(ece);
            values[4].push(smooth_ece_at(
                samples.confidences,
                samples.correct,
                Some(counts),
                sigma,
            ));
        });
        let [accuracy, nll, brier, ece, smooth_ece] =
            values.map(|mut v| percentile_interval(&mut v, self.level));
        Intervals {
            resamples: self.resamples,
            level: self.level,
            accuracy,
            nll,
            brier,
            ece,
            smooth_ece,
        }
    }

    /// The pointwise percentile band of a curve over `n` samples: `curve` maps a
    /// resample's counts to the curve's values (the same length for every resample).
    pub fn band(&self, n: usize, mut curve: impl FnMut(&[f64]) -> Vec<f64>) -> Vec<Interval> {
        let mut values: Vec<Vec<f64>> = vec![];
        self.each_resample(n, |counts| {
            let point_values = curve(counts);
            values.resize_with(point_values.len(), Vec::new);
            for (at, value) in values.iter_mut().zip(point_values) {
                at.push(value);
            }
        });
        values
            .iter_mut()
            .map(|v| percentile_interval(v, self.level))
            .collect()
    }

    /// Calls `f` with each resample of `n` samples, as counts of how often each sample
    /// was drawn.
    fn each_resample(&self, n: usize, mut f: impl FnMut(&[f64])) {
        let mut rng = seeded(self.seed, Stream::Bootstrap);
        let mut counts = vec![0.0f64; n];
        for _ in 0..self.resamples {
            counts.fill(0.0);
            for _ in 0..n {
                counts[rng.random_range(0..n)] += 1.0;
            }
            f(&counts);
        }
    }
}

/// The `(1 − level)/2` and `(1 + level)/2` quantiles of `values`, interpolated linearly
/// between order statistics (numpy's default).
fn percentile_interval(values: &mut [f64], level: f64) -> Interval {
    values.sort_by(f64::total_cmp);
    Interval {
        low: quantile(values, (1.0 - level) / 2.0),
        high: quantile(values, (1.0 + level) / 2.0),
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    let fraction = position - below as f64;
    sorted[below] + fraction * (sorted[above] - sorted[below])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_like_numpy() {
        // numpy.quantile([1, 2, 3, 4], [0.025, 0.975]) = [1.075, 3.925].
        let interval = percentile_interval(&mut [4.0, 1.0, 3.0, 2.0], 0.95);
        assert!((interval.low - 1.075).abs() < 1e-12);
        assert!((interval.high - 3.925).abs() < 1e-12);
    }

    #[test]
    fn the_ece_of_a_resample_with_unit_weights_is_the_ece() {
        // Weighted binning with every count 1 must reduce to the plain ECE: a bootstrap
        // of one resample drawn as the identity is not possible, so check the formula
        // on a set whose every resample is itself (one sample).
        let samples = Samples {
            confidences: &[0.8],
            correct: &[false],
            nll: &[1.5],
            brier: &[1.28],
        };
        let bootstrap = Bootstrap {
            resamples: 3,
            level: 0.9,
            seed: 7,
        };
        let intervals = bootstrap.intervals(&samples, NonZeroUsize::new(15).unwrap(), 0.1);
        assert_eq!(
            intervals.ece,
            Interval {
                low: 0.8,
                high: 0.8
            }
        );
        assert_eq!(
            intervals.accuracy,
            Interval {
                low: 0.0,
                high: 0.0
            }
        );
        assert_eq!(
            intervals.nll,
            Interval {
                low: 1.5,
                high: 1.5
            }
        );
    }
}
