//! 2-D convolution as matrix products on the CPU.
//!
//! candle's CPU `conv2d` runs its forward pass as im2col + gemm, but its backward pass
//! computes the input gradient with a naive `conv_transpose2d` loop, and it computes that
//! gradient even for the input images, which nothing needs. Here a convolution (with its
//! bias and ReLU) is one custom op, parallel over the images of the batch, with one of
//! two formulations per layer ([`Products`]):
//!
//! - im2col: each image is unfolded into a per-thread buffer and multiplied by the
//!   weight, which writes its output straight in `[out, h, w]` order, the bias as the
//!   product's initial value. Backward, the weight gradient is one product per image
//!   accumulated per thread, the input gradient one product and a col2im;
//! - kernel offsets ([`ShiftedConv`]), for stride-1 layers with enough channels: k·k
//!   products over the padded image, with no unfolded copy.
//!
//! The images get no gradient (`smoothlab bench train` compares it with candle's).

use super::im2col::{fold, unfold, unfold_patches, Window};
use super::shifted::ShiftedConv;
use super::Activation;
use crate::cpu::{self, Float, Mat, MatMut};
use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, Device, Layout, Module, Result, Shape,
    Tensor, D,
};
use candle_nn::{Init, VarBuilder};
use rayon::prelude::*;

/// Which implementation a [`Conv2d`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvKernel {
    /// The fused op (CPU only; see the module documentation).
    Fused,
    /// candle's own `conv2d` (CUDA, and the CPU baseline of the benchmark).
    Candle,
}

impl ConvKernel {
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
    pub activation: Activation,
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
            activation,
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
        let window = Window {
            kernel,
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
        let fused = self.implementation == ConvKernel::Fused
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

/// The fused convolution over `(x, weight)` or `(x, weight, bias)`.
#[derive(Debug, Clone, Copy)]
struct ConvOp {
    window: Window,
    activation: Activation,
}

/// Patch length (`c·k·k`) from which the weight gradient unfolds images patch by patch.
const LONG_PATCH: usize = 64;

/// How the CPU op computes a convolution's matrix products.
#[derive(Debug, Clone, Copy)]
enum Products {
    /// One product per image, over its unfolded patches ([`unfold`]).
    Im2col,
    /// One product per kernel offset, over the padded image ([`ShiftedConv`]).
    Shifted(ShiftedConv),
}

impl Products {
    /// Length of the per-thread scratch buffer each pass needs.
    fn scratch_len(&self, d: &Dims) -> usize {
        match self {
            Self::Im2col => d.patch * d.pixels,
            Self::Shifted(conv) => conv.padded_len() + conv.wide_len(),
        }
    }
}

/// The sizes of one convolution.
#[derive(Debug, Clone, Copy)]
struct Dims {
    batch: usize,
    /// `[c, h, w]` of one input image.
    image: [usize; 3],
    outputs: usize,
    /// Output pixels per image.
    pixels: usize,
    /// `c·k·k`: the length of one patch.
    patch: usize,
}

impl Dims {
    fn new(x: &Shape, weight: &Shape, window: Window) -> Result<Self> {
        let (batch, c, h, w) = x.dims4()?;
        let (outputs, w_c, k1, k2) = weight.dims4()?;
        if w_c != c || k1 != window.kernel || k2 != window.kernel {
            bail!("convolution: input {x:?} and weight {weight:?} do not fit");
        }
        if !window.fits(h, w) {
            bail!(
                "a {0}×{0} window does not fit a {h}×{w} image",
                window.kernel
            );
        }
        Ok(Self {
            batch,
            image: [c, h, w],
            outputs,
            pixels: window.output(h) * window.output(w),
            patch: c * k1 * k2,
        })
    }

    /// The products that compute this convolution: by kernel offsets for stride 1 with
    /// products at least 16 deep (ResNet-20 from its first block on), im2col otherwise
    /// (LeNet-5's few channels, strided layers, the stem). Measured with `bench models`
    /// (ResNet-20 samples/s): 355 → 470 with the 32×32 and 16×16 layers on offsets; with
    /// the 8×8 layers too, 676–692 → 702–718 for their weight gradients and 676–710 →
    /// 691–724 for their forward pass and input gradient, although there the wide rows'
    /// extra columns are a quarter of the work.
    fn products(&self, window: Window) -> Products {
        let [c, ..] = self.image;
        match ShiftedConv::new(self.image, self.outputs, window) {
            Some(conv) if c >= 16 && self.outputs >= 16 => Products::Shifted(conv),
            _ => Products::Im2col,
        }
    }

    fn output_shape(&self, window: Window) -> Shape {
        let [_, h, w] = self.image;
        Shape::from((self.batch, self.outputs, window.output(h), window.output(w)))
    }
}

impl ConvOp {
    fn forward<T: Float>(
        &self,
        (x, x_l): (&CpuStorage, &Layout),
        (w, w_l): (&CpuStorage, &Layout),
        bias: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let name = "convolution";
        let d = Dims::new(x_l.shape(), w_l.shape(), self.window)?;
        let products = d.products(self.window);
        let x = cpu::slice::<T>(x, x_l, name)?;
        let w = cpu::slice::<T>(w, w_l, name)?;
        let bias = bias
            .map(|(b, b_l)| cpu::slice::<T>(b, b_l, name))
            .transpose()?;
        let image_len: usize = d.image.iter().product();
        let mut y = vec![T::zero(); d.batch * d.outputs * d.pixels];
        y.par_chunks_mut(d.outputs * d.pixels)
            .zip(x.par_chunks(image_len))
            .try_for_each_init(
                || vec![T::zero(); products.scratch_len(&d)],
                |scratch, (y, x)| -> Result<()> {
                    let bias_to_add = match products {
                        Products::Im2col => {
                            unfold(x, d.image, self.window, scratch);
                            // The bias is the product's initial value.
                            if let Some(bias) = bias {
                                for (plane, &b) in y.chunks_mut(d.pixels).zip(bias) {
                                    plane.fill(b);
                                }
                            }
                            cpu::matmul_on_this_thread(
                                Mat::row_major(w, d.outputs, d.patch),
                                Mat::row_major(scratch.as_slice(), d.patch, d.pixels),
                                MatMut::row_major(y, d.outputs, d.pixels),
                                bias.is_some(),
                            )?;
                            None
                        }
                        Products::Shifted(conv) => {
                            let (padded, wide) = scratch.split_at_mut(conv.padded_len());
                            conv.pad(x, padded);
                            conv.forward(w, padded, wide)?;
                            conv.narrow(wide, y);
                            bias
                        }
                    };
                    self.finish(y, bias_to_add, d.pixels);
                    Ok(())
                },
            )?;
        Ok((T::to_cpu_storage_owned(y), d.output_shape(self.window)))
    }

    /// Adds `bias` (one value per plane of `pixels`) to one image's output and applies the
    /// activation, in one pass.
    fn finish<T: Float>(&self, y: &mut [T], bias: Option<&[T]>, pixels: usize) {
        let relu = self.activation == Activation::Relu;
        if bias.is_none() && !relu {
            return;
        }
        for (c, plane) in y.chunks_mut(pixels).enumerate() {
            let b = bias.map_or_else(T::zero, |bias| bias[c]);
            cpu::zip_map(plane, [], |v, []| {
                let sum = v + b;
                // NaN stays NaN (a diverged run shows as one), as in PyTorch.
                if relu && sum < T::zero() {
                    T::zero()
                } else {
                    sum
                }
            });
        }
    }

    /// Gradients of `x` (when it needs one), the weight and the bias (when there is one).
    fn backward<T: Float>(
        &self,
        x: &Tensor,
        w: &Tensor,
        has_bias: bool,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Tensor, Option<Tensor>)> {
        let g = self.activation.backward::<T>(y, grad)?;
        cpu::with_slice(&g, "convolution", |g: &[T]| {
            self.backward_from(g, x, w, has_bias)
        })?
    }

    /// The gradients from `g`, the gradient at the convolution's output.
    fn backward_from<T: Float>(
        &self,
        g: &[T],
        x: &Tensor,
        w: &Tensor,
        has_bias: bool,
    ) -> Result<(Option<Tensor>, Tensor, Option<Tensor>)> {
        let name = "convolution";
        let d = Dims::new(x.shape(), w.shape(), self.window)?;
        let products = d.products(self.window);
        let out_len = d.outputs * d.pixels;
        let image_len: usize = d.image.iter().product();
        let (grad_w, grad_b) = cpu::with_slice(x, name, |x: &[T]| {
            g.par_chunks(out_len)
                .zip(x.par_chunks(image_len))
                .try_fold(
                    || {
                        let sums = (
                            vec![T::zero(); d.outputs * d.patch],
                            vec![T::zero(); d.outputs],
                        );
                        (sums, vec![T::zero(); products.scratch_len(&d)])
                    },
                    |((mut grad_w, mut grad_b), mut scratch), (g, x)| -> Result<_> {
                        match products {
                            Products::Im2col => {
                                // gemm packs the patch operand of this product along
                                // patches. From the column layout that is a gather, element
                                // by element, which costs more than writing the patches
                                // directly once they are long; short ones (a first layer's
                                // few channels) are cheaper gathered. The threshold is
                                // measured (`bench models`).
                                let patches = if d.patch >= LONG_PATCH {
                                    unfold_patches(x, d.image, self.window, &mut scratch);
                                    Mat::row_major(scratch.as_slice(), d.pixels, d.patch)
                                } else {
                                    unfold(x, d.image, self.window, &mut scratch);
                                    Mat::row_major(scratch.as_slice(), d.patch, d.pixels).t()
                                };
                                cpu::matmul_on_this_thread(
                                    Mat::row_major(g, d.outputs, d.pixels),
                                    patches,
                                    MatMut::row_major(&mut grad_w, d.outputs, d.patch),
                                    true,
                                )?;
                            }
                            Products::Shifted(conv) => {
                                let (padded, wide_g) = scratch.split_at_mut(conv.padded_len());
                                conv.pad(x, padded);
                                conv.widen(g, wide_g);
                                conv.add_weight_grad(wide_g, padded, &mut grad_w)?;
                            }
                        }
                        for (sum, row) in grad_b.iter_mut().zip(g.chunks(d.pixels)) {
                            *sum += T::from_f64(cpu::lane_sum(row, |v| v));
                        }
                        Ok(((grad_w, grad_b), scratch))
                    },
                )
                .map(|partial| partial.map(|(sums, _)| sums))
                .try_reduce(
                    || {
                        (
                            vec![T::zero(); d.outputs * d.patch],
                            vec![T::zero(); d.outputs],
                        )
                    },
                    |(mut w, mut b), (w2, b2)| {
                        w.iter_mut().zip(w2).for_each(|(a, b)| *a += b);
                        b.iter_mut().zip(b2).for_each(|(a, c)| *a += c);
                        Ok((w, b))
                    },
                )
        })??;
        let grad_x = if x.track_op() {
            let mut grad_x = vec![T::zero(); d.batch * image_len];
            cpu::with_slice(w, name, |w: &[T]| {
                grad_x
                    .par_chunks_mut(image_len)
                    .zip(g.par_chunks(out_len))
                    .try_for_each_init(
                        || vec![T::zero(); products.scratch_len(&d)],
                        |scratch, (grad_x, g)| -> Result<()> {
                            match products {
                                Products::Im2col => {
                                    cpu::matmul_on_this_thread(
                                        Mat::row_major(w, d.outputs, d.patch).t(),
                                        Mat::row_major(g, d.outputs, d.pixels),
                                        MatMut::row_major(scratch, d.patch, d.pixels),
                                        false,
                                    )?;
                                    fold(scratch, d.image, self.window, grad_x);
                                }
                                Products::Shifted(conv) => {
                                    let (padded_grad, wide_g) =
                                        scratch.split_at_mut(conv.padded_len());
                                    padded_grad.fill(T::zero());
                                    conv.widen(g, wide_g);
                                    conv.add_input_grad(w, wide_g, padded_grad)?;
                                    conv.unpad(padded_grad, grad_x);
                                }
                            }
                            Ok(())
                        },
                    )
            })??;
            Some(Tensor::from_vec(grad_x, x.shape(), x.device())?)
        } else {
            None
        };
        let grad_b = if has_bias {
            Some(Tensor::from_vec(grad_b, d.outputs, x.device())?)
        } else {
            None
        };
        Ok((
            grad_x,
            Tensor::from_vec(grad_w, w.shape(), x.device())?,
            grad_b,
        ))
    }

    fn dispatch_forward(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        bias: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        cpu::with_float!(x.0.dtype(), "convolution", T => self.forward::<T>(x, w, bias))
    }

    fn dispatch_backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        has_bias: bool,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Tensor, Option<Tensor>)> {
        cpu::with_float!(x.dtype(), "convolution", T => self.backward::<T>(x, w, has_bias, y, grad))
    }
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        "convolution"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        w: &CpuStorage,
        w_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.dispatch_forward((x, x_l), (w, w_l), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (grad_x, grad_w, _) = self.dispatch_backward(x, w, false, y, grad)?;
        Ok((grad_x, Some(grad_w)))
    }
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        "convolution"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        w: &CpuStorage,
        w_l: &Layout,
        b: &CpuStorage,
        b_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.dispatch_forward((x, x_l), (w, w_l), Some((b, b_l)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (grad_x, grad_w, grad_b) = self.dispatch_backward(x, w, true, y, grad)?;
        Ok((grad_x, Some(grad_w), grad_b))
    }
}

/// 2×2 max pooling with stride 2.
///
/// On the CPU (f32, f64) one op whose backward pass gives the window's gradient to its
/// first maximum in row-major order (PyTorch's convention). Elsewhere two max
/// reductions over a reshaped view, which give it to each of several exactly equal
/// maxima. Not candle's `max_pool2d`: its backward pass (candle-core 0.11.1) multiplies
/// the gradient by the share of maxima in the window instead of dividing by their
/// number, so a unique maximum receives a quarter of its gradient.
pub fn max_pool2(x: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    if h % 2 != 0 || w % 2 != 0 {
        bail!("2×2 max pooling needs even sizes, got {h}×{w}");
    }
    if cpu::applies(x) {
        x.contiguous()?.apply_op1(MaxPool2)
    } else {
        x.reshape((n, c, h / 2, 2, w / 2, 2))?.max(5)?.max(3)
    }
}

struct MaxPool2;

impl MaxPool2 {
    /// Calls `visit(window, first)` for every 2×2 window of a plane `[h, w]`, in output
    /// order, with the plane index of the window's first maximum (row-major).
    fn windows<T: Float>(plane: &[T], w: usize, mut visit: impl FnMut(usize, usize)) {
        for (oy, rows) in plane.chunks_exact(2 * w).enumerate() {
            let (top, bottom) = rows.split_at(w);
            for ox in 0..w / 2 {
                let candidates = [
                    (top[2 * ox], 2 * ox),
                    (top[2 * ox + 1], 2 * ox + 1),
                    (bottom[2 * ox], w + 2 * ox),
                    (bottom[2 * ox + 1], w + 2 * ox + 1),
                ];
                let (_, best) =
                    candidates[1..].iter().fold(
                        candidates[0],
                        |best, &c| if c.0 > best.0 { c } else { best },
                    );
                visit(oy * (w / 2) + ox, 2 * oy * w + best);
            }
        }
    }

    fn forward<T: Float>(x: &[T], layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = layout.shape().dims4()?;
        let mut y = vec![T::zero(); x.len() / 4];
        y.par_chunks_mut(h * w / 4)
            .zip(x.par_chunks(h * w))
            .for_each(|(y, x)| Self::windows(x, w, |out, best| y[out] = x[best]));
        Ok((
            T::to_cpu_storage_owned(y),
            Shape::from((n, c, h / 2, w / 2)),
        ))
    }

    fn backward<T: Float>(x: &Tensor, grad: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let name = "max pooling";
        let grad_x = cpu::with_slice(x, name, |x: &[T]| {
            cpu::with_slice(grad, name, |grad: &[T]| {
                let mut grad_x = vec![T::zero(); x.len()];
                grad_x
                    .par_chunks_mut(h * w)
                    .zip(x.par_chunks(h * w).zip(grad.par_chunks(h * w / 4)))
                    .for_each(|(grad_x, (x, grad))| {
                        Self::windows(x, w, |out, best| grad_x[best] = grad[out])
                    });
                grad_x
            })
        })??;
        Tensor::from_vec(grad_x, x.shape(), x.device())
    }
}

impl CustomOp1 for MaxPool2 {
    fn name(&self) -> &'static str {
        "max-pool-2x2"
    }

    fn cpu_fwd(&self, x: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        cpu::with_float!(x.dtype(), "max pooling", T => Self::forward(cpu::slice::<T>(x, layout, name)?, layout))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            cpu::with_float!(x.dtype(), "max pooling", T => Self::backward::<T>(x, grad)?),
        ))
    }
}

/// Mean over the spatial dimensions: `[n, c, h, w]` → `[n, c]`.
pub fn global_average_pool(x: &Tensor) -> Result<Tensor> {
    x.mean(D::Minus1)?.mean(D::Minus1)
}
