//! Executes a plan: for each run of this worker's shard, decide whether it needs running,
//! claim it with a lock, train it in a worker process, and store the outcome.
//!
//! The supervisor loop below never trains anything itself. It keeps up to `--jobs`
//! worker processes busy ([`worker`]), draws their progress, and records how each one
//! ended: a run that fails (an error, a panic, a process killed by the kernel) is stored
//! as failed and the sweep goes on; a run another worker holds is waited for, and taken
//! over if that worker dies; SIGINT/SIGTERM stop every run at its next step, keeping the
//! epoch checkpoints, so the same command later continues where this one stopped.

mod console;
mod preflight;
mod process;
pub mod shard;
pub mod status;
mod supervisor;
pub mod worker;

pub use shard::Shard;

use crate::device::{self, GpuInfo};
use crate::progress;
use crate::spec::{DeviceSpec, Plan};
use crate::store::ExperimentDir;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use supervisor::Supervisor;
use worker::exit;

/// How `smoothlab run` treats a plan.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Parent of `<experiment>/`.
    pub results: PathBuf,
    /// Overrides the experiment's `device`.
    pub device: Option<DeviceSpec>,
    /// Rerun runs completed before this invocation started.
    pub force: bool,
    /// Rerun runs whose last attempt failed before this invocation started.
    pub retry_failed: bool,
    /// The part of the plan this worker is responsible for.
    pub shard: Shard,
    /// Runs trained at once, each in its own process.
    pub jobs: usize,
    /// CPU threads per run; by default the cores divided among the jobs.
    pub threads: Option<usize>,
    /// The smoothlab executable that runs `smoothlab worker`.
    pub executable: PathBuf,
}

/// What one invocation did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    pub completed: Vec<String>,
    /// Done before, or by another worker meanwhile.
    pub skipped: Vec<String>,
    /// Run id and reason, for runs that failed now or earlier (and were not retried).
    pub failed: Vec<(String, String)>,
    /// Runs stopped by SIGINT/SIGTERM; they resume from their checkpoints.
    pub interrupted: Vec<String>,
    /// Runs of this shard not started because of SIGINT/SIGTERM.
    pub not_started: Vec<String>,
}

/// The directory holding the experiment's runs.
pub fn experiment_dir(plan: &Plan, results: &Path) -> ExperimentDir {
    ExperimentDir::new(results, &plan.experiment.name)
}

/// A flag that SIGINT and SIGTERM set. With `second_exits`, a second signal exits at
/// once with status 130 (the supervisor: a user's second Ctrl-C). Workers keep to the
/// flag: a terminal's Ctrl-C reaches them as well as the supervisor's SIGTERM, and that
/// pair must still let them stop cleanly at their next step.
pub fn interrupt_flag(second_exits: bool) -> Result<&'static AtomicBool> {
    static FLAG: AtomicBool = AtomicBool::new(false);
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    let mut result = Ok(());
    INSTALLED.call_once(|| {
        use signal_hook::consts::{SIGINT, SIGTERM};
        for signal in [SIGINT, SIGTERM] {
            // The shutdown check goes first, so that it sees the flag of an earlier signal.
            let shutdown = if second_exits {
                signal_hook::flag::register_conditional_shutdown(signal, exit::INTERRUPTED, &FLAG)
                    .map(|_| ())
            } else {
                Ok(())
            };
            let registered = shutdown.and_then(|()| signal_hook::flag::register(signal, &FLAG));
            if let Err(e) = registered {
                result = Err(e);
            }
        }
    });
    result.context("installing the signal handlers")?;
    Ok(&FLAG)
}

/// Runs every run of this worker's shard of `plan` that needs running.
pub fn run(plan: &Plan, options: &RunOptions) -> Result<Summary> {
    // The device first: a device this build cannot use must leave the results untouched.
    let (device, gpu) = resolve_device(options.device.unwrap_or(plan.experiment.device))?;
    let dir = experiment_dir(plan, &options.results);
    let positions = options.shard.positions(plan.runs.len());
    preflight::check(plan, &dir, positions, options, device)?;
    dir.create(&plan.text)?;
    let interrupt = interrupt_flag(true)?;

    let threads = options.threads.or_else(|| {
        (options.jobs > 1).then(|| (candle_core::utils::get_num_threads() / options.jobs).max(1))
    });
    if options.jobs > 1 {
        progress::println(&format!(
            "up to {} runs at once, {} CPU thread(s) each",
            options.jobs,
            threads.unwrap_or_default()
        ));
    }
    Supervisor::new(plan, options, dir, device, gpu, threads).run(interrupt)
}

/// The device each worker opens, resolved once (`auto` becomes what it picks here),
/// and its GPU.
fn resolve_device(spec: DeviceSpec) -> Result<(DeviceSpec, Option<GpuInfo>)> {
    let device = device::open(spec)?;
    let resolved = match device.location() {
        candle_core::DeviceLocation::Cuda { gpu_id } => DeviceSpec::Cuda(gpu_id),
        _ => DeviceSpec::Cpu,
    };
    Ok((resolved, device::gpu_info(&device)))
}
