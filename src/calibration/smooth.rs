//! Smooth ECE (Błasiok & Nakkiran 2023), computed as their `relplot` package does
//! (version 1.0, `relplot.smECE` with the default reflected Gaussian kernel), so that
//! the two agree to rounding.
//!
//! For confidences `f_i` and outcomes `y_i` (1 = correct), with residuals
//! `r_i = f_i − y_i`, at bandwidth `σ`:
//!
//! 1. each sample is split linearly between its two neighbouring points of a grid of
//!    `G = ⌊max(2000, round(20/σ)) / 2⌋ + 1` points on [0, 1], once with weight `r_i`
//!    and once with weight 1;
//! 2. both grids are convolved with the Gaussian `N(0, σ²)` sampled on the same grid,
//!    reflected at 0 and 1 (the grid mirrored on both sides, as relplot does);
//! 3. both are interpolated linearly at a mesh of `T = max(round(10/σ), 200)` points,
//!    the density gets `10⁻⁴` added, and `r̂ = smoothed residual / density`;
//! 4. `smECE_σ = Σ_t |r̂(t)| · density(t) / Σ_t density(t)`.
//!
//! The bandwidth is relplot's fixed point: `σ = 1` if `1 < smECE_1`, otherwise ten
//! bisection steps on (0, 1] for the point where `σ = smECE_σ`, keeping the upper end
//! (`σ ≥ smECE_σ`); then `smECE = smECE_σ`.
//!
//! The convolutions run by FFT (relplot's `numpy.convolve` sums directly); the two agree
//! to rounding.

use super::bootstrap::{Bootstrap, Interval};
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use std::f64::consts::PI;
use std::sync::Arc;

/// The bandwidth search stops below this (relplot's `eps`).
const MIN_SIGMA: f64 = 1e-3;
const BISECTION_STEPS: usize = 10;
/// Added to the density before dividing by it (relplot's `BaseKernelMixin.smooth`).
const DENSITY_FLOOR: f64 = 1e-4;
const MIN_MESH: usize = 200;

/// The smooth ECE and the bandwidth it was computed at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SmoothEce {
    pub value: f64,
    pub sigma: f64,
}

/// Smooth ECE of top-label `confidences` and whether each prediction was `correct`,
/// at relplot's fixed-point bandwidth.
pub fn smooth_ece(confidences: &[f64], correct: &[bool]) -> SmoothEce {
    let at = |sigma: f64| smooth_ece_at(confidences, correct, None, sigma);
    let below_its_ece = |sigma: f64| sigma < MIN_SIGMA || sigma < at(sigma);
    let sigma = if below_its_ece(1.0) {
        1.0
    } else {
        let (mut upper, mut lower) = (1.0, 0.0);
        for _ in 0..BISECTION_STEPS {
            let middle = (upper + lower) / 2.0;
            if below_its_ece(middle) {
                lower = middle;
            } else {
                upper = middle;
            }
        }
        upper
    };
    SmoothEce {
        value: at(sigma),
        sigma,
    }
}

/// `smECE_σ` at a given bandwidth; `weights` (how often each sample counts, as in a
/// bootstrap resample) default to 1.
pub fn smooth_ece_at(
    confidences: &[f64],
    correct: &[bool],
    weights: Option<&[f64]>,
    sigma: f64,
) -> f64 {
    let curve = smoothed_residuals(confidences, correct, weights, sigma);
    let total: f64 = curve.density.iter().sum();
    curve
        .residual
        .iter()
        .zip(&curve.density)
        .map(|(r, d)| r.abs() * d)
        .sum::<f64>()
        / total
}

/// The smoothed residual `r̂(t) = E[f − y | f ≈ t]` and the density of `f` on the mesh.
#[derive(Debug, Clone, PartialEq)]
pub struct SmoothedResiduals {
    pub mesh: Vec<f64>,
    pub residual: Vec<f64>,
    pub density: Vec<f64>,
}

pub fn smoothed_residuals(
    confidences: &[f64],
    correct: &[bool],
    weights: Option<&[f64]>,
    sigma: f64,
) -> SmoothedResiduals {
    let mesh_points = ((10.0 / sigma).round_ties_even() as usize).max(MIN_MESH);
    let mesh = linspace(mesh_points);
    let grid_points = ((2000.0f64).max((20.0 / sigma).round_ties_even()) as usize) / 2 + 1;
    let kernel = Kernel::new(sigma, grid_points);
    let weight = |i: usize| weights.map_or(1.0, |w| w[i]);
    let residuals = (0..confidences.len())
        .map(|i| (confidences[i] - f64::from(u8::from(correct[i]))) * weight(i));
    let smoothed_residual = kernel.smooth(&splat(confidences, residuals, grid_points));
    let ones = (0..confidences.len()).map(weight);
    let smoothed_density = kernel.smooth(&splat(confidences, ones, grid_points));
    let density: Vec<f64> = mesh
        .iter()
        .map(|&t| interpolate(t, &smoothed_density) + DENSITY_FLOOR)
        .collect();
    let residual = mesh
        .iter()
        .zip(&density)
        .map(|(&t, d)| interpolate(t, &smoothed_residual) / d)
        .collect();
    SmoothedResiduals {
        mesh,
        residual,
        density,
    }
}

/// A smoothed reliability diagram, as relplot's `rel_diagram` draws it: at the smooth
/// ECE's bandwidth, the smoothed accuracy `t − r̂(t)` on the mesh, the density of the
/// confidences (scaled to integrate to 1 over [0, 1]) and, with a bootstrap, the
/// pointwise percentile band of the accuracy over resamples at the same bandwidth.
#[derive(Debug, Clone, PartialEq)]
pub struct SmoothReliability {
    pub smooth_ece: SmoothEce,
    pub mesh: Vec<f64>,
    pub accuracy: Vec<f64>,
    pub density: Vec<f64>,
    pub band: Option<Vec<Interval>>,
}

/// The [`SmoothReliability`] of top-label `confidences` and whether each was `correct`.
pub fn smooth_reliability(
    confidences: &[f64],
    correct: &[bool],
    bootstrap: Option<&Bootstrap>,
) -> SmoothReliability {
    let smooth_ece = smooth_ece(confidences, correct);
    let accuracy = |curve: &SmoothedResiduals| -> Vec<f64> {
        curve
            .mesh
            .iter()
            .zip(&curve.residual)
            .map(|(t, r)| t - r)
            .collect()
    };
    let curve = smoothed_residuals(confidences, correct, None, smooth_ece.sigma);
    let band = bootstrap.map(|b| {
        b.band(confidences.len(), |counts| {
            accuracy(&smoothed_residuals(
                confidences,
                correct,
                Some(counts),
                smooth_ece.sigma,
            ))
        })
    });
    let mean_density = curve.density.iter().sum::<f64>() / curve.density.len() as f64;
    SmoothReliability {
        smooth_ece,
        accuracy: accuracy(&curve),
        density: curve.density.iter().map(|d| d / mean_density).collect(),
        mesh: curve.mesh,
        band,
    }
}

/// `n` evenly spaced points from 0 to 1, both included (numpy's `linspace`).
fn linspace(n: usize) -> Vec<f64> {
    let step = 1.0 / (n - 1) as f64;
    (0..n)
        .map(|j| if j + 1 == n { 1.0 } else { j as f64 * step })
        .collect()
}

/// Each value split between the two grid points around its position (relplot's
/// `smooth_round_to_grid`).
fn splat(positions: &[f64], values: impl Iterator<Item = f64>, points: usize) -> Vec<f64> {
    let mut grid = vec![0.0; points];
    let scale = (points - 1) as f64;
    for (&f, y) in positions.iter().zip(values) {
        let bin = ((f * scale) as usize).min(points - 2);
        let fraction = f * scale - bin as f64;
        grid[bin] += (1.0 - fraction) * y;
        grid[bin + 1] += fraction * y;
    }
    grid
}

/// Linear interpolation of the grid `values` (point `j` at `j/(len − 1)`) at `t`.
fn interpolate(t: f64, values: &[f64]) -> f64 {
    let last = values.len() - 1;
    let bucket = 1.0 / last as f64;
    let index = ((t * last as f64) as usize).min(last - 1);
    let residual = (t - index as f64 * bucket) / bucket;
    values[index] * (1.0 - residual) + values[index + 1] * residual
}

thread_local! {
    static PLANNER: std::cell::RefCell<FftPlanner<f64>> = std::cell::RefCell::new(FftPlanner::new());
}

/// The Gaussian sampled on the grid (centred at 0.5), in the frequency domain, with
/// the transforms that convolve a grid with it.
struct Kernel {
    points: usize,
    spectrum: Vec<Complex<f64>>,
    forward: Arc<dyn Fft<f64>>,
    inverse: Arc<dyn Fft<f64>>,
}

impl Kernel {
    fn new(sigma: f64, points: usize) -> Self {
        // The full linear convolution of the extended grid (3g − 2) with the kernel (g)
        // has 4g − 3 points; any longer circular convolution holds it unchanged, and a
        // power of two transforms fastest (4g − 3 = 4001 at the usual g = 1001 is prime,
        // which took Rader's and Bluestein's algorithms and most of a validation pass's
        // metric time). The plans are kept per thread: the bandwidth search asks for
        // the same few sizes a dozen times per call.
        let size = (4 * points - 3).next_power_of_two();
        let (forward, inverse) = PLANNER.with_borrow_mut(|planner| {
            (
                planner.plan_fft_forward(size),
                planner.plan_fft_inverse(size),
            )
        });
        let mut spectrum = vec![Complex::default(); size];
        for (slot, value) in spectrum.iter_mut().zip(kernel_values(sigma, points)) {
            slot.re = value;
        }
        forward.process(&mut spectrum);
        Self {
            points,
            spectrum,
            forward,
            inverse,
        }
    }

    /// relplot's `ReflectedGaussianKernel.convolve`: the grid extended by its mirror
    /// images on both sides (`[v_{g−1} … v_1, v_0 … v_{g−1}, v_{g−2} … v_0]`), convolved
    /// with the kernel (`numpy.convolve`, "valid"), the middle `g` points kept. By FFT;
    /// the direct sum it replaces agrees to rounding (see the tests).
    fn smooth(&self, grid: &[f64]) -> Vec<f64> {
        let g = self.points;
        let mut signal = vec![Complex::default(); self.spectrum.len()];
        for (e, slot) in signal.iter_mut().take(3 * g - 2).enumerate() {
            slot.re = grid[extended_index(e, g)];
        }
        self.forward.process(&mut signal);
        for (s, k) in signal.iter_mut().zip(&self.spectrum) {
            *s *= k;
        }
        self.inverse.process(&mut signal);
        let scale = 1.0 / signal.len() as f64;
        // "valid" output i is full output i + g − 1; relplot keeps i = g/2 … g/2 + g − 1.
        (0..g)
            .map(|j| signal[g - 1 + g / 2 + j].re * scale)
            .collect()
    }
}

/// `exp(−(t − 0.5)² / 2σ²) / (√(2π) σ)` on the grid `t = j/(g − 1)`.
fn kernel_values(sigma: f64, points: usize) -> Vec<f64> {
    let norm = (2.0 * PI).sqrt() * sigma;
    linspace(points)
        .iter()
        .map(|&t| (-(t - 0.5) * (t - 0.5) / (2.0 * sigma * sigma)).exp() / norm)
        .collect()
}

/// Which grid point position `e` of the mirrored extension holds.
fn extended_index(e: usize, g: usize) -> usize {
    if e < g - 1 {
        g - 1 - e
    } else if e < 2 * g - 1 {
        e - (g - 1)
    } else {
        3 * g - 3 - e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_and_splatting_invert_on_the_grid() {
        let grid = splat(&[0.0, 0.25, 1.0], [1.0, 2.0, 3.0].into_iter(), 5);
        assert_eq!(grid, [1.0, 2.0, 0.0, 0.0, 3.0]);
        assert_eq!(interpolate(0.125, &grid), 1.5);
        assert_eq!(interpolate(1.0, &grid), 3.0);
    }

    /// The convolution as relplot writes it: `numpy.convolve(extended, kernel, "valid")`,
    /// summed directly.
    fn direct(grid: &[f64], sigma: f64) -> Vec<f64> {
        let g = grid.len();
        let kernel = kernel_values(sigma, g);
        (0..g)
            .map(|j| {
                (0..g)
                    .map(|m| grid[extended_index(g / 2 + j + m, g)] * kernel[g - 1 - m])
                    .sum()
            })
            .collect()
    }

    #[test]
    fn the_fft_convolution_is_the_direct_one() {
        let g = 1001;
        let grid: Vec<f64> = (0..g).map(|i| ((i * 37 % 101) as f64).sqrt()).collect();
        for sigma in [0.002, 0.05, 0.7] {
            let fast = Kernel::new(sigma, g).smooth(&grid);
            let slow = direct(&grid, sigma);
            let scale = slow.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (a, b) in fast.iter().zip(&slow) {
                assert!((a - b).abs() <= 1e-12 * scale, "σ {sigma}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn a_perfectly_calibrated_set_has_a_small_smooth_ece() {
        // Confidence 0.75 and exactly three quarters correct, repeated.
        let confidences = vec![0.75; 400];
        let correct: Vec<bool> = (0..400).map(|i| i % 4 != 0).collect();
        let ece = smooth_ece(&confidences, &correct);
        assert!(ece.value < 1e-3, "{ece:?}");
    }
}
