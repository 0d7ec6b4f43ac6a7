//! Confidence binning shared by every binned calibration error.

use std::num::NonZeroUsize;

/// Edge `m` of `bins` equal-width bins on `[0, 1]`: `m / bins`.
///
/// Bin `m` is `(bin_edge(m), bin_edge(m + 1)]`. [`bin_index`] compares
/// against exactly these values, so a confidence equal to a reported upper
/// edge always lies in that bin.
pub fn bin_edge(m: usize, bins: NonZeroUsize) -> f64 {
    m as f64 / bins.get() as f64
}

/// Equal-width bin of `confidence`: the `m` with
/// `bin_edge(m) < confidence <= bin_edge(m + 1)`.
///
/// A confidence of 0 (or below) goes to bin 0, one of 1 (or above) to the
/// last bin; NaN goes to bin 0.
pub fn bin_index(confidence: f64, bins: NonZeroUsize) -> usize {
    let last = bins.get() - 1;
    // `ceil(c·M) - 1` is right up to one ulp of rounding in `c·M`; the two
    // corrections below settle confidences that sit exactly on an edge.
    let estimate = ((confidence * bins.get() as f64).ceil() as usize)
        .saturating_sub(1)
        .min(last);
    if estimate > 0 && confidence <= bin_edge(estimate, bins) {
        estimate - 1
    } else if estimate < last && confidence > bin_edge(estimate + 1, bins) {
        estimate + 1
    } else {
        estimate
    }
}

/// Totals for one bin.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BinStats {
    /// Number of samples in the bin.
    pub count: usize,
    /// Sum of their confidences (or class probabilities).
    pub confidence_sum: f64,
    /// Number of them whose outcome was positive (correct, or of the class).
    pub positives: usize,
}

impl BinStats {
    /// Mean confidence, `None` for an empty bin.
    pub fn mean_confidence(&self) -> Option<f64> {
        (self.count > 0).then(|| self.confidence_sum / self.count as f64)
    }

    /// Fraction of positive outcomes (the accuracy), `None` for an empty bin.
    pub fn accuracy(&self) -> Option<f64> {
        (self.count > 0).then(|| self.positives as f64 / self.count as f64)
    }

    /// `|accuracy - mean confidence|`, `None` for an empty bin.
    pub fn gap(&self) -> Option<f64> {
        Some((self.accuracy()? - self.mean_confidence()?).abs())
    }
}

/// Samples grouped into bins, with the calibration errors of that grouping.
#[derive(Debug, Clone, PartialEq)]
pub struct Binned {
    bins: Vec<BinStats>,
    samples: usize,
}

impl Binned {
    /// `bins` empty bins.
    pub fn new(bins: NonZeroUsize) -> Self {
        Self {
            bins: vec![BinStats::default(); bins.get()],
            samples: 0,
        }
    }

    /// Adds one sample to bin `bin`.
    ///
    /// # Panics
    /// If `bin` is not below the number of bins.
    pub fn add(&mut self, bin: usize, confidence: f64, positive: bool) {
        let stats = &mut self.bins[bin];
        stats.count += 1;
        stats.confidence_sum += confidence;
        stats.positives += usize::from(positive);
        self.samples += 1;
    }

    /// Bins the samples by [`bin_index`] of their confidence.
    ///
    /// # Panics
    /// If the two slices differ in length.
    pub fn equal_width(confidences: &[f64], correct: &[bool], bins: NonZeroUsize) -> Self {
        assert_eq!(
            confidences.len(),
            correct.len(),
            "one outcome per confidence"
        );
        let mut binned = Self::new(bins);
        for (&confidence, &positive) in confidences.iter().zip(correct) {
            binned.add(bin_index(confidence, bins), confidence, positive);
        }
        binned
    }

    /// Bins equal numbers of samples: after a stable sort by confidence,
    /// bin `b` holds sorted positions `floor(b·n/M) .. floor((b+1)·n/M)`.
    ///
    /// # Panics
    /// If the two slices differ in length.
    pub fn equal_mass(confidences: &[f64], correct: &[bool], bins: NonZeroUsize) -> Self {
        assert_eq!(
            confidences.len(),
            correct.len(),
            "one outcome per confidence"
        );
        let mut sorted: Vec<(f64, bool)> = confidences
            .iter()
            .copied()
            .zip(correct.iter().copied())
            .collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n = sorted.len() as u128;
        let m = bins.get() as u128;
        let mut binned = Self::new(bins);
        for (position, (confidence, positive)) in sorted.into_iter().enumerate() {
            // Largest b with floor(b·n/M) <= position, i.e. b = floor(((position+1)·M - 1) / n).
            let bin = ((position as u128 + 1) * m - 1) / n;
            binned.add(bin as usize, confidence, positive);
        }
        binned
    }

    /// Per-bin totals, in bin order.
    pub fn bins(&self) -> &[BinStats] {
        &self.bins
    }

    /// Number of samples added.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Expected calibration error: count-weighted mean of the bin gaps.
    pub fn ece(&self) -> f64 {
        self.weighted_mean(|gap| gap)
    }

    /// Root-mean-square calibration error.
    pub fn rmsce(&self) -> f64 {
        self.weighted_mean(|gap| gap * gap).sqrt()
    }

    /// Kumar et al. 2019's debiased L2 calibration error, as their
    /// `uncertainty-calibration` code computes it (`unbiased_l2_ce`): each bin's
    /// `(conf − acc)²` less the variance of its accuracy `acc(1 − acc)/(n_b − 1)`
    /// (bins of fewer than two samples count 0), weighted by `n_b/n`, the sum clamped
    /// at 0, then the square root.
    pub fn debiased_l2_ece(&self) -> f64 {
        if self.samples == 0 {
            return 0.0;
        }
        let total: f64 = self
            .bins
            .iter()
            .filter(|stats| stats.count >= 2)
            .filter_map(|stats| {
                let (acc, gap) = (stats.accuracy()?, stats.gap()?);
                let variance = acc * (1.0 - acc) / (stats.count - 1) as f64;
                Some(stats.count as f64 * (gap * gap - variance))
            })
            .sum();
        (total / self.samples as f64).max(0.0).sqrt()
    }

    /// Maximum calibration error over non-empty bins (0 with no samples).
    pub fn mce(&self) -> f64 {
        self.bins
            .iter()
            .filter_map(BinStats::gap)
            .fold(0.0, f64::max)
    }

    /// `Σ_m (|B_m|/n) f(gap_m)` over non-empty bins; 0 with no samples.
    fn weighted_mean(&self, f: impl Fn(f64) -> f64) -> f64 {
        if self.samples == 0 {
            return 0.0;
        }
        let total: f64 = self
            .bins
            .iter()
            .filter_map(|stats| Some(stats.count as f64 * f(stats.gap()?)))
            .sum();
        total / self.samples as f64
    }
}

/// One equal-width [`Binned`] per class, binning every sample's probability
/// for that class against whether the sample belongs to it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClasswiseBins {
    per_class: Vec<Binned>,
    bins: NonZeroUsize,
}

impl ClasswiseBins {
    /// Empty bins for `classes` classes.
    pub fn new(classes: usize, bins: NonZeroUsize) -> Self {
        Self {
            per_class: vec![Binned::new(bins); classes],
            bins,
        }
    }

    /// Adds one sample given its class probabilities and its label.
    ///
    /// # Panics
    /// If `probabilities` does not hold one value per class.
    pub fn add(&mut self, probabilities: &[f64], label: usize) {
        assert_eq!(
            probabilities.len(),
            self.per_class.len(),
            "one probability per class"
        );
        for (class, (binned, &probability)) in
            self.per_class.iter_mut().zip(probabilities).enumerate()
        {
            binned.add(
                bin_index(probability, self.bins),
                probability,
                class == label,
            );
        }
    }

    /// The binning of each class.
    pub fn per_class(&self) -> &[Binned] {
        &self.per_class
    }

    /// Classwise ECE: the mean over classes of each class's ECE.
    pub fn ece(&self) -> f64 {
        let total: f64 = self.per_class.iter().map(Binned::ece).sum();
        total / self.per_class.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bins(m: usize) -> NonZeroUsize {
        NonZeroUsize::new(m).unwrap()
    }

    #[test]
    fn edges_belong_to_the_bin_they_close() {
        for m in [1, 3, 7, 10, 15, 100] {
            for k in 0..=m {
                let edge = bin_edge(k, bins(m));
                assert_eq!(bin_index(edge, bins(m)), k.saturating_sub(1), "M={m} k={k}");
                let above = f64::from_bits(edge.to_bits() + 1);
                if k < m {
                    assert_eq!(bin_index(above, bins(m)), k, "M={m} just above edge {k}");
                }
            }
        }
    }

    #[test]
    fn out_of_range_confidences_are_clamped() {
        assert_eq!(bin_index(-0.5, bins(15)), 0);
        assert_eq!(bin_index(1.5, bins(15)), 14);
        assert_eq!(bin_index(f64::NAN, bins(15)), 0);
    }

    #[test]
    fn equal_mass_splits_floor_positions() {
        // n = 5, M = 2: bin 0 gets positions 0..2, bin 1 positions 2..5.
        let binned = Binned::equal_mass(&[0.9, 0.1, 0.5, 0.3, 0.7], &[true; 5], bins(2));
        let counts: Vec<usize> = binned.bins().iter().map(|b| b.count).collect();
        assert_eq!(counts, [2, 3]);
        // n = 2, M = 5: bin b holds [floor(2b/5), floor(2(b+1)/5)), so only
        // bin 2 = [0, 1) and bin 4 = [1, 2) are non-empty.
        let binned = Binned::equal_mass(&[0.2, 0.4], &[true, false], bins(5));
        let counts: Vec<usize> = binned.bins().iter().map(|b| b.count).collect();
        assert_eq!(counts, [0, 0, 1, 0, 1]);
    }
}
