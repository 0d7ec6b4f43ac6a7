//! Calibration metrics, temperature scaling and prediction files.

mod bootstrap;
mod reference;
#[rustfmt::skip]
mod reference_values;

use std::io::{Cursor, Write};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::sample::select;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use smoothlab::calibration::io::{
    parse_predictions, read_predictions, read_predictions_split, safetensors_bytes, Format,
};
use smoothlab::calibration::{
    bin_edge, bin_index, evaluate, fit_temperature, nll_derivatives, softmax_into, Binned, Metrics,
    Predictions, PredictionsError, DEFAULT_BINS, MAX_TEMPERATURE, MIN_TEMPERATURE,
};

// ---------------------------------------------------------------------------
// Helpers

fn bins(m: usize) -> NonZeroUsize {
    NonZeroUsize::new(m).unwrap()
}

fn from_rows(rows: &[&[f32]], labels: &[u32]) -> Predictions {
    let classes = rows[0].len();
    Predictions::new(rows.concat(), labels.to_vec(), classes).unwrap()
}

/// Predictions whose softmax is `rows` (up to f32 rounding of `ln p`).
fn from_probabilities(rows: &[&[f64]], labels: &[u32]) -> Predictions {
    let logits: Vec<Vec<f32>> = rows
        .iter()
        .map(|row| row.iter().map(|p| p.ln() as f32).collect())
        .collect();
    let rows: Vec<&[f32]> = logits.iter().map(Vec::as_slice).collect();
    from_rows(&rows, labels)
}

#[track_caller]
fn assert_close(actual: f64, expected: f64, tolerance: f64) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "expected {expected}, got {actual} (tolerance {tolerance})"
    );
}

/// Every scalar metric, named, for comparisons.
fn scalars(m: &Metrics) -> Vec<(&'static str, f64)> {
    vec![
        ("accuracy", m.accuracy),
        ("top5_accuracy", m.top5_accuracy.unwrap_or(-1.0)),
        ("nll", m.nll),
        ("brier", m.brier),
        ("ece", m.ece),
        ("mce", m.mce),
        ("rmsce", m.rmsce),
        ("adaptive_ece", m.adaptive_ece),
        ("classwise_ece", m.classwise_ece),
        ("mean_confidence", m.mean_confidence),
        ("mean_entropy", m.mean_entropy),
        ("mean_true_logit_gap", m.mean_true_logit_gap),
        ("mean_max_logit_gap", m.mean_max_logit_gap),
        ("mean_logit_norm", m.mean_logit_norm),
    ]
}

fn confidences(p: &Predictions) -> Vec<f64> {
    let mut probabilities = vec![0.0; p.classes()];
    p.logits()
        .chunks_exact(p.classes())
        .map(|row| {
            let softmax = softmax_into(row, 1.0, &mut probabilities);
            probabilities[softmax.prediction]
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Hand-computed metrics

/// Five binary samples, as (p0, p1) -> label, confidence, correct?
///   s1 (.90, .10) y=0  conf .90 correct
///   s2 (.70, .30) y=1  conf .70 wrong
///   s3 (.30, .70) y=1  conf .70 correct
///   s4 (.55, .45) y=0  conf .55 correct
///   s5 (.95, .05) y=1  conf .95 wrong
fn five_binary() -> Predictions {
    from_probabilities(
        &[
            &[0.9, 0.1],
            &[0.7, 0.3],
            &[0.3, 0.7],
            &[0.55, 0.45],
            &[0.95, 0.05],
        ],
        &[0, 1, 1, 0, 1],
    )
}

#[test]
fn equal_width_errors_by_hand() {
    // M = 5, edges 0, .2, .4, .6, .8, 1:
    //   bin 2 (.4,.6]: {s4}     conf .55,            acc 1   gap .45
    //   bin 3 (.6,.8]: {s2, s3} conf .70,            acc .5  gap .20
    //   bin 4 (.8, 1]: {s1, s5} conf (.9+.95)/2=.925, acc .5  gap .425
    // ECE   = (1·.45 + 2·.20 + 2·.425) / 5 = 1.7 / 5 = .34
    // MCE   = .45
    // RMSCE = sqrt((1·.2025 + 2·.04 + 2·.180625) / 5) = sqrt(.12875) = .3588175
    let m = evaluate(&five_binary(), bins(5), 1.0);
    assert_close(m.ece, 0.34, 1e-6);
    assert_close(m.mce, 0.45, 1e-6);
    assert_close(m.rmsce, 0.12875f64.sqrt(), 1e-6);
    // Accuracy 3/5; mean confidence (.9+.7+.7+.55+.95)/5 = 3.8/5.
    assert_close(m.accuracy, 0.6, 1e-12);
    assert_close(m.mean_confidence, 0.76, 1e-6);
    assert_eq!(m.top5_accuracy, None);
}

#[test]
fn reliability_bins_by_hand() {
    let m = evaluate(&five_binary(), bins(5), 1.0);
    let counts: Vec<usize> = m.reliability.iter().map(|b| b.count).collect();
    assert_eq!(counts, [0, 0, 1, 2, 2]);
    for (m_index, bin) in m.reliability.iter().enumerate() {
        assert_eq!(bin.lower, m_index as f64 / 5.0);
        assert_eq!(bin.upper, (m_index + 1) as f64 / 5.0);
    }
    // Empty bins carry no confidence or accuracy.
    assert_eq!(
        (m.reliability[0].confidence, m.reliability[0].accuracy),
        (None, None)
    );
    assert_eq!(m.reliability[1].confidence, None);
    let expected = [(2, 0.55, 1.0), (3, 0.7, 0.5), (4, 0.925, 0.5)];
    for (index, confidence, accuracy) in expected {
        assert_close(m.reliability[index].confidence.unwrap(), confidence, 1e-6);
        assert_eq!(m.reliability[index].accuracy, Some(accuracy));
    }
}

#[test]
fn adaptive_ece_by_hand() {
    // Sorted by confidence (stable, so s2 precedes s3 at the tied .70):
    //   .55 c (s4), .70 w (s2), .70 c (s3), .90 c (s1), .95 w (s5)
    // M = 2: bin 0 = positions [0, floor(5/2)=2), bin 1 = [2, 5)
    //   bin 0: acc 1/2, conf (.55+.70)/2 = .625,        gap .125
    //   bin 1: acc 2/3, conf (.70+.90+.95)/3 = .85,     gap .18333
    //   ECE = (2·.125 + 3·.18333) / 5 = (.25 + .55) / 5 = .16
    let m = evaluate(&five_binary(), bins(2), 1.0);
    assert_close(m.adaptive_ece, 0.16, 1e-6);
    // M = 5: one sample per bin, gaps .45, .70, .30, .10, .95 -> 2.5 / 5.
    let m = evaluate(&five_binary(), bins(5), 1.0);
    assert_close(m.adaptive_ece, 0.5, 1e-6);
    // M = 8 > n: bins floor(b·5/8) hold positions 0,1,2,3,4 in bins 1,3,4,6,7;
    // still one sample per non-empty bin.
    let m = evaluate(&five_binary(), bins(8), 1.0);
    assert_close(m.adaptive_ece, 0.5, 1e-6);
}

/// Three samples, three classes:
///   s1 (.60, .30, .10) y=0
///   s2 (.20, .45, .35) y=2
///   s3 (.10, .10, .80) y=2
fn three_class() -> Predictions {
    from_probabilities(
        &[&[0.6, 0.3, 0.1], &[0.2, 0.45, 0.35], &[0.1, 0.1, 0.8]],
        &[0, 2, 2],
    )
}

#[test]
fn classwise_ece_by_hand() {
    // M = 2, bins (0, .5] and (.5, 1]:
    // class 0: p = .6(y), .2, .1   bin 1 {.6 y}: |1 - .6| = .4
    //                              bin 0 {.2, .1}: |0 - .15|·2 = .3   ECE_0 = .70/3
    // class 1: p = .3, .45, .1     bin 0 all, none y: mean .85/3·3 = .85 ECE_1 = .85/3
    // class 2: p = .1, .35(y), .8(y)
    //                              bin 0 {.1, .35 y}: |.5 - .225|·2 = .55
    //                              bin 1 {.8 y}: |1 - .8| = .2        ECE_2 = .75/3
    // classwise = (.70 + .85 + .75) / 9 = 2.3 / 9
    let m = evaluate(&three_class(), bins(2), 1.0);
    assert_close(m.classwise_ece, 2.3 / 9.0, 1e-6);
}

#[test]
fn proper_scores_by_hand() {
    let m = evaluate(&three_class(), DEFAULT_BINS, 1.0);
    // Brier: s1 (.6-1)² + .3² + .1² = .16 + .09 + .01 = .26
    //        s2 .2² + .45² + (.35-1)² = .04 + .2025 + .4225 = .665
    //        s3 .1² + .1² + (.8-1)² = .01 + .01 + .04 = .06
    //        mean (.26 + .665 + .06) / 3 = .985 / 3
    assert_close(m.brier, 0.985 / 3.0, 1e-6);
    // NLL: -(ln .6 + ln .35 + ln .8) / 3 = (.5108256 + 1.0498221 + .2231436) / 3
    assert_close(m.nll, 0.594_597_1, 1e-6);
    // Entropy: s1 .6·.5108256 + .3·1.2039728 + .1·2.3025851 = .8979457
    //          s2 .2·1.6094379 + .45·.7985077 + .35·1.0498221 = 1.0486538
    //          s3 .1·2.3025851·2 + .8·.2231436 = .6390319
    //          mean 2.5856314 / 3
    assert_close(m.mean_entropy, 0.861_877_1, 1e-6);
    // Predictions 0, 1, 2 against labels 0, 2, 2: accuracy 2/3.
    assert_close(m.accuracy, 2.0 / 3.0, 1e-12);
    // Mean confidence (.6 + .45 + .8) / 3.
    assert_close(m.mean_confidence, 1.85 / 3.0, 1e-6);
}

#[test]
fn top5_accuracy_by_hand() {
    // Six classes. Ranks by decreasing logit, ties by lower index:
    //   [6 5 4 3 2 1] y=4 -> rank 4 (hit)   y=5 -> rank 5 (miss)
    //   [1 1 1 1 1 1] y=4 -> rank 4 (hit)   y=5 -> rank 5 (miss)
    let descending: &[f32] = &[6.0, 5.0, 4.0, 3.0, 2.0, 1.0];
    let flat: &[f32] = &[1.0; 6];
    let p = from_rows(&[descending, descending, flat, flat], &[4, 5, 4, 5]);
    assert_eq!(evaluate(&p, DEFAULT_BINS, 1.0).top5_accuracy, Some(0.5));
    // Exactly five classes: every label is in the top five.
    let p = from_rows(&[&[5.0, 4.0, 3.0, 2.0, 1.0]], &[4]);
    assert_eq!(evaluate(&p, DEFAULT_BINS, 1.0).top5_accuracy, Some(1.0));
}

#[test]
fn logit_statistics_by_hand() {
    // [3, 1, 4] y=0: true gap 3 - (1+4)/2 = .5,  max gap 4 - 3 = 1, norm sqrt(26)
    // [0, 2, -2] y=2: true gap -2 - (0+2)/2 = -3, max gap 2 - 0 = 2, norm sqrt(8)
    let p = from_rows(&[&[3.0, 1.0, 4.0], &[0.0, 2.0, -2.0]], &[0, 2]);
    let m = evaluate(&p, DEFAULT_BINS, 1.0);
    assert_close(m.mean_true_logit_gap, -1.25, 1e-12);
    assert_close(m.mean_max_logit_gap, 1.5, 1e-12);
    assert_close(m.mean_logit_norm, (26f64.sqrt() + 8f64.sqrt()) / 2.0, 1e-12);
    // At temperature 2 the statistics are those of z / 2.
    let m = evaluate(&p, DEFAULT_BINS, 2.0);
    assert_close(m.mean_true_logit_gap, -0.625, 1e-12);
    assert_close(m.mean_max_logit_gap, 0.75, 1e-12);
    assert_close(m.mean_logit_norm, (26f64.sqrt() + 8f64.sqrt()) / 4.0, 1e-12);
}

#[test]
fn torchmetrics_docstring_example() {
    // Confidences .55 (w), .55 (w), .60 (c), .90 (c); 3 bins:
    //   (1/3, 2/3]: acc 1/3, conf 1.7/3 = .56667, gap .23333
    //   (2/3, 1]  : acc 1,   conf .9,             gap .1
    // ECE = (3·.23333 + .1)/4 = .2, MCE = .23333,
    // RMSCE = sqrt((3·.054444 + .01)/4) = .20817
    let p = from_probabilities(
        &[
            &[0.25, 0.20, 0.55],
            &[0.55, 0.05, 0.40],
            &[0.10, 0.30, 0.60],
            &[0.90, 0.05, 0.05],
        ],
        &[0, 1, 2, 0],
    );
    let m = evaluate(&p, bins(3), 1.0);
    assert_close(m.ece, 0.2000, 1e-4);
    assert_close(m.rmsce, 0.2082, 1e-4);
    assert_close(m.mce, 0.2333, 1e-4);
}

// ---------------------------------------------------------------------------
// Edge cases

#[test]
fn bin_edges_k_over_15() {
    for k in 0..=15usize {
        let confidence = k as f64 / 15.0;
        let expected = k.saturating_sub(1);
        assert_eq!(bin_index(confidence, DEFAULT_BINS), expected, "k = {k}");
        assert_eq!(bin_edge(k, DEFAULT_BINS), confidence);
    }
    // The same confidences through the shared binning: one per bin, except
    // bin 0 which also holds the confidence 0.
    let confidences: Vec<f64> = (0..=15).map(|k| k as f64 / 15.0).collect();
    let binned = Binned::equal_width(&confidences, &[true; 16], DEFAULT_BINS);
    let counts: Vec<usize> = binned.bins().iter().map(|b| b.count).collect();
    assert_eq!(counts, [2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    // The next f64 above 11/15 is in bin 11, although its product with 15
    // rounds to exactly 11 (so ceil(c·M) - 1 alone would say bin 10).
    let above = f64::from_bits((11.0f64 / 15.0).to_bits() + 1);
    assert_eq!(above * 15.0, 11.0);
    assert_eq!(bin_index(above, DEFAULT_BINS), 11);
}

#[test]
fn softmax_confidences_on_edges() {
    // K equal logits give confidence exactly 1/K, the first upper edge when
    // M = K; a saturated softmax gives exactly 1, which is in the last bin.
    for k in [2usize, 3, 5, 15] {
        let p = Predictions::new(vec![0.0; k], vec![0], k).unwrap();
        let m = evaluate(&p, bins(k), 1.0);
        assert_eq!(m.reliability[0].count, 1, "K = {k}");
        assert_eq!(m.reliability[0].confidence, Some(1.0 / k as f64));
    }
    let p = from_rows(&[&[100.0, -100.0]], &[0]);
    let m = evaluate(&p, DEFAULT_BINS, 1.0);
    assert_eq!(m.reliability[14].count, 1);
    assert_eq!(m.reliability[14].confidence, Some(1.0));
    assert_eq!(m.ece, 0.0);
}

#[test]
fn one_sample() {
    // Correct with confidence c: every ECE variant is 1 - c.
    let p = from_probabilities(&[&[0.8, 0.2]], &[0]);
    let m = evaluate(&p, DEFAULT_BINS, 1.0);
    for value in [m.ece, m.mce, m.rmsce, m.adaptive_ece] {
        assert_close(value, 0.2, 1e-6);
    }
    assert_eq!(m.n, 1);
    assert_eq!(m.reliability.iter().filter(|b| b.count > 0).count(), 1);
}

#[test]
fn all_correct_and_all_wrong() {
    let rows: &[&[f64]] = &[&[0.9, 0.05, 0.05], &[0.2, 0.7, 0.1], &[0.3, 0.3, 0.4]];
    // All correct: the ECE is the mean under-confidence 1 - mean conf.
    let correct = evaluate(&from_probabilities(rows, &[0, 1, 2]), DEFAULT_BINS, 1.0);
    assert_eq!(correct.accuracy, 1.0);
    assert_close(correct.ece, 1.0 - 2.0 / 3.0, 1e-6);
    // All wrong: the ECE is the mean confidence (.9 + .7 + .4)/3.
    let wrong = evaluate(&from_probabilities(rows, &[1, 2, 0]), DEFAULT_BINS, 1.0);
    assert_eq!(wrong.accuracy, 0.0);
    assert_close(wrong.ece, 2.0 / 3.0, 1e-6);
    assert_close(wrong.mce, 0.9, 1e-6);
}

#[test]
fn argmax_ties_go_to_the_lowest_index() {
    // Row [2, 2, 1]: prediction 0, so label 0 is correct and label 1 is not.
    let p = from_rows(&[&[2.0, 2.0, 1.0], &[2.0, 2.0, 1.0]], &[0, 1]);
    assert_eq!(evaluate(&p, DEFAULT_BINS, 1.0).accuracy, 0.5);
    let mut probabilities = [0.0; 3];
    assert_eq!(
        softmax_into(&[1.0, 3.0, 3.0], 1.0, &mut probabilities).prediction,
        1
    );
}

#[test]
fn two_classes_and_a_thousand() {
    let p = from_rows(&[&[0.0, 0.0]], &[1]);
    let m = evaluate(&p, DEFAULT_BINS, 1.0);
    assert_close(m.nll, 2f64.ln(), 1e-15);
    assert_close(m.mean_entropy, 2f64.ln(), 1e-15);
    // Brier of (.5, .5) against (0, 1): .25 + .25.
    assert_close(m.brier, 0.5, 1e-15);

    // K = 1000: zero logits except one at ln 999, so that class has
    // p = 999 / (999 + 999) = .5 and every other p = .5/999. Row 0 has the
    // high logit on its label (7); row 1 on class 500, with label 900, which
    // ranks below 500 and the 899 tied classes of lower index.
    let classes = 1000;
    let mut logits = vec![0.0f32; 2 * classes];
    logits[7] = 999f32.ln();
    logits[classes + 500] = 999f32.ln();
    let p = Predictions::new(logits, vec![7, 900], classes).unwrap();
    let m = evaluate(&p, DEFAULT_BINS, 1.0);
    assert_eq!(m.top5_accuracy, Some(0.5));
    assert_close(m.accuracy, 0.5, 0.0);
    assert_close(m.mean_confidence, 0.5, 1e-6);
    // NLL: ln 2 for the first row, ln(1998) for the second.
    assert_close(m.nll, (2f64.ln() + 1998f64.ln()) / 2.0, 1e-6);
    assert!(m.classwise_ece >= 0.0 && m.classwise_ece <= 1.0);
}

#[test]
fn extreme_logits_stay_finite() {
    let p = from_rows(&[&[1e30, -1e30, 0.0], &[-1e30, 1e30, 1e30]], &[1, 2]);
    let m = evaluate(&p, DEFAULT_BINS, 1.0);
    for (name, value) in scalars(&m) {
        assert!(value.is_finite(), "{name} = {value}");
    }
    // Row 1 is certain and wrong: its NLL is the whole 2e30 gap.
    assert!(m.nll > 1e30);
    assert_eq!(m.accuracy, 0.0);
    let fit = fit_temperature(&p);
    assert!(fit.temperature.is_finite() && fit.nll_after.is_finite() && fit.gradient.is_finite());
    assert!(fit.nll_after <= fit.nll_before);
}

#[test]
fn predictions_validation_messages() {
    let cases = [
        (Predictions::new(vec![], vec![], 3), "no samples"),
        (
            Predictions::new(vec![0.0; 2], vec![0, 0], 1),
            "need at least 2 classes, got 1",
        ),
        (
            Predictions::new(vec![0.0; 5], vec![0, 0], 3),
            "5 values but 2 labels × 3 classes need 6",
        ),
        (
            Predictions::new(vec![0.0; 6], vec![0, 4, 9], 2),
            "label 4 at index 1 is out of range",
        ),
        (
            Predictions::new(vec![0.0, f32::INFINITY], vec![0], 2),
            "row 0, column 1 is inf",
        ),
    ];
    assert!(matches!(cases[0].0, Err(PredictionsError::Empty)));
    for (result, message) in cases {
        let error = result.unwrap_err().to_string();
        assert!(error.contains(message), "{error}");
    }
}

// ---------------------------------------------------------------------------
// Temperature scaling

#[test]
fn temperature_of_a_known_optimum() {
    // Four copies of logits [1, 0], three labelled 0: the NLL is minimal
    // where sigmoid(β) = 3/4, i.e. β = ln 3 and T = 1 / ln 3.
    let row: &[f32] = &[1.0, 0.0];
    let p = from_rows(&[row, row, row, row], &[0, 0, 0, 1]);
    let fit = fit_temperature(&p);
    assert_close(fit.temperature, 1.0 / 3f64.ln(), 1e-9);
    assert!(!fit.at_bound);
    assert!(fit.gradient.abs() <= 1e-10);
    assert!(fit.iterations < 15, "{fit:?}");
    // nll_after = -(3 ln .75 + ln .25)/4, and matches `evaluate`.
    assert_close(
        fit.nll_after,
        -(3.0 * 0.75f64.ln() + 0.25f64.ln()) / 4.0,
        1e-14,
    );
    assert_close(
        evaluate(&p, DEFAULT_BINS, fit.temperature).nll,
        fit.nll_after,
        1e-14,
    );
}

#[test]
fn a_temperature_far_above_one_is_found_not_cut_off() {
    // The known optimum's logits scaled by 1000: T = 1000 / ln 3 ≈ 910.2, where a
    // search bounded at T = 100 stopped with a far worse NLL.
    let row: &[f32] = &[1000.0, 0.0];
    let p = from_rows(&[row, row, row, row], &[0, 0, 0, 1]);
    let fit = fit_temperature(&p);
    assert_close(fit.temperature, 1000.0 / 3f64.ln(), 1e-9);
    assert!(!fit.at_bound, "{fit:?}");
    assert_close(
        fit.nll_after,
        -(3.0 * 0.75f64.ln() + 0.25f64.ln()) / 4.0,
        1e-12,
    );
    // And far below: logits scaled by 1/1000.
    let row: &[f32] = &[0.001, 0.0];
    let p = from_rows(&[row, row, row, row], &[0, 0, 0, 1]);
    let fit = fit_temperature(&p);
    assert_close(fit.temperature, 0.001 / 3f64.ln(), 1e-6);
    assert!(!fit.at_bound, "{fit:?}");
}

#[test]
fn all_correct_hits_the_lower_bound() {
    // Every prediction right with a margin: the NLL falls as T -> 0.
    let p = from_rows(&[&[2.0, 0.0], &[0.0, 1.0], &[3.0, 1.0]], &[0, 1, 0]);
    let fit = fit_temperature(&p);
    assert_eq!(fit.temperature, MIN_TEMPERATURE);
    assert!(fit.at_bound);
    assert!(fit.nll_after < fit.nll_before);
}

#[test]
fn hopeless_predictions_hit_the_upper_bound() {
    // Every prediction wrong: the NLL falls as T -> infinity.
    let p = from_rows(&[&[2.0, 0.0], &[0.0, 1.0]], &[1, 0]);
    let fit = fit_temperature(&p);
    assert_eq!(fit.temperature, MAX_TEMPERATURE);
    assert!(fit.at_bound);
}

#[test]
fn constant_logits_keep_temperature_one() {
    let p = Predictions::new(vec![0.5; 12], vec![0, 1, 2, 0], 3).unwrap();
    let fit = fit_temperature(&p);
    assert_eq!(fit.temperature, 1.0);
    assert_eq!(fit.gradient, 0.0);
    assert!(!fit.at_bound);
    assert_close(fit.nll_after, 3f64.ln(), 1e-15);
}

// ---------------------------------------------------------------------------
// Properties

/// Random predictions: 2..8 classes, 1..40 samples, logits of a random scale.
fn any_predictions() -> impl Strategy<Value = Predictions> {
    (
        2usize..8,
        1usize..40,
        select(vec![0.1f32, 1.0, 10.0, 1e4, 1e30]),
    )
        .prop_flat_map(|(classes, n, scale)| {
            (
                prop::collection::vec(-1.0f32..1.0, n * classes),
                prop::collection::vec(0..classes as u32, n),
            )
                .prop_map(move |(logits, labels)| {
                    let logits = logits.into_iter().map(|z| z * scale).collect();
                    Predictions::new(logits, labels, classes).unwrap()
                })
        })
}

/// Predictions whose label is the argmax about 60% of the time, so the
/// optimal temperature is inside the search range.
fn plausible_predictions() -> impl Strategy<Value = Predictions> {
    (2usize..6, 20usize..60).prop_flat_map(|classes_and_n| {
        let (classes, n) = classes_and_n;
        (
            prop::collection::vec(-3.0f32..3.0, n * classes),
            prop::collection::vec((prop::bool::weighted(0.6), 0..classes as u32), n),
        )
            .prop_map(move |(logits, choices)| {
                let labels = logits
                    .chunks_exact(classes)
                    .zip(choices)
                    .map(|(row, (use_argmax, random))| {
                        if use_argmax {
                            let mut probabilities = vec![0.0; classes];
                            softmax_into(row, 1.0, &mut probabilities).prediction as u32
                        } else {
                            random
                        }
                    })
                    .collect();
                Predictions::new(logits, labels, classes).unwrap()
            })
    })
}

fn permuted_samples(p: &Predictions, order: &[usize]) -> Predictions {
    let k = p.classes();
    let logits = order
        .iter()
        .flat_map(|&i| p.logits()[i * k..(i + 1) * k].iter().copied())
        .collect();
    let labels = order.iter().map(|&i| p.labels()[i]).collect();
    Predictions::new(logits, labels, k).unwrap()
}

/// Column `new` of the result is column `order[new]` of `p`.
fn permuted_classes(p: &Predictions, order: &[usize]) -> Predictions {
    let k = p.classes();
    let mut position = vec![0u32; k];
    for (new, &old) in order.iter().enumerate() {
        position[old] = new as u32;
    }
    let logits = p
        .logits()
        .chunks_exact(k)
        .flat_map(|row| order.iter().map(move |&old| row[old]))
        .collect();
    let labels = p.labels().iter().map(|&y| position[y as usize]).collect();
    Predictions::new(logits, labels, k).unwrap()
}

fn shuffled_indices(len: usize) -> impl Strategy<Value = Vec<usize>> {
    Just((0..len).collect::<Vec<_>>()).prop_shuffle()
}

proptest! {
    #[test]
    fn metrics_stay_in_range(p in any_predictions(), m in 1usize..20) {
        let metrics = evaluate(&p, bins(m), 1.0);
        let errors = [
            metrics.ece,
            metrics.mce,
            metrics.rmsce,
            metrics.adaptive_ece,
            metrics.classwise_ece,
        ];
        for value in errors {
            prop_assert!((0.0..=1.0).contains(&value), "{metrics:?}");
        }
        prop_assert!((0.0..=2.0).contains(&metrics.brier));
        prop_assert!(metrics.nll >= 0.0);
        let max_entropy = (p.classes() as f64).ln();
        prop_assert!(metrics.mean_entropy >= 0.0 && metrics.mean_entropy <= max_entropy + 1e-12);
        prop_assert!(metrics.mean_confidence >= 1.0 / p.classes() as f64 - 1e-12);
        for (name, value) in scalars(&metrics) {
            prop_assert!(value.is_finite(), "{} = {}", name, value);
        }
        prop_assert_eq!(metrics.reliability.iter().map(|b| b.count).sum::<usize>(), p.len());
    }

    #[test]
    fn sample_order_does_not_matter(
        (p, order) in any_predictions().prop_flat_map(|p| {
            let n = p.len();
            (Just(p), shuffled_indices(n))
        })
    ) {
        let original = evaluate(&p, DEFAULT_BINS, 1.0);
        let permuted = evaluate(&permuted_samples(&p, &order), DEFAULT_BINS, 1.0);
        // The equal-mass bins of tied confidences depend on sample order.
        let mut sorted = confidences(&p);
        sorted.sort_by(f64::total_cmp);
        let ties = sorted.windows(2).any(|pair| pair[0] == pair[1]);
        for ((name, a), (_, b)) in scalars(&original).into_iter().zip(scalars(&permuted)) {
            if name != "adaptive_ece" || !ties {
                prop_assert!((a - b).abs() <= 1e-9 * (1.0 + a.abs()), "{}: {} vs {}", name, a, b);
            }
        }
    }

    #[test]
    fn class_order_does_not_matter(
        (p, order) in any_predictions().prop_flat_map(|p| {
            let k = p.classes();
            (Just(p), shuffled_indices(k))
        })
    ) {
        let original = evaluate(&p, DEFAULT_BINS, 1.0);
        let permuted = evaluate(&permuted_classes(&p, &order), DEFAULT_BINS, 1.0);
        for ((name, a), (_, b)) in scalars(&original).into_iter().zip(scalars(&permuted)) {
            prop_assert!((a - b).abs() <= 1e-9 * (1.0 + a.abs()), "{}: {} vs {}", name, a, b);
        }
    }

    #[test]
    fn perfectly_calibrated_predictions_have_zero_ece(
        classes in 2usize..6,
        groups in prop::collection::vec((11u32..20, 1usize..4), 1..5),
    ) {
        // Each group: 20·r identical rows with confidence c = j/20 for the
        // class-0 logit, of which exactly c·20·r are labelled 0. Identical
        // rows share a bin, so every bin's accuracy is its mean confidence.
        let mut logits = Vec::new();
        let mut labels = Vec::new();
        for (j, repeats) in groups {
            let confidence = f64::from(j) / 20.0;
            let rest = (1.0 - confidence) / (classes - 1) as f64;
            for i in 0..20 * repeats {
                logits.push(confidence.ln() as f32);
                logits.extend(std::iter::repeat_n(rest.ln() as f32, classes - 1));
                labels.push(if i < j as usize * repeats { 0 } else { 1 });
            }
        }
        let p = Predictions::new(logits, labels, classes).unwrap();
        let m = evaluate(&p, DEFAULT_BINS, 1.0);
        prop_assert!(m.ece < 1e-6 && m.mce < 1e-6 && m.rmsce < 1e-6, "{m:?}");
    }

    #[test]
    fn temperature_never_increases_nll(p in any_predictions()) {
        let fit = fit_temperature(&p);
        // The reported NLLs are the true NLLs at T = 1 and at the fitted T ...
        let nll_at = |t: f64| evaluate(&p, DEFAULT_BINS, t).nll;
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(1.0);
        prop_assert!(close(fit.nll_before, nll_at(1.0)), "{fit:?}");
        prop_assert!(close(fit.nll_after, nll_at(fit.temperature)), "{fit:?}");
        prop_assert!(fit.nll_after <= fit.nll_before, "{fit:?}");
        // ... and no nearby temperature in the search range does better.
        for factor in [0.5, 0.9, 0.99, 1.01, 1.1, 2.0] {
            let t = (fit.temperature * factor).clamp(MIN_TEMPERATURE, MAX_TEMPERATURE);
            let nll = nll_at(t);
            prop_assert!(nll >= fit.nll_after - 1e-9 * nll.abs().max(1.0), "T = {t}: {nll} < {fit:?}");
        }
        prop_assert!((MIN_TEMPERATURE..=MAX_TEMPERATURE).contains(&fit.temperature));
        prop_assert!(fit.nll_after.is_finite() && fit.gradient.is_finite());
        prop_assert!(fit.iterations <= 100);
    }

    #[test]
    fn fitted_gradient_vanishes(p in plausible_predictions()) {
        let fit = fit_temperature(&p);
        prop_assume!(!fit.at_bound);
        prop_assert!(fit.gradient.abs() <= 1e-8, "{fit:?}");
        let at_fit = nll_derivatives(&p, 1.0 / fit.temperature);
        prop_assert!((at_fit.first - fit.gradient).abs() <= 1e-9);
        prop_assert!((at_fit.nll - fit.nll_after).abs() <= 1e-12);
    }

    #[test]
    fn scaling_logits_scales_temperature(
        p in plausible_predictions(),
        factor in select(vec![0.25f32, 0.5, 2.0, 4.0]),
    ) {
        let fit = fit_temperature(&p);
        let scaled_temperature = fit.temperature * f64::from(factor);
        prop_assume!(!fit.at_bound);
        prop_assume!(scaled_temperature > 2.0 * MIN_TEMPERATURE);
        prop_assume!(scaled_temperature < 0.5 * MAX_TEMPERATURE);
        // Scaling by a power of two is exact in f32.
        let scaled = Predictions::new(
            p.logits().iter().map(|z| z * factor).collect(),
            p.labels().to_vec(),
            p.classes(),
        ).unwrap();
        let scaled_fit = fit_temperature(&scaled);
        let relative_error = (scaled_fit.temperature / scaled_temperature - 1.0).abs();
        prop_assert!(relative_error < 1e-6, "{fit:?} {scaled_fit:?}");
        prop_assert!((scaled_fit.nll_after - fit.nll_after).abs() < 1e-12);
    }
}

// ---------------------------------------------------------------------------
// Prediction files

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The arrays every numpy fixture holds (see tests/fixtures/make_fixtures.py).
const FIXTURE_LOGITS: [f32; 20] = [
    2.0, 0.5, -1.0, 0.0, //
    0.25, 1.5, -0.5, 1.0, //
    -2.0, 0.0, 0.75, 3.0, //
    1.0, 1.0, 0.0, -1.25, //
    0.0, -0.5, 2.5, 0.5,
];
const FIXTURE_LABELS: [u32; 5] = [0, 1, 3, 2, 2];

/// A version 1.0 `.npy` file.
pub(crate) fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    bytes
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn i64_bytes(values: &[i64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub(crate) fn npz(members: &[(&str, Vec<u8>)], compressed: bool) -> Vec<u8> {
    let method = if compressed {
        CompressionMethod::Deflated
    } else {
        CompressionMethod::Stored
    };
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in members {
        writer
            .start_file(
                format!("{name}.npy"),
                SimpleFileOptions::default().compression_method(method),
            )
            .unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// A valid npz: 3 samples, 2 classes.
fn good_npz(compressed: bool) -> Vec<u8> {
    npz(
        &[
            (
                "logits",
                npy("<f4", &[3, 2], &f32_bytes(&[1.0, 0.0, 0.0, 2.0, 0.5, 0.5])),
            ),
            ("labels", npy("<i8", &[3], &i64_bytes(&[0, 1, 1]))),
        ],
        compressed,
    )
}

fn safetensors_file(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            (*name, TensorView::new(*dtype, shape.clone(), data).unwrap())
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

/// Writes `bytes` to `name` in a fresh directory and reads it back.
fn read_bytes(
    name: &str,
    bytes: &[u8],
) -> (anyhow::Result<Predictions>, PathBuf, tempfile::TempDir) {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    (read_predictions(&path), path, directory)
}

/// Asserts that reading `bytes` as file `name` fails with every one of
/// `messages` and the file path in the error.
#[track_caller]
fn assert_read_error(name: &str, bytes: &[u8], messages: &[&str]) {
    let (result, path, _directory) = read_bytes(name, bytes);
    let error = format!("{:#}", result.expect_err("reading should fail"));
    assert!(
        error.contains(&path.display().to_string()),
        "no path in: {error}"
    );
    for message in messages {
        assert!(error.contains(message), "expected {message:?} in: {error}");
    }
}

#[test]
fn numpy_fixtures() {
    for name in [
        "f32_i64.npz",
        "f64_i32_compressed.npz",
        "f32_u8_compressed.npz",
    ] {
        let p = read_predictions(&fixture(name)).unwrap();
        assert_eq!(p.logits(), FIXTURE_LOGITS, "{name}");
        assert_eq!(p.labels(), FIXTURE_LABELS, "{name}");
        assert_eq!(p.classes(), 4);
    }
}

#[test]
fn numpy_fixture_splits() {
    let path = fixture("splits.npz");
    // Without a split, `test.*` is the fallback.
    let test = read_predictions(&path).unwrap();
    assert_eq!(test.labels(), &FIXTURE_LABELS[2..]);
    let val = read_predictions_split(&path, Some("val")).unwrap();
    assert_eq!(val.logits(), &FIXTURE_LOGITS[..8]);
    let error = format!(
        "{:#}",
        read_predictions_split(&path, Some("train")).unwrap_err()
    );
    assert!(error.contains("missing array 'train.logits'"), "{error}");
    assert!(error.contains("arrays present:"), "{error}");
}

#[test]
fn fortran_order_is_rejected() {
    let error = format!(
        "{:#}",
        read_predictions(&fixture("fortran.npz")).unwrap_err()
    );
    assert!(error.contains("fortran.npz"), "{error}");
    assert!(
        error.contains("array 'logits'") && error.contains("Fortran order"),
        "{error}"
    );
}

#[test]
fn hand_built_npz_of_every_label_type() {
    let labels = [0i64, 1, 1];
    for (descr, size) in [
        ("|i1", 1),
        ("|u1", 1),
        ("<i2", 2),
        ("<u2", 2),
        ("<i4", 4),
        ("<u4", 4),
        ("<i8", 8),
        ("<u8", 8),
    ] {
        let data: Vec<u8> = labels
            .iter()
            .flat_map(|v| v.to_le_bytes()[..size].to_vec())
            .collect();
        let bytes = npz(
            &[
                (
                    "logits",
                    npy("<f4", &[3, 2], &f32_bytes(&[1.0, 0.0, 0.0, 2.0, 0.5, 0.5])),
                ),
                ("labels", npy(descr, &[3], &data)),
            ],
            false,
        );
        let (result, _, _directory) = read_bytes("p.npz", &bytes);
        assert_eq!(result.unwrap().labels(), [0, 1, 1], "{descr}");
    }
    for compressed in [false, true] {
        let (result, _, _directory) = read_bytes("p.npz", &good_npz(compressed));
        assert_eq!(result.unwrap().len(), 3);
    }
}

#[test]
fn npz_errors() {
    let check = |members: &[(&str, Vec<u8>)], messages: &[&str]| {
        assert_read_error("bad.npz", &npz(members, false), messages);
    };
    let logits = |descr: &str, shape: &[usize], data: Vec<u8>| ("logits", npy(descr, shape, &data));
    let good_logits = || logits("<f4", &[3, 2], f32_bytes(&[1.0, 0.0, 0.0, 2.0, 0.5, 0.5]));
    let labels = |values: &[i64]| ("labels", npy("<i8", &[values.len()], &i64_bytes(values)));

    check(
        &[good_logits(), labels(&[0, 1])],
        &[
            "array 'logits' has 3 rows (shape [3, 2])",
            "'labels' has 2 labels",
        ],
    );
    check(
        &[good_logits(), labels(&[0, 5, 1])],
        &["label 5 at index 1 is out of range: there are 2 classes"],
    );
    check(
        &[good_logits(), labels(&[0, 1, -1])],
        &["array 'labels': label -1 at index 2 is negative"],
    );
    check(
        &[
            logits("<f4", &[3, 1], f32_bytes(&[1.0, 2.0, 3.0])),
            labels(&[0, 0, 0]),
        ],
        &["need at least 2 classes, got 1"],
    );
    let nan = f32_bytes(&[1.0, 2.0, f32::NAN, 0.0]);
    check(
        &[logits("<f4", &[2, 2], nan), labels(&[0, 0])],
        &["logit at row 1, column 0 is NaN"],
    );
    let infinite = f32_bytes(&[1.0, f32::NEG_INFINITY, 0.0, 0.0]);
    check(
        &[logits("<f4", &[2, 2], infinite), labels(&[0, 0])],
        &["logit at row 0, column 1 is -inf"],
    );
    check(
        &[logits("<f4", &[0, 3], vec![]), labels(&[])],
        &["no samples"],
    );
    check(
        &[good_logits()],
        &["missing array 'labels'", "arrays present: logits"],
    );
    check(
        &[labels(&[0])],
        &[
            "missing array 'logits' or 'test.logits'",
            "arrays present: labels",
        ],
    );
    check(
        &[
            logits("<i8", &[3, 2], i64_bytes(&[1; 6])),
            labels(&[0, 1, 1]),
        ],
        &["array 'logits' has dtype int64; logits must be float32 or float64"],
    );
    let float_labels = npy("<f4", &[3], &f32_bytes(&[0.0, 1.0, 1.0]));
    check(
        &[good_logits(), ("labels", float_labels)],
        &["array 'labels' has dtype float32; labels must be integers"],
    );
    check(
        &[logits(">f4", &[3, 2], vec![0; 24]), labels(&[0, 1, 1])],
        &["array 'logits' has dtype '>f4'"],
    );
    check(
        &[logits("<f4", &[3, 2], vec![0; 20]), labels(&[0, 1, 1])],
        &["array 'logits' is truncated: shape [3, 2] of float32 needs 24 bytes of data, found 20"],
    );
    check(
        &[logits("<f4", &[2, 3, 4], vec![0; 96]), labels(&[0, 1])],
        &["array 'logits' must be 2-D [N, K], but has shape [2, 3, 4]"],
    );
    let matrix_labels = npy("<i8", &[3, 1], &i64_bytes(&[0, 1, 1]));
    check(
        &[good_logits(), ("labels", matrix_labels)],
        &["array 'labels' must be 1-D [N], but has shape [3, 1]"],
    );
    check(
        &[
            ("logits", b"\x93NUMPY\x04\x00\x10\x00".to_vec()),
            labels(&[0]),
        ],
        &["array 'logits'", "unsupported .npy format version 4.0"],
    );
    check(
        &[("logits", b"not numpy".to_vec()), labels(&[0])],
        &["array 'logits'", "not a .npy array"],
    );
    // Damage to the archive itself.
    let truncated = &good_npz(true)[..100];
    assert_read_error("bad.npz", truncated, &["not a valid .npz (zip) archive"]);
    let not_zip = b"PK but not really a zip file";
    assert_read_error("bad.npz", not_zip, &["not a valid .npz (zip) archive"]);
}

#[test]
fn unknown_extension() {
    assert_read_error(
        "predictions.csv",
        b"1,2,3",
        &[
            "unsupported file extension '.csv'",
            "expected .npz, .safetensors or .json",
        ],
    );
    assert_read_error("predictions", b"", &["unsupported file extension (none)"]);
    assert!(read_predictions(Path::new("/nonexistent/p.npz")).is_err());
    assert_eq!(
        Format::from_path(Path::new("P.SafeTensors")).unwrap(),
        Format::Safetensors
    );
}

#[test]
fn safetensors_round_trip() {
    let val = from_rows(&[&[1.0, -2.0, 0.5], &[0.0, 0.25, 3.0]], &[2, 1]);
    let test = from_rows(&[&[1e30, -1e30, 0.0]], &[0]);
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("predictions.safetensors");
    std::fs::write(
        &path,
        safetensors_bytes(&[("val", &val), ("test", &test)]).unwrap(),
    )
    .unwrap();
    assert_eq!(read_predictions_split(&path, Some("val")).unwrap(), val);
    assert_eq!(read_predictions_split(&path, Some("test")).unwrap(), test);
    // Without a split, `test.*` is the fallback.
    assert_eq!(read_predictions(&path).unwrap(), test);
    // An empty prefix writes plain `logits`/`labels`, which are preferred.
    std::fs::write(&path, safetensors_bytes(&[("", &val)]).unwrap()).unwrap();
    assert_eq!(read_predictions(&path).unwrap(), val);
    let error = safetensors_bytes(&[("a", &val), ("a", &test)]).unwrap_err();
    assert!(format!("{error:#}").contains("split 'a' is given twice"));
}

#[test]
fn safetensors_label_types() {
    let cases: [(Dtype, Vec<u8>); 4] = [
        (
            Dtype::U32,
            [0u32, 1].iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        (Dtype::I64, i64_bytes(&[0, 1])),
        (
            Dtype::I32,
            [0i32, 1].iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        (Dtype::U8, vec![0, 1]),
    ];
    for (dtype, labels) in cases {
        let bytes = safetensors_file(&[
            (
                "logits",
                Dtype::F64,
                vec![2, 2],
                [1.0f64, 0.0, 0.0, 2.0]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
            ("labels", dtype, vec![2], labels),
        ]);
        let (result, _, _directory) = read_bytes("p.safetensors", &bytes);
        let p = result.unwrap();
        assert_eq!(p.labels(), [0, 1], "{dtype:?}");
        assert_eq!(p.logits(), [1.0, 0.0, 0.0, 2.0]);
    }
}

#[test]
fn safetensors_errors() {
    let logits = || {
        (
            "logits",
            Dtype::F32,
            vec![2, 2],
            f32_bytes(&[1.0, 0.0, 0.0, 2.0]),
        )
    };
    let labels = || ("labels", Dtype::I64, vec![2], i64_bytes(&[0, 1]));
    let cases: Vec<(Vec<u8>, &[&str])> = vec![
        (
            safetensors_file(&[
                logits(),
                ("labels", Dtype::F32, vec![2], f32_bytes(&[0.0, 1.0])),
            ]),
            &["array 'labels' has dtype float32; labels must be integers"],
        ),
        (
            safetensors_file(&[
                ("logits", Dtype::I64, vec![2, 2], i64_bytes(&[1, 0, 0, 2])),
                labels(),
            ]),
            &["array 'logits' has dtype int64"],
        ),
        (
            safetensors_file(&[("logits", Dtype::BF16, vec![2, 2], vec![0; 8]), labels()]),
            &["array 'logits' has dtype 'BF16'"],
        ),
        (
            safetensors_file(&[
                (
                    "logits",
                    Dtype::F32,
                    vec![1, 2, 2],
                    f32_bytes(&[1.0, 0.0, 0.0, 2.0]),
                ),
                labels(),
            ]),
            &["must be 2-D [N, K], but has shape [1, 2, 2]"],
        ),
        (
            safetensors_file(&[
                logits(),
                ("labels", Dtype::I64, vec![3], i64_bytes(&[0, 1, 1])),
            ]),
            &["has 2 rows", "has 3 labels"],
        ),
        (safetensors_file(&[logits()]), &["missing array 'labels'"]),
        (
            b"\x08\x00\x00\x00\x00\x00\x00\x00{}".to_vec(),
            &["not a valid .safetensors file"],
        ),
        (b"nonsense".to_vec(), &["not a valid .safetensors file"]),
    ];
    for (bytes, messages) in cases {
        assert_read_error("bad.safetensors", &bytes, messages);
    }
}

#[test]
fn json_files() {
    let text = r#"{"logits": [[1.5, -0.5, 0.0], [0.0, 2.0, 1.0]], "labels": [2, 1]}"#;
    let (result, _, _directory) = read_bytes("p.json", text.as_bytes());
    let p = result.unwrap();
    assert_eq!(p.logits(), [1.5, -0.5, 0.0, 0.0, 2.0, 1.0]);
    assert_eq!(p.labels(), [2, 1]);
    let split = r#"{"val.logits": [[1, 0]], "val.labels": [1]}"#;
    let p = parse_predictions(split.as_bytes(), Format::Json, Some("val")).unwrap();
    assert_eq!(p.labels(), [1]);
}

#[test]
fn json_errors() {
    let cases: [(&str, &[&str]); 8] = [
        (
            r#"{"logits": [[1, 0], [0, 1], [1]], "labels": [0, 1, 0]}"#,
            &["array 'logits' is ragged: row 2 has 1 values, row 0 has 2"],
        ),
        (
            r#"{"logits": [[1, 0]], "labels": [0.5]}"#,
            &["array 'labels' must be a list of integers"],
        ),
        (
            r#"{"logits": [[1, "a"]], "labels": [0]}"#,
            &["array 'logits' must be a list of rows of numbers"],
        ),
        (
            r#"{"logits": [[1, 0]], "labels": [-3]}"#,
            &["label -3 at index 0 is negative"],
        ),
        (
            r#"{"logits": [[1e39, 0]], "labels": [0]}"#,
            &["value 1e39 at row 0, column 0 does not fit in float32"],
        ),
        (r#"{"logits": [], "labels": []}"#, &["no samples"]),
        (
            r#"{"labels": []}"#,
            &["missing array 'logits' or 'test.logits'"],
        ),
        (r#"[1, 2]"#, &["not a JSON object of arrays"]),
    ];
    for (text, messages) in cases {
        assert_read_error("bad.json", text.as_bytes(), messages);
    }
}

/// Arbitrary JSON, its object keys mostly the names a prediction file uses.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (0u32..12).prop_map(Value::from),
        "[a-z.]{0,8}".prop_map(Value::from),
    ];
    let key = prop_oneof![
        Just("logits".to_string()),
        Just("labels".to_string()),
        Just("test.logits".to_string()),
        Just("test.labels".to_string()),
        "[a-z.]{1,8}",
    ];
    leaf.prop_recursive(4, 96, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..4)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_json_values_are_predictions_or_an_error(value in json_value()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        if let Ok(p) = parse_predictions(&bytes, Format::Json, None) {
            prop_assert_eq!(p.logits().len(), p.len() * p.classes());
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        for format in [Format::Npz, Format::Safetensors, Format::Json] {
            let _ = parse_predictions(&bytes, format, None);
        }
    }

    #[test]
    fn damaged_npz_never_panics(
        compressed in any::<bool>(),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let mut bytes = good_npz(compressed);
        for (index, value) in flips {
            let position = index.index(bytes.len());
            bytes[position] = value;
        }
        let end = cut.index(bytes.len() + 1);
        let _ = parse_predictions(&bytes[..end], Format::Npz, None);
    }

    #[test]
    fn damaged_npy_members_never_panic(
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        // The zip layer is intact, so the damage reaches the .npy parser.
        let mut member = npy("<f4", &[3, 2], &f32_bytes(&[1.0, 0.0, 0.0, 2.0, 0.5, 0.5]));
        for (index, value) in flips {
            let position = index.index(member.len());
            member[position] = value;
        }
        member.truncate(cut.index(member.len() + 1));
        let labels = npy("<i8", &[3], &i64_bytes(&[0, 1, 1]));
        let bytes = npz(&[("logits", member), ("labels", labels)], false);
        let _ = parse_predictions(&bytes, Format::Npz, None);
    }

    #[test]
    fn damaged_safetensors_never_panic(
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let mut bytes = safetensors_file(&[
            ("logits", Dtype::F32, vec![2, 2], f32_bytes(&[1.0, 0.0, 0.0, 2.0])),
            ("labels", Dtype::I64, vec![2], i64_bytes(&[0, 1])),
        ]);
        for (index, value) in flips {
            let position = index.index(bytes.len());
            bytes[position] = value;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        let _ = parse_predictions(&bytes, Format::Safetensors, None);
    }
}

#[test]
fn every_truncation_of_an_npz_is_an_error() {
    for compressed in [false, true] {
        let bytes = good_npz(compressed);
        assert!(parse_predictions(&bytes, Format::Npz, None).is_ok());
        for end in 0..bytes.len() {
            assert!(
                parse_predictions(&bytes[..end], Format::Npz, None).is_err(),
                "cut at {end}"
            );
        }
    }
}
