//! 2-D convolution layers: [`Conv2d`] (the fused op of [`crate::kernels::conv`] on the
//! CPU, candle's `conv2d` elsewhere), max and global average pooling.

use crate::kernels::conv::ConvOp;
use crate::kernels::cpu;
use crate::kernels::im2col::Window;
use crate::kernels::Activation;
use candle_core::{Device, Module, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};

pub use crate::kernels::pool::max_pool2;

/// Which implementation a [`Conv2d`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvAlgorithm {
    /// The fused op (CPU only; see the module documentation).
    Fused,
    /// candle's own `conv2d` (CUDA, and the CPU baseline of the benchmark).
    Candle,
}

impl ConvAlgorithm {
    /// The faster kernel on `device`: the fused op on the CPU, candle's (cuDNN-style) CUDA
    /// kernels on a GPU, where the custom op has no implementation.
    pub fn for_device(device: &Device) -> Self {
        if device.is_cpu() {
            Self::Fused
        } else {
            Self::Candle
        }
    }
}

/// A square convolution with PyTorch's layout (`weight` is `[out, in, k, k]`) and
/// candle-nn's initialisation: Kaiming-normal weights (std √(2/fan_in)); an optional bias
/// drawn from U(±1/√fan_in) with fan_in = in·k·k, as in PyTorch. An activation can
/// follow (fused into the op on the CPU).
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    op: ConvOp,
    implementation: ConvAlgorithm,
}

/// Shape and options of a [`Conv2d`].
#[derive(Debug, Clone, Copy)]
pub struct ConvShape {
    pub inputs: usize,
    pub outputs: usize,
    pub size: usize,
    pub stride: usize,
    pub padding: usize,
    pub bias: bool,
    pub activation: Activation,
}

impl Conv2d {
    pub fn new(shape: ConvShape, implementation: ConvAlgorithm, vb: VarBuilder) -> Result<Self> {
        let ConvShape {
            inputs,
            outputs,
            size,
            stride,
            padding,
            bias,
            activation,
        } = shape;
        let weight = vb.get_with_hints(
            (outputs, inputs, size, size),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        let bias = if bias {
            let bound = 1.0 / ((inputs * size * size) as f64).sqrt();
            Some(vb.get_with_hints(
                outputs,
                "bias",
                Init::Uniform {
                    lo: -bound,
                    up: bound,
                },
            )?)
        } else {
            None
        };
        let window = Window {
            size,
            stride,
            padding,
        };
        Ok(Self {
            weight,
            bias,
            op: ConvOp { window, activation },
            implementation,
        })
    }

    fn forward_candle(&self, x: &Tensor) -> Result<Tensor> {
        let Window {
            stride, padding, ..
        } = self.op.window;
        let y = x.conv2d(&self.weight, padding, stride, 1, 1)?;
        let y = match &self.bias {
            Some(bias) => y.broadcast_add(&bias.reshape((1, (), 1, 1))?)?,
            None => y,
        };
        self.op.activation.apply(&y)
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let fused = self.implementation == ConvAlgorithm::Fused
            && cpu::applies(x)
            && [Some(&self.weight), self.bias.as_ref()]
                .into_iter()
                .flatten()
                .all(|t| t.dtype() == x.dtype());
        if !fused {
            return self.forward_candle(x);
        }
        let x = x.contiguous()?;
        match &self.bias {
            Some(bias) => x.apply_op3(&self.weight, bias, self.op),
            None => x.apply_op2(&self.weight, self.op),
        }
    }
}

/// Mean over the spatial dimensions: `[n, c, h, w]` → `[n, c]`.
pub fn global_average_pool(x: &Tensor) -> Result<Tensor> {
    x.mean(D::Minus1)?.mean(D::Minus1)
}
