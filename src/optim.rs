//! Optimisers (SGD with momentum/Nesterov/weight decay, AdamW) and learning-rate schedules.
//!
//! candle-nn's `SGD` has neither momentum nor weight decay, and its `AdamW` keeps its
//! moments private; these are written out so that both follow PyTorch's update rules
//! exactly and their state can be inspected and saved.

use crate::spec::{AdamwSpec, OptimizerSpec, ScheduleSpec, SgdSpec};
use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use std::collections::HashMap;
use std::f64::consts::PI;

/// A parameter with its per-parameter optimiser state. The state tensors are always
/// detached: an update must not keep the previous step's autograd graph alive.
struct Slot {
    name: String,
    var: Var,
    /// Updates applied to this parameter (AdamW's bias correction counts per parameter,
    /// as PyTorch does).
    steps: u64,
    /// SGD: momentum buffer. AdamW: first moment.
    first: Option<Tensor>,
    /// AdamW: second moment.
    second: Option<Tensor>,
}

pub struct Optimizer {
    spec: OptimizerSpec,
    slots: Vec<Slot>,
    lr: f64,
}

impl Optimizer {
    /// `vars` are sorted by name first, so the update order never depends on hash order.
    pub fn new(spec: &OptimizerSpec, mut vars: Vec<(String, Var)>) -> Self {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        Self {
            spec: spec.clone(),
            slots: vars
                .into_iter()
                .map(|(name, var)| Slot {
                    name,
                    var,
                    steps: 0,
                    first: None,
                    second: None,
                })
                .collect(),
            lr: spec.lr(),
        }
    }

    pub fn learning_rate(&self) -> f64 {
        self.lr
    }

    pub fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// Back-propagates `loss` and applies one update.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    /// Applies one update from `grads`; parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        for slot in &mut self.slots {
            let Some(grad) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            // A gradient can carry a graph of its own (candle returns some gradients
            // built from tracked tensors); the update must not extend it.
            let grad = grad.detach();
            slot.steps += 1;
            match &self.spec {
                OptimizerSpec::Sgd(s) if fused::applies(slot, &grad) => {
                    fused::sgd(s, self.lr, slot, &grad)?
                }
                OptimizerSpec::Adamw(a) if fused::applies(slot, &grad) => {
                    fused::adamw(a, self.lr, slot, &grad)?
                }
                OptimizerSpec::Sgd(s) => sgd_update(s, self.lr, slot, &grad)?,
                OptimizerSpec::Adamw(a) => adamw_update(a, self.lr, slot, &grad)?,
            }
        }
        Ok(())
    }

    /// The per-parameter state, named `<parameter>.momentum_buffer` (SGD) or
    /// `<parameter>.exp_avg` / `<parameter>.exp_avg_sq` (AdamW), as in PyTorch.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let (first, second) = self.state_suffixes();
        let mut state = Vec::new();
        for slot in &self.slots {
            let named = [(first, &slot.first), (second, &slot.second)];
            for (suffix, tensor) in named {
                if let Some(t) = tensor {
                    state.push((format!("{}.{suffix}", slot.name), t.clone()));
                }
            }
        }
        state
    }

    /// Updates applied so far, per parameter.
    pub fn steps(&self) -> Vec<(String, u64)> {
        self.slots
            .iter()
            .map(|s| (s.name.clone(), s.steps))
            .collect()
    }

    /// Restores what [`Optimizer::state`] and [`Optimizer::steps`] returned (a checkpoint).
    /// Every parameter must be accounted for; state tensors are copied, so the restored
    /// optimiser shares nothing with `state`.
    pub fn restore(
        &mut self,
        state: &HashMap<String, Tensor>,
        steps: &HashMap<String, u64>,
    ) -> Result<()> {
        let (first, second) = self.state_suffixes();
        for slot in &mut self.slots {
            let Some(&count) = steps.get(&slot.name) else {
                candle_core::bail!("no step count for parameter `{}`", slot.name);
            };
            let load = |suffix: &str| -> Result<Option<Tensor>> {
                if suffix.is_empty() {
                    return Ok(None);
                }
                state
                    .get(&format!("{}.{suffix}", slot.name))
                    .map(|t| {
                        if t.shape() != slot.var.shape() {
                            candle_core::bail!(
                                "optimiser state `{}.{suffix}` has shape {:?}, the parameter {:?}",
                                slot.name,
                                t.dims(),
                                slot.var.dims()
                            );
                        }
                        t.copy()
                    })
                    .transpose()
            };
            slot.first = load(first)?;
            slot.second = load(second)?;
            slot.steps = count;
        }
        Ok(())
    }

    fn state_suffixes(&self) -> (&'static str, &'static str) {
        match self.spec {
            OptimizerSpec::Sgd(_) => ("momentum_buffer", ""),
            OptimizerSpec::Adamw(_) => ("exp_avg", "exp_avg_sq"),
        }
    }
}

/// The tensor form of the updates: every device, every dtype. [`fused`] is the same
/// arithmetic for contiguous f32 tensors on the CPU.
fn sgd_update(s: &SgdSpec, lr: f64, slot: &mut Slot, grad: &Tensor) -> Result<()> {
    let w = &slot.var.as_detached_tensor();
    let mut g = grad.clone();
    if s.weight_decay != 0.0 && !s.decoupled_weight_decay {
        g = (g + (w * s.weight_decay)?)?;
    }
    if s.momentum != 0.0 {
        let buf = match slot.first.take() {
            None => g.clone(),
            Some(buf) => ((buf * s.momentum)? + &g)?,
        };
        g = if s.nesterov {
            (g + (&buf * s.momentum)?)?
        } else {
            buf.clone()
        };
        slot.first = Some(buf);
    }
    let mut updated = (w - (g * lr)?)?;
    if s.weight_decay != 0.0 && s.decoupled_weight_decay {
        updated = (updated - (w * (lr * s.weight_decay))?)?;
    }
    slot.var.set(&updated)
}

fn adamw_update(a: &AdamwSpec, lr: f64, slot: &mut Slot, grad: &Tensor) -> Result<()> {
    let w = &slot.var.as_detached_tensor();
    let steps = slot.steps as i32;
    let m = match slot.first.take() {
        None => (grad * (1.0 - a.beta1))?,
        Some(m) => ((m * a.beta1)? + (grad * (1.0 - a.beta1))?)?,
    };
    let v = match slot.second.take() {
        None => (grad.sqr()? * (1.0 - a.beta2))?,
        Some(v) => ((v * a.beta2)? + (grad.sqr()? * (1.0 - a.beta2))?)?,
    };
    let m_hat = (&m / (1.0 - a.beta1.powi(steps)))?;
    let v_hat = (&v / (1.0 - a.beta2.powi(steps)))?;
    let decayed = (w * (1.0 - lr * a.weight_decay))?;
    let update = (m_hat / (v_hat.sqrt()? + a.eps)?)?;
    slot.first = Some(m);
    slot.second = Some(v);
    slot.var.set(&(decayed - (update * lr)?)?)
}

/// The CPU updates as one pass over each buffer, written in place. The tensor form
/// costs a temporary tensor and a traversal per operation (five to a dozen per
/// parameter and step); these do the same f32 operations in the same order — candle's
/// `x * c` is `x * c + 0` — so both forms give the same bits (`tests/optim.rs`).
mod fused {
    use super::Slot;
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
    pub(super) fn applies(slot: &Slot, grad: &Tensor) -> bool {
        let plain =
            |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous();
        plain(slot.var.as_tensor())
            && plain(grad)
            && [&slot.first, &slot.second].into_iter().flatten().all(plain)
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

    /// An update of `dst` from two sources, element by element.
    struct Elementwise<F: Fn(f32, f32, f32) -> f32>(&'static str, F);

    impl<F: Fn(f32, f32, f32) -> f32> InplaceOp3 for Elementwise<F> {
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
            crate::kernels::cpu::zip_map(dst, [a, b], |d, [a, b]| (self.1)(d, a, b));
            Ok(())
        }
    }

    /// A zero state buffer shaped like the parameter, for the first update.
    fn state(slot: &mut Option<Tensor>, like: &Tensor) -> Result<(Tensor, bool)> {
        match slot.take() {
            Some(t) => Ok((t, false)),
            None => Ok((like.zeros_like()?, true)),
        }
    }

    /// `sgd_update` in place.
    pub(super) fn sgd(s: &SgdSpec, lr: f64, slot: &mut Slot, grad: &Tensor) -> Result<()> {
        let w = slot.var.as_tensor();
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
        let (buf, first) = state(&mut slot.first, w)?;
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
        slot.first = Some(buf);
        Ok(())
    }

    /// `adamw_update` in place.
    pub(super) fn adamw(a: &AdamwSpec, lr: f64, slot: &mut Slot, grad: &Tensor) -> Result<()> {
        let w = slot.var.as_tensor();
        let steps = slot.steps as i32;
        let (beta1, beta2) = (a.beta1, a.beta2);
        let (m, first) = state(&mut slot.first, w)?;
        let first_moment = move |m: f32, g: f32, _: f32| {
            if first {
                scale(g, 1.0 - beta1)
            } else {
                scale(m, beta1) + scale(g, 1.0 - beta1)
            }
        };
        m.inplace_op3(grad, grad, &Elementwise("adamw first moment", first_moment))?;
        let (v, first) = state(&mut slot.second, w)?;
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
        slot.first = Some(m);
        slot.second = Some(v);
        Ok(())
    }
}

/// The learning rate at fractional epoch `t` (0 at the start of training, `epochs` at
/// the end), for base rate `lr`.
///
/// Warm-up ramps linearly from 0 to `lr` over `[0, warmup_epochs)`; after it, constant
/// stays at `lr`, multistep multiplies by `gamma` once per milestone reached
/// (`t ≥ milestone`), and cosine decays as
/// `min_lr + (lr − min_lr)·(1 + cos(π·(t − w)/(epochs − w)))/2`.
pub fn learning_rate(schedule: &ScheduleSpec, lr: f64, epochs: usize, t: f64) -> f64 {
    let warmup = schedule.warmup_epochs();
    if t < warmup {
        return lr * t / warmup;
    }
    match schedule {
        ScheduleSpec::Constant(_) => lr,
        ScheduleSpec::Multistep(m) => {
            let reached = m.milestones.iter().filter(|&&e| t >= e as f64).count();
            lr * m.gamma.powi(reached as i32)
        }
        ScheduleSpec::Cosine(c) => {
            let span = epochs as f64 - warmup;
            let progress = if span > 0.0 {
                ((t - warmup) / span).clamp(0.0, 1.0)
            } else {
                1.0
            };
            c.min_lr + (lr - c.min_lr) * (1.0 + (PI * progress).cos()) / 2.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn slot(values: &[f32]) -> Slot {
        Slot {
            name: "w".into(),
            var: Var::new(values, &Device::Cpu).unwrap(),
            steps: 0,
            first: None,
            second: None,
        }
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        t.to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    }

    /// Five updates of the same parameter through the tensor form and the fused form;
    /// weights and state must agree to the bit after every step.
    fn same_bits(
        update: impl Fn(&mut Slot, &Tensor) -> Result<()>,
        fused: impl Fn(&mut Slot, &Tensor) -> Result<()>,
    ) {
        let w: Vec<f32> = (0..37)
            .map(|i| ((i * 7919) % 101) as f32 / 13.0 - 3.5)
            .collect();
        let (mut a, mut b) = (slot(&w), slot(&w));
        for step in 0..5 {
            let g: Vec<f32> = (0..37)
                .map(|i| (((i + step) * 104_729) % 97) as f32 / 31.0 - 1.5)
                .collect();
            let g = Tensor::new(g.as_slice(), &Device::Cpu).unwrap();
            a.steps += 1;
            b.steps += 1;
            assert!(fused::applies(&b, &g));
            update(&mut a, &g).unwrap();
            fused(&mut b, &g).unwrap();
            assert_eq!(
                bits(a.var.as_tensor()),
                bits(b.var.as_tensor()),
                "step {step}"
            );
            for (x, y) in [(&a.first, &b.first), (&a.second, &b.second)] {
                assert_eq!(
                    x.as_ref().map(bits),
                    y.as_ref().map(bits),
                    "state, step {step}"
                );
            }
        }
    }

    #[test]
    fn fused_sgd_is_the_tensor_update_to_the_bit() {
        for (momentum, nesterov, weight_decay, decoupled) in [
            (0.0, false, 0.0, false),
            (0.0, false, 5e-4, false),
            (0.0, false, 5e-4, true),
            (0.9, false, 0.0, false),
            (0.9, true, 0.0, false),
            (0.9, true, 5e-4, false),
            (0.9, false, 1e-2, true),
        ] {
            let s = SgdSpec {
                lr: 0.1,
                momentum,
                nesterov,
                weight_decay,
                decoupled_weight_decay: decoupled,
            };
            same_bits(
                |slot, g| sgd_update(&s, 0.1, slot, g),
                |slot, g| fused::sgd(&s, 0.1, slot, g),
            );
        }
    }

    #[test]
    fn fused_adamw_is_the_tensor_update_to_the_bit() {
        for weight_decay in [0.0, 0.01] {
            let a = AdamwSpec {
                weight_decay,
                ..AdamwSpec::default()
            };
            same_bits(
                |slot, g| adamw_update(&a, 1e-3, slot, g),
                |slot, g| fused::adamw(&a, 1e-3, slot, g),
            );
        }
    }
}
