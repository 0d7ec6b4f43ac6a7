//! The `smoothlab` binary end to end: run, skip, force, dry-run, show, failures and
//! exit codes, on a small synthetic sweep in a temporary results directory.

use crate::common::{assert_exit, json, stderr, stdout, Workspace};
use std::path::{Path, PathBuf};

const SMALL: &str = r#"{
  "name": "small",
  "dataset": { "name": "synthetic", "classes": 4, "features": 8, "train_size": 800, "test_size": 300, "class_sep": 1.0 },
  "model": { "name": "mlp", "hidden": [32] },
  "optimizer": { "name": "sgd", "lr": 0.1, "momentum": 0.9 },
  "training": { "epochs": 2, "batch_size": 64 },
  "device": "cpu",
  "sweep": { "loss.smoothing": [0.0, 0.1] }
}"#;

#[test]
fn run_writes_results_then_skips_then_forces() {
    let ws = Workspace::new();
    let file = ws.write("small.json", SMALL);
    let first = ws.run(&file, &[]);
    assert!(
        first.status.success(),
        "{}{}",
        stdout(&first),
        stderr(&first)
    );
    assert!(
        stdout(&first).contains("2 completed now, 0 already done, 0 failed"),
        "{}",
        stdout(&first)
    );

    let dirs = ws.run_dirs("small");
    assert_eq!(dirs.len(), 2);
    assert_eq!(
        json(&ws.results().join("small/experiment.json")),
        serde_json::from_str::<serde_json::Value>(SMALL).unwrap()
    );
    for dir in &dirs {
        let result = json(&dir.join("result.json"));
        assert_eq!(result["schema_version"], 1);
        assert_eq!(result["status"], "completed");
        assert_eq!(result["run_id"], dir.file_name().unwrap().to_str().unwrap());
        assert_eq!(result["environment"]["device"], "cpu");
        assert!(
            result["environment"].get("gpu").is_none(),
            "a CPU run has no gpu"
        );
        assert_eq!(result["history"].as_array().unwrap().len(), 2);
        for key in ["accuracy", "nll", "ece", "mean_true_logit_gap"] {
            assert!(result["metrics"]["test"][key].is_number(), "{key} missing");
        }
        assert!(
            result["metrics"]["temperature"]["temperature"]
                .as_f64()
                .unwrap()
                > 0.0
        );
        assert_eq!(json(&dir.join("config.json")), result["config"]);
        assert!(dir.join("predictions.safetensors").is_file());
        // No temporary files are left behind.
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name();
            assert!(
                !name.to_string_lossy().contains(".tmp"),
                "{name:?} left behind"
            );
        }
    }
    let before: Vec<String> = dirs
        .iter()
        .map(|d| std::fs::read_to_string(d.join("result.json")).unwrap())
        .collect();

    let second = ws.run(&file, &[]);
    assert!(second.status.success());
    assert_eq!(
        stdout(&second)
            .matches("already completed, skipped")
            .count(),
        2,
        "{}",
        stdout(&second)
    );
    let after: Vec<String> = dirs
        .iter()
        .map(|d| std::fs::read_to_string(d.join("result.json")).unwrap())
        .collect();
    assert_eq!(before, after, "a skipped run's result changed");

    let dry = ws.run(&file, &["--dry-run"]);
    assert!(dry.status.success());
    assert!(
        stdout(&dry).contains("2 run(s): 2 done, 0 failed, 0 running, 0 stale, 0 pending"),
        "{}",
        stdout(&dry)
    );

    let forced = ws.run(&file, &["--force"]);
    assert!(forced.status.success());
    assert!(
        stdout(&forced).contains("2 completed now"),
        "{}",
        stdout(&forced)
    );
    // Same seed, same machine: the rerun reproduces the metrics exactly, and the
    // previous attempt is kept, byte for byte, under attempts/.
    for (dir, old) in dirs.iter().zip(&before) {
        let old_value: serde_json::Value = serde_json::from_str(old).unwrap();
        assert_eq!(
            json(&dir.join("result.json"))["metrics"],
            old_value["metrics"]
        );
        let attempts: Vec<PathBuf> = std::fs::read_dir(dir.join("attempts"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        assert_eq!(
            &std::fs::read_to_string(attempts[0].join("result.json")).unwrap(),
            old
        );
        assert!(attempts[0].join("predictions.safetensors").is_file());
    }

    let show = ws.smoothlab(&["show", dirs[0].to_str().unwrap()]);
    assert!(show.status.success(), "{}", stderr(&show));
    let text = stdout(&show);
    for expected in ["smoothing=0.0_", "Completed", "ECE", "temperature", "epoch"] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
}

#[test]
fn dry_run_runs_nothing() {
    let ws = Workspace::new();
    let file = ws.write("small.json", SMALL);
    let out = ws.run(&file, &["--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("2 run(s): 0 done, 0 failed, 0 running, 0 stale, 2 pending"),
        "{}",
        stdout(&out)
    );
    assert!(!ws.results().exists());
}

#[test]
fn a_bad_experiment_exits_2_and_touches_nothing() {
    let ws = Workspace::new();
    let file = ws.write("bad.json", &SMALL.replace("\"lr\": 0.1", "\"lr\": -0.1"));
    let out = ws.run(&file, &[]);
    assert_exit!(out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("bad.json") && err.contains("`optimizer.lr`") && err.contains("> 0"),
        "{err}"
    );
    assert!(
        !ws.results().exists(),
        "a rejected experiment created its results directory"
    );

    let missing = ws.run(Path::new("nope.json"), &[]);
    assert_exit!(missing, 2);
    assert!(stderr(&missing).contains("nope.json"));
}

#[test]
fn cuda_in_a_cpu_build_is_a_clear_error() {
    if cfg!(feature = "cuda") {
        return;
    }
    let ws = Workspace::new();
    let file = ws.write("small.json", SMALL);
    let out = ws.run(&file, &["--device", "cuda:0"]);
    assert_exit!(out, 2);
    assert!(
        stderr(&out).contains("built without CUDA"),
        "{}",
        stderr(&out)
    );
    assert!(
        !ws.results().exists(),
        "a run that cannot start created its results directory"
    );
    let bad = ws.run(&file, &["--device", "tpu"]);
    assert_exit!(bad, 2);
}

#[test]
fn bench_on_cuda_in_a_cpu_build_is_a_clear_error() {
    if cfg!(feature = "cuda") {
        return;
    }
    let ws = Workspace::new();
    let out = ws.smoothlab(&["bench", "train", "--device", "cuda", "--steps", "1"]);
    assert_exit!(out, 2);
    assert!(
        stderr(&out).contains("built without CUDA"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bench_sizes_must_be_positive() {
    let ws = Workspace::new();
    for args in [
        ["bench", "train", "--steps", "0"],
        ["bench", "train", "--batch-size", "0"],
        ["bench", "calibration", "--repeats", "0"],
        ["bench", "models", "--steps", "0"],
        ["bench", "models", "--repeats", "0"],
        ["bench", "models", "--batch-size", "0"],
        ["bench", "epoch", "--epochs", "0"],
        ["bench", "epoch", "--samples", "5"],
    ] {
        let out = ws.smoothlab(&args);
        assert_exit!(out, 2, "{args:?}");
        assert!(
            stderr(&out).contains("expected at least 1"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_failing_run_is_recorded_and_the_sweep_goes_on() {
    let ws = Workspace::new();
    let file = ws.write(
        "mixed.json",
        &SMALL.replace(
            r#""sweep": { "loss.smoothing": [0.0, 0.1] }"#,
            r#""sweep": { "optimizer.lr": [1e30, 0.1] }"#,
        ),
    );
    let out = ws.run(&file, &[]);
    assert_exit!(out, 1);
    let text = stdout(&out);
    assert!(
        text.contains("1 completed now, 0 already done, 1 failed"),
        "{text}"
    );
    let dirs = ws.run_dirs("small");
    let results: Vec<serde_json::Value> =
        dirs.iter().map(|d| json(&d.join("result.json"))).collect();
    let failed = results
        .iter()
        .find(|r| r["status"] == "failed")
        .expect("a failed result");
    assert!(
        failed["error"].as_str().unwrap().contains("epoch 1 step"),
        "{failed}"
    );
    assert!(failed.get("metrics").is_none());
    assert!(results.iter().any(|r| r["status"] == "completed"));

    // A plain rerun skips the failure and still exits 1; --retry-failed runs it again.
    let again = ws.run(&file, &[]);
    assert_exit!(again, 1);
    assert!(
        stdout(&again).contains("failed earlier, skipped"),
        "{}",
        stdout(&again)
    );
    let retry = ws.run(&file, &["--retry-failed"]);
    assert_exit!(retry, 1);
    assert!(stdout(&retry).contains("FAILED"), "{}", stdout(&retry));
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let ws = Workspace::new();
    // Layers wide enough that candle's CPU matmul splits its work across threads.
    let file = ws.write(
        "small.json",
        &SMALL
            .replace("[0.0, 0.1]", "[0.1]")
            .replace("\"features\": 8", "\"features\": 64")
            .replace("\"hidden\": [32]", "\"hidden\": [256, 256]"),
    );
    let metrics = |threads: &str, results: &str| {
        let out = ws
            .command(&["run", file.to_str().unwrap(), "--results", results])
            .env("RAYON_NUM_THREADS", threads)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let dir = std::fs::read_dir(ws.path().join(results).join("small"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.is_dir())
            .unwrap();
        let result = json(&dir.join("result.json"));
        assert_eq!(
            result["environment"]["threads"],
            threads.parse::<u64>().unwrap()
        );
        result["metrics"].clone()
    };
    assert_eq!(metrics("1", "one"), metrics("2", "two"));
}

#[test]
fn show_rejects_what_is_not_a_result() {
    let ws = Workspace::new();
    let file = ws.write("result.json", "{\"status\": 3}");
    let out = ws.smoothlab(&["show", file.to_str().unwrap()]);
    assert_exit!(out, 2);
    assert!(
        stderr(&out).contains("is not a smoothlab result file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn calibrate_reproduces_a_runs_own_metrics_from_its_saved_predictions() {
    let ws = Workspace::new();
    let file = ws.write("small.json", &SMALL.replace("[0.0, 0.1]", "[0.1]"));
    assert!(ws.run(&file, &[]).status.success());
    let run_dir = ws.run_dirs("small").remove(0);
    let result = json(&run_dir.join("result.json"));
    let predictions = run_dir.join("predictions.safetensors");
    let p = predictions.to_str().unwrap();

    let out = ws.smoothlab(&["calibrate", p, "--fit-temperature", p, "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Test logits by default, validation logits for the fit: exactly what the run computed.
    assert_eq!(report["metrics"], result["metrics"]["test"]);
    assert_eq!(report["temperature"], result["metrics"]["temperature"]);
    assert_eq!(report["scaled"], result["metrics"]["test_scaled"]);

    let table = ws.smoothlab(&["calibrate", p, "--bins", "10"]);
    assert!(table.status.success());
    let text = stdout(&table);
    assert!(
        text.contains("ECE") && text.contains("(10 equal-width confidence bins)"),
        "{text}"
    );
}

#[test]
fn a_run_with_every_calibrator_records_each_and_calibrate_agrees() {
    let ws = Workspace::new();
    let all = r#""device": "cpu",
  "evaluation": { "calibrators": ["temperature", "vector", "matrix", "dirichlet", "histogram", "isotonic"] },"#;
    let file = ws.write(
        "small.json",
        &SMALL
            .replace("[0.0, 0.1]", "[0.1]")
            .replace(r#""device": "cpu","#, all),
    );
    let out = ws.run(&file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_dir = ws.run_dirs("small").remove(0);
    let metrics = json(&run_dir.join("result.json"))["metrics"].clone();
    let calibrators = metrics["calibrators"].as_object().unwrap();
    let mut names: Vec<_> = calibrators.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["dirichlet", "histogram", "isotonic", "matrix", "vector"]
    );
    for (name, record) in calibrators {
        assert_eq!(record["method"], name.as_str());
        assert_eq!(record["converged"], true, "{name}: {record}");
        let (before, after) = (
            record["validation_nll_before"].as_f64().unwrap(),
            record["validation_nll_after"].as_f64().unwrap(),
        );
        assert!(after <= before, "{name}: {before} -> {after}");
        assert_eq!(record["test"]["n"], metrics["test"]["n"]);
        assert!(record["test"]["smooth_ece"].as_f64().unwrap() >= 0.0);
    }
    for name in ["histogram", "isotonic"] {
        assert_eq!(
            calibrators[name]["test"]["accuracy"], metrics["test"]["accuracy"],
            "{name} keeps every prediction"
        );
    }
    assert!(metrics["temperature"]["temperature"].as_f64().unwrap() > 0.0);
    for set in [
        &metrics["test"],
        &metrics["test_scaled"],
        &calibrators["isotonic"]["test"],
    ] {
        let intervals = &set["intervals"];
        assert_eq!(
            (intervals["resamples"].clone(), intervals["level"].clone()),
            (200.into(), 0.95.into())
        );
        let (low, high) = (
            intervals["ece"]["low"].as_f64().unwrap(),
            intervals["ece"]["high"].as_f64().unwrap(),
        );
        assert!(0.0 <= low && low <= high, "{intervals}");
    }
    assert!(
        metrics["validation"].get("intervals").is_none(),
        "test sets only"
    );

    // The same fits from the saved predictions.
    let p = run_dir.join("predictions.safetensors");
    let p = p.to_str().unwrap();
    let out = ws.smoothlab(&[
        "calibrate",
        p,
        "--fit",
        p,
        "--method",
        "temperature,vector,matrix,dirichlet,histogram,isotonic",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["scaled"], metrics["test_scaled"]);
    for record in report["calibrators"].as_array().unwrap() {
        let name = record["method"].as_str().unwrap();
        assert_eq!(record, &calibrators[name], "{name}");
    }
    let table = stdout(&ws.smoothlab(&["calibrate", p, "--fit", p, "--method", "isotonic,vector"]));
    for expected in [
        "isotonic",
        "vector",
        "smooth ECE",
        "vector scaling (validation NLL",
    ] {
        assert!(table.contains(expected), "{expected:?} not in\n{table}");
    }
    let out = ws.smoothlab(&["calibrate", p, "--method", "vector"]);
    assert_exit!(out, 2);
    assert!(stderr(&out).contains("--fit"), "{}", stderr(&out));
    let out = ws.smoothlab(&["calibrate", p, "--fit", p, "--method", "platt"]);
    assert_exit!(out, 2);
    assert!(stderr(&out).contains("isotonic"), "{}", stderr(&out));
}

#[test]
fn calibrate_rejects_bad_files_with_exit_code_2() {
    let ws = Workspace::new();
    let cases = [
        (
            "short.json",
            r#"{"logits": [[1.0, 2.0], [0.5, 0.1]], "labels": [0]}"#,
            "2 rows",
        ),
        (
            "range.json",
            r#"{"logits": [[1.0, 2.0]], "labels": [2]}"#,
            "label",
        ),
        (
            "one.json",
            r#"{"logits": [[1.0], [2.0]], "labels": [0, 0]}"#,
            "at least 2 classes",
        ),
        (
            "broken.npz",
            "PK\u{3}\u{4}not really a zip",
            "not a valid .npz (zip) archive",
        ),
        ("notes.txt", "hello", "unsupported file extension"),
    ];
    for (name, text, expected) in cases {
        let path = ws.write(name, text);
        let out = ws.smoothlab(&["calibrate", path.to_str().unwrap()]);
        assert_exit!(out, 2, "{name}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(name) && err.contains(expected),
            "{name}: expected {expected:?} in {err}"
        );
    }
}

#[test]
fn a_result_from_another_schema_version_stops_the_run_and_is_left_alone() {
    let ws = Workspace::new();
    let file = ws.write("small.json", &SMALL.replace("[0.0, 0.1]", "[0.1]"));
    assert!(ws.run(&file, &[]).status.success());
    let result = ws.run_dirs("small")[0].join("result.json");
    let future = std::fs::read_to_string(&result)
        .unwrap()
        .replace("\"schema_version\": 1,", "\"schema_version\": 99,");
    std::fs::write(&result, &future).unwrap();

    for extra in [&[][..], &["--force"][..]] {
        let out = ws.run(&file, extra);
        assert_exit!(out, 2);
        assert!(
            stderr(&out).contains("schema_version 99"),
            "{}",
            stderr(&out)
        );
        assert_eq!(std::fs::read_to_string(&result).unwrap(), future);
    }
}

#[test]
fn an_unreadable_result_is_redone_and_kept() {
    let ws = Workspace::new();
    let file = ws.write("small.json", &SMALL.replace("[0.0, 0.1]", "[0.1]"));
    assert!(ws.run(&file, &[]).status.success());
    let run_dir = ws.run_dirs("small").remove(0);
    std::fs::write(run_dir.join("result.json"), "{\"status\": \"compl").unwrap();

    let dry = ws.run(&file, &["--dry-run"]);
    assert!(
        stdout(&dry).contains("unreadable result.json, redone"),
        "{}",
        stdout(&dry)
    );
    let out = ws.run(&file, &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("1 completed now"), "{}", stdout(&out));
    assert_eq!(json(&run_dir.join("result.json"))["status"], "completed");
    let kept = std::fs::read_dir(run_dir.join("attempts"))
        .unwrap()
        .map(|e| e.unwrap().path().join("result.json"))
        .next()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(kept).unwrap(),
        "{\"status\": \"compl"
    );
}

#[test]
fn slurm_prints_a_job_array_of_shards_that_requeues_itself() {
    let ws = Workspace::new();
    let file = ws.write("small.json", SMALL);
    let results = ws.path().join("shared 100% results");
    let out = ws.smoothlab(&[
        "slurm",
        "small.json",
        "--tasks",
        "2",
        "--partition",
        "gpu-short",
        "--time",
        "1-04:00:00",
        "--cpus-per-task",
        "4",
        "--gpus",
        "1",
        "--results",
        results.to_str().unwrap(),
        "--device",
        "cuda:0",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let script = stdout(&out);
    let file = std::fs::canonicalize(&file).unwrap();
    let logs = results.join("small").join("slurm");
    assert!(
        logs.is_dir(),
        "the log directory exists before sbatch needs it"
    );
    for line in [
        "#!/bin/bash",
        "#SBATCH --array=0-1",
        &format!(
            "#SBATCH --output=\"{}/%A_%a.out\"",
            logs.display().to_string().replace('%', "%%")
        ),
        "#SBATCH --partition=gpu-short",
        "#SBATCH --time=1-04:00:00",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --gres=gpu:1",
        "#SBATCH --requeue",
        "#SBATCH --signal=B:USR1@120",
        "trap requeue USR1",
        r#"  scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}" || exit 1"#,
        r#"export RAYON_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}""#,
        &format!(
            r#"'{}' run '{}' --results '{}' --shard "${{SLURM_ARRAY_TASK_ID}}/2" --device cuda:0 &"#,
            env!("CARGO_BIN_EXE_smoothlab"),
            file.display(),
            results.display()
        ),
    ] {
        assert!(
            script.lines().any(|l| l == line),
            "no line {line:?} in\n{script}"
        );
    }
    // The script is valid bash.
    let syntax = std::process::Command::new("bash")
        .args(["-n", "-c", &script])
        .output()
        .unwrap();
    assert!(syntax.status.success(), "{}", stderr(&syntax));

    for (flag, value) in [
        ("--partition", "a;rm -rf /"),
        ("--time", "4h"),
        ("--tasks", "0"),
    ] {
        let out = ws.smoothlab(&["slurm", "small.json", "--tasks", "2", flag, value]);
        assert_exit!(out, 2, "{flag} {value}");
        assert!(stderr(&out).contains(flag), "{}", stderr(&out));
    }
}

#[test]
fn unusable_arguments_and_names_exit_2_with_bounded_messages() {
    let ws = Workspace::new();
    let file = ws.write("small.json", SMALL);
    let plain = ws.write("plain-file", "not a directory");
    let out = ws.smoothlab(&["run", "small.json", "--results", plain.to_str().unwrap()]);
    assert_exit!(out, 2);
    assert!(
        stderr(&out).contains("is a file, not a directory"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), "not a directory");

    let out = ws.run(&file, &["--threads", "100000"]);
    assert_exit!(out, 2);
    assert!(
        stderr(&out).contains("at most 1024 threads"),
        "{}",
        stderr(&out)
    );

    let long = ws.write(
        "long.json",
        &SMALL.replace("\"small\"", &format!("\"{}\"", "n".repeat(5000))),
    );
    let out = ws.run(&long, &["--dry-run"]);
    assert_exit!(out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("(5000 characters)") && err.len() < 400,
        "{err}"
    );
}

#[test]
fn logs_to_a_file_have_no_colour_codes() {
    let ws = Workspace::new();
    let file = ws.write("small.json", SMALL);
    assert_exit!(ws.run(&file, &[]), 0);
    // A changed experiment file is logged by the supervisor itself.
    let file = ws.write(
        "small.json",
        &SMALL.replace("\"epochs\": 2", "\"epochs\": 1"),
    );
    let out = ws
        .run_command(&file, &[])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert_exit!(out, 0);
    let err = stderr(&out);
    assert!(
        err.contains("the experiment file changed") && !err.contains('\u{1b}'),
        "{err:?}"
    );
}
