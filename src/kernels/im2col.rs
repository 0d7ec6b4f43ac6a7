//! im2col ("unfold") of one image and its adjoint col2im ("fold").
//!
//! `unfold` turns an image `[c, h, w]` into the matrix of its k×k patches
//! `[c·k·k, out_h·out_w]` (rows in the weight's `[c, k, k]` order, columns in output-pixel
//! order), so that a convolution of one image is `weight [out, c·k·k] · columns`, whose
//! result is already the image's `[out, out_h, out_w]` output. `fold` adds a patch matrix
//! back onto the pixels it came from.

use num_traits::Zero;

/// Geometry of a square convolution window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub size: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Window {
    /// Output size along one dimension of input size `size`.
    pub fn output(&self, size: usize) -> usize {
        (size + 2 * self.padding - self.size) / self.stride + 1
    }

    /// Whether the window fits an image of `h × w` (with its padding).
    pub fn fits(&self, h: usize, w: usize) -> bool {
        h + 2 * self.padding >= self.size && w + 2 * self.padding >= self.size
    }

    /// The input index read by output index `o` at kernel offset `k`, if inside the image.
    fn source(&self, o: usize, k: usize, size: usize) -> Option<usize> {
        (o * self.stride + k)
            .checked_sub(self.padding)
            .filter(|&i| i < size)
    }
}

/// One output row of one column-matrix row: `out_w` entries from `start`, of which
/// `lo..hi` read the pixels `pixel + i·stride` for `i` in `0..hi-lo` and the rest lie in
/// the padding (a row entirely in the padding has `lo == hi`).
struct Segment {
    start: usize,
    lo: usize,
    hi: usize,
    pixel: usize,
}

/// Every output-row segment of the column matrix of an image `[c, h, w]`.
fn for_each_segment([c, h, w]: [usize; 3], win: Window, mut visit: impl FnMut(Segment)) {
    let (out_h, out_w, k, s) = (win.output(h), win.output(w), win.size, win.stride);
    for ci in 0..c {
        for ky in 0..k {
            for kx in 0..k {
                // Output columns whose input column ox·s + kx − padding lies in 0..w.
                let hi = (w + win.padding).saturating_sub(kx).div_ceil(s).min(out_w);
                let lo = win.padding.saturating_sub(kx).div_ceil(s).min(hi);
                let row = ((ci * k + ky) * k + kx) * out_h * out_w;
                for oy in 0..out_h {
                    let start = row + oy * out_w;
                    let segment = match win.source(oy, ky, h).filter(|_| lo < hi) {
                        Some(iy) => Segment {
                            start,
                            lo,
                            hi,
                            pixel: (ci * h + iy) * w + lo * s + kx - win.padding,
                        },
                        None => Segment {
                            start,
                            lo: 0,
                            hi: 0,
                            pixel: 0,
                        },
                    };
                    visit(segment);
                }
            }
        }
    }
}

/// `image [c, h, w]` → `columns [c·k·k, out_h·out_w]` (every entry written).
pub fn unfold<T: Copy + Zero>(image: &[T], dims: [usize; 3], win: Window, columns: &mut [T]) {
    let (out_w, stride) = (win.output(dims[2]), win.stride);
    for_each_segment(dims, win, |seg| {
        let dst = &mut columns[seg.start..][..out_w];
        dst[..seg.lo].fill(T::zero());
        dst[seg.hi..].fill(T::zero());
        let dst = &mut dst[seg.lo..seg.hi];
        if stride == 1 {
            dst.copy_from_slice(&image[seg.pixel..][..dst.len()]);
        } else {
            for (i, d) in dst.iter_mut().enumerate() {
                *d = image[seg.pixel + i * stride];
            }
        }
    });
}

/// `image [c, h, w]` → `patches [out_h·out_w, c·k·k]`: the transpose of [`unfold`]'s
/// matrix, written patch by patch. The weight gradient's product reads it; from
/// [`unfold`]'s layout gemm would gather the larger operand element by element.
pub fn unfold_patches<T: Copy + Zero>(
    image: &[T],
    [c, h, w]: [usize; 3],
    win: Window,
    patches: &mut [T],
) {
    let (out_h, out_w, k) = (win.output(h), win.output(w), win.size);
    let mut rows = patches.chunks_exact_mut(c * k * k);
    for oy in 0..out_h {
        for ox in 0..out_w {
            let patch = rows.next().expect("one row per output pixel");
            // The window's columns kx in lo..hi lie inside the image, from column
            // left + lo on.
            let left = (ox * win.stride) as isize - win.padding as isize;
            let lo = (-left).clamp(0, k as isize) as usize;
            let hi = (w as isize - left).clamp(lo as isize, k as isize) as usize;
            for ci in 0..c {
                for ky in 0..k {
                    let dst = &mut patch[(ci * k + ky) * k..][..k];
                    match win.source(oy, ky, h) {
                        None => dst.fill(T::zero()),
                        // The whole window row in the padding (padding beyond the kernel).
                        Some(_) if lo == hi => dst.fill(T::zero()),
                        Some(iy) => {
                            let start = ((ci * h + iy) * w) as isize + left + lo as isize;
                            let src = &image[start as usize..][..hi - lo];
                            dst[..lo].fill(T::zero());
                            dst[hi..].fill(T::zero());
                            copy_window_row(&mut dst[lo..hi], src);
                        }
                    }
                }
            }
        }
    }
}

/// `dst.copy_from_slice(src)`, inlined for the usual window widths: a call to memcpy for
/// every three values cost more than the copy (a ResNet's patches).
#[inline(always)]
fn copy_window_row<T: Copy>(dst: &mut [T], src: &[T]) {
    match dst.len() {
        1 => dst[0] = src[0],
        2 => dst[..2].copy_from_slice(&src[..2]),
        3 => dst[..3].copy_from_slice(&src[..3]),
        5 => dst[..5].copy_from_slice(&src[..5]),
        _ => dst.copy_from_slice(src),
    }
}

/// The adjoint of [`unfold`]: adds `columns` onto `image` (which the caller zeroes).
pub fn fold<T: Copy + std::ops::AddAssign>(
    columns: &[T],
    dims: [usize; 3],
    win: Window,
    image: &mut [T],
) {
    let stride = win.stride;
    for_each_segment(dims, win, |seg| {
        let src = &columns[seg.start + seg.lo..seg.start + seg.hi];
        if stride == 1 {
            let dst = &mut image[seg.pixel..seg.pixel + src.len()];
            for (d, &v) in dst.iter_mut().zip(src) {
                *d += v;
            }
        } else {
            for (d, &v) in image[seg.pixel..].iter_mut().step_by(stride).zip(src) {
                *d += v;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, one entry at a time.
    fn unfold_naive(image: &[f64], [c, h, w]: [usize; 3], win: Window) -> Vec<f64> {
        let (out_h, out_w, k) = (win.output(h), win.output(w), win.size);
        let mut columns = vec![f64::NAN; c * k * k * out_h * out_w];
        for ci in 0..c {
            for ky in 0..k {
                for kx in 0..k {
                    for oy in 0..out_h {
                        for ox in 0..out_w {
                            let iy = (oy * win.stride + ky) as isize - win.padding as isize;
                            let ix = (ox * win.stride + kx) as isize - win.padding as isize;
                            let inside =
                                (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix);
                            columns[(((ci * k + ky) * k + kx) * out_h + oy) * out_w + ox] =
                                if inside {
                                    image[(ci * h + iy as usize) * w + ix as usize]
                                } else {
                                    0.0
                                };
                        }
                    }
                }
            }
        }
        columns
    }

    #[test]
    fn unfold_is_the_definition_and_fold_its_adjoint() {
        for (k, stride, padding, h, w) in [
            (3, 1, 1, 5, 6),
            (3, 2, 1, 8, 7),
            (5, 1, 2, 7, 7),
            (5, 1, 0, 9, 6),
            (3, 2, 0, 7, 7),
            (1, 1, 0, 4, 3),
            (1, 2, 0, 5, 5),
            (5, 3, 4, 3, 4),
            // Padding beyond the kernel: whole window rows and columns in the padding.
            (3, 1, 4, 5, 6),
            (1, 2, 2, 4, 5),
            (3, 2, 4, 6, 5),
        ] {
            let win = Window {
                size: k,
                stride,
                padding,
            };
            let dims = [2, h, w];
            let image: Vec<f64> = (0..2 * h * w).map(|i| (i as f64 * 0.37).sin()).collect();
            let mut columns = vec![f64::NAN; 2 * k * k * win.output(h) * win.output(w)];
            unfold(&image, dims, win, &mut columns);
            let naive = unfold_naive(&image, dims, win);
            assert_eq!(columns, naive, "k{k} s{stride} p{padding}");
            let pixels = win.output(h) * win.output(w);
            let mut patches = vec![f64::NAN; columns.len()];
            unfold_patches(&image, dims, win, &mut patches);
            for (i, row) in patches.chunks(2 * k * k).enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    assert_eq!(
                        v,
                        naive[j * pixels + i],
                        "k{k} s{stride} p{padding}: patches"
                    );
                }
            }
            // ⟨unfold(x), c⟩ = ⟨x, fold(c)⟩ for any c.
            let c: Vec<f64> = (0..columns.len())
                .map(|i| (i as f64 * 0.11).cos())
                .collect();
            let mut folded = vec![0.0; image.len()];
            fold(&c, dims, win, &mut folded);
            let lhs: f64 = columns.iter().zip(&c).map(|(a, b)| a * b).sum();
            let rhs: f64 = image.iter().zip(&folded).map(|(a, b)| a * b).sum();
            assert!(
                (lhs - rhs).abs() < 1e-12,
                "k{k} s{stride} p{padding}: {lhs} vs {rhs}"
            );
        }
    }
}
