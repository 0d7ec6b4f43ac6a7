//! Smoothed cross-entropy: plain CE at ε = 0, the smoothed optimum, and its gradient.

use candle_core::{DType, Device, Tensor, Var, D};
use smoothlab::loss::{smoothed_cross_entropy, smoothed_cross_entropy_ops};

fn logits(rows: &[&[f64]]) -> Tensor {
    let k = rows[0].len();
    let flat: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_vec(flat, (rows.len(), k), &Device::Cpu).unwrap()
}

fn labels(y: &[u32]) -> Tensor {
    Tensor::new(y, &Device::Cpu).unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

#[test]
fn epsilon_zero_is_candles_cross_entropy() {
    let z = logits(&[
        &[1.0, -2.0, 0.5, 3.0],
        &[0.0, 0.0, 0.0, 0.0],
        &[10.0, -10.0, 4.0, 2.0],
    ])
    .to_dtype(DType::F32)
    .unwrap();
    let y = labels(&[3, 1, 2]);
    let ours = scalar(&smoothed_cross_entropy(&z, &y, 0.0).unwrap());
    let candle = scalar(&candle_nn::loss::cross_entropy(&z, &y).unwrap());
    assert!(
        (ours - candle).abs() <= 1e-6 * candle.abs().max(1.0),
        "{ours} vs {candle}"
    );
}

#[test]
fn hand_computed_value() {
    // z = (0, ln 3): p = (1/4, 3/4); y = 1, ε = 0.2, K = 2.
    // (1-ε)(-ln 3/4) + ε·(-ln 1/4 - ln 3/4)/2
    let z = logits(&[&[0.0, 3f64.ln()]]);
    let loss = scalar(&smoothed_cross_entropy(&z, &labels(&[1]), 0.2).unwrap());
    let expected = 0.8 * -(0.75f64).ln() + 0.2 * (-(0.25f64).ln() - (0.75f64).ln()) / 2.0;
    assert!((loss - expected).abs() < 1e-12, "{loss} vs {expected}");
}

#[test]
fn matches_pytorch_label_smoothing_convention() {
    // PyTorch's CrossEntropyLoss(label_smoothing=ε) is the cross-entropy against
    // y' = (1-ε)·onehot + ε/K, with the ε/K on every class, the true one included.
    let rows: &[&[f64]] = &[&[2.0, 0.5, -1.0], &[-0.3, 0.8, 0.1]];
    let y = [0u32, 2];
    let eps = 0.3;
    let k = 3.0;
    let mut expected = 0.0;
    for (row, &label) in rows.iter().zip(&y) {
        let lse = row.iter().map(|z| z.exp()).sum::<f64>().ln();
        for (c, z) in row.iter().enumerate() {
            let target = if c == label as usize {
                1.0 - eps + eps / k
            } else {
                eps / k
            };
            expected -= target * (z - lse);
        }
    }
    expected /= rows.len() as f64;
    let loss = scalar(&smoothed_cross_entropy(&logits(rows), &labels(&y), eps).unwrap());
    assert!((loss - expected).abs() < 1e-12, "{loss} vs {expected}");
}

#[test]
fn binary_smoothed_loss_is_minimised_at_0_95_0_05() {
    // K = 2, ε = 0.1: y' = (0.95, 0.05) for label 0, so the loss is minimised where
    // softmax(z) = y', i.e. at the logit difference d = ln(0.95/0.05) = ln 19.
    let loss_at = |d: f64| {
        scalar(&smoothed_cross_entropy(&logits(&[&[d, 0.0]]), &labels(&[0]), 0.1).unwrap())
    };
    let best = 19f64.ln();
    let at_best = loss_at(best);
    for offset in [-1.0, -0.1, -1e-3, 1e-3, 0.1, 1.0, 10.0] {
        assert!(
            loss_at(best + offset) > at_best,
            "loss at ln19{offset:+} is not above the minimum"
        );
    }
    // The minimum value is the entropy of y'.
    let entropy = -(0.95f64 * 0.95f64.ln() + 0.05 * 0.05f64.ln());
    assert!((at_best - entropy).abs() < 1e-12, "{at_best} vs {entropy}");
}

#[test]
fn gradient_is_softmax_minus_smoothed_target_and_matches_finite_differences() {
    let rows: &[&[f64]] = &[
        &[1.5, -0.5, 0.2, 0.0, 2.0],
        &[-1.0, 3.0, 0.3, 0.3, -2.0],
        &[0.0, 0.0, 0.0, 0.0, 0.0],
    ];
    let y = [4u32, 0, 2];
    let (n, k) = (rows.len(), rows[0].len());
    for eps in [0.0, 0.1, 0.5] {
        let z = Var::from_tensor(&logits(rows)).unwrap();
        let loss = smoothed_cross_entropy(z.as_tensor(), &labels(&y), eps).unwrap();
        let grad = loss
            .backward()
            .unwrap()
            .get(z.as_tensor())
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();

        let probs = candle_nn::ops::softmax(&logits(rows), D::Minus1)
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        for i in 0..n {
            for c in 0..k {
                let target = if c == y[i] as usize {
                    1.0 - eps + eps / k as f64
                } else {
                    eps / k as f64
                };
                let analytic = (probs[i][c] - target) / n as f64;
                assert!(
                    (grad[i][c] - analytic).abs() < 1e-12,
                    "ε={eps} [{i},{c}]: {} vs {analytic}",
                    grad[i][c]
                );

                let h = 1e-6;
                let shifted = |delta: f64| {
                    let mut r: Vec<Vec<f64>> = rows.iter().map(|r| r.to_vec()).collect();
                    r[i][c] += delta;
                    let r: Vec<&[f64]> = r.iter().map(|r| r.as_slice()).collect();
                    scalar(&smoothed_cross_entropy(&logits(&r), &labels(&y), eps).unwrap())
                };
                let numeric = (shifted(h) - shifted(-h)) / (2.0 * h);
                assert!(
                    (grad[i][c] - numeric).abs() < 1e-8,
                    "ε={eps} [{i},{c}]: {} vs finite difference {numeric}",
                    grad[i][c]
                );
            }
        }
    }
}

#[test]
fn stable_for_extreme_logits() {
    let z = logits(&[&[1e4, -1e4, 0.0], &[-5e3, 5e3, 5e3]])
        .to_dtype(DType::F32)
        .unwrap();
    let loss = scalar(&smoothed_cross_entropy(&z, &labels(&[0, 1]), 0.1).unwrap());
    assert!(loss.is_finite(), "{loss}");
    // Row 0: -log p = (0, 2e4, 1e4); row 1: -log p = (1e4 + ln 2, ln 2, ln 2).
    let expected = 0.9 * (0.0 + 2f64.ln()) / 2.0
        + 0.1 * ((2e4 + 1e4) / 3.0 + (1e4 + 3.0 * 2f64.ln()) / 3.0) / 2.0;
    assert!(
        (loss - expected).abs() / expected < 1e-5,
        "{loss} vs {expected}"
    );
}

/// Random logits `[n, k]` of scale `scale`, and labels, from a fixed generator.
fn random_case(n: usize, k: usize, scale: f64, seed: u64) -> (Tensor, Tensor) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let z: Vec<f64> = (0..n * k)
        .map(|_| rng.random_range(-scale..scale))
        .collect();
    let y: Vec<u32> = (0..n).map(|_| rng.random_range(0..k as u32)).collect();
    (
        Tensor::from_vec(z, (n, k), &Device::Cpu).unwrap(),
        labels(&y),
    )
}

#[test]
fn the_fused_cpu_op_equals_the_composite_of_candles_ops() {
    // One sample, K = 2, ties (all-equal rows), large logits, and a training-sized batch.
    let mut cases = vec![
        random_case(1, 2, 3.0, 1),
        random_case(7, 2, 30.0, 2),
        random_case(128, 10, 5.0, 3),
        random_case(5, 100, 1.0, 4),
    ];
    cases.push((
        Tensor::zeros((4, 3), DType::F64, &Device::Cpu).unwrap(),
        labels(&[0, 1, 2, 0]),
    ));
    for (case, (z, y)) in cases.iter().enumerate() {
        for eps in [0.0, 0.1, 0.9] {
            for (dtype, tolerance) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
                let z = Var::from_tensor(&z.to_dtype(dtype).unwrap()).unwrap();
                let fused = smoothed_cross_entropy(z.as_tensor(), y, eps).unwrap();
                let ops = smoothed_cross_entropy_ops(z.as_tensor(), y, eps).unwrap();
                let (a, b) = (scalar(&fused), scalar(&ops));
                assert!(
                    (a - b).abs() <= tolerance * b.abs().max(1.0),
                    "case {case} ε={eps} {dtype:?}: loss {a} vs {b}"
                );
                let grad = |loss: &Tensor| {
                    let g = loss.backward().unwrap();
                    let g = g.get(z.as_tensor()).unwrap().to_dtype(DType::F64).unwrap();
                    g.flatten_all().unwrap().to_vec1::<f64>().unwrap()
                };
                for (i, (a, b)) in grad(&fused).iter().zip(grad(&ops)).enumerate() {
                    assert!(
                        (a - b).abs() <= tolerance,
                        "case {case} ε={eps} {dtype:?}: gradient {i}: {a} vs {b}"
                    );
                }
            }
        }
    }
}

#[test]
fn an_out_of_range_label_is_an_error_not_a_panic() {
    let z = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    let err = smoothed_cross_entropy(&z, &labels(&[0, 3]), 0.1).unwrap_err();
    assert!(
        err.to_string()
            .contains("label 3 out of range for 3 classes"),
        "{err}"
    );
}
