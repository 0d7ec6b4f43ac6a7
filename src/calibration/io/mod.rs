//! Reading and writing prediction files.
//!
//! A file holds a logits array `[N, K]` (float32 or float64) and a labels
//! array `[N]` (any integer type, no negative values), stored as
//!
//! * `.npz`: `numpy.savez` / `numpy.savez_compressed` archives of C-ordered
//!   little-endian arrays;
//! * `.safetensors`: tensors of dtype F32/F64 and U8/I8/U16/I16/U32/I32/U64/I64;
//! * `.json`: `{"logits": [[...], ...], "labels": [...]}`.
//!
//! Arrays of one split of a dataset are named `<split>.logits` and
//! `<split>.labels` (e.g. `val.logits`); without a split, `logits`/`labels`
//! are read, or failing those `test.logits`/`test.labels`.
//!
//! Errors name the file, and where it applies the array, its dtype and
//! shape, and the offending row and column; format them with `{:#}` to see
//! the whole chain.

mod array;
mod json;
mod npy;
mod npz;
mod safetensors_file;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{anyhow, bail, Context, Result};

use self::array::LogitMatrix;
use super::Predictions;

const LOGITS: &str = "logits";
const LABELS: &str = "labels";
/// The split read when a file holds no unprefixed arrays.
const FALLBACK_SPLIT: &str = "test";

/// A supported prediction file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A numpy `.npz` archive.
    Npz,
    /// A `.safetensors` file.
    Safetensors,
    /// A JSON object.
    Json,
}

impl Format {
    /// The format named by the extension of `path` (case-insensitive).
    pub fn from_path(path: &Path) -> Result<Self> {
        let extension = path
            .extension()
            .and_then(|extension| extension.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("npz") => Ok(Self::Npz),
            Some("safetensors") => Ok(Self::Safetensors),
            Some("json") => Ok(Self::Json),
            other => bail!(
                "{}: unsupported file extension {} (expected .npz, .safetensors or .json)",
                path.display(),
                other.map_or_else(
                    || "(none)".to_owned(),
                    |extension| format!("'.{extension}'")
                )
            ),
        }
    }
}

/// Reads the predictions in `path` (see the module documentation for the
/// formats and array names).
pub fn read_predictions(path: &Path) -> Result<Predictions> {
    read_predictions_split(path, None)
}

/// Reads the arrays `<split>.logits` and `<split>.labels` from `path`, or
/// with `split = None` the default arrays.
pub fn read_predictions_split(path: &Path, split: Option<&str>) -> Result<Predictions> {
    let format = Format::from_path(path)?;
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_predictions(&bytes, format, split)
        .with_context(|| format!("invalid predictions in {}", path.display()))
}

/// Parses predictions from the contents of a file in `format`.
pub fn parse_predictions(bytes: &[u8], format: Format, split: Option<&str>) -> Result<Predictions> {
    match format {
        Format::Npz => load(npz::Npz::open(bytes)?, split),
        Format::Safetensors => load(safetensors_file::Safetensors::parse(bytes)?, split),
        Format::Json => load(json::Json::parse(bytes)?, split),
    }
}

/// Writes each `(split prefix, predictions)` pair as `<prefix>.logits` (F32
/// `[N, K]`) and `<prefix>.labels` (U32 `[N]`) into a `.safetensors` file;
/// an empty prefix writes plain `logits`/`labels`.
///
/// The file is written under a temporary name in the same directory and
/// then renamed, so readers never see a partial file.
pub fn write_predictions_safetensors(path: &Path, splits: &[(&str, &Predictions)]) -> Result<()> {
    let bytes = safetensors_file::serialize(splits)
        .with_context(|| format!("cannot serialise predictions for {}", path.display()))?;
    write_atomically(path, &bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// The name of array `kind` (`logits` or `labels`) of split `prefix`.
fn array_name(prefix: &str, kind: &str) -> String {
    if prefix.is_empty() {
        kind.to_owned()
    } else {
        format!("{prefix}.{kind}")
    }
}

/// A file's named arrays.
trait Container {
    fn array_names(&self) -> Vec<String>;
    fn logits(&mut self, name: &str) -> Result<LogitMatrix>;
    fn labels(&mut self, name: &str) -> Result<Vec<u32>>;
}

fn load(mut container: impl Container, split: Option<&str>) -> Result<Predictions> {
    let (logits_name, labels_name) = choose_arrays(&container.array_names(), split)?;
    let logits = container.logits(&logits_name)?;
    let labels = container.labels(&labels_name)?;
    if logits.rows != labels.len() {
        bail!(
            "array '{logits_name}' has {} rows (shape [{}, {}]) but '{labels_name}' has {} labels (shape [{}])",
            logits.rows,
            logits.rows,
            logits.columns,
            labels.len(),
            labels.len()
        );
    }
    Ok(Predictions::new(logits.values, labels, logits.columns)?)
}

/// Names of the logits and labels arrays to read.
fn choose_arrays(names: &[String], split: Option<&str>) -> Result<(String, String)> {
    let prefixes = split.map_or(vec!["", FALLBACK_SPLIT], |split| vec![split]);
    let present = |name: &str| names.iter().any(|candidate| candidate == name);
    let prefix = prefixes
        .iter()
        .find(|prefix| present(&array_name(prefix, LOGITS)))
        .ok_or_else(|| {
            let wanted: Vec<String> = prefixes
                .iter()
                .map(|prefix| format!("'{}'", array_name(prefix, LOGITS)))
                .collect();
            anyhow!(
                "missing array {} ({})",
                wanted.join(" or "),
                describe(names)
            )
        })?;
    let labels = array_name(prefix, LABELS);
    if !present(&labels) {
        bail!("missing array '{labels}' ({})", describe(names));
    }
    Ok((array_name(prefix, LOGITS), labels))
}

fn describe(names: &[String]) -> String {
    if names.is_empty() {
        "the file holds no arrays".to_owned()
    } else {
        format!("arrays present: {}", names.join(", "))
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    // Distinct per process and per call, so concurrent writers never share
    // a temporary file.
    static WRITES: AtomicUsize = AtomicUsize::new(0);
    let file_name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} does not name a file", path.display()))?;
    let temporary = path.with_file_name(format!(
        ".{}.{}-{}.tmp",
        file_name.to_string_lossy(),
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let written = write_synced(&temporary, bytes).and_then(|()| fs::rename(&temporary, path));
    if written.is_err() {
        // Best effort: the temporary file may not even exist.
        let _ = fs::remove_file(&temporary);
    }
    Ok(written?)
}

/// Writes `bytes` to a new file and flushes it to disk.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
