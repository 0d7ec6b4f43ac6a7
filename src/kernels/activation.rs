//! The activation a fused op applies after its affine part.

use super::cpu::{self, Float};
use candle_core::{Result, Tensor};

/// What follows the affine map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Identity,
    /// `max(z, 0)`; its gradient at exactly 0 is 0, as in PyTorch.
    Relu,
}

impl Activation {
    /// The activation from candle's ops (the composite path on other devices and dtypes).
    pub fn apply(self, z: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Identity => Ok(z.clone()),
            Activation::Relu => z.relu(),
        }
    }

    /// The gradient at the activation's input, from the gradient at its output and the
    /// output `y` itself (a unit is on where `y > 0`). The incoming tensor itself for the
    /// identity, so nothing is copied.
    pub fn backward<T: Float>(self, y: &Tensor, grad: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Identity => grad.contiguous(),
            Activation::Relu => {
                let name = "ReLU";
                let g: Vec<T> = cpu::with_slice(grad, name, |grad: &[T]| {
                    cpu::with_slice(y, name, |y: &[T]| {
                        cpu::par_map(grad.len(), [grad, y], |[g, y]| {
                            if y > T::zero() {
                                g
                            } else {
                                T::zero()
                            }
                        })
                    })
                })???;
                Tensor::from_vec(g, grad.shape(), grad.device())
            }
        }
    }
}
