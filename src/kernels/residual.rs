//! The residual block's sum and ReLU as one CPU op.

use super::cpu::{self, Float};
use super::Activation;
use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// `relu(a + b)`, the end of a residual block. On the CPU (f32, f64) one op: one pass
/// forward, and backward one pass for the ReLU mask whose result is both inputs'
/// gradient. As candle's `add` then `relu` it was two passes forward and about six
/// backward (relu's mask rebuilt from a comparison, a cast and a product, each input's
/// gradient a copy). Elsewhere those two ops. The gradient at exactly 0 is 0, as in
/// PyTorch.
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if cpu::applies(a) && a.dtype() == b.dtype() && a.device().same_device(b.device()) {
        a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)
    } else {
        (a + b)?.relu()
    }
}

struct AddRelu;

impl AddRelu {
    fn forward<T: Float>(
        (a, a_l): (&CpuStorage, &Layout),
        (b, b_l): (&CpuStorage, &Layout),
    ) -> Result<(CpuStorage, Shape)> {
        if a_l.shape() != b_l.shape() {
            bail!(
                "residual sum: shapes {:?} and {:?} differ",
                a_l.shape(),
                b_l.shape()
            );
        }
        let name = "residual sum";
        let (a, b) = (
            cpu::slice::<T>(a, a_l, name)?,
            cpu::slice::<T>(b, b_l, name)?,
        );
        let y = cpu::par_map(a.len(), [a, b], |[a, b]| {
            let sum = a + b;
            // NaN stays NaN (a diverged run shows as one), as in PyTorch.
            if sum < T::zero() {
                T::zero()
            } else {
                sum
            }
        })?;
        Ok((T::to_cpu_storage_owned(y), a_l.shape().clone()))
    }
}

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "add-relu"
    }

    fn cpu_fwd(
        &self,
        a: &CpuStorage,
        a_l: &Layout,
        b: &CpuStorage,
        b_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        cpu::with_float!(a.dtype(), "residual sum", T => Self::forward::<T>((a, a_l), (b, b_l)))
    }

    fn bwd(
        &self,
        _a: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = cpu::with_float!(y.dtype(), "residual sum", T => Activation::Relu.backward::<T>(y, grad)?);
        Ok((Some(g.clone()), Some(g)))
    }
}
