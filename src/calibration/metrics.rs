//! All metrics of a set of predictions in one pass over the logits.

use std::num::NonZeroUsize;

use serde::{Deserialize, Serialize};

use super::binning::{bin_edge, Binned, ClasswiseBins};
use super::bootstrap::{Bootstrap, Intervals, Samples};
use super::predictions::Predictions;
use super::smooth::smooth_ece;
use super::softmax::{softmax_into, RowSoftmax};

/// The most bins any metric accepts: classwise ECE keeps `classes × bins` counters, and
/// bins beyond a few thousand hold too few samples to mean anything.
pub const MAX_BINS: usize = 10_000;

/// The usual number of equal-width confidence bins.
pub const DEFAULT_BINS: NonZeroUsize = match NonZeroUsize::new(15) {
    Some(bins) => bins,
    None => unreachable!(),
};

/// Top-k accuracy is reported for this k, and only when there are at least
/// this many classes.
const TOP_K: usize = 5;

/// Every metric of a set of predictions; see the module documentation for
/// the definitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Number of samples.
    pub n: usize,
    /// Number of classes.
    pub classes: usize,
    /// Number of confidence bins.
    pub bins: usize,
    /// Fraction of samples whose argmax is the label.
    pub accuracy: f64,
    /// Fraction whose label is among the five largest logits; `None` when
    /// there are fewer than five classes.
    pub top5_accuracy: Option<f64>,
    /// Mean negative log-likelihood of the label.
    pub nll: f64,
    /// Mean Brier score, in `[0, 2]`.
    pub brier: f64,
    /// Expected calibration error over equal-width bins.
    pub ece: f64,
    /// Maximum calibration error over non-empty equal-width bins.
    pub mce: f64,
    /// Root-mean-square calibration error over equal-width bins.
    pub rmsce: f64,
    /// Expected calibration error over equal-mass bins.
    pub adaptive_ece: f64,
    /// Mean over classes of the per-class ECE.
    pub classwise_ece: f64,
    /// Smooth ECE of the top-label confidence (Błasiok & Nakkiran 2023, as relplot
    /// computes it); absent in results written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smooth_ece: Option<f64>,
    /// The kernel bandwidth the smooth ECE was computed at (its fixed point).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smooth_ece_sigma: Option<f64>,
    /// Kumar et al. 2019's debiased L2 calibration error over the equal-width bins;
    /// absent in results written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debiased_ece: Option<f64>,
    /// Mean of the largest probability.
    pub mean_confidence: f64,
    /// Mean predictive entropy, in nats.
    pub mean_entropy: f64,
    /// Mean of the label's logit minus the mean of the other logits.
    pub mean_true_logit_gap: f64,
    /// Mean of the largest logit minus the second largest.
    pub mean_max_logit_gap: f64,
    /// Mean L2 norm of a logit row.
    pub mean_logit_norm: f64,
    /// Reliability-diagram data for the equal-width bins.
    pub reliability: Vec<ReliabilityBin>,
    /// Bootstrap intervals of the headline metrics, where they were asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intervals: Option<Intervals>,
}

/// One bar of a reliability diagram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// Lower (open) edge of the bin.
    pub lower: f64,
    /// Upper (closed) edge of the bin.
    pub upper: f64,
    /// Number of samples whose confidence falls in the bin.
    pub count: usize,
    /// Their mean confidence; `None` for an empty bin.
    pub confidence: Option<f64>,
    /// Their accuracy; `None` for an empty bin.
    pub accuracy: Option<f64>,
}

/// All metrics of `predictions` at `temperature` (1.0 = raw logits), with
/// `bins` equal-width (and equal-mass) confidence bins.
///
/// # Panics
/// If `temperature` is not a positive finite number with a finite inverse.
pub fn evaluate(predictions: &Predictions, bins: NonZeroUsize, temperature: f64) -> Metrics {
    let beta = 1.0 / temperature;
    assert!(
        temperature > 0.0 && temperature.is_finite() && beta.is_finite(),
        "temperature must be positive and finite, got {temperature}"
    );
    evaluate_with(predictions, bins, beta, None, None)
}

/// [`evaluate`], with `bootstrap`'s intervals of accuracy, NLL, Brier, ECE and smooth
/// ECE.
pub fn evaluate_with_intervals(
    predictions: &Predictions,
    bins: NonZeroUsize,
    temperature: f64,
    bootstrap: &Bootstrap,
) -> Metrics {
    let beta = 1.0 / temperature;
    assert!(
        temperature > 0.0 && temperature.is_finite() && beta.is_finite(),
        "temperature must be positive and finite, got {temperature}"
    );
    evaluate_with(predictions, bins, beta, None, Some(bootstrap))
}

/// The probability of the label is floored at this in the NLL after a top-label
/// calibrator, which can map a confidence to exactly 1 (or 0).
pub const TOP_LABEL_PROBABILITY_FLOOR: f64 = 1e-12;

/// All metrics after a top-label calibrator `map` (histogram binning, isotonic
/// regression): the prediction stays the argmax of the logits, its probability becomes
/// `c' = map(c)`, and the other classes share `1 − c'` in the proportions they had (a
/// row whose other classes had probability 0 shares it evenly). Every metric is then
/// computed from these probabilities, the NLL with the label's probability floored at
/// [`TOP_LABEL_PROBABILITY_FLOOR`]; the logit statistics, which such a calibrator does
/// not change, are those of the raw logits.
pub fn evaluate_top_label(
    predictions: &Predictions,
    bins: NonZeroUsize,
    map: &dyn Fn(f64) -> f64,
    bootstrap: Option<&Bootstrap>,
) -> Metrics {
    evaluate_with(predictions, bins, 1.0, Some(map), bootstrap)
}

fn evaluate_with(
    predictions: &Predictions,
    bins: NonZeroUsize,
    beta: f64,
    map: Option<&dyn Fn(f64) -> f64>,
    bootstrap: Option<&Bootstrap>,
) -> Metrics {
    let n = predictions.len();
    let classes = predictions.classes();
    let mut totals = Totals::default();
    let mut probabilities = vec![0.0; classes];
    let mut confidences = Vec::with_capacity(n);
    let mut correct = Vec::with_capacity(n);
    // Per-sample NLL and Brier, kept only for the bootstrap.
    let mut sample_nll = Vec::with_capacity(if bootstrap.is_some() { n } else { 0 });
    let mut sample_brier = Vec::with_capacity(sample_nll.capacity());
    let mut classwise = ClasswiseBins::new(classes, bins);
    for (logits, label) in predictions.rows() {
        let row = softmax_into(logits, beta, &mut probabilities);
        let (nll, entropy) = match map {
            None => (
                row.negative_log_probability(logits[label]),
                entropy(logits, &row, &probabilities),
            ),
            Some(map) => {
                let calibrated = map(probabilities[row.prediction]);
                redistribute(&mut probabilities, row.prediction, calibrated);
                (
                    -probabilities[label].max(TOP_LABEL_PROBABILITY_FLOOR).ln(),
                    plain_entropy(&probabilities),
                )
            }
        };
        let brier = brier(&probabilities, label);
        if bootstrap.is_some() {
            sample_nll.push(nll);
            sample_brier.push(brier);
        }
        totals.add(logits, label, row.prediction, nll, brier, entropy);
        confidences.push(probabilities[row.prediction]);
        correct.push(row.prediction == label);
        classwise.add(&probabilities, label);
    }
    let equal_width = Binned::equal_width(&confidences, &correct, bins);
    let smooth = smooth_ece(&confidences, &correct);
    let intervals = bootstrap.map(|b| {
        let samples = Samples {
            confidences: &confidences,
            correct: &correct,
            nll: &sample_nll,
            brier: &sample_brier,
        };
        b.intervals(&samples, bins, smooth.sigma)
    });
    let mean = |total: f64| total / n as f64;
    Metrics {
        n,
        classes,
        bins: bins.get(),
        accuracy: mean(totals.correct as f64),
        top5_accuracy: (classes >= TOP_K).then(|| mean(totals.top_k_hits as f64)),
        nll: mean(totals.nll),
        brier: mean(totals.brier),
        ece: equal_width.ece(),
        mce: equal_width.mce(),
        rmsce: equal_width.rmsce(),
        adaptive_ece: Binned::equal_mass(&confidences, &correct, bins).ece(),
        classwise_ece: classwise.ece(),
        smooth_ece: Some(smooth.value),
        smooth_ece_sigma: Some(smooth.sigma),
        debiased_ece: Some(equal_width.debiased_l2_ece()),
        mean_confidence: mean(confidences.iter().sum()),
        mean_entropy: mean(totals.entropy),
        // The statistics are linear in the logits, so scale once at the end.
        mean_true_logit_gap: mean(totals.true_logit_gap) * beta,
        mean_max_logit_gap: mean(totals.max_logit_gap) * beta,
        mean_logit_norm: mean(totals.logit_norm) * beta,
        reliability: reliability_bins(&equal_width, bins),
        intervals,
    }
}

/// Gives class `top` probability `calibrated` and the others `1 − calibrated` in their
/// proportions (evenly where they had none).
fn redistribute(probabilities: &mut [f64], top: usize, calibrated: f64) {
    let others: f64 = probabilities
        .iter()
        .enumerate()
        .filter(|&(k, _)| k != top)
        .map(|(_, p)| p)
        .sum();
    let rest = 1.0 - calibrated;
    let even = rest / (probabilities.len() - 1) as f64;
    for (k, p) in probabilities.iter_mut().enumerate() {
        *p = if k == top {
            calibrated
        } else if others > 0.0 {
            *p * rest / others
        } else {
            even
        };
    }
}

/// `-Σ p ln p` with `0 · ln 0 = 0`.
fn plain_entropy(probabilities: &[f64]) -> f64 {
    probabilities
        .iter()
        .filter(|&&p| p > 0.0)
        .map(|&p| -p * p.ln())
        .sum()
}

/// Running sums of the per-sample metrics.
#[derive(Debug, Default)]
struct Totals {
    correct: usize,
    top_k_hits: usize,
    nll: f64,
    brier: f64,
    entropy: f64,
    true_logit_gap: f64,
    max_logit_gap: f64,
    logit_norm: f64,
}

impl Totals {
    fn add(
        &mut self,
        logits: &[f32],
        label: usize,
        prediction: usize,
        nll: f64,
        brier: f64,
        entropy: f64,
    ) {
        self.correct += usize::from(prediction == label);
        self.top_k_hits += usize::from(label_rank(logits, label) < TOP_K);
        self.nll += nll;
        self.brier += brier;
        self.entropy += entropy;
        self.true_logit_gap += true_logit_gap(logits, label);
        self.max_logit_gap += max_logit_gap(logits);
        self.logit_norm += logit_norm(logits);
    }
}

/// Position of the label when classes are ordered by decreasing logit, ties
/// by increasing index (0 = the prediction).
fn label_rank(logits: &[f32], label: usize) -> usize {
    let target = logits[label];
    let above = logits.iter().filter(|&&z| z > target).count();
    let tied_before = logits[..label].iter().filter(|&&z| z == target).count();
    above + tied_before
}

/// `Σ_k (p_k - [k = label])²`.
fn brier(probabilities: &[f64], label: usize) -> f64 {
    probabilities
        .iter()
        .enumerate()
        .map(|(k, &p)| {
            let miss = p - f64::from(u8::from(k == label));
            miss * miss
        })
        .sum()
}

/// `-Σ p ln p = ln S - Σ p_k s_k` with `s` the shifted scaled logits; terms
/// with `p_k = 0` are skipped (`0 · ln 0 = 0`).
fn entropy(logits: &[f32], row: &RowSoftmax, probabilities: &[f64]) -> f64 {
    let expected_shift: f64 = logits
        .iter()
        .zip(probabilities)
        .filter(|(_, &p)| p > 0.0)
        .map(|(&z, &p)| p * row.shifted(z))
        .sum();
    (row.log_normalizer - expected_shift).max(0.0)
}

/// The label's logit minus the mean of the other logits.
fn true_logit_gap(logits: &[f32], label: usize) -> f64 {
    let total: f64 = logits.iter().copied().map(f64::from).sum();
    let target = f64::from(logits[label]);
    target - (total - target) / (logits.len() - 1) as f64
}

/// Largest logit minus the second largest (0 when they tie).
fn max_logit_gap(logits: &[f32]) -> f64 {
    let (first, second) = logits.iter().fold(
        (f32::NEG_INFINITY, f32::NEG_INFINITY),
        |(first, second), &z| {
            if z > first {
                (z, first)
            } else {
                (first, second.max(z))
            }
        },
    );
    f64::from(first) - f64::from(second)
}

/// Euclidean norm of the logit row.
fn logit_norm(logits: &[f32]) -> f64 {
    logits
        .iter()
        .map(|&z| f64::from(z) * f64::from(z))
        .sum::<f64>()
        .sqrt()
}

fn reliability_bins(binned: &Binned, bins: NonZeroUsize) -> Vec<ReliabilityBin> {
    binned
        .bins()
        .iter()
        .enumerate()
        .map(|(m, stats)| ReliabilityBin {
            lower: bin_edge(m, bins),
            upper: bin_edge(m + 1, bins),
            count: stats.count,
            confidence: stats.mean_confidence(),
            accuracy: stats.accuracy(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_rank_breaks_ties_by_index() {
        let logits = [1.0, 3.0, 3.0, 0.0, 3.0];
        assert_eq!(label_rank(&logits, 1), 0);
        assert_eq!(label_rank(&logits, 2), 1);
        assert_eq!(label_rank(&logits, 4), 2);
        assert_eq!(label_rank(&logits, 0), 3);
        assert_eq!(label_rank(&logits, 3), 4);
    }

    #[test]
    fn logit_statistics() {
        // Other logits of label 0 average (1 + 4) / 2 = 2.5, so 3 - 2.5.
        assert_eq!(true_logit_gap(&[3.0, 1.0, 4.0], 0), 0.5);
        assert_eq!(max_logit_gap(&[3.0, 1.0, 4.0]), 1.0);
        assert_eq!(max_logit_gap(&[4.0, 1.0, 4.0]), 0.0);
        assert_eq!(logit_norm(&[3.0, 0.0, -4.0]), 5.0);
    }

    #[test]
    fn brier_of_certain_rows() {
        assert_eq!(brier(&[1.0, 0.0], 0), 0.0);
        assert_eq!(brier(&[1.0, 0.0], 1), 2.0);
    }
}
