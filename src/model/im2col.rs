//! im2col ("unfold") and its adjoint col2im ("fold") as candle custom ops on the CPU.
//!
//! `Unfold` turns images `[n, c, h, w]` into the matrix of their k×k patches
//! `[n·out_h·out_w, c·k·k]` (rows in output-pixel order, columns in the weight's
//! `[c, k, k]` order), so a convolution is one matrix product. Its backward pass is
//! `Fold`, which adds each patch gradient back onto the pixels it came from. Both are one
//! pass over memory, parallel over images.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

/// Geometry of a square convolution window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Window {
    /// Output size along one dimension of input size `size`.
    pub fn output(&self, size: usize) -> usize {
        (size + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// The input index read by output index `o` at kernel offset `k`, if inside the image.
    fn source(&self, o: usize, k: usize, size: usize) -> Option<usize> {
        (o * self.stride + k)
            .checked_sub(self.padding)
            .filter(|&i| i < size)
    }
}

/// `[n, c, h, w]` → `[n·out_h·out_w, c·k·k]`.
pub struct Unfold(pub Window);

/// The adjoint of [`Unfold`] for images of `shape` `[n, c, h, w]`.
struct Fold {
    window: Window,
    shape: [usize; 4],
}

fn contiguous<'a, T>(data: &'a [T], layout: &Layout, op: &str) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op} needs a contiguous input"),
    }
}

fn unfold<T: WithDType>(x: &[T], [n, c, h, w]: [usize; 4], win: Window) -> Vec<T> {
    let (out_h, out_w, k) = (win.output(h), win.output(w), win.kernel);
    let row_len = c * k * k;
    let mut columns = vec![T::zero(); n * out_h * out_w * row_len];
    columns
        .par_chunks_mut(out_h * out_w * row_len)
        .zip(x.par_chunks(c * h * w))
        .for_each(|(image_columns, image)| {
            for oy in 0..out_h {
                for ox in 0..out_w {
                    let row = &mut image_columns[(oy * out_w + ox) * row_len..][..row_len];
                    for ci in 0..c {
                        let plane = &image[ci * h * w..][..h * w];
                        for ky in 0..k {
                            let Some(iy) = win.source(oy, ky, h) else {
                                continue;
                            };
                            for kx in 0..k {
                                if let Some(ix) = win.source(ox, kx, w) {
                                    row[(ci * k + ky) * k + kx] = plane[iy * w + ix];
                                }
                            }
                        }
                    }
                }
            }
        });
    columns
}

fn fold<T: WithDType>(columns: &[T], [n, c, h, w]: [usize; 4], win: Window) -> Vec<T> {
    let (out_h, out_w, k) = (win.output(h), win.output(w), win.kernel);
    let row_len = c * k * k;
    let mut x = vec![T::zero(); n * c * h * w];
    x.par_chunks_mut(c * h * w)
        .zip(columns.par_chunks(out_h * out_w * row_len))
        .for_each(|(image, image_columns)| {
            for oy in 0..out_h {
                for ox in 0..out_w {
                    let row = &image_columns[(oy * out_w + ox) * row_len..][..row_len];
                    for ci in 0..c {
                        let plane = &mut image[ci * h * w..][..h * w];
                        for ky in 0..k {
                            let Some(iy) = win.source(oy, ky, h) else {
                                continue;
                            };
                            for kx in 0..k {
                                if let Some(ix) = win.source(ox, kx, w) {
                                    plane[iy * w + ix] += row[(ci * k + ky) * k + kx];
                                }
                            }
                        }
                    }
                }
            }
        });
    x
}

impl CustomOp1 for Unfold {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = layout.shape().dims4()?;
        let win = self.0;
        if h + 2 * win.padding < win.kernel || w + 2 * win.padding < win.kernel {
            bail!("a {0}×{0} window does not fit a {h}×{w} image", win.kernel);
        }
        let dims = [n, c, h, w];
        let rows = n * win.output(h) * win.output(w);
        let shape = Shape::from((rows, c * win.kernel * win.kernel));
        let columns = match storage {
            CpuStorage::F32(x) => {
                CpuStorage::F32(unfold(contiguous(x, layout, "im2col")?, dims, win))
            }
            CpuStorage::F64(x) => {
                CpuStorage::F64(unfold(contiguous(x, layout, "im2col")?, dims, win))
            }
            other => bail!("im2col supports f32 and f64, got {:?}", other.dtype()),
        };
        Ok((columns, shape))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (n, c, h, w) = arg.dims4()?;
        let fold = Fold {
            window: self.0,
            shape: [n, c, h, w],
        };
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&fold)?))
    }
}

impl CustomOp1 for Fold {
    fn name(&self) -> &'static str {
        "col2im"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (win, dims) = (self.window, self.shape);
        let x = match storage {
            CpuStorage::F32(g) => {
                CpuStorage::F32(fold(contiguous(g, layout, "col2im")?, dims, win))
            }
            CpuStorage::F64(g) => {
                CpuStorage::F64(fold(contiguous(g, layout, "col2im")?, dims, win))
            }
            other => bail!("col2im supports f32 and f64, got {:?}", other.dtype()),
        };
        Ok((x, Shape::from(dims.to_vec())))
    }
}
