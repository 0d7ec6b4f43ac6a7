//! A fully connected layer, optionally followed by a ReLU: the fused op of
//! [`crate::kernels::dense`] on the CPU, the composite of candle's ops elsewhere.

use crate::kernels::{self, cpu, Activation};
use candle_core::{Module, Result, Tensor};
use candle_nn::{linear, VarBuilder};

/// `activation(x · weightᵀ + bias)` for `x` of shape `[batch, inputs]`; `weight` is
/// `[outputs, inputs]` (PyTorch's layout). Initialisation is candle-nn's `linear`:
/// Kaiming-normal weights (std √(2/fan_in)) and U(±1/√fan_in) biases.
pub struct Dense {
    weight: Tensor,
    bias: Tensor,
    activation: Activation,
}

impl Dense {
    pub fn new(
        inputs: usize,
        outputs: usize,
        activation: Activation,
        vb: VarBuilder,
    ) -> Result<Self> {
        let layer = linear(inputs, outputs, vb)?;
        let bias = layer.bias().expect("candle-nn's linear has a bias").clone();
        Ok(Self::from_parts(layer.weight().clone(), bias, activation))
    }

    /// A layer over existing tensors: `weight` `[outputs, inputs]`, `bias` `[outputs]`.
    pub fn from_parts(weight: Tensor, bias: Tensor, activation: Activation) -> Self {
        Self {
            weight,
            bias,
            activation,
        }
    }

    fn forward_composite(&self, x: &Tensor) -> Result<Tensor> {
        self.activation
            .apply(&x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)?)
    }
}

impl Module for Dense {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let same_dtype = self.weight.dtype() == x.dtype() && self.bias.dtype() == x.dtype();
        if same_dtype && [x, &self.weight, &self.bias].into_iter().all(cpu::applies) {
            kernels::dense::dense(x, &self.weight, &self.bias, self.activation)
        } else {
            self.forward_composite(x)
        }
    }
}
