//! Every [`Loss`] as one CPU op over `(logits, labels)`: one pass over the logits
//! forward, one backward, each row in the dtype's own arithmetic and the batch mean in
//! f64. candle's ops take a dozen nodes or more for each loss, and as many backward.
//!
//! Per row, with `ℓ = logsumexp(z)`, `log p_k = z_k − ℓ` and `nll = ℓ − z_y`:
//!
//! - smoothed CE: `(1−ε)·nll + ε·(ℓ − Σ_k s_k z_k)` with `s` the smoothing distribution
//!   (`q = (1−ε)·onehot + ε·s`); gradient `p − q`;
//! - focal: `u^γ·nll` with `u = 1 − p_y` summed as `Σ_{k≠y} p_k` (exact where `p_y`
//!   rounds to 1); gradient `c·(p − onehot)` with `c = u^γ + γ·u^(γ−1)·p_y·nll`, γ held
//!   fixed at the value the detached `p_y` selects;
//! - confidence penalty: `nll − β·H`, `H = Σ_k p_k (ℓ − z_k)`; gradient
//!   `p − onehot + β·p_k·(log p_k + H)`;
//! - Brier: `Σ_k d_k²` with `d = p − onehot` (`d_y = −u`); gradient `2·p_k·(d_k − Σ_j p_j d_j)`;
//! - MbLS: `nll + (α/K)·Σ_k ReLU(z_max − z_k − m)`; the ReLU's gradient is `−α/K` at
//!   each active `k` and the sum of those with the opposite sign at the (first) argmax,
//!   as PyTorch's `max` routes it;
//! - MMCE couples the batch, see [`Mmce`].

use super::{label_indices, Loss};
use crate::kernels::cpu::{self, Float};
use crate::spec::{MmceEstimator, SmoothingConvention};
use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

const NAME: &str = "loss";

pub(super) fn compute(loss: &Loss, logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    logits.apply_op2(labels, Fused(loss.clone()))
}

struct Fused(Loss);

fn cast<T: Float>(v: f64) -> T {
    T::from(v).expect("an f64 fits a float type")
}

/// `(max, logsumexp)` of a row.
fn log_sum_exp<T: Float>(row: &[T]) -> (T, T) {
    let max = row
        .iter()
        .copied()
        .fold(T::neg_infinity(), num_traits::Float::max);
    let sum = row
        .iter()
        .map(|&z| (z - max).exp())
        .fold(T::zero(), |a, b| a + b);
    (max, max + sum.ln())
}

/// `Σ_{k≠y} p_k`, i.e. `1 − p_y` without the cancellation.
fn others_mass<T: Float>(row: &[T], y: usize, lse: T) -> T {
    row.iter()
        .enumerate()
        .filter(|&(k, _)| k != y)
        .map(|(_, &z)| (z - lse).exp())
        .fold(T::zero(), |a, b| a + b)
}

/// The focal weight `c` of the gradient `c·(p − onehot)`; 1 at γ = 0, so that focal
/// loss with γ = 0 is cross-entropy to the bit, and its limit 0 where `u` is 0.
fn focal_weight(u: f64, p_y: f64, nll: f64, gamma: f64) -> f64 {
    if gamma == 0.0 {
        1.0
    } else if u == 0.0 {
        0.0
    } else {
        u.powf(gamma) + gamma * u.powf(gamma - 1.0) * p_y * nll
    }
}

impl Loss {
    /// `Σ_k s_k z_k` for the smoothing distribution `s` of the row's label.
    fn smoothing_dot<T: Float>(
        convention: SmoothingConvention,
        prior: Option<&[f64]>,
        row: &[T],
        y: usize,
    ) -> f64 {
        let k = row.len();
        match (convention, prior) {
            (SmoothingConvention::Uniform, None) => {
                (row.iter().fold(T::zero(), |a, &b| a + b) / cast::<T>(k as f64)).to_f64()
            }
            (SmoothingConvention::Others, None) => {
                let sum = row.iter().fold(T::zero(), |a, &b| a + b);
                ((sum - row[y]) / cast::<T>((k - 1) as f64)).to_f64()
            }
            (convention, Some(prior)) => {
                let dot: f64 = row.iter().zip(prior).map(|(&z, &p)| z.to_f64() * p).sum();
                match convention {
                    SmoothingConvention::Uniform => dot,
                    SmoothingConvention::Others => {
                        (dot - prior[y] * row[y].to_f64()) / (1.0 - prior[y])
                    }
                }
            }
        }
    }

    /// The smoothed target `q_c` of class `c` for label `y` of `k` classes.
    fn smoothed_target(
        smoothing: f64,
        convention: SmoothingConvention,
        prior: Option<&[f64]>,
        c: usize,
        y: usize,
        k: usize,
    ) -> f64 {
        let mass = |c: usize| prior.map_or(smoothing / k as f64, |p| smoothing * p[c]);
        match convention {
            SmoothingConvention::Uniform if c == y => 1.0 - smoothing + mass(c),
            SmoothingConvention::Uniform => mass(c),
            SmoothingConvention::Others if c == y => 1.0 - smoothing,
            SmoothingConvention::Others => mass(c) / (1.0 - prior.map_or(1.0 / k as f64, |p| p[y])),
        }
    }

    /// One row's loss; MMCE's batch term is added by [`Mmce`].
    fn row_value<T: Float>(&self, row: &[T], y: usize) -> f64 {
        let (max, lse) = log_sum_exp(row);
        let nll = (lse - row[y]).to_f64();
        match self {
            Self::SmoothedCe {
                smoothing,
                convention,
                prior,
            } => {
                let dot = Self::smoothing_dot(*convention, prior.as_deref(), row, y);
                (1.0 - smoothing) * nll + smoothing * (lse.to_f64() - dot)
            }
            Self::Focal(schedule) => {
                let u = others_mass(row, y, lse).to_f64();
                let gamma = schedule.gamma((row[y] - lse).exp().to_f64());
                u.powf(gamma) * nll
            }
            Self::ConfidencePenalty { beta } => {
                let entropy: f64 = row
                    .iter()
                    .map(|&z| ((z - lse).exp() * (lse - z)).to_f64())
                    .sum();
                nll - beta * entropy
            }
            Self::Brier => {
                let u = others_mass(row, y, lse).to_f64();
                let others: f64 = row
                    .iter()
                    .enumerate()
                    .filter(|&(k, _)| k != y)
                    .map(|(_, &z)| (z - lse).exp().to_f64().powi(2))
                    .sum();
                u * u + others
            }
            Self::Mmce { .. } => nll,
            Self::Mbls { margin, alpha } => {
                let hinge: f64 = row
                    .iter()
                    .map(|&z| (max - z).to_f64() - margin)
                    .filter(|&d| d > 0.0)
                    .sum();
                nll + alpha * hinge / row.len() as f64
            }
        }
    }

    /// One row's gradient times `scale`, into `g`; MMCE's batch term is added by
    /// [`Mmce`].
    fn row_gradient<T: Float>(&self, row: &[T], y: usize, scale: T, g: &mut [T]) {
        let (max, lse) = log_sum_exp(row);
        let k = row.len();
        let p = |z: T| (z - lse).exp();
        match self {
            Self::SmoothedCe {
                smoothing,
                convention,
                prior,
            } => {
                let target = |c| {
                    cast::<T>(Self::smoothed_target(
                        *smoothing,
                        *convention,
                        prior.as_deref(),
                        c,
                        y,
                        k,
                    ))
                };
                match (convention, prior) {
                    // The common case without a per-class target computation.
                    (SmoothingConvention::Uniform, None) => {
                        let (off, on) = (target(usize::from(y == 0)), target(y));
                        for (c, (g, &z)) in g.iter_mut().zip(row).enumerate() {
                            let target = if c == y { on } else { off };
                            *g = (p(z) - target) * scale;
                        }
                    }
                    _ => {
                        for (c, (g, &z)) in g.iter_mut().zip(row).enumerate() {
                            *g = (p(z) - target(c)) * scale;
                        }
                    }
                }
            }
            Self::Focal(schedule) => {
                let p_y = p(row[y]);
                let u = others_mass(row, y, lse).to_f64();
                let nll = (lse - row[y]).to_f64();
                let gamma = schedule.gamma(p_y.to_f64());
                let weight = cast::<T>(focal_weight(u, p_y.to_f64(), nll, gamma));
                for (c, (g, &z)) in g.iter_mut().zip(row).enumerate() {
                    let onehot = if c == y { T::one() } else { T::zero() };
                    *g = (p(z) - onehot) * weight * scale;
                }
            }
            Self::ConfidencePenalty { beta } => {
                let entropy = row
                    .iter()
                    .map(|&z| p(z) * (lse - z))
                    .fold(T::zero(), |a, b| a + b);
                let beta = cast::<T>(*beta);
                for (c, (g, &z)) in g.iter_mut().zip(row).enumerate() {
                    let onehot = if c == y { T::one() } else { T::zero() };
                    let pc = p(z);
                    *g = (pc - onehot + beta * pc * (z - lse + entropy)) * scale;
                }
            }
            Self::Brier => {
                let u = others_mass(row, y, lse);
                let d = |c: usize, z: T| if c == y { -u } else { p(z) };
                let s = row
                    .iter()
                    .enumerate()
                    .map(|(c, &z)| p(z) * d(c, z))
                    .fold(T::zero(), |a, b| a + b);
                let two = cast::<T>(2.0);
                for (c, (g, &z)) in g.iter_mut().zip(row).enumerate() {
                    *g = two * p(z) * (d(c, z) - s) * scale;
                }
            }
            Self::Mmce { .. } => {
                for (c, (g, &z)) in g.iter_mut().zip(row).enumerate() {
                    let onehot = if c == y { T::one() } else { T::zero() };
                    *g = (p(z) - onehot) * scale;
                }
            }
            Self::Mbls { margin, alpha } => {
                let argmax = row.iter().position(|&z| z == max).unwrap_or(0);
                let step = cast::<T>(alpha / k as f64) * scale;
                let margin = cast::<T>(*margin);
                let mut active = T::zero();
                for (c, (g, &z)) in g.iter_mut().zip(row).enumerate() {
                    let onehot = if c == y { T::one() } else { T::zero() };
                    *g = (p(z) - onehot) * scale;
                    if max - z - margin > T::zero() {
                        *g -= step;
                        active += step;
                    }
                }
                g[argmax] += active;
            }
        }
    }
}

/// MMCE_w (Kumar et al. 2018, weighted; the form Mukhoti et al. 2020 train with). With
/// `r_i` the top-label confidence, `C` the `m` correctly classified samples and `W` the
/// `n` others, and `w_i = (1−r_i)/m` on `C`, `w_i = −r_i/n` on `W`:
///
/// `MMCE²_w = Σ_{i,j} w_i·w_j·k(r_i, r_j)`, `k(r, r′) = exp(−|r − r′|/0.4)`,
///
/// which expands to the paper's three sums over `C×C` (÷m²), `W×W` (÷n²) and `C×W`
/// (÷mn, twice). The term added to the mean cross-entropy is `λ·sqrt(MMCE²_w + 10⁻¹⁰)`
/// (the 10⁻¹⁰ keeps the gradient finite at 0, as in Mukhoti et al.'s code), and 0 when
/// `C` or `W` is empty. Correctness is not differentiated; `r_i` is, through
/// `∂r_i/∂z_ik = r_i·(onehot(argmax)_k − p_ik)`. Mukhoti et al.'s released code also
/// takes the mean of each product matrix before dividing by m², n² and mn, which scales
/// the three sums again by those counts: [`MmceEstimator::ReferenceCode`], the weights
/// divided by m² and n² (their extra 10⁻⁵ in each denominator, a relative 10⁻⁵ at
/// most, is left out).
///
/// Its cost is O(batch²) kernel evaluations per step, forward and backward.
struct Mmce {
    confidence: Vec<f64>,
    argmax: Vec<usize>,
    weight: Vec<f64>,
    /// `∂w_i/∂r_i`.
    weight_slope: Vec<f64>,
    /// `C` and `W` both non-empty.
    active: bool,
}

const MMCE_WIDTH: f64 = 0.4;
const MMCE_FLOOR: f64 = 1e-10;

impl Mmce {
    fn new<T: Float>(z: &[T], labels: &[usize], classes: usize, estimator: MmceEstimator) -> Self {
        let (confidence, argmax): (Vec<f64>, Vec<usize>) = z
            .chunks_exact(classes)
            .map(|row| {
                let (max, lse) = log_sum_exp(row);
                let argmax = row.iter().position(|&z| z == max).unwrap_or(0);
                ((max - lse).exp().to_f64(), argmax)
            })
            .unzip();
        let correct: Vec<bool> = argmax.iter().zip(labels).map(|(a, y)| a == y).collect();
        let m = correct.iter().filter(|&&c| c).count();
        let n = correct.len() - m;
        let power = match estimator {
            MmceEstimator::Paper => 1,
            MmceEstimator::ReferenceCode => 2,
        };
        let (m_norm, n_norm) = ((m as f64).powi(power), (n as f64).powi(power));
        let (weight, weight_slope) = correct
            .iter()
            .zip(&confidence)
            .map(|(&correct, &r)| {
                if correct {
                    ((1.0 - r) / m_norm, -1.0 / m_norm)
                } else {
                    (-r / n_norm, -1.0 / n_norm)
                }
            })
            .unzip();
        Self {
            confidence,
            argmax,
            weight,
            weight_slope,
            active: m > 0 && n > 0,
        }
    }

    fn kernel(a: f64, b: f64) -> f64 {
        (-(a - b).abs() / MMCE_WIDTH).exp()
    }

    /// `MMCE²_w`.
    fn squared(&self) -> f64 {
        let (r, w) = (&self.confidence, &self.weight);
        (0..r.len())
            .map(|i| {
                w[i] * (0..r.len())
                    .map(|j| w[j] * Self::kernel(r[i], r[j]))
                    .sum::<f64>()
            })
            .sum()
    }

    /// The term added to the loss.
    fn value(&self, lambda: f64) -> f64 {
        if self.active {
            lambda * (self.squared() + MMCE_FLOOR).sqrt()
        } else {
            0.0
        }
    }

    /// `∂term/∂r_i` for every sample.
    fn confidence_gradient(&self, lambda: f64) -> Vec<f64> {
        let (r, w, slope) = (&self.confidence, &self.weight, &self.weight_slope);
        if !self.active {
            return vec![0.0; r.len()];
        }
        let outer = lambda / (2.0 * (self.squared() + MMCE_FLOOR).sqrt());
        (0..r.len())
            .map(|i| {
                let (mut through_weight, mut through_kernel) = (0.0, 0.0);
                for j in 0..r.len() {
                    let k = Self::kernel(r[i], r[j]);
                    through_weight += w[j] * k;
                    // ∂k(r_i, r_j)/∂r_i; 0 at r_i = r_j, as the gradient of |·| at 0.
                    let sign = if r[i] > r[j] {
                        1.0
                    } else if r[i] < r[j] {
                        -1.0
                    } else {
                        0.0
                    };
                    through_kernel += w[j] * -sign / MMCE_WIDTH * k;
                }
                outer * 2.0 * (slope[i] * through_weight + w[i] * through_kernel)
            })
            .collect()
    }
}

impl Fused {
    fn forward<T: Float>(
        &self,
        logits: &CpuStorage,
        logits_l: &Layout,
        labels: &CpuStorage,
        labels_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (batch, classes) = logits_l.shape().dims2()?;
        if labels_l.shape().dims1()? != batch {
            bail!(
                "{NAME}: {batch} rows of logits but {:?} labels",
                labels_l.shape()
            );
        }
        let z = cpu::slice::<T>(logits, logits_l, NAME)?;
        let labels = label_indices(cpu::slice::<u32>(labels, labels_l, NAME)?, classes)?;
        let total: f64 = z
            .chunks_exact(classes)
            .zip(&labels)
            .map(|(row, &y)| self.0.row_value(row, y))
            .sum();
        let mut loss = total / batch as f64;
        if let Loss::Mmce { lambda, estimator } = self.0 {
            loss += Mmce::new(z, &labels, classes, estimator).value(lambda);
        }
        Ok((
            T::to_cpu_storage_owned(vec![cast::<T>(loss)]),
            Shape::from(()),
        ))
    }

    fn backward<T: Float>(
        &self,
        logits: &Tensor,
        labels: &Tensor,
        grad: &Tensor,
    ) -> Result<Tensor> {
        let (batch, classes) = logits.dims2()?;
        let labels = label_indices(&labels.to_vec1::<u32>()?, classes)?;
        let upstream = grad.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let scale = cast::<T>(upstream / batch as f64);
        let g: Vec<T> = cpu::with_slice(logits, NAME, |z: &[T]| {
            let mut g = vec![T::zero(); z.len()];
            for ((row, &y), g) in z
                .chunks_exact(classes)
                .zip(&labels)
                .zip(g.chunks_exact_mut(classes))
            {
                self.0.row_gradient(row, y, scale, g);
            }
            if let Loss::Mmce { lambda, estimator } = self.0 {
                let mmce = Mmce::new(z, &labels, classes, estimator);
                let by_confidence = mmce.confidence_gradient(lambda);
                for (i, (row, g)) in z
                    .chunks_exact(classes)
                    .zip(g.chunks_exact_mut(classes))
                    .enumerate()
                {
                    let (_, lse) = log_sum_exp(row);
                    let r = mmce.confidence[i];
                    let d = by_confidence[i] * upstream;
                    for (c, (g, &z)) in g.iter_mut().zip(row).enumerate() {
                        let onehot = if c == mmce.argmax[i] { 1.0 } else { 0.0 };
                        let p = (z - lse).exp().to_f64();
                        *g += cast::<T>(d * r * (onehot - p));
                    }
                }
            }
            g
        })?;
        Tensor::from_vec(g, (batch, classes), logits.device())
    }
}

impl CustomOp2 for Fused {
    fn name(&self) -> &'static str {
        "loss"
    }

    fn cpu_fwd(
        &self,
        logits: &CpuStorage,
        logits_l: &Layout,
        labels: &CpuStorage,
        labels_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        cpu::with_float!(logits.dtype(), NAME, T => self.forward::<T>(logits, logits_l, labels, labels_l))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        labels: &Tensor,
        _loss: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad_logits =
            cpu::with_float!(logits.dtype(), NAME, T => self.backward::<T>(logits, labels, grad)?);
        Ok((Some(grad_logits), None))
    }
}
