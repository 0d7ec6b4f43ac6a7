//! Numerically safe softmax of one logit row.

/// What [`softmax_into`] learned about a row besides its probabilities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowSoftmax {
    /// Index of the largest logit; the lowest index wins a tie.
    pub prediction: usize,
    /// The largest logit (unscaled).
    pub max_logit: f64,
    /// The inverse temperature the row was scaled by.
    pub beta: f64,
    /// `ln Σ_k exp(β (z_k - max_logit))`, at least 0.
    pub log_normalizer: f64,
}

impl RowSoftmax {
    /// `β (z - max_logit)`: a scaled logit shifted so the largest is 0.
    pub fn shifted(&self, logit: f32) -> f64 {
        self.beta * (f64::from(logit) - self.max_logit)
    }

    /// `-ln softmax(β z)_label`, computed without rounding it to a probability.
    pub fn negative_log_probability(&self, logit: f32) -> f64 {
        self.log_normalizer - self.shifted(logit)
    }
}

/// Writes `softmax(β z)` for the logit row `z` into `probabilities`.
///
/// The row maximum is subtracted first and the sums run in `f64`, so finite
/// logits of any size give finite probabilities that sum to 1 up to rounding.
///
/// # Panics
/// If `probabilities` and `logits` differ in length or `logits` is empty.
pub fn softmax_into(logits: &[f32], beta: f64, probabilities: &mut [f64]) -> RowSoftmax {
    assert_eq!(
        logits.len(),
        probabilities.len(),
        "one probability per logit"
    );
    let (prediction, &max) = logits
        .iter()
        .enumerate()
        .reduce(|best, candidate| {
            if candidate.1 > best.1 {
                candidate
            } else {
                best
            }
        })
        .expect("a logit row is never empty");
    let max_logit = f64::from(max);
    let mut sum = 0.0;
    for (p, &z) in probabilities.iter_mut().zip(logits) {
        *p = (beta * (f64::from(z) - max_logit)).exp();
        sum += *p;
    }
    // Division (not multiplication by 1/sum) keeps every probability <= 1.
    for p in probabilities.iter_mut() {
        *p /= sum;
    }
    RowSoftmax {
        prediction,
        max_logit,
        beta,
        log_normalizer: sum.ln(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_logits_stay_finite() {
        let mut p = [0.0; 3];
        let row = softmax_into(&[1e30, -1e30, 1e30], 1.0, &mut p);
        assert_eq!(p, [0.5, 0.0, 0.5]);
        assert_eq!(row.prediction, 0);
        assert_eq!(row.negative_log_probability(1e30), 2f64.ln());
        // The f32 logits are ±1.0000000150474662e30.
        let spread = 2.0 * f64::from(1e30f32);
        assert_eq!(row.negative_log_probability(-1e30), spread + 2f64.ln());
    }

    #[test]
    fn temperature_flattens() {
        let mut p = [0.0; 2];
        softmax_into(&[2.0, 0.0], 0.5, &mut p);
        let expected = 1.0 / (1.0 + (-1f64).exp());
        assert!((p[0] - expected).abs() < 1e-15);
    }
}
