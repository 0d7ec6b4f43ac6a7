//! The new metrics and calibrators against their reference implementations, on the
//! hand-made sets of tests/reference/calibration_references.py (its output is
//! reference_values.rs): relplot's smECE, uncertainty-calibration's unbiased L2 CE,
//! scikit-learn's and netcal's isotonic regression, netcal's histogram binning, and a
//! SciPy L-BFGS-B fit of vector, matrix and Dirichlet scaling.

use super::reference_values::*;
use smoothlab::calibration::calibrators::top_label;
use smoothlab::calibration::scaling::{fit_affine, Form};
use smoothlab::calibration::smooth::smooth_ece;
use smoothlab::calibration::top_label::{HistogramBinning, IsotonicRegression};
use smoothlab::calibration::{
    calibrate, evaluate, softmax_into, Binned, Calibrator, Predictions, DEFAULT_BINS,
};

/// The set the Python script builds with the same arithmetic: confidences from the
/// golden-ratio sequence, correct when a second sequence falls below `f²`.
fn golden_set(n: usize) -> (Vec<f64>, Vec<bool>) {
    (0..n)
        .map(|i| {
            let i = i as f64;
            let f = ((i * 0.6180339887) % 1.0) * 0.9 + 0.1;
            (f, (i * 0.7548776662) % 1.0 < f * f)
        })
        .unzip()
}

fn validation() -> Predictions {
    Predictions::new(VAL_LOGITS.to_vec(), VAL_LABELS.to_vec(), 4).unwrap()
}

fn test_set() -> Predictions {
    Predictions::new(TEST_LOGITS.to_vec(), TEST_LABELS.to_vec(), 4).unwrap()
}

fn assert_close(actual: &[f64], expected: &[f64], tolerance: f64, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}");
    let worst = actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (a - e).abs())
        .fold(0.0, f64::max);
    // `cargo test -- --nocapture` shows how close each one is.
    eprintln!("{what}: worst deviation {worst:e}");
    assert!(
        worst <= tolerance,
        "{what}: worst deviation {worst:e} > {tolerance:e}\n ours {actual:?}\n reference {expected:?}"
    );
}

#[test]
fn smooth_ece_is_relplots() {
    for (n, value, sigma) in [
        (500, RELPLOT_SMECE_500, RELPLOT_SIGMA_500),
        (37, RELPLOT_SMECE_37, RELPLOT_SIGMA_37),
    ] {
        let (f, y) = golden_set(n);
        let ours = smooth_ece(&f, &y);
        assert_eq!(ours.sigma, sigma, "n = {n}: the same bisection steps");
        assert_close(&[ours.value], &[value], 1e-9, &format!("smECE, n = {n}"));
    }
}

#[test]
fn debiased_ece_is_kumars() {
    for (n, value) in [
        (500, KUMAR_UNBIASED_L2_CE_500),
        (37, KUMAR_UNBIASED_L2_CE_37),
    ] {
        let (f, y) = golden_set(n);
        let ours = Binned::equal_width(&f, &y, DEFAULT_BINS).debiased_l2_ece();
        assert_close(&[ours], &[value], 1e-12, &format!("debiased ECE, n = {n}"));
    }
}

#[test]
fn isotonic_regression_is_sklearns_and_netcals() {
    let (confidences, correct) = top_label(&validation());
    let fit = IsotonicRegression::fit(&confidences, &correct);
    let (test, _) = top_label(&test_set());
    let ours: Vec<f64> = test.iter().map(|&c| fit.map(c)).collect();
    assert_close(&ours, &SKLEARN_ISOTONIC, 1e-9, "sklearn IsotonicRegression");
    assert_close(&ours, &NETCAL_ISOTONIC, 1e-9, "netcal IsotonicRegression");
    assert!(fit.values.windows(2).all(|w| w[0] <= w[1]), "monotone");
}

#[test]
fn histogram_binning_is_netcals() {
    // netcal bins [a, b) when fitting and (a, b] when mapping; away from the edges the
    // two agree with smoothlab's (a, b].
    const { assert!(NEAREST_BIN_EDGE > 1e-9) };
    let (confidences, correct) = top_label(&validation());
    let fit = HistogramBinning::fit(&confidences, &correct, DEFAULT_BINS);
    let (test, _) = top_label(&test_set());
    let ours: Vec<f64> = test.iter().map(|&c| fit.map(c)).collect();
    assert_close(&ours, &NETCAL_HISTOGRAM, 1e-12, "netcal HistogramBinning");
}

/// Softmax of each row of `predictions`' logits, row after row.
fn probabilities(predictions: &Predictions) -> Vec<f64> {
    predictions
        .rows()
        .flat_map(|(logits, _)| {
            let mut p = vec![0.0; logits.len()];
            softmax_into(logits, 1.0, &mut p);
            p
        })
        .collect()
}

#[test]
fn affine_fits_are_scipys() {
    let (validation, test) = (validation(), test_set());
    for (form, objective, weights, bias, calibrated) in [
        (
            Form::Vector,
            SCIPY_VECTOR_OBJECTIVE,
            &SCIPY_VECTOR_WEIGHTS[..],
            &SCIPY_VECTOR_BIAS,
            &SCIPY_VECTOR_TEST_PROBABILITIES,
        ),
        (
            Form::Matrix,
            SCIPY_MATRIX_OBJECTIVE,
            &SCIPY_MATRIX_WEIGHTS[..],
            &SCIPY_MATRIX_BIAS,
            &SCIPY_MATRIX_TEST_PROBABILITIES,
        ),
        (
            Form::Dirichlet,
            SCIPY_DIRICHLET_OBJECTIVE,
            &SCIPY_DIRICHLET_WEIGHTS[..],
            &SCIPY_DIRICHLET_BIAS,
            &SCIPY_DIRICHLET_TEST_PROBABILITIES,
        ),
    ] {
        let fit = fit_affine(form, &validation);
        assert!(fit.converged, "{form:?}: {fit:?}");
        assert!(fit.objective_after <= fit.objective_before);
        assert_close(
            &[fit.objective_after],
            &[objective],
            1e-9,
            &format!("{form:?} objective"),
        );
        // The calibrated test probabilities, through f32 logits as a run stores them.
        let ours = probabilities(&fit.apply(&test).unwrap());
        assert_close(
            &ours,
            calibrated,
            1e-6,
            &format!("{form:?} test probabilities"),
        );
        // Adding one vector to every row of W (or a constant to b) leaves the softmax
        // unchanged; only ODIR's small penalty curves that direction, so both fits
        // stop a little apart along it: the parameters agree less tightly.
        assert_close(&fit.weights, weights, 1e-4, &format!("{form:?} weights"));
        assert_close(&fit.bias, bias, 1e-4, &format!("{form:?} bias"));
    }
}

#[test]
fn every_calibrator_lowers_the_validation_nll_of_an_overconfident_model() {
    let (validation, test) = (validation(), test_set());
    let temperature = calibrate(
        Calibrator::Temperature,
        &validation,
        &test,
        DEFAULT_BINS,
        None,
    )
    .unwrap()
    .validation_nll_after;
    for method in Calibrator::ALL {
        let result = calibrate(method, &validation, &test, DEFAULT_BINS, None).unwrap();
        assert!(
            result.validation_nll_after < result.validation_nll_before,
            "{method}: {result:?}"
        );
        if matches!(method, Calibrator::Vector | Calibrator::Matrix) {
            // Vector and matrix scaling contain temperature scaling (up to ODIR's
            // small penalty), so they end no higher than it.
            assert!(
                result.validation_nll_after <= temperature + 1e-3,
                "{method}: {} vs temperature {temperature}",
                result.validation_nll_after
            );
        }
        if matches!(method, Calibrator::Histogram | Calibrator::Isotonic) {
            let raw = evaluate(&test, DEFAULT_BINS, 1.0);
            assert_eq!(
                result.test.accuracy, raw.accuracy,
                "{method} keeps the argmax"
            );
        }
    }
}

/// Rows of probabilities `p`, each repeated 20 times with labels in exactly the
/// proportions of `p`: a perfectly calibrated set, logits `ln p`.
fn perfectly_calibrated() -> Predictions {
    let patterns: [[f64; 3]; 4] = [
        [0.5, 0.3, 0.2],
        [0.7, 0.2, 0.1],
        [0.15, 0.6, 0.25],
        [0.05, 0.1, 0.85],
    ];
    let (mut logits, mut labels) = (Vec::new(), Vec::new());
    for p in patterns {
        for (class, &share) in p.iter().enumerate() {
            for _ in 0..(share * 20.0).round() as usize {
                logits.extend(p.iter().map(|&q| q.ln() as f32));
                labels.push(class as u32);
            }
        }
    }
    Predictions::new(logits, labels, 3).unwrap()
}

#[test]
fn every_calibrator_leaves_a_perfectly_calibrated_set_alone() {
    let set = perfectly_calibrated();
    let raw = evaluate(&set, DEFAULT_BINS, 1.0);
    for method in Calibrator::ALL {
        let result = calibrate(method, &set, &set, DEFAULT_BINS, None).unwrap();
        // The identity is the exact optimum of every parametric fit here (the NLL's
        // gradient and ODIR's both vanish there), and each confidence's accuracy is
        // the confidence itself for the top-label maps.
        assert!(
            (result.test.nll - raw.nll).abs() < 1e-6,
            "{method}: NLL {} against {}",
            result.test.nll,
            raw.nll
        );
        assert!(
            (result.test.ece - raw.ece).abs() < 1e-6,
            "{method}: ECE {} against {}",
            result.test.ece,
            raw.ece
        );
    }
    for form in [Form::Vector, Form::Matrix, Form::Dirichlet] {
        let fit = fit_affine(form, &set);
        let identity: Vec<f64> = match form {
            Form::Vector => vec![1.0; 3],
            _ => (0..9).map(|i| f64::from(u8::from(i % 4 == 0))).collect(),
        };
        assert_close(
            &fit.weights,
            &identity,
            1e-6,
            &format!("{form:?} stays the identity"),
        );
        assert_close(&fit.bias, &[0.0; 3], 1e-6, &format!("{form:?} bias"));
    }
}
