//! Training losses.

use crate::kernels::{self, cpu};
use crate::spec::LossSpec;
use candle_core::{DType, Result, Tensor, D};
use candle_nn::ops::log_softmax;

/// Mean label-smoothed cross-entropy over the batch:
/// `(1-ε)·(-log p_y) + ε·mean_k(-log p_k)`, i.e. cross-entropy against
/// `y' = (1-ε)·onehot(y) + ε/K` (the ε/K goes to every class, the true one included, as
/// in Szegedy et al. 2016 and PyTorch's `CrossEntropyLoss(label_smoothing=ε)`).
///
/// Stable for any finite logits (log-sum-exp around the row maximum), without a one-hot
/// matrix; its gradient with respect to the logits is `(softmax(z) − y') / batch`.
/// `logits` is `[batch, K]` (any float dtype), `labels` is u32 `[batch]`.
///
/// On the CPU in f32 and f64 it is one fused op, one pass over the logits each way
/// (candle's ops take about a dozen nodes forward and more backward); elsewhere it is
/// [`smoothed_cross_entropy_ops`].
pub fn smoothed_cross_entropy(logits: &Tensor, labels: &Tensor, smoothing: f64) -> Result<Tensor> {
    if cpu::applies(logits) && labels.device().is_cpu() && labels.dtype() == DType::U32 {
        kernels::smoothed_ce::smoothed_ce(logits, labels, smoothing)
    } else {
        smoothed_cross_entropy_ops(logits, labels, smoothing)
    }
}

/// [`smoothed_cross_entropy`] from candle's ops (`log_softmax`, `gather`, means): what
/// runs on GPUs, and the reference the fused CPU op is tested against.
pub fn smoothed_cross_entropy_ops(
    logits: &Tensor,
    labels: &Tensor,
    smoothing: f64,
) -> Result<Tensor> {
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
