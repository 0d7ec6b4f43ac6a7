//! A worker process as the supervisor sees it: started with its job on stdin, its
//! events read from stdout on a thread of their own, asked to stop with SIGTERM, and
//! its exit status put into words.

use super::worker::{Event, Job};
use anyhow::{Context, Result};
use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// A running `smoothlab worker`.
pub(super) struct WorkerProcess {
    pub child: Child,
    /// Held open: end-of-file tells the worker that the supervisor is gone.
    _stdin: ChildStdin,
    reader: Option<JoinHandle<()>>,
    /// Why the worker cannot store a result, when it said so or could not be started.
    pub fatal: Option<String>,
}

impl WorkerProcess {
    /// Starts `executable worker` (with `threads` CPU threads when given), sends it
    /// `job`, and forwards its events to `events` tagged with `position`.
    pub fn spawn(
        executable: &Path,
        threads: Option<usize>,
        job: &Job,
        position: usize,
        events: &mpsc::Sender<(usize, Event)>,
    ) -> Result<Self> {
        let mut command = Command::new(executable);
        command
            .arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(threads) = threads {
            command.env("RAYON_NUM_THREADS", threads.to_string());
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting a worker process ({})", executable.display()))?;
        let mut stdin = child.stdin.take().expect("a piped stdin");
        let stdout = child.stdout.take().expect("a piped stdout");
        let mut line = serde_json::to_string(job)?;
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
        Ok(Self {
            child,
            _stdin: stdin,
            reader: Some(reader),
            fatal,
        })
    }

    /// Waits until every line the worker wrote has been forwarded (its last lines, a
    /// fatal error, arrive before its stdout closes).
    pub fn drain(&mut self) {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for WorkerProcess {
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

/// Asks a worker to stop after its current step.
pub(super) fn terminate(child: &Child) {
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
pub(super) fn describe_exit(status: ExitStatus) -> String {
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
