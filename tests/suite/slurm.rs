//! Sweeps on a real Slurm: a job array whose tasks split the plan, and a task warned of
//! its time limit that requeues itself and resumes from its checkpoints.
//!
//! They run against the cluster `SLURM_CONF` names (its jobs must run on this machine),
//! or else start a single-node cluster on loopback with `scripts/local-slurm.sh`, which
//! installs Debian's Slurm packages when missing and needs root, and stop it at the end.
//! Without either they fail, saying so.

use crate::common::{json, stderr, stdout, Workspace, SWEEP};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Six runs of three epochs.
fn six_runs() -> String {
    SWEEP.replace(r#""seed": [0, 1]"#, r#""seed": [0, 1, 2]"#)
}

/// The cluster the tests submit to: the one `SLURM_CONF` names, or else a single-node
/// cluster started here with `scripts/local-slurm.sh` (root needed) and stopped, by pid,
/// when this is dropped — also when a test fails.
struct Cluster {
    started_here: bool,
}

impl Cluster {
    fn up() -> Self {
        if let Some(conf) = std::env::var_os("SLURM_CONF") {
            assert!(
                Path::new(&conf).is_file(),
                "SLURM_CONF={} is not a file",
                conf.to_string_lossy()
            );
            return Self {
                started_here: false,
            };
        }
        let out = Command::new(local_slurm()).arg("start").output().unwrap();
        assert!(
            out.status.success(),
            "starting a local Slurm cluster failed (it needs root; or point SLURM_CONF at a \
             running cluster):\n{}",
            stderr(&out)
        );
        let conf = stdout(&out)
            .lines()
            .last()
            .and_then(|l| l.strip_prefix("SLURM_CONF="))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("local-slurm.sh printed no SLURM_CONF: {}", stdout(&out)));
        // The only test in this binary sets it before starting any thread of its own; the
        // Slurm clients and the jobs (sbatch exports the environment) read it.
        std::env::set_var("SLURM_CONF", conf);
        Self { started_here: true }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.started_here {
            let _ = Command::new(local_slurm()).arg("stop").status();
        }
    }
}

fn local_slurm() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/local-slurm.sh")
}

/// Runs a Slurm client command and returns its stdout.
fn slurm(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        stderr(&out)
    );
    stdout(&out)
}

/// Writes the script `smoothlab slurm` prints for `file` and submits it; returns the job id.
fn submit(ws: &Workspace, file: &Path, results: &Path, tasks: usize) -> String {
    let tasks = tasks.to_string();
    let out = ws.smoothlab(&[
        "slurm",
        file.to_str().unwrap(),
        "--tasks",
        &tasks,
        "--results",
        results.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let script = ws.write("job.sh", &stdout(&out));
    let id = slurm("sbatch", &["--parsable", script.to_str().unwrap()]);
    id.trim().split(';').next().unwrap().to_string()
}

/// `scontrol -o show job` for every task of the array `job`: one map of fields per task.
fn tasks_of(job: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    slurm("scontrol", &["-o", "show", "job", job])
        .lines()
        .map(|line| {
            line.split_whitespace()
                .filter_map(|field| field.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// Waits until `done` holds for the array `job`, printing its logs if it never does.
fn wait_until(job: &str, logs: &Path, what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(240);
    while !done() {
        if Instant::now() > deadline {
            let _ = Command::new("scancel").arg(job).status();
            panic!(
                "job {job}: gave up waiting for {what}\n{}\n{}",
                slurm("scontrol", &["show", "job", job]),
                read_logs(logs)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "job {job}: {what} after {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

/// Whether every task of `job` has ended (a requeued task passes through states that
/// squeue may not list, so ask scontrol).
fn finished(job: &str) -> bool {
    const ENDED: [&str; 7] = [
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "BOOT_FAIL",
    ];
    tasks_of(job)
        .iter()
        .all(|task| ENDED.contains(&task["JobState"].as_str()))
}

fn log_files(logs: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(logs)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

fn read_logs(logs: &Path) -> String {
    log_files(logs)
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            format!("==> {} <==\n{text}", f.display())
        })
        .collect()
}

/// Plan order of the runs, from `smoothlab status --format json`.
fn plan_order(ws: &Workspace, file: &Path, results: &Path) -> Vec<String> {
    let out = ws.smoothlab(&[
        "status",
        file.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    status["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect()
}

/// The same plan run locally, start to end.
fn local_outcomes(
    ws: &Workspace,
    file: &Path,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    let out = ws.run(file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    crate::common::outcomes(&ws.results().join("sweep"))
}

/// Both scenarios in one test, so that one cluster serves them and is stopped after both.
#[test]
fn sweeps_run_on_a_real_slurm() {
    let _cluster = Cluster::up();
    a_job_array_runs_every_run_once_with_the_results_of_a_local_run();
    a_task_warned_of_its_time_limit_requeues_and_resumes_from_its_checkpoint();
}

/// A 3-task array: every run trained exactly once, by the task owning its shard, with the
/// results of a local run.
fn a_job_array_runs_every_run_once_with_the_results_of_a_local_run() {
    let ws = Workspace::new();
    let file = ws.write("sweep.json", &six_runs());
    let results = ws.path().join("slurm-results");
    let logs = results.join("sweep").join("slurm");
    let job = submit(&ws, &file, &results, 3);
    wait_until(&job, &logs, "the array to finish", || finished(&job));
    let text = read_logs(&logs);
    eprintln!("job {job}:\n{text}");

    let tasks = tasks_of(&job);
    assert_eq!(tasks.len(), 3, "{tasks:?}");
    for task in &tasks {
        assert_eq!(task["JobState"], "COMPLETED", "{task:?}");
        assert_eq!(task["ExitCode"], "0:0", "{task:?}");
    }
    // Task i ran shard i/3: the runs at positions i, i + 3, ...; each trained once.
    let order = plan_order(&ws, &file, &results);
    assert_eq!(order.len(), 6);
    for (position, id) in order.iter().enumerate() {
        assert_eq!(
            text.matches(&format!("{id}: training on cpu")).count(),
            1,
            "{id}"
        );
        let result = json(&results.join("sweep").join(id).join("result.json"));
        assert_eq!(
            result["environment"]["slurm_job"],
            format!("{job}_{}", position % 3),
            "{id}"
        );
    }
    for task in 0..3 {
        let log = std::fs::read_to_string(logs.join(format!("{job}_{task}.out"))).unwrap();
        assert!(
            log.contains("2 run(s): 2 completed now, 0 already done, 0 failed"),
            "{log}"
        );
    }
    let on_slurm = crate::common::outcomes(&results.join("sweep"));
    assert_eq!(on_slurm, local_outcomes(&ws, &file));
}

/// A task sent USR1 (the warning before its time limit) requeues itself and resumes from
/// its checkpoint to the results of an uninterrupted local run.
fn a_task_warned_of_its_time_limit_requeues_and_resumes_from_its_checkpoint() {
    // Two runs long enough (sixty epochs of 47 steps on a wider MLP, seconds each) to be caught in
    // the middle of the first.
    let sweep = SWEEP
        .replace(r#""seed": [0, 1]"#, r#""seed": [0]"#)
        .replace(r#""epochs": 3"#, r#""epochs": 60"#)
        .replace(r#""train_size": 800"#, r#""train_size": 3000"#)
        .replace(r#""hidden": [32]"#, r#""hidden": [512, 512]"#);
    let ws = Workspace::new();
    let file = ws.write("sweep.json", &sweep);
    let results = ws.path().join("slurm-results");
    let logs = results.join("sweep").join("slurm");
    let job = submit(&ws, &file, &results, 1);
    let task = format!("{job}_0");
    let first = plan_order(&ws, &file, &results).remove(0);
    let checkpoint = results
        .join("sweep")
        .join(&first)
        .join("checkpoint.safetensors");
    wait_until(&job, &logs, "the first checkpoint", || checkpoint.exists());

    // What Slurm sends --signal=B:USR1@120 before the time limit, sent now.
    slurm("scancel", &["--signal=USR1", "--batch", &task]);
    wait_until(&job, &logs, "the requeue", || {
        let task = &tasks_of(&job)[0];
        task["Restarts"] == "1" && task["JobState"] == "PENDING"
    });
    // A requeued job waits (BeginTime) before it may start again; skip the wait.
    slurm(
        "scontrol",
        &["update", &format!("JobId={task}"), "StartTime=now"],
    );
    wait_until(&job, &logs, "the requeued task to finish", || {
        finished(&job)
    });
    let text = read_logs(&logs);
    eprintln!("job {job}:\n{text}");

    let state = &tasks_of(&job)[0];
    assert_eq!(state["JobState"], "COMPLETED", "{state:?}");
    assert_eq!(state["Restarts"], "1", "{state:?}");
    assert!(
        text.contains(&format!(
            "{first}: interrupted; it resumes from its last epoch checkpoint"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("{first}: resuming after epoch")),
        "{text}"
    );
    let on_slurm = crate::common::outcomes(&results.join("sweep"));
    assert_eq!(on_slurm.len(), 2);
    assert_eq!(on_slurm, local_outcomes(&ws, &file));
}
