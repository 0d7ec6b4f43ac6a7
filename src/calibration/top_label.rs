//! Calibrators of the top-label confidence: histogram binning (Zadrozny & Elkan 2001)
//! and isotonic regression (pool-adjacent-violators). Each is a map from the
//! prediction's confidence `c` to a calibrated one, fitted on the validation split's
//! (confidence, correct) pairs; the prediction itself never changes.

use std::num::NonZeroUsize;

use serde::{Deserialize, Serialize};

use super::binning::{bin_edge, bin_index};

/// Histogram binning: `M` equal-width bins `(m/M, (m+1)/M]` (a confidence of exactly 0
/// in the first), each mapped to the accuracy of the validation samples in it. An
/// empty bin maps to its midpoint, as netcal's `HistogramBinning` does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramBinning {
    /// The calibrated confidence of each bin.
    pub values: Vec<f64>,
    /// Validation samples per bin.
    pub counts: Vec<usize>,
}

impl HistogramBinning {
    pub fn fit(confidences: &[f64], correct: &[bool], bins: NonZeroUsize) -> Self {
        let mut hits = vec![0usize; bins.get()];
        let mut counts = vec![0usize; bins.get()];
        for (&c, &ok) in confidences.iter().zip(correct) {
            let m = bin_index(c, bins);
            counts[m] += 1;
            hits[m] += usize::from(ok);
        }
        let values = (0..bins.get())
            .map(|m| {
                if counts[m] == 0 {
                    0.5 * (bin_edge(m, bins) + bin_edge(m + 1, bins))
                } else {
                    hits[m] as f64 / counts[m] as f64
                }
            })
            .collect();
        Self { values, counts }
    }

    pub fn map(&self, confidence: f64) -> f64 {
        let bins = NonZeroUsize::new(self.values.len()).expect("at least one bin");
        self.values[bin_index(confidence, bins)]
    }
}

/// Isotonic regression of correctness on confidence, as scikit-learn's
/// `IsotonicRegression(out_of_bounds="clip")` (which netcal's wraps): samples sorted by
/// confidence, tied confidences merged into one point weighted by their count (their
/// mean correctness), pool-adjacent-violators on those points; a confidence maps by
/// linear interpolation between the fitted points, clipped to the first and last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsotonicRegression {
    /// The fitted points' confidences, increasing, with the interior points of
    /// constant stretches left out (they change no interpolated value).
    pub thresholds: Vec<f64>,
    /// Their calibrated confidences, non-decreasing.
    pub values: Vec<f64>,
}

impl IsotonicRegression {
    /// # Panics
    /// If `confidences` is empty or holds a NaN.
    pub fn fit(confidences: &[f64], correct: &[bool]) -> Self {
        assert!(!confidences.is_empty(), "isotonic regression of no samples");
        let mut order: Vec<usize> = (0..confidences.len()).collect();
        order.sort_by(|&a, &b| confidences[a].total_cmp(&confidences[b]));
        // Unique confidences with their total weight and mean correctness.
        let mut xs: Vec<f64> = Vec::new();
        let mut means: Vec<f64> = Vec::new();
        let mut weights: Vec<f64> = Vec::new();
        for &i in &order {
            let (x, y) = (confidences[i], f64::from(u8::from(correct[i])));
            if xs.last() == Some(&x) {
                let last = weights.len() - 1;
                means[last] = (means[last] * weights[last] + y) / (weights[last] + 1.0);
                weights[last] += 1.0;
            } else {
                xs.push(x);
                means.push(y);
                weights.push(1.0);
            }
        }
        let fitted = pool_adjacent_violators(&means, &weights);
        // Keep the ends of each constant stretch: the interpolation is the same.
        let mut thresholds = Vec::with_capacity(xs.len());
        let mut values = Vec::with_capacity(xs.len());
        for i in 0..xs.len() {
            let interior = i > 0 && i + 1 < xs.len() && {
                let (before, here, after) = (fitted[i - 1], fitted[i], fitted[i + 1]);
                before == here && here == after
            };
            if !interior {
                thresholds.push(xs[i]);
                values.push(fitted[i]);
            }
        }
        Self { thresholds, values }
    }

    pub fn map(&self, confidence: f64) -> f64 {
        let (xs, ys) = (&self.thresholds, &self.values);
        let last = xs.len() - 1;
        if confidence <= xs[0] {
            return ys[0];
        }
        if confidence >= xs[last] {
            return ys[last];
        }
        // The first threshold above the confidence; the point lies between it and the
        // one before.
        let upper = xs.partition_point(|&x| x <= confidence);
        let (x0, x1, y0, y1) = (xs[upper - 1], xs[upper], ys[upper - 1], ys[upper]);
        y0 + (confidence - x0) * (y1 - y0) / (x1 - x0)
    }
}

/// The non-decreasing sequence closest to `values` in weighted least squares: adjacent
/// blocks that violate the order are pooled into their weighted mean until none does.
pub fn pool_adjacent_violators(values: &[f64], weights: &[f64]) -> Vec<f64> {
    // Each block: (weighted mean, total weight, number of points).
    let mut blocks: Vec<(f64, f64, usize)> = Vec::with_capacity(values.len());
    for (&v, &w) in values.iter().zip(weights) {
        blocks.push((v, w, 1));
        while blocks.len() > 1 {
            let (mean, weight, len) = blocks[blocks.len() - 1];
            let (prev_mean, prev_weight, prev_len) = blocks[blocks.len() - 2];
            if prev_mean <= mean {
                break;
            }
            let total = prev_weight + weight;
            blocks.pop();
            *blocks.last_mut().expect("two blocks") = (
                (prev_mean * prev_weight + mean * weight) / total,
                total,
                prev_len + len,
            );
        }
    }
    blocks
        .iter()
        .flat_map(|&(mean, _, len)| std::iter::repeat_n(mean, len))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pav_pools_violators_into_weighted_means() {
        assert_eq!(
            pool_adjacent_violators(&[1.0, 3.0, 2.0, 4.0], &[1.0; 4]),
            [1.0, 2.5, 2.5, 4.0]
        );
        // 3 (weight 3) and 0 pool to 2.25; then 1 < 2.25 is fine.
        assert_eq!(
            pool_adjacent_violators(&[1.0, 3.0, 0.0], &[1.0, 3.0, 1.0]),
            [1.0, 2.25, 2.25]
        );
        assert_eq!(
            pool_adjacent_violators(&[2.0, 1.0, 0.0], &[1.0; 3]),
            [1.0; 3]
        );
    }

    #[test]
    fn isotonic_interpolates_and_clips() {
        let fit = IsotonicRegression::fit(&[0.2, 0.4, 0.6, 0.8], &[false, true, false, true]);
        // Fitted values 0, 0.5, 0.5, 1: the middle pair pooled.
        assert_eq!(fit.values, [0.0, 0.5, 0.5, 1.0]);
        assert_eq!(fit.map(0.1), 0.0);
        assert!((fit.map(0.3) - 0.25).abs() < 1e-15);
        assert_eq!(fit.map(0.5), 0.5);
        assert!((fit.map(0.7) - 0.75).abs() < 1e-15);
        assert_eq!(fit.map(0.95), 1.0);
    }

    #[test]
    fn histogram_fills_empty_bins_with_their_midpoint() {
        let bins = NonZeroUsize::new(4).unwrap();
        let fit = HistogramBinning::fit(&[0.1, 0.2, 0.9], &[true, false, true], bins);
        assert_eq!(fit.values, [0.5, 0.375, 0.625, 1.0]);
        assert_eq!(fit.counts, [2, 0, 0, 1]);
        assert_eq!(fit.map(0.25), 0.5, "(0, 0.25] is the first bin");
    }
}
