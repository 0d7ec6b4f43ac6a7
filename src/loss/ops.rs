//! Every [`Loss`] composed from candle's ops: what runs on GPUs, and the reference the
//! fused CPU op is tested against. Each is written the way its PyTorch implementation
//! is, over the soft target or `log_softmax`, not the way the fused op computes it.

use super::{GammaSchedule, Loss};
use crate::spec::{MmceEstimator, SmoothingConvention};
use candle_core::{DType, Result, Tensor, D};
use candle_nn::ops::{log_softmax, softmax};

/// `onehot(labels)` `[batch, classes]` in `dtype`, built on the labels' device.
fn one_hot(labels: &Tensor, classes: usize, dtype: DType) -> Result<Tensor> {
    let classes = Tensor::arange(0u32, classes as u32, labels.device())?.unsqueeze(0)?;
    labels.unsqueeze(1)?.broadcast_eq(&classes)?.to_dtype(dtype)
}

/// The mean loss of `logits` against `labels`.
pub fn compute(loss: &Loss, logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let (_, classes) = logits.dims2()?;
    let log_p = log_softmax(logits, D::Minus1)?;
    let onehot = one_hot(labels, classes, logits.dtype())?;
    let nll = || (&log_p * &onehot)?.sum(1)?.neg();
    match loss {
        Loss::SmoothedCe {
            smoothing,
            convention,
            prior,
        } => {
            let target = smoothed_target(*smoothing, *convention, prior.as_deref(), &onehot)?;
            (target * &log_p)?.sum(1)?.neg()?.mean_all()
        }
        Loss::Focal(schedule) => {
            let p = log_p.exp()?;
            // 1 − p_y as the mass of the other classes (exact where p_y rounds to 1),
            // kept off 0 so that the power's gradient is finite at every γ ≥ 0.
            let others = (p.clone() * (1.0 - &onehot)?)?
                .sum(1)?
                .maximum(f64::from(f32::MIN_POSITIVE))?;
            let p_y = (&p * &onehot)?.sum(1)?.detach();
            let weight = focal_weight(schedule, &others, &p_y)?;
            (weight * nll()?)?.mean_all()
        }
        Loss::ConfidencePenalty { beta } => {
            let entropy = (log_p.exp()? * &log_p)?.sum(1)?.neg()?;
            (nll()? - (entropy * *beta)?)?.mean_all()
        }
        Loss::Brier => (softmax(logits, D::Minus1)? - &onehot)?
            .sqr()?
            .sum(1)?
            .mean_all(),
        Loss::Mmce { lambda, estimator } => {
            let p = softmax(logits, D::Minus1)?;
            nll()?.mean_all()? + (mmce(&p, labels, *estimator)? * *lambda)?
        }
        Loss::Mbls { margin, alpha } => {
            let gap = logits.max_keepdim(1)?.broadcast_sub(logits)?;
            let hinge = (gap - *margin)?.relu()?.mean_all()?;
            nll()?.mean_all()? + (hinge * *alpha)?
        }
    }
}

/// The smoothed target distribution `[batch, classes]`.
fn smoothed_target(
    smoothing: f64,
    convention: SmoothingConvention,
    prior: Option<&[f64]>,
    onehot: &Tensor,
) -> Result<Tensor> {
    let (_, classes) = onehot.dims2()?;
    let prior = match prior {
        Some(p) => Tensor::new(p, onehot.device())?.to_dtype(onehot.dtype())?,
        None => (Tensor::ones(classes, onehot.dtype(), onehot.device())? / classes as f64)?,
    }
    .unsqueeze(0)?;
    match convention {
        // (1−ε)·onehot + ε·π
        SmoothingConvention::Uniform => {
            (onehot * (1.0 - smoothing))?.broadcast_add(&(prior * smoothing)?)
        }
        // (1−ε) on y, ε·π_k/(1 − π_y) elsewhere
        SmoothingConvention::Others => {
            let others = (1.0 - onehot)?.broadcast_mul(&prior)?;
            let mass = others.sum_keepdim(1)?;
            (onehot * (1.0 - smoothing))? + (others.broadcast_div(&mass)? * smoothing)?
        }
    }
}

/// `(1 − p_y)^γ(p_y)` per row, γ chosen by the detached `p_y`.
fn focal_weight(schedule: &GammaSchedule, others: &Tensor, p_y: &Tensor) -> Result<Tensor> {
    let mut weight = others.zeros_like()?;
    let mut lower = 0.0;
    let pieces = schedule
        .steps
        .iter()
        .copied()
        .chain([(f64::INFINITY, schedule.otherwise)]);
    for (below, gamma) in pieces {
        let in_piece = (p_y.ge(lower)? * p_y.lt(below)?)?.to_dtype(others.dtype())?;
        weight = (weight + (others.powf(gamma)? * in_piece)?)?;
        lower = below;
    }
    Ok(weight)
}

/// `sqrt(MMCE²_w + 10⁻¹⁰)` of the batch (0 unless it has both correct and incorrect
/// predictions), from the confidences `r = max p` and the detached correctness.
fn mmce(p: &Tensor, labels: &Tensor, estimator: MmceEstimator) -> Result<Tensor> {
    let r = p.max(1)?;
    let correct = p.argmax(1)?.eq(labels)?.to_dtype(p.dtype())?.detach();
    let wrong = (1.0 - &correct)?;
    let m = correct.sum_all()?;
    let n = wrong.sum_all()?;
    let both = (m.gt(0.0)? * n.gt(0.0)?)?.to_dtype(p.dtype())?;
    // w_i = (1−r_i)/m on the correct, −r_i/n on the others (m², n² for the
    // reference code's estimator).
    let norm = |count: Tensor| -> Result<Tensor> {
        let count = count.maximum(1.0)?;
        match estimator {
            MmceEstimator::Paper => Ok(count),
            MmceEstimator::ReferenceCode => count.sqr(),
        }
    };
    let w = ((&correct * (1.0 - &r)?)?.broadcast_div(&norm(m)?)?
        - (&wrong * &r)?.broadcast_div(&norm(n)?)?)?;
    let distance = r.unsqueeze(1)?.broadcast_sub(&r.unsqueeze(0)?)?.abs()?;
    let kernel = (distance / -0.4)?.exp()?;
    let squared = w
        .unsqueeze(0)?
        .matmul(&kernel.matmul(&w.unsqueeze(1)?)?)?
        .squeeze(1)?
        .squeeze(0)?;
    (squared + 1e-10)?.sqrt()? * both
}
