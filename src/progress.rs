//! Terminal output: progress bars that draw only on a terminal, and a `tracing` writer
//! that prints log lines above the bars instead of through them.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::io::{self, Write};
use std::sync::OnceLock;

/// All bars live in one `MultiProgress` so log lines can suspend them while printing.
fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(MultiProgress::new)
}

/// A bar of `total` steps under the shared display (hidden when stderr is not a terminal).
pub fn bar(total: u64, prefix: String) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} ETA {eta} {msg}",
    )
    .expect("valid template")
    .progress_chars("=> ");
    bars().add(
        ProgressBar::new(total)
            .with_style(style)
            .with_prefix(prefix),
    )
}

/// The bar counting a sweep's finished runs, above the per-run bars.
pub fn overall_bar(runs: u64) -> ProgressBar {
    let style = ProgressStyle::with_template("sweep [{bar:30}] {pos}/{len} runs {elapsed_precise}")
        .expect("valid template")
        .progress_chars("=> ");
    bars().add(ProgressBar::new(runs).with_style(style))
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
    // Colour only on a terminal: a Slurm log or a redirected stderr gets plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_target(false)
        .with_ansi(colour)
        .with_writer(|| LogWriter)
        .try_init();
}

/// `RUST_LOG`, or `info`.
pub fn log_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
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
