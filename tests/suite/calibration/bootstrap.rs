//! Bootstrap intervals: drawn from the seed, of the width binomial theory predicts, and
//! switched off by `resamples: 0`.

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
