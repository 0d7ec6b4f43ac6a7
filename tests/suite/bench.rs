//! `smoothlab bench models` and `bench epoch` end to end at the smallest sizes: they run
//! (on synthetic data and on MNIST and CIFAR-10 files) and write JSON of the documented shape. No timing is asserted (see src/bench).

use crate::common::{assert_exit, json, mnist_dir, stderr, stdout, Workspace};

fn positive(value: &serde_json::Value) -> bool {
    value.as_f64().is_some_and(|v| v.is_finite() && v > 0.0)
}

fn check_environment(environment: &serde_json::Value) {
    assert_eq!(environment["device"], "cpu");
    assert!(environment["candle_version"]
        .as_str()
        .unwrap()
        .starts_with("0."));
    assert!(environment["threads"].as_u64().unwrap() >= 1);
    assert!(environment["logical_cpus"].as_u64().unwrap() >= 1);
    for key in ["allocator", "smoothlab_version", "cpu"] {
        assert!(environment.get(key).is_some(), "environment.{key} missing");
    }
}

#[test]
fn bench_models_writes_its_figures() {
    let ws = Workspace::new();
    let out = ws.smoothlab(&[
        "bench",
        "models",
        "--steps",
        "1",
        "--repeats",
        "1",
        "--warmup",
        "1",
        "--models",
        "mlp-sgd",
        "--losses",
        "ls,focal",
        "--json",
        "models.json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "candle 0.",
        "threads",
        "device cpu",
        "allocator",
        "CPU:",
        "mlp-sgd",
        "ls0.1",
        "focal-g3",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    let figures = json(&ws.path().join("models.json"));
    assert_eq!(figures["benchmark"], "models");
    check_environment(&figures["environment"]);
    let cases = figures["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2, "one case per model and loss");
    assert_eq!(cases[0]["loss"], "ls0.1");
    assert_eq!(cases[0]["loss_spec"]["name"], "smoothed_ce");
    assert_eq!(cases[0]["loss_spec"]["smoothing"], 0.1);
    assert_eq!(cases[1]["loss"], "focal-g3");
    assert_eq!(cases[1]["loss_spec"]["name"], "focal");
    assert_eq!(cases[1]["loss_spec"]["gamma"], 3.0);
    let case = &cases[0];
    assert_eq!(case["case"], "mlp-sgd");
    assert_eq!(case["model"], "MLP 784-512-512-10");
    assert_eq!(case["input"], serde_json::json!([1, 28, 28]));
    assert_eq!(
        case["parameters"],
        784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10
    );
    assert_eq!(case["optimizer"]["name"], "sgd");
    assert_eq!(case["optimizer"]["momentum"], 0.9);
    assert_eq!(case["batch_size"], 128);
    assert_eq!(
        (case["steps"].clone(), case["repeats"].clone()),
        (1.into(), 1.into())
    );
    for key in [
        "samples_per_second",
        "min_samples_per_second",
        "max_samples_per_second",
        "first_loss",
        "last_loss",
    ] {
        assert!(positive(&case[key]), "{key}: {}", case[key]);
    }
    assert_eq!(
        case["repeat_samples_per_second"].as_array().unwrap().len(),
        1
    );
}

#[test]
fn bench_models_rejects_an_unknown_model() {
    let ws = Workspace::new();
    let out = ws.smoothlab(&["bench", "models", "--models", "mlp-sgd,vgg"]);
    assert_exit!(out, 2);
    assert!(
        stderr(&out).contains("mlp-sgd, mlp-adamw, lenet5, lenet5-adamw, resnet20, resnet20-adamw"),
        "{}",
        stderr(&out)
    );
}

/// Checks an `epoch.json` of `bench epoch` with `warmup + timed` epochs.
fn check_epoch_figures(figures: &serde_json::Value, warmup: usize, timed: usize) {
    assert_eq!(figures["benchmark"], "epoch");
    check_environment(&figures["environment"]);
    let epochs = figures["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), warmup + timed);
    for (i, epoch) in epochs.iter().enumerate() {
        assert_eq!(epoch["epoch"], i + 1);
        assert_eq!(epoch["warmup"], i < warmup);
        assert!(epoch["train_loss"].as_f64().unwrap().is_finite());
        for key in ["train_seconds", "samples_per_second", "validation_seconds"] {
            assert!(positive(&epoch[key]), "epoch {i} {key}: {}", epoch[key]);
        }
        if cfg!(target_os = "linux") {
            assert!(positive(&epoch["peak_mb"]) && positive(&epoch["rss_mb"]));
        }
    }
    // The figure is the median of the timed epochs alone.
    let mut rates: Vec<f64> = epochs[warmup..]
        .iter()
        .map(|e| e["samples_per_second"].as_f64().unwrap())
        .collect();
    rates.sort_by(f64::total_cmp);
    assert_eq!(figures["min_samples_per_second"], rates[0]);
    assert_eq!(figures["max_samples_per_second"], rates[rates.len() - 1]);
    let median = figures["samples_per_second"].as_f64().unwrap();
    assert!(rates[0] <= median && median <= rates[rates.len() - 1]);

    let share = &figures["evaluation_share"];
    for key in [
        "train_seconds",
        "validation_seconds",
        "final_evaluation_seconds",
    ] {
        assert!(positive(&share[key]), "{key}: {}", share[key]);
    }
    for key in ["epoch_share", "one_epoch_run_share"] {
        let v = share[key].as_f64().unwrap();
        assert!(v > 0.0 && v < 1.0, "{key}: {v}");
    }
    let memory = &figures["memory"];
    if cfg!(target_os = "linux") {
        for key in ["load_peak_mb", "final_evaluation_peak_mb", "peak_mb"] {
            assert!(positive(&memory[key]), "{key}: {}", memory[key]);
        }
        assert!(memory["within_budget"].is_boolean());
    }
}

#[test]
fn bench_epoch_times_epochs_of_synthetic_data() {
    let ws = Workspace::new();
    let out = ws.smoothlab(&[
        "bench",
        "epoch",
        "--samples",
        "600",
        "--epochs",
        "2",
        "--json",
        "epoch.json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("(warm-up)"), "{}", stdout(&out));
    let figures = json(&ws.path().join("epoch.json"));
    check_epoch_figures(&figures, 1, 2);
    assert_eq!(figures["case"], "mlp-sgd");
    assert_eq!(figures["data"], "synthetic");
    assert_eq!(figures["input"], serde_json::json!([1, 28, 28]));
    assert_eq!(figures["train_samples"], 540);
    assert_eq!(figures["validation_samples"], 60);
    assert_eq!(figures["test_samples"], 100);
    assert_eq!(figures["evaluation_share"]["train_steps"], 5);
    // 700 samples of 784 f32.
    assert_eq!(figures["memory"]["dataset_mb"], 700.0 * 784.0 * 4.0 / 1e6);
}

#[test]
fn bench_epoch_reads_mnist_files() {
    let ws = Workspace::new();
    let mnist = mnist_dir();
    let out = ws.smoothlab(&[
        "bench",
        "epoch",
        "--model",
        "lenet5",
        "--loss",
        "focal",
        "--data",
        mnist.to_str().unwrap(),
        "--samples",
        "300",
        "--warmup-epochs",
        "0",
        "--epochs",
        "1",
        "--json",
        "epoch.json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let figures = json(&ws.path().join("epoch.json"));
    check_epoch_figures(&figures, 0, 1);
    assert_eq!(figures["model"], "LeNet-5");
    assert_eq!(figures["loss"], "focal-g3");
    assert_eq!(figures["config"]["dataset"]["name"], "mnist");
    assert_eq!(figures["train_samples"], 270);
    assert_eq!(figures["test_samples"], 10_000, "the whole test set");
}

#[test]
fn bench_epoch_reads_cifar10_files() {
    let ws = Workspace::new();
    // Five training batches of 4 records and a test batch of 4: label byte, 3072 pixels.
    let record = |i: usize| {
        let mut r = vec![(i % 10) as u8];
        r.extend((0..3072).map(|p| ((p * 7 + i * 13) % 256) as u8));
        r
    };
    let batch = |first: usize| (first..first + 4).flat_map(record).collect::<Vec<u8>>();
    for b in 0..5 {
        std::fs::write(
            ws.path().join(format!("data_batch_{}.bin", b + 1)),
            batch(4 * b),
        )
        .unwrap();
    }
    std::fs::write(ws.path().join("test_batch.bin"), batch(20)).unwrap();
    let out = ws.smoothlab(&[
        "bench",
        "epoch",
        "--model",
        "resnet20",
        "--data",
        ".",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--json",
        "epoch.json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let figures = json(&ws.path().join("epoch.json"));
    check_epoch_figures(&figures, 1, 1);
    assert_eq!(figures["input"], serde_json::json!([3, 32, 32]));
    assert_eq!(figures["config"]["dataset"]["name"], "cifar10");
    assert_eq!(figures["config"]["dataset"]["augment"], false);
    assert_eq!(
        (
            figures["train_samples"].clone(),
            figures["validation_samples"].clone()
        ),
        (18.into(), 2.into())
    );
    assert_eq!(figures["evaluation_share"]["train_steps"], 3);
}

#[test]
fn bench_epoch_names_missing_files() {
    let ws = Workspace::new();
    let out = ws.smoothlab(&["bench", "epoch", "--model", "resnet20", "--data", "nowhere"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("nowhere") && err.contains("data_batch_1.bin"),
        "{err}"
    );
}
