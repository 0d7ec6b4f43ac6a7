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
//! `<split>.labels` (e.g. `val.logits`, as smoothlab writes them); without a
//! split, `logits`/`labels`
//! are read, or failing those `test.logits`/`test.labels`.
//!
//! Errors name the array, its dtype and shape, and the offending row and
//! column where these apply; the readers that take a path add the file name
//! as the outermost context, so format errors with `{:#}` to see the whole
//! chain.

mod array;
mod json;
mod npy;
mod npz;
mod safetensors_file;

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use self::array::LogitMatrix;
use super::Predictions;

const LOGITS: &str = "logits";
const LABELS: &str = "labels";
/// Splits tried in order when none is named: unprefixed arrays, then `test.*`.
const DEFAULT_SPLITS: [&str; 2] = ["", "test"];
/// Splits tried in order for fitting a temperature: unprefixed arrays, then `val.*`.
const VALIDATION_SPLITS: [&str; 2] = ["", "val"];

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
    read_first_split(path, &split.map_or(DEFAULT_SPLITS.to_vec(), |s| vec![s]))
}

/// Reads validation predictions (for fitting a temperature): `logits`/`labels`,
/// or failing those `val.logits`/`val.labels`.
pub fn read_validation_predictions(path: &Path) -> Result<Predictions> {
    read_first_split(path, &VALIDATION_SPLITS)
}

fn read_first_split(path: &Path, splits: &[&str]) -> Result<Predictions> {
    let format = Format::from_path(path)?;
    let bytes =
        crate::files::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_splits(&bytes, format, splits)
        .with_context(|| format!("invalid predictions in {}", path.display()))
}

/// Parses predictions from the contents of a file in `format`.
pub fn parse_predictions(bytes: &[u8], format: Format, split: Option<&str>) -> Result<Predictions> {
    parse_splits(
        bytes,
        format,
        &split.map_or(DEFAULT_SPLITS.to_vec(), |s| vec![s]),
    )
}

/// Parses the first of `splits` present in the file.
fn parse_splits(bytes: &[u8], format: Format, splits: &[&str]) -> Result<Predictions> {
    match format {
        Format::Npz => load(npz::Npz::open(bytes)?, splits),
        Format::Safetensors => load(safetensors_file::Safetensors::parse(bytes)?, splits),
        Format::Json => load(json::Json::parse(bytes)?, splits),
    }
}

/// Serialises each `(split prefix, predictions)` pair as `<prefix>.logits` (F32
/// `[N, K]`) and `<prefix>.labels` (U32 `[N]`) in the `.safetensors` format; an
/// empty prefix gives plain `logits`/`labels`. Callers write the bytes atomically.
pub fn safetensors_bytes(splits: &[(&str, &Predictions)]) -> Result<Vec<u8>> {
    safetensors_file::serialize(splits)
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

fn load(mut container: impl Container, splits: &[&str]) -> Result<Predictions> {
    let (logits_name, labels_name) = choose_arrays(&container.array_names(), splits)?;
    let logits = container.logits(&logits_name)?;
    let labels = container.labels(&labels_name)?;
    if logits.rows != labels.len() {
        bail!(
            "array '{logits_name}' has {} rows (shape [{}, {}]) \
             but '{labels_name}' has {} labels (shape [{}])",
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
fn choose_arrays(names: &[String], prefixes: &[&str]) -> Result<(String, String)> {
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
        return "the file holds no arrays".to_owned();
    }
    // Sorted: some containers list their arrays in hash order.
    let mut names = names.to_vec();
    names.sort();
    format!("arrays present: {}", names.join(", "))
}
