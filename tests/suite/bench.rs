//! `smoothlab bench models` and `bench epoch` end to end at the smallest sizes: they run
//! and write JSON of the documented shape. No timing is asserted (see src/bench).

use crate::common::{assert_exit, json, stderr, stdout, Workspace};

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
        stderr(&out).contains("mlp-sgd, mlp-adamw, lenet5, resnet20"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bench_epoch_writes_its_figures() {
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
    let figures = json(&ws.path().join("epoch.json"));
    assert_eq!(figures["benchmark"], "epoch");
    check_environment(&figures["environment"]);
    assert_eq!(figures["train_samples"], 540);
    assert_eq!(figures["validation_samples"], 60);
    assert_eq!(figures["test_samples"], 100);

    let share = &figures["evaluation_share"];
    assert_eq!(share["train_steps"], 5);
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
    assert_eq!(memory["epochs"], 2);
    // 700 samples of 784 f32.
    assert_eq!(memory["dataset_mb"], 700.0 * 784.0 * 4.0 / 1e6);
    let epochs = memory["per_epoch"].as_array().unwrap();
    assert_eq!(epochs.len(), 2);
    assert!(epochs
        .iter()
        .all(|e| e["train_loss"].as_f64().unwrap().is_finite()));
    if cfg!(target_os = "linux") {
        for key in ["load_peak_mb", "final_evaluation_peak_mb", "peak_mb"] {
            assert!(positive(&memory[key]), "{key}: {}", memory[key]);
        }
        assert!(epochs
            .iter()
            .all(|e| positive(&e["peak_mb"]) && positive(&e["rss_mb"])));
        assert!(memory["within_budget"].is_boolean());
    }
}
