//! A stride-1 convolution of one image as k·k matrix products, one per kernel offset,
//! with no unfolded copy of the image.
//!
//! The image is copied into a zero-padded buffer `[c, h + 2p, w + 2p]`. An output
//! computed over *wide* rows of `w + 2p` columns (of which the last `k − 1` are not
//! outputs) reads, at kernel offset `(ky, kx)`, the padded buffer shifted by
//! `ky·(w + 2p) + kx`: a `[c, out_h·(w + 2p)]` matrix whose row stride is the padded
//! plane, which gemm takes as it is. So
//!
//! - forward: `wide_y = Σ W[:, :, ky, kx] · shifted(x)`;
//! - weight gradient: `dW[:, :, ky, kx] = wide_g · shifted(x)ᵀ`, with the wide gradient's
//!   extra columns zero, all `kx` of one `ky` in one product over a channels-last copy of
//!   the padded image ([`ShiftedConv::add_weight_grad`]);
//! - input gradient: `shifted(dx_padded) += W[:, :, ky, kx]ᵀ · wide_g`, then the padding
//!   dropped.
//!
//! im2col copies every pixel k·k times and gemm reads the copy back; this formulation
//! pays for the wide rows' extra columns instead (6 % at 32 pixels with a 3×3 window,
//! 25 % at 8) and for products only `c` deep, so it needs enough channels (see
//! [`super::conv`] for where it is used).

use super::im2col::Window;
use crate::kernels::cpu::{self, Float, Mat, MatMut};
use candle_core::Result;
use std::ops::Range;

/// The geometry of one stride-1 convolution by kernel offsets.
#[derive(Debug, Clone, Copy)]
pub struct ShiftedConv {
    channels: usize,
    outputs: usize,
    height: usize,
    width: usize,
    size: usize,
    padding: usize,
}

impl ShiftedConv {
    /// `None` unless the window's stride is 1.
    pub fn new([channels, height, width]: [usize; 3], outputs: usize, win: Window) -> Option<Self> {
        (win.stride == 1 && win.fits(height, width)).then_some(Self {
            channels,
            outputs,
            height,
            width,
            size: win.size,
            padding: win.padding,
        })
    }

    /// Columns of a padded row, and of a wide output row.
    fn padded_width(&self) -> usize {
        self.width + 2 * self.padding
    }

    /// Elements of one padded channel.
    fn padded_plane(&self) -> usize {
        (self.height + 2 * self.padding) * self.padded_width()
    }

    fn output_height(&self) -> usize {
        self.height + 2 * self.padding + 1 - self.size
    }

    fn output_width(&self) -> usize {
        self.padded_width() + 1 - self.size
    }

    /// Elements of one wide output channel.
    fn wide_plane(&self) -> usize {
        self.output_height() * self.padded_width()
    }

    /// Length of a padded image (or input gradient) buffer: the padded channels, plus
    /// the `k − 1` elements that the last channel's last shifted read runs past them
    /// (into the extra columns, which no output uses).
    pub fn padded_len(&self) -> usize {
        self.channels * self.padded_plane() + self.size - 1
    }

    /// Length of a wide output (or output gradient) buffer.
    pub fn wide_len(&self) -> usize {
        self.outputs * self.wide_plane()
    }

    /// Copies `image [c, h, w]` into the interior of `padded`, whose border the caller
    /// keeps at zero (nothing here writes it).
    pub fn pad<T: Copy>(&self, image: &[T], padded: &mut [T]) {
        for (dense, inside) in self.image_rows() {
            padded[inside].copy_from_slice(&image[dense]);
        }
    }

    /// The interior of `padded` into `image [c, h, w]`: the inverse of [`Self::pad`].
    pub fn unpad<T: Copy>(&self, padded: &[T], image: &mut [T]) {
        for (dense, inside) in self.image_rows() {
            image[dense].copy_from_slice(&padded[inside]);
        }
    }

    /// `output [outputs, out_h, out_w]` into the wide rows of `wide`, whose extra columns
    /// the caller keeps at zero (nothing here writes them).
    pub fn widen<T: Copy>(&self, output: &[T], wide: &mut [T]) {
        for (dense, inside) in self.output_rows() {
            wide[inside].copy_from_slice(&output[dense]);
        }
    }

    /// The output rows of `wide` into `output [outputs, out_h, out_w]`: the inverse of
    /// [`Self::widen`].
    pub fn narrow<T: Copy>(&self, wide: &[T], output: &mut [T]) {
        for (dense, inside) in self.output_rows() {
            output[dense].copy_from_slice(&wide[inside]);
        }
    }

    /// Each row of an image `[c, h, w]`: where it is in the image, and where in the
    /// padded buffer.
    fn image_rows(&self) -> impl Iterator<Item = (Range<usize>, Range<usize>)> {
        let (h, w, p, pw) = (self.height, self.width, self.padding, self.padded_width());
        let plane = self.padded_plane();
        (0..self.channels * h).map(move |row| {
            let (c, y) = (row / h, row % h);
            let inside = c * plane + (y + p) * pw + p;
            (row * w..(row + 1) * w, inside..inside + w)
        })
    }

    /// Each row of an output `[outputs, out_h, out_w]`: where it is in the output, and
    /// where in the wide rows.
    fn output_rows(&self) -> impl Iterator<Item = (Range<usize>, Range<usize>)> {
        let (ow, pw) = (self.output_width(), self.padded_width());
        (0..self.outputs * self.output_height())
            .map(move |row| (row * ow..(row + 1) * ow, row * pw..row * pw + ow))
    }

    /// Kernel offsets `(index into a k×k window, shift in the padded image)`.
    fn offsets(&self) -> impl Iterator<Item = (usize, usize)> {
        let (k, pw) = (self.size, self.padded_width());
        (0..k * k).map(move |i| (i, (i / k) * pw + i % k))
    }

    /// The padded image shifted by `shift`, as a `[c, out_h·padded_width]` matrix.
    fn shifted<'a, T>(&self, padded: &'a [T], shift: usize) -> Mat<'a, T> {
        Mat {
            data: &padded[shift..],
            rows: self.channels,
            cols: self.wide_plane(),
            row_stride: self.padded_plane(),
            col_stride: 1,
        }
    }

    /// `W[:, :, ky, kx]` (`[outputs, c]`) of a weight `[outputs, c, k, k]`.
    fn weight_at<'a, T>(&self, weight: &'a [T], index: usize) -> Mat<'a, T> {
        let kk = self.size * self.size;
        Mat {
            data: &weight[index..],
            rows: self.outputs,
            cols: self.channels,
            row_stride: self.channels * kk,
            col_stride: kk,
        }
    }

    /// `wide = Σ W[:, :, ky, kx] · shifted(padded)` (`wide` is overwritten).
    pub fn forward<T: Float>(&self, weight: &[T], padded: &[T], wide: &mut [T]) -> Result<()> {
        for (index, shift) in self.offsets() {
            let dst = MatMut::row_major(&mut *wide, self.outputs, self.wide_plane());
            cpu::matmul_on_this_thread(
                self.weight_at(weight, index),
                self.shifted(padded, shift),
                dst,
                index > 0,
            )?;
        }
        Ok(())
    }

    /// Length of a channels-last padded image `[h + 2p, w + 2p, c]`, plus the `(k − 1)·c`
    /// elements that the last shifted read runs past it (as in [`Self::padded_len`]).
    pub fn channels_last_len(&self) -> usize {
        self.padded_plane() * self.channels + (self.size - 1) * self.channels
    }

    /// Copies `image [c, h, w]` into the interior of the channels-last `padded`, whose
    /// border the caller keeps at zero.
    pub fn pad_channels_last<T: Copy>(&self, image: &[T], padded: &mut [T]) {
        let (c, h, w, p, pw) = (
            self.channels,
            self.height,
            self.width,
            self.padding,
            self.padded_width(),
        );
        for y in 0..h {
            let row = &mut padded[((y + p) * pw + p) * c..][..w * c];
            for (ch, plane) in image.chunks_exact(h * w).enumerate() {
                for (pixel, &v) in row.chunks_exact_mut(c).zip(&plane[y * w..][..w]) {
                    pixel[ch] = v;
                }
            }
        }
    }

    /// `grad_w [outputs, k, k, c] += wide_g · shifted(padded)ᵀ`, from a channels-last
    /// padded image ([`Self::pad_channels_last`]); [`Self::weight_from_channels_last`]
    /// turns the sum into the weight's layout.
    ///
    /// Channels last, the shifted reads of one kernel row `ky` over all `kx` and channels
    /// are one matrix (row `kx·c + ch` starts at `(ky·(w + 2p) + kx)·c + ch`, each pixel
    /// `c` further on), so this is `k` products `k·c` wide instead of `k·k` products `c`
    /// wide. At ResNet-20's 16, 32 and 64 channels (32×32, 16×16, 8×8 images, 3×3 window),
    /// one thread, operands in cache, gemm ran the `c`-wide products at 156, 139 and 121
    /// GFLOP/s and the `3c`-wide ones at 244, 219 and 185; a ResNet-20 epoch (`bench epoch
    /// --model resnet20 --samples 4000`, alternated) went from 728–746 to 792–811
    /// samples/s.
    pub fn add_weight_grad<T: Float>(
        &self,
        wide_g: &[T],
        padded: &[T],
        grad_w: &mut [T],
    ) -> Result<()> {
        let (c, k, pw) = (self.channels, self.size, self.padded_width());
        let g = Mat::row_major(wide_g, self.outputs, self.wide_plane());
        for ky in 0..k {
            let shifted = Mat {
                data: &padded[ky * pw * c..],
                rows: self.wide_plane(),
                cols: k * c,
                row_stride: c,
                col_stride: 1,
            };
            let dst = MatMut {
                data: &mut grad_w[ky * k * c..],
                rows: self.outputs,
                cols: k * c,
                row_stride: k * k * c,
                col_stride: 1,
            };
            cpu::matmul_on_this_thread(g, shifted, dst, true)?;
        }
        Ok(())
    }

    /// A weight (gradient) `[outputs, k, k, c]` in the weight's layout `[outputs, c, k, k]`.
    pub fn weight_from_channels_last<T: Copy>(&self, grad: &[T], weight: &mut [T]) {
        let (c, kk) = (self.channels, self.size * self.size);
        for (from, to) in grad
            .chunks_exact(kk * c)
            .zip(weight.chunks_exact_mut(c * kk))
        {
            for (offset, pixel) in from.chunks_exact(c).enumerate() {
                for (ch, &v) in pixel.iter().enumerate() {
                    to[ch * kk + offset] = v;
                }
            }
        }
    }

    /// `shifted(padded_grad) += W[:, :, ky, kx]ᵀ · wide_g` per offset: the gradient of the
    /// padded image (the caller zeroes `padded_grad` first and [`Self::unpad`]s it).
    pub fn add_input_grad<T: Float>(
        &self,
        weight: &[T],
        wide_g: &[T],
        padded_grad: &mut [T],
    ) -> Result<()> {
        let g = Mat::row_major(wide_g, self.outputs, self.wide_plane());
        for (index, shift) in self.offsets() {
            let dst = MatMut {
                data: &mut padded_grad[shift..],
                rows: self.channels,
                cols: self.wide_plane(),
                row_stride: self.padded_plane(),
                col_stride: 1,
            };
            cpu::matmul_on_this_thread(self.weight_at(weight, index).t(), g, dst, true)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::im2col::{fold, unfold};
    use super::*;

    fn wave(n: usize, step: f64) -> Vec<f64> {
        (0..n).map(|i| (i as f64 * step).sin()).collect()
    }

    /// The `rows × cols` product of `a` (`rows × depth`) and `b` (`depth × cols`), given
    /// entry by entry, row-major.
    fn product(
        [rows, depth, cols]: [usize; 3],
        a: impl Fn(usize, usize) -> f64,
        b: impl Fn(usize, usize) -> f64,
    ) -> Vec<f64> {
        (0..rows * cols)
            .map(|e| (0..depth).map(|l| a(e / cols, l) * b(l, e % cols)).sum())
            .collect()
    }

    fn close(a: &[f64], b: &[f64], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() < 1e-12, "{what}[{i}]: {x} vs {y}");
        }
    }

    /// The three passes against im2col's (`columns = unfold(x)`: `y = W · columns`,
    /// `dW = g · columnsᵀ`, `dx = fold(Wᵀ · g)`), computed entry by entry.
    #[test]
    fn the_offset_products_equal_im2cols() {
        for (k, padding, h, w, c, outputs) in [
            (3, 1, 5, 6, 2, 3),
            (3, 0, 6, 5, 3, 2),
            (5, 2, 7, 7, 2, 4),
            (5, 0, 9, 6, 1, 2),
            (1, 0, 4, 3, 3, 3),
            (3, 2, 4, 4, 2, 2),
            (1, 2, 4, 5, 2, 3),
            (3, 4, 5, 3, 2, 2),
        ] {
            let what = format!("k{k} p{padding} {h}x{w} c{c} o{outputs}");
            let win = Window {
                size: k,
                stride: 1,
                padding,
            };
            let conv = ShiftedConv::new([c, h, w], outputs, win).unwrap();
            let (oh, ow) = (win.output(h), win.output(w));
            let (patch, pixels) = (c * k * k, oh * ow);
            let x = wave(c * h * w, 0.37);
            let weight = wave(outputs * patch, 0.11);
            let g = wave(outputs * pixels, 0.7);
            let mut columns = vec![0.0; patch * pixels];
            unfold(&x, [c, h, w], win, &mut columns);

            let mut padded = vec![0.0; conv.padded_len()];
            conv.pad(&x, &mut padded);
            let mut wide = vec![f64::NAN; conv.wide_len()];
            conv.forward(&weight, &padded, &mut wide).unwrap();
            let mut y = vec![f64::NAN; outputs * pixels];
            conv.narrow(&wide, &mut y);
            let expected = product(
                [outputs, patch, pixels],
                |i, l| weight[i * patch + l],
                |l, j| columns[l * pixels + j],
            );
            close(&y, &expected, &format!("{what}: forward"));

            let mut wide_g = vec![0.0; conv.wide_len()];
            conv.widen(&g, &mut wide_g);
            let mut channels_last = vec![0.0; conv.channels_last_len()];
            conv.pad_channels_last(&x, &mut channels_last);
            let mut sum = vec![1.0; outputs * patch];
            conv.add_weight_grad(&wide_g, &channels_last, &mut sum)
                .unwrap();
            let mut grad_w = vec![f64::NAN; outputs * patch];
            conv.weight_from_channels_last(&sum, &mut grad_w);
            let expected: Vec<f64> = product(
                [outputs, pixels, patch],
                |i, l| g[i * pixels + l],
                |l, j| columns[j * pixels + l],
            )
            .iter()
            .map(|v| 1.0 + v)
            .collect();
            close(&grad_w, &expected, &format!("{what}: weight gradient"));

            let mut padded_grad = vec![0.0; conv.padded_len()];
            conv.add_input_grad(&weight, &wide_g, &mut padded_grad)
                .unwrap();
            let mut grad_x = vec![f64::NAN; x.len()];
            conv.unpad(&padded_grad, &mut grad_x);
            let grad_columns = product(
                [patch, outputs, pixels],
                |i, l| weight[l * patch + i],
                |l, j| g[l * pixels + j],
            );
            let mut expected = vec![0.0; x.len()];
            fold(&grad_columns, [c, h, w], win, &mut expected);
            close(&grad_x, &expected, &format!("{what}: input gradient"));
        }
    }

    #[test]
    fn only_stride_one_windows_are_taken() {
        let win = |stride| Window {
            size: 3,
            stride,
            padding: 1,
        };
        assert!(ShiftedConv::new([2, 8, 8], 2, win(1)).is_some());
        assert!(ShiftedConv::new([2, 8, 8], 2, win(2)).is_none());
    }
}
