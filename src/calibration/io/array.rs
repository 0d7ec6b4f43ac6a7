//! Arrays as stored in prediction files, and their conversion to logits
//! and labels.

use std::fmt;

use anyhow::{bail, ensure, Result};

/// Element type of a stored array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ElementType {
    Float32,
    Float64,
    /// A little-endian integer of 1, 2, 4 or 8 bytes.
    Integer {
        bytes: usize,
        signed: bool,
    },
    /// Anything else, named as the file names it.
    Other(String),
}

impl ElementType {
    pub(super) fn size(&self) -> Option<usize> {
        match self {
            Self::Float32 => Some(4),
            Self::Float64 => Some(8),
            Self::Integer { bytes, .. } => Some(*bytes),
            Self::Other(_) => None,
        }
    }
}

impl fmt::Display for ElementType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Float32 => f.write_str("float32"),
            Self::Float64 => f.write_str("float64"),
            Self::Integer { bytes, signed } => {
                let kind = if *signed { "int" } else { "uint" };
                write!(f, "{kind}{}", bytes * 8)
            }
            Self::Other(name) => write!(f, "'{name}'"),
        }
    }
}

/// An array as stored: C-order little-endian elements.
#[derive(Debug)]
pub(super) struct RawArray<'a> {
    pub element: ElementType,
    pub shape: Vec<usize>,
    pub data: &'a [u8],
}

/// Logits of shape `[rows, columns]`, row-major.
#[derive(Debug)]
pub(super) struct LogitMatrix {
    pub values: Vec<f32>,
    pub rows: usize,
    pub columns: usize,
}

/// Checks that `raw` is a 2-D float array and converts it to `f32` logits.
pub(super) fn decode_logits(name: &str, raw: &RawArray<'_>) -> Result<LogitMatrix> {
    ensure!(
        matches!(raw.element, ElementType::Float32 | ElementType::Float64),
        "array '{name}' has dtype {}; logits must be float32 or float64 (little-endian)",
        raw.element
    );
    let &[rows, columns] = raw.shape.as_slice() else {
        bail!(
            "array '{name}' must be 2-D [N, K], but has shape {:?}",
            raw.shape
        );
    };
    let element_size = checked_data(name, raw)?;
    let values = if raw.element == ElementType::Float32 {
        raw.data
            .chunks_exact(element_size)
            .map(|chunk| f32::from_le_bytes(chunk.try_into().expect("4-byte chunk")))
            .collect()
    } else {
        let doubles = raw
            .data
            .chunks_exact(element_size)
            .map(|chunk| f64::from_le_bytes(chunk.try_into().expect("8-byte chunk")));
        narrow_logits(name, doubles, columns)?
    };
    Ok(LogitMatrix {
        values,
        rows,
        columns,
    })
}

/// Checks that `raw` is a 1-D integer array and converts it to labels.
pub(super) fn decode_labels(name: &str, raw: &RawArray<'_>) -> Result<Vec<u32>> {
    let ElementType::Integer { signed, .. } = raw.element else {
        bail!(
            "array '{name}' has dtype {}; labels must be integers (little-endian)",
            raw.element
        );
    };
    ensure!(
        raw.shape.len() == 1,
        "array '{name}' must be 1-D [N], but has shape {:?}",
        raw.shape
    );
    let element_size = checked_data(name, raw)?;
    let values = raw
        .data
        .chunks_exact(element_size)
        .map(|chunk| little_endian_integer(chunk, signed));
    integer_labels(name, values)
}

/// Converts `f64` logits to `f32`, rejecting finite values that overflow.
/// NaN and infinities pass through for [`Predictions`] to report.
///
/// [`Predictions`]: crate::calibration::Predictions
pub(super) fn narrow_logits(
    name: &str,
    values: impl IntoIterator<Item = f64>,
    columns: usize,
) -> Result<Vec<f32>> {
    values
        .into_iter()
        .enumerate()
        .map(|(position, value)| {
            let narrowed = value as f32;
            ensure!(
                narrowed.is_finite() || !value.is_finite(),
                "array '{name}': value {value:e} at row {}, column {} does not fit in float32",
                position / columns.max(1),
                position % columns.max(1)
            );
            Ok(narrowed)
        })
        .collect()
}

/// Converts integer labels to `u32`, rejecting negative and huge values.
pub(super) fn integer_labels(
    name: &str,
    values: impl IntoIterator<Item = i128>,
) -> Result<Vec<u32>> {
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            ensure!(
                value >= 0,
                "array '{name}': label {value} at index {index} is negative"
            );
            u32::try_from(value).map_err(|_| {
                anyhow::anyhow!("array '{name}': label {value} at index {index} is too large")
            })
        })
        .collect()
}

/// Size of one element, after checking that the data holds exactly the
/// elements the shape calls for.
fn checked_data(name: &str, raw: &RawArray<'_>) -> Result<usize> {
    let element_size = raw
        .element
        .size()
        .expect("only sized element types are decoded");
    let needed = raw
        .shape
        .iter()
        .try_fold(element_size, |bytes, &extent| bytes.checked_mul(extent));
    match needed {
        Some(needed) if needed == raw.data.len() => Ok(element_size),
        Some(needed) if needed > raw.data.len() => bail!(
            "array '{name}' is truncated: shape {:?} of {} needs {needed} bytes of data, found {}",
            raw.shape,
            raw.element,
            raw.data.len()
        ),
        Some(needed) => bail!(
            "array '{name}' has {} bytes of data after the {needed} that shape {:?} of {} needs",
            raw.data.len() - needed,
            raw.shape,
            raw.element
        ),
        None => bail!(
            "array '{name}' has an impossibly large shape {:?}",
            raw.shape
        ),
    }
}

/// Sign- or zero-extends a little-endian integer of up to 16 bytes.
fn little_endian_integer(bytes: &[u8], signed: bool) -> i128 {
    let negative = signed && bytes.last().is_some_and(|&top| top & 0x80 != 0);
    let mut wide = [if negative { 0xff } else { 0 }; 16];
    wide[..bytes.len()].copy_from_slice(bytes);
    i128::from_le_bytes(wide)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_extended_by_signedness() {
        assert_eq!(little_endian_integer(&[0xff], true), -1);
        assert_eq!(little_endian_integer(&[0xff], false), 255);
        assert_eq!(little_endian_integer(&[0x00, 0x80], true), -32768);
        assert_eq!(
            little_endian_integer(&u64::MAX.to_le_bytes(), false),
            i128::from(u64::MAX)
        );
    }

    #[test]
    fn element_types_read_like_numpy() {
        let int64 = ElementType::Integer {
            bytes: 8,
            signed: true,
        };
        assert_eq!(int64.to_string(), "int64");
        assert_eq!(ElementType::Other(">f4".into()).to_string(), "'>f4'");
    }
}
