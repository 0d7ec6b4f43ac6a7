//! The fused 2-D convolution (with its bias and activation) as matrix products on the CPU.
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
//!   accumulated per fixed group of images, the input gradient one product and a col2im;
//! - kernel offsets ([`ShiftedConv`]), for stride-1 layers with enough channels: k·k
//!   products over the padded image, with no unfolded copy (the weight gradient: k
//!   products over a channels-last copy of it).
//!
//! The images get no gradient (`smoothlab bench train` compares it with candle's).

use super::cpu::{self, Float, Mat, MatMut};
use super::im2col::{fold, unfold, unfold_patches, Window};
use super::offsets::ShiftedConv;
use super::Activation;
use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// The fused convolution over `(x, weight)` or `(x, weight, bias)`.
#[derive(Debug, Clone, Copy)]
pub struct ConvOp {
    pub window: Window,
    pub activation: Activation,
}

/// Images whose weight gradients one task sums before the tasks' sums are added. Fixed, so
/// the sum does not depend on the thread count; small enough that a batch of 128 keeps 16
/// threads busy, large enough that the tasks and the extra additions (one per weight per
/// group) cost little. LeNet-5 epochs on MNIST, alternated with the unordered sum
/// (13–17k samples/s on 2 cores), ran at 13–16k samples/s with groups of 4 and 13–17k
/// with groups of 8.
const IMAGES_PER_PARTIAL: usize = 8;

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
    /// Length of the per-thread scratch buffer the forward pass and the input gradient
    /// need.
    fn scratch_len(&self, d: &Dims) -> usize {
        match self {
            Self::Im2col => d.patch * d.pixels,
            Self::Shifted(conv) => conv.padded_len() + conv.wide_len(),
        }
    }

    /// Length of the per-thread scratch buffer the weight gradient needs.
    fn weight_grad_scratch_len(&self, d: &Dims) -> usize {
        match self {
            Self::Im2col => d.patch * d.pixels,
            Self::Shifted(conv) => conv.channels_last_len() + conv.wide_len(),
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
        if w_c != c || k1 != window.size || k2 != window.size {
            bail!("convolution: input {x:?} and weight {weight:?} do not fit");
        }
        if !window.fits(h, w) {
            bail!("a {0}×{0} window does not fit a {h}×{w} image", window.size);
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
        let y = cpu::par_build(
            d.batch * d.outputs * d.pixels,
            d.outputs * d.pixels,
            || vec![T::zero(); products.scratch_len(&d)],
            |scratch, image, y| -> Result<()> {
                let x = &x[image * image_len..][..image_len];
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
        // Fixed groups of images, each summed on one thread and the groups' sums added in
        // order: the same additions in the same order at any thread count (rayon's
        // `fold`/`reduce` would group by how the work was stolen).
        let partials = cpu::with_slice(x, name, |x: &[T]| {
            g.par_chunks(out_len * IMAGES_PER_PARTIAL)
                .zip(x.par_chunks(image_len * IMAGES_PER_PARTIAL))
                .map_init(
                    || vec![T::zero(); products.weight_grad_scratch_len(&d)],
                    |scratch, (g, x)| -> Result<_> {
                        let mut grad_w = vec![T::zero(); d.outputs * d.patch];
                        let mut grad_b = vec![T::zero(); d.outputs];
                        for (g, x) in g.chunks(out_len).zip(x.chunks(image_len)) {
                            self.add_weight_grad(&d, products, (g, x), scratch, &mut grad_w)?;
                            for (sum, row) in grad_b.iter_mut().zip(g.chunks(d.pixels)) {
                                *sum += T::from_f64(cpu::lane_sum(row, |v| v));
                            }
                        }
                        Ok((grad_w, grad_b))
                    },
                )
                .collect::<Result<Vec<_>>>()
        })??;
        let mut grad_w = vec![T::zero(); d.outputs * d.patch];
        let mut grad_b = vec![T::zero(); d.outputs];
        for (w, b) in partials {
            grad_w.iter_mut().zip(w).for_each(|(sum, v)| *sum += v);
            grad_b.iter_mut().zip(b).for_each(|(sum, v)| *sum += v);
        }
        if let Products::Shifted(conv) = products {
            let channels_last =
                std::mem::replace(&mut grad_w, vec![T::zero(); d.outputs * d.patch]);
            conv.weight_from_channels_last(&channels_last, &mut grad_w);
        }
        let grad_x = if x.track_op() {
            let grad_x = cpu::with_slice(w, name, |w: &[T]| {
                cpu::par_build(
                    d.batch * image_len,
                    image_len,
                    || vec![T::zero(); products.scratch_len(&d)],
                    |scratch, image, grad_x| -> Result<()> {
                        let g = &g[image * out_len..][..out_len];
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
                                let (padded_grad, wide_g) = scratch.split_at_mut(conv.padded_len());
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

    /// Adds one image's weight gradient (`g`, the gradient at its output, and `x`, the
    /// image) onto `grad_w`.
    fn add_weight_grad<T: Float>(
        &self,
        d: &Dims,
        products: Products,
        (g, x): (&[T], &[T]),
        scratch: &mut [T],
        grad_w: &mut [T],
    ) -> Result<()> {
        match products {
            Products::Im2col => {
                // gemm packs the patch operand of this product along patches. From the
                // column layout that is a gather, element by element, which costs more than
                // writing the patches directly once they are long; short ones (a first
                // layer's few channels) are cheaper gathered. The threshold is measured
                // (`bench models`).
                let patches = if d.patch >= LONG_PATCH {
                    unfold_patches(x, d.image, self.window, scratch);
                    Mat::row_major(&*scratch, d.pixels, d.patch)
                } else {
                    unfold(x, d.image, self.window, scratch);
                    Mat::row_major(&*scratch, d.patch, d.pixels).t()
                };
                cpu::matmul_on_this_thread(
                    Mat::row_major(g, d.outputs, d.pixels),
                    patches,
                    MatMut::row_major(grad_w, d.outputs, d.patch),
                    true,
                )
            }
            Products::Shifted(conv) => {
                let (padded, wide_g) = scratch.split_at_mut(conv.channels_last_len());
                conv.pad_channels_last(x, padded);
                conv.widen(g, wide_g);
                conv.add_weight_grad(wide_g, padded, grad_w)
            }
        }
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
