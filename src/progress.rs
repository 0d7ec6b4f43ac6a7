//! Terminal output: progress bars that draw only on a terminal, and a `tracing` writer
//! that prints log lines above the bars instead of through them; what the bars say
//! (epoch, samples/s, loss; the sweep's ETA) is worked out by the pure functions here.

use indicatif::{
    MultiProgress, ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle, TermLike,
};
use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io::{self, IsTerminal, Write};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// All bars live in one `MultiProgress` so log lines can suspend them while printing.
fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(|| {
        let target = if io::stderr().is_terminal() {
            ProgressDrawTarget::term_like_with_hz(Box::new(Stderr::default()), 20)
        } else {
            ProgressDrawTarget::hidden()
        };
        MultiProgress::with_draw_target(target)
    })
}

/// A run's bar, its position the run's optimiser steps and its message [`run_message`];
/// dropped unfinished (the sweep stopped by an error), it leaves the screen.
pub fn run_bar(prefix: String) -> ProgressBar {
    let style =
        ProgressStyle::with_template("{prefix} [{bar:30}] {msg} | {elapsed_precise}, ETA {eta}")
            .expect("valid template")
            .progress_chars("=> ");
    let bar = bars().add(
        ProgressBar::new(0)
            .with_style(style)
            .with_prefix(prefix)
            .with_finish(ProgressFinish::AndClear),
    );
    // Drawn at once: a run loads its data before it reports any progress.
    bar.set_message("starting");
    bar
}

/// The bar counting a sweep's finished runs, above the per-run bars; its message is
/// [`sweep_message`].
pub fn overall_bar(runs: u64) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "sweep [{bar:30}] {pos}/{len} runs | {elapsed_precise} | {msg}",
    )
    .expect("valid template")
    .progress_chars("=> ");
    bars().add(
        ProgressBar::new(runs)
            .with_style(style)
            .with_finish(ProgressFinish::AndClear),
    )
}

/// Takes every bar off the screen and draws none from now on (an interrupted sweep: a
/// second Ctrl-C exits at once, which must not leave a frozen bar behind).
pub fn remove_bars() {
    let _ = bars().clear();
    bars().set_draw_target(ProgressDrawTarget::hidden());
}

/// Prints a line on stdout above the bars.
pub fn println(line: &str) {
    bars().suspend(|| println!("{line}"));
}

/// Prints a line on stderr above the bars.
pub fn eprintln(line: &str) {
    bars().suspend(|| eprintln!("{line}"));
}

/// Initialises `tracing` from `RUST_LOG` (default `info`), writing to stderr above any bars.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_target(false)
        .with_ansi(colour())
        .with_writer(|| LogWriter)
        .try_init();
}

/// `RUST_LOG`, or `info`.
pub fn log_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

/// Whether output on stderr may be coloured ([`colour_allowed`] for this process).
pub fn colour() -> bool {
    colour_allowed(
        io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

/// Colour only on a terminal (a Slurm log or a redirect gets plain text), and not when
/// `NO_COLOR` is set to anything but the empty string (https://no-color.org).
pub fn colour_allowed(terminal: bool, no_color: Option<&OsStr>) -> bool {
    terminal && no_color.is_none_or(OsStr::is_empty)
}

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        bars().suspend(|| io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// Columns of the terminal the bars leave free at the right.
///
/// indicatif pads the last bar line to the full width, which leaves the cursor waiting
/// to wrap; the `^C` a terminal echoes for Ctrl-C then starts a line indicatif does not
/// count, and its next redraw leaves a copy of the top bar on screen. Two free columns
/// keep the echo on the bar's line, where the next redraw clears it.
const ECHO_COLUMNS: u16 = 2;

/// Stderr as the bars' terminal, written in one piece per redraw.
#[derive(Debug, Default)]
struct Stderr {
    pending: Mutex<Vec<u8>>,
}

impl Stderr {
    fn write(&self, bytes: &[u8]) -> io::Result<()> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(())
    }

    fn move_cursor(&self, n: usize, direction: char) -> io::Result<()> {
        // `ESC[0A` moves one line in most terminals: zero means no sequence at all.
        if n == 0 {
            return Ok(());
        }
        self.write(format!("\x1b[{n}{direction}").as_bytes())
    }
}

impl TermLike for Stderr {
    fn width(&self) -> u16 {
        let (_, columns) = terminal_size();
        columns.saturating_sub(ECHO_COLUMNS).max(1)
    }

    fn height(&self) -> u16 {
        terminal_size().0
    }

    fn move_cursor_up(&self, n: usize) -> io::Result<()> {
        self.move_cursor(n, 'A')
    }

    fn move_cursor_down(&self, n: usize) -> io::Result<()> {
        self.move_cursor(n, 'B')
    }

    fn move_cursor_right(&self, n: usize) -> io::Result<()> {
        self.move_cursor(n, 'C')
    }

    fn move_cursor_left(&self, n: usize) -> io::Result<()> {
        self.move_cursor(n, 'D')
    }

    fn write_line(&self, s: &str) -> io::Result<()> {
        self.write(s.as_bytes())?;
        self.write(b"\n")
    }

    fn write_str(&self, s: &str) -> io::Result<()> {
        self.write(s.as_bytes())
    }

    fn clear_line(&self) -> io::Result<()> {
        self.write(b"\r\x1b[2K")
    }

    fn flush(&self) -> io::Result<()> {
        let bytes = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let mut stderr = io::stderr().lock();
        stderr.write_all(&bytes)?;
        stderr.flush()
    }
}

/// Rows and columns of the terminal on stderr; 24 × 80 when it does not say.
fn terminal_size() -> (u16, u16) {
    use nix::libc;
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which points to one.
    let read = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    if read && size.ws_row > 0 && size.ws_col > 0 {
        (size.ws_row, size.ws_col)
    } else {
        (24, 80)
    }
}

/// Progress reports a samples/s figure is measured over: the last few, not the whole run.
const RATE_WINDOW: usize = 8;

/// A run's training samples per second over its latest progress reports of one epoch:
/// between epochs the run validates and writes its checkpoint, which is not training.
#[derive(Debug, Default)]
pub struct Throughput {
    /// When each of the latest reports of the current epoch came and the samples it
    /// counted, oldest first.
    recent: VecDeque<(Instant, u64)>,
    epoch: u64,
    /// The latest rate measured; it stands while a new epoch has only one report.
    per_second: Option<f64>,
}

impl Throughput {
    /// Takes a report that `samples` training samples were done at `at`, in `epoch`.
    pub fn record(&mut self, at: Instant, epoch: u64, samples: u64) {
        if epoch != self.epoch {
            self.recent.clear();
            self.epoch = epoch;
        }
        if self.recent.len() > RATE_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back((at, samples));
        let (Some(&(first_at, first)), Some(&(last_at, last))) =
            (self.recent.front(), self.recent.back())
        else {
            return;
        };
        let seconds = last_at.duration_since(first_at).as_secs_f64();
        if seconds > 0.0 {
            self.per_second = Some(last.saturating_sub(first) as f64 / seconds);
        }
    }

    /// Samples per second, once two reports of an epoch came at different times.
    pub fn per_second(&self) -> Option<f64> {
        self.per_second
    }
}

/// `845 samples/s`, `12.3k samples/s`, `1.20M samples/s`: three significant digits, so
/// that the figure does not flicker in digits that mean nothing.
pub fn format_rate(per_second: f64) -> String {
    let (value, unit) = match per_second {
        r if r >= 999_500.0 => (r / 1e6, "M"),
        r if r >= 999.5 => (r / 1e3, "k"),
        r => (r, ""),
    };
    // The bounds are where rounding to that many decimals reaches the next power of ten.
    let decimals = match value {
        v if v >= 99.95 => 0,
        v if v >= 9.995 => 1,
        _ => 2,
    };
    format!("{value:.decimals$}{unit} samples/s")
}

/// A run bar's message: `epoch 3/20 | 12.3k samples/s | loss 0.4321`, the rate and the
/// loss once they are known.
pub fn run_message(epoch: u64, epochs: u64, per_second: Option<f64>, loss: Option<f64>) -> String {
    let mut message = format!("epoch {epoch}/{epochs}");
    if let Some(rate) = per_second {
        message += &format!(" | {}", format_rate(rate));
    }
    if let Some(loss) = loss {
        message += &format!(" | loss {loss:.4}");
    }
    message
}

/// Seconds until a sweep is done if each run takes `mean_wall` seconds: a running run
/// ends when it has had the mean (`running_elapsed`: how long each has run), and each of
/// the `queued` runs starts on the first of the `jobs` slots to come free.
pub fn sweep_eta(mean_wall: f64, running_elapsed: &[f64], queued: usize, jobs: usize) -> f64 {
    let mut slots: Vec<f64> = running_elapsed
        .iter()
        .map(|elapsed| (mean_wall - elapsed).max(0.0))
        .collect();
    slots.resize(jobs.max(running_elapsed.len()).max(1), 0.0);
    for _ in 0..queued {
        let first_free = slots
            .iter_mut()
            .min_by(|a, b| a.total_cmp(b))
            .expect("at least one slot");
        *first_free += mean_wall;
    }
    slots.into_iter().fold(0.0, f64::max)
}

/// The overall bar's message: the ETA of [`sweep_eta`] (`None`: no run has completed yet,
/// so there is nothing to base one on) with the runs left and how many run at once.
pub fn sweep_message(eta_seconds: Option<f64>, runs_left: usize, jobs: usize) -> String {
    if runs_left == 0 {
        return "finishing".to_string();
    }
    let left = format!("{runs_left} run(s) left, {jobs} at a time");
    match eta_seconds {
        Some(seconds) => format!("ETA {} ({left})", format_duration(seconds)),
        None => format!("ETA once a run has completed ({left})"),
    }
}

/// `45s`, `2m 05s`, `3h 07m`.
pub fn format_duration(seconds: f64) -> String {
    let seconds = seconds.max(0.0).round() as u64;
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}
