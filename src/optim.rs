//! Optimisers (SGD with momentum/Nesterov/weight decay, AdamW) and learning-rate schedules.
//!
//! candle-nn's `SGD` has neither momentum nor weight decay, and its `AdamW` keeps its
//! moments private; these are written out so that both follow PyTorch's update rules
//! exactly and their state can be inspected and saved.

use crate::kernels;
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
                OptimizerSpec::Sgd(s) if fused_applies(slot, &grad) => {
                    kernels::optim::sgd(s, self.lr, slot.var.as_tensor(), &mut slot.first, &grad)?
                }
                OptimizerSpec::Adamw(a) if fused_applies(slot, &grad) => {
                    let moments = [&mut slot.first, &mut slot.second];
                    let w = slot.var.as_tensor();
                    kernels::optim::adamw(a, self.lr, w, slot.steps, moments, &grad)?
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

/// Whether the in-place CPU update ([`kernels::optim`]) applies to `slot`.
fn fused_applies(slot: &Slot, grad: &Tensor) -> bool {
    kernels::optim::applies(slot.var.as_tensor(), grad, [&slot.first, &slot.second])
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
            assert!(fused_applies(&b, &g));
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
                |slot, g| kernels::optim::sgd(&s, 0.1, slot.var.as_tensor(), &mut slot.first, g),
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
                |slot, g| {
                    let w = slot.var.as_tensor();
                    let moments = [&mut slot.first, &mut slot.second];
                    kernels::optim::adamw(&a, 1e-3, w, slot.steps, moments, g)
                },
            );
        }
    }
}
