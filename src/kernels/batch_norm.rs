//! BatchNorm (+ ReLU) in training as one CPU op in NCHW order: the batch statistics,
//! the normalisation and its backward pass.

use super::cpu::{self, Float};
use super::Activation;
use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

/// `activation((x − mean)·inv_std·γ + β)` per channel of `x` `[n, c, h, w]`, with the
/// batch statistics given (from [`channel_statistics`]).
pub fn batch_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    mean: Vec<f64>,
    inv_std: Vec<f64>,
    activation: Activation,
) -> Result<Tensor> {
    x.apply_op3(
        gamma,
        beta,
        BatchNormOp {
            mean,
            inv_std,
            activation,
        },
    )
}

/// Per channel of `x` (`[n, channels, plane]`): the mean and the biased variance (two
/// passes, so no cancellation), summed per plane in `T` and across planes in f64.
pub fn channel_statistics<T: Float>(
    x: &[T],
    channels: usize,
    plane: usize,
) -> (Vec<f64>, Vec<f64>) {
    let count = (x.len() / channels) as f64;
    let sums = per_channel(x, channels, plane, |_, p| cpu::lane_sum(p, |v| v));
    let mean: Vec<f64> = sums.iter().map(|s| s / count).collect();
    let squares = per_channel(x, channels, plane, |c, p| {
        let m = <T as WithDType>::from_f64(mean[c]);
        cpu::lane_sum(p, |v| (v - m) * (v - m))
    });
    (mean, squares.iter().map(|s| s / count).collect())
}

/// `Σ f(channel, plane)` per channel over the planes of `[n, channels, plane]` data,
/// the planes in parallel.
fn per_channel<T: Float>(
    x: &[T],
    channels: usize,
    plane: usize,
    f: impl Fn(usize, &[T]) -> f64 + Sync,
) -> Vec<f64> {
    let partial: Vec<f64> = x
        .par_chunks(plane)
        .enumerate()
        .map(|(i, p)| f(i % channels, p))
        .collect();
    let mut sums = vec![0.0; channels];
    for (i, v) in partial.into_iter().enumerate() {
        sums[i % channels] += v;
    }
    sums
}

/// The fused op over `(x, γ, β)` with the batch statistics it normalises with.
struct BatchNormOp {
    mean: Vec<f64>,
    inv_std: Vec<f64>,
    activation: Activation,
}

impl BatchNormOp {
    /// `(dx, dγ, dβ)` for `x` of `[n, c, plane]`, from `grad`, the gradient at the op's
    /// output `y` (through the activation: off where a ReLU's `y` is 0).
    fn gradients<T: Float>(
        &self,
        x: &[T],
        y: &[T],
        grad: &[T],
        gamma: &[f64],
        plane: usize,
    ) -> Result<(Vec<T>, Vec<f64>, Vec<f64>)> {
        let c = gamma.len();
        let relu = self.activation == Activation::Relu;
        // The gradient at the normalised output.
        let at_norm = |grad: T, y: T| {
            if relu && y <= T::zero() {
                T::zero()
            } else {
                grad
            }
        };
        let centre = |ch: usize| <T as WithDType>::from_f64(self.mean[ch]);
        // Per channel: Σg (β's gradient) and Σg·x̂ (γ's), the planes in parallel.
        let partial: Vec<[f64; 2]> = grad
            .par_chunks(plane)
            .zip(y.par_chunks(plane))
            .zip(x.par_chunks(plane))
            .enumerate()
            .map(|(i, ((grad, y), x))| {
                let m = centre(i % c);
                let [sg, sgx] = cpu::lane_sums([grad, y, x], |[grad, y, x]| {
                    let g = at_norm(grad, y);
                    [g, g * (x - m)]
                });
                [sg, sgx * self.inv_std[i % c]]
            })
            .collect();
        let (mut grad_beta, mut grad_gamma) = (vec![0.0; c], vec![0.0; c]);
        for (i, [sg, sgx]) in partial.into_iter().enumerate() {
            grad_beta[i % c] += sg;
            grad_gamma[i % c] += sgx;
        }
        // dx = γ·inv_std·(g − Σg/N − x̂·Σg·x̂/N) = a·g + b·(x − μ) + d per channel, the
        // coefficients in f64, applied in T.
        let count = (x.len() / c) as f64;
        let grad_x = cpu::par_build(
            x.len(),
            plane,
            || (),
            |(), i, dx| {
                let ch = i % c;
                let inv_std = self.inv_std[ch];
                let a = gamma[ch] * inv_std;
                let b = -a * inv_std * grad_gamma[ch] / count;
                let d = -a * grad_beta[ch] / count;
                let [a, b, d] = [a, b, d].map(<T as WithDType>::from_f64);
                let m = centre(ch);
                let [x, grad, y] = [x, grad, y].map(|s| &s[i * plane..][..plane]);
                cpu::zip_map(dx, [x, grad, y], |_, [x, grad, y]| {
                    a * at_norm(grad, y) + b * (x - m) + d
                });
                Ok(())
            },
        )?;
        Ok((grad_x, grad_gamma, grad_beta))
    }

    fn forward<T: Float>(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        gamma: &CpuStorage,
        gamma_l: &Layout,
        beta: &CpuStorage,
        beta_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = "batch norm";
        let (_, c, h, w) = x_l.shape().dims4()?;
        let x = cpu::slice::<T>(x, x_l, name)?;
        let gamma = cpu::slice::<T>(gamma, gamma_l, name)?;
        let beta = cpu::slice::<T>(beta, beta_l, name)?;
        if gamma.len() != c || beta.len() != c || self.mean.len() != c {
            bail!(
                "batch norm: {c} channels but {} weights and {} biases",
                gamma.len(),
                beta.len()
            );
        }
        let relu = self.activation == Activation::Relu;
        let y = cpu::par_build(
            x.len(),
            h * w,
            || (),
            |(), plane, y| {
                let ch = plane % c;
                // y = x·scale + shift, folded in f64 and applied in T.
                let scale = WithDType::to_f64(gamma[ch]) * self.inv_std[ch];
                let shift = WithDType::to_f64(beta[ch]) - self.mean[ch] * scale;
                let (scale, shift) = (
                    <T as WithDType>::from_f64(scale),
                    <T as WithDType>::from_f64(shift),
                );
                let x = &x[plane * h * w..][..h * w];
                cpu::zip_map(y, [x], |_, [x]| {
                    let v = x * scale + shift;
                    if relu && v < T::zero() {
                        T::zero()
                    } else {
                        v
                    }
                });
                Ok(())
            },
        )?;
        Ok((T::to_cpu_storage_owned(y), x_l.shape().clone()))
    }

    fn backward<T: Float>(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let name = "batch norm";
        let (_, _, h, w) = x.dims4()?;
        let gamma = gamma.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        let (grad_x, grad_gamma, grad_beta) = cpu::with_slice(x, name, |x: &[T]| {
            cpu::with_slice(y, name, |y: &[T]| {
                cpu::with_slice(grad, name, |grad: &[T]| {
                    self.gradients(x, y, grad, &gamma, h * w)
                })
            })
        })????;
        let device = x.device();
        let c = gamma.len();
        let channel = |v: Vec<f64>| Tensor::from_vec(v, c, device)?.to_dtype(x.dtype());
        Ok((
            x.track_op()
                .then(|| Tensor::from_vec(grad_x, x.shape(), device))
                .transpose()?,
            Some(channel(grad_gamma)?),
            Some(channel(grad_beta)?),
        ))
    }
}

impl CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        "batch-norm"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        gamma: &CpuStorage,
        gamma_l: &Layout,
        beta: &CpuStorage,
        beta_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        cpu::with_float!(x.dtype(), "batch norm", T => self.forward::<T>(x, x_l, gamma, gamma_l, beta, beta_l))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        cpu::with_float!(x.dtype(), "batch norm", T => self.backward::<T>(x, gamma, y, grad))
    }
}
