//! Label-smoothed cross-entropy as one CPU op over `(logits, labels)`.

use super::cpu::{self, Float};
use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

/// The mean smoothed cross-entropy of `logits` `[n, k]` against `labels` (U32) `[n]`.
pub fn smoothed_ce(logits: &Tensor, labels: &Tensor, smoothing: f64) -> Result<Tensor> {
    logits.apply_op2(labels, SmoothedCe { smoothing })
}

/// The fused op over `(logits, labels)`.
struct SmoothedCe {
    smoothing: f64,
}

/// Checks `labels` against `classes` and returns them as indices.
fn label_indices(labels: &[u32], classes: usize) -> Result<Vec<usize>> {
    labels
        .iter()
        .map(|&y| match y as usize {
            y if y < classes => Ok(y),
            y => bail!("smoothed cross-entropy: label {y} out of range for {classes} classes"),
        })
        .collect()
}

impl SmoothedCe {
    /// Per row: the log-sum-exp of the logits.
    fn log_sum_exp<T: Float>(row: &[T]) -> T {
        let max = row
            .iter()
            .copied()
            .fold(T::neg_infinity(), num_traits::Float::max);
        max + row
            .iter()
            .map(|&z| (z - max).exp())
            .fold(T::zero(), |a, b| a + b)
            .ln()
    }

    fn forward<T: Float>(
        &self,
        logits: &CpuStorage,
        logits_l: &Layout,
        labels: &CpuStorage,
        labels_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = "smoothed cross-entropy";
        let (batch, classes) = logits_l.shape().dims2()?;
        if labels_l.shape().dims1()? != batch {
            bail!(
                "{name}: {batch} rows of logits but {:?} labels",
                labels_l.shape()
            );
        }
        let z = cpu::slice::<T>(logits, logits_l, name)?;
        let labels = label_indices(cpu::slice::<u32>(labels, labels_l, name)?, classes)?;
        let eps = self.smoothing;
        // Each row in T (the dtype's own arithmetic), the batch mean in f64.
        let total: f64 = z
            .chunks_exact(classes)
            .zip(&labels)
            .map(|(row, &y)| {
                let lse = Self::log_sum_exp(row);
                let nll = (lse - row[y]).to_f64();
                let mean = row.iter().fold(T::zero(), |a, &b| a + b)
                    / T::from(classes).expect("class count fits a float");
                let uniform = (lse - mean).to_f64();
                (1.0 - eps) * nll + eps * uniform
            })
            .sum();
        let loss = T::from(total / batch as f64).expect("a float fits");
        Ok((T::to_cpu_storage_owned(vec![loss]), Shape::from(())))
    }

    fn backward<T: Float>(
        &self,
        logits: &Tensor,
        labels: &Tensor,
        grad: &Tensor,
    ) -> Result<Tensor> {
        let name = "smoothed cross-entropy";
        let (batch, classes) = logits.dims2()?;
        let labels = label_indices(&labels.to_vec1::<u32>()?, classes)?;
        let scale = grad.to_dtype(DType::F64)?.to_scalar::<f64>()? / batch as f64;
        let (off, on) = (
            self.smoothing / classes as f64,
            1.0 - self.smoothing + self.smoothing / classes as f64,
        );
        let cast = |v: f64| T::from(v).expect("a float fits");
        let (scale, off, on) = (cast(scale), cast(off), cast(on));
        let g: Vec<T> = cpu::with_slice(logits, name, |z: &[T]| {
            let mut g = Vec::with_capacity(z.len());
            for (row, &y) in z.chunks_exact(classes).zip(&labels) {
                let lse = Self::log_sum_exp(row);
                g.extend(row.iter().enumerate().map(|(k, &z)| {
                    let target = if k == y { on } else { off };
                    ((z - lse).exp() - target) * scale
                }));
            }
            g
        })?;
        Tensor::from_vec(g, (batch, classes), logits.device())
    }
}

impl CustomOp2 for SmoothedCe {
    fn name(&self) -> &'static str {
        "smoothed-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        logits: &CpuStorage,
        logits_l: &Layout,
        labels: &CpuStorage,
        labels_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        cpu::with_float!(logits.dtype(), "smoothed cross-entropy", T => self.forward::<T>(logits, logits_l, labels, labels_l))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        labels: &Tensor,
        _loss: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad_logits = cpu::with_float!(logits.dtype(), "smoothed cross-entropy", T => self.backward::<T>(logits, labels, grad)?);
        Ok((Some(grad_logits), None))
    }
}
