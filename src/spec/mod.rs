//! Experiment files: the serde types, their validation, sweep expansion and run ids.
//!
//! An experiment file is parsed in two steps. The text is first parsed as JSON
//! (syntax errors report line and column), then deserialised into [`Experiment`]
//! with the JSON path of every error kept, then range-checked by
//! `validate`. Every failure is a [`SpecError`] naming the file,
//! the JSON path and what was expected; nothing runs before the whole plan is
//! valid.

mod error;
mod json;
mod parse;
mod plan;
mod run_id;
mod types;
mod validate;

pub use error::SpecError;
pub use plan::{Plan, PlannedRun};
pub use types::*;
pub use validate::excerpt;

use serde_json::Value;
use std::path::Path;

/// Reads, parses and validates an experiment file, and expands its sweep.
pub fn load(path: &Path) -> Result<Plan, SpecError> {
    let text = crate::files::read_to_string(path).map_err(|cause| SpecError::Io {
        file: path.to_path_buf(),
        cause,
    })?;
    parse(path, &text)
}

/// Parses experiment text; `file` is only used in error messages.
pub fn parse(file: &Path, text: &str) -> Result<Plan, SpecError> {
    let raw: Value = json::parse(text).map_err(|e| SpecError::Syntax {
        file: file.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })?;
    plan::expand(file, text, raw)
}

/// serde_json appends " at line L column C" to its messages; we report those separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}
