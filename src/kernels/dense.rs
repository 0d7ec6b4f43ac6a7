//! A fully connected layer, optionally followed by a ReLU, as one fused CPU op.
//!
//! candle-nn's `Linear` followed by `relu` is four autograd nodes (transpose, matmul,
//! broadcast add, relu). Their backward passes add a transposed weight gradient into a
//! zero tensor element by element, rebuild the ReLU mask with two more ops, and compute
//! the input gradient of the first layer, which nothing needs. The fused op is one gemm
//! whose initial value is the bias (then the ReLU in place) forward, and backward one
//! pass for the mask and the bias gradient and one gemm per gradient that is needed,
//! each written in the parameter's own layout.
//!

use super::cpu::{self, Float, Mat, MatMut};
use super::Activation;
use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

/// `activation(x · weightᵀ + bias)` as one op; CPU tensors of one float dtype.
pub fn dense(x: &Tensor, weight: &Tensor, bias: &Tensor, activation: Activation) -> Result<Tensor> {
    x.apply_op3(weight, bias, DenseOp(activation))
}

/// The fused op over `(x, weight, bias)`.
struct DenseOp(Activation);

impl DenseOp {
    fn forward<T: Float>(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        w: &CpuStorage,
        w_l: &Layout,
        b: &CpuStorage,
        b_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = "dense";
        let (batch, inputs) = x_l.shape().dims2()?;
        let (outputs, w_inputs) = w_l.shape().dims2()?;
        if w_inputs != inputs || b_l.shape().dims1()? != outputs {
            bail!(
                "dense: input {:?}, weight {:?}, bias {:?} do not fit",
                x_l.shape(),
                w_l.shape(),
                b_l.shape()
            );
        }
        let (x, w, b) = (
            cpu::slice::<T>(x, x_l, name)?,
            cpu::slice::<T>(w, w_l, name)?,
            cpu::slice::<T>(b, b_l, name)?,
        );
        // The bias rows (the product's initial value) and the ReLU in parallel, as the
        // product is: evaluation runs batches of 2048 rows.
        let mut y = cpu::par_build(
            batch * outputs,
            outputs,
            || (),
            |(), _, row| {
                row.copy_from_slice(b);
                Ok(())
            },
        )?;
        cpu::matmul(
            Mat::row_major(x, batch, inputs),
            Mat::row_major(w, outputs, inputs).t(),
            MatMut::row_major(&mut y, batch, outputs),
            true,
        )?;
        if self.0 == Activation::Relu {
            // NaN stays NaN (a diverged run shows as one), as in PyTorch.
            cpu::par_zip_map(
                &mut y,
                [],
                |v, []| if v < T::zero() { T::zero() } else { v },
            );
        }
        Ok((T::to_cpu_storage_owned(y), Shape::from((batch, outputs))))
    }

    fn backward<T: Float>(
        &self,
        x: &Tensor,
        w: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let name = "dense";
        let (batch, inputs) = x.dims2()?;
        let (outputs, _) = w.dims2()?;
        let g = self.0.backward::<T>(y, grad)?;
        cpu::with_slice(&g, name, |g: &[T]| {
            Self::backward_from(g, x, w, (batch, inputs, outputs))
        })?
    }

    /// The gradients from `g`, the gradient at the affine map's output.
    fn backward_from<T: Float>(
        g: &[T],
        x: &Tensor,
        w: &Tensor,
        (batch, inputs, outputs): (usize, usize, usize),
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let name = "dense";
        let device = x.device();
        let mut grad_b = vec![T::zero(); outputs];
        for row in g.chunks_exact(outputs) {
            cpu::zip_map(&mut grad_b, [row], |sum, [v]| sum + v);
        }
        let g_mat = Mat::row_major(g, batch, outputs);
        let mut grad_w = cpu::par_zeros(outputs * inputs)?;
        cpu::with_slice(x, name, |x: &[T]| {
            cpu::matmul(
                g_mat.t(),
                Mat::row_major(x, batch, inputs),
                MatMut::row_major(&mut grad_w, outputs, inputs),
                false,
            )
        })??;
        // Data (no graph, not a variable) needs no gradient.
        let grad_x = if x.track_op() {
            let mut grad_x = cpu::par_zeros(batch * inputs)?;
            cpu::with_slice(w, name, |w: &[T]| {
                cpu::matmul(
                    g_mat,
                    Mat::row_major(w, outputs, inputs),
                    MatMut::row_major(&mut grad_x, batch, inputs),
                    false,
                )
            })??;
            Some(Tensor::from_vec(grad_x, (batch, inputs), device)?)
        } else {
            None
        };
        Ok((
            grad_x,
            Some(Tensor::from_vec(grad_w, (outputs, inputs), device)?),
            Some(Tensor::from_vec(grad_b, outputs, device)?),
        ))
    }
}

impl CustomOp3 for DenseOp {
    fn name(&self) -> &'static str {
        "dense"
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
        cpu::with_float!(x.dtype(), "dense", T => self.forward::<T>(x, x_l, w, w_l, b, b_l))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        cpu::with_float!(x.dtype(), "dense", T => self.backward::<T>(x, w, y, grad))
    }
}
