//! The training losses against their definitions: hand-computed values, gradients
//! against finite differences in f64, the fused CPU op against candle's ops (and so
//! against the PyTorch formulation each is written from), and the degenerate cases.

use candle_core::{DType, Device, Tensor, Var};
use smoothlab::loss::{ops, GammaSchedule, Loss, Mix};
use smoothlab::spec::{MmceEstimator, SmoothingConvention};

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

fn value(loss: &Loss, rows: &[&[f64]], y: &[u32]) -> f64 {
    scalar(&loss.compute(&logits(rows), &labels(y)).unwrap())
}

fn assert_close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance * expected.abs().max(1.0),
        "{what}: {actual} vs {expected}"
    );
}

/// The gradient of `loss` with respect to `z` (any dtype), flattened, in f64.
fn gradient(loss: &Loss, z: &Tensor, y: &Tensor, fused: bool) -> (f64, Vec<f64>) {
    let z = Var::from_tensor(z).unwrap();
    let value = if fused {
        loss.compute(z.as_tensor(), y).unwrap()
    } else {
        ops::compute(loss, z.as_tensor(), y).unwrap()
    };
    let grads = value.backward().unwrap();
    let g = grads
        .get(z.as_tensor())
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    (
        scalar(&value),
        g.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
    )
}

fn focal(gamma: f64) -> Loss {
    Loss::Focal(GammaSchedule::fixed(gamma))
}

fn flsd53() -> Loss {
    Loss::Focal(GammaSchedule {
        steps: vec![(0.2, 5.0)],
        otherwise: 3.0,
    })
}

fn mmce(lambda: f64, estimator: MmceEstimator) -> Loss {
    Loss::Mmce { lambda, estimator }
}

fn smoothed(smoothing: f64, convention: SmoothingConvention, prior: Option<Vec<f64>>) -> Loss {
    Loss::SmoothedCe {
        smoothing,
        convention,
        prior,
    }
}

/// Every loss at a setting that exercises all of its terms.
fn all_losses(classes: usize) -> Vec<(String, Loss)> {
    let prior: Vec<f64> = (1..=classes).map(|c| c as f64).collect();
    let total: f64 = prior.iter().sum();
    let prior: Vec<f64> = prior.iter().map(|p| p / total).collect();
    vec![
        ("CE".into(), Loss::cross_entropy()),
        ("LS 0.1".into(), Loss::smoothed(0.1)),
        (
            "LS 0.3 others".into(),
            smoothed(0.3, SmoothingConvention::Others, None),
        ),
        (
            "LS 0.2 class frequency".into(),
            smoothed(0.2, SmoothingConvention::Uniform, Some(prior.clone())),
        ),
        (
            "LS 0.2 others, class frequency".into(),
            smoothed(0.2, SmoothingConvention::Others, Some(prior)),
        ),
        ("focal 3".into(), focal(3.0)),
        ("focal 0.5".into(), focal(0.5)),
        ("FLSD-53".into(), flsd53()),
        ("CP 0.3".into(), Loss::ConfidencePenalty { beta: 0.3 }),
        ("Brier".into(), Loss::Brier),
        ("MMCE 2".into(), mmce(2.0, MmceEstimator::Paper)),
        (
            "MMCE 2, reference code".into(),
            mmce(2.0, MmceEstimator::ReferenceCode),
        ),
        (
            "MbLS m=1 α=0.5".into(),
            Loss::Mbls {
                margin: 1.0,
                alpha: 0.5,
            },
        ),
    ]
}

// ------------------------------------------------------------ hand-computed values

// z = (0, ln 3) gives p = (1/4, 3/4); z = (0, ln 9) gives p = (1/10, 9/10).

#[test]
fn label_smoothing_by_hand_in_both_conventions_and_with_a_prior() {
    // Uniform, K = 2, ε = 0.2, y = 1: q = (0.1, 0.9); −(0.1·ln ¼ + 0.9·ln ¾).
    // PyTorch: F.cross_entropy(z, y, label_smoothing=0.2).
    let z: &[&[f64]] = &[&[0.0, 3f64.ln()]];
    let expected = -(0.1 * 0.25f64.ln() + 0.9 * 0.75f64.ln());
    assert_close(
        value(&Loss::smoothed(0.2), z, &[1]),
        expected,
        1e-12,
        "uniform",
    );

    // Others, K = 3, ε = 0.2, z = (0, 0, ln 2): p = (¼, ¼, ½), y = 2: q = (0.1, 0.1, 0.8).
    // PyTorch: −(q·log_softmax(z)).sum(1).mean() with q = full(ε/(K−1)), q[y] = 1−ε.
    let z: &[&[f64]] = &[&[0.0, 0.0, 2f64.ln()]];
    let expected = -(0.2 * 0.25f64.ln() + 0.8 * 0.5f64.ln());
    let others = smoothed(0.2, SmoothingConvention::Others, None);
    assert_close(value(&others, z, &[2]), expected, 1e-12, "others");

    // Class frequencies π = (0.5, 0.3, 0.2), ε = 0.1, y = 0: q = 0.9·onehot + 0.1·π
    // = (0.95, 0.03, 0.02).
    let prior = Some(vec![0.5, 0.3, 0.2]);
    let expected = -(0.95 * 0.25f64.ln() + 0.03 * 0.25f64.ln() + 0.02 * 0.5f64.ln());
    let frequency = smoothed(0.1, SmoothingConvention::Uniform, prior.clone());
    assert_close(
        value(&frequency, z, &[0]),
        expected,
        1e-12,
        "class frequency",
    );

    // Others with π: y = 0 keeps 0.9; the rest 0.1·π_k/(1 − π_0) = (0.06, 0.04).
    let expected = -(0.9 * 0.25f64.ln() + 0.06 * 0.25f64.ln() + 0.04 * 0.5f64.ln());
    let both = smoothed(0.1, SmoothingConvention::Others, prior);
    assert_close(
        value(&both, z, &[0]),
        expected,
        1e-12,
        "others, class frequency",
    );
}

#[test]
fn focal_loss_by_hand() {
    // PyTorch (Mukhoti et al.'s FocalLoss): logpt = log_softmax(z).gather(1, y);
    // loss = −(1 − logpt.exp())**γ · logpt, averaged.
    // γ = 2, p = (¼, ¾): y = 1 gives (¼)²·ln(4/3); y = 0 gives (¾)²·ln 4.
    let z: &[&[f64]] = &[&[0.0, 3f64.ln()], &[0.0, 3f64.ln()]];
    let expected = (0.0625 * (4.0f64 / 3.0).ln() + 0.5625 * 4f64.ln()) / 2.0;
    assert_close(value(&focal(2.0), z, &[1, 0]), expected, 1e-12, "focal γ=2");
}

#[test]
fn flsd53_picks_gamma_5_below_0_2_and_3_above() {
    // Mukhoti et al.'s FocalLossAdaptive with gamma_dic {0.2: 5, 0.5: 3}, γ = 3.
    // p_y = 0.1 (< 0.2): 0.9⁵·ln 10. p_y = 0.25 (≥ 0.2): 0.75³·ln 4. p_y = 0.9: 0.1³·ln(10/9).
    let z: &[&[f64]] = &[&[0.0, 9f64.ln()], &[0.0, 3f64.ln()], &[0.0, 9f64.ln()]];
    let expected =
        (0.9f64.powi(5) * 10f64.ln() + 0.75f64.powi(3) * 4f64.ln() + 0.001 * (10.0f64 / 9.0).ln())
            / 3.0;
    assert_close(value(&flsd53(), z, &[0, 0, 1]), expected, 1e-12, "FLSD-53");
}

#[test]
fn confidence_penalty_by_hand() {
    // PyTorch: F.cross_entropy(z, y) + β·(softmax(z)·log_softmax(z)).sum(1).mean(), i.e.
    // CE − β·H(p). p = (¼, ¾), y = 1, β = 0.5: −ln ¾ − 0.5·H, H = ¼·ln 4 + ¾·ln(4/3).
    let entropy = 0.25 * 4f64.ln() + 0.75 * (4.0f64 / 3.0).ln();
    let expected = -(0.75f64.ln()) - 0.5 * entropy;
    let loss = Loss::ConfidencePenalty { beta: 0.5 };
    assert_close(
        value(&loss, &[&[0.0, 3f64.ln()]], &[1]),
        expected,
        1e-12,
        "CP",
    );
}

#[test]
fn brier_loss_by_hand() {
    // PyTorch (Mukhoti et al.'s BrierScore): ((onehot − softmax(z))**2).sum() / batch.
    // p = (¼, ¾), y = 1: (¼)² + (¾ − 1)² = ⅛; y = 0: (¾)² + (¾)² = 9/8.
    let z: &[&[f64]] = &[&[0.0, 3f64.ln()], &[0.0, 3f64.ln()]];
    assert_close(
        value(&Loss::Brier, z, &[1, 0]),
        (0.125 + 1.125) / 2.0,
        1e-12,
        "Brier",
    );
}

#[test]
fn mbls_by_hand() {
    // PyTorch (Liu et al.'s LogitMarginL1): diff = z.max(1).values[:, None] − z;
    // CE + α·relu(diff − m).mean(). z = (0, ln 3), y = 1, m = 1, α = 0.1: the gaps are
    // (ln 3, 0); only ln 3 − 1 > 0, and the mean over the K = 2 entries halves it.
    let expected = -(0.75f64.ln()) + 0.1 * (3f64.ln() - 1.0) / 2.0;
    let loss = Loss::Mbls {
        margin: 1.0,
        alpha: 0.1,
    };
    assert_close(
        value(&loss, &[&[0.0, 3f64.ln()]], &[1]),
        expected,
        1e-12,
        "MbLS",
    );
}

#[test]
fn mmce_by_hand() {
    // Sample A: p = (¼, ¾), y = 1, correct, r = 0.75. Sample B: z = (ln 4, 0), p = (0.8,
    // 0.2), y = 1, wrong, r = 0.8. m = n = 1, so w_A = 1 − 0.75 = 0.25 and w_B = −0.8:
    // MMCE² = 0.25² + 0.8² − 2·0.25·0.8·exp(−0.05/0.4). The loss is the mean CE
    // (−ln ¾ − ln 0.2)/2 plus λ·sqrt(MMCE² + 1e-10), λ = 2.
    let squared = 0.0625 + 0.64 - 0.4 * (-0.125f64).exp();
    let expected = (-(0.75f64.ln()) - 0.2f64.ln()) / 2.0 + 2.0 * (squared + 1e-10).sqrt();
    let loss = mmce(2.0, MmceEstimator::Paper);
    let z: &[&[f64]] = &[&[0.0, 3f64.ln()], &[4f64.ln(), 0.0]];
    assert_close(value(&loss, z, &[1, 1]), expected, 1e-12, "MMCE");
    // All correct: no calibration term.
    let all_correct = (-(0.75f64.ln()) - 0.8f64.ln()) / 2.0;
    assert_close(
        value(&loss, z, &[1, 0]),
        all_correct,
        1e-12,
        "MMCE, all correct",
    );
}

#[test]
fn mmce_as_mukhoti_et_als_code_normalises_it() {
    // PyTorch (Mukhoti et al.'s MMCE_weighted): the mean of each pair matrix
    // (kernel · weights), then 1/m² · cc + 1/n² · ww − 2/(mn) · cw, and
    // F.cross_entropy(logits, targets) + λ·sqrt(that + 1e-10).
    // Samples A and A': p = (¼, ¾), y = 1, correct, r = 0.75; B: p = (0.8, 0.2), y = 1,
    // wrong, r = 0.8; m = 2, n = 1. The cc matrix is 0.25² everywhere (kernel 1): mean
    // 0.0625, ÷ m² = 0.015625. ww: 0.64. cw: 0.25·0.8·e^(−0.125) everywhere, mean the
    // same, × 2/(mn) = 0.2·e^(−0.125). Kumar et al.'s estimator divides the sums, not
    // the means: cc 4·0.0625/4 = 0.0625, cw 2·2·0.2·e^(−0.125)/2.
    let z: &[&[f64]] = &[&[0.0, 3f64.ln()], &[0.0, 3f64.ln()], &[4f64.ln(), 0.0]];
    let ce = (-2.0 * 0.75f64.ln() - 0.2f64.ln()) / 3.0;
    let e = (-0.125f64).exp();
    let code = 0.015625 + 0.64 - 0.2 * e;
    let paper = 0.0625 + 0.64 - 0.4 * e;
    for (estimator, squared) in [
        (MmceEstimator::ReferenceCode, code),
        (MmceEstimator::Paper, paper),
    ] {
        assert_close(
            value(&mmce(2.0, estimator), z, &[1, 1, 1]),
            ce + 2.0 * (squared + 1e-10).sqrt(),
            1e-12,
            &format!("{estimator:?}"),
        );
    }
}

// ------------------------------------------------------------ gradients

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
fn every_gradient_matches_central_finite_differences_in_f64() {
    let h = 1e-6;
    for (n, k, scale, seed) in [
        (1, 2, 2.0, 1),
        (6, 2, 3.0, 2),
        (9, 5, 3.0, 3),
        (16, 10, 4.0, 4),
    ] {
        let (z, y) = random_case(n, k, scale, seed);
        let flat = z.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let at = |loss: &Loss, values: &[f64]| {
            let z = Tensor::from_vec(values.to_vec(), (n, k), &Device::Cpu).unwrap();
            scalar(&loss.compute(&z, &y).unwrap())
        };
        for (name, loss) in all_losses(k) {
            let (_, analytic) = gradient(&loss, &z, &y, true);
            let mut worst: f64 = 0.0;
            for i in 0..flat.len() {
                let mut plus = flat.clone();
                plus[i] += h;
                let mut minus = flat.clone();
                minus[i] -= h;
                let numeric = (at(&loss, &plus) - at(&loss, &minus)) / (2.0 * h);
                let error = (analytic[i] - numeric).abs() / numeric.abs().max(1e-3);
                worst = worst.max(error);
                assert!(
                    (analytic[i] - numeric).abs() <= 1e-7 * numeric.abs().max(1.0),
                    "{name}, {n}×{k} case, element {i}: gradient {} vs finite difference {numeric}",
                    analytic[i]
                );
            }
            eprintln!("{name}, {n}×{k}: worst relative error {worst:.1e}");
        }
    }
}

#[test]
fn the_fused_op_equals_candles_ops_value_and_gradient() {
    let mut cases = vec![
        random_case(1, 2, 3.0, 11),
        random_case(7, 2, 20.0, 12),
        random_case(128, 10, 5.0, 13),
        random_case(5, 100, 1.0, 14),
    ];
    // Ties: every logit equal.
    cases.push((
        Tensor::zeros((4, 3), DType::F64, &Device::Cpu).unwrap(),
        labels(&[0, 1, 2, 0]),
    ));
    for (case, (z, y)) in cases.iter().enumerate() {
        let k = z.dims2().unwrap().1;
        for (name, loss) in all_losses(k) {
            // Ties make the argmax's gradient a matter of convention (candle splits it
            // among the tied maxima, PyTorch and the fused op give it to the first).
            if case == 4 && matches!(loss, Loss::Mbls { .. } | Loss::Mmce { .. }) {
                continue;
            }
            for (dtype, tolerance) in [(DType::F64, 1e-10), (DType::F32, 2e-5)] {
                let z = z.to_dtype(dtype).unwrap();
                let (a, ga) = gradient(&loss, &z, y, true);
                let (b, gb) = gradient(&loss, &z, y, false);
                assert_close(a, b, tolerance, &format!("{name}, case {case}, {dtype:?}"));
                for (i, (a, b)) in ga.iter().zip(&gb).enumerate() {
                    assert!(
                        (a - b).abs() <= tolerance,
                        "{name}, case {case}, {dtype:?}: gradient {i}: {a} vs {b}"
                    );
                }
            }
        }
    }
}

#[test]
fn label_smoothing_gradient_is_softmax_minus_the_target() {
    let rows: &[&[f64]] = &[&[1.5, -0.5, 0.2], &[-1.0, 3.0, 0.3]];
    let y = [2u32, 0];
    let loss = smoothed(0.3, SmoothingConvention::Others, None);
    let (_, g) = gradient(&loss, &logits(rows), &labels(&y), true);
    for (i, row) in rows.iter().enumerate() {
        let lse = row.iter().map(|z| z.exp()).sum::<f64>().ln();
        for c in 0..3 {
            let target = if c == y[i] as usize { 0.7 } else { 0.15 };
            let expected = ((row[c] - lse).exp() - target) / 2.0;
            assert_close(g[i * 3 + c], expected, 1e-12, &format!("[{i},{c}]"));
        }
    }
}

// ------------------------------------------------------------ degenerate cases

/// Value and gradient of `a` and `b` on the same f32 logits, compared bit for bit.
fn assert_identical(a: &Loss, b: &Loss, what: &str) {
    for (z, y) in [random_case(32, 10, 6.0, 21), random_case(8, 2, 3.0, 22)] {
        let z = z.to_dtype(DType::F32).unwrap();
        let (va, ga) = gradient(a, &z, &y, true);
        let (vb, gb) = gradient(b, &z, &y, true);
        assert_eq!(va.to_bits(), vb.to_bits(), "{what}: value {va} vs {vb}");
        assert_eq!(ga, gb, "{what}: gradients differ");
    }
}

#[test]
fn every_loss_reduces_to_cross_entropy_at_its_zero_setting() {
    let ce = Loss::cross_entropy();
    assert_identical(&focal(0.0), &ce, "focal γ = 0");
    let zero_schedule = Loss::Focal(GammaSchedule {
        steps: vec![(0.2, 0.0)],
        otherwise: 0.0,
    });
    assert_identical(&zero_schedule, &ce, "FLSD with γ = 0 throughout");
    assert_identical(&Loss::ConfidencePenalty { beta: 0.0 }, &ce, "CP β = 0");
    assert_identical(
        &smoothed(0.0, SmoothingConvention::Others, None),
        &ce,
        "others convention, ε = 0",
    );
    assert_identical(
        &smoothed(0.0, SmoothingConvention::Uniform, Some(vec![0.1; 10])),
        &Loss::smoothed(0.0),
        "class-frequency prior, ε = 0",
    );
    assert_identical(&mmce(0.0, MmceEstimator::Paper), &ce, "MMCE λ = 0");
    assert_identical(
        &Loss::Mbls {
            margin: 10.0,
            alpha: 0.0,
        },
        &ce,
        "MbLS α = 0",
    );
}

#[test]
fn the_two_conventions_coincide_when_their_epsilons_correspond() {
    // ε_K = ε_{K−1}·K/(K−1): ε = 0.3 onto the others equals ε = 0.3·K/(K−1) uniform.
    let (z, y) = random_case(10, 4, 3.0, 31);
    let others = smoothed(0.3, SmoothingConvention::Others, None);
    let uniform = Loss::smoothed(0.3 * 4.0 / 3.0);
    let (a, ga) = gradient(&others, &z, &y, true);
    let (b, gb) = gradient(&uniform, &z, &y, true);
    assert_close(a, b, 1e-12, "value");
    for (a, b) in ga.iter().zip(&gb) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
}

#[test]
fn a_saturated_true_class_stays_finite_in_f32() {
    // p_y rounds to 1 in f32: 1 − p_y would be 0, but the others' mass is e⁻¹⁰⁰·2.
    let z = logits(&[&[100.0, 0.0, 0.0], &[0.0, 100.0, 0.0]])
        .to_dtype(DType::F32)
        .unwrap();
    let y = labels(&[0, 1]);
    for (name, loss) in all_losses(3) {
        for fused in [true, false] {
            let (v, g) = gradient(&loss, &z, &y, fused);
            assert!(v.is_finite(), "{name} (fused {fused}): loss {v}");
            assert!(
                g.iter().all(|g| g.is_finite()),
                "{name} (fused {fused}): gradient {g:?}"
            );
        }
    }
    // Focal loss of a certain, correct prediction is 0 with a zero gradient.
    let (v, g) = gradient(&focal(3.0), &z, &y, true);
    assert!(
        v.abs() < 1e-30 && g.iter().all(|g| g.abs() < 1e-30),
        "{v} {g:?}"
    );
}

#[test]
fn stable_for_extreme_logits() {
    let z = logits(&[&[1e4, -1e4, 0.0], &[-5e3, 5e3, 5e3]])
        .to_dtype(DType::F32)
        .unwrap();
    let y = labels(&[0, 1]);
    for (name, loss) in all_losses(3) {
        let (v, g) = gradient(&loss, &z, &y, true);
        assert!(
            v.is_finite() && g.iter().all(|g| g.is_finite()),
            "{name}: {v} {g:?}"
        );
    }
    // Row 0: −log p = (0, 2e4, 1e4); row 1: −log p = (1e4 + ln 2, ln 2, ln 2).
    let expected = 0.9 * (0.0 + 2f64.ln()) / 2.0
        + 0.1 * ((2e4 + 1e4) / 3.0 + (1e4 + 3.0 * 2f64.ln()) / 3.0) / 2.0;
    let v = scalar(&Loss::smoothed(0.1).compute(&z, &y).unwrap());
    assert!((v - expected).abs() / expected < 1e-5, "{v} vs {expected}");
}

#[test]
fn epsilon_zero_is_candles_cross_entropy() {
    let (z, y) = random_case(9, 4, 5.0, 41);
    let z = z.to_dtype(DType::F32).unwrap();
    let ours = scalar(&Loss::cross_entropy().compute(&z, &y).unwrap());
    let candle = scalar(&candle_nn::loss::cross_entropy(&z, &y).unwrap());
    assert_close(ours, candle, 1e-6, "CE");
}

#[test]
fn the_smoothed_loss_is_minimised_at_its_target() {
    // K = 2, ε = 0.1: y' = (0.95, 0.05) for label 0, so the minimum is where the logit
    // difference is ln 19, and its value is the entropy of y'.
    let at = |d: f64| value(&Loss::smoothed(0.1), &[&[d, 0.0]], &[0]);
    let best = 19f64.ln();
    for offset in [-1.0, -1e-3, 1e-3, 1.0] {
        assert!(at(best + offset) > at(best), "ln 19 {offset:+}");
    }
    let entropy = -(0.95f64 * 0.95f64.ln() + 0.05 * 0.05f64.ln());
    assert_close(at(best), entropy, 1e-12, "minimum");
}

#[test]
fn mixup_of_a_cross_entropy_is_the_loss_against_the_mixed_target() {
    // λ·CE(z, y) + (1−λ)·CE(z, y[perm]) = −Σ (λ·onehot(y) + (1−λ)·onehot(y[perm]))·log p.
    let (z, y) = random_case(6, 4, 3.0, 51);
    let partner = labels(&[3, 2, 1, 0, 1, 1]);
    let lambda = 0.3;
    let mix = Mix {
        partner_labels: partner.clone(),
        lambda,
    };
    let mixed = scalar(&Loss::cross_entropy().compute_mixed(&z, &y, &mix).unwrap());
    let log_p = candle_nn::ops::log_softmax(&z, 1)
        .unwrap()
        .to_vec2::<f64>()
        .unwrap();
    let (y, partner) = (
        y.to_vec1::<u32>().unwrap(),
        partner.to_vec1::<u32>().unwrap(),
    );
    let expected: f64 = (0..6)
        .map(|i| {
            -(lambda * log_p[i][y[i] as usize] + (1.0 - lambda) * log_p[i][partner[i] as usize])
        })
        .sum::<f64>()
        / 6.0;
    assert_close(mixed, expected, 1e-12, "mixup CE");
}

#[test]
fn an_out_of_range_label_is_an_error_not_a_panic() {
    let z = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    for (name, loss) in all_losses(3) {
        let err = loss.compute(&z, &labels(&[0, 3])).unwrap_err();
        assert!(
            err.to_string()
                .contains("label 3 out of range for 3 classes"),
            "{name}: {err}"
        );
    }
}
