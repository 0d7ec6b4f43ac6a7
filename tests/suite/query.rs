//! `smoothlab runs`, `compare`, `report --where` and `status --watch` on real sweeps:
//! filters over flattened keys, failed, pending and damaged runs, mixed experiments,
//! every output format, and the errors for unknown keys and mismatched types.

use crate::common::{assert_exit, stderr, stdout, Workspace, SWEEP};

/// A four-run sweep where two runs diverge (lr 1e30) and fail, run into `ws.results()`.
fn finished_sweep(ws: &Workspace) {
    let file = ws.write(
        "sweep.json",
        &SWEEP.replace(r#""seed": [0, 1]"#, r#""optimizer.lr": [0.1, 1e30]"#),
    );
    let out = ws.run(&file, &[]);
    assert_exit!(out, 1);
}

fn runs(ws: &Workspace, args: &[&str]) -> std::process::Output {
    let results = ws.results();
    let mut all = vec!["runs", results.to_str().unwrap()];
    all.extend_from_slice(args);
    ws.smoothlab(&all)
}

fn ok(out: std::process::Output) -> String {
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn questions_of_a_sweep() {
    let ws = Workspace::new();
    finished_sweep(&ws);

    let all = ok(runs(&ws, &[]));
    assert!(
        all.contains("swept.loss.smoothing  swept.optimizer.lr  status"),
        "{all}"
    );
    assert!(all.ends_with("4 run(s)\n"), "{all}");

    // `or`, and the failed runs with their reason.
    let text = ok(runs(
        &ws,
        &[
            "--where",
            "status == \"failed\" or swept.loss.smoothing == 0.1 and swept.optimizer.lr < 1",
            "--columns",
            "run_id,status,error",
            "--format",
            "json",
        ],
    ));
    let rows: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{text}");
    let failed: Vec<_> = rows.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|r| r["error"]
        .as_str()
        .unwrap()
        .contains("the training loss became")));

    // Sorted by NLL, descending, nulls (the failed runs) last.
    let text = ok(runs(
        &ws,
        &[
            "--sort",
            "-metrics.test.nll",
            "--columns",
            "metrics.test.nll",
            "--format",
            "csv",
        ],
    ));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "metrics.test.nll");
    let first: f64 = lines[1].parse().unwrap();
    let second: f64 = lines[2].parse().unwrap();
    assert!(first >= second, "{text}");
    assert_eq!(&lines[3..], ["", ""], "{text}");

    // Globs choose columns; --limit keeps the first rows.
    let text = ok(runs(
        &ws,
        &[
            "--where",
            "status == 'completed'",
            "--columns",
            "metrics.test.*ece*",
            "--limit",
            "1",
            "--format",
            "csv",
        ],
    ));
    assert_eq!(
        text.lines().next().unwrap(),
        "metrics.test.adaptive_ece,metrics.test.classwise_ece,metrics.test.debiased_ece,\
         metrics.test.ece,metrics.test.intervals.ece.high,metrics.test.intervals.ece.low,\
         metrics.test.intervals.smooth_ece.high,metrics.test.intervals.smooth_ece.low,\
         metrics.test.smooth_ece,metrics.test.smooth_ece_sigma"
    );
    assert_eq!(text.lines().count(), 2, "{text}");

    // Markdown for notes.
    let text = ok(runs(
        &ws,
        &["--where", "not (status in ['failed'])", "--format", "md"],
    ));
    assert!(text.starts_with("| swept.loss.smoothing |"), "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");
}

#[test]
fn mistakes_in_a_question_are_pointed_at() {
    let ws = Workspace::new();
    finished_sweep(&ws);
    for (expression, expected) in [
        (
            "metrics.test.eec < 0.1",
            "column 1: no run has the key `metrics.test.eec`; the nearest keys: metrics.test.ece",
        ),
        (
            "status == 'failed' and swept.seed == 1",
            "column 24: no run has the key `swept.seed`",
        ),
        (
            "swept.loss.smoothing < 'high'",
            "column 1: swept.loss.smoothing (0.0, a number) < \"high\" (a string): numbers and strings have no order",
        ),
        ("metrics.test.ece <", "column 19: expected"),
        ("status == 'x' status", "column 15: expected"),
        ("run_id ~ '('", "not a regular expression"),
    ] {
        let out = runs(&ws, &["--where", expression]);
        assert_exit!(out, 2);
        assert!(stderr(&out).contains(expected), "{expression}: {}", stderr(&out));
    }
    // A huge expression is not echoed whole.
    let long = format!("status == '{}' x", "y".repeat(100_000));
    let out = runs(&ws, &["--where", &long]);
    assert_exit!(out, 2);
    assert!(stderr(&out).len() < 1000, "{} bytes", stderr(&out).len());
    assert!(
        stderr(&out).contains("column 100014: expected"),
        "{}",
        stderr(&out)
    );
    let out = runs(&ws, &["--sort", "metrics.test.nl"]);
    assert_exit!(out, 2);
    assert!(
        stderr(&out).contains("metrics.test.nll"),
        "{}",
        stderr(&out)
    );
    let out = runs(&ws, &["--columns", "nothing.*"]);
    assert_exit!(out, 2);
    assert!(stderr(&out).contains("matches no key"), "{}", stderr(&out));
}

#[test]
fn pending_damaged_and_mixed_experiments_are_all_listed() {
    let ws = Workspace::new();
    finished_sweep(&ws);
    // A second experiment, planned but never run: its runs are pending.
    let other = ws.write(
        "other.json",
        &SWEEP.replace("\"name\": \"sweep\"", "\"name\": \"other\""),
    );
    let out = ws.run(&other, &["--dry-run"]);
    assert!(out.status.success());
    let dir = ws.results().join("other");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&other, dir.join("experiment.json")).unwrap();
    // A damaged result in the first.
    let damaged = crate::common::dirs_in(&ws.results().join("sweep")).remove(0);
    std::fs::write(
        damaged.join("result.json"),
        "{\"schema_version\": 1, \"status\"",
    )
    .unwrap();

    let text = ok(runs(
        &ws,
        &["--columns", "experiment,status,error", "--format", "json"],
    ));
    let rows: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 8, "{text}");
    let count = |experiment: &str, status: &str| {
        rows.iter()
            .filter(|r| r["experiment"] == experiment && r["status"] == status)
            .count()
    };
    assert_eq!(count("other", "pending"), 4, "{text}");
    assert_eq!(count("sweep", "damaged"), 1, "{text}");
    let damaged_row = rows.iter().find(|r| r["status"] == "damaged").unwrap();
    assert!(
        damaged_row["error"]
            .as_str()
            .unwrap()
            .contains("result.json"),
        "{text}"
    );
    // With two experiments the default table says which each run belongs to.
    let table = ok(runs(&ws, &[]));
    assert!(table.starts_with("experiment  "), "{table}");
}

#[test]
fn compare_shows_what_changed() {
    let ws = Workspace::new();
    let file = ws.write("sweep.json", SWEEP);
    assert!(ws.run(&file, &[]).status.success());
    let dirs = ws.run_dirs("sweep");
    let (a, b) = (dirs[0].to_str().unwrap(), dirs[1].to_str().unwrap());
    let text = ok(ws.smoothlab(&["compare", a, b, "--only-changed", "--format", "json"]));
    let lines: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = lines
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["key"].as_str().unwrap())
        .collect();
    // The two runs differ in their seed only (the first two ids sort by smoothing 0.0).
    assert!(
        keys.contains(&"config.seed") && keys.contains(&"swept.seed"),
        "{keys:?}"
    );
    assert!(!keys.contains(&"config.loss.smoothing"), "{keys:?}");
    assert!(
        !keys.iter().any(|k| k.starts_with("environment.")),
        "{keys:?}"
    );
    let nll = lines
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["key"] == "metrics.test.nll")
        .unwrap();
    let (x, y) = (
        nll[dirs[0].file_name().unwrap().to_str().unwrap()]
            .as_f64()
            .unwrap(),
        nll[dirs[1].file_name().unwrap().to_str().unwrap()]
            .as_f64()
            .unwrap(),
    );
    let delta = nll[format!("Δ {}", dirs[1].file_name().unwrap().to_str().unwrap())]
        .as_f64()
        .unwrap();
    assert!((delta - (y - x)).abs() < 1e-12, "{nll}");

    let out = ws.smoothlab(&["compare", a, ws.path().to_str().unwrap()]);
    assert_exit!(out, 2);
    assert!(
        stderr(&out).contains("is not a finished run"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn report_where_restricts_the_runs_grouped() {
    let ws = Workspace::new();
    let file = ws.write("sweep.json", SWEEP);
    assert!(ws.run(&file, &[]).status.success());
    let dir = ws.results().join("sweep");
    let out = ws.smoothlab(&[
        "report",
        dir.to_str().unwrap(),
        "--where",
        "swept.seed == 0",
        "--format",
        "json",
    ]);
    let text = ok(out);
    let groups: serde_json::Value = serde_json::from_str(&text).unwrap();
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 2, "{text}");
    assert!(
        groups.iter().all(|g| g["runs"] == 1 && g["completed"] == 1),
        "{text}"
    );
}

#[test]
fn status_watch_logs_a_line_per_refresh_and_ends_with_the_sweep() {
    let ws = Workspace::new();
    let file = ws.write("sweep.json", SWEEP);
    let results = ws.results();
    let mut sweep = ws
        .run_command(&file, &[])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = ws.smoothlab(&[
        "status",
        file.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
        "--watch",
        "1",
    ]);
    assert!(sweep.wait().unwrap().success());
    let text = ok(out);
    let last = text.lines().last().unwrap();
    assert!(last.contains("4 run(s): 4 done"), "{text}");
    assert!(last.contains("nothing left to run"), "{text}");
}
