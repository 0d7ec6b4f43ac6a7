//! 2×2 max pooling as one CPU op, parallel over planes.

use super::cpu::{self, Float};
use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

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

    /// The maxima of one output row's windows, from their two input rows: the value
    /// [`Self::windows`] picks (the first of the window's candidates that no later one
    /// exceeds), as selects the compiler vectorises. The forward pass needs no index; a
    /// branch per comparison, mispredicted on a window's random maximum, made this
    /// pooling a quarter of a LeNet-5 evaluation.
    fn row_maxima<T: Float>(top: &[T], bottom: &[T], y: &mut [T]) {
        let larger = |best: T, c: T| if c > best { c } else { best };
        for ((y, top), bottom) in y
            .iter_mut()
            .zip(top.chunks_exact(2))
            .zip(bottom.chunks_exact(2))
        {
            *y = larger(larger(larger(top[0], top[1]), bottom[0]), bottom[1]);
        }
    }

    fn forward<T: Float>(x: &[T], layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = layout.shape().dims4()?;
        let y = cpu::par_build(
            x.len() / 4,
            h * w / 4,
            || (),
            |(), plane, y| {
                let x = &x[plane * h * w..][..h * w];
                for (rows, y) in x.chunks_exact(2 * w).zip(y.chunks_exact_mut(w / 2)) {
                    let (top, bottom) = rows.split_at(w);
                    Self::row_maxima(top, bottom, y);
                }
                Ok(())
            },
        )?;
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
                cpu::par_build(
                    x.len(),
                    h * w,
                    || (),
                    |(), plane, grad_x| {
                        let x = &x[plane * h * w..][..h * w];
                        let grad = &grad[plane * h * w / 4..][..h * w / 4];
                        Self::windows(x, w, |out, best| grad_x[best] = grad[out]);
                        Ok(())
                    },
                )
            })
        })???;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The forward pass's selects give, bit for bit, the value at the index the backward
    /// pass routes the gradient to: on ties, signed zeros and NaN too.
    #[test]
    fn the_forward_maxima_are_the_values_at_the_backward_passs_indices() {
        let (h, w) = (6, 8);
        let candidates = [
            1.0,
            2.0,
            2.0,
            0.0,
            -0.0,
            -1.0,
            f32::NAN,
            2.0,
            -0.0,
            0.0,
            1.0,
        ];
        let plane: Vec<f32> = (0..h * w)
            .map(|i| candidates[(i * 7 + i / 5) % candidates.len()])
            .collect();
        let mut by_index = vec![0.0f32; h * w / 4];
        MaxPool2::windows(&plane, w, |out, best| by_index[out] = plane[best]);
        let mut by_select = vec![0.0f32; h * w / 4];
        for (rows, y) in plane
            .chunks_exact(2 * w)
            .zip(by_select.chunks_exact_mut(w / 2))
        {
            let (top, bottom) = rows.split_at(w);
            MaxPool2::row_maxima(top, bottom, y);
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&by_select), bits(&by_index));
        assert!(by_index.iter().any(|v| v.is_nan()) && by_index.contains(&2.0));
    }
}
