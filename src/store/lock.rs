//! Run locks: a worker claims a run by creating `<run>/lock` exclusively, so two workers
//! (local processes, or Slurm tasks on a shared filesystem) never train the same run.
//!
//! The lock holds the claimant's host, pid, start time and a random token. While the
//! run trains, a heartbeat thread touches the file every [`HEARTBEAT`]; whoever finds a
//! lock whose process is gone (same host), or whose heartbeat is older than
//! [`STALE_AFTER`] by the clocks or has not changed for that long as this process
//! watches it (a host whose clock is ahead; any host), may take it over. A takeover renames the stale file to a
//! unique name and checks that it moved exactly the bytes it judged stale; if another
//! worker had replaced it in between, the live lock is put back with a hard link (which
//! never overwrites). The holder checks its token before every write that matters
//! ([`check_owner`]) and at each heartbeat, so in the unlikely case that it lost its
//! lock anyway it stops instead of writing over the new owner's results.

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

pub(super) const LOCK_FILE: &str = "lock";
/// How often a holder touches its lock.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// A lock not touched for this long is stale wherever its holder runs: long enough for
/// a loaded shared filesystem and some clock skew between hosts, short enough that a
/// requeued Slurm task on another node waits only minutes.
pub const STALE_AFTER: Duration = Duration::from_secs(120);

/// The contents of a lock file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockInfo {
    pub host: String,
    pub pid: u32,
    pub started_at: DateTime<Utc>,
    /// Unique to this claim: what the holder checks to know the lock is still its own.
    pub token: String,
    /// `<array job id>_<task id>` (or the job id) when claimed inside a Slurm job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_job: Option<String>,
}

impl LockInfo {
    fn for_this_process() -> Self {
        Self {
            host: hostname().unwrap_or_default(),
            pid: std::process::id(),
            started_at: Utc::now(),
            token: random_token(),
            slurm_job: slurm_job(),
        }
    }

    /// `host:pid`, for messages.
    pub fn holder(&self) -> String {
        let mut holder = format!("{}:{}", self.host, self.pid);
        if let Some(job) = &self.slurm_job {
            holder += &format!(" (Slurm job {job})");
        }
        holder
    }
}

/// What an existing lock file says about its run.
#[derive(Debug, Clone, PartialEq)]
pub enum Holder {
    /// Held by a process that is alive as far as can be told from here. `info` is
    /// `None` while the claimant is still writing the file.
    Live {
        info: Option<LockInfo>,
        heartbeat_age: Duration,
    },
    /// Left by a dead process, or silent for longer than [`STALE_AFTER`].
    Stale {
        info: Option<LockInfo>,
        reason: String,
    },
}

/// The lock of the run in `run_dir`, if there is one.
pub fn inspect(run_dir: &Path) -> Result<Option<Holder>> {
    Ok(read(&run_dir.join(LOCK_FILE))?.map(|(holder, _)| holder))
}

/// The outcome of [`claim`].
pub enum Claim {
    Acquired(RunLock),
    /// Another live worker holds the run.
    Busy(Holder),
}

/// Claims the run in `run_dir` (which must exist), taking over a stale lock.
pub fn claim(run_dir: &Path) -> Result<Claim> {
    let path = run_dir.join(LOCK_FILE);
    // Each round either creates the lock, finds it live, or removes a stale one; a few
    // rounds only repeat when other workers race for the same run.
    for _ in 0..8 {
        let info = LockInfo::for_this_process();
        let mut contents = serde_json::to_vec_pretty(&info)?;
        contents.push(b'\n');
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                file.write_all(&contents)
                    .and_then(|()| file.sync_all())
                    .with_context(|| format!("writing {}", path.display()))?;
                remove_abandoned_takeovers(run_dir);
                return Ok(Claim::Acquired(RunLock::hold(path, info)));
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
        match read(&path)? {
            None => continue,
            Some((holder @ Holder::Live { .. }, _)) => return Ok(Claim::Busy(holder)),
            Some((Holder::Stale { reason, .. }, seen)) => take_over(&path, &seen, &reason)?,
        }
    }
    bail!(
        "could not claim {}: other workers keep changing it",
        path.display()
    )
}

/// A claimed run. Dropping it stops the heartbeat and removes the lock (if it is still
/// this claim's).
pub struct RunLock {
    path: PathBuf,
    info: LockInfo,
    lost: Arc<AtomicBool>,
    heartbeat: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl RunLock {
    fn hold(path: PathBuf, info: LockInfo) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = {
            let (path, token, lost) = (path.clone(), info.token.clone(), lost.clone());
            std::thread::spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(HEARTBEAT) {
                    match check_owner(&path, &token) {
                        Ok(()) => {}
                        Err(e) if e.is::<LockLost>() => {
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        // A passing filesystem error (NFS) is not a takeover: try again
                        // at the next beat; the lock only goes stale after many.
                        Err(e) => tracing::warn!("checking {}: {e:#}", path.display()),
                    }
                    if let Err(e) = touch(&path) {
                        tracing::warn!("refreshing {}: {e}", path.display());
                    }
                }
            })
        };
        Self {
            path,
            info,
            lost,
            heartbeat: Some((stop, thread)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn token(&self) -> &str {
        &self.info.token
    }

    /// Whether the heartbeat found the lock taken over by another worker.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.heartbeat.take() {
            drop(stop);
            let _ = thread.join();
        }
        if check_owner(&self.path, &self.info.token).is_ok() {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!("removing {}: {e}", self.path.display());
            }
        }
    }
}

/// This run's lock was taken over: the work must stop without writing anything.
#[derive(Debug, thiserror::Error)]
#[error("{}: {what}; another worker has taken this run over", path.display())]
pub struct LockLost {
    pub path: PathBuf,
    pub what: String,
}

/// Succeeds when the lock at `path` is still the claim with `token`.
pub fn check_owner(path: &Path, token: &str) -> Result<()> {
    let lost = |what: String| LockLost {
        path: path.to_path_buf(),
        what,
    };
    let text = match crate::files::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => Err(lost("the lock is gone".into()))?,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    match serde_json::from_slice::<LockInfo>(&text) {
        Ok(info) if info.token == token => Ok(()),
        Ok(info) => Err(lost(format!("the lock now belongs to {}", info.holder())).into()),
        Err(_) => Err(lost("the lock was replaced".into()).into()),
    }
}

/// The lock's holder and the exact bytes judged, or `None` if there is no lock.
fn read(path: &Path) -> Result<Option<(Holder, Vec<u8>)>> {
    let not_found = |e: &std::io::Error| e.kind() == ErrorKind::NotFound;
    let (bytes, modified) = match crate::files::read(path).and_then(|b| {
        let modified = std::fs::metadata(path)?.modified()?;
        Ok((b, modified))
    }) {
        Ok(read) => read,
        Err(e) if not_found(&e) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    // By the clocks: how long ago the holder's clock says it last beat. Another host's
    // clock may be ahead (a modification time in the future reads as 0), so the age is
    // also judged as this process sees it: for how long the lock has not changed.
    let by_clock = SystemTime::now()
        .duration_since(modified)
        .unwrap_or(Duration::ZERO);
    let unchanged = OBSERVED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get_or_insert_with(Observations::default)
        .unchanged_for(path, (modified, &bytes), Instant::now());
    let info = serde_json::from_slice::<LockInfo>(&bytes).ok();
    Ok(Some((judge(info, by_clock.max(unchanged)), bytes)))
}

/// The locks this process has looked at, so that a lock's age can be told without
/// trusting another host's clock.
static OBSERVED: Mutex<Option<Observations>> = Mutex::new(None);

/// Per lock path: what it last held (modification time and bytes) and since when, on
/// this process's monotonic clock.
#[derive(Default)]
struct Observations(HashMap<PathBuf, ((SystemTime, Vec<u8>), Instant)>);

impl Observations {
    /// For how long the lock at `path` has been seen holding `state` unchanged (zero
    /// when it is new or has changed since the last look).
    fn unchanged_for(&mut self, path: &Path, state: (SystemTime, &[u8]), now: Instant) -> Duration {
        let (modified, bytes) = state;
        match self.0.get_mut(path) {
            Some((seen, since)) if seen.0 == modified && seen.1 == bytes => {
                now.saturating_duration_since(*since)
            }
            Some((seen, since)) => {
                *seen = (modified, bytes.to_vec());
                *since = now;
                Duration::ZERO
            }
            None => {
                self.0
                    .insert(path.to_path_buf(), ((modified, bytes.to_vec()), now));
                Duration::ZERO
            }
        }
    }
}

/// Whether a lock with `info`, not touched for `age`, is still held.
fn judge(info: Option<LockInfo>, age: Duration) -> Holder {
    if let Some(i) = &info {
        if Some(&i.host) == hostname().as_ref() && !process_alive(i.pid) {
            let reason = format!("process {} on {} is gone", i.pid, i.host);
            return Holder::Stale { info, reason };
        }
    }
    if age > STALE_AFTER {
        let reason = format!("no heartbeat for {} s", age.as_secs());
        return Holder::Stale { info, reason };
    }
    Holder::Live {
        info,
        heartbeat_age: age,
    }
}

/// Removes the stale lock at `path` if it still holds exactly `seen`.
fn take_over(path: &Path, seen: &[u8], reason: &str) -> Result<()> {
    let moved = path.with_file_name(format!("{LOCK_FILE}.stale-{}", random_token()));
    match std::fs::rename(path, &moved) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("moving {} aside", path.display())),
    }
    let taken = std::fs::read(&moved).with_context(|| format!("reading {}", moved.display()))?;
    if taken == seen {
        tracing::info!("{}: taking over a stale lock ({reason})", path.display());
    } else {
        // Another worker took the stale lock over between our read and our rename, and
        // this moved its fresh lock: put it back, unless yet another claim is in place
        // (whose loser notices at its next check).
        match std::fs::hard_link(&moved, path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("restoring {}", path.display())),
        }
    }
    std::fs::remove_file(&moved).with_context(|| format!("removing {}", moved.display()))
}

/// Removes the moved-aside locks of takeovers whose worker was killed midway. Only old
/// ones: a recent one may belong to a takeover still in progress.
fn remove_abandoned_takeovers(run_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return;
    };
    let prefix = format!("{LOCK_FILE}.stale-");
    for entry in entries.filter_map(Result::ok) {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if old && entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn touch(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .set_modified(SystemTime::now())
}

#[cfg(unix)]
fn process_alive(pid: u32) -> bool {
    use nix::errno::Errno;
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0 only checks; EPERM means the process exists under another user.
    !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

#[cfg(not(unix))]
fn process_alive(_pid: u32) -> bool {
    // Without a cheap liveness check, only the heartbeat tells.
    true
}

fn random_token() -> String {
    use rand::Rng;
    format!("{:032x}", rand::rng().random::<u128>())
}

/// This machine's host name, as locks and results record it.
pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// The Slurm job this process runs in, as `<array job id>_<task id>` or the job id.
pub fn slurm_job() -> Option<String> {
    let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID")) {
        (Some(job), Some(task)) => Some(format!("{job}_{task}")),
        _ => var("SLURM_JOB_ID"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(dir: &Path) -> RunLock {
        match claim(dir).unwrap() {
            Claim::Acquired(lock) => lock,
            Claim::Busy(holder) => panic!("busy: {holder:?}"),
        }
    }

    fn write_lock(dir: &Path, info: &LockInfo, age: Duration) {
        let path = dir.join(LOCK_FILE);
        std::fs::write(&path, serde_json::to_vec(info).unwrap()).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(SystemTime::now() - age)
            .unwrap();
    }

    fn foreign(host: &str, pid: u32) -> LockInfo {
        LockInfo {
            host: host.into(),
            pid,
            started_at: Utc::now(),
            token: "theirs".into(),
            slurm_job: None,
        }
    }

    #[test]
    fn a_claim_excludes_others_until_it_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let lock = claimed(dir.path());
        assert!(check_owner(lock.path(), lock.token()).is_ok());
        match claim(dir.path()).unwrap() {
            Claim::Busy(Holder::Live { info, .. }) => {
                assert_eq!(info.unwrap().pid, std::process::id())
            }
            _ => panic!("a second claim succeeded"),
        }
        drop(lock);
        assert!(!dir.path().join(LOCK_FILE).exists());
        drop(claimed(dir.path()));
    }

    #[test]
    fn a_lock_of_a_dead_process_on_this_host_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        // Pid 0x7ffffffe is above any pid_max Linux allows, so no process has it.
        let dead = foreign(&super::hostname().unwrap(), 0x7fff_fffe);
        write_lock(dir.path(), &dead, Duration::ZERO);
        match inspect(dir.path()).unwrap() {
            Some(Holder::Stale { reason, .. }) => assert!(reason.contains("is gone"), "{reason}"),
            other => panic!("{other:?}"),
        }
        let lock = claimed(dir.path());
        assert!(check_owner(lock.path(), lock.token()).is_ok());
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "only the new lock remains");
    }

    #[test]
    fn another_hosts_lock_is_live_until_its_heartbeat_is_old() {
        let dir = tempfile::tempdir().unwrap();
        let info = foreign("elsewhere", 1);
        write_lock(dir.path(), &info, Duration::from_secs(30));
        assert!(matches!(claim(dir.path()).unwrap(), Claim::Busy(_)));
        write_lock(dir.path(), &info, STALE_AFTER + Duration::from_secs(5));
        match inspect(dir.path()).unwrap() {
            Some(Holder::Stale { reason, .. }) => assert!(reason.contains("no heartbeat")),
            other => panic!("{other:?}"),
        }
        drop(claimed(dir.path()));
    }

    #[test]
    fn a_lock_dated_in_the_future_goes_stale_once_it_stops_changing() {
        // Another host's clock is a day ahead: by the clocks its lock is never old.
        let day_ahead = SystemTime::now() + Duration::from_secs(86_400);
        let path = Path::new("/results/x/run/lock");
        let start = Instant::now();
        let mut seen = Observations::default();
        assert_eq!(
            seen.unchanged_for(path, (day_ahead, b"a"), start),
            Duration::ZERO
        );
        let later = start + STALE_AFTER / 2;
        assert_eq!(
            seen.unchanged_for(path, (day_ahead, b"a"), later),
            STALE_AFTER / 2
        );
        // A heartbeat (a new modification time) makes it fresh again.
        let beat = day_ahead + HEARTBEAT;
        assert_eq!(
            seen.unchanged_for(path, (beat, b"a"), later),
            Duration::ZERO
        );
        let silent = later + STALE_AFTER + Duration::from_secs(1);
        let age = seen.unchanged_for(path, (beat, b"a"), silent);
        assert!(matches!(judge(None, age), Holder::Stale { .. }), "{age:?}");
        // Another path is judged on its own.
        let other = Path::new("/results/x/other/lock");
        assert_eq!(
            seen.unchanged_for(other, (beat, b"a"), silent),
            Duration::ZERO
        );
    }

    #[test]
    fn an_empty_lock_is_a_claim_in_progress_until_it_is_old() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), b"").unwrap();
        assert!(matches!(
            inspect(dir.path()).unwrap(),
            Some(Holder::Live { info: None, .. })
        ));
        assert!(matches!(claim(dir.path()).unwrap(), Claim::Busy(_)));
    }

    #[test]
    fn a_holder_whose_lock_was_taken_over_learns_it() {
        let dir = tempfile::tempdir().unwrap();
        let lock = claimed(dir.path());
        write_lock(dir.path(), &foreign("elsewhere", 1), Duration::ZERO);
        let err = check_owner(lock.path(), lock.token()).unwrap_err();
        assert!(err.is::<LockLost>());
        assert!(err.to_string().contains("elsewhere:1"), "{err}");
        drop(lock);
        assert!(
            dir.path().join(LOCK_FILE).exists(),
            "dropping a lost lock must not remove the new owner's"
        );
    }

    #[test]
    fn a_takeover_that_moved_a_fresh_lock_puts_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        write_lock(dir.path(), &foreign("elsewhere", 1), Duration::ZERO);
        let fresh = std::fs::read(&path).unwrap();
        take_over(&path, b"the stale bytes judged earlier", "test").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), fresh);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn many_threads_claiming_one_run_get_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let winners = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    if let Claim::Acquired(lock) = claim(dir.path()).unwrap() {
                        winners.lock().unwrap().push(lock);
                    }
                });
            }
        });
        assert_eq!(winners.into_inner().unwrap().len(), 1);
    }
}
