//! The training loop on small synthetic problems: it learns, it is reproducible from the
//! seed, label smoothing bounds the logit gap, and a diverging run fails cleanly.

use candle_core::Device;
use smoothlab::spec::{self, RunConfig};
use smoothlab::store::{EpochRecord, RunDir};
use smoothlab::train;
use std::path::Path;

/// Runs of a small, quick problem, with `overrides` replacing sections of the
/// experiment's top level (the merge is serde_json's: of a key given twice, the last
/// one; experiment files themselves may not repeat a key).
fn configs(overrides: &str) -> Vec<RunConfig> {
    let text = format!(
        r#"{{
        "name": "t",
        "dataset": {{ "name": "synthetic", "classes": 4, "features": 8, "train_size": 1200, "test_size": 400, "class_sep": 2.0 }},
        "model": {{ "name": "mlp", "hidden": [32, 32] }},
        "optimizer": {{ "name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": true, "weight_decay": 0.0 }},
        "training": {{ "epochs": 4, "batch_size": 32 }}
        {overrides}
    }}"#
    );
    let merged: serde_json::Value = serde_json::from_str(&text).unwrap();
    spec::parse(Path::new("test.json"), &merged.to_string())
        .unwrap()
        .runs
        .into_iter()
        .map(|r| r.config)
        .collect()
}

fn config(overrides: &str) -> RunConfig {
    configs(overrides).remove(0)
}

fn train(config: &RunConfig) -> train::Trained {
    train::run(config, &Device::Cpu, &train::Hooks::none())
        .unwrap_or_else(|f| panic!("{:#}", f.error))
}

#[test]
fn learns_the_synthetic_problem() {
    let t = train(&config(""));
    let m = &t.metrics.test;
    assert!(m.accuracy > 0.95, "test accuracy {}", m.accuracy);
    assert_eq!(t.history.len(), 4);
    assert!(
        t.history[3].train_loss < t.history[0].train_loss,
        "{:?}",
        t.history
    );
    assert_eq!(m.n, 400);
    assert_eq!(t.validation.as_ref().unwrap().len(), 120);
    let fit = t
        .metrics
        .temperature
        .as_ref()
        .expect("temperature scaling is on by default");
    assert!(fit.nll_after <= fit.nll_before);
    assert!(t.timings.train_samples_per_second > 0.0);
}

#[test]
fn same_seed_same_numbers_different_seed_different_numbers() {
    let dropout = r#", "model": { "name": "mlp", "hidden": [32, 32], "dropout": 0.3 }"#;
    let a = train(&config(dropout));
    let b = train(&config(dropout));
    assert_eq!(
        a.history
            .iter()
            .map(|h| h.train_loss.to_bits())
            .collect::<Vec<_>>(),
        b.history
            .iter()
            .map(|h| h.train_loss.to_bits())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        a.test.logits(),
        b.test.logits(),
        "test logits differ between identical runs"
    );
    assert_eq!(a.metrics, b.metrics);

    let c = train(&config(&format!(r#"{dropout}, "seed": 1"#)));
    assert_ne!(a.test.logits(), c.test.logits(), "the seed changed nothing");
}

#[test]
fn label_smoothing_keeps_the_true_logit_gap_smaller() {
    // Overlapping classes and more epochs so the unsmoothed model grows confident.
    let overrides = r#", "dataset": { "name": "synthetic", "classes": 4, "features": 8, "train_size": 1200, "test_size": 400, "class_sep": 0.6 },
        "training": { "epochs": 12, "batch_size": 32 },
        "sweep": { "loss.smoothing": [0.0, 0.2] }"#;
    let runs = configs(overrides);
    let plain = train(&runs[0]).metrics.test;
    let smoothed = train(&runs[1]).metrics.test;
    assert!(
        smoothed.mean_true_logit_gap < plain.mean_true_logit_gap,
        "gap with ε=0.2 {} vs ε=0 {}",
        smoothed.mean_true_logit_gap,
        plain.mean_true_logit_gap
    );
    assert!(smoothed.mean_confidence < plain.mean_confidence);
}

#[test]
fn every_comparison_loss_and_mixup_learns_the_synthetic_problem() {
    let losses = [
        r#"{ "name": "smoothed_ce", "smoothing": 0.1, "convention": "others", "prior": "class_frequency" }"#,
        r#"{ "name": "focal", "gamma": 3 }"#,
        r#"{ "name": "focal_adaptive" }"#,
        r#"{ "name": "confidence_penalty", "beta": 0.1 }"#,
        r#"{ "name": "brier" }"#,
        // λ = 2 costs accuracy here: at ~97 % accuracy a batch of 32 has about one
        // error, and the weighted estimator gives it the weight of all the correct
        // samples together, pulling their confidence down towards 1 − r_wrong.
        r#"{ "name": "mmce", "lambda": 0.5 }"#,
        r#"{ "name": "mbls" }"#,
    ];
    let overrides = format!(
        r#", "sweep": {{ "loss": [{}], "training.mixup": [null, {{ "alpha": 0.2 }}] }}"#,
        losses.join(", ")
    );
    let runs = configs(&overrides);
    assert_eq!(runs.len(), 2 * losses.len());
    for config in &runs {
        let t = train(config);
        let accuracy = t.metrics.test.accuracy;
        assert!(
            accuracy > 0.9,
            "{} (mixup {:?}): test accuracy {accuracy}",
            config.loss.label(),
            config.training.mixup
        );
        assert!(t.history.iter().all(|h| h.train_loss.is_finite()));
    }
}

#[test]
fn a_diverging_run_fails_with_epoch_and_step() {
    let failed = train::run(
        &config(r#", "optimizer": { "name": "sgd", "lr": 1e30 }"#),
        &Device::Cpu,
        &train::Hooks::none(),
    )
    .err()
    .expect("lr 1e30 must diverge");
    let message = format!("{:#}", failed.error);
    assert!(message.contains("epoch 1 step"), "{message}");
    assert!(
        message.contains("NaN") || message.contains("inf"),
        "{message}"
    );
}

#[test]
fn adamw_and_multistep_train_too() {
    let t = train(&config(
        r#", "optimizer": { "name": "adamw", "lr": 0.003 }, "schedule": { "name": "multistep", "milestones": [2, 3] }"#,
    ));
    assert!(t.metrics.test.accuracy > 0.9, "{}", t.metrics.test.accuracy);
    assert!(
        (t.history[3].lr - 0.003 * 0.01).abs() < 1e-12,
        "{}",
        t.history[3].lr
    );
}

#[test]
fn a_resnet_trains_on_image_shaped_synthetic_data() {
    let t = train(&config(
        r#", "dataset": { "name": "synthetic", "classes": 4, "features": 192, "shape": [3, 8, 8], "train_size": 256, "test_size": 64, "class_sep": 0.5 },
        "model": { "name": "resnet", "depth": 8, "width": 4 }, "training": { "epochs": 2, "batch_size": 32 }"#,
    ));
    assert_eq!(t.history.len(), 2);
    assert!(t.metrics.test.nll.is_finite(), "{:?}", t.metrics.test);
}

#[test]
fn no_validation_split_means_no_temperature() {
    let t = train(&config(
        r#", "dataset": { "name": "synthetic", "classes": 4, "features": 8, "train_size": 600, "test_size": 100, "class_sep": 2.0, "val_fraction": 0 },
        "evaluation": { "temperature_scaling": false }"#,
    ));
    assert!(
        t.validation.is_none()
            && t.metrics.temperature.is_none()
            && t.history[0].val_accuracy.is_none()
    );
}

/// Trains `config` with a checkpoint in `dir`, stopping (as a signal would) once
/// `stop_after` epochs are done, then resumes it to the end.
fn interrupted_then_resumed(config: &RunConfig, stop_after: usize) -> train::Trained {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let run_dir = RunDir::new(dir.path());
    let interrupt = AtomicBool::new(false);
    let steps_per_epoch = 1200usize.div_ceil(config.training.batch_size) as u64;
    let progress = |p: train::Progress| {
        if p.done >= stop_after as u64 * steps_per_epoch {
            interrupt.store(true, Ordering::SeqCst);
        }
    };
    let hooks = train::Hooks {
        progress: &progress,
        checkpoint: Some(&run_dir),
        before_write: &|| Ok(()),
        interrupt: &interrupt,
    };
    let stopped = train::run(config, &Device::Cpu, &hooks)
        .err()
        .expect("the run must stop");
    let interrupted = stopped
        .error
        .downcast_ref::<train::Interrupted>()
        .expect("stopped by the interrupt");
    assert_eq!(interrupted.epochs_done, stop_after);
    let peeked = run_dir.checkpoint_progress().unwrap().unwrap();
    assert_eq!(peeked.epochs_done, stop_after);
    assert_eq!(peeked.history.len(), stop_after);

    interrupt.store(false, Ordering::SeqCst);
    let never = |_| {};
    let hooks = train::Hooks {
        progress: &never,
        ..hooks
    };
    train::run(config, &Device::Cpu, &hooks).unwrap_or_else(|f| panic!("{:#}", f.error))
}

fn weights(trained: &train::Trained) -> Vec<(String, Vec<f32>)> {
    let mut all: Vec<_> = trained
        .vars
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(name, var)| {
            let values = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            (name.clone(), values)
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

#[test]
fn a_resumed_run_ends_exactly_like_an_uninterrupted_one() {
    // SGD with Nesterov momentum; AdamW with dropout (optimiser moments, per-parameter
    // step counts and the dropout generator all have to survive the checkpoint).
    let cases = [
        config(""),
        config(
            r#", "model": { "name": "mlp", "hidden": [32, 32], "dropout": 0.2 },
               "optimizer": { "name": "adamw", "lr": 0.003 }"#,
        ),
    ];
    for config in &cases {
        let whole = train(config);
        for stop_after in [1, 3] {
            let resumed = interrupted_then_resumed(config, stop_after);
            assert_eq!(
                weights(&resumed),
                weights(&whole),
                "stopped after {stop_after}"
            );
            assert_eq!(resumed.metrics, whole.metrics);
            // The whole history, bit for bit (the epochs before the stop come back from
            // the checkpoint), except the wall times.
            let history = |t: &train::Trained| -> Vec<EpochRecord> {
                t.history
                    .iter()
                    .map(|r| EpochRecord {
                        seconds: 0.0,
                        ..r.clone()
                    })
                    .collect()
            };
            assert_eq!(history(&resumed), history(&whole));
        }
    }
}

#[test]
fn an_unusable_checkpoint_is_set_aside_and_the_run_starts_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = RunDir::new(dir.path());
    let path = run_dir.checkpoint_file();
    let hooks = train::Hooks {
        checkpoint: Some(&run_dir),
        ..train::Hooks::none()
    };
    let one_epoch = config(r#", "training": { "epochs": 1, "batch_size": 32 }"#);
    let other = config(r#", "training": { "epochs": 1, "batch_size": 32 }, "seed": 7"#);
    // Another config's checkpoint (left by the first run), then a file that is no
    // checkpoint at all: each is moved aside and the run equals a fresh one.
    train::run(&one_epoch, &Device::Cpu, &hooks).unwrap_or_else(|f| panic!("{:#}", f.error));
    let foreign = std::fs::read(&path).unwrap();
    let fresh =
        train::run(&other, &Device::Cpu, &hooks).unwrap_or_else(|f| panic!("{:#}", f.error));
    assert_eq!(fresh.metrics, train(&other).metrics);
    assert_eq!(
        std::fs::read(run_dir.unusable_checkpoint_file()).unwrap(),
        foreign
    );

    std::fs::write(&path, b"not a checkpoint").unwrap();
    let fresh =
        train::run(&other, &Device::Cpu, &hooks).unwrap_or_else(|f| panic!("{:#}", f.error));
    assert_eq!(fresh.metrics, train(&other).metrics);
    assert_eq!(
        std::fs::read(run_dir.unusable_checkpoint_file()).unwrap(),
        b"not a checkpoint"
    );
}
