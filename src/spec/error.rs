use std::path::PathBuf;

/// Why an experiment file was rejected. Callers map every variant to exit code 2:
/// nothing was run.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{}: cannot read the experiment file: {source}", file.display())]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: malformed JSON: {message}", file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: at `{path}`: {message}", file.display())]
    Invalid {
        file: PathBuf,
        /// Dotted JSON path of the offending value, e.g. `loss.smoothing` or `sweep."seed"[2]`.
        path: String,
        message: String,
    },
}
