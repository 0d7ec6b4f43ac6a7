//! Sweeps that survive anything: kill -9 at chosen and at random moments, concurrent
//! workers on one results directory, shards, crashing and diverging runs, and `status`
//! along the way. Every sweep here ends with exactly the results of an uninterrupted one.

use crate::common::{assert_exit, stderr, stdout, Workspace, SWEEP};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 4;

/// Starts `command` as the leader of a new process group, so that a crash point (which
/// kills its whole group) and `kill_group` reach the sweep and its workers only. Its
/// progress lines are dropped; errors still show.
fn spawn_group(mut command: Command) -> Child {
    command
        .process_group(0)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn kill_group(child: &Child) {
    let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
}

fn killed(status: ExitStatus) -> bool {
    status.signal() == Some(Signal::SIGKILL as i32)
}

/// `smoothlab status` of the sweep in `file`, as a table.
fn status_of(ws: &Workspace, file: &Path) -> String {
    let results = ws.results();
    let status = ws.smoothlab(&[
        "status",
        file.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
    ]);
    assert!(status.status.success(), "{}", stderr(&status));
    stdout(&status)
}

fn run_dirs(results: &Path) -> Vec<PathBuf> {
    crate::common::dirs_in(&results.join("sweep"))
}

/// The results of the sweep run once, start to end.
fn uninterrupted(sweep: &str) -> BTreeMap<String, serde_json::Value> {
    let ws = Workspace::new();
    let file = ws.write("sweep.json", sweep);
    let out = ws.run(&file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    crate::common::outcomes(&ws.results().join("sweep"))
}

/// Files in the run directories other than a finished run's own.
fn leftovers(results: &Path) -> Vec<PathBuf> {
    let finished = ["config.json", "result.json", "predictions.safetensors"];
    run_dirs(results)
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| !finished.contains(&p.file_name().unwrap().to_str().unwrap()))
        .collect()
}

/// Completed results, byte for byte: once written, a result never changes.
fn completed_results(results: &Path) -> BTreeMap<PathBuf, String> {
    if !results.join("sweep").exists() {
        return BTreeMap::new();
    }
    run_dirs(results)
        .into_iter()
        .filter_map(|d| {
            let text = std::fs::read_to_string(d.join("result.json")).ok()?;
            text.contains("\"status\": \"completed\"")
                .then_some((d, text))
        })
        .collect()
}

fn assert_finished_like(
    ws: &Workspace,
    file: &Path,
    reference: &BTreeMap<String, serde_json::Value>,
) {
    let out = ws.run(file, &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        &crate::common::outcomes(&ws.results().join("sweep")),
        reference
    );
    assert_eq!(leftovers(&ws.results()), Vec::<PathBuf>::new());
    let status = ws.smoothlab(&["status", ws.results().join("sweep").to_str().unwrap()]);
    assert!(
        stdout(&status).contains("4 run(s): 4 done, 0 failed, 0 running, 0 stale, 0 pending"),
        "{}",
        stdout(&status)
    );
}

#[test]
fn a_sweep_killed_at_chosen_moments_ends_with_the_uninterrupted_results() {
    let reference = uninterrupted(SWEEP);
    let ws = Workspace::new();
    let file = ws.write("sweep.json", SWEEP);
    // Mid-epoch, mid-write (a checkpoint, the predictions or a result, whichever
    // process gets there first), between runs, once more of each, and after a worker
    // stored its result but before it removed its checkpoint and lock.
    let trials = [
        "step:20",
        "write:5",
        "between-runs:1",
        "step:30",
        "write:4",
        "write:2",
        "stored:1",
    ];
    let mut kept = BTreeMap::new();
    for (i, crash) in trials.iter().enumerate() {
        let mut command = ws.run_command(&file, &[]);
        command.env("SMOOTHLAB_CRASH_AT", crash);
        let status = spawn_group(command).wait().unwrap();
        assert!(killed(status), "trial {crash}: {status:?}");
        let now = completed_results(&ws.results());
        for (dir, text) in &kept {
            assert_eq!(
                now.get(dir),
                Some(text),
                "trial {crash} changed a completed result"
            );
        }
        eprintln!(
            "trial {}: SMOOTHLAB_CRASH_AT={crash}: killed; {} run(s) completed, leftovers {:?}",
            i + 1,
            now.len(),
            leftovers(&ws.results())
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        );
        if crash.starts_with("write") {
            assert!(
                leftovers(&ws.results())
                    .iter()
                    .any(|p| p.to_string_lossy().ends_with(".tmp")),
                "a mid-write kill leaves its temporary file"
            );
        }
        if i == 0 {
            // Killed in the first run's second epoch: its lock is stale, its checkpoint
            // holds one epoch, the others are pending.
            let text = status_of(&ws, &file);
            eprintln!("{text}");
            assert!(text.contains("1 stale, 3 pending"), "{text}");
            assert!(text.contains("checkpoint after epoch 1/3"), "{text}");
            assert!(text.contains("is gone"), "{text}");
        }
        kept = now;
    }
    assert_finished_like(&ws, &file, &reference);
    for dir in run_dirs(&ws.results()) {
        assert!(
            !dir.join("attempts").exists(),
            "a run was redone: {}",
            dir.display()
        );
    }
}

#[test]
fn a_sweep_killed_at_random_moments_ends_with_the_uninterrupted_results() {
    // Longer runs (ten epochs of 47 steps) than the other tests, so that kills land at
    // many different moments.
    let sweep = SWEEP
        .replace(r#""epochs": 3"#, r#""epochs": 10"#)
        .replace(r#""train_size": 800"#, r#""train_size": 3000"#);
    let clock = Instant::now();
    let reference = uninterrupted(&sweep);
    // Kills land anywhere from process start-up to the middle of the sweep.
    let longest = (clock.elapsed().as_millis() as u64 / 2).max(40);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2026);
    // Rounds of kill-and-rerun on a fresh results directory, until 24 kills have landed.
    let mut kills = 0;
    for round in 1.. {
        if kills >= 24 {
            break;
        }
        let ws = Workspace::new();
        let file = ws.write("sweep.json", &sweep);
        let mut kept = BTreeMap::new();
        // Trials since a run last completed. On a machine busier than during the
        // uninterrupted sweep, start-up and a run's remaining epochs can outlast
        // `longest` every time; after each ten such trials the delays may run twice as
        // long, so that the round still finishes (and the kills still land anywhere).
        let mut stalled = 0;
        for trial in 1.. {
            assert!(trial <= 100, "round {round}: the sweep never finished");
            let mut child = spawn_group(ws.run_command(&file, &[]));
            let reach = longest << (stalled / 10).min(4);
            let delay = Duration::from_millis(rng.random_range(10..reach));
            let deadline = Instant::now() + delay;
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                if Instant::now() >= deadline {
                    kill_group(&child);
                    break child.wait().unwrap();
                }
                std::thread::sleep(Duration::from_millis(2));
            };
            let now = completed_results(&ws.results());
            for (dir, text) in &kept {
                assert_eq!(
                    now.get(dir),
                    Some(text),
                    "round {round} trial {trial} changed a completed result"
                );
            }
            stalled = if now.len() > kept.len() {
                0
            } else {
                stalled + 1
            };
            kept = now;
            if status.success() {
                eprintln!("round {round} trial {trial}: finished the sweep");
                break;
            }
            assert!(killed(status), "round {round} trial {trial}: {status:?}");
            kills += 1;
            eprintln!(
                "round {round} trial {trial}: kill -9 after {} ms; {} run(s) completed",
                delay.as_millis(),
                kept.len()
            );
        }
        assert_finished_like(&ws, &file, &reference);
    }
}

#[test]
fn two_workers_on_one_results_directory_do_every_run_once() {
    let reference = uninterrupted(SWEEP);
    let ws = Workspace::new();
    let file = ws.write("sweep.json", SWEEP);
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let mut command = ws.run_command(&file, &[]);
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
            command.spawn().unwrap()
        })
        .collect();
    let outputs: Vec<_> = workers
        .into_iter()
        .map(|w| w.wait_with_output().unwrap())
        .collect();
    let mut trained = 0;
    for out in &outputs {
        assert!(out.status.success(), "{}{}", stdout(out), stderr(out));
        trained += stdout(out).matches(": training on cpu").count();
    }
    assert_eq!(
        trained,
        RUNS,
        "{}\n---\n{}",
        stdout(&outputs[0]),
        stdout(&outputs[1])
    );
    assert_eq!(
        crate::common::outcomes(&ws.results().join("sweep")),
        reference
    );
    assert_eq!(leftovers(&ws.results()), Vec::<PathBuf>::new());
}

#[test]
fn parallel_jobs_and_shards_each_do_their_part_once() {
    let reference = uninterrupted(SWEEP);
    let ws = Workspace::new();
    let file = ws.write("sweep.json", SWEEP);
    // Shard 0/3 runs the plan's runs 0 and 3; then the rest in two shards with two jobs.
    let first = ws.run(&file, &["--shard", "0/3"]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(stdout(&first).matches(": training on cpu").count(), 2);
    let status = ws.smoothlab(&["status", ws.results().join("sweep").to_str().unwrap()]);
    eprintln!("{}", stdout(&status));
    assert!(stdout(&status).contains("2 done, 0 failed, 0 running, 0 stale, 2 pending"));
    let table = stdout(&status);
    let done: Vec<bool> = table
        .lines()
        .filter(|l| l.trim_start().starts_with("smoothing="))
        .map(|l| l.split_whitespace().nth(1) == Some("done"))
        .collect();
    assert_eq!(
        done,
        [true, false, false, true],
        "shard 0/3 owns positions 0 and 3"
    );
    for shard in ["1/3", "2/3"] {
        let out = ws.run(&file, &["--shard", shard, "--jobs", "2"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            stdout(&out).matches(": training on cpu").count(),
            1,
            "{}",
            stdout(&out)
        );
    }
    assert_finished_like(&ws, &file, &reference);
}

#[test]
fn a_worker_that_panics_or_is_killed_is_recorded_and_the_sweep_goes_on() {
    let ws = Workspace::new();
    let file = ws.write("sweep.json", &SWEEP.replace(r#", "seed": [0, 1]"#, ""));
    for (crash, reason) in [
        ("step:5:panic", "panicked: crash point `step` reached"),
        ("step:5:self", "killed by signal 9 (SIGKILL)"),
    ] {
        let out = ws
            .run_command(&file, &["--retry-failed"])
            .env("SMOOTHLAB_CRASH_AT", crash)
            .output()
            .unwrap();
        assert_exit!(out, 1);
        let text = stdout(&out);
        assert!(
            text.contains("0 completed now, 0 already done, 2 failed"),
            "{text}"
        );
        assert_eq!(
            text.matches(reason).count(),
            4,
            "run line and summary line per run: {text}"
        );
        let status = ws.smoothlab(&[
            "status",
            ws.results().join("sweep").to_str().unwrap(),
            "--format",
            "json",
        ]);
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        for run in status["runs"].as_array().unwrap() {
            assert_eq!(run["state"], "failed");
            assert!(run["reason"].as_str().unwrap().contains(reason), "{run}");
        }
    }
    let retried = ws.run(&file, &["--retry-failed"]);
    assert!(retried.status.success(), "{}", stderr(&retried));
    assert!(stdout(&retried).contains("2 completed now"));
}

#[test]
fn a_diverging_run_shows_as_failed_with_its_reason() {
    let ws = Workspace::new();
    let file = ws.write(
        "sweep.json",
        &SWEEP.replace(r#""seed": [0, 1]"#, r#""optimizer.lr": [0.1, 1e30]"#),
    );
    let out = ws.run(&file, &[]);
    assert_exit!(out, 1);
    assert!(
        stdout(&out).contains("2 completed now, 0 already done, 2 failed"),
        "{}",
        stdout(&out)
    );
    let text = status_of(&ws, &file);
    assert!(text.contains("2 done, 2 failed"), "{text}");
    assert_eq!(
        text.matches("failed   the training loss became").count(),
        2,
        "{text}"
    );
}

#[test]
fn workers_stop_when_their_supervisor_is_killed() {
    let ws = Workspace::new();
    let file = ws.write(
        "sweep.json",
        &SWEEP.replace("\"epochs\": 3", "\"epochs\": 200"),
    );
    let mut sweep = spawn_group(ws.run_command(&file, &[]));
    let lock = ws.results().join("sweep");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !run_lock_exists(&lock) {
        assert!(Instant::now() < deadline, "no run started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    // Only the supervisor: its worker notices the closed pipe and exits by itself.
    nix::sys::signal::kill(Pid::from_raw(sweep.id() as i32), Signal::SIGKILL).unwrap();
    assert!(killed(sweep.wait().unwrap()));
    let group = Pid::from_raw(sweep.id() as i32);
    let deadline = Instant::now() + Duration::from_secs(10);
    while killpg(group, None).is_ok() {
        assert!(
            Instant::now() < deadline,
            "a worker outlived its supervisor"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_lock_exists(experiment_dir: &Path) -> bool {
    std::fs::read_dir(experiment_dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.path().join("lock").exists())
        })
        .unwrap_or(false)
}

#[test]
fn ctrl_c_stops_the_sweep_cleanly_and_a_rerun_finishes_it_identically() {
    let sweep = SWEEP.replace(r#""epochs": 3"#, r#""epochs": 30"#);
    let reference = uninterrupted(&sweep);
    let ws = Workspace::new();
    let file = ws.write("sweep.json", &sweep);
    let mut command = ws.run_command(&file, &["--jobs", "2"]);
    command
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().unwrap();
    let dir = ws.results().join("sweep");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !crate::common::dirs_in_if_any(&dir)
        .iter()
        .any(|d| d.join("checkpoint.safetensors").exists())
    {
        assert!(Instant::now() < deadline, "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
    // A terminal's Ctrl-C: SIGINT to the supervisor and its workers alike.
    killpg(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_exit!(out, 130);
    let text = stdout(&out);
    assert!(
        text.contains("interrupted; it resumes from its last epoch checkpoint"),
        "{text}"
    );
    assert!(
        text.contains("(rerun the same command to continue)"),
        "{text}"
    );
    // Nothing half-written, no lock left behind.
    for path in leftovers(&ws.results()) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(name, "checkpoint.safetensors", "{}", path.display());
    }
    let rerun = ws.run(&file, &[]);
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    assert!(
        stdout(&rerun).contains("resuming after epoch"),
        "{}",
        stdout(&rerun)
    );
    assert_finished_like(&ws, &file, &reference);
}
