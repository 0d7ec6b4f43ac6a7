//! The post-hoc calibrators by name: each is fitted on validation predictions and
//! evaluated on test predictions, with what it fitted, how the fit went and every test
//! metric after it.

use std::num::NonZeroUsize;

use serde::{Deserialize, Serialize};

use super::bootstrap::Bootstrap;
use super::metrics::{evaluate, evaluate_top_label, evaluate_with_intervals, Metrics};
use super::predictions::{Predictions, PredictionsError};
use super::scaling::{fit_affine, AffineSummary, Form, GRADIENT_TOLERANCE};
use super::softmax::softmax_into;
use super::temperature::fit_temperature;
use super::top_label::{HistogramBinning, IsotonicRegression};

/// A post-hoc calibrator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Calibrator {
    /// `softmax(z / T)`, one parameter (Guo et al. 2017).
    Temperature,
    /// `softmax(w ⊙ z + b)`, 2K parameters.
    Vector,
    /// `softmax(W z + b)`, K² + K parameters, ODIR-regularised.
    Matrix,
    /// `softmax(W ln softmax(z) + b)`, ODIR-regularised (Kull et al. 2019).
    Dirichlet,
    /// Top-label histogram binning over the evaluation's bins.
    Histogram,
    /// Top-label isotonic regression.
    Isotonic,
}

impl Calibrator {
    pub const ALL: [Self; 6] = [
        Self::Temperature,
        Self::Vector,
        Self::Matrix,
        Self::Dirichlet,
        Self::Histogram,
        Self::Isotonic,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Temperature => "temperature",
            Self::Vector => "vector",
            Self::Matrix => "matrix",
            Self::Dirichlet => "dirichlet",
            Self::Histogram => "histogram",
            Self::Isotonic => "isotonic",
        }
    }

    /// As tables and figures label it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Temperature => "temperature scaling",
            Self::Vector => "vector scaling",
            Self::Matrix => "matrix scaling",
            Self::Dirichlet => "Dirichlet calibration",
            Self::Histogram => "histogram binning",
            Self::Isotonic => "isotonic regression",
        }
    }
}

impl std::fmt::Display for Calibrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Calibrator {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|c| c.name()).collect();
                format!(
                    "unknown calibrator {s:?}: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// What a calibrator fitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Fitted {
    Temperature { temperature: f64, at_bound: bool },
    Affine(AffineSummary),
    Histogram(HistogramBinning),
    Isotonic(IsotonicRegression),
}

/// One calibrator fitted on validation predictions and applied to test predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibrated {
    pub method: Calibrator,
    pub parameters: Fitted,
    /// Optimiser iterations (temperature: NLL evaluations; the top-label methods fit
    /// in closed form: 0).
    pub iterations: u64,
    /// Whether the fit met its stopping rule (the top-label methods always do).
    pub converged: bool,
    /// Norm of the objective's gradient where an iterative fit stopped, and the
    /// tolerance it was fitted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gradient_norm: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gradient_tolerance: Option<f64>,
    /// Mean NLL of the validation predictions before and after calibration.
    pub validation_nll_before: f64,
    pub validation_nll_after: f64,
    /// Every metric of the calibrated test predictions.
    pub test: Metrics,
}

/// Fits `method` on `validation` and evaluates the result on `test` with `bins` bins
/// (histogram binning uses the same bins). An error only where an affine map sends a
/// logit beyond f32.
pub fn calibrate(
    method: Calibrator,
    validation: &Predictions,
    test: &Predictions,
    bins: NonZeroUsize,
    bootstrap: Option<&Bootstrap>,
) -> Result<Calibrated, PredictionsError> {
    let test_metrics = |predictions: &Predictions, temperature: f64| match bootstrap {
        Some(b) => evaluate_with_intervals(predictions, bins, temperature, b),
        None => evaluate(predictions, bins, temperature),
    };
    let before = evaluate(validation, bins, 1.0).nll;
    let calibrated = match method {
        Calibrator::Temperature => {
            let fit = fit_temperature(validation);
            Calibrated {
                method,
                parameters: Fitted::Temperature {
                    temperature: fit.temperature,
                    at_bound: fit.at_bound,
                },
                iterations: fit.iterations as u64,
                converged: true,
                gradient_norm: Some(fit.gradient.abs()),
                gradient_tolerance: None,
                validation_nll_before: fit.nll_before,
                validation_nll_after: fit.nll_after,
                test: test_metrics(test, fit.temperature),
            }
        }
        Calibrator::Vector | Calibrator::Matrix | Calibrator::Dirichlet => {
            let form = match method {
                Calibrator::Vector => Form::Vector,
                Calibrator::Matrix => Form::Matrix,
                _ => Form::Dirichlet,
            };
            let fit = fit_affine(form, validation);
            Calibrated {
                method,
                parameters: Fitted::Affine(fit.summary()),
                iterations: fit.iterations,
                converged: fit.converged,
                gradient_norm: Some(fit.gradient_norm),
                gradient_tolerance: Some(GRADIENT_TOLERANCE),
                validation_nll_before: before,
                validation_nll_after: evaluate(&fit.apply(validation)?, bins, 1.0).nll,
                test: test_metrics(&fit.apply(test)?, 1.0),
            }
        }
        Calibrator::Histogram | Calibrator::Isotonic => {
            let (confidences, correct) = top_label(validation);
            let (parameters, map): (Fitted, Box<dyn Fn(f64) -> f64>) = match method {
                Calibrator::Histogram => {
                    let fit = HistogramBinning::fit(&confidences, &correct, bins);
                    (
                        Fitted::Histogram(fit.clone()),
                        Box::new(move |c| fit.map(c)),
                    )
                }
                _ => {
                    let fit = IsotonicRegression::fit(&confidences, &correct);
                    (Fitted::Isotonic(fit.clone()), Box::new(move |c| fit.map(c)))
                }
            };
            Calibrated {
                method,
                parameters,
                iterations: 0,
                converged: true,
                gradient_norm: None,
                gradient_tolerance: None,
                validation_nll_before: before,
                validation_nll_after: evaluate_top_label(validation, bins, &map, None).nll,
                test: evaluate_top_label(test, bins, &map, bootstrap),
            }
        }
    };
    Ok(calibrated)
}

/// Each sample's top-label confidence and whether its prediction is right.
pub fn top_label(predictions: &Predictions) -> (Vec<f64>, Vec<bool>) {
    let mut probabilities = vec![0.0; predictions.classes()];
    predictions
        .rows()
        .map(|(logits, label)| {
            let row = softmax_into(logits, 1.0, &mut probabilities);
            (probabilities[row.prediction], row.prediction == label)
        })
        .unzip()
}
