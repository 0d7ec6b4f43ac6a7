//! Training losses.

use crate::spec::LossSpec;
use candle_core::{Result, Tensor, D};
use candle_nn::ops::log_softmax;

/// Mean label-smoothed cross-entropy over the batch:
/// `(1-ε)·(-log p_y) + ε·mean_k(-log p_k)`, i.e. cross-entropy against
/// `y' = (1-ε)·onehot(y) + ε/K` (the ε/K goes to every class, the true one included, as
/// in Szegedy et al. 2016 and PyTorch's `CrossEntropyLoss(label_smoothing=ε)`).
///
/// Computed from `log_softmax` (stable for any finite logits) without a one-hot matrix;
/// its gradient with respect to the logits is `(softmax(z) − y') / batch`.
/// `logits` is `[batch, K]` (any float dtype), `labels` is u32 `[batch]`.
pub fn smoothed_cross_entropy(logits: &Tensor, labels: &Tensor, smoothing: f64) -> Result<Tensor> {
    let log_probs = log_softmax(logits, D::Minus1)?;
    let nll = log_probs
        .gather(&labels.unsqueeze(1)?, 1)?
        .neg()?
        .mean_all()?;
    if smoothing == 0.0 {
        return Ok(nll);
    }
    let uniform = log_probs.mean(D::Minus1)?.neg()?.mean_all()?;
    (nll * (1.0 - smoothing))? + (uniform * smoothing)?
}

/// The loss a run trains with.
pub fn compute(spec: &LossSpec, logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    match spec {
        LossSpec::SmoothedCe(s) => smoothed_cross_entropy(logits, labels, s.smoothing),
    }
}
