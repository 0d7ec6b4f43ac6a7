//! The supervisor loop of `smoothlab run`: it keeps up to `--jobs` worker processes
//! busy, decides for each run whether it needs training, and records how each worker
//! ended.

use super::console::describe_outcome;
use super::process::{describe_exit, terminate, WorkerProcess};
use super::worker::{self, exit, Event, Job};
use super::{RunOptions, Summary};
use crate::device::GpuInfo;
use crate::fault;
use crate::progress;
use crate::spec::{DeviceSpec, Plan, PlannedRun};
use crate::store::lock::{Claim, Holder, RunLock};
use crate::store::{ExperimentDir, Outcome, RunDir, RunResult, Stored};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use indicatif::ProgressBar;
use std::collections::VecDeque;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How often a run held by another worker is looked at again.
const BUSY_POLL: Duration = Duration::from_secs(2);

/// The longest the loop waits before it looks at the interrupt flag again. A second
/// Ctrl-C exits at once, so the bars must be off the screen before a quick second press.
const INTERRUPT_POLL: Duration = Duration::from_millis(50);

pub(super) struct Supervisor<'a> {
    plan: &'a Plan,
    options: &'a RunOptions,
    dir: ExperimentDir,
    device: DeviceSpec,
    /// Recorded for runs whose worker died before writing its own result.
    gpu: Option<GpuInfo>,
    threads: Option<usize>,
    /// Results finished after this are fresh work of another worker, never redone.
    started: DateTime<Utc>,
    total: usize,
    /// Runs of this worker's shard.
    shard_runs: usize,
    overall: ProgressBar,
    /// Wall seconds of each run completed by this invocation, for the sweep's ETA.
    completed_walls: Vec<f64>,
    summary: Summary,
}

/// A run being trained by a worker process.
struct Active {
    position: usize,
    label: String,
    job: Job,
    /// Declared before `lock`: dropping it stops the worker before the lock is released.
    worker: WorkerProcess,
    lock: RunLock,
    bar: ProgressBar,
    throughput: progress::Throughput,
    started_at: DateTime<Utc>,
    started: Instant,
}

/// What a run needs, decided from the results directory.
enum Decision {
    Skip(Skipped),
    Busy(Holder),
    Train(RunLock),
}

/// Whether a stored outcome means there is nothing to do for an invocation that
/// started at `started`. Results written after that are another worker's fresh work:
/// neither `--force` nor `--retry-failed` redoes them.
pub(super) fn stored_outcome(
    o: &RunOptions,
    state: Stored,
    started: DateTime<Utc>,
) -> Option<Skipped> {
    match state {
        Stored::Completed { finished_at } if !o.force || finished_at >= started => {
            Some(Skipped::Completed)
        }
        Stored::Failed {
            reason,
            finished_at,
        } if !(o.force || o.retry_failed) || finished_at >= started => {
            Some(Skipped::Failed(reason))
        }
        _ => None,
    }
}

pub(super) enum Skipped {
    Completed,
    Failed(String),
    /// Its directory could not be used, so nothing could be recorded in it.
    Unusable(String),
}

impl<'a> Supervisor<'a> {
    pub(super) fn new(
        plan: &'a Plan,
        options: &'a RunOptions,
        dir: ExperimentDir,
        device: DeviceSpec,
        gpu: Option<GpuInfo>,
        threads: Option<usize>,
    ) -> Self {
        let shard_runs = options.shard.positions(plan.runs.len()).count();
        let supervisor = Supervisor {
            plan,
            options,
            dir,
            device,
            gpu,
            threads,
            started: Utc::now(),
            total: plan.runs.len(),
            shard_runs,
            overall: progress::overall_bar(shard_runs as u64),
            completed_walls: Vec::new(),
            summary: Summary::default(),
        };
        supervisor.show_eta(&[]);
        supervisor
    }

    /// Runs this worker's shard of the plan; `interrupt` stops it cleanly.
    pub(super) fn run(mut self, interrupt: &AtomicBool) -> Result<Summary> {
        let result = self.drive(interrupt);
        self.overall.finish_and_clear();
        result.map(|()| self.summary)
    }

    fn drive(&mut self, interrupt: &AtomicBool) -> Result<()> {
        // Runs done before count as done from the start: the overall bar and its ETA are
        // about the work left. A run that cannot be looked at now is decided in its turn.
        let mut queue = VecDeque::new();
        for position in self.options.shard.positions(self.total) {
            match self.already_done(position) {
                Ok(Some(skipped)) => self.skip(position, skipped),
                Ok(None) | Err(_) => queue.push_back(position),
            }
        }
        let mut waiting: Vec<(usize, Instant)> = Vec::new();
        // Runs already said to be running elsewhere: said once, not at every poll.
        let mut announced = std::collections::HashSet::new();
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
                let first_look = announced.insert(position);
                // A run whose directory cannot be used (a plain file in its place, no
                // permission) fails alone; the others still train.
                let decision = match self.decide(position) {
                    Ok(decision) => decision,
                    // Bad input (results of another schema version) stops the sweep.
                    Err(e) if crate::exit_code(&e) == 2 => return Err(e),
                    Err(e) => {
                        self.skip(position, Skipped::Unusable(format!("{e:#}")));
                        continue;
                    }
                };
                match decision {
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
                    progress::remove_bars();
                    for a in &active {
                        terminate(&a.worker.child);
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
                std::thread::sleep(INTERRUPT_POLL);
                continue;
            }
            if let Ok((position, event)) = received.recv_timeout(INTERRUPT_POLL) {
                self.handle(&mut active, position, event);
            }
            self.show_eta(&active);
            let mut i = 0;
            while i < active.len() {
                if active[i].lock.is_lost() {
                    let _ = active[i].worker.child.kill();
                }
                match active[i]
                    .worker
                    .child
                    .try_wait()
                    .context("waiting for a worker")?
                {
                    None => i += 1,
                    Some(status) => {
                        let mut done = active.swap_remove(i);
                        // Read the worker's last lines before judging its exit.
                        done.worker.drain();
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

    fn run_dir(&self, position: usize) -> RunDir {
        self.dir.run(&self.plan.runs[position].id)
    }

    fn stored_outcome(&self, state: Stored) -> Option<Skipped> {
        stored_outcome(self.options, state, self.started)
    }

    /// Whether the run's stored outcome leaves nothing to do (tidying its directory then).
    fn already_done(&self, position: usize) -> Result<Option<Skipped>> {
        let run_dir = self.run_dir(position);
        let Some(skipped) = self.stored_outcome(run_dir.stored()?) else {
            return Ok(None);
        };
        run_dir.tidy_finished(matches!(skipped, Skipped::Completed))?;
        Ok(Some(skipped))
    }

    fn decide(&self, position: usize) -> Result<Decision> {
        let run = &self.plan.runs[position];
        if let Some(skipped) = self.already_done(position)? {
            return Ok(Decision::Skip(skipped));
        }
        let run_dir = self.run_dir(position);
        run_dir.create()?;
        let lock = match run_dir.claim()? {
            Claim::Busy(holder) => return Ok(Decision::Busy(holder)),
            Claim::Acquired(lock) => lock,
        };
        // Another worker may have finished the run between the first look and the claim.
        let state = run_dir.stored()?;
        if let Stored::Unreadable(reason) = &state {
            tracing::warn!("{reason}; redoing the run");
        }
        if let Some(skipped) = self.stored_outcome(state) {
            return Ok(Decision::Skip(skipped));
        }
        run_dir.remove_leftovers()?;
        run_dir.write_or_check_config(&run.id, &run.config)?;
        if let Some(archive) = run_dir.archive_attempt()? {
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
            Skipped::Unusable(reason) => {
                progress::println(&format!("{label}: FAILED: {reason}"));
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
        let resumed = run_dir.checkpoint_progress().unwrap_or(None);
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
        let worker = WorkerProcess::spawn(
            &self.options.executable,
            self.threads,
            &job,
            position,
            events,
        )?;
        Ok(Active {
            position,
            label: label.clone(),
            job,
            worker,
            lock,
            bar: progress::run_bar(label),
            throughput: progress::Throughput::default(),
            started_at: Utc::now(),
            started: Instant::now(),
        })
    }

    /// The overall bar's ETA, from the wall times of the runs completed so far.
    fn show_eta(&self, active: &[Active]) {
        let left = self
            .shard_runs
            .saturating_sub(self.overall.position() as usize);
        let eta = (!self.completed_walls.is_empty()).then(|| {
            let mean = self.completed_walls.iter().sum::<f64>() / self.completed_walls.len() as f64;
            let running: Vec<f64> = active
                .iter()
                .map(|a| a.started.elapsed().as_secs_f64())
                .collect();
            let queued = left.saturating_sub(running.len());
            progress::sweep_eta(mean, &running, queued, self.options.jobs)
        });
        self.overall
            .set_message(progress::sweep_message(eta, left, self.options.jobs));
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
            Some(exit::COMPLETED | exit::FAILED) => done
                .job
                .run_dir
                .read_result()
                .map_err(|e| format!("the worker ended without a readable result: {e:#}")),
            _ => Err(match &done.worker.fatal {
                Some(message) => message.clone(),
                None => describe_exit(status),
            }),
        };
        let result = match stored {
            Ok(result) => result,
            Err(reason) => self.record_crash(&done, reason)?,
        };
        match result.status {
            Outcome::Completed => {
                progress::println(&format!("{label}: {}", describe_outcome(&result)));
                self.completed_walls
                    .push(done.started.elapsed().as_secs_f64());
                self.summary.completed.push(id);
            }
            Outcome::Failed => {
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
        if let Ok(stored) = done.job.run_dir.read_result() {
            if stored.environment.finished_at >= done.started_at {
                tracing::warn!("{}: {reason}, after storing its result", done.label);
                return Ok(stored);
            }
        }
        done.job.run_dir.check_lock(done.lock.token())?;
        let history = done
            .job
            .run_dir
            .checkpoint_progress()
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
        done.job.run_dir.write_result(&result)?;
        Ok(result)
    }
}

fn apply(active: &mut Active, event: Event) {
    match event {
        Event::Progress(p) => {
            active.throughput.record(Instant::now(), p.epoch, p.samples);
            active.bar.set_length(p.total);
            active.bar.set_position(p.done);
            active.bar.set_message(progress::run_message(
                p.epoch,
                p.epochs,
                active.throughput.per_second(),
                p.loss,
            ));
        }
        Event::Log { line } => progress::eprintln(&format!("{}: {line}", active.label)),
        Event::Fatal { message } => active.worker.fatal = Some(message),
    }
}
