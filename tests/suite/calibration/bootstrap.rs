//! Bootstrap intervals: drawn from the seed, of the width binomial theory predicts, and
//! switched off by `resamples: 0`; the smoothed reliability diagram and its band.

use smoothlab::calibration::smooth::{smooth_ece, smooth_reliability, SmoothReliability};
use smoothlab::calibration::{
    evaluate, evaluate_with_intervals, Bootstrap, Predictions, DEFAULT_BINS,
};

/// 4,000 rows of two classes whose first logit is right 80 % of the time.
fn set() -> Predictions {
    let n = 4000;
    let logits: Vec<f32> = (0..n)
        .flat_map(|i| [1.0 + (i % 7) as f32 * 0.3, 0.0])
        .collect();
    let labels: Vec<u32> = (0..n).map(|i| u32::from(i % 5 == 0)).collect();
    Predictions::new(logits, labels, 2).unwrap()
}

fn bootstrap(seed: u64) -> Bootstrap {
    Bootstrap {
        resamples: 400,
        level: 0.95,
        seed,
    }
}

#[test]
fn intervals_are_drawn_from_the_seed() {
    let p = set();
    let a = evaluate_with_intervals(&p, DEFAULT_BINS, 1.0, &bootstrap(1));
    let b = evaluate_with_intervals(&p, DEFAULT_BINS, 1.0, &bootstrap(1));
    let c = evaluate_with_intervals(&p, DEFAULT_BINS, 1.0, &bootstrap(2));
    assert_eq!(a.intervals, b.intervals);
    assert_ne!(a.intervals, c.intervals);
    // Everything else is the plain evaluation.
    let plain = evaluate(&p, DEFAULT_BINS, 1.0);
    assert_eq!(plain.intervals, None);
    assert_eq!(a.ece, plain.ece);
    assert_eq!(a.smooth_ece, plain.smooth_ece);
}

#[test]
fn the_accuracy_interval_has_the_binomial_width() {
    let p = set();
    let m = evaluate_with_intervals(&p, DEFAULT_BINS, 1.0, &bootstrap(3));
    let intervals = m.intervals.unwrap();
    assert_eq!((intervals.resamples, intervals.level), (400, 0.95));
    let accuracy = intervals.accuracy;
    assert!(accuracy.low < m.accuracy && m.accuracy < accuracy.high);
    // 2 × 1.96 × sqrt(0.8 · 0.2 / 4000) = 0.0248; a 400-resample percentile interval is
    // within a few per cent of it.
    let width = accuracy.high - accuracy.low;
    assert!((width - 0.0248).abs() < 0.004, "{accuracy:?}");
    for (name, interval, point) in [
        ("nll", intervals.nll, m.nll),
        ("brier", intervals.brier, m.brier),
        ("smooth ece", intervals.smooth_ece, m.smooth_ece.unwrap()),
    ] {
        assert!(
            interval.low <= point && point <= interval.high,
            "{name}: {point} not in {interval:?}"
        );
    }
    // The binned ECE is biased upwards in resamples; its interval still brackets values
    // of its size.
    assert!(intervals.ece.low > 0.0 && intervals.ece.high < 2.0 * m.ece + 0.05);
}

/// `n` confidences spread over [0.3, 1) and outcomes drawn as right with probability
/// `accuracy(confidence)`, from a fixed linear congruential stream.
fn drawn(n: usize, accuracy: fn(f64) -> f64) -> (Vec<f64>, Vec<bool>) {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let confidence = 0.3 + 0.7 * uniform();
            (confidence, uniform() < accuracy(confidence))
        })
        .unzip()
}

/// Mesh points where the confidences are dense (well inside [0.3, 1)).
fn dense(curve: &SmoothReliability) -> Vec<usize> {
    (0..curve.mesh.len())
        .filter(|&j| (0.4..0.9).contains(&curve.mesh[j]))
        .collect()
}

#[test]
fn the_smoothed_diagram_of_a_calibrated_set_follows_the_diagonal_inside_its_band() {
    let (confidences, correct) = drawn(20_000, |c| c);
    let b = bootstrap(3);
    let curve = smooth_reliability(&confidences, &correct, Some(&b));
    assert_eq!(curve, smooth_reliability(&confidences, &correct, Some(&b)));
    assert_eq!(curve.smooth_ece, smooth_ece(&confidences, &correct));
    // The density is scaled to integrate to 1 over [0, 1]: uniform on [0.3, 1) is 1/0.7.
    let mean: f64 = curve.density.iter().sum::<f64>() / curve.density.len() as f64;
    assert!((mean - 1.0).abs() < 1e-12, "{mean}");
    let band = curve.band.as_ref().unwrap();
    assert_eq!(band.len(), curve.mesh.len());
    let points = dense(&curve);
    for &j in &points {
        let (t, a) = (curve.mesh[j], curve.accuracy[j]);
        assert!((a - t).abs() < 0.03, "accuracy {a} at {t}");
        assert!(
            (curve.density[j] - 1.0 / 0.7).abs() < 0.15,
            "{}",
            curve.density[j]
        );
        assert!(band[j].low <= band[j].high && band[j].high - band[j].low < 0.1);
    }
    let covered = points
        .iter()
        .filter(|&&j| (band[j].low..=band[j].high).contains(&curve.mesh[j]))
        .count();
    assert!(
        covered * 10 >= points.len() * 8,
        "{covered} of {}",
        points.len()
    );
}

#[test]
fn the_smoothed_diagram_of_an_over_confident_set_leaves_the_diagonal_outside_its_band() {
    let (confidences, correct) = drawn(20_000, |c| c * c);
    let curve = smooth_reliability(&confidences, &correct, Some(&bootstrap(4)));
    let band = curve.band.as_ref().unwrap();
    for j in dense(&curve) {
        let t = curve.mesh[j];
        assert!(
            band[j].high < t,
            "diagonal {t} above the band {:?}",
            band[j]
        );
        assert!(
            (curve.accuracy[j] - t * t).abs() < 0.05,
            "{} at {t}",
            curve.accuracy[j]
        );
    }
    // Without a bootstrap the curve is the same, without a band.
    let plain = smooth_reliability(&confidences, &correct, None);
    assert_eq!(plain.band, None);
    assert_eq!(plain.accuracy, curve.accuracy);
}
