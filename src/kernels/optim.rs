//! In-place CPU updates for SGD and AdamW (their tensor form is in [`crate::optim`]).
//!
//! The CPU updates as one pass over each buffer, written in place. The tensor form
//! costs a temporary tensor and a traversal per operation (five to a dozen per
//! parameter and step); these do the same f32 operations in the same order — candle's
//! `x * c` is `x * c + 0` — so both forms give the same bits (`tests/suite/optim.rs`).

use crate::spec::{AdamwSpec, SgdSpec};
use candle_core::{bail, CpuStorage, DType, InplaceOp3, Layout, Result, Tensor};

/// candle's `x * c`, `x / c` and `x + c` for a scalar c: one affine map.
fn affine(x: f32, mul: f32, add: f32) -> f32 {
    x * mul + add
}

fn scale(x: f32, by: f64) -> f32 {
    affine(x, by as f32, 0.0)
}

/// Whether the parameter, its gradient and its state can be updated here.
pub fn applies(w: &Tensor, grad: &Tensor, state: [&Option<Tensor>; 2]) -> bool {
    let plain = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous();
    plain(w) && plain(grad) && state.into_iter().flatten().all(plain)
}

fn slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((start, end))) => Ok(&v[start..end]),
        _ => bail!("fused optimiser update: expected contiguous f32 storage"),
    }
}

fn slice_mut<'a>(storage: &'a mut CpuStorage, layout: &Layout) -> Result<&'a mut [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((start, end))) => Ok(&mut v[start..end]),
        _ => bail!("fused optimiser update: expected contiguous f32 storage"),
    }
}

/// An update of `dst` from two sources, element by element, in parallel chunks: one
/// thread took a tenth of a 2-core MLP epoch's profile (the passes are memory- and, for
/// AdamW's square root and division, compute-bound).
struct Elementwise<F: Fn(f32, f32, f32) -> f32 + Sync>(&'static str, F);

impl<F: Fn(f32, f32, f32) -> f32 + Sync> InplaceOp3 for Elementwise<F> {
    fn name(&self) -> &'static str {
        self.0
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        a: &CpuStorage,
        a_l: &Layout,
        b: &CpuStorage,
        b_l: &Layout,
    ) -> Result<()> {
        let (a, b) = (slice(a, a_l)?, slice(b, b_l)?);
        let dst = slice_mut(dst, dst_l)?;
        if a.len() != dst.len() || b.len() != dst.len() {
            bail!("{}: operands of different sizes", self.0);
        }
        crate::kernels::cpu::par_zip_map(dst, [a, b], |d, [a, b]| (self.1)(d, a, b));
        Ok(())
    }
}

/// A zero state buffer shaped like the parameter, for the first update.
fn state(stored: &mut Option<Tensor>, like: &Tensor) -> Result<(Tensor, bool)> {
    match stored.take() {
        Some(t) => Ok((t, false)),
        None => Ok((like.zeros_like()?, true)),
    }
}

/// `optim::sgd_update` in place: the parameter `w` and its momentum buffer.
pub fn sgd(
    s: &SgdSpec,
    lr: f64,
    w: &Tensor,
    buffer: &mut Option<Tensor>,
    grad: &Tensor,
) -> Result<()> {
    let coupled = s.weight_decay != 0.0 && !s.decoupled_weight_decay;
    let decoupled = s.weight_decay != 0.0 && s.decoupled_weight_decay;
    let (wd, mu) = (s.weight_decay, s.momentum);
    let decayed = move |g: f32, w: f32| if coupled { g + scale(w, wd) } else { g };
    if mu == 0.0 {
        let step = move |w: f32, g: f32, _: f32| {
            let updated = w - scale(decayed(g, w), lr);
            if decoupled {
                updated - scale(w, lr * wd)
            } else {
                updated
            }
        };
        return w.inplace_op3(grad, grad, &Elementwise("sgd step", step));
    }
    let (buf, first) = state(buffer, w)?;
    let momentum = move |b: f32, g: f32, w: f32| {
        let g = decayed(g, w);
        if first {
            g
        } else {
            scale(b, mu) + g
        }
    };
    buf.inplace_op3(grad, w, &Elementwise("sgd momentum", momentum))?;
    let nesterov = s.nesterov;
    let step = move |w: f32, g: f32, b: f32| {
        let direction = if nesterov {
            decayed(g, w) + scale(b, mu)
        } else {
            b
        };
        let updated = w - scale(direction, lr);
        if decoupled {
            updated - scale(w, lr * wd)
        } else {
            updated
        }
    };
    w.inplace_op3(grad, &buf, &Elementwise("sgd step", step))?;
    *buffer = Some(buf);
    Ok(())
}

/// `optim::adamw_update` in place: the parameter `w` after `steps` updates (this
/// one included) and its two moments.
pub fn adamw(
    a: &AdamwSpec,
    lr: f64,
    w: &Tensor,
    steps: u64,
    [first_moment_state, second_moment_state]: [&mut Option<Tensor>; 2],
    grad: &Tensor,
) -> Result<()> {
    let steps = steps as i32;
    let (beta1, beta2) = (a.beta1, a.beta2);
    let (m, first) = state(first_moment_state, w)?;
    let first_moment = move |m: f32, g: f32, _: f32| {
        if first {
            scale(g, 1.0 - beta1)
        } else {
            scale(m, beta1) + scale(g, 1.0 - beta1)
        }
    };
    m.inplace_op3(grad, grad, &Elementwise("adamw first moment", first_moment))?;
    let (v, first) = state(second_moment_state, w)?;
    let second_moment = move |v: f32, g: f32, _: f32| {
        if first {
            scale(g * g, 1.0 - beta2)
        } else {
            scale(v, beta2) + scale(g * g, 1.0 - beta2)
        }
    };
    v.inplace_op3(
        grad,
        grad,
        &Elementwise("adamw second moment", second_moment),
    )?;
    let (c1, c2) = (
        1.0 / (1.0 - beta1.powi(steps)),
        1.0 / (1.0 - beta2.powi(steps)),
    );
    let (decay, eps) = (1.0 - lr * a.weight_decay, a.eps as f32);
    let step = move |w: f32, m: f32, v: f32| {
        let update = scale(m, c1) / affine(scale(v, c2).sqrt(), 1.0, eps);
        scale(w, decay) - scale(update, lr)
    };
    w.inplace_op3(&m, &v, &Elementwise("adamw step", step))?;
    *first_moment_state = Some(m);
    *second_moment_state = Some(v);
    Ok(())
}
