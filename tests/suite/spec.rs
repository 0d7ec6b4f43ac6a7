//! Experiment files: parsing, validation errors (file, JSON path, expectation), sweep
//! expansion and run ids.

use smoothlab::spec::{self, DeviceSpec, LossSpec, OptimizerSpec, SpecError};
use std::path::Path;

fn parse(text: &str) -> Result<spec::Plan, SpecError> {
    spec::parse(Path::new("exp.json"), text)
}

/// The error message for `text`, which must be rejected.
fn error(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e.to_string(),
    }
}

fn smoothing(run: &spec::PlannedRun) -> f64 {
    match &run.config.loss {
        LossSpec::SmoothedCe(l) => l.smoothing,
        other => panic!("not a smoothed loss: {other:?}"),
    }
}

#[test]
fn minimal_file_gets_every_default() {
    let plan = parse(r#"{"name": "tiny"}"#).unwrap();
    assert_eq!(plan.runs.len(), 1);
    assert_eq!(plan.experiment.device, DeviceSpec::Auto);
    assert!(plan.runs[0].id.starts_with("run_"), "{}", plan.runs[0].id);
    assert!(matches!(
        plan.runs[0].config.optimizer,
        OptimizerSpec::Sgd(_)
    ));
}

#[test]
fn the_design_example_parses() {
    let plan = parse(
        r#"{
      "name": "mlp-smoothing",
      "dataset": { "name": "synthetic", "val_fraction": 0.1 },
      "model": { "name": "mlp", "hidden": [512, 512], "dropout": 0.0 },
      "loss": { "name": "smoothed_ce", "smoothing": 0.1 },
      "optimizer": { "name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": true, "weight_decay": 5e-4 },
      "schedule": { "name": "cosine", "warmup_epochs": 1 },
      "training": { "epochs": 10, "batch_size": 128 },
      "evaluation": { "bins": 15, "temperature_scaling": true },
      "seed": 0,
      "device": "cpu",
      "sweep": { "loss.smoothing": [0.0, 0.05, 0.1, 0.2], "seed": [0, 1, 2] }
    }"#,
    )
    .unwrap();
    assert_eq!(plan.runs.len(), 12);
    // First axis outermost, in file order.
    let order: Vec<(f64, u64)> = plan
        .runs
        .iter()
        .map(|r| (smoothing(r), r.config.seed))
        .collect();
    assert_eq!(&order[..4], &[(0.0, 0), (0.0, 1), (0.0, 2), (0.05, 0)]);
    assert_eq!(plan.runs[3].id[..20].to_string(), "smoothing=0.05_seed=");
    let ids: std::collections::HashSet<_> = plan.runs.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 12);
}

#[test]
fn sweep_axes_keep_file_order_not_alphabetical_order() {
    let plan =
        parse(r#"{"name": "x", "sweep": {"seed": [0, 1], "loss.smoothing": [0.0, 0.1]}}"#).unwrap();
    let order: Vec<(u64, f64)> = plan
        .runs
        .iter()
        .map(|r| (r.config.seed, smoothing(r)))
        .collect();
    assert_eq!(order, [(0, 0.0), (0, 0.1), (1, 0.0), (1, 0.1)]);
    assert!(
        plan.runs[1].id.starts_with("seed=0_smoothing=0.1_"),
        "{}",
        plan.runs[1].id
    );
}

#[test]
fn run_ids_are_stable_and_ignore_the_device_and_explicit_defaults() {
    let a = parse(r#"{"name": "a", "device": "cpu", "sweep": {"seed": [1, 2]}}"#).unwrap();
    let b = parse(r#"{"name": "b", "device": "cuda:1", "training": {"epochs": 10}, "sweep": {"seed": [1, 2]}}"#).unwrap();
    let ids = |p: &spec::Plan| p.runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b));
    // Pinned values: a change of the canonical form (field names, defaults, number
    // formatting) would silently orphan every existing results directory.
    assert_eq!(ids(&a), ["seed=1_ae78cba7", "seed=2_ae6fadb2"]);
    let c =
        parse(r#"{"name": "a", "training": {"epochs": 11}, "sweep": {"seed": [1, 2]}}"#).unwrap();
    assert_ne!(
        ids(&a)[0],
        ids(&c)[0],
        "a different config must get a different id"
    );
    assert!(ids(&a)[0].starts_with("seed=1_"));
}

#[test]
fn swept_values_are_validated_like_written_ones() {
    let e = error(r#"{"name": "x", "sweep": {"loss.smoothing": [0.0, 1.0]}}"#);
    assert!(e.contains(r#"at `sweep["loss.smoothing"][1]`"#), "{e}");
    assert!(e.contains("[0, 1)"), "{e}");
    let e = error(r#"{"name": "x", "sweep": {"optimizer.lr": [0.1, -1]}}"#);
    assert!(
        e.contains(r#"sweep["optimizer.lr"][1]"#) && e.contains("learning rate > 0"),
        "{e}"
    );
    let e = error(r#"{"name": "x", "sweep": {"seed": [1, 1]}}"#);
    assert!(e.contains("listed twice"), "{e}");
}

#[test]
fn bad_files_name_the_file_the_path_and_the_expectation() {
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"{"name": "x", "optimizer": {"name": "sgd", "momentun": 0.9}}"#,
            "`optimizer.momentun`",
            "unknown field",
        ),
        (r#"{"name": "x", "colour": 1}"#, "`colour`", "unknown field"),
        (
            r#"{"name": "x", "loss": {"name": "smoothed_ce", "smoothing": 1.5}}"#,
            "`loss.smoothing`",
            "[0, 1)",
        ),
        (
            r#"{"name": "x", "loss": {"name": "smoothed_ce", "smoothing": -0.1}}"#,
            "`loss.smoothing`",
            "[0, 1)",
        ),
        (
            r#"{"name": "x", "optimizer": {"name": "sgd", "lr": 0}}"#,
            "`optimizer.lr`",
            "> 0",
        ),
        (
            r#"{"name": "x", "optimizer": {"name": "adamw", "lr": -1e-3}}"#,
            "`optimizer.lr`",
            "> 0",
        ),
        (
            r#"{"name": "x", "optimizer": {"name": "sgd", "lr": "0.1"}}"#,
            "`optimizer.lr`",
            "invalid type",
        ),
        (
            r#"{"name": "x", "optimizer": {"name": "adam"}}"#,
            "`optimizer.name`",
            "unknown variant",
        ),
        (
            r#"{"name": "x", "optimizer": {"lr": 0.1}}"#,
            "`optimizer`",
            "missing field `name`",
        ),
        (
            r#"{"name": "x", "training": {"epochs": 0}}"#,
            "`training.epochs`",
            "at least 1",
        ),
        (
            r#"{"name": "x", "training": {"batch_size": 0}}"#,
            "`training.batch_size`",
            "≥ 1",
        ),
        (
            r#"{"name": "x", "training": {"batch_size": -3}}"#,
            "`training.batch_size`",
            "usize",
        ),
        (
            r#"{"name": "x", "evaluation": {"bins": 0}}"#,
            "`evaluation.bins`",
            "nonzero",
        ),
        (
            r#"{"name": "x", "sweep": {"loss.smoothing": []}}"#,
            r#"`sweep["loss.smoothing"]`"#,
            "non-empty list",
        ),
        (
            r#"{"name": "x", "sweep": {"loss.smoothing": 0.1}}"#,
            r#"`sweep["loss.smoothing"]`"#,
            "a list of values",
        ),
        (
            r#"{"name": "x", "sweep": {"loss.smoothin": [0.1]}}"#,
            r#"`sweep["loss.smoothin"]`"#,
            "no setting",
        ),
        (
            r#"{"name": "x", "sweep": {"optimizer.beta1": [0.9]}}"#,
            r#"`sweep["optimizer.beta1"]`"#,
            "has no `beta1`",
        ),
        (
            r#"{"name": "x", "sweep": {"device": ["cpu"]}}"#,
            r#"`sweep["device"]`"#,
            "cannot be swept",
        ),
        (
            r#"{"name": "x", "device": "gpu"}"#,
            "`device`",
            "\"cuda:N\"",
        ),
        (r#"{"name": "../x"}"#, "`name`", "directory name"),
        (
            r#"{"name": "x", "dataset": {"name": "synthetic", "val_fraction": 1.0}}"#,
            "`dataset.val_fraction`",
            "[0, 1)",
        ),
        (
            r#"{"name": "x", "dataset": {"name": "synthetic", "classes": 1}}"#,
            "`dataset.classes`",
            "expected 2..=100000 classes, got 1",
        ),
        (
            r#"{"name": "x", "dataset": {"name": "synthetic", "classes": 100001}}"#,
            "`dataset.classes`",
            "expected 2..=100000 classes, got 100001",
        ),
        (
            r#"{"name": "x", "dataset": {"name": "synthetic", "features": 16777217}}"#,
            "`dataset.features`",
            "expected 1..=16777216 features",
        ),
        (
            r#"{"name": "x", "dataset": {"name": "synthetic", "train_size": 4294967296}}"#,
            "`dataset.train_size`",
            "expected 2..=2147483648 samples",
        ),
        (
            r#"{"name": "x", "dataset": {"name": "synthetic", "clusters_per_class": 5000}}"#,
            "`dataset.clusters_per_class`",
            "expected 1..=1024, got 5000",
        ),
        (
            r#"{"name": "x", "model": {"name": "mlp", "hidden": [64, 0]}}"#,
            "`model.hidden[1]`",
            "in 1..=65536, got 0",
        ),
        (
            r#"{"name": "x", "model": {"name": "mlp", "hidden": [1000000000000]}}"#,
            "`model.hidden[0]`",
            "in 1..=65536, got 1000000000000",
        ),
        (
            r#"{"name": "x", "model": {"name": "mlp", "dropout": 1.0}}"#,
            "`model.dropout`",
            "[0, 1)",
        ),
        (
            r#"{"name": "x", "schedule": {"name": "multistep", "milestones": [5, 3]}}"#,
            "`schedule.milestones[1]`",
            "increasing",
        ),
        (
            r#"{"name": "x", "schedule": {"name": "cosine", "warmup_epochs": 50}}"#,
            "`schedule.warmup_epochs`",
            "training.epochs",
        ),
        (
            r#"{"name": "x", "dataset": {"name": "synthetic", "val_fraction": 0}}"#,
            "`evaluation.temperature_scaling`",
            "val_fraction > 0",
        ),
        (
            r#"{"name": "x", "model": {"name": "resnet", "depth": 21}}"#,
            "`model.depth`",
            "6n+2",
        ),
        (
            r#"{"name": "x", "evaluation": {"bootstrap": {"resamples": 1000000}}}"#,
            "`evaluation.bootstrap.resamples`",
            "at most 100000",
        ),
        (
            r#"{"name": "x", "evaluation": {"bootstrap": {"level": 95}}}"#,
            "`evaluation.bootstrap.level`",
            "(0, 1)",
        ),
        (
            r#"{"name": "x", "evaluation": {"calibrators": ["temperature", "platt"]}}"#,
            "`evaluation.calibrators[1]`",
            "`isotonic`",
        ),
        (
            r#"{"name": "x", "evaluation": {"calibrators": ["vector", "matrix", "vector"]}}"#,
            "`evaluation.calibrators[2]`",
            "\"vector\" is listed twice",
        ),
        (
            r#"{"name": "x", "dataset": {"name": "synthetic", "val_fraction": 0},
                "evaluation": {"temperature_scaling": false, "calibrators": ["isotonic"]}}"#,
            "`evaluation.calibrators[0]`",
            "val_fraction > 0",
        ),
        (
            r#"{"name": "x", "evaluation": {"temperature_scaling": false, "calibrators": ["temperature", "vector"]}}"#,
            "`evaluation.calibrators`",
            "leave one of them out",
        ),
        (
            r#"{"name": "x", "model": {"name": "resnet", "depth": 600000002}}"#,
            "`model.depth`",
            "from 8 to 1202",
        ),
        (
            r#"{"name": "x", "model": {"name": "resnet", "width": 100000}}"#,
            "`model.width`",
            "1..=1024 channels, got 100000",
        ),
        (
            r#"{"name": "x", "model": {"name": "lenet5"}}"#,
            "`model.name`",
            "needs images",
        ),
        (
            r#"{"name": "x", "dataset": {"name": "mnist", "train_subset": 0}}"#,
            "`dataset.train_subset`",
            "at least 1 sample",
        ),
        (
            r#"{"name": "x", "dataset": {"name": "mnist", "augment": true}}"#,
            "`dataset.augment`",
            "unknown field",
        ),
        (
            r#"{"name": "x", "dataset": {"name": "cifar100", "labels": "medium"}}"#,
            "`dataset.labels`",
            "unknown variant",
        ),
        (
            r#"{"name": "x", "dataset": {"name": "cifar10", "train_subset": 10, "val_fraction": 0.05}}"#,
            "`dataset.val_fraction`",
            "leaves an empty split",
        ),
        (
            r#"{"name": "x", "dataset": {"name": "synthetic", "features": 3072, "shape": [3, 32]}}"#,
            "`dataset.shape`",
            "product is dataset.features = 3072",
        ),
        (
            r#"{"name": "x", "dataset": {"name": "synthetic", "features": 1, "shape": []}}"#,
            "`dataset.shape`",
            "product",
        ),
        (
            r#"{"name": "x", "dataset": {"name": "synthetic", "shape": [4294967296, 4294967296]}}"#,
            "`dataset.shape`",
            "product",
        ),
        (
            r#"{"name": "x", "model": {"name": "resnet"}}"#,
            "`model.name`",
            "needs images",
        ),
        (
            r#"{"name": "x", "dataset": {"name": "synthetic", "features": 3072, "shape": [3072]}, "model": {"name": "lenet5"}}"#,
            "`model.name`",
            "`shape` [channels, height, width]",
        ),
        (
            r#"{"name": "x", "dataset": {"name": "svhn"}}"#,
            "`dataset.name`",
            "unknown variant",
        ),
        (
            r#"{"name": "x", "evaluation": {"bins": 10001}}"#,
            "`evaluation.bins`",
            "at most 10000 bins",
        ),
        (
            r#"{"name": "x", "sweep": {"save_model": [true, false]}}"#,
            r#"`sweep["save_model"]`"#,
            "cannot be swept",
        ),
        (
            r#"{"name": "x", "training": {"save_model": true}}"#,
            "`training.save_model`",
            "unknown field",
        ),
        (
            r#"{"name": "x", "optimizer": {"name": "sgd", "nesterov": true}, "sweep": {"optimizer.name": ["sgd", "adamw"]}}"#,
            r#"`sweep["optimizer.name"][1]`"#,
            "sweep `optimizer` itself",
        ),
        (
            r#"{"name": "x", "loss": {"name": "focal", "gamma": -1}}"#,
            "`loss.gamma`",
            "γ in [0, 100]",
        ),
        (
            r#"{"name": "x", "loss": {"name": "focal_adaptive", "schedule": [{"below": 0.5, "gamma": 5}, {"below": 0.2, "gamma": 4}]}}"#,
            "`loss.schedule[1].below`",
            "above the previous step's",
        ),
        (
            r#"{"name": "x", "loss": {"name": "focal_adaptive", "schedule": [{"below": 0.2, "gamma": 500}]}}"#,
            "`loss.schedule[0].gamma`",
            "γ in [0, 100]",
        ),
        (
            r#"{"name": "x", "loss": {"name": "mmce", "lambda": -2}}"#,
            "`loss.lambda`",
            "finite value ≥ 0",
        ),
        (
            r#"{"name": "x", "loss": {"name": "mbls", "margin": -10}}"#,
            "`loss.margin`",
            "finite value ≥ 0",
        ),
        (
            r#"{"name": "x", "loss": {"name": "confidence_penalty", "beta": -0.1}}"#,
            "`loss.beta`",
            "finite value ≥ 0",
        ),
        (
            r#"{"name": "x", "loss": {"name": "smoothed_ce", "convention": "true_class"}}"#,
            "`loss.convention`",
            "unknown variant",
        ),
        (
            r#"{"name": "x", "loss": {"name": "huber"}}"#,
            "`loss.name`",
            "focal_adaptive",
        ),
        (
            r#"{"name": "x", "training": {"mixup": {"alpha": 0}}}"#,
            "`training.mixup.alpha`",
            "α in (0, 1000]",
        ),
        (
            r#"{"name": "x", "training": {"mixup": {"alpha": 0.2}}, "sweep": {"training.mixup.alpha": [0.2, -1]}}"#,
            r#"`sweep["training.mixup.alpha"][1]`"#,
            "α in (0, 1000]",
        ),
        (
            r#"{"name": "x", "sweep": {"training.mixup": [null, {"alpha": -1}]}}"#,
            r#"`sweep["training.mixup"][1]`"#,
            "α in (0, 1000]",
        ),
        (
            r#"{"name": "x", "sweep": {"training.mixup.alpha": [0.2]}}"#,
            r#"`sweep["training.mixup.alpha"]`"#,
            "`training` has no `mixup`",
        ),
        (
            r#"{"name": "x", "sweep": {"training.epoch": [1, 2]}}"#,
            r#"`sweep["training.epoch"]`"#,
            "`training` has no `epoch` (it has: epochs",
        ),
    ];
    for (text, path, expected) in cases {
        let e = error(text);
        assert!(e.starts_with("exp.json: "), "{e}");
        assert!(e.contains(path), "expected path {path} in: {e}");
        assert!(e.contains(expected), "expected {expected:?} in: {e}");
    }
}

#[test]
fn an_error_at_the_top_level_names_no_empty_path() {
    let e = error(r#"{"dataset": {"name": "synthetic"}}"#);
    assert_eq!(e, "exp.json: missing field `name`");
}

#[test]
fn a_whole_section_can_be_swept_and_its_name_labels_the_run() {
    let plan = parse(
        r#"{"name": "x", "sweep": {"optimizer": [
            {"name": "sgd", "lr": 0.1, "momentum": 0.9},
            {"name": "adamw", "lr": 0.001}
        ]}}"#,
    )
    .unwrap();
    assert_eq!(plan.runs.len(), 2);
    assert!(
        plan.runs[0].id.starts_with("optimizer=sgd_"),
        "{}",
        plan.runs[0].id
    );
    assert!(
        plan.runs[1].id.starts_with("optimizer=adamw_"),
        "{}",
        plan.runs[1].id
    );
}

#[test]
fn a_loss_sweep_labels_each_run_by_its_method() {
    let plan = parse(
        r#"{"name": "x", "sweep": {"loss": [
            {"name": "smoothed_ce", "smoothing": 0},
            {"name": "smoothed_ce", "smoothing": 0.05},
            {"name": "smoothed_ce", "smoothing": 0.05, "convention": "others", "prior": "class_frequency"},
            {"name": "focal", "gamma": 3},
            {"name": "focal_adaptive"},
            {"name": "focal_adaptive", "schedule": [{"below": 0.25, "gamma": 4}], "gamma": 2},
            {"name": "confidence_penalty", "beta": 0.1},
            {"name": "brier"},
            {"name": "mmce"},
            {"name": "mmce", "lambda": 2, "estimator": "reference_code"},
            {"name": "mbls"}
        ]}}"#,
    )
    .unwrap();
    let labels: Vec<_> = plan
        .runs
        .iter()
        .map(|r| r.id.rsplit_once('_').unwrap().0.to_owned())
        .collect();
    assert_eq!(
        labels,
        [
            "loss=ce",
            "loss=ls0.05",
            "loss=ls0.05-others-freq",
            "loss=focal-g3",
            "loss=flsd53",
            "loss=flsd-g4lt0.25-g2",
            "loss=cp-b0.1",
            "loss=brier",
            "loss=mmce-l2",
            "loss=mmce-l2-code",
            "loss=mbls-m10-a0.1",
        ]
    );
    let ids: std::collections::HashSet<_> = plan.runs.iter().map(|r| &r.id).collect();
    assert_eq!(ids.len(), plan.runs.len());
    // The defaults of the new sections are what the papers use.
    let config = |i: usize| serde_json::to_value(&plan.runs[i].config.loss).unwrap();
    assert_eq!(
        config(4),
        serde_json::json!({"name": "focal_adaptive", "schedule": [{"below": 0.2, "gamma": 5.0}], "gamma": 3.0})
    );
    assert_eq!(config(8)["lambda"], 2.0);
    assert_eq!(config(8).get("estimator"), None, "the default is left out");
    assert_eq!(config(9)["estimator"], "reference_code");
    assert_eq!(
        (config(10)["margin"].clone(), config(10)["alpha"].clone()),
        (10.0.into(), 0.1.into())
    );
}

#[test]
fn the_smoothing_conventions_and_mixup_leave_existing_run_ids_alone() {
    // Written defaults hash like omitted ones, so results made before these options
    // existed keep their directories.
    let plain = parse(r#"{"name": "x", "sweep": {"loss.smoothing": [0.0, 0.1]}}"#).unwrap();
    let explicit = parse(
        r#"{"name": "x", "loss": {"name": "smoothed_ce", "convention": "uniform", "prior": "uniform"},
            "sweep": {"loss.smoothing": [0.0, 0.1]}}"#,
    )
    .unwrap();
    for (a, b) in plain.runs.iter().zip(&explicit.runs) {
        assert_eq!(a.id, b.id);
    }
    let quickstart = spec::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/experiments/quickstart.json"
    )))
    .unwrap();
    let ids: Vec<_> = quickstart.runs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["smoothing=0.0_9eec0710", "smoothing=0.1_744862da"]);
    let mixed = parse(
        r#"{"name": "x", "training": {"mixup": {"alpha": 0.2}}, "sweep": {"loss.smoothing": [0.0, 0.1]}}"#,
    )
    .unwrap();
    assert_ne!(
        mixed.runs[0].id, plain.runs[0].id,
        "mixup is part of the config"
    );
    let default_calibrators = parse(
        r#"{"name": "x", "evaluation": {"calibrators": ["temperature"]}, "sweep": {"loss.smoothing": [0.0, 0.1]}}"#,
    )
    .unwrap();
    assert_eq!(default_calibrators.runs[0].id, plain.runs[0].id);
    let more = parse(
        r#"{"name": "x", "evaluation": {"calibrators": ["temperature", "isotonic"]}, "sweep": {"loss.smoothing": [0.0, 0.1]}}"#,
    )
    .unwrap();
    assert_ne!(
        more.runs[0].id, plain.runs[0].id,
        "calibrators are part of the config"
    );
}

#[test]
fn saving_the_model_changes_no_run_id() {
    let a = parse(r#"{"name": "x", "sweep": {"seed": [1, 2]}}"#).unwrap();
    let b = parse(r#"{"name": "x", "save_model": true, "sweep": {"seed": [1, 2]}}"#).unwrap();
    assert!(b.experiment.save_model && !a.experiment.save_model);
    for (ra, rb) in a.runs.iter().zip(&b.runs) {
        assert_eq!(ra.id, rb.id);
    }
}

#[test]
fn malformed_json_reports_line_and_column() {
    let e = parse("{\"name\": \"x\",\n  \"seed\": 1,\n}").unwrap_err();
    match &e {
        SpecError::Syntax { line, column, .. } => assert_eq!((*line, *column), (3, 1)),
        other => panic!("expected a syntax error, got {other}"),
    }
    assert!(
        e.to_string().starts_with("exp.json:3:1: malformed JSON"),
        "{e}"
    );
}

#[test]
fn a_missing_file_is_named() {
    let e = spec::load(Path::new("/nonexistent/exp.json")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/exp.json"), "{e}");
}

#[test]
fn the_shipped_experiments_are_valid() {
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            spec::load(&path).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// Equal values, a written `0` and a resolved `0.0` alike.
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The value at a dotted `path` of a run's resolved config.
fn config_at(run: &spec::PlannedRun, path: &str) -> serde_json::Value {
    let config = serde_json::to_value(&run.config).unwrap();
    path.split('.')
        .try_fold(&config, |v, key| v.get(key))
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

#[test]
fn a_path_inside_a_swept_section_composes_with_it_in_any_order() {
    for sweep in [
        r#"{"optimizer.lr": [0.1], "optimizer": [{"name": "adamw"}]}"#,
        r#"{"optimizer": [{"name": "adamw"}], "optimizer.lr": [0.1]}"#,
    ] {
        let plan = parse(&format!(r#"{{"name": "x", "sweep": {sweep}}}"#)).unwrap();
        let [run] = plan.runs.as_slice() else {
            panic!("{sweep}: {} runs", plan.runs.len())
        };
        match &run.config.optimizer {
            OptimizerSpec::Adamw(a) => assert_eq!(a.lr, 0.1, "{sweep}"),
            other => panic!("{sweep}: trains {other:?}"),
        }
    }
    // A section sweep then a path into it: each section value gets each path value.
    let plan = parse(
        r#"{"name": "dc", "sweep": {"dataset": [{"name": "synthetic"}], "dataset.classes": [3, 4]}}"#,
    )
    .unwrap();
    let classes: Vec<_> = plan
        .runs
        .iter()
        .map(|r| config_at(r, "dataset.classes"))
        .collect();
    assert_eq!(classes, [3, 4]);
    // A path the section's kind does not have is an error naming both.
    let e = error(
        r#"{"name": "x", "sweep": {"optimizer": [{"name": "adamw"}], "optimizer.nesterov": [true]}}"#,
    );
    assert!(
        e.contains("optimizer.nesterov") && e.contains("unknown field"),
        "{e}"
    );
}

#[test]
fn runs_that_resolve_to_the_same_config_are_an_error_not_two_labels() {
    let e = error(
        r#"{"name": "x", "sweep": {"loss.smoothing": [0.1], "loss": [
            {"name": "smoothed_ce"}, {"name": "smoothed_ce", "smoothing": 0.3}]}}"#,
    );
    assert!(e.contains("resolve to the same config"), "{e}");
}

#[test]
fn a_duplicate_key_is_an_error_with_its_path() {
    let e =
        error(r#"{"name": "x", "loss": {"name": "smoothed_ce"}, "loss": {"name": "smoothed_ce"}}"#);
    assert!(
        e.contains("duplicate key `loss`") && e.contains("exp.json:1:"),
        "{e}"
    );
    let e = error(
        r#"{"name": "x", "sweep": {"seed": [0, 1]}, "training": {"epochs": 1, "epochs": 2}}"#,
    );
    assert!(e.contains("duplicate key `training.epochs`"), "{e}");
}

#[test]
fn a_plan_larger_than_the_limit_is_refused_before_expanding() {
    let axis = "[0,1,2,3,4,5,6,7,8,9]";
    let e = error(&format!(
        r#"{{"name": "x", "sweep": {{"seed": {axis}, "training.epochs": [1,2,3,4,5,6,7,8,9,10],
            "training.batch_size": [1,2,3,4,5,6,7,8,9,10], "training.eval_batch_size": [1,2,3,4,5,6,7,8,9,10],
            "dataset.classes": [2,3,4,5,6,7,8,9,10,11], "dataset.features": [1,2,3,4,5,6,7,8,9,10]}}}}"#
    ));
    assert!(
        e.contains("10 × 10 × 10 × 10 × 10 × 10 runs") && e.contains("100000"),
        "{e}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

    /// Every run's swept values are the values at those paths in its config, whatever
    /// mix of section and dotted sweeps produced it.
    #[test]
    fn swept_values_are_what_the_config_holds(
        lrs in proptest::collection::btree_set(1u32..1000, 1..3),
        smoothings in proptest::collection::btree_set(0u32..99, 1..3),
        section_first in proptest::bool::ANY,
        kinds in proptest::sample::subsequence(vec!["sgd", "adamw"], 1..=2),
    ) {
        let lrs: Vec<String> = lrs.iter().map(|l| format!("{}", *l as f64 / 1000.0)).collect();
        let smoothings: Vec<String> = smoothings.iter().map(|s| format!("{}", *s as f64 / 100.0)).collect();
        let sections: Vec<String> = kinds.iter().map(|k| format!(r#"{{"name": "{k}"}}"#)).collect();
        let section = format!(r#""optimizer": [{}]"#, sections.join(", "));
        let dotted = format!(r#""optimizer.lr": [{}], "loss.smoothing": [{}]"#, lrs.join(", "), smoothings.join(", "));
        let sweep = if section_first { format!("{section}, {dotted}") } else { format!("{dotted}, {section}") };
        let plan = parse(&format!(r#"{{"name": "x", "sweep": {{{sweep}}}}}"#)).unwrap();
        proptest::prop_assert_eq!(plan.runs.len(), lrs.len() * smoothings.len() * kinds.len());
        for run in &plan.runs {
            for (path, value) in &run.swept {
                match value {
                    serde_json::Value::Object(fields) => {
                        for (key, v) in fields {
                            let at = format!("{path}.{key}");
                            proptest::prop_assert!(same(&config_at(run, &at), v), "{}: {}", at, v);
                        }
                    }
                    v => proptest::prop_assert!(same(&config_at(run, path), v), "{path}: {v}"),
                }
            }
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

    /// Arbitrary text, and arbitrary JSON with the experiment's keys, is parsed or
    /// rejected with an error, never a panic.
    #[test]
    fn any_text_is_an_experiment_or_an_error(text in ".{0,200}") {
        let _ = parse(&text);
    }

    #[test]
    fn any_json_with_experiment_keys_is_an_experiment_or_an_error(
        keys in proptest::collection::vec(proptest::sample::select(vec![
            "name", "dataset", "model", "loss", "optimizer", "schedule", "training",
            "evaluation", "seed", "sweep", "dataset.classes", "loss.smoothing", "x",
        ]), 0..6),
        values in proptest::collection::vec(proptest::sample::select(vec![
            r#""x""#, "0", "-1", "1e308", "[]", "{}", "null", "true", "[0.1, 0.2]",
            r#"{"name": "adamw"}"#, r#"{"name": "synthetic", "classes": 3}"#, r#"["a", 1]"#,
        ]), 6),
    ) {
        let fields: Vec<String> = keys.iter().zip(&values).map(|(k, v)| format!("{k:?}: {v}")).collect();
        let _ = parse(&format!("{{{}}}", fields.join(", ")));
        let sweep: Vec<String> = keys.iter().zip(&values).map(|(k, v)| format!("{k:?}: [{v}]")).collect();
        let _ = parse(&format!(r#"{{"name": "x", "sweep": {{{}}}}}"#, sweep.join(", ")));
    }
}
