//! One run in its own process (`smoothlab worker`, started by [`super::run`]).
//!
//! Each run trains in a child process so that nothing it does can take the sweep down:
//! a panic is caught at the run boundary, and an abort, an out-of-memory kill or any
//! other death shows up as the child's exit status, which the supervisor records.
//!
//! Protocol: the supervisor writes one [`Job`] as a JSON line to the worker's stdin and
//! keeps stdin open; the worker writes [`Event`]s as JSON lines to stdout and reports
//! how it ended through its exit code ([`exit`]). When stdin reaches end-of-file the
//! supervisor is gone, and the worker exits at once: nobody would record its result.

use crate::device::{self, GpuInfo};
use crate::spec::{DeviceSpec, PlannedRun};
use crate::store::lock::LockLost;
use crate::store::{self, Environment, Outcome, RunDir, RunResult};
use crate::train::{self, Hooks, Interrupted, Progress};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;

/// How a worker ended.
pub mod exit {
    /// The run completed and its result is stored.
    pub const COMPLETED: i32 = 0;
    /// The run failed and its result (status `failed`, with the reason) is stored.
    pub const FAILED: i32 = 1;
    /// Interrupted by a signal; the last epoch checkpoint is intact, nothing else written
    /// (128 + SIGINT, what shells report for Ctrl-C).
    pub const INTERRUPTED: i32 = 130;
    /// Another worker took the run over; nothing was written.
    pub const LOCK_LOST: i32 = 4;
    /// The supervisor went away; nothing more was written.
    pub const ORPHANED: i32 = 5;
    /// The worker could not store anything (a [`super::Event::Fatal`] says why).
    pub const FATAL: i32 = 6;
}

/// What the supervisor asks a worker to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub run: PlannedRun,
    pub experiment: String,
    pub save_model: bool,
    pub device: DeviceSpec,
    pub run_dir: RunDir,
    /// The supervisor's claim on the run; checked before every write.
    pub lock_token: String,
}

/// A line from a worker to its supervisor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Progress(Progress),
    /// A formatted log line.
    Log {
        line: String,
    },
    /// Why the worker could not store a result.
    Fatal {
        message: String,
    },
}

/// Writes `event` as one line on stdout.
pub fn emit(event: &Event) {
    let mut line = serde_json::to_string(event).expect("events serialise");
    line.push('\n');
    let mut out = std::io::stdout().lock();
    // A closed stdout means the supervisor is gone; the stdin watcher ends the process.
    let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
}

/// Sends the worker's log lines to its supervisor as [`Event::Log`]s.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(crate::progress::log_filter())
        .with_target(false)
        .with_ansi(false)
        .without_time()
        .with_writer(|| EventWriter)
        .try_init();
}

struct EventWriter;

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for line in String::from_utf8_lossy(buf).lines() {
            if !line.trim().is_empty() {
                emit(&Event::Log {
                    line: line.trim().to_string(),
                });
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The worker's whole life: read the job, run it, return the exit code.
pub fn main(interrupt: &'static AtomicBool) -> i32 {
    let mut line = String::new();
    let job: Job = match std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(anyhow::Error::from)
        .and_then(|_| serde_json::from_str(&line).context("reading the job from stdin"))
    {
        Ok(job) => job,
        Err(e) => return fatal(&e),
    };
    std::thread::spawn(|| {
        // Everything after the job line is end-of-file or an error: either way the
        // supervisor is gone.
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        std::process::exit(exit::ORPHANED);
    });
    match work(&job, interrupt) {
        Ok(code) => code,
        Err(e) if e.is::<LockLost>() => {
            tracing::warn!("{e:#}");
            exit::LOCK_LOST
        }
        Err(e) => fatal(&e),
    }
}

fn fatal(error: &anyhow::Error) -> i32 {
    emit(&Event::Fatal {
        message: format!("{error:#}"),
    });
    exit::FATAL
}

/// Trains the job's run and stores its outcome; errors are about storing, not training.
fn work(job: &Job, interrupt: &AtomicBool) -> Result<i32> {
    let fence = || job.run_dir.check_lock(&job.lock_token);
    let started_at = Utc::now();
    let device = device::open(job.device);
    let device_name = device
        .as_ref()
        .map(device::describe)
        .unwrap_or_else(|_| job.device.to_string());
    let gpu = device.as_ref().ok().and_then(device::gpu_info);
    let outcome = device
        .map_err(anyhow::Error::from)
        .map_err(|error| train::Failed {
            error,
            history: Vec::new(),
            timings: Default::default(),
        })
        .and_then(|device| {
            let hooks = Hooks {
                progress: &|p| emit(&Event::Progress(p)),
                checkpoint: Some(&job.run_dir),
                before_write: &fence,
                interrupt,
            };
            panic::catch_unwind(AssertUnwindSafe(|| {
                train::run(&job.run.config, &device, &hooks)
            }))
            .unwrap_or_else(|payload| {
                Err(train::Failed {
                    error: anyhow::anyhow!("panicked: {}", panic_message(&payload)),
                    history: Vec::new(),
                    timings: Default::default(),
                })
            })
        });

    match outcome {
        Ok(trained) => {
            fence()?;
            job.run_dir
                .write_predictions(&trained.test, trained.validation.as_ref())?;
            if job.save_model {
                job.run_dir.write_model(&trained.vars)?;
            }
            let result = RunResult {
                status: Outcome::Completed,
                error: None,
                history: trained.history,
                metrics: Some(trained.metrics),
                timings: trained.timings,
                ..result_of(job, &device_name, gpu, started_at)
            };
            job.run_dir.write_result(&result)?;
            crate::fault::point("stored");
            // The result is stored: a checkpoint that cannot be removed is only clutter.
            if let Err(e) = job.run_dir.remove_checkpoint() {
                tracing::warn!("{e:#}");
            }
            Ok(exit::COMPLETED)
        }
        Err(failed) if failed.error.is::<Interrupted>() => {
            tracing::info!("{:#}", failed.error);
            Ok(exit::INTERRUPTED)
        }
        Err(failed) if failed.error.is::<LockLost>() => Err(failed.error),
        Err(failed) => {
            fence()?;
            let result = RunResult {
                status: Outcome::Failed,
                error: Some(format!("{:#}", failed.error)),
                history: failed.history,
                metrics: None,
                timings: failed.timings,
                ..result_of(job, &device_name, gpu, started_at)
            };
            job.run_dir.write_result(&result)?;
            Ok(exit::FAILED)
        }
    }
}

/// The fields of a result that do not depend on the outcome (status `failed`, nothing
/// measured: what the supervisor records for a worker that died).
pub fn result_of(
    job: &Job,
    device: &str,
    gpu: Option<GpuInfo>,
    started_at: DateTime<Utc>,
) -> RunResult {
    RunResult {
        schema_version: store::SCHEMA_VERSION,
        run_id: job.run.id.clone(),
        experiment: job.experiment.clone(),
        status: Outcome::Failed,
        error: None,
        swept: job.run.swept.iter().cloned().collect(),
        config: job.run.config.clone(),
        history: Vec::new(),
        metrics: None,
        environment: Environment::current(device, gpu, started_at),
        timings: Default::default(),
    }
}

fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}
