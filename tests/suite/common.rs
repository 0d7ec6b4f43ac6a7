//! What the command-line tests share: a temporary workspace and the `smoothlab` binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A sweep named `sweep`: four runs of three epochs (13 steps each).
pub const SWEEP: &str = r#"{
  "name": "sweep",
  "dataset": { "name": "synthetic", "classes": 4, "features": 8, "train_size": 800, "test_size": 300, "class_sep": 1.0 },
  "model": { "name": "mlp", "hidden": [32], "dropout": 0.1 },
  "optimizer": { "name": "sgd", "lr": 0.1, "momentum": 0.9 },
  "training": { "epochs": 3, "batch_size": 64 },
  "device": "cpu",
  "sweep": { "loss.smoothing": [0.0, 0.1], "seed": [0, 1] }
}"#;

pub struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn results(&self) -> PathBuf {
        self.dir.path().join("results")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `smoothlab ARGS...` in the workspace, ready to run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_smoothlab"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("RUST_LOG", "warn");
        command
    }

    pub fn smoothlab(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// `smoothlab run FILE --results <tmp>/results EXTRA...`, ready to run.
    pub fn run_command(&self, file: &Path, extra: &[&str]) -> Command {
        let results = self.results();
        let mut args = vec![
            "run",
            file.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.command(&args)
    }

    pub fn run(&self, file: &Path, extra: &[&str]) -> Output {
        self.run_command(file, extra).output().unwrap()
    }

    pub fn run_dirs(&self, experiment: &str) -> Vec<PathBuf> {
        dirs_in(&self.results().join(experiment))
    }
}

/// The directories in `dir`, sorted; none while `dir` does not exist.
pub fn dirs_in_if_any(dir: &Path) -> Vec<PathBuf> {
    if dir.exists() {
        dirs_in(dir)
    } else {
        Vec::new()
    }
}

/// The directories in `dir`, sorted.
pub fn dirs_in(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Per completed run in `experiment_dir`: its metrics and its training history without
/// the wall times, which is what must not depend on how the run was scheduled or
/// interrupted.
pub fn outcomes(experiment_dir: &Path) -> BTreeMap<String, serde_json::Value> {
    dirs_in(experiment_dir)
        .into_iter()
        .filter(|dir| dir.join("config.json").exists())
        .map(|dir| {
            let result = json(&dir.join("result.json"));
            assert_eq!(result["status"], "completed", "{}", dir.display());
            let mut history = result["history"].clone();
            for record in history.as_array_mut().unwrap() {
                record.as_object_mut().unwrap().remove("seconds");
            }
            let id = dir.file_name().unwrap().to_string_lossy().into_owned();
            let outcome = serde_json::json!({"metrics": result["metrics"], "history": history});
            (id, outcome)
        })
        .collect()
}

/// Asserts that `$output` exited with `$code`, showing its stdout and stderr (and the
/// optional formatted context) when it did not.
macro_rules! assert_exit {
    ($output:expr, $code:expr $(,)?) => {
        $crate::common::assert_exit!($output, $code, "exit code")
    };
    ($output:expr, $code:expr, $($context:tt)+) => {{
        let output: &std::process::Output = &$output;
        assert_eq!(
            output.status.code(),
            Some($code),
            "{}\n--- stdout\n{}--- stderr\n{}",
            format!($($context)+),
            $crate::common::stdout(output),
            $crate::common::stderr(output)
        );
    }};
}
pub(crate) use assert_exit;

/// The real data set `name` (`mnist`, `fashion-mnist`: the four IDX `.gz` files) in
/// `$SMOOTHLAB_DATA`, by default `../shared/data` beside the checkout — the directory
/// `scripts/data.sh` links for the experiment files. A test that needs it fails,
/// naming the directory, when it is missing.
pub fn real_data(name: &str) -> PathBuf {
    let root = std::env::var_os("SMOOTHLAB_DATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"),
        PathBuf::from,
    );
    let dir = root.join(name);
    assert!(
        dir.join("train-images-idx3-ubyte.gz").is_file(),
        "the real {name} is missing: expected its four IDX .gz files in {} (set SMOOTHLAB_DATA to the directory holding {name}/; scripts/data.sh says where to get it)",
        dir.display()
    );
    dir
}

/// The real MNIST: [`real_data`]`("mnist")`.
pub fn mnist_dir() -> PathBuf {
    real_data("mnist")
}
