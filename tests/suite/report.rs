//! `smoothlab report` and `smoothlab viz penultimate` end to end: grouping and mean/std
//! against hand-computed values on a results directory with a failed and a missing run,
//! every output format, figures and the HTML page, and the penultimate projection of a
//! model whose templates are known.

use crate::common::{assert_exit, dirs_in, json, stderr, stdout, Workspace};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Six runs: ε ∈ {0, 0.1} × seeds 0, 1, 2.
const SWEEP: &str = r#"{
  "name": "fixture",
  "dataset": { "name": "synthetic", "classes": 3, "features": 4, "train_size": 120, "test_size": 60, "class_sep": 1.0 },
  "model": { "name": "mlp", "hidden": [8] },
  "training": { "epochs": 2, "batch_size": 32 },
  "device": "cpu",
  "sweep": { "loss.smoothing": [0.0, 0.1], "seed": [0, 1, 2] }
}"#;

/// (ε, seed) of a run.
type RunKey = (f64, u64);

/// Hand-chosen (accuracy, ECE, ECE after T) for each completed run.
const CHOSEN: [(RunKey, (f64, f64, f64)); 4] = [
    ((0.0, 0), (0.5, 0.1, 0.05)),
    ((0.0, 1), (0.6, 0.2, 0.05)),
    ((0.0, 2), (0.7, 0.6, 0.08)),
    ((0.1, 0), (0.8, 0.25, 0.02)),
];

fn set(result: &mut Value, metric: &str, value: f64) {
    result["metrics"]["test"][metric] = json!(value);
}

/// Runs the fixture sweep, then gives the runs the chosen metrics, marks ε = 0.1 seed 1
/// failed and removes ε = 0.1 seed 2's result (as if still pending).
fn fixture(ws: &Workspace) -> PathBuf {
    let file = ws.write("fixture.json", SWEEP);
    let out = ws.run(&file, &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let dir = ws.results().join("fixture");
    for run in dirs_in(&dir) {
        let path = run.join("result.json");
        let mut result = json(&path);
        let key = (
            result["swept"]["loss.smoothing"].as_f64().unwrap(),
            result["swept"]["seed"].as_u64().unwrap(),
        );
        match CHOSEN.iter().find(|(k, _)| *k == key) {
            Some((_, (accuracy, ece, ece_scaled))) => {
                set(&mut result, "accuracy", *accuracy);
                set(&mut result, "ece", *ece);
                result["metrics"]["test_scaled"]["ece"] = json!(ece_scaled);
            }
            None if key.1 == 1 => {
                result["status"] = json!("failed");
                result["error"] = json!("loss became NaN at epoch 1");
                result.as_object_mut().unwrap().remove("metrics");
            }
            None => {
                std::fs::remove_file(&path).unwrap();
                continue;
            }
        }
        std::fs::write(&path, serde_json::to_string_pretty(&result).unwrap()).unwrap();
    }
    dir
}

fn report(ws: &Workspace, args: &[&str]) -> String {
    let out = ws.smoothlab(&[&["report"], args].concat());
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    stdout(&out)
}

fn close(actual: &Value, expected: f64) {
    let actual = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{actual} is a number"));
    assert!(
        (actual - expected).abs() < 1e-12,
        "{actual} != {expected} (hand-computed)"
    );
}

#[test]
fn groups_by_the_swept_keys_with_hand_computed_mean_and_std() {
    let ws = Workspace::new();
    let dir = fixture(&ws);
    let text = report(&ws, &[dir.to_str().unwrap(), "--format", "json"]);
    let records: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(records.len(), 2, "{text}");

    let baseline = &records[0];
    assert_eq!(baseline["loss.smoothing"], json!(0.0));
    assert_eq!(
        [
            &baseline["runs"],
            &baseline["completed"],
            &baseline["failed"],
            &baseline["missing"]
        ],
        [&json!(3), &json!(3), &json!(0), &json!(0)]
    );
    // accuracy 0.5, 0.6, 0.7: mean 0.6, sample std sqrt((0.01 + 0 + 0.01) / 2) = 0.1.
    close(&baseline["accuracy_mean"], 0.6);
    close(&baseline["accuracy_std"], 0.1);
    // ECE 0.1, 0.2, 0.6: mean 0.3, std sqrt((0.04 + 0.01 + 0.09) / 2) = sqrt(0.07).
    close(&baseline["ece_mean"], 0.3);
    close(&baseline["ece_std"], 0.07f64.sqrt());
    // After T: 0.05, 0.05, 0.08: mean 0.06, std sqrt((0.0001 + 0.0001 + 0.0004) / 2).
    close(&baseline["ece_scaled_mean"], 0.06);
    close(&baseline["ece_scaled_std"], 0.0003f64.sqrt());

    let smoothed = &records[1];
    assert_eq!(smoothed["loss.smoothing"], json!(0.1));
    assert_eq!(
        [
            &smoothed["runs"],
            &smoothed["completed"],
            &smoothed["failed"],
            &smoothed["missing"]
        ],
        [&json!(3), &json!(1), &json!(1), &json!(1)]
    );
    close(&smoothed["accuracy_mean"], 0.8);
    assert_eq!(
        smoothed["accuracy_std"],
        Value::Null,
        "one value has no std"
    );
    close(&smoothed["ece_mean"], 0.25);
}

#[test]
fn csv_has_one_row_per_group_and_full_precision() {
    let ws = Workspace::new();
    let dir = fixture(&ws);
    let text = report(&ws, &[dir.to_str().unwrap(), "--format", "csv"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let header: Vec<&str> = lines[0].split(',').collect();
    assert_eq!(
        &header[..7],
        [
            "loss.smoothing",
            "runs",
            "completed",
            "failed",
            "missing",
            "accuracy_mean",
            "accuracy_std"
        ]
    );
    let column = |row: &str, name: &str| -> String {
        let i = header.iter().position(|h| *h == name).unwrap();
        row.split(',').nth(i).unwrap().to_string()
    };
    let ece_std: f64 = column(lines[1], "ece_std").parse().unwrap();
    assert!((ece_std - 0.07f64.sqrt()).abs() < 1e-12, "{ece_std}");
    assert_eq!(column(lines[2], "accuracy_mean"), "0.8");
    assert_eq!(column(lines[2], "accuracy_std"), "", "no std: empty cell");
    assert!(lines.iter().all(|l| l.split(',').count() == header.len()));
}

#[test]
fn table_and_markdown_count_and_name_failed_and_missing_runs() {
    let ws = Workspace::new();
    let dir = fixture(&ws);
    let table = report(&ws, &[dir.to_str().unwrap()]);
    assert!(table.contains("0.6000 ± 0.1000"), "{table}");
    assert!(table.contains("3/3") && table.contains("1/3"), "{table}");
    assert!(
        table.contains("failed: ") && table.contains("(loss became NaN at epoch 1)"),
        "{table}"
    );
    assert!(
        table.contains("missing: ") && table.contains("(pending)"),
        "{table}"
    );

    let md = report(&ws, &[dir.to_str().unwrap(), "--format", "md"]);
    let rows: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
    assert_eq!(rows.len(), 4, "header, alignment, two groups:\n{md}");
    assert!(rows[1].starts_with("| --- | ---: |"), "{md}");
    assert!(md.contains("\n- failed: "), "{md}");
}

#[test]
fn by_chooses_the_groups_and_an_unknown_key_is_refused() {
    let ws = Workspace::new();
    let dir = fixture(&ws);
    let dir = dir.to_str().unwrap();
    let by_seed: Vec<Value> =
        serde_json::from_str(&report(&ws, &[dir, "--by", "seed", "--format", "json"])).unwrap();
    assert_eq!(by_seed.len(), 3);
    // Seed 0: accuracies 0.5 (ε = 0) and 0.8 (ε = 0.1).
    close(&by_seed[0]["accuracy_mean"], 0.65);

    let all: Vec<Value> =
        serde_json::from_str(&report(&ws, &[dir, "--by", "", "--format", "json"])).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["runs"], json!(6));

    let out = ws.smoothlab(&["report", dir, "--by", "loss.smothing"]);
    assert_exit!(out, 2);
    let message = stderr(&out);
    assert!(
        message.contains("--by loss.smothing: no run has this key")
            && message.contains("loss.smoothing"),
        "{message}"
    );
}

#[test]
fn a_directory_of_experiments_is_grouped_by_experiment_too() {
    let ws = Workspace::new();
    fixture(&ws);
    let other = ws.write("other.json", &SWEEP.replace("\"fixture\"", "\"other\""));
    assert!(ws.run(&other, &[]).status.success());
    let records: Vec<Value> = serde_json::from_str(&report(
        &ws,
        &[ws.results().to_str().unwrap(), "--format", "json"],
    ))
    .unwrap();
    let names: Vec<&Value> = records.iter().map(|r| &r["experiment"]).collect();
    assert_eq!(
        names,
        [
            &json!("fixture"),
            &json!("fixture"),
            &json!("other"),
            &json!("other")
        ]
    );

    let out = ws.smoothlab(&["report", ws.path().to_str().unwrap()]);
    assert_exit!(out, 2);
    assert!(
        stderr(&out).contains("holds no experiment.json"),
        "{}",
        stderr(&out)
    );
}

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn plots_and_the_html_page_are_written() {
    let ws = Workspace::new();
    let dir = fixture(&ws);
    let plots = ws.path().join("plots");
    let html = ws.path().join("report.html");
    report(
        &ws,
        &[
            dir.to_str().unwrap(),
            "--plots",
            plots.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ],
    );
    let stems = [
        "reliability-smoothing-0.0",
        "smooth-reliability-smoothing-0.0",
        "reliability-smoothing-0.1",
        "smooth-reliability-smoothing-0.1",
        "ece-vs-smoothing",
        "accuracy-vs-smoothing",
        "logit-gap-vs-smoothing",
        "reliability-overlay",
        "training-curves",
    ];
    for stem in stems {
        let svg = std::fs::read_to_string(plots.join(format!("{stem}.svg"))).unwrap();
        assert!(svg.contains("<svg"), "{stem}");
        let (w, h) = png_size(&plots.join(format!("{stem}.png")));
        assert!(w >= 400 && h >= 300, "{stem}: {w}×{h}");
    }
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert_eq!(
        page.matches("<svg").count(),
        stems.len(),
        "every figure inline"
    );
    assert!(page.contains("<table>") && page.contains("0.6000 ± 0.1000"));
    for fetch in ["<script", "<link", "src=\"http", "href=\"http", "url(http"] {
        assert!(!page.contains(fetch), "the page fetches nothing: {fetch}");
    }
}

#[test]
fn the_figure_scale_sizes_the_figures_and_is_checked() {
    let ws = Workspace::new();
    let dir = fixture(&ws);
    let [normal, small] = ["1", "0.75"].map(|scale| {
        let plots = ws.path().join(format!("plots-{scale}"));
        report(
            &ws,
            &[
                dir.to_str().unwrap(),
                "--plots",
                plots.to_str().unwrap(),
                "--figure-scale",
                scale,
            ],
        );
        png_size(&plots.join("reliability-smoothing-0.0.png"))
    });
    assert_eq!(normal.0 * 3, small.0 * 4, "{normal:?} {small:?}");
    // The title names the test set's size and the bins.
    let svg =
        std::fs::read_to_string(ws.path().join("plots-1/reliability-smoothing-0.0.svg")).unwrap();
    assert!(svg.contains("test set N =") && svg.contains("bins"));
    let out = ws.smoothlab(&["report", dir.to_str().unwrap(), "--figure-scale", "9"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--figure-scale"), "{}", stderr(&out));
}

#[test]
fn a_sweep_over_losses_is_grouped_and_drawn_by_method() {
    let ws = Workspace::new();
    let file = ws.write(
        "methods.json",
        r#"{
  "name": "methods",
  "dataset": { "name": "synthetic", "classes": 3, "features": 4, "train_size": 120, "test_size": 60, "class_sep": 1.0 },
  "model": { "name": "mlp", "hidden": [8] },
  "training": { "epochs": 2, "batch_size": 32 },
  "device": "cpu",
  "sweep": {
    "loss": [
      { "name": "smoothed_ce", "smoothing": 0 },
      { "name": "smoothed_ce", "smoothing": 0.05 },
      { "name": "focal", "gamma": 3 },
      { "name": "mmce" }
    ],
    "seed": [0, 1]
  }
}"#,
    );
    let out = ws.run(&file, &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let dir = ws.results().join("methods");
    let text = report(&ws, &[dir.to_str().unwrap()]);
    for label in ["CE", "LS ε=0.05", "focal γ=3", "MMCE λ=2"] {
        assert!(text.contains(label), "{label:?} not in:\n{text}");
    }
    let records: Vec<Value> =
        serde_json::from_str(&report(&ws, &[dir.to_str().unwrap(), "--format", "json"])).unwrap();
    assert_eq!(records.len(), 4, "one group per loss, the seeds pooled");
    for record in &records {
        assert_eq!(record["completed"], json!(2), "{record}");
    }
    assert_eq!(records[2]["loss"]["name"], "focal");

    let plots = ws.path().join("plots");
    report(
        &ws,
        &[dir.to_str().unwrap(), "--plots", plots.to_str().unwrap()],
    );
    for stem in ["ece-by-method", "accuracy-by-method", "logit-gap-by-method"] {
        let svg = std::fs::read_to_string(plots.join(format!("{stem}.svg"))).unwrap();
        for label in ["CE", "LS ε=0.05", "focal γ=3", "MMCE λ=2"] {
            assert!(svg.contains(label), "{stem}: {label:?} missing");
        }
        png_size(&plots.join(format!("{stem}.png")));
    }
    assert!(
        !plots.join("ece-vs-smoothing.svg").exists(),
        "ε is not a grouping key here"
    );
}

/// A 3-feature, 3-class MLP whose hidden layer is the identity, so that its penultimate
/// features are relu(x), and whose templates are 2·e_k.
const KNOWN: &str = r#"{
  "name": "known",
  "dataset": { "name": "synthetic", "classes": 3, "features": 3, "train_size": 90, "test_size": 90, "class_sep": 1.0, "val_fraction": 0.0 },
  "model": { "name": "mlp", "hidden": [3] },
  "training": { "epochs": 1, "batch_size": 30 },
  "evaluation": { "temperature_scaling": false },
  "device": "cpu",
  "save_model": true,
  "sweep": { "loss.smoothing": [0.0, 0.1] }
}"#;

#[test]
fn penultimate_points_land_where_the_geometry_says() {
    use candle_core::{Device, Tensor};
    let ws = Workspace::new();
    let file = ws.write("known.json", KNOWN);
    let out = ws.run(&file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let runs = ws.run_dirs("known");
    let cpu = Device::Cpu;
    let weights = [
        (
            "hidden.0.weight",
            Tensor::eye(3, candle_core::DType::F32, &cpu).unwrap(),
        ),
        (
            "hidden.0.bias",
            Tensor::zeros(3, candle_core::DType::F32, &cpu).unwrap(),
        ),
        (
            "head.weight",
            (Tensor::eye(3, candle_core::DType::F32, &cpu).unwrap() * 2.0).unwrap(),
        ),
        (
            "head.bias",
            Tensor::new(&[0.5f32, -1.0, 3.0], &cpu).unwrap(),
        ),
    ];
    let weights: std::collections::HashMap<String, Tensor> = weights
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    candle_core::safetensors::save(&weights, runs[0].join("model.safetensors")).unwrap();

    let config: smoothlab::spec::RunConfig =
        serde_json::from_value(json(&runs[0].join("config.json"))).unwrap();
    let data = smoothlab::data::load(&config.dataset, config.seed, &cpu).unwrap();
    let x = data.test.x.to_vec2::<f32>().unwrap();
    let y = data.test.y.to_vec1::<u32>().unwrap();

    let picture = smoothlab::report::penultimate::of_run(&runs[0], "2,0,1", 5).unwrap();
    assert_eq!(
        picture.class_names,
        ["class 2", "class 0", "class 1"].map(String::from)
    );
    // Templates a = 2e₂, b = 2e₀, c = 2e₁; centroid (2/3, 2/3, 2/3);
    // u = (b − a)/|b − a| = (1, 0, −1)/√2; v ∝ (c − a) − ((c − a)·u)u = (−1, 2, −1)/√6.
    let (s2, s6) = (2f64.sqrt(), 6f64.sqrt());
    let expected = |f: [f64; 3]| {
        let d = f.map(|v| v - 2.0 / 3.0);
        ((d[0] - d[2]) / s2, (-d[0] + 2.0 * d[1] - d[2]) / s6)
    };
    let near = |a: (f64, f64), b: (f64, f64)| (a.0 - b.0).abs() < 1e-5 && (a.1 - b.1).abs() < 1e-5;
    for (t, e) in picture.projection.templates.iter().zip([
        expected([0.0, 0.0, 2.0]),
        expected([2.0, 0.0, 0.0]),
        expected([0.0, 2.0, 0.0]),
    ]) {
        assert!(near(*t, e), "template at {t:?}, expected {e:?}");
    }
    // The first five test examples of classes 2, 0, 1 in that order.
    let mut k = 0;
    for (position, class) in [2u32, 0, 1].into_iter().enumerate() {
        let examples = (0..y.len()).filter(|&i| y[i] == class).take(5);
        for i in examples {
            let f = [0, 1, 2].map(|j| f64::from(x[i][j].max(0.0)));
            assert_eq!(picture.projection.classes[k], position);
            assert!(
                near(picture.projection.points[k], expected(f)),
                "example {i}: {:?} vs {:?}",
                picture.projection.points[k],
                expected(f)
            );
            k += 1;
        }
    }
    assert_eq!(k, picture.projection.points.len());

    // Both runs side by side through the CLI.
    let stem = ws.path().join("penultimate");
    let out = ws.smoothlab(&[
        "viz",
        "penultimate",
        runs[0].to_str().unwrap(),
        runs[1].to_str().unwrap(),
        "--classes",
        "0,1,2",
        "--examples",
        "20",
        "--out",
        stem.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read_to_string(stem.with_extension("svg"))
        .unwrap()
        .contains("<svg"));
    png_size(&stem.with_extension("png"));
}

#[test]
fn penultimate_without_saved_weights_or_with_bad_classes_says_why() {
    let ws = Workspace::new();
    let file = ws.write(
        "known.json",
        &KNOWN.replace("\"save_model\": true", "\"save_model\": false"),
    );
    assert!(ws.run(&file, &[]).status.success());
    let run = ws.run_dirs("known").remove(0);
    let out = ws.smoothlab(&[
        "viz",
        "penultimate",
        run.to_str().unwrap(),
        "--classes",
        "0,1,2",
    ]);
    assert_exit!(out, 2);
    assert!(
        stderr(&out).contains("\"save_model\": true"),
        "{}",
        stderr(&out)
    );

    let file = ws.write("known.json", KNOWN);
    assert!(ws.run(&file, &["--force"]).status.success());
    for (classes, expected) in [
        ("0,1", "expected three different classes"),
        ("0,1,1", "expected three different classes"),
        ("0,1,7", "`7` is neither a class index below 3"),
    ] {
        let out = ws.smoothlab(&[
            "viz",
            "penultimate",
            run.to_str().unwrap(),
            "--classes",
            classes,
        ]);
        assert_exit!(out, 2, "{classes}");
        assert!(
            stderr(&out).contains(expected),
            "{classes}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn the_plane_ignores_the_component_along_its_normal() {
    use smoothlab::report::penultimate::Plane;
    let (a, b, c) = ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]);
    let plane = Plane::through(&a, &b, &c).unwrap();
    for t in [-3.0, 0.5, 10.0] {
        let lifted = a.map(|x| x + t);
        let (p, q) = (plane.project(&a), plane.project(&lifted));
        assert!((p.0 - q.0).abs() < 1e-12 && (p.1 - q.1).abs() < 1e-12);
    }
    // Pairwise distances between the projected templates are the true ones (√2).
    let [pa, pb, pc] = [a, b, c].map(|t| plane.project(&t));
    for (p, q) in [(pa, pb), (pb, pc), (pa, pc)] {
        assert!(((p.0 - q.0).hypot(p.1 - q.1) - 2f64.sqrt()).abs() < 1e-12);
    }
    assert!(Plane::through(&a, &[2.0, 0.0, 0.0], &[3.0, 0.0, 0.0]).is_none());
}

/// Two single-run groups, every calibrator fitted.
const CALIBRATED: &str = r#"{
  "name": "calibrated",
  "dataset": { "name": "synthetic", "classes": 3, "features": 4, "train_size": 240, "test_size": 120, "class_sep": 1.0 },
  "model": { "name": "mlp", "hidden": [8] },
  "training": { "epochs": 2, "batch_size": 32 },
  "evaluation": { "calibrators": ["temperature", "vector", "matrix", "dirichlet", "histogram", "isotonic"] },
  "device": "cpu",
  "sweep": { "loss.smoothing": [0.0, 0.1] }
}"#;

#[test]
fn calibrators_get_column_groups_and_figures_and_single_runs_their_intervals() {
    let ws = Workspace::new();
    let out = ws.run(&ws.write("calibrated.json", CALIBRATED), &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let dir = ws.results().join("calibrated");
    let runs = dirs_in(&dir);
    let result = |run: &Path| json(&run.join("result.json"));

    let table = report(&ws, &[dir.to_str().unwrap()]);
    for heading in [
        "ECE after vector",
        "smooth ECE after isotonic",
        "NLL after dirichlet",
    ] {
        assert!(table.contains(heading), "{heading}: {table}");
    }
    // A group of one run shows its interval: `0.8500 [0.7833, 0.9083]`.
    let first = result(&runs[0]);
    let accuracy = &first["metrics"]["test"];
    let cell = format!(
        "{:.4} [{:.4}, {:.4}]",
        accuracy["accuracy"].as_f64().unwrap(),
        accuracy["intervals"]["accuracy"]["low"].as_f64().unwrap(),
        accuracy["intervals"]["accuracy"]["high"].as_f64().unwrap()
    );
    assert!(table.contains(&cell), "{cell} in {table}");

    let records: Value =
        serde_json::from_str(&report(&ws, &[dir.to_str().unwrap(), "--format", "json"])).unwrap();
    for run in &runs {
        let r = result(run);
        let smoothing = r["swept"]["loss.smoothing"].as_f64().unwrap();
        let record = records
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["loss.smoothing"].as_f64() == Some(smoothing))
            .unwrap();
        let metrics = &r["metrics"];
        for calibrator in ["vector", "matrix", "dirichlet", "histogram", "isotonic"] {
            let test = &metrics["calibrators"][calibrator]["test"];
            for metric in ["ece", "smooth_ece", "nll"] {
                let column = format!("{metric}_{calibrator}");
                close(
                    &record[format!("{column}_mean")],
                    test[metric].as_f64().unwrap(),
                );
                close(
                    &record[format!("{column}_low")],
                    test["intervals"][metric]["low"].as_f64().unwrap(),
                );
            }
        }
        close(
            &record["ece_high"],
            metrics["test"]["intervals"]["ece"]["high"]
                .as_f64()
                .unwrap(),
        );
        assert!(record["ece_std"].is_null(), "one run has no std: {record}");
        assert!(
            record.get("temperature_low").is_none(),
            "a fit has no interval"
        );
    }

    // Without one run's predictions its group has no smoothed diagram; the rest stands.
    let orphan = &runs[0];
    std::fs::remove_file(orphan.join("predictions.safetensors")).unwrap();
    let plots = ws.path().join("plots");
    report(
        &ws,
        &[dir.to_str().unwrap(), "--plots", plots.to_str().unwrap()],
    );
    let smoothing = result(orphan)["swept"]["loss.smoothing"].as_f64().unwrap();
    let other = if smoothing == 0.0 { "0.1" } else { "0.0" };
    let orphan_label = if smoothing == 0.0 { "0.0" } else { "0.1" };
    for stem in [
        "ece-by-calibrator".to_string(),
        "nll-by-calibrator".to_string(),
        format!("smooth-reliability-smoothing-{other}"),
        format!("reliability-smoothing-{orphan_label}"),
    ] {
        let svg = std::fs::read_to_string(plots.join(format!("{stem}.svg")))
            .unwrap_or_else(|e| panic!("{stem}: {e}"));
        assert!(svg.contains("<svg"), "{stem}");
    }
    let calibrators = std::fs::read_to_string(plots.join("ece-by-calibrator.svg")).unwrap();
    for label in ["uncalibrated", "vector scaling", "isotonic regression"] {
        assert!(calibrators.contains(label), "{label}");
    }
    assert!(!plots
        .join(format!("smooth-reliability-smoothing-{orphan_label}.svg"))
        .exists());
}

#[test]
fn a_group_of_several_runs_gets_the_interval_of_its_pooled_test_sets() {
    use smoothlab::calibration::io::read_predictions_split;
    use smoothlab::calibration::{evaluate_with_intervals, Bootstrap, Predictions};
    let ws = Workspace::new();
    let dir = fixture(&ws);
    let records: Value =
        serde_json::from_str(&report(&ws, &[dir.to_str().unwrap(), "--format", "json"])).unwrap();
    let group = records
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["loss.smoothing"].as_f64() == Some(0.0))
        .unwrap();
    // The ε = 0 runs (seeds 0, 1, 2: all completed) in the plan's order, pooled.
    let mut runs: Vec<(u64, PathBuf)> = dirs_in(&dir)
        .into_iter()
        .filter(|run| run.join("result.json").is_file())
        .filter_map(|run| {
            let r = json(&run.join("result.json"));
            (r["swept"]["loss.smoothing"].as_f64() == Some(0.0))
                .then(|| (r["swept"]["seed"].as_u64().unwrap(), run))
        })
        .collect();
    runs.sort();
    assert_eq!(runs.len(), 3);
    let (mut logits, mut labels) = (vec![], vec![]);
    for (_, run) in &runs {
        let p = read_predictions_split(&run.join("predictions.safetensors"), Some("test")).unwrap();
        logits.extend_from_slice(p.logits());
        labels.extend_from_slice(p.labels());
    }
    let pooled = Predictions::new(logits, labels, 3).unwrap();
    let bootstrap = Bootstrap {
        resamples: 200,
        level: 0.95,
        seed: 0,
    };
    let bins = std::num::NonZeroUsize::new(15).unwrap();
    let expected = evaluate_with_intervals(&pooled, bins, 1.0, &bootstrap)
        .intervals
        .unwrap();
    for metric in ["accuracy", "nll", "brier", "ece", "smooth_ece"] {
        let interval = expected.of(metric).unwrap();
        close(&group[format!("{metric}_low")], interval.low);
        close(&group[format!("{metric}_high")], interval.high);
    }
    // The std over seeds stays: `mean ± std [low, high]` in the table.
    let table = report(&ws, &[dir.to_str().unwrap(), "--format", "md"]);
    let cell = format!(
        "0.6000 ± 0.1000 [{:.4}, {:.4}]",
        expected.accuracy.low, expected.accuracy.high
    );
    assert!(table.contains(&cell), "{cell} in {table}");
}

#[test]
fn metrics_chooses_the_columns_and_their_order_and_an_unknown_one_is_refused() {
    let ws = Workspace::new();
    let dir = fixture(&ws);
    let csv = report(
        &ws,
        &[
            dir.to_str().unwrap(),
            "--metrics",
            "ece_scaled,accuracy",
            "--format",
            "csv",
        ],
    );
    let header = csv.lines().next().unwrap();
    assert_eq!(
        header,
        "loss.smoothing,runs,completed,failed,missing,ece_scaled_mean,ece_scaled_std,ece_scaled_low,ece_scaled_high,accuracy_mean,accuracy_std,accuracy_low,accuracy_high"
    );
    let out = ws.smoothlab(&["report", dir.to_str().unwrap(), "--metrics", "accuracy,eec"]);
    assert_exit!(&out, 2, "an unknown column");
    let err = stderr(&out);
    assert!(
        err.contains("--metrics eec: no such column") && err.contains("ece_scaled"),
        "{err}"
    );
}
