//! Executes a plan: for each run of this worker's shard, decide whether it needs running,
//! claim it with a lock, train it in a worker process, and store the outcome.
//!
//! The supervisor loop below never trains anything itself. It keeps up to `--jobs`
//! worker processes busy ([`worker`]), draws their progress, and records how each one
//! ended: a run that fails (an error, a panic, a process killed by the kernel) is stored
//! as failed and the sweep goes on; a run another worker holds is waited for, and taken
//! over if that worker dies; SIGINT/SIGTERM stop every run at its next step, keeping the
//! epoch checkpoints, so the same command later continues where this one stopped.

pub mod shard;
pub mod status;
pub mod worker;

pub use shard::Shard;

use crate::device;
use crate::progress;
use crate::spec::{DeviceSpec, Plan, PlannedRun};
use crate::store::lock::{self, Claim, Holder, RunLock};
use crate::store::{self, GpuInfo, RunResult, RunState, RunStatus};
use crate::train::checkpoint;
use crate::{atomic, fault};
use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use indicatif::ProgressBar;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use worker::{exit, Event, Job};

/// How often a run held by another worker is looked at again.
const BUSY_POLL: Duration = Duration::from_secs(2);

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

impl Summary {
    pub fn line(&self) -> String {
        let mut line = format!(
            "{} run(s): {} completed now, {} already done, {} failed",
            self.completed.len()
                + self.skipped.len()
                + self.failed.len()
                + self.interrupted.len()
                + self.not_started.len(),
            self.completed.len(),
            self.skipped.len(),
            self.failed.len()
        );
        if !self.interrupted.is_empty() || !self.not_started.is_empty() {
            let _ = write!(
                line,
                ", {} interrupted, {} not started (rerun the same command to continue)",
                self.interrupted.len(),
                self.not_started.len()
            );
        }
        for (id, reason) in &self.failed {
            let _ = write!(line, "\n  failed: {id}: {reason}");
        }
        line
    }
}

/// The directory holding the experiment's runs.
pub fn experiment_dir(plan: &Plan, results: &Path) -> PathBuf {
    results.join(&plan.experiment.name)
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
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    save_experiment(plan, &dir)?;
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
    let mut supervisor = Supervisor {
        plan,
        options,
        dir,
        device,
        gpu,
        threads,
        started: Utc::now(),
        total: plan.runs.len(),
        overall: progress::overall_bar(options.shard.positions(plan.runs.len()).count() as u64),
        summary: Summary::default(),
    };
    let result = supervisor.drive(interrupt);
    supervisor.overall.finish_and_clear();
    result.map(|()| supervisor.summary)
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

struct Supervisor<'a> {
    plan: &'a Plan,
    options: &'a RunOptions,
    dir: PathBuf,
    device: DeviceSpec,
    /// Recorded for runs whose worker died before writing its own result.
    gpu: Option<GpuInfo>,
    threads: Option<usize>,
    /// Results finished after this are fresh work of another worker, never redone.
    started: DateTime<Utc>,
    total: usize,
    overall: ProgressBar,
    summary: Summary,
}

/// A run being trained by a worker process.
struct Active {
    position: usize,
    label: String,
    job: Job,
    child: Child,
    /// Held open: end-of-file tells the worker that the supervisor is gone.
    _stdin: ChildStdin,
    reader: Option<JoinHandle<()>>,
    lock: RunLock,
    bar: ProgressBar,
    started_at: DateTime<Utc>,
    fatal: Option<String>,
}

impl Drop for Active {
    /// A worker still running when its supervisor gives up (an error in the sweep) is
    /// stopped and waited for before its lock is released: no other worker may start on
    /// the run while this one can still write.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            terminate(&self.child);
            let _ = self.child.wait();
        }
    }
}

/// What a run needs, decided from the results directory.
enum Decision {
    Skip(Skipped),
    Busy(Holder),
    Train(RunLock),
}

enum Skipped {
    Completed,
    Failed(String),
}

impl Supervisor<'_> {
    fn drive(&mut self, interrupt: &AtomicBool) -> Result<()> {
        let mut queue: VecDeque<usize> = self.options.shard.positions(self.total).collect();
        let mut waiting: Vec<(usize, Instant)> = Vec::new();
        let mut active: Vec<Active> = Vec::new();
        let (events, received) = mpsc::channel::<(usize, Event)>();
        let mut signalled = false;
        loop {
            let interrupted = interrupt.load(Ordering::SeqCst);
            let now = Instant::now();
            waiting.retain(|&(position, due)| {
                let ready = due <= now;
                if ready {
                    queue.push_back(position);
                }
                !ready
            });
            while !interrupted && active.len() < self.options.jobs {
                let Some(position) = queue.pop_front() else {
                    break;
                };
                let first_look = !waiting.iter().any(|&(p, _)| p == position);
                match self.decide(position)? {
                    Decision::Skip(skipped) => self.skip(position, skipped),
                    Decision::Busy(holder) => {
                        if first_look {
                            self.say_busy(position, &holder);
                        }
                        waiting.push((position, Instant::now() + BUSY_POLL));
                    }
                    Decision::Train(lock) => active.push(self.start(position, lock, &events)?),
                }
            }
            if interrupted {
                if !signalled {
                    for a in &active {
                        terminate(&a.child);
                    }
                    signalled = true;
                }
                if active.is_empty() {
                    let left = queue.into_iter().chain(waiting.into_iter().map(|(p, _)| p));
                    for position in left {
                        let id = self.plan.runs[position].id.clone();
                        self.summary.not_started.push(id);
                    }
                    return Ok(());
                }
            }
            if active.is_empty() && queue.is_empty() {
                if waiting.is_empty() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            if let Ok((position, event)) = received.recv_timeout(Duration::from_millis(200)) {
                self.handle(&mut active, position, event);
            }
            let mut i = 0;
            while i < active.len() {
                if active[i].lock.is_lost() {
                    let _ = active[i].child.kill();
                }
                match active[i].child.try_wait().context("waiting for a worker")? {
                    None => i += 1,
                    Some(status) => {
                        let mut done = active.swap_remove(i);
                        // The worker's last lines (a fatal error) arrive before its
                        // stdout closes; read them all before judging its exit.
                        if let Some(reader) = done.reader.take() {
                            let _ = reader.join();
                        }
                        while let Ok((position, event)) = received.try_recv() {
                            if position == done.position {
                                apply(&mut done, event);
                            } else {
                                self.handle(&mut active, position, event);
                            }
                        }
                        self.finish(
                            done,
                            status,
                            interrupted || interrupt.load(Ordering::SeqCst),
                        )?;
                        fault::point("between-runs");
                    }
                }
            }
        }
    }

    fn label(&self, position: usize) -> String {
        format!(
            "[{}/{}] {}",
            position + 1,
            self.total,
            self.plan.runs[position].id
        )
    }

    fn run_dir(&self, position: usize) -> PathBuf {
        self.dir.join(&self.plan.runs[position].id)
    }

    /// Whether a stored outcome means there is nothing to do. Results written after this
    /// invocation started are another worker's fresh work: neither `--force` nor
    /// `--retry-failed` redoes them.
    fn stored_outcome(&self, state: RunState) -> Option<Skipped> {
        let o = self.options;
        match state {
            RunState::Completed { finished_at } if !o.force || finished_at >= self.started => {
                Some(Skipped::Completed)
            }
            RunState::Failed {
                reason,
                finished_at,
            } if !(o.force || o.retry_failed) || finished_at >= self.started => {
                Some(Skipped::Failed(reason))
            }
            _ => None,
        }
    }

    fn decide(&self, position: usize) -> Result<Decision> {
        let run = &self.plan.runs[position];
        let run_dir = self.run_dir(position);
        if let Some(skipped) = self.stored_outcome(store::run_state(&run_dir)?) {
            store::tidy_finished(&run_dir, matches!(skipped, Skipped::Completed))?;
            return Ok(Decision::Skip(skipped));
        }
        std::fs::create_dir_all(&run_dir)
            .with_context(|| format!("creating {}", run_dir.display()))?;
        let lock = match lock::claim(&run_dir)? {
            Claim::Busy(holder) => return Ok(Decision::Busy(holder)),
            Claim::Acquired(lock) => lock,
        };
        // Another worker may have finished the run between the first look and the claim.
        let state = store::run_state(&run_dir)?;
        if let RunState::Unreadable(reason) = &state {
            tracing::warn!("{reason}; redoing the run");
        }
        if let Some(skipped) = self.stored_outcome(state) {
            return Ok(Decision::Skip(skipped));
        }
        store::remove_leftovers(&run_dir)?;
        check_config(run, &run_dir)?;
        if let Some(archive) = store::archive_attempt(&run_dir)? {
            progress::println(&format!(
                "{}: the previous attempt is kept in {}",
                self.label(position),
                archive.display()
            ));
        }
        Ok(Decision::Train(lock))
    }

    fn skip(&mut self, position: usize, skipped: Skipped) {
        let label = self.label(position);
        let id = self.plan.runs[position].id.clone();
        match skipped {
            Skipped::Completed => {
                progress::println(&format!("{label}: already completed, skipped"));
                self.summary.skipped.push(id);
            }
            Skipped::Failed(reason) => {
                progress::println(&format!(
                    "{label}: failed earlier, skipped (--retry-failed reruns it): {reason}"
                ));
                self.summary.failed.push((id, reason));
            }
        }
        self.overall.inc(1);
    }

    fn say_busy(&self, position: usize, holder: &Holder) {
        let by = match holder {
            Holder::Live { info: Some(i), .. } => i.holder(),
            _ => "another worker".to_string(),
        };
        progress::println(&format!(
            "{}: running elsewhere ({by}); waiting for it",
            self.label(position)
        ));
    }

    fn start(
        &self,
        position: usize,
        lock: RunLock,
        events: &mpsc::Sender<(usize, Event)>,
    ) -> Result<Active> {
        let run: &PlannedRun = &self.plan.runs[position];
        let label = self.label(position);
        let run_dir = self.run_dir(position);
        let resumed = checkpoint::peek(&run_dir.join(store::CHECKPOINT_FILE)).unwrap_or(None);
        let how = match resumed {
            Some(p) => format!("resuming after epoch {}/{}", p.epochs_done, p.epochs),
            None => "training".to_string(),
        };
        progress::println(&format!("{label}: {how} on {}", self.device));

        let job = Job {
            run: run.clone(),
            experiment: self.plan.experiment.name.clone(),
            save_model: self.plan.experiment.save_model,
            device: self.device,
            run_dir,
            lock_token: lock.token().to_string(),
        };
        let mut command = Command::new(&self.options.executable);
        command
            .arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(threads) = self.threads {
            command.env("RAYON_NUM_THREADS", threads.to_string());
        }
        let mut child = command.spawn().with_context(|| {
            format!(
                "starting a worker process ({})",
                self.options.executable.display()
            )
        })?;
        let mut stdin = child.stdin.take().expect("a piped stdin");
        let stdout = child.stdout.take().expect("a piped stdout");
        let mut line = serde_json::to_string(&job)?;
        line.push('\n');
        // A worker that died at once (a Ctrl-C that reached it before its handlers were
        // in place) closes the pipe: that is this run's outcome, not the sweep's error.
        let fatal = match stdin.write_all(line.as_bytes()) {
            Ok(()) => None,
            Err(e) => {
                let _ = child.kill();
                Some(format!("sending the job to its worker: {e}"))
            }
        };
        let events = events.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let event = serde_json::from_str(&line).unwrap_or(Event::Log { line });
                if events.send((position, event)).is_err() {
                    break;
                }
            }
        });
        Ok(Active {
            position,
            label: label.clone(),
            job,
            child,
            _stdin: stdin,
            reader: Some(reader),
            lock,
            bar: progress::bar(0, label),
            started_at: Utc::now(),
            fatal,
        })
    }

    fn handle(&self, active: &mut [Active], position: usize, event: Event) {
        if let Some(a) = active.iter_mut().find(|a| a.position == position) {
            apply(a, event);
        }
    }

    /// Records how a worker ended.
    fn finish(&mut self, done: Active, status: ExitStatus, interrupted: bool) -> Result<()> {
        done.bar.finish_and_clear();
        self.overall.inc(1);
        let id = done.job.run.id.clone();
        let label = &done.label;
        let code = status.code();
        if code == Some(exit::LOCK_LOST) || done.lock.is_lost() {
            progress::println(&format!("{label}: taken over by another worker"));
            self.summary.skipped.push(id);
            return Ok(());
        }
        if code == Some(exit::INTERRUPTED) || (interrupted && code.is_none()) {
            progress::println(&format!(
                "{label}: interrupted; it resumes from its last epoch checkpoint"
            ));
            self.summary.interrupted.push(id);
            return Ok(());
        }
        let stored = match code {
            Some(exit::COMPLETED | exit::FAILED) => store::read_result(&done.job.run_dir)
                .map_err(|e| format!("the worker ended without a readable result: {e:#}")),
            _ => Err(match &done.fatal {
                Some(message) => message.clone(),
                None => describe_exit(status),
            }),
        };
        let result = match stored {
            Ok(result) => result,
            Err(reason) => self.record_crash(&done, reason)?,
        };
        match result.status {
            RunStatus::Completed => {
                progress::println(&format!("{label}: {}", describe_outcome(&result)));
                self.summary.completed.push(id);
            }
            RunStatus::Failed => {
                let reason = result.error.unwrap_or_default();
                progress::println(&format!("{label}: FAILED: {reason}"));
                self.summary.failed.push((id, reason));
            }
        }
        Ok(())
    }

    /// Stores a failed result for a worker that could not store one itself, with the
    /// epochs its checkpoint reached.
    fn record_crash(&self, done: &Active, reason: String) -> Result<RunResult> {
        // A worker may die after storing its result (while cleaning up, or killed): that
        // result is this attempt's (an earlier one was archived before it started).
        if let Ok(stored) = store::read_result(&done.job.run_dir) {
            if stored.environment.finished_at >= done.started_at {
                tracing::warn!("{}: {reason}, after storing its result", done.label);
                return Ok(stored);
            }
        }
        lock::check_owner(done.lock.path(), done.lock.token())?;
        let history = checkpoint::peek(&done.job.run_dir.join(store::CHECKPOINT_FILE))
            .unwrap_or(None)
            .map(|p| p.history)
            .unwrap_or_default();
        let result = RunResult {
            error: Some(reason),
            history,
            ..worker::result_of(
                &done.job,
                &self.device.to_string(),
                self.gpu.clone(),
                done.started_at,
            )
        };
        atomic::write_json(&done.job.run_dir.join(store::RESULT_FILE), &result)?;
        Ok(result)
    }
}

fn apply(active: &mut Active, event: Event) {
    match event {
        Event::Progress(p) => {
            active.bar.set_length(p.total);
            active.bar.set_position(p.done);
            if let Some(loss) = p.loss {
                active.bar.set_message(format!("loss {loss:.4}"));
            }
        }
        Event::Log { line } => progress::eprintln(&format!("{}: {line}", active.label)),
        Event::Fatal { message } => active.fatal = Some(message),
    }
}

/// Asks a worker to stop after its current step.
fn terminate(child: &Child) {
    #[cfg(unix)]
    {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
    #[cfg(not(unix))]
    let _ = child;
}

/// Why a worker died, for the failed result.
fn describe_exit(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = nix::sys::signal::Signal::try_from(signal)
                .map(|s| s.as_str())
                .unwrap_or("unknown");
            let hint = match name {
                "SIGKILL" => "; the kernel's out-of-memory killer sends this when memory runs out",
                "SIGABRT" => "; a failed memory allocation aborts the process",
                _ => "",
            };
            return format!("the run's process was killed by signal {signal} ({name}){hint}");
        }
    }
    match status.code() {
        Some(101) => "the run's process panicked outside the training loop (exit code 101)".into(),
        Some(code) => format!("the run's process exited with code {code}"),
        None => "the run's process ended without an exit code".into(),
    }
}

/// Writes `config.json`, or checks that an existing one is this run's config: a different
/// config in the same directory means a hash collision or a hand edit, and overwriting
/// it would lose a result.
fn check_config(run: &PlannedRun, run_dir: &Path) -> Result<()> {
    let path = run_dir.join(store::CONFIG_FILE);
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let existing: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        if existing != serde_json::to_value(&run.config)? {
            bail!(
                "{} holds a different config than run {} expects; move that directory away to rerun it",
                path.display(),
                run.id
            );
        }
        return Ok(());
    }
    atomic::write_json(&path, &run.config)
}

/// Keeps the experiment file, byte for byte, beside its runs. An older, different copy
/// is kept as `experiment.<time>-<pid>.json` rather than overwritten.
fn save_experiment(plan: &Plan, dir: &Path) -> Result<()> {
    let path = dir.join(store::EXPERIMENT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if text == plan.text => return Ok(()),
        Ok(_) => {
            let aside = dir.join(format!(
                "experiment.{}-{}.json",
                Utc::now().format("%Y%m%dT%H%M%S%.6f"),
                std::process::id()
            ));
            match std::fs::rename(&path, &aside) {
                Ok(()) => tracing::info!(
                    "the experiment file changed; the previous one is kept as {}",
                    aside.display()
                ),
                // Another worker moved it first.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("keeping the previous {}", path.display()))
                }
            }
        }
        Err(_) => {}
    }
    atomic::write_bytes(&path, plan.text.as_bytes())
}

fn describe_outcome(result: &RunResult) -> String {
    let Some(m) = &result.metrics else {
        return "completed".to_string();
    };
    let t = &m.test;
    let mut line = format!(
        "test acc {:.4} nll {:.4} ece {:.4} logit gap {:.2}",
        t.accuracy, t.nll, t.ece, t.mean_true_logit_gap
    );
    if let (Some(fit), Some(scaled)) = (&m.temperature, &m.test_scaled) {
        let _ = write!(
            line,
            " | T {:.3}: nll {:.4} ece {:.4}",
            fit.temperature, scaled.nll, scaled.ece
        );
    }
    let _ = write!(
        line,
        " | {:.1}s",
        result.timings.train_seconds + result.timings.eval_seconds
    );
    line
}
