//! Training losses: label-smoothed cross-entropy and the methods it is compared with.
//!
//! Every loss is a function of the logits `z` `[batch, K]` and the labels, averaged over
//! the batch; `p = softmax(z)`, `p_y` the true class's probability:
//!
//! - smoothed CE: cross-entropy against `q = (1−ε)·onehot(y) + ε·π` (convention
//!   `uniform`), or with `q_y = 1−ε` and the other classes `ε·π_k/(1−π_y)` (`others`);
//!   π is `1/K` or the training split's class frequencies;
//! - focal: `−(1−p_y)^γ·log p_y`, γ fixed or chosen per sample from the detached `p_y`
//!   (FLSD);
//! - confidence penalty: `−log p_y − β·H(p)`;
//! - Brier: `Σ_k (p_k − onehot(y)_k)²`;
//! - MMCE: `mean(−log p_y) + λ·sqrt(MMCE²_w + 10⁻¹⁰)` over the batch (see [`fused`]);
//! - MbLS: `−log p_y + α·mean_k ReLU(max_j z_j − z_k − m)`.
//!
//! On the CPU in f32 and f64 each loss is one fused op with its own backward pass
//! ([`fused`]); elsewhere (GPUs) it is composed from candle's ops ([`ops`]), which is
//! also the reference the tests hold the fused op to.

mod fused;
pub mod ops;

use crate::kernels::cpu;
use crate::spec::{LossSpec, MmceEstimator, SmoothingConvention, SmoothingPrior};
use candle_core::{bail, DType, Result, Tensor};

/// A loss ready to train with: its spec with everything it needs from the data (the
/// class prior) resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Loss {
    SmoothedCe {
        smoothing: f64,
        convention: SmoothingConvention,
        /// π; `None` is uniform.
        prior: Option<Vec<f64>>,
    },
    Focal(GammaSchedule),
    ConfidencePenalty {
        beta: f64,
    },
    Brier,
    Mmce {
        lambda: f64,
        estimator: MmceEstimator,
    },
    Mbls {
        margin: f64,
        alpha: f64,
    },
}

/// The focusing parameter γ as a function of `p_y`: the first step with `p_y < below`,
/// else `otherwise`. A fixed γ is a schedule without steps.
#[derive(Debug, Clone, PartialEq)]
pub struct GammaSchedule {
    pub steps: Vec<(f64, f64)>,
    pub otherwise: f64,
}

impl GammaSchedule {
    pub fn fixed(gamma: f64) -> Self {
        Self {
            steps: Vec::new(),
            otherwise: gamma,
        }
    }

    pub fn gamma(&self, p_y: f64) -> f64 {
        self.steps
            .iter()
            .find(|&&(below, _)| p_y < below)
            .map_or(self.otherwise, |&(_, gamma)| gamma)
    }
}

/// The partner of each sample in a mixup batch and the weight λ of the sample itself.
#[derive(Debug, Clone)]
pub struct Mix {
    /// `y[perm]`, U32 `[batch]`, on the batch's device.
    pub partner_labels: Tensor,
    pub lambda: f64,
}

impl Loss {
    /// Plain cross-entropy.
    pub fn cross_entropy() -> Self {
        Self::smoothed(0.0)
    }

    /// Label smoothing with ε/K to every class.
    pub fn smoothed(smoothing: f64) -> Self {
        Self::SmoothedCe {
            smoothing,
            convention: SmoothingConvention::Uniform,
            prior: None,
        }
    }

    /// The loss of `spec`; `class_counts` gives the training split's label counts and is
    /// called only for the class-frequency prior.
    pub fn new(spec: &LossSpec, class_counts: impl FnOnce() -> Result<Vec<usize>>) -> Result<Self> {
        Ok(match spec {
            LossSpec::SmoothedCe(s) => {
                let prior = match s.prior {
                    SmoothingPrior::Uniform => None,
                    SmoothingPrior::ClassFrequency => {
                        let counts = class_counts()?;
                        let total: usize = counts.iter().sum();
                        if total == 0 {
                            bail!("the class-frequency prior needs a non-empty training split");
                        }
                        let prior: Vec<f64> =
                            counts.iter().map(|&c| c as f64 / total as f64).collect();
                        if s.convention == SmoothingConvention::Others && prior.contains(&1.0) {
                            bail!(
                                "label smoothing onto the other classes by their frequency needs at least two classes in the training split; it has one"
                            );
                        }
                        Some(prior)
                    }
                };
                Self::SmoothedCe {
                    smoothing: s.smoothing,
                    convention: s.convention,
                    prior,
                }
            }
            LossSpec::Focal(f) => Self::Focal(GammaSchedule::fixed(f.gamma)),
            LossSpec::FocalAdaptive(f) => Self::Focal(GammaSchedule {
                steps: f.schedule.iter().map(|s| (s.below, s.gamma)).collect(),
                otherwise: f.gamma,
            }),
            LossSpec::ConfidencePenalty(c) => Self::ConfidencePenalty { beta: c.beta },
            LossSpec::Brier(_) => Self::Brier,
            LossSpec::Mmce(m) => Self::Mmce {
                lambda: m.lambda,
                estimator: m.estimator,
            },
            LossSpec::Mbls(m) => Self::Mbls {
                margin: m.margin,
                alpha: m.alpha,
            },
        })
    }

    /// The mean loss of `logits` `[batch, K]` (any float dtype) against `labels` (U32
    /// `[batch]`): the fused op on the CPU in f32/f64, candle's ops elsewhere.
    pub fn compute(&self, logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
        if cpu::applies(logits) && labels.device().is_cpu() && labels.dtype() == DType::U32 {
            fused::compute(self, logits, labels)
        } else {
            ops::compute(self, logits, labels)
        }
    }

    /// The loss of a mixup batch: `λ·L(z, y) + (1−λ)·L(z, y[perm])` (Zhang et al.'s
    /// reference code, for every loss; for the cross-entropies it equals the loss against
    /// the mixed target `λ·y + (1−λ)·y[perm]`).
    pub fn compute_mixed(&self, logits: &Tensor, labels: &Tensor, mix: &Mix) -> Result<Tensor> {
        let own = self.compute(logits, labels)?;
        let partner = self.compute(logits, &mix.partner_labels)?;
        (own * mix.lambda)? + (partner * (1.0 - mix.lambda))?
    }
}

/// Labels as indices below `classes`, or an error naming the first that is not.
pub(crate) fn label_indices(labels: &[u32], classes: usize) -> Result<Vec<usize>> {
    labels
        .iter()
        .map(|&y| match y as usize {
            y if y < classes => Ok(y),
            y => bail!("loss: label {y} out of range for {classes} classes"),
        })
        .collect()
}
