//! Plumbing for the fused CPU custom ops: float slices out of candle's storage, and one
//! matrix product straight into a caller's buffer. f32 is what training runs in; f64 is
//! supported so that the tests can check the ops against finite differences.
//!
//! candle's own matmul zero-fills a fresh output before gemm accumulates into it, and its
//! autograd computes both operand gradients of every product (the input gradient of a
//! network's first layer included). The fused layers call gemm themselves so that a bias
//! is the initial value of the product and only the gradients somebody needs are computed.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, DType, Layout, Result, Storage, Tensor, WithDType};
use rayon::prelude::*;

/// Evaluates `$body` with the type alias `$t` set to the float type of `$dtype` (f32 or
/// f64), or fails with "`$op`: no CPU kernel for ..." for any other dtype. A macro: a
/// closure cannot be generic over a type, and every fused op dispatches this way.
macro_rules! with_float {
    ($dtype:expr, $op:expr, $t:ident => $body:expr) => {
        match $dtype {
            candle_core::DType::F32 => {
                type $t = f32;
                $body
            }
            candle_core::DType::F64 => {
                type $t = f64;
                $body
            }
            other => candle_core::bail!("{}: no CPU kernel for {other:?}", $op),
        }
    };
}
pub(crate) use with_float;

/// Runs `work` on a thread of rayon's pool when `device` is the CPU, on this thread
/// otherwise.
///
/// Each parallel op called from outside the pool hands its tasks to the pool and puts
/// the caller to sleep until they are done: a futex wake-up of the calling thread per
/// op, a few dozen per training step. Called from a worker, an op forks and joins in
/// place and the caller takes its share of the tasks. Measured on whole MLP-SGD epochs
/// (alternated builds, 2 cores): 76-81k samples/s with each step called from the main
/// thread, 106-111k with each step on a worker. A GPU's work stays on the calling
/// thread, which holds the device's context.
pub fn on_pool<R: Send>(device: &candle_core::Device, work: impl FnOnce() -> R + Send) -> R {
    if device.is_cpu() {
        rayon::scope(|_| work())
    } else {
        work()
    }
}

/// The elements of a contiguous CPU storage of dtype `T`.
pub fn slice<'a, T: WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a [T]> {
    if storage.dtype() != T::DTYPE {
        bail!("{op}: expected {:?}, got {:?}", T::DTYPE, storage.dtype());
    }
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&storage.as_slice::<T>()?[start..end]),
        None => bail!("{op}: expected a contiguous tensor"),
    }
}

/// Runs `f` over the elements of a CPU tensor (copied first if not contiguous).
pub fn with_slice<T: WithDType, R>(t: &Tensor, op: &str, f: impl FnOnce(&[T]) -> R) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => Ok(f(slice(cpu, layout, op)?)),
        _ => bail!("{op}: expected a CPU tensor"),
    }
}

/// Whether the fused CPU kernels apply to `t`: f32 or f64 on the CPU.
pub fn applies(t: &Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64)
}

/// Runs `f` compiled for the widest vector instructions this CPU has (AVX-512, else AVX2
/// with FMA), chosen at run time, so that the loops inside `f` are vectorised with them.
/// The crate itself is compiled for baseline x86-64 (SSE2, four f32 lanes), so that one
/// binary runs on any x86-64 machine; gemm dispatches the same way. `f` must be the
/// whole loop, not one element: what it calls is compiled for the wider instructions
/// only where it is inlined into it.
#[inline(always)]
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// `dst[i] = f(dst[i], [a[i], b[i], …])` for every element of `dst`, vectorised (see
/// [`vectorized`]). The sources are at least as long as `dst`.
pub fn zip_map<T: Copy, const N: usize>(
    dst: &mut [T],
    srcs: [&[T]; N],
    f: impl Fn(T, [T; N]) -> T,
) {
    vectorized(
        #[inline(always)]
        move || zip_map_here(dst, srcs, f),
    )
}

/// Elements per task of the element-wise parallel loops: enough to amortise a task, few
/// enough to share the work out.
const CHUNK: usize = 1 << 14;

/// [`zip_map`] in parallel over chunks of `dst`.
pub fn par_zip_map<T: Copy + Send + Sync, const N: usize>(
    dst: &mut [T],
    srcs: [&[T]; N],
    f: impl Fn(T, [T; N]) -> T + Sync,
) {
    dst.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(i, dst)| zip_map(dst, srcs.map(|s| &s[i * CHUNK..]), &f));
}

/// A new vector of `f([a[i], b[i], …])`, computed in parallel (see [`par_build`]). The
/// sources are at least `len` long.
pub fn par_map<T: Float, const N: usize>(
    len: usize,
    srcs: [&[T]; N],
    f: impl Fn([T; N]) -> T + Sync,
) -> Result<Vec<T>> {
    par_build(
        len,
        CHUNK,
        || (),
        |(), i, dst| {
            zip_map(dst, srcs.map(|s| &s[i * CHUNK..]), |_, v| f(v));
            Ok(())
        },
    )
}

/// `len` zeros, written in parallel (see [`par_build`]), for an output that gemm or a
/// scatter then writes.
pub fn par_zeros<T: Float>(len: usize) -> Result<Vec<T>> {
    par_build(len, CHUNK, || (), |(), _, _| Ok(()))
}

/// A new vector of `len` elements, built in parallel in chunks of `chunk`:
/// `fill(state, i, dst)` writes chunk `i` (elements `i·chunk..`), which it gets zeroed,
/// with `state` from `init` once per task (a scratch buffer, say).
///
/// Each chunk is zeroed by the thread that fills it, just before, while it is in that
/// thread's cache. `vec![0; len]` zeroes the whole output on the calling thread first, a
/// pass over memory the other threads wait for: in a profile of a ResNet-20 training
/// step those zeroings were 6 % of the samples.
pub fn par_build<T: Float, S>(
    len: usize,
    chunk: usize,
    init: impl Fn() -> S + Sync + Send,
    fill: impl Fn(&mut S, usize, &mut [T]) -> Result<()> + Sync + Send,
) -> Result<Vec<T>> {
    let mut out: Vec<T> = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .try_for_each_init(init, |state, (i, dst)| {
            dst.fill(std::mem::MaybeUninit::new(T::zero()));
            // SAFETY: every element of `dst` was written on the line above, and
            // `MaybeUninit<T>` has the layout of `T`.
            let dst = unsafe { &mut *(dst as *mut [std::mem::MaybeUninit<T>] as *mut [T]) };
            fill(state, i, dst)
        })?;
    // SAFETY: the chunks cover `0..len` and each was written above (a failure returned
    // before this line, leaving the vector empty).
    unsafe { out.set_len(len) };
    Ok(out)
}

// A function of its own so that `dst` is a `noalias` argument: without that the
// vectoriser cannot assume that stores to it leave the sources and `f`'s captures alone.
#[inline(always)]
fn zip_map_here<T: Copy, const N: usize>(
    dst: &mut [T],
    srcs: [&[T]; N],
    f: impl Fn(T, [T; N]) -> T,
) {
    let n = dst.len();
    let srcs = srcs.map(|s| &s[..n]);
    for i in 0..n {
        dst[i] = f(dst[i], srcs.map(|s| s[i]));
    }
}

/// Independent running sums in [`lane_sums`]: one running sum is bound by the latency of
/// each addition; this many the compiler keeps in vector registers.
const LANES: usize = 16;

/// `Σ f(v)` over `values`, in `LANES` running sums of `T` (a plane of at most a few
/// thousand values puts a few hundred in each), added up in f64.
pub fn lane_sum<T: Float>(values: &[T], f: impl Fn(T) -> T) -> f64 {
    let [sum] = lane_sums([values; 3], |[v, _, _]| [f(v)]);
    sum
}

/// `Σ f(a, b, c)` over three equally long slices, for each of the `S` values `f`
/// returns, as [`lane_sum`] does.
pub fn lane_sums<T: Float, const S: usize>(
    slices: [&[T]; 3],
    f: impl Fn([T; 3]) -> [T; S],
) -> [f64; S] {
    assert!(
        slices.iter().all(|s| s.len() == slices[0].len()),
        "lane sums over slices of different lengths"
    );
    vectorized(
        #[inline(always)]
        || lane_sums_here(slices, f),
    )
}

#[inline(always)]
fn lane_sums_here<T: Float, const S: usize>(
    slices: [&[T]; 3],
    f: impl Fn([T; 3]) -> [T; S],
) -> [f64; S] {
    let mut lanes = [[T::zero(); LANES]; S];
    let [a, b, c] = slices.map(|s| s.chunks_exact(LANES));
    let rest = [a.remainder(), b.remainder(), c.remainder()];
    for ((a, b), c) in a.zip(b).zip(c) {
        for lane in 0..LANES {
            let terms = f([a[lane], b[lane], c[lane]]);
            for (sums, term) in lanes.iter_mut().zip(terms) {
                sums[lane] += term;
            }
        }
    }
    let mut totals = [0.0; S];
    for (total, sums) in totals.iter_mut().zip(&lanes) {
        *total = sums.iter().map(|&v| WithDType::to_f64(v)).sum();
    }
    for i in 0..rest[0].len() {
        for (total, term) in totals.iter_mut().zip(f(rest.map(|r| r[i]))) {
            *total += WithDType::to_f64(term);
        }
    }
    totals
}

/// A float the fused kernels compute in (f32 or f64).
pub trait Float: WithDType + num_traits::Float {}
impl Float for f32 {}
impl Float for f64 {}

/// A matrix view of a slice: element `(i, j)` is `data[i·row_stride + j·col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct Mat<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a, T> Mat<'a, T> {
    /// A row-major `rows × cols` matrix.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, without moving anything.
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Whether every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        fits(
            self.rows,
            self.cols,
            self.row_stride,
            self.col_stride,
            self.data.len(),
        )
    }
}

/// A matrix view of a mutable slice, as [`Mat`]: element `(i, j)` is
/// `data[i·row_stride + j·col_stride]`; the elements in between are left alone.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    pub data: &'a mut [T],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a, T> MatMut<'a, T> {
    /// A row-major `rows × cols` matrix.
    pub fn row_major(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// Whether every element lies inside `data`, and no two elements are the same one
    /// (the rows, or the columns, lie one after another), so that gemm may write them
    /// all, from several threads.
    fn in_bounds(&self) -> bool {
        let (rows, cols) = (self.rows, self.cols);
        let after = |count: usize, stride: usize, next: usize| {
            stride > 0 && count.checked_mul(stride).is_some_and(|span| span <= next)
        };
        let distinct = rows <= 1 && (cols <= 1 || self.col_stride > 0)
            || cols <= 1 && self.row_stride > 0
            || after(cols, self.col_stride, self.row_stride)
            || after(rows, self.row_stride, self.col_stride);
        distinct
            && fits(
                rows,
                cols,
                self.row_stride,
                self.col_stride,
                self.data.len(),
            )
    }
}

/// Whether a `rows × cols` view with these strides lies inside `len` elements (with no
/// overflow on the way).
fn fits(rows: usize, cols: usize, row_stride: usize, col_stride: usize, len: usize) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    let last = (rows - 1)
        .checked_mul(row_stride)
        .zip((cols - 1).checked_mul(col_stride))
        .and_then(|(r, c)| r.checked_add(c));
    last.is_some_and(|last| last < len)
}

/// candle's thread count for matrix products, worked out once (candle works it out for
/// every product, reading /proc/cpuinfo when `RAYON_NUM_THREADS` is not set).
fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(candle_core::utils::get_num_threads)
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` when `accumulate`. Parallel over candle's
/// thread count, as candle's matmul is, but split here rather than by gemm (see
/// [`product`]).
pub fn matmul<T: Float>(lhs: Mat<T>, rhs: Mat<T>, dst: MatMut<T>, accumulate: bool) -> Result<()> {
    product(lhs, rhs, dst, accumulate, threads())
}

/// [`matmul`] on the calling thread, for products that are already one of many
/// running in parallel (one per image of a batch).
pub fn matmul_on_this_thread<T: Float>(
    lhs: Mat<T>,
    rhs: Mat<T>,
    dst: MatMut<T>,
    accumulate: bool,
) -> Result<()> {
    product(lhs, rhs, dst, accumulate, 1)
}

/// Products below this many multiply-adds run on one thread: splitting them costs more
/// than it saves.
const MIN_PARALLEL_MACS: usize = 1 << 18;

/// The product on up to `threads` threads: the larger of the output's two dimensions is
/// cut into one contiguous block per thread, each a single-threaded gemm. gemm's own
/// `Parallelism::Rayon` scales poorly at a training batch's shapes: measured on 2
/// threads (AVX-512), the forward product of a 784-512 layer at batch 128 ran at
/// 180–209 GFLOP/s with it and 282–296 split this way, a 512-512 one at 115–150
/// against 225–238, and none of the backward products got slower. Each block computes
/// the same sums in the same order, so the result does not depend on the split.
fn product<T: Float>(
    lhs: Mat<T>,
    rhs: Mat<T>,
    dst: MatMut<T>,
    accumulate: bool,
    threads: usize,
) -> Result<()> {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    if rhs.rows != k
        || (dst.rows, dst.cols) != (m, n)
        || !lhs.in_bounds()
        || !rhs.in_bounds()
        || !dst.in_bounds()
    {
        bail!(
            "matmul: shapes {}x{} · {}x{} into {}x{} (or a view outside its slice)",
            lhs.rows,
            lhs.cols,
            rhs.rows,
            rhs.cols,
            dst.rows,
            dst.cols
        );
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst.data[i * dst.row_stride + j * dst.col_stride] = T::zero();
                }
            }
        }
        return Ok(());
    }
    let by_rows = m >= n;
    let len = if by_rows { m } else { n };
    let blocks = if m.saturating_mul(n).saturating_mul(k) < MIN_PARALLEL_MACS {
        1
    } else {
        threads.clamp(1, len)
    };
    // Block edges on 16 (an AVX-512 register of f32) where that still gives every
    // thread a block.
    let block = match len.div_ceil(blocks) {
        b if b.next_multiple_of(16) * (blocks - 1) < len => b.next_multiple_of(16),
        b => b,
    };
    let out = DstPtr(dst.data.as_mut_ptr());
    let block_product = |first: usize| {
        let size = block.min(len - first);
        let (rows, cols) = if by_rows { (size, n) } else { (m, size) };
        let (lhs_offset, rhs_offset, dst_offset) = if by_rows {
            (first * lhs.row_stride, 0, first * dst.row_stride)
        } else {
            (0, first * rhs.col_stride, first * dst.col_stride)
        };
        // SAFETY: the three views were checked to lie inside their slices above, so the
        // blocks (a run of rows, or of columns, of each view) do too; `dst` is borrowed
        // mutably, so it aliases neither operand, and its elements are distinct (checked
        // by `in_bounds`), so the blocks write disjoint elements.
        unsafe {
            gemm::gemm(
                rows,
                cols,
                k,
                out.get().add(dst_offset),
                dst.col_stride as isize,
                dst.row_stride as isize,
                accumulate,
                lhs.data.as_ptr().add(lhs_offset),
                lhs.col_stride as isize,
                lhs.row_stride as isize,
                rhs.data.as_ptr().add(rhs_offset),
                rhs.col_stride as isize,
                rhs.row_stride as isize,
                T::one(),
                T::one(),
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    };
    if blocks == 1 {
        block_product(0);
    } else {
        (0..len)
            .into_par_iter()
            .step_by(block)
            .for_each(block_product);
    }
    Ok(())
}

/// The output of [`product`], shared by the threads that write its blocks.
#[derive(Clone, Copy)]
struct DstPtr<T>(*mut T);

impl<T> DstPtr<T> {
    /// The pointer, taken through a method so that closures capture the whole (`Sync`)
    /// wrapper rather than the raw pointer field.
    fn get(self) -> *mut T {
        self.0
    }
}

// SAFETY: the threads of one `product` write disjoint elements through it (see there).
unsafe impl<T: Send> Send for DstPtr<T> {}
unsafe impl<T: Send> Sync for DstPtr<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_matches_the_definition_for_every_transpose() {
        let a: Vec<f32> = (0..6).map(|v| v as f32 - 2.0).collect(); // 2×3
        let b: Vec<f32> = (0..12).map(|v| (v as f32) * 0.5).collect(); // 3×4
        let expect = |i: usize, j: usize| (0..3).map(|k| a[i * 3 + k] * b[k * 4 + j]).sum::<f32>();
        let mut dst = vec![1.0; 8];
        matmul(
            Mat::row_major(&a, 2, 3),
            Mat::row_major(&b, 3, 4),
            MatMut::row_major(&mut dst, 2, 4),
            false,
        )
        .unwrap();
        for i in 0..2 {
            for j in 0..4 {
                assert_eq!(dst[i * 4 + j], expect(i, j));
            }
        }
        // (bᵀ · aᵀ)ᵀ = a · b, through transposed views, accumulated onto ones.
        let mut dst_t = vec![1.0; 8];
        matmul(
            Mat::row_major(&b, 3, 4).t(),
            Mat::row_major(&a, 2, 3).t(),
            MatMut::row_major(&mut dst_t, 4, 2),
            true,
        )
        .unwrap();
        for i in 0..2 {
            for j in 0..4 {
                assert_eq!(dst_t[j * 2 + i], 1.0 + expect(i, j));
            }
        }
    }

    #[test]
    fn a_product_with_a_row_major_weight_matches_the_definition() {
        // `x · wᵀ` with w row-major [n, k]: gemm packs w's rows (vendor/gemm-common)
        // through registers where it can, 16×16 with AVX-512, 8×8 with AVX. Full panels,
        // partial ones with and without whole strips of 16 or 8 rows, k with and without
        // a remainder of 16 or 8, and a power-of-two row stride; integer values keep
        // every sum exact, so any misplaced element shows.
        for (m, k, n) in [
            (5, 37, 130),
            (128, 512, 64),
            (3, 16, 200),
            (7, 15, 70),
            (9, 40, 25),
            (4, 48, 22),
        ] {
            let x: Vec<f32> = (0..m * k).map(|v| (v * 7 % 11) as f32 - 5.0).collect();
            let w: Vec<f32> = (0..n * k).map(|v| (v * 13 % 17) as f32 - 8.0).collect();
            let mut y = vec![f32::NAN; m * n];
            matmul(
                Mat::row_major(&x, m, k),
                Mat::row_major(&w, n, k).t(),
                MatMut::row_major(&mut y, m, n),
                false,
            )
            .unwrap();
            for i in 0..m {
                for j in 0..n {
                    let expect: f32 = (0..k).map(|l| x[i * k + l] * w[j * k + l]).sum();
                    assert_eq!(y[i * n + j], expect, "{m}x{k}x{n} at ({i}, {j})");
                }
            }
        }
    }

    #[test]
    fn a_product_split_over_threads_is_the_single_threaded_one_bit_for_bit() {
        // Tall and wide products (split by rows, then by columns) above the threshold,
        // with sizes no block divides, into a strided destination with gaps, accumulated.
        for (m, k, n) in [(203, 67, 45), (37, 71, 290)] {
            assert!(m * n * k >= MIN_PARALLEL_MACS);
            let a: Vec<f32> = (0..m * k)
                .map(|v| ((v * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|v| ((v * 53 % 97) as f32 - 48.0) / 5.0)
                .collect();
            // Element (i, j) at 2·i + (2m + 1)·j: column-major, every other element.
            let len = 2 * m + (2 * m + 1) * (n - 1);
            fn view(dst: &mut [f32], m: usize, n: usize) -> MatMut<'_, f32> {
                MatMut {
                    data: dst,
                    rows: m,
                    cols: n,
                    row_stride: 2,
                    col_stride: 2 * m + 1,
                }
            }
            let mut single = vec![0.5; len];
            product(
                Mat::row_major(&a, m, k),
                Mat::row_major(&b, k, n),
                view(&mut single, m, n),
                true,
                1,
            )
            .unwrap();
            for threads in [2, 3, 8] {
                let mut split = vec![0.5; len];
                product(
                    Mat::row_major(&a, m, k),
                    Mat::row_major(&b, k, n),
                    view(&mut split, m, n),
                    true,
                    threads,
                )
                .unwrap();
                assert!(
                    split
                        .iter()
                        .zip(&single)
                        .all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{m}x{k}x{n} on {threads} threads"
                );
            }
            // And it is the product: spot checks against the definition (f64 sums).
            for (i, j) in [(0, 0), (m - 1, n - 1), (m / 2, n / 3)] {
                let exact: f64 = (0..k)
                    .map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j]))
                    .sum();
                let got = f64::from(single[2 * i + (2 * m + 1) * j]) - 0.5;
                assert!(
                    (got - exact).abs() <= 1e-3 * exact.abs().max(1.0),
                    "{got} {exact}"
                );
            }
            // The gaps are untouched.
            let mut written = vec![false; len];
            for i in 0..m {
                for j in 0..n {
                    written[2 * i + (2 * m + 1) * j] = true;
                }
            }
            assert!(single.iter().zip(&written).all(|(&v, &w)| w || v == 0.5));
        }
    }

    #[test]
    fn matmul_rejects_views_outside_their_slices() {
        let a = vec![0.0; 5];
        let mut dst = vec![0.0; 4];
        assert!(matmul(
            Mat::row_major(&a, 2, 3),
            Mat::row_major(&a, 3, 2),
            MatMut::row_major(&mut dst, 2, 2),
            false
        )
        .is_err());
    }

    #[test]
    fn a_strided_destination_gets_its_elements_and_nothing_else() {
        let a: Vec<f64> = (0..6).map(|v| v as f64 - 2.0).collect(); // 2×3
        let b: Vec<f64> = (0..12).map(|v| (v as f64) * 0.5).collect(); // 3×4
                                                                       // Element (i, j) of the 2×4 product at 1 + 9·i + 2·j, inside 20 sevens.
        let mut dst = vec![7.0; 20];
        let view = MatMut {
            data: &mut dst[1..],
            rows: 2,
            cols: 4,
            row_stride: 9,
            col_stride: 2,
        };
        matmul_on_this_thread(
            Mat::row_major(&a, 2, 3),
            Mat::row_major(&b, 3, 4),
            view,
            true,
        )
        .unwrap();
        let mut expected = vec![7.0; 20];
        for i in 0..2 {
            for j in 0..4 {
                expected[1 + 9 * i + 2 * j] +=
                    (0..3).map(|k| a[i * 3 + k] * b[k * 4 + j]).sum::<f64>();
            }
        }
        assert_eq!(dst, expected);
    }

    #[test]
    fn lane_sums_and_zip_maps_match_plain_loops_at_every_length() {
        for n in [0, 1, 15, 16, 17, 100, (1 << 14) + 5] {
            let a: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
            let b: Vec<f64> = (0..n).map(|i| (i as f64 * 0.11).cos()).collect();
            let plain: f64 = a.iter().map(|v| v * v).sum();
            assert!((lane_sum(&a, |v| v * v) - plain).abs() < 1e-9, "n = {n}");
            let [s0, s1] = lane_sums([&a, &b, &a], |[x, y, z]| [x * y, x + y + z]);
            let plain: [f64; 2] = [
                a.iter().zip(&b).map(|(x, y)| x * y).sum(),
                a.iter().zip(&b).map(|(x, y)| 2.0 * x + y).sum(),
            ];
            assert!((s0 - plain[0]).abs() < 1e-9 && (s1 - plain[1]).abs() < 1e-9);

            let expected: Vec<f64> = a.iter().zip(&b).map(|(x, y)| 1.0 + x * y).collect();
            let mut dst = vec![1.0; n];
            zip_map(&mut dst, [&a, &b], |d, [x, y]| d + x * y);
            assert_eq!(dst, expected, "n = {n}");
            let mut dst = vec![1.0; n];
            par_zip_map(&mut dst, [&a, &b], |d, [x, y]| d + x * y);
            assert_eq!(dst, expected, "n = {n}");
        }
    }

    #[test]
    fn a_vector_built_in_parallel_chunks_is_every_chunk_filled_once() {
        for (len, chunk) in [(0, 4), (1, 4), (10, 3), (CHUNK + 5, CHUNK), (100, 0)] {
            // Each chunk gets its index, offset by what it held on arrival (zero).
            let built = par_build(
                len,
                chunk,
                || (),
                |(), i, dst: &mut [f64]| {
                    dst.iter_mut().for_each(|v| *v += i as f64);
                    Ok(())
                },
            )
            .unwrap();
            let expected: Vec<f64> = (0..len).map(|e| (e / chunk.max(1)) as f64).collect();
            assert_eq!(built, expected, "len {len}, chunk {chunk}");
            assert_eq!(par_zeros::<f32>(len).unwrap(), vec![0.0; len]);
        }
        let a: Vec<f32> = (0..CHUNK + 7).map(|v| v as f32).collect();
        let mapped = par_map(a.len(), [&a, &a], |[x, y]| x * y).unwrap();
        assert!(mapped.iter().zip(&a).all(|(&m, &v)| m == v * v));
        // A chunk that fails is the whole build's error.
        let failed = par_build(
            64,
            8,
            || (),
            |(), i, _: &mut [f32]| {
                if i == 5 {
                    candle_core::bail!("chunk {i}")
                }
                Ok(())
            },
        );
        assert!(failed.unwrap_err().to_string().contains("chunk 5"));
    }

    #[test]
    fn destinations_that_overflow_or_overlap_are_rejected() {
        let a = vec![0.0f32; 4];
        let mut dst = vec![0.0f32; 16];
        let product = |dst: MatMut<f32>| {
            matmul_on_this_thread(
                Mat::row_major(&a, 4, 1),
                Mat::row_major(&a, 1, 4),
                dst,
                false,
            )
        };
        fn view(dst: &mut [f32], row_stride: usize, col_stride: usize) -> MatMut<'_, f32> {
            MatMut {
                data: dst,
                rows: 4,
                cols: 4,
                row_stride,
                col_stride,
            }
        }
        // (rows − 1)·row_stride wraps around to a small number.
        assert!(product(view(&mut dst, usize::MAX / 3 + 1, 1)).is_err());
        // Every row the same elements; rows overlapping columns.
        assert!(product(view(&mut dst, 0, 1)).is_err());
        assert!(product(view(&mut dst, 2, 1)).is_err());
        // Row-major and column-major views are fine.
        assert!(product(view(&mut dst, 4, 1)).is_ok());
        assert!(product(view(&mut dst, 1, 4)).is_ok());
    }
}
