//! Bit-identical results at any thread count: every model trained with 1, 2 and 3
//! threads saves the same predictions, byte for byte, and so does a convolutional run
//! killed mid-epoch and resumed from its checkpoint with another thread count, and so
//! does a mixup run.

use crate::common::{stderr, Workspace};
use std::os::unix::process::{CommandExt, ExitStatusExt};

/// One run of `model` on synthetic data of `shape`, three epochs of eight steps.
fn experiment(model: &str, shape: &[usize]) -> String {
    experiment_with(
        model,
        shape,
        r#"{ "name": "smoothed_ce", "smoothing": 0.1 }"#,
        "",
    )
}

/// [`experiment`] with another `loss` section and `training_extra` fields.
fn experiment_with(model: &str, shape: &[usize], loss: &str, training_extra: &str) -> String {
    let features: usize = shape.iter().product();
    format!(
        r#"{{
  "name": "det",
  "dataset": {{ "name": "synthetic", "classes": 4, "features": {features}, "shape": {shape:?},
               "train_size": 512, "test_size": 96, "class_sep": 0.5, "val_fraction": 0 }},
  "model": {model},
  "loss": {loss},
  "optimizer": {{ "name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4 }},
  "training": {{ "epochs": 3, "batch_size": 64{training_extra} }},
  "evaluation": {{ "temperature_scaling": false }},
  "device": "cpu"
}}"#
    )
}

/// `smoothlab run FILE --results RESULTS --threads THREADS`, ready to run.
fn run_with(
    ws: &Workspace,
    file: &std::path::Path,
    results: &std::path::Path,
    threads: &str,
) -> std::process::Command {
    ws.command(&[
        "run",
        file.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
        "--threads",
        threads,
    ])
}

/// The saved predictions of the experiment in `file`, run in its own results directory.
fn predictions(ws: &Workspace, file: &std::path::Path, results: &str, threads: &str) -> Vec<u8> {
    let results = ws.path().join(results);
    let out = run_with(ws, file, &results, threads).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    saved_predictions(&results)
}

fn saved_predictions(results: &std::path::Path) -> Vec<u8> {
    let dirs = crate::common::dirs_in(&results.join("det"));
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    std::fs::read(dirs[0].join("predictions.safetensors")).unwrap()
}

fn assert_same_at_every_thread_count(model: &str, shape: &[usize]) {
    let ws = Workspace::new();
    let file = ws.write("det.json", &experiment(model, shape));
    let one = predictions(&ws, &file, "one", "1");
    for threads in ["2", "3"] {
        // Twice at each count: the order in which threads finish must not matter either.
        for attempt in 0..2 {
            let other = predictions(&ws, &file, &format!("t{threads}-{attempt}"), threads);
            assert!(
                one == other,
                "{model}: predictions with {threads} threads differ from 1 thread's"
            );
        }
    }
}

#[test]
fn an_mlp_trains_bit_identically_at_any_thread_count() {
    // Wide enough that the matrix products split their work across threads.
    assert_same_at_every_thread_count(
        r#"{ "name": "mlp", "hidden": [256, 256], "dropout": 0.1 }"#,
        &[64],
    );
}

#[test]
fn lenet5_trains_bit_identically_at_any_thread_count() {
    assert_same_at_every_thread_count(r#"{ "name": "lenet5" }"#, &[1, 28, 28]);
}

#[test]
fn a_resnet_trains_bit_identically_at_any_thread_count() {
    // Width 16: its blocks take the kernel-offset products, the stem im2col's.
    assert_same_at_every_thread_count(
        r#"{ "name": "resnet", "depth": 8, "width": 16 }"#,
        &[3, 12, 12],
    );
}

#[test]
fn a_convolutional_run_killed_mid_epoch_resumes_bit_identically_with_other_threads() {
    assert_resumes_bit_identically(&experiment(r#"{ "name": "lenet5" }"#, &[1, 28, 28]));
}

#[test]
fn a_mixup_run_with_an_adaptive_focal_loss_resumes_bit_identically() {
    // Mixup draws λ and the partner permutation from its own stream each step; the
    // checkpoint must hold that stream's state for the resumed epochs to draw alike.
    let text = experiment_with(
        r#"{ "name": "mlp", "hidden": [32] }"#,
        &[16],
        r#"{ "name": "focal_adaptive" }"#,
        r#", "mixup": { "alpha": 0.4 }"#,
    );
    assert_resumes_bit_identically(&text);
    // And the mixing does something: the same run without it predicts otherwise.
    let ws = Workspace::new();
    let mixed = predictions(&ws, &ws.write("a.json", &text), "a", "1");
    let plain = experiment_with(
        r#"{ "name": "mlp", "hidden": [32] }"#,
        &[16],
        r#"{ "name": "focal_adaptive" }"#,
        "",
    );
    let unmixed = predictions(&ws, &ws.write("b.json", &plain), "b", "1");
    assert!(mixed != unmixed, "mixup changed nothing");
}

fn assert_resumes_bit_identically(experiment: &str) {
    let ws = Workspace::new();
    let file = ws.write("det.json", experiment);
    let uninterrupted = predictions(&ws, &file, "uninterrupted", "1");

    // Killed (SIGKILL to its process group, as `kill -9` of a sweep) at the 12th step,
    // mid-way through the second epoch, with 2 threads; resumed with 3.
    let results = ws.path().join("killed");
    let status = run_with(&ws, &file, &results, "2")
        .env("SMOOTHLAB_CRASH_AT", "step:12")
        .process_group(0)
        .status()
        .unwrap();
    assert_eq!(status.signal(), Some(9), "{status:?}");
    let out = run_with(&ws, &file, &results, "3")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("resuming after epoch 1"),
        "{}",
        stderr(&out)
    );
    let resumed = saved_predictions(&results);
    assert!(
        uninterrupted == resumed,
        "the resumed run's predictions differ"
    );
}
