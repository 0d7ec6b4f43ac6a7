//! The convolutional models: shapes, parameter counts, BatchNorm's two modes, the fused
//! convolution against candle's, and gradients against finite differences.

use candle_core::{DType, Device, Module, Tensor, Var, D};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use smoothlab::model::{
    self, Activation, Conv2d, ConvAlgorithm, ConvShape, Dense, Pass, SeededVars,
};
use smoothlab::spec::{Lenet5Spec, ModelSpec, ResnetSpec};

fn random(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let values: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_vec(values, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn build(spec: &ModelSpec, input: &[usize], classes: usize) -> model::Model {
    model::build(spec, input, classes, 0, &Device::Cpu).unwrap()
}

fn parameter_count(m: &model::Model) -> usize {
    m.parameters().iter().map(|(_, v)| v.elem_count()).sum()
}

#[test]
fn resnet20_has_the_papers_shape_and_every_parameter_gets_a_gradient() {
    let m = build(&ModelSpec::Resnet(ResnetSpec::default()), &[3, 32, 32], 10);
    // He et al. 2016, Table 6: ResNet-20 has 0.27 M parameters. By hand: stem conv
    // 3·16·9 = 432 and its BatchNorm 32; stage 1: 3 blocks × 2 × (16·16·9 + 32) = 14 016;
    // stage 2: 16·32·9 + 5 × 32·32·9 + 6 × 64 = 51 072; stage 3: 32·64·9 + 5 × 64·64·9
    // + 6 × 128 = 203 520; head 64·10 + 10 = 650. Total 269 722.
    assert_eq!(parameter_count(&m), 269_722);
    let names: Vec<String> = m.parameters().into_iter().map(|(n, _)| n).collect();
    assert!(names.iter().all(|n| !n.contains("running")), "{names:?}");
    let all = m.vars.all_vars().len();
    assert_eq!(
        all - names.len(),
        2 * 19,
        "running mean and variance of 19 BatchNorms"
    );

    let x = random(&[4, 3, 32, 32], 1, DType::F32);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let features = m
        .classifier
        .features(&x, &mut Pass::Train(&mut rng))
        .unwrap();
    assert_eq!(features.dims(), [4, 64]);
    let logits = m.classifier.head(&features).unwrap();
    assert_eq!(logits.dims(), [4, 10]);
    let grads = logits.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    for (name, var) in m.parameters() {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        assert_eq!(g.dims(), var.dims(), "{name}");
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(norm > 0.0 && norm.is_finite(), "{name}: |g|² = {norm}");
    }
}

#[test]
fn resnet_depths_follow_6n_plus_2() {
    for (depth, blocks) in [(8, 1), (32, 5)] {
        let spec = ModelSpec::Resnet(ResnetSpec { depth, width: 4 });
        let m = build(&spec, &[3, 32, 32], 7);
        let convs = m
            .vars
            .data()
            .lock()
            .unwrap()
            .keys()
            .filter(|k| k.ends_with("conv1.weight"))
            .count();
        assert_eq!(convs, 3 * blocks, "depth {depth}");
        let x = random(&[2, 3, 32, 32], 2, DType::F32);
        let logits = m.classifier.logits(&x, &mut Pass::Eval).unwrap();
        assert_eq!(logits.dims(), [2, 7]);
    }
}

#[test]
fn lenet5_takes_28_and_32_pixel_images_and_nothing_else() {
    let spec = ModelSpec::Lenet5(Lenet5Spec::default());
    for input in [[1, 28, 28], [3, 32, 32]] {
        let m = build(&spec, &input, 10);
        let x = random(&[5, input[0], input[1], input[2]], 3, DType::F32);
        let features = m.classifier.features(&x, &mut Pass::Eval).unwrap();
        assert_eq!(features.dims(), [5, 84]);
        assert_eq!(m.classifier.head(&features).unwrap().dims(), [5, 10]);
    }
    // 1×28×28: conv1 1·6·25 + 6, conv2 6·16·25 + 16, 400·120 + 120, 120·84 + 84, 84·10 + 10.
    assert_eq!(parameter_count(&build(&spec, &[1, 28, 28], 10)), 61_706);
    let err = model::build(&spec, &[1, 30, 30], 10, 0, &Device::Cpu)
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("28×28 or 32×32"), "{err:#}");
}

#[test]
fn batch_norm_uses_batch_statistics_in_training_and_running_ones_in_evaluation() {
    let spec = ModelSpec::Resnet(ResnetSpec { depth: 8, width: 2 });
    let m = build(&spec, &[1, 8, 8], 3);
    let running = |name: &str| {
        m.vars.data().lock().unwrap()[name]
            .as_tensor()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(running("stem_norm.running_mean"), [0.0, 0.0]);
    assert_eq!(running("stem_norm.running_var"), [1.0, 1.0]);
    // Inputs with mean 3 and a large spread: batch statistics differ from the initial
    // running ones, so the two modes must give different outputs.
    let x = ((random(&[6, 1, 8, 8], 4, DType::F32) * 5.0).unwrap() + 3.0).unwrap();
    let eval_before = m.classifier.logits(&x, &mut Pass::Eval).unwrap();
    assert_eq!(
        running("stem_norm.running_mean"),
        [0.0, 0.0],
        "evaluation must not update the running statistics"
    );
    let eval_again = m.classifier.logits(&x, &mut Pass::Eval).unwrap();
    assert_eq!(
        eval_before.to_vec2::<f32>().unwrap(),
        eval_again.to_vec2::<f32>().unwrap()
    );

    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let train = m.classifier.logits(&x, &mut Pass::Train(&mut rng)).unwrap();
    let diff = (train - &eval_before)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        diff > 1e-3,
        "training and evaluation outputs agree ({diff})"
    );

    // One training pass moves the running statistics by momentum 0.1 towards the batch
    // statistics of the stem convolution's output: mean exactly, variance unbiased.
    let stem = {
        let vars = m.vars.data().lock().unwrap();
        let w = vars["stem.weight"].as_tensor().clone();
        x.conv2d(&w, 1, 1, 1, 1).unwrap()
    };
    let per_channel = stem.transpose(0, 1).unwrap().flatten_from(1).unwrap();
    let count = per_channel.dim(1).unwrap() as f32;
    let mean = per_channel
        .mean(D::Minus1)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let var = per_channel
        .broadcast_sub(&per_channel.mean_keepdim(D::Minus1).unwrap())
        .unwrap()
        .sqr()
        .unwrap()
        .sum(D::Minus1)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    for c in 0..2 {
        let expected_mean = 0.1 * mean[c];
        let expected_var = 0.9 + 0.1 * var[c] / (count - 1.0);
        let got_mean = running("stem_norm.running_mean")[c];
        let got_var = running("stem_norm.running_var")[c];
        assert!((got_mean - expected_mean).abs() < 1e-4 * (1.0 + expected_mean.abs()));
        assert!(
            (got_var - expected_var).abs() < 1e-4 * expected_var,
            "{got_var} vs {expected_var}"
        );
    }
    // The running statistics are saved with the weights.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    m.vars.save(&path).unwrap();
    let saved = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    assert!(saved.contains_key("stem_norm.running_var"));
}

/// A convolution with its own weights in f64, from a seeded VarBuilder.
fn conv(shape: ConvShape, algorithm: ConvAlgorithm, vars: &VarMap) -> Conv2d {
    let backend = SeededVars::new(vars.clone(), ChaCha8Rng::seed_from_u64(9));
    let vb = VarBuilder::from_backend(Box::new(backend), DType::F64, Device::Cpu);
    Conv2d::new(shape, algorithm, vb).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

#[test]
fn the_fused_convolution_equals_candles_in_values_and_gradients() {
    // The first six take im2col's products; the last four (stride 1, 16 channels in and
    // out) the kernel offsets'.
    for (k, stride, padding, size, channels, activation) in [
        (3, 1, 1, 8, 3, Activation::Identity),
        (3, 2, 1, 8, 3, Activation::Identity),
        (5, 1, 2, 7, 3, Activation::Relu),
        (5, 1, 0, 9, 3, Activation::Identity),
        (3, 2, 0, 7, 3, Activation::Identity),
        (1, 1, 0, 5, 3, Activation::Identity),
        (3, 1, 1, 8, 16, Activation::Relu),
        (3, 1, 1, 16, 16, Activation::Identity),
        (3, 1, 1, 16, 16, Activation::Relu),
        (5, 1, 2, 17, 16, Activation::Identity),
    ] {
        let shape = ConvShape {
            inputs: channels,
            outputs: channels + 1,
            size: k,
            stride,
            padding,
            bias: true,
            activation,
        };
        let vars = VarMap::new();
        let ours = conv(shape, ConvAlgorithm::Fused, &vars);
        let theirs = conv(shape, ConvAlgorithm::Candle, &vars); // the same variables
        let x = Var::from_tensor(&random(&[2, channels, size, size], 5, DType::F64)).unwrap();
        let a = ours.forward(x.as_tensor()).unwrap();
        let b = theirs.forward(x.as_tensor()).unwrap();
        assert_eq!(a.dims(), b.dims(), "k{k} s{stride} p{padding}");
        assert!(max_abs_diff(&a, &b) < 1e-12, "k{k} s{stride} p{padding}");

        let ga = (&a * &a).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (&b * &b).unwrap().sum_all().unwrap().backward().unwrap();
        let mut tensors: Vec<Tensor> = vars
            .all_vars()
            .iter()
            .map(|v| v.as_tensor().clone())
            .collect();
        tensors.push(x.as_tensor().clone());
        for t in &tensors {
            let (ga, gb) = (ga.get(t).unwrap(), gb.get(t).unwrap());
            assert!(
                max_abs_diff(ga, gb) < 1e-10,
                "k{k} s{stride} p{padding}: gradient differs"
            );
        }
    }
}

#[test]
fn a_tiny_conv_net_has_the_gradients_of_finite_differences() {
    // conv 3×3 stride 2 (im2col) → ReLU → 2×2 max pool → global mean → sum of squares.
    let shape = ConvShape {
        inputs: 2,
        outputs: 3,
        size: 3,
        stride: 2,
        padding: 1,
        bias: true,
        activation: Activation::Relu,
    };
    let vars = VarMap::new();
    let net = conv(shape, ConvAlgorithm::Fused, &vars);
    let x = random(&[2, 2, 8, 8], 6, DType::F64);
    let loss = |x: &Tensor| -> Tensor {
        let h = model::max_pool2(&net.forward(x).unwrap()).unwrap();
        let h = h.mean(D::Minus1).unwrap().mean(D::Minus1).unwrap();
        h.sqr().unwrap().sum_all().unwrap()
    };
    assert_gradients_are_finite_differences(&vars, || loss(&x), 1e-6);
}

/// Checks the backward pass of `loss` (f64) with respect to every variable in `vars`
/// against central finite differences (step 1e-6), to `tolerance · (1 + |numeric|)`.
fn assert_gradients_are_finite_differences(
    vars: &VarMap,
    loss: impl Fn() -> Tensor,
    tolerance: f64,
) {
    let grads = loss().backward().unwrap();
    let h = 1e-6;
    for var in vars.all_vars() {
        let values = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let analytic = values(grads.get(var.as_tensor()).unwrap());
        let original = values(var.as_tensor());
        for i in 0..original.len() {
            let shifted = |delta: f64| {
                let mut values = original.clone();
                values[i] += delta;
                var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                loss().to_scalar::<f64>().unwrap()
            };
            let numeric = (shifted(h) - shifted(-h)) / (2.0 * h);
            shifted(0.0);
            assert!(
                (numeric - analytic[i]).abs() < tolerance * (1.0 + numeric.abs()),
                "element {i}: finite difference {numeric}, backward {}",
                analytic[i]
            );
        }
    }
}

#[test]
fn the_inference_copy_records_no_graph_and_follows_every_update() {
    use smoothlab::optim::Optimizer;
    let spec = ModelSpec::Resnet(ResnetSpec { depth: 8, width: 2 });
    let m = build(&spec, &[1, 8, 8], 3);
    let x = random(&[4, 1, 8, 8], 5, DType::F32);
    let through_vars = m.classifier.logits(&x, &mut Pass::Eval).unwrap();
    let through_views = m.inference.logits(&x, &mut Pass::Eval).unwrap();
    assert!(
        through_vars.track_op(),
        "the trainable network records its graph"
    );
    assert!(
        !through_views.track_op(),
        "the inference copy must not record a graph"
    );
    assert_eq!(
        through_vars.to_vec2::<f32>().unwrap(),
        through_views.to_vec2::<f32>().unwrap()
    );

    // A training step changes weights (optimiser) and running statistics (BatchNorm's
    // forward pass); the inference copy sees both without being rebuilt.
    let mut optimizer = Optimizer::new(&Default::default(), m.parameters());
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let loss = m
        .classifier
        .logits(&x, &mut Pass::Train(&mut rng))
        .unwrap()
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap();
    optimizer.backward_step(&loss).unwrap();
    let after_vars = m.classifier.logits(&x, &mut Pass::Eval).unwrap();
    let after_views = m.inference.logits(&x, &mut Pass::Eval).unwrap();
    assert_ne!(
        after_vars.to_vec2::<f32>().unwrap(),
        through_vars.to_vec2::<f32>().unwrap(),
        "the step changed nothing"
    );
    assert_eq!(
        after_vars.to_vec2::<f32>().unwrap(),
        after_views.to_vec2::<f32>().unwrap()
    );
}

#[test]
fn the_fused_dense_layer_equals_linear_then_relu_in_values_and_gradients() {
    for (activation, batch, inputs, outputs) in [
        (Activation::Relu, 5, 7, 3),
        (Activation::Identity, 1, 4, 2),
        (Activation::Relu, 33, 20, 17),
    ] {
        let w = Var::from_tensor(&random(&[outputs, inputs], 1, DType::F64)).unwrap();
        let b = Var::from_tensor(&random(&[outputs], 2, DType::F64)).unwrap();
        let x = Var::from_tensor(&random(&[batch, inputs], 3, DType::F64)).unwrap();
        let layer = Dense::from_parts(w.as_tensor().clone(), b.as_tensor().clone(), activation);
        let ours = layer.forward(x.as_tensor()).unwrap();
        let z = x
            .matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(b.as_tensor())
            .unwrap();
        let theirs = activation.apply(&z).unwrap();
        let case = format!("{activation:?} {batch}x{inputs}→{outputs}");
        assert!(max_abs_diff(&ours, &theirs) < 1e-12, "{case}");
        let weights = random(&[batch, outputs], 4, DType::F64);
        let ga = (&ours * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gb = (&theirs * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for t in [&w, &b, &x] {
            let (ga, gb) = (
                ga.get(t.as_tensor()).unwrap(),
                gb.get(t.as_tensor()).unwrap(),
            );
            assert!(max_abs_diff(ga, gb) < 1e-12, "{case}: gradient differs");
        }
    }
}

#[test]
fn the_fused_dense_layer_skips_the_input_gradient_of_data_and_is_off_at_zero() {
    let w = Var::from_tensor(&random(&[3, 4], 1, DType::F32)).unwrap();
    let b = Var::zeros(3, DType::F32, &Device::Cpu).unwrap();
    let layer = Dense::from_parts(
        w.as_tensor().clone(),
        b.as_tensor().clone(),
        Activation::Relu,
    );
    // The second row is zero, so its pre-activations are exactly 0: the unit is off there
    // (PyTorch's convention; candle's relu would pass the gradient).
    let mut values = random(&[1, 4], 2, DType::F32)
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    values.extend([0.0; 4]);
    let x = Tensor::from_vec(values, (2, 4), &Device::Cpu).unwrap();
    let y = layer.forward(&x).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&x).is_none(), "data got a gradient");
    let first_row = y.get(0).unwrap().to_vec1::<f32>().unwrap();
    let grad_b = grads.get(b.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
    for (unit, (&out, &g)) in first_row.iter().zip(&grad_b).enumerate() {
        let expected = if out > 0.0 { 1.0 } else { 0.0 };
        assert_eq!(g, expected, "unit {unit}: output {out}");
    }
}

#[test]
fn a_two_layer_dense_net_has_the_gradients_of_finite_differences() {
    let vars = VarMap::new();
    let backend = SeededVars::new(vars.clone(), ChaCha8Rng::seed_from_u64(11));
    let vb = VarBuilder::from_backend(Box::new(backend), DType::F64, Device::Cpu);
    let hidden = Dense::new(6, 5, Activation::Relu, vb.pp("hidden")).unwrap();
    let head = Dense::new(5, 3, Activation::Identity, vb.pp("head")).unwrap();
    let x = random(&[4, 6], 12, DType::F64);
    let loss = |x: &Tensor| -> Tensor {
        let logits = head.forward(&hidden.forward(x).unwrap()).unwrap();
        let y = Tensor::new(&[0u32, 2, 1, 2], &Device::Cpu).unwrap();
        smoothlab::loss::Loss::smoothed(0.1)
            .compute(&logits, &y)
            .unwrap()
    };
    assert_gradients_are_finite_differences(&vars, || loss(&x), 1e-8);
}

#[test]
fn max_pooling_takes_each_windows_maximum_and_gives_its_gradient_to_the_first_one() {
    // One 4×4 plane: windows with a unique maximum, a tie, all equal, and a NaN-free
    // negative window.
    #[rustfmt::skip]
    let values = [
        1.0, 5.0,   2.0, 2.0,
        3.0, 4.0,   0.0, 1.0,

        7.0, 7.0,  -3.0, -1.0,
        7.0, 7.0,  -2.0, -4.0,
    ];
    for dtype in [DType::F32, DType::F64] {
        let x = Var::from_tensor(
            &Tensor::new(&values, &Device::Cpu)
                .unwrap()
                .reshape((1, 1, 4, 4))
                .unwrap()
                .to_dtype(dtype)
                .unwrap(),
        )
        .unwrap();
        let y = model::max_pool2(x.as_tensor()).unwrap();
        let y_values = y.flatten_all().unwrap().to_dtype(DType::F64).unwrap();
        assert_eq!(y_values.to_vec1::<f64>().unwrap(), [5.0, 2.0, 7.0, -1.0]);
        let upstream = Tensor::new(&[10.0, 20.0, 30.0, 40.0], &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 2, 2))
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let grads = (&y * &upstream)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g = grads.get(x.as_tensor()).unwrap().flatten_all().unwrap();
        #[rustfmt::skip]
        let expected = [
            0.0, 10.0,  20.0, 0.0,
            0.0, 0.0,   0.0, 0.0,

            30.0, 0.0,  0.0, 40.0,
            0.0, 0.0,   0.0, 0.0,
        ];
        assert_eq!(
            g.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap(),
            expected,
            "{dtype:?}"
        );
    }
    let odd = Tensor::zeros((1, 1, 3, 4), DType::F32, &Device::Cpu).unwrap();
    assert!(model::max_pool2(&odd).is_err());
}

#[test]
fn the_fused_batch_norm_equals_candles_in_values_gradients_and_running_statistics() {
    use candle_core::ModuleT;
    use smoothlab::model::BatchNorm2d;
    for (activation, shape) in [
        (Activation::Identity, [4, 3, 5, 5]),
        (Activation::Relu, [2, 2, 3, 1]),
        (Activation::Relu, [1, 5, 4, 4]),
    ] {
        // Two copies of the same initial variables: one trained through the fused op,
        // one through candle-nn's BatchNorm (+ relu).
        let make = || {
            let vars = VarMap::new();
            let vb = VarBuilder::from_varmap(&vars, DType::F64, &Device::Cpu);
            let ours = BatchNorm2d::new(shape[1], activation, vb.pp("bn")).unwrap();
            let config = candle_nn::BatchNormConfig::default();
            let theirs = candle_nn::batch_norm(shape[1], config, vb.pp("bn")).unwrap();
            // Non-trivial affine parameters.
            let data = vars.data().lock().unwrap();
            data["bn.weight"]
                .set(&random(&[shape[1]], 7, DType::F64))
                .unwrap();
            data["bn.bias"]
                .set(&random(&[shape[1]], 8, DType::F64))
                .unwrap();
            drop(data);
            (vars, ours, theirs)
        };
        let (vars_a, ours, _) = make();
        let (vars_b, _, theirs) = make();
        let x = Var::from_tensor(&((random(&shape, 9, DType::F64) * 3.0).unwrap() + 1.0).unwrap())
            .unwrap();
        let a = ours.forward_t(x.as_tensor(), true).unwrap();
        let b = theirs.forward_t(x.as_tensor(), true).unwrap();
        let b = activation.apply(&b).unwrap();
        let case = format!("{activation:?} {shape:?}");
        assert!(max_abs_diff(&a, &b) < 1e-12, "{case}: values");
        let weights = random(&shape, 10, DType::F64);
        let ga = (&a * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gb = (&b * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(
            max_abs_diff(
                ga.get(x.as_tensor()).unwrap(),
                gb.get(x.as_tensor()).unwrap()
            ) < 1e-10,
            "{case}: input gradient"
        );
        let (data_a, data_b) = (vars_a.data().lock().unwrap(), vars_b.data().lock().unwrap());
        for name in ["bn.weight", "bn.bias"] {
            let (ta, tb) = (data_a[name].as_tensor(), data_b[name].as_tensor());
            assert!(
                max_abs_diff(ga.get(ta).unwrap(), gb.get(tb).unwrap()) < 1e-10,
                "{case}: gradient of {name}"
            );
        }
        for name in ["bn.running_mean", "bn.running_var"] {
            let (ta, tb) = (data_a[name].as_tensor(), data_b[name].as_tensor());
            assert!(max_abs_diff(ta, tb) < 1e-12, "{case}: {name}");
        }
        // Evaluation uses the running statistics, identically.
        let (ea, eb) = (
            ours.forward_t(x.as_tensor(), false).unwrap(),
            theirs.forward_t(x.as_tensor(), false).unwrap(),
        );
        let eb = activation.apply(&eb).unwrap();
        assert!(max_abs_diff(&ea, &eb) < 1e-12, "{case}: evaluation");
        // The fused op's backward pass is that of batch statistics, so evaluation records
        // no graph rather than a wrong one.
        assert!(!ea.track_op(), "{case}: evaluation is not differentiable");
    }
}

#[test]
fn batch_norm_with_one_value_per_channel_is_an_error() {
    use candle_core::ModuleT;
    let vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
    let bn = smoothlab::model::BatchNorm2d::new(2, Activation::Relu, vb).unwrap();
    let x = Tensor::zeros((1, 2, 1, 1), DType::F32, &Device::Cpu).unwrap();
    let err = bn.forward_t(&x, true).unwrap_err();
    assert!(
        err.to_string().contains("more than one value per channel"),
        "{err}"
    );
}
