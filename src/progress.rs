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

/// Initialises `tracing` from `RUST_LOG` (default `info`), writing to stderr above any bars.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(|| LogWriter)
        .try_init();
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
