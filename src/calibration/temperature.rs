//! Temperature scaling: the `T` minimising the mean NLL of `softmax(z / T)`.
//!
//! With `β = 1/T` the mean NLL is convex in `β`: its first derivative is the
//! mean of `E_p[z] - z_y` and its second the mean softmax variance of `z`.
//! [`fit_temperature`] finds the root of the first derivative by Newton's
//! method safeguarded with bisection on a sign-change bracket, which it first
//! expands from `β = 1` by factors of 10 towards the optimum: the optimum of
//! logits scaled by 1000 lies near `T = 1000` and is found there, not cut off at
//! a fixed bound.

use serde::{Deserialize, Serialize};

use super::predictions::Predictions;

/// Smallest temperature [`fit_temperature`] returns: where it stops when the NLL keeps
/// falling as `T → 0` (every sample classified correctly, with a margin).
pub const MIN_TEMPERATURE: f64 = 1e-6;
/// Largest temperature [`fit_temperature`] returns: where it stops when the NLL keeps
/// falling as `T → ∞` (the label's logit is below the others' on average).
pub const MAX_TEMPERATURE: f64 = 1e6;

/// The factor by which the bracket grows, towards the optimum, from `β = 1`.
const EXPANSION: f64 = 10.0;

/// The fit stops once `|dNLL/dβ|` is below this times the mean logit range.
const RELATIVE_GRADIENT_TOLERANCE: f64 = 1e-10;
/// Expanding the bracket takes at most 7 evaluations and bisection alone about 55
/// more to shrink it to machine precision, so this cap is never the reason a fit
/// stops early.
const MAX_EVALUATIONS: usize = 100;

/// Result of [`fit_temperature`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemperatureFit {
    /// The fitted temperature, in `[MIN_TEMPERATURE, MAX_TEMPERATURE]`.
    pub temperature: f64,
    /// Number of NLL evaluations (passes over the logits), the one at
    /// `T = 1` included.
    pub iterations: usize,
    /// Mean NLL at `T = 1`.
    pub nll_before: f64,
    /// Mean NLL at the fitted temperature; never above `nll_before`.
    pub nll_after: f64,
    /// `dNLL/dβ` at the fitted temperature (`β = 1/T`).
    pub gradient: f64,
    /// Whether the fit stopped at [`MIN_TEMPERATURE`] or [`MAX_TEMPERATURE`]:
    /// the NLL keeps falling towards `T → 0` (every sample classified
    /// correctly) or `T → ∞` (hardly any is), a limit rather than an optimum.
    pub at_bound: bool,
}

/// Mean NLL of `softmax(β z)` and its first two derivatives in `β`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NllDerivatives {
    /// Mean negative log-likelihood.
    pub nll: f64,
    /// `dNLL/dβ`.
    pub first: f64,
    /// `d²NLL/dβ²`, never negative.
    pub second: f64,
}

/// [`NllDerivatives`] of `predictions` at inverse temperature `beta`, in one
/// pass over the logits.
pub fn nll_derivatives(predictions: &Predictions, beta: f64) -> NllDerivatives {
    let mut weights = vec![0.0; predictions.classes()];
    let mut totals = NllDerivatives {
        nll: 0.0,
        first: 0.0,
        second: 0.0,
    };
    for (logits, label) in predictions.rows() {
        let row = row_derivatives(logits, label, beta, &mut weights);
        totals.nll += row.nll;
        totals.first += row.first;
        totals.second += row.second;
    }
    let n = predictions.len() as f64;
    NllDerivatives {
        nll: totals.nll / n,
        first: totals.first / n,
        second: totals.second / n,
    }
}

/// One row's NLL and derivatives, with the logits shifted by the row
/// maximum (`s_k = z_k - max`, which leaves every derivative unchanged).
/// `weights` is scratch space holding `exp(β s_k)`.
fn row_derivatives(logits: &[f32], label: usize, beta: f64, weights: &mut [f64]) -> NllDerivatives {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let shifted = |z: f32| f64::from(z) - f64::from(max);
    let mut sum = 0.0;
    let mut weighted_shift = 0.0;
    for (w, &z) in weights.iter_mut().zip(logits) {
        let s = shifted(z);
        *w = (beta * s).exp();
        sum += *w;
        weighted_shift += *w * s;
    }
    let mean_shift = weighted_shift / sum;
    // Two-pass variance: no cancellation when the softmax is nearly uniform.
    let variance = weights
        .iter()
        .zip(logits)
        .map(|(&w, &z)| {
            let deviation = shifted(z) - mean_shift;
            w * deviation * deviation
        })
        .sum::<f64>()
        / sum;
    let target = shifted(logits[label]);
    NllDerivatives {
        nll: sum.ln() - beta * target,
        first: mean_shift - target,
        second: variance,
    }
}

/// Fits the temperature minimising the mean NLL of `softmax(z / T)` over
/// `predictions`, within `[MIN_TEMPERATURE, MAX_TEMPERATURE]`.
///
/// If every row's logits are all equal the NLL does not depend on `T`, and
/// `T = 1` is returned.
pub fn fit_temperature(predictions: &Predictions) -> TemperatureFit {
    let start = nll_derivatives(predictions, 1.0);
    let scale = mean_logit_range(predictions);
    let minimum = if scale == 0.0 {
        Minimum {
            beta: 1.0,
            point: start,
            evaluations: 1,
            at_bound: false,
        }
    } else {
        minimise_convex(
            |beta| nll_derivatives(predictions, beta),
            start,
            RELATIVE_GRADIENT_TOLERANCE * scale,
            |below| limit_is_the_minimum(predictions, below),
        )
    };
    // Near the optimum the NLL is flat to rounding; never report a worse fit
    // than the starting point.
    let minimum = if minimum.point.nll > start.nll {
        Minimum {
            beta: 1.0,
            point: start,
            at_bound: false,
            ..minimum
        }
    } else {
        minimum
    };
    TemperatureFit {
        temperature: 1.0 / minimum.beta,
        iterations: minimum.evaluations,
        nll_before: start.nll,
        nll_after: minimum.point.nll,
        gradient: minimum.point.first,
        at_bound: minimum.at_bound,
    }
}

/// Whether the NLL keeps falling all the way to `T → ∞` (`below`: `β → 0`) or
/// `T → 0` (`β → ∞`), so that no finite temperature is optimal. As `β → 0` the
/// derivative tends to the mean of `mean_k z_k − z_y`; as `β → ∞`, to the mean of
/// `max z − z_y`, which is 0 exactly when every label is its row's argmax. The
/// derivative rises with `β`, so the minimum is the limit when that limit's
/// derivative has not changed sign.
fn limit_is_the_minimum(predictions: &Predictions, below: bool) -> bool {
    if below {
        nll_derivatives(predictions, 0.0).first >= 0.0
    } else {
        predictions
            .rows()
            .all(|(logits, label)| logits.iter().all(|&z| z <= logits[label]))
    }
}

/// Mean over rows of `max z - min z`; sets the scale of the derivative.
fn mean_logit_range(predictions: &Predictions) -> f64 {
    let total: f64 = predictions
        .rows()
        .map(|(logits, _)| {
            let (low, high) = logits
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(low, high), &z| {
                    (low.min(z), high.max(z))
                });
            f64::from(high) - f64::from(low)
        })
        .sum();
    total / predictions.len() as f64
}

/// Where [`minimise_convex`] stopped.
#[derive(Debug, Clone, Copy)]
struct Minimum {
    beta: f64,
    point: NllDerivatives,
    evaluations: usize,
    at_bound: bool,
}

/// Minimises a convex function of `β` over `[1/MAX_TEMPERATURE,
/// 1/MIN_TEMPERATURE]`, given its value and derivatives at `β = 1`, by
/// finding where the first derivative changes sign. `limit_is_the_minimum(below)`
/// says whether the function keeps falling to `β → 0` (`below`) or `β → ∞`; then
/// the search goes straight to that bound (the derivative there may be too
/// small to tell from zero).
fn minimise_convex(
    mut evaluate: impl FnMut(f64) -> NllDerivatives,
    start: NllDerivatives,
    tolerance: f64,
    limit_is_the_minimum: impl Fn(bool) -> bool,
) -> Minimum {
    let mut current = Minimum {
        beta: 1.0,
        point: start,
        evaluations: 1,
        at_bound: false,
    };
    if current.point.first.abs() <= tolerance {
        return current;
    }
    // The derivative increases with β, so its sign says which side the
    // minimum is on. Step towards it by factors of EXPANSION until the sign
    // changes (a bracket) or the range's bound is reached with the same sign
    // (the minimum is at or beyond it).
    let minimum_below = current.point.first > 0.0;
    let bound = if minimum_below {
        1.0 / MAX_TEMPERATURE
    } else {
        1.0 / MIN_TEMPERATURE
    };
    if limit_is_the_minimum(minimum_below) {
        return Minimum {
            beta: bound,
            point: evaluate(bound),
            evaluations: current.evaluations + 1,
            at_bound: true,
        };
    }
    let mut steps = 0;
    let outer = loop {
        // Powers of EXPANSION, not repeated products, so the bound is hit exactly.
        steps += if minimum_below { -1 } else { 1 };
        let next = EXPANSION
            .powi(steps)
            .clamp(1.0 / MAX_TEMPERATURE, 1.0 / MIN_TEMPERATURE);
        let point = evaluate(next);
        let reached = Minimum {
            beta: next,
            point,
            evaluations: current.evaluations + 1,
            at_bound: false,
        };
        if point.first.abs() <= tolerance {
            return reached;
        }
        let brackets = if minimum_below {
            point.first < 0.0
        } else {
            point.first > 0.0
        };
        if brackets {
            current.evaluations = reached.evaluations;
            break next;
        }
        if next == bound {
            return Minimum {
                at_bound: true,
                ..reached
            };
        }
        current = reached;
    };
    // Invariant: derivative < 0 at `low`, > 0 at `high`; `current` is one end.
    let (mut low, mut high) = (outer.min(current.beta), outer.max(current.beta));
    let mut step = high - low;
    let mut previous_step = step;
    while current.evaluations < MAX_EVALUATIONS {
        let NllDerivatives { first, second, .. } = current.point;
        let newton = current.beta - first / second;
        // Bisect when Newton leaves the bracket or is not at least halving
        // the step taken two iterations ago.
        let use_newton = second > 0.0
            && newton > low
            && newton < high
            && (2.0 * first).abs() <= (previous_step * second).abs();
        let next = if use_newton {
            newton
        } else {
            0.5 * (low + high)
        };
        previous_step = step;
        step = next - current.beta;
        if next == current.beta || high - low <= 4.0 * f64::EPSILON * high {
            break;
        }
        current = Minimum {
            beta: next,
            point: evaluate(next),
            evaluations: current.evaluations + 1,
            at_bound: false,
        };
        if current.point.first.abs() <= tolerance {
            break;
        }
        if current.point.first < 0.0 {
            low = next;
        } else {
            high = next;
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `f(β) = (β - target)² / 2 + (β - target)⁴`: convex, minimum at `target`.
    fn quartic(target: f64) -> impl Fn(f64) -> NllDerivatives {
        move |beta| {
            let d = beta - target;
            NllDerivatives {
                nll: d * d / 2.0 + d.powi(4),
                first: d + 4.0 * d.powi(3),
                second: 1.0 + 12.0 * d * d,
            }
        }
    }

    #[test]
    fn converges_inside_the_range() {
        // β = 1e-4 is T = 10,000, beyond the old fixed bound of 100.
        for target in [1e-4, 0.05, 0.7, 1.3, 42.0] {
            let f = quartic(target);
            let minimum = minimise_convex(&f, f(1.0), 1e-12, |_| false);
            assert!(
                (minimum.beta - target).abs() < 1e-9,
                "{target}: {minimum:?}"
            );
            assert!(!minimum.at_bound);
            assert!(minimum.evaluations < 40, "{target}: {minimum:?}");
        }
    }

    #[test]
    fn stops_at_the_bounds() {
        for (target, bound) in [(1e-8, 1.0 / MAX_TEMPERATURE), (1e8, 1.0 / MIN_TEMPERATURE)] {
            let f = quartic(target);
            let minimum = minimise_convex(&f, f(1.0), 1e-12, |_| false);
            assert_eq!(minimum.beta, bound);
            assert!(minimum.at_bound);
            // β = 1, then six steps of 10 to the bound.
            assert_eq!(minimum.evaluations, 7);
        }
    }

    #[test]
    fn flat_second_derivative_falls_back_to_bisection() {
        // Linear pieces: Newton is useless where the curvature is zero.
        let f = |beta: f64| NllDerivatives {
            nll: (beta - 3.0).abs(),
            first: (beta - 3.0).signum(),
            second: 0.0,
        };
        let minimum = minimise_convex(f, f(1.0), 1e-12, |_| false);
        assert!((minimum.beta - 3.0).abs() < 1e-12, "{minimum:?}");
        assert!(minimum.evaluations <= MAX_EVALUATIONS);
    }
}
