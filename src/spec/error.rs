use std::path::PathBuf;

/// Why an experiment file was rejected. Callers map every variant to exit code 2:
/// nothing was run.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    // `cause` is not a `source`: the message holds it, and anyhow's `{:#}` would
    // print it a second time.
    #[error("{}: cannot read the experiment file: {cause}", file.display())]
    Io {
        file: PathBuf,
        cause: std::io::Error,
    },
    #[error("{}:{line}:{column}: malformed JSON: {message}", file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {}{message}", file.display(), location(path))]
    Invalid {
        file: PathBuf,
        /// Dotted JSON path of the offending value, e.g. `loss.smoothing` or `sweep."seed"[2]`.
        path: String,
        message: String,
    },
}

/// "at `a.b`: ", or nothing for the top level of the file.
fn location(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("at `{path}`: ")
    }
}
