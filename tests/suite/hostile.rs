//! Hostile input from the command line: every case is exit 2 with a short message that
//! names the file or the JSON path, and leaves the results directory as it was, or (for
//! one unusable run) fails that run alone.

use crate::common::{assert_exit, dirs_in_if_any, mnist_dir, stderr, stdout, Workspace};
use std::path::Path;

/// A two-run sweep of a small MLP on MNIST-format files in `dir`.
fn mnist_sweep(dir: &Path, extra: &str) -> String {
    format!(
        r#"{{
  "name": "m",
  "dataset": {{ "name": "mnist", "dir": {:?}, "train_subset": 200, "test_subset": 100, "val_fraction": 0.1{extra} }},
  "model": {{ "name": "mlp", "hidden": [16] }},
  "training": {{ "epochs": 1, "batch_size": 50 }},
  "device": "cpu",
  "sweep": {{ "seed": [0, 1] }}
}}"#,
        dir.display()
    )
}

/// At most a few lines: nothing huge is echoed.
fn assert_short(message: &str) {
    assert!(
        message.len() < 1200 && message.lines().count() <= 4,
        "{} bytes, {} lines: {}",
        message.len(),
        message.lines().count(),
        &message[..message.len().min(2000)]
    );
}

#[test]
fn a_wrong_dataset_dir_is_one_error_before_any_run() {
    let ws = Workspace::new();
    let data = ws.path().join("mnist");
    let file = ws.write("m.json", &mnist_sweep(&data, ""));
    let out = ws.run(&file, &[]);
    assert_exit!(out, 2);
    let message = stderr(&out);
    assert_short(&message);
    assert!(message.contains("checking the mnist data set"), "{message}");
    assert!(message.contains("no MNIST-format files here"), "{message}");
    assert_eq!(
        message.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{message}"
    );
    assert!(!stdout(&out).contains("FAILED"), "{}", stdout(&out));
    // Nothing was recorded: once the files are there, the runs train without
    // --retry-failed.
    assert!(dirs_in_if_any(&ws.results().join("m")).is_empty());
    std::fs::create_dir(&data).unwrap();
    for name in ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"] {
        std::fs::copy(mnist_dir().join(name), data.join(name)).unwrap();
    }
    for name in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        std::fs::copy(mnist_dir().join(name), data.join(name)).unwrap();
    }
    let out = ws.run(&file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("2 completed now"), "{}", stdout(&out));
}

#[test]
fn a_fifo_in_place_of_a_data_file_is_refused_without_hanging() {
    let ws = Workspace::new();
    let data = ws.path().join("mnist");
    std::fs::create_dir(&data).unwrap();
    for name in [
        "train-images-idx3-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        std::fs::copy(mnist_dir().join(name), data.join(name)).unwrap();
    }
    let fifo = data.join("train-labels-idx1-ubyte");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let file = ws.write("m.json", &mnist_sweep(&data, ""));
    let out = ws.run(&file, &[]);
    assert_exit!(out, 2);
    let message = stderr(&out);
    assert!(
        message.contains("train-labels-idx1-ubyte: not a regular file: it is a FIFO"),
        "{message}"
    );
}

#[test]
fn a_run_that_cannot_fit_in_memory_is_refused_with_the_figures() {
    let ws = Workspace::new();
    // 65536 × 65536 weights: 17 GB of them, 69 GB with their gradients and state.
    let file = ws.write(
        "big.json",
        r#"{"name": "big", "dataset": {"name": "synthetic", "features": 8},
            "model": {"name": "mlp", "hidden": [65536, 65536]}, "device": "cpu"}"#,
    );
    let out = ws.run(&file, &[]);
    assert_exit!(out, 2);
    let message = stderr(&out);
    assert_short(&message);
    for part in [
        "run 1/1",
        "needs about",
        "parameters with their gradients and optimiser state",
        "GB is available",
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    assert!(!ws.results().exists(), "the results directory was touched");
}

#[test]
fn one_unusable_run_directory_fails_that_run_alone() {
    let ws = Workspace::new();
    let file = ws.write("sweep.json", crate::common::SWEEP);
    let plan = ws.run(&file, &["--dry-run"]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    // The first run's id, from the plan's table.
    let first = stdout(&plan)
        .lines()
        .find_map(|l| {
            l.split_whitespace()
                .find(|w| w.contains("smoothing="))
                .map(String::from)
        })
        .expect("a run id in the plan");
    let experiment = ws.results().join("sweep");
    std::fs::create_dir_all(&experiment).unwrap();
    std::fs::write(experiment.join(&first), "a plain file").unwrap();
    let out = ws.run(&file, &[]);
    assert_exit!(out, 1);
    let text = stdout(&out);
    assert!(text.contains(&format!("{first}: FAILED")), "{text}");
    assert!(text.contains("3 completed now"), "{text}");
    assert_eq!(
        std::fs::read_to_string(experiment.join(&first)).unwrap(),
        "a plain file"
    );
}

#[test]
fn calibrate_refuses_devices_and_bombs() {
    let ws = Workspace::new();
    let link = ws.path().join("zero.npz");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    let out = ws.smoothlab(&["calibrate", link.to_str().unwrap()]);
    assert_exit!(out, 2);
    assert!(
        stderr(&out).contains("zero.npz: not a regular file: it is a character device"),
        "{}",
        stderr(&out)
    );

    // A header that says [6, 3] float32 (72 bytes) over 64 MiB of zeros, compressed.
    use crate::calibration::{npy, npz};
    let bytes = npz(
        &[
            ("logits", npy("<f4", &[6, 3], &vec![0; 64 << 20])),
            ("labels", npy("<i8", &[6], &[0; 48])),
        ],
        true,
    );
    assert!(bytes.len() < 1 << 20);
    let bomb = ws.path().join("bomb.npz");
    std::fs::write(&bomb, bytes).unwrap();
    let out = ws.smoothlab(&["calibrate", bomb.to_str().unwrap()]);
    assert_exit!(out, 2);
    let message = stderr(&out);
    assert_short(&message);
    assert!(
        message.contains("more data than the header's shape [6, 3] and dtype <f4 describe"),
        "{message}"
    );
}

#[test]
fn penultimate_on_damaged_weights_names_the_file() {
    let ws = Workspace::new();
    let file = ws.write(
        "w.json",
        &crate::common::SWEEP
            .replace(
                "\"device\": \"cpu\",",
                "\"device\": \"cpu\", \"save_model\": true,",
            )
            .replace("\"seed\": [0, 1]", "\"seed\": [0]")
            .replace("[0.0, 0.1]", "[0.1]"),
    );
    let out = ws.run(&file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = ws.run_dirs("sweep").remove(0);
    let weights = run.join("model.safetensors");
    assert!(weights.is_file());
    std::fs::write(&weights, b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}").unwrap();
    let out = ws.smoothlab(&[
        "viz",
        "penultimate",
        run.to_str().unwrap(),
        "--classes",
        "0,1,2",
    ]);
    assert_exit!(out, 2);
    assert!(
        stderr(&out).contains("model.safetensors: not the weights of this run's model"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn huge_values_are_not_echoed() {
    let ws = Workspace::new();
    let long_dir = "d/".repeat(5000);
    let long_key = "k".repeat(1 << 20);
    let long_device = "x".repeat(1 << 20);
    for (text, expected) in [
        (
            format!(r#"{{"name": "x", "dataset": {{"name": "mnist", "dir": "{long_dir}"}}}}"#),
            "`dataset.dir`: expected a path of at most 4096 bytes, got 10000 bytes",
        ),
        (
            format!(r#"{{"name": "x", "{long_key}": 1}}"#),
            "characters left out",
        ),
        (
            format!(r#"{{"name": "x", "device": "{long_device}"}}"#),
            "characters left out",
        ),
    ] {
        let file = ws.write("x.json", &text);
        let out = ws.run(&file, &["--dry-run"]);
        assert_exit!(out, 2);
        let message = stderr(&out);
        assert_short(&message);
        assert!(message.contains(expected), "{expected:?} in {message}");
    }
}

#[test]
fn a_cause_is_said_once() {
    let ws = Workspace::new();
    let out = ws.smoothlab(&["run", "missing.json"]);
    assert_exit!(out, 2);
    let message = stderr(&out);
    assert_eq!(
        message.matches("No such file or directory").count(),
        1,
        "{message}"
    );
    assert!(
        message.contains("missing.json: cannot read the experiment file"),
        "{message}"
    );
}

#[test]
fn an_abandoned_experiment_file_write_is_cleaned_up() {
    let ws = Workspace::new();
    let file = ws.write("sweep.json", crate::common::SWEEP);
    let experiment = ws.results().join("sweep");
    std::fs::create_dir_all(&experiment).unwrap();
    let abandoned = experiment.join(".experiment.json.AbCdEf.tmp");
    std::fs::write(&abandoned, "half").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&abandoned)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let out = ws.run(&file, &["--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(abandoned.exists(), "--dry-run changes nothing");
    let out = ws.run(&file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!abandoned.exists());
}

#[test]
fn report_names_a_damaged_result() {
    let ws = Workspace::new();
    let file = ws.write("sweep.json", crate::common::SWEEP);
    assert!(ws.run(&file, &[]).status.success());
    let run = ws.run_dirs("sweep").remove(0);
    std::fs::write(run.join("result.json"), "{\"status\": ").unwrap();
    let out = ws.smoothlab(&["report", ws.results().join("sweep").to_str().unwrap()]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("damaged result"), "{text}");
    assert!(text.contains(run.to_str().unwrap()), "{text}");
}
