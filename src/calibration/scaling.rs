//! Vector, matrix and Dirichlet scaling: affine maps of a logit row, fitted by L-BFGS
//! on the mean NLL of the validation split.
//!
//! For a row `x` (the logits `z`, or `ln softmax(z)` for Dirichlet calibration, Kull et
//! al. 2019) the calibrated logits are
//!
//! * vector scaling: `s = w ⊙ x + b` (2K parameters, Guo et al. 2017);
//! * matrix scaling: `s = W x + b` (K² + K parameters, Guo et al. 2017);
//! * Dirichlet calibration: matrix scaling of `x = ln softmax(z)`.
//!
//! The objective is `mean_i −ln softmax(s_i)_{y_i}`, plus for the two matrix forms
//! Kull et al.'s ODIR (off-diagonal and intercept regularisation)
//! `λ/(K(K−1)) Σ_{j≠k} W_jk² + μ/K Σ_k b_k²`, which keeps them sane when K² is not
//! small next to the number of validation samples. Every fit starts at the identity
//! (`w = 1`, `W = I`, `b = 0`: the uncalibrated logits), so it never ends above the
//! uncalibrated validation NLL. The gradient is exact: with `p = softmax(s)` and
//! `g_i = (p_i − e_{y_i}) / n`, `∂/∂W = Σ_i g_i x_iᵀ`, `∂/∂b = Σ_i g_i`,
//! `∂/∂w = Σ_i g_i ⊙ x_i`. The products run through gemm, on one thread.

use argmin::core::{CostFunction, Executor, Gradient, State, TerminationReason};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

use super::predictions::{Predictions, PredictionsError};
use crate::kernels::cpu::{matmul_on_this_thread, Mat, MatMut};

/// The fit stops once the gradient's Euclidean norm is below this.
pub const GRADIENT_TOLERANCE: f64 = 1e-8;
/// L-BFGS iterations at most; a fit that reaches it says so (`converged: false`).
pub const MAX_ITERATIONS: u64 = 1000;
/// Curvature pairs L-BFGS keeps.
const MEMORY: usize = 30;
/// ODIR's weights (λ on the off-diagonal, μ on the intercepts), for matrix scaling and
/// Dirichlet calibration. Kull et al. choose them by cross-validation; these fixed
/// values barely move a fit on thousands of samples with K = 10 and keep K = 100 fits
/// from chasing noise in 10,100 parameters.
pub const ODIR_LAMBDA: f64 = 1e-2;
pub const ODIR_MU: f64 = 1e-2;

/// Which affine map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Vector,
    Matrix,
    Dirichlet,
}

/// A fitted affine map: `s = W x + b` (for vector scaling `W` is diagonal).
#[derive(Debug, Clone, PartialEq)]
pub struct AffineFit {
    pub form: Form,
    pub classes: usize,
    /// Vector scaling: the K weights; the matrix forms: `W` row-major (K × K).
    pub weights: Vec<f64>,
    pub bias: Vec<f64>,
    pub iterations: u64,
    pub converged: bool,
    /// Euclidean norm of the objective's gradient where the fit stopped.
    pub gradient_norm: f64,
    /// The regularised objective at the start (the identity) and where it stopped.
    pub objective_before: f64,
    pub objective_after: f64,
}

/// What result.json records of an [`AffineFit`]: everything for vector scaling, a
/// summary of `W` for the matrix forms (K² numbers are too many to read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AffineSummary {
    /// Vector scaling's weights; absent for the matrix forms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Vec<f64>>,
    pub bias: Vec<f64>,
    /// The diagonal of `W` (vector scaling: the weights): mean, smallest, largest.
    pub diagonal_mean: f64,
    pub diagonal_min: f64,
    pub diagonal_max: f64,
    /// The off-diagonal entries of `W`: root mean square and largest magnitude (0 for
    /// vector scaling).
    pub off_diagonal_rms: f64,
    pub off_diagonal_max_abs: f64,
    /// ODIR's (λ, μ); absent for vector scaling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub odir: Option<[f64; 2]>,
}

impl AffineFit {
    /// The calibrated logits of `predictions`, as new predictions (an error only where
    /// a calibrated logit overflows f32).
    pub fn apply(&self, predictions: &Predictions) -> Result<Predictions, PredictionsError> {
        let inputs = inputs(self.form, predictions);
        let scores = self.scores(&inputs, predictions.len());
        let logits = scores.iter().map(|&s| s as f32).collect();
        Predictions::new(logits, predictions.labels().to_vec(), self.classes)
    }

    fn scores(&self, inputs: &[f64], n: usize) -> Vec<f64> {
        affine(
            self.form,
            self.classes,
            &self.weights,
            &self.bias,
            inputs,
            n,
        )
    }

    pub fn summary(&self) -> AffineSummary {
        let k = self.classes;
        let diagonal: Vec<f64> = match self.form {
            Form::Vector => self.weights.clone(),
            _ => (0..k).map(|j| self.weights[j * k + j]).collect(),
        };
        let off: Vec<f64> = match self.form {
            Form::Vector => Vec::new(),
            _ => (0..k * k)
                .filter(|i| i / k != i % k)
                .map(|i| self.weights[i])
                .collect(),
        };
        let rms = if off.is_empty() {
            0.0
        } else {
            (off.iter().map(|w| w * w).sum::<f64>() / off.len() as f64).sqrt()
        };
        AffineSummary {
            weights: (self.form == Form::Vector).then(|| self.weights.clone()),
            bias: self.bias.clone(),
            diagonal_mean: diagonal.iter().sum::<f64>() / k as f64,
            diagonal_min: diagonal.iter().copied().fold(f64::INFINITY, f64::min),
            diagonal_max: diagonal.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            off_diagonal_rms: rms,
            off_diagonal_max_abs: off.iter().fold(0.0, |m, w| m.max(w.abs())),
            odir: (self.form != Form::Vector).then_some([ODIR_LAMBDA, ODIR_MU]),
        }
    }
}

/// Fits `form` on `predictions` (the validation split).
pub fn fit_affine(form: Form, predictions: &Predictions) -> AffineFit {
    let problem = Objective::new(form, predictions);
    let start = problem.identity();
    let (objective_before, _) = problem.value_and_gradient(&start);
    let (mut best, mut iterations, mut converged) = (start.clone(), 0, false);
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), MEMORY)
        .with_tolerance_grad(GRADIENT_TOLERANCE)
        .and_then(|s| s.with_tolerance_cost(0.0))
        .expect("valid tolerances");
    // A line search that can no longer make progress (the objective flat to rounding)
    // ends the run with an error; the best point so far is then the answer.
    if let Ok(result) = Executor::new(&problem, solver)
        .configure(|state| state.param(start).max_iters(MAX_ITERATIONS))
        .run()
    {
        let state = result.state();
        if let Some(param) = state.get_best_param() {
            best = param.clone();
        }
        iterations = state.get_iter();
        converged = state.get_termination_reason() == Some(&TerminationReason::SolverConverged);
    }
    let (objective_after, gradient) = problem.value_and_gradient(&best);
    let gradient_norm = gradient.iter().map(|g| g * g).sum::<f64>().sqrt();
    // The identity is the start, so a fit never ends above it; keep that true even
    // where the last accepted step was rounding noise.
    if objective_after > objective_before {
        best = problem.identity();
    }
    let k = problem.classes;
    let actual = problem.to_actual(&best);
    let (weights, bias) = problem.split(&actual);
    AffineFit {
        form,
        classes: k,
        weights: weights.to_vec(),
        bias: bias.to_vec(),
        iterations,
        converged: converged || gradient_norm <= GRADIENT_TOLERANCE,
        gradient_norm,
        objective_before,
        objective_after: objective_after.min(objective_before),
    }
}

/// What the map is applied to: the logits, or their log-softmax for Dirichlet.
fn inputs(form: Form, predictions: &Predictions) -> Vec<f64> {
    let mut out = Vec::with_capacity(predictions.logits().len());
    for (logits, _) in predictions.rows() {
        match form {
            Form::Dirichlet => {
                let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let max = f64::from(max);
                let sum: f64 = logits.iter().map(|&z| (f64::from(z) - max).exp()).sum();
                let log_normalizer = max + sum.ln();
                out.extend(logits.iter().map(|&z| f64::from(z) - log_normalizer));
            }
            _ => out.extend(logits.iter().map(|&z| f64::from(z))),
        }
    }
    out
}

/// `s_i = W x_i + b` for every row (row-major n × K), `W` diagonal for vector scaling.
fn affine(form: Form, k: usize, weights: &[f64], bias: &[f64], x: &[f64], n: usize) -> Vec<f64> {
    let mut scores = Vec::with_capacity(n * k);
    match form {
        Form::Vector => {
            for row in x.chunks_exact(k) {
                scores.extend(
                    row.iter()
                        .zip(weights)
                        .zip(bias)
                        .map(|((x, w), b)| w * x + b),
                );
            }
        }
        _ => {
            scores.extend((0..n).flat_map(|_| bias.iter().copied()));
            // S (n × K) += X (n × K) · Wᵀ (K × K).
            matmul_on_this_thread(
                Mat::row_major(x, n, k),
                Mat::row_major(weights, k, k).t(),
                MatMut::row_major(&mut scores, n, k),
                true,
            )
            .expect("shapes that agree");
        }
    }
    scores
}

/// A point with the objective's value and gradient there.
type Evaluated = (Vec<f64>, f64, Vec<f64>);

/// The regularised mean NLL of one form on one set of predictions.
///
/// The optimiser works on inputs with each column divided by its root mean square
/// (`x'_k = x_k / s_k`, so `W'_jk = W_jk s_k`): the log-probabilities Dirichlet
/// calibration maps run to −50 where the logits run to ±10, and unscaled the weights'
/// gradients dwarf the biases' and L-BFGS crawls. The penalty and the result are on
/// the actual weights.
struct Objective {
    form: Form,
    classes: usize,
    n: usize,
    /// The scaled inputs `x'`, row-major n × K.
    inputs: Vec<f64>,
    /// `s_k`, one per input column.
    scales: Vec<f64>,
    labels: Vec<usize>,
    /// The last point evaluated, with its value and gradient: the line search asks for
    /// the value and then the gradient at the same point.
    last: RefCell<Option<Evaluated>>,
}

impl Objective {
    fn new(form: Form, predictions: &Predictions) -> Self {
        let k = predictions.classes();
        let n = predictions.len();
        let mut inputs = inputs(form, predictions);
        let mut scales = vec![0.0; k];
        for row in inputs.chunks_exact(k) {
            scales.iter_mut().zip(row).for_each(|(s, x)| *s += x * x);
        }
        for s in &mut scales {
            *s = (*s / n as f64).sqrt();
            // An all-zero column: nothing to scale.
            if *s == 0.0 || !s.is_finite() {
                *s = 1.0;
            }
        }
        for row in inputs.chunks_exact_mut(k) {
            row.iter_mut().zip(&scales).for_each(|(x, s)| *x /= s);
        }
        Self {
            form,
            classes: k,
            n,
            inputs,
            scales,
            labels: predictions.labels().iter().map(|&y| y as usize).collect(),
            last: RefCell::new(None),
        }
    }

    /// [`Self::value_and_gradient`], remembering the last point.
    fn evaluate(&self, param: &[f64]) -> (f64, Vec<f64>) {
        if let Some((at, value, gradient)) = self.last.borrow().as_ref() {
            if at.as_slice() == param {
                return (*value, gradient.clone());
            }
        }
        let (value, gradient) = self.value_and_gradient(param);
        *self.last.borrow_mut() = Some((param.to_vec(), value, gradient.clone()));
        (value, gradient)
    }

    /// The scale of weight `i` (row-major for the matrix forms): its input column's.
    fn weight_scale(&self, i: usize) -> f64 {
        self.scales[i % self.classes]
    }

    /// Optimiser coordinates to actual weights and bias, or back.
    fn to_actual(&self, param: &[f64]) -> Vec<f64> {
        let w = self.weight_count();
        param
            .iter()
            .enumerate()
            .map(|(i, &p)| if i < w { p / self.weight_scale(i) } else { p })
            .collect()
    }

    fn weight_count(&self) -> usize {
        match self.form {
            Form::Vector => self.classes,
            _ => self.classes * self.classes,
        }
    }

    /// `w = 1` or `W = I`, `b = 0`, in optimiser coordinates.
    fn identity(&self) -> Vec<f64> {
        let k = self.classes;
        let mut param = vec![0.0; self.weight_count() + k];
        match self.form {
            Form::Vector => param[..k].copy_from_slice(&self.scales),
            _ => (0..k).for_each(|j| param[j * k + j] = self.scales[j]),
        }
        param
    }

    fn split<'a>(&self, param: &'a [f64]) -> (&'a [f64], &'a [f64]) {
        param.split_at(self.weight_count())
    }

    fn value_and_gradient(&self, param: &[f64]) -> (f64, Vec<f64>) {
        let (k, n) = (self.classes, self.n);
        let (weights, bias) = self.split(param);
        let mut scores = affine(self.form, k, weights, bias, &self.inputs, n);
        // Turn each score row into g_i = (softmax(s_i) − e_y) / n, summing the NLL.
        let mut nll = 0.0;
        for (row, &label) in scores.chunks_exact_mut(k).zip(&self.labels) {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let label_shifted = row[label] - max;
            let mut sum = 0.0;
            for s in row.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            nll += sum.ln() - label_shifted;
            for s in row.iter_mut() {
                *s /= sum * n as f64;
            }
            row[label] -= 1.0 / n as f64;
        }
        let mut value = nll / n as f64;
        let mut gradient = vec![0.0; param.len()];
        let (grad_w, grad_b) = gradient.split_at_mut(self.weight_count());
        for row in scores.chunks_exact(k) {
            grad_b.iter_mut().zip(row).for_each(|(gb, g)| *gb += g);
        }
        match self.form {
            Form::Vector => {
                for (g, x) in scores.chunks_exact(k).zip(self.inputs.chunks_exact(k)) {
                    for j in 0..k {
                        grad_w[j] += g[j] * x[j];
                    }
                }
            }
            _ => {
                // ∂/∂W (K × K) = Gᵀ (K × n) · X (n × K).
                matmul_on_this_thread(
                    Mat::row_major(&scores, n, k).t(),
                    Mat::row_major(&self.inputs, n, k),
                    MatMut::row_major(grad_w, k, k),
                    false,
                )
                .expect("shapes that agree");
                if k > 1 {
                    // On the actual weights W_jk = W'_jk / s_k.
                    let off = ODIR_LAMBDA / (k * (k - 1)) as f64;
                    for (i, (w, g)) in weights.iter().zip(grad_w.iter_mut()).enumerate() {
                        if i / k != i % k {
                            let scale = self.weight_scale(i);
                            value += off * (w / scale) * (w / scale);
                            *g += 2.0 * off * w / (scale * scale);
                        }
                    }
                }
                let intercept = ODIR_MU / k as f64;
                for (b, g) in bias.iter().zip(grad_b.iter_mut()) {
                    value += intercept * b * b;
                    *g += 2.0 * intercept * b;
                }
            }
        }
        (value, gradient)
    }
}

impl CostFunction for &Objective {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, param: &Vec<f64>) -> Result<f64, argmin::core::Error> {
        Ok(self.evaluate(param).0)
    }
}

impl Gradient for &Objective {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, param: &Vec<f64>) -> Result<Vec<f64>, argmin::core::Error> {
        Ok(self.evaluate(param).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn predictions(logits: &[f32], labels: &[u32], k: usize) -> Predictions {
        Predictions::new(logits.to_vec(), labels.to_vec(), k).unwrap()
    }

    /// Central finite differences of the objective against its analytic gradient, at a
    /// point away from the identity.
    #[test]
    fn gradients_match_finite_differences() {
        let p = predictions(
            &[
                2.0, -1.0, 0.5, 0.1, 0.3, 1.7, -0.4, 2.2, 0.0, 1.0, 1.0, -2.0,
            ],
            &[0, 1, 2, 2],
            3,
        );
        for form in [Form::Vector, Form::Matrix, Form::Dirichlet] {
            let objective = Objective::new(form, &p);
            let param: Vec<f64> = objective
                .identity()
                .iter()
                .enumerate()
                .map(|(i, v)| v + 0.1 * ((i * 7 % 5) as f64 - 2.0))
                .collect();
            let (_, gradient) = objective.value_and_gradient(&param);
            for i in 0..param.len() {
                let h = 1e-6;
                let mut up = param.clone();
                up[i] += h;
                let mut down = param.clone();
                down[i] -= h;
                let numeric = (objective.value_and_gradient(&up).0
                    - objective.value_and_gradient(&down).0)
                    / (2.0 * h);
                assert!(
                    (numeric - gradient[i]).abs() < 1e-8,
                    "{form:?} parameter {i}: analytic {} numeric {numeric}",
                    gradient[i]
                );
            }
        }
    }
}
