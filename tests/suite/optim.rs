//! Optimisers against hand-computed steps (and candle-nn's AdamW), and the schedules.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::Optimizer as _;
use smoothlab::optim::{learning_rate, Optimizer};
use smoothlab::spec::*;

const TOL: f64 = 1e-12;

fn var(values: &[f64]) -> Var {
    Var::from_tensor(&Tensor::new(values, &Device::Cpu).unwrap()).unwrap()
}

fn values(v: &Var) -> Vec<f64> {
    v.as_tensor().to_vec1::<f64>().unwrap()
}

fn assert_close(actual: &[f64], expected: &[f64], what: &str) {
    for (a, e) in actual.iter().zip(expected) {
        assert!((a - e).abs() < TOL, "{what}: {actual:?} vs {expected:?}");
    }
}

/// Linear loss Σ c·w, so the gradient is the constant c = (0.5, 1.0).
fn linear_loss(w: &Var) -> Tensor {
    (w.as_tensor() * Tensor::new(&[0.5f64, 1.0], &Device::Cpu).unwrap())
        .unwrap()
        .sum_all()
        .unwrap()
}

fn sgd(momentum: f64, nesterov: bool, weight_decay: f64, decoupled: bool) -> OptimizerSpec {
    OptimizerSpec::Sgd(SgdSpec {
        lr: 0.1,
        momentum,
        nesterov,
        weight_decay,
        decoupled_weight_decay: decoupled,
    })
}

/// Runs `steps` steps of `spec` on the linear loss from w0 = (1, -2) and returns each iterate.
fn iterates(spec: &OptimizerSpec, steps: usize) -> Vec<Vec<f64>> {
    let w = var(&[1.0, -2.0]);
    let mut opt = Optimizer::new(spec, vec![("w".to_string(), w.clone())]);
    (0..steps)
        .map(|_| {
            opt.backward_step(&linear_loss(&w)).unwrap();
            values(&w)
        })
        .collect()
}

#[test]
fn sgd_momentum_with_l2_weight_decay() {
    // lr 0.1, momentum 0.9, wd 0.01 (L2), c = (0.5, 1), w0 = (1, -2).
    // step 1: g = c + 0.01·w0 = (0.51, 0.98); buf = g; w1 = w0 - 0.1·buf = (0.949, -2.098)
    // step 2: g = c + 0.01·w1 = (0.50949, 0.97902); buf = 0.9·(0.51, 0.98) + g = (0.96849, 1.86102)
    //         w2 = w1 - 0.1·buf = (0.852151, -2.284102)
    let w = iterates(&sgd(0.9, false, 0.01, false), 2);
    assert_close(&w[0], &[0.949, -2.098], "step 1");
    assert_close(&w[1], &[0.852151, -2.284102], "step 2");
}

#[test]
fn sgd_nesterov() {
    // step 1: g = (0.51, 0.98), buf = g, update g + 0.9·buf = (0.969, 1.862); w1 = (0.9031, -2.1862)
    // step 2: g = c + 0.01·w1 = (0.509031, 0.978138); buf = 0.9·(0.51, 0.98) + g = (0.968031, 1.860138)
    //         update = g + 0.9·buf = (1.3802589, 2.6522622); w2 = w1 - 0.1·update = (0.76507411, -2.45142622)
    let w = iterates(&sgd(0.9, true, 0.01, false), 2);
    assert_close(&w[0], &[0.9031, -2.1862], "step 1");
    assert_close(&w[1], &[0.76507411, -2.45142622], "step 2");
}

#[test]
fn sgd_decoupled_weight_decay() {
    // step 1: buf = c; w1 = w0 - 0.1·c - 0.1·0.01·w0 = (0.949, -2.098)
    // step 2: buf = 0.9·c + c = (0.95, 1.9); w2 = w1 - 0.1·buf - 0.001·w1 = (0.853051, -2.285902)
    let w = iterates(&sgd(0.9, false, 0.01, true), 2);
    assert_close(&w[0], &[0.949, -2.098], "step 1");
    assert_close(&w[1], &[0.853051, -2.285902], "step 2");
}

#[test]
fn plain_sgd() {
    // w_t = w0 - t·0.1·c
    let w = iterates(&sgd(0.0, false, 0.0, false), 3);
    assert_close(&w[2], &[1.0 - 0.15, -2.0 - 0.3], "step 3");
}

#[test]
fn adamw_first_step_by_hand() {
    // Step 1: m̂ = g, v̂ = g², so the update is lr·g/(|g| + eps) after decay w·(1 - lr·wd).
    let spec = OptimizerSpec::Adamw(AdamwSpec {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    });
    let w = iterates(&spec, 1);
    let expected = [
        1.0 * 0.999 - 0.1 * 0.5 / (0.5 + 1e-8),
        -2.0 * 0.999 - 0.1 * 1.0 / (1.0 + 1e-8),
    ];
    assert_close(&w[0], &expected, "step 1");
}

#[test]
fn adamw_matches_candle_nn_adamw_over_many_steps() {
    let params = candle_nn::ParamsAdamW {
        lr: 0.05,
        beta1: 0.8,
        beta2: 0.99,
        eps: 1e-6,
        weight_decay: 0.1,
    };
    let spec = OptimizerSpec::Adamw(AdamwSpec {
        lr: params.lr,
        beta1: params.beta1,
        beta2: params.beta2,
        eps: params.eps,
        weight_decay: params.weight_decay,
    });
    let target = Tensor::new(&[3.0f64, -1.0, 0.5], &Device::Cpu).unwrap();
    let quadratic = |w: &Var| {
        (w.as_tensor() - &target)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let ours = var(&[0.0, 0.0, 0.0]);
    let theirs = var(&[0.0, 0.0, 0.0]);
    let mut opt = Optimizer::new(&spec, vec![("w".into(), ours.clone())]);
    let mut reference = candle_nn::AdamW::new(vec![theirs.clone()], params).unwrap();
    for step in 0..50 {
        opt.backward_step(&quadratic(&ours)).unwrap();
        reference.backward_step(&quadratic(&theirs)).unwrap();
        for (a, b) in values(&ours).iter().zip(values(&theirs)) {
            assert!((a - b).abs() < 1e-12, "step {step}: {a} vs {b}");
        }
    }
}

#[test]
fn parameters_without_gradient_are_untouched() {
    let used = var(&[1.0, -2.0]);
    let unused = var(&[5.0]);
    let mut opt = Optimizer::new(
        &sgd(0.9, false, 0.1, false),
        vec![("a".into(), used.clone()), ("b".into(), unused.clone())],
    );
    opt.backward_step(&linear_loss(&used)).unwrap();
    assert_eq!(values(&unused), vec![5.0]);
}

#[test]
fn works_in_f32() {
    let w = Var::from_tensor(&Tensor::new(&[1.0f32, -2.0], &Device::Cpu).unwrap()).unwrap();
    let mut opt = Optimizer::new(&sgd(0.9, true, 0.01, false), vec![("w".into(), w.clone())]);
    let loss = (w.as_tensor().to_dtype(DType::F64).unwrap()
        * Tensor::new(&[0.5f64, 1.0], &Device::Cpu).unwrap())
    .unwrap()
    .sum_all()
    .unwrap();
    opt.backward_step(&loss).unwrap();
    let got = w.as_tensor().to_vec1::<f32>().unwrap();
    assert!(
        (got[0] - 0.9031).abs() < 1e-6 && (got[1] + 2.1862).abs() < 1e-6,
        "{got:?}"
    );
}

fn lr(schedule: &ScheduleSpec, t: f64) -> f64 {
    learning_rate(schedule, 1.0, 10, t)
}

#[test]
fn constant_and_warmup() {
    let s = ScheduleSpec::Constant(ConstantSchedule { warmup_epochs: 2.0 });
    assert_eq!(lr(&s, 0.0), 0.0);
    assert_eq!(lr(&s, 1.0), 0.5);
    assert_eq!(lr(&s, 2.0), 1.0);
    assert_eq!(lr(&s, 9.9), 1.0);
}

#[test]
fn multistep() {
    let s = ScheduleSpec::Multistep(MultistepSchedule {
        milestones: vec![3, 6],
        gamma: 0.1,
        warmup_epochs: 0.0,
    });
    assert_eq!(lr(&s, 0.0), 1.0);
    assert_eq!(lr(&s, 2.99), 1.0);
    assert!((lr(&s, 3.0) - 0.1).abs() < TOL);
    assert!((lr(&s, 7.5) - 0.01).abs() < TOL);
}

#[test]
fn cosine_with_warmup() {
    let s = ScheduleSpec::Cosine(CosineSchedule {
        warmup_epochs: 2.0,
        min_lr: 0.1,
    });
    assert!((lr(&s, 1.0) - 0.5).abs() < TOL);
    assert!((lr(&s, 2.0) - 1.0).abs() < TOL);
    // Halfway through the 8 post-warm-up epochs: (1 + 0.1)/2.
    assert!((lr(&s, 6.0) - 0.55).abs() < TOL);
    assert!((lr(&s, 10.0) - 0.1).abs() < TOL);
    // A quarter of the way: 0.1 + 0.9·(1 + cos(π/4))/2.
    let quarter = 0.1 + 0.9 * (1.0 + (std::f64::consts::PI / 4.0).cos()) / 2.0;
    assert!((lr(&s, 4.0) - quarter).abs() < TOL);
}

#[test]
fn optimiser_state_never_holds_an_autograd_graph() {
    // A momentum buffer built from tracked tensors would chain every step's graph to the
    // next: memory grows without bound and dropping the chain overflows the stack.
    let adamw = OptimizerSpec::Adamw(AdamwSpec {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    });
    for spec in [
        sgd(0.9, true, 0.01, false),
        sgd(0.9, false, 0.01, true),
        adamw,
    ] {
        let w = var(&[1.0, -2.0]);
        let mut opt = Optimizer::new(&spec, vec![("w".to_string(), w.clone())]);
        for _ in 0..3 {
            // w appears twice, so its gradient is itself a sum of tracked pieces.
            let loss = (linear_loss(&w) + w.as_tensor().sqr().unwrap().sum_all().unwrap()).unwrap();
            opt.backward_step(&loss).unwrap();
        }
        let state = opt.state();
        assert!(!state.is_empty());
        for (name, tensor) in state {
            assert!(!tensor.track_op(), "{name} keeps a graph ({spec:?})");
        }
    }
}

#[test]
fn state_is_named_like_pytorch() {
    let w = var(&[1.0, -2.0]);
    let mut opt = Optimizer::new(
        &sgd(0.9, false, 0.0, false),
        vec![("layer.weight".to_string(), w.clone())],
    );
    opt.backward_step(&linear_loss(&w)).unwrap();
    let names: Vec<String> = opt.state().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["layer.weight.momentum_buffer"]);
}
