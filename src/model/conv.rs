//! 2-D convolution as im2col + one matrix product on the CPU.
//!
//! candle's CPU `conv2d` runs its forward pass as im2col + gemm, but its backward pass
//! computes the input gradient with a naive `conv_transpose2d` loop, and it computes that
//! gradient even for the input images, which nothing needs. Here the convolution is an
//! im2col custom op followed by a matmul, so the weight gradient is a matmul and the
//! input gradient a matmul plus col2im, and the images' im2col records no backward at
//! all (`smoothlab bench train` compares the two).

use super::im2col::{Unfold, Window};
use candle_core::{Device, Module, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};

/// Which implementation a [`Conv2d`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvKernel {
    /// im2col + matmul (CPU only; see the module documentation).
    Im2col,
    /// candle's own `conv2d` (CUDA, and the CPU baseline of the benchmark).
    Candle,
}

impl ConvKernel {
    /// The faster kernel on `device`: im2col on the CPU, candle's (cuDNN-style) CUDA
    /// kernels on a GPU, where the custom op has no implementation.
    pub fn for_device(device: &Device) -> Self {
        if device.is_cpu() {
            Self::Im2col
        } else {
            Self::Candle
        }
    }
}

/// A square convolution with PyTorch's layout (`weight` is `[out, in, k, k]`) and
/// candle-nn's initialisation: Kaiming-normal weights (std √(2/fan_in)); an optional bias
/// drawn from U(±1/√fan_in) with fan_in = in·k·k, as in PyTorch.
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    kernel: usize,
    stride: usize,
    padding: usize,
    implementation: ConvKernel,
}

/// Shape and options of a [`Conv2d`].
#[derive(Debug, Clone, Copy)]
pub struct ConvShape {
    pub inputs: usize,
    pub outputs: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub bias: bool,
}

impl Conv2d {
    pub fn new(shape: ConvShape, implementation: ConvKernel, vb: VarBuilder) -> Result<Self> {
        let ConvShape {
            inputs,
            outputs,
            kernel,
            stride,
            padding,
            bias,
        } = shape;
        let weight = vb.get_with_hints(
            (outputs, inputs, kernel, kernel),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        let bias = if bias {
            let bound = 1.0 / ((inputs * kernel * kernel) as f64).sqrt();
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
        Ok(Self {
            weight,
            bias,
            kernel,
            stride,
            padding,
            implementation,
        })
    }

    fn forward_im2col(&self, x: &Tensor) -> Result<Tensor> {
        let (n, _, h, w) = x.dims4()?;
        let window = Window {
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
        };
        let columns = x.contiguous()?.apply_op1(Unfold(window))?;
        let y = columns.matmul(&self.weight.flatten_from(1)?.t()?)?;
        let y = match &self.bias {
            Some(bias) => y.broadcast_add(bias)?,
            None => y,
        };
        y.reshape((n, window.output(h), window.output(w), ()))?
            .permute((0, 3, 1, 2))
    }

    fn forward_candle(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.conv2d(&self.weight, self.padding, self.stride, 1, 1)?;
        match &self.bias {
            Some(bias) => y.broadcast_add(&bias.reshape((1, (), 1, 1))?),
            None => Ok(y),
        }
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self.implementation {
            ConvKernel::Im2col => self.forward_im2col(x),
            ConvKernel::Candle => self.forward_candle(x),
        }
    }
}

/// 2×2 max pooling with stride 2, as two max reductions over a reshaped view.
///
/// Not candle's `max_pool2d`: its backward pass (candle-core 0.11.1) multiplies the
/// gradient by the share of maxima in the window instead of dividing by their number,
/// so a unique maximum receives a quarter of its gradient. A max reduction passes the
/// whole gradient to the maximum (to each of several exactly equal maxima).
pub fn max_pool2(x: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    if h % 2 != 0 || w % 2 != 0 {
        candle_core::bail!("2×2 max pooling needs even sizes, got {h}×{w}");
    }
    x.reshape((n, c, h / 2, 2, w / 2, 2))?.max(5)?.max(3)
}

/// Mean over the spatial dimensions: `[n, c, h, w]` → `[n, c]`.
pub fn global_average_pool(x: &Tensor) -> Result<Tensor> {
    x.mean(D::Minus1)?.mean(D::Minus1)
}
