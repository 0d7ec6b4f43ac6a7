//! Crash points, for the tests that kill a sweep at exact moments.
//!
//! `SMOOTHLAB_CRASH_AT=<point>:<n>[:<how>]` makes the n-th arrival (1-based) of this
//! process at `<point>` crash it. The points are `write` (an atomic write's temporary
//! file is complete but not yet renamed), `step` (an optimiser step, mid-epoch),
//! `stored` (a worker has stored its result but not yet cleaned up after itself) and
//! `between-runs` (a run's result is stored, the next run has not started). `<how>` is
//! `group` (the default: SIGKILL to the whole process group, as `kill -9` of a sweep, a
//! node failure or a Slurm time limit's final kill does; no destructor runs, nothing is
//! flushed or cleaned up), `self` (SIGKILL to this process only, as the kernel's
//! out-of-memory killer does to one worker) or `panic`. Without the variable a point
//! costs one atomic load.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

pub const CRASH_VARIABLE: &str = "SMOOTHLAB_CRASH_AT";

struct CrashAt {
    point: String,
    nth: usize,
    how: How,
    seen: AtomicUsize,
}

enum How {
    KillGroup,
    KillSelf,
    Panic,
}

fn configured() -> Option<&'static CrashAt> {
    static CRASH_AT: OnceLock<Option<CrashAt>> = OnceLock::new();
    CRASH_AT
        .get_or_init(|| {
            let value = std::env::var(CRASH_VARIABLE).ok()?;
            let mut parts = value.split(':');
            let point = parts.next()?.to_string();
            let nth = parts.next()?.parse().ok()?;
            let how = match parts.next() {
                None | Some("group") => How::KillGroup,
                Some("self") => How::KillSelf,
                Some("panic") => How::Panic,
                Some(_) => return None,
            };
            Some(CrashAt {
                point,
                nth,
                how,
                seen: AtomicUsize::new(0),
            })
        })
        .as_ref()
}

/// Marks crash point `name`.
pub fn point(name: &str) {
    let Some(crash) = configured() else { return };
    if crash.point != name || crash.seen.fetch_add(1, Ordering::SeqCst) + 1 != crash.nth {
        return;
    }
    match crash.how {
        How::KillGroup => kill(0),
        How::KillSelf => kill(std::process::id()),
        How::Panic => panic!("crash point `{name}` reached"),
    }
}

/// SIGKILL to process `pid`, or to our whole process group for 0.
#[cfg(unix)]
fn kill(pid: u32) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    std::process::abort();
}

#[cfg(not(unix))]
fn kill(_pid: u32) {
    std::process::abort();
}
