//! `.safetensors` prediction files.

use std::collections::HashSet;

use anyhow::{ensure, Context, Result};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use super::array::{decode_labels, decode_logits, ElementType, LogitMatrix, RawArray};
use super::{array_name, Container, LABELS, LOGITS};
use crate::calibration::Predictions;

/// A parsed `.safetensors` buffer.
pub(super) struct Safetensors<'a> {
    tensors: SafeTensors<'a>,
}

impl<'a> Safetensors<'a> {
    pub(super) fn parse(bytes: &'a [u8]) -> Result<Self> {
        let tensors = SafeTensors::deserialize(bytes).context("not a valid .safetensors file")?;
        Ok(Self { tensors })
    }

    fn raw(&self, name: &str) -> Result<RawArray<'a>> {
        let view = self
            .tensors
            .tensor(name)
            .with_context(|| format!("cannot read tensor '{name}'"))?;
        Ok(RawArray {
            element: element_type(view.dtype()),
            shape: view.shape().to_vec(),
            data: view.data(),
        })
    }
}

impl Container for Safetensors<'_> {
    fn array_names(&self) -> Vec<String> {
        self.tensors
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    fn logits(&mut self, name: &str) -> Result<LogitMatrix> {
        decode_logits(name, &self.raw(name)?)
    }

    fn labels(&mut self, name: &str) -> Result<Vec<u32>> {
        decode_labels(name, &self.raw(name)?)
    }
}

fn element_type(dtype: Dtype) -> ElementType {
    let integer = |bytes, signed| ElementType::Integer { bytes, signed };
    match dtype {
        Dtype::F32 => ElementType::Float32,
        Dtype::F64 => ElementType::Float64,
        Dtype::U8 => integer(1, false),
        Dtype::I8 => integer(1, true),
        Dtype::U16 => integer(2, false),
        Dtype::I16 => integer(2, true),
        Dtype::U32 => integer(4, false),
        Dtype::I32 => integer(4, true),
        Dtype::U64 => integer(8, false),
        Dtype::I64 => integer(8, true),
        other => ElementType::Other(other.to_string()),
    }
}

/// Serialises each split as `<prefix>.logits` (F32 `[N, K]`) and
/// `<prefix>.labels` (U32 `[N]`).
pub(super) fn serialize(splits: &[(&str, &Predictions)]) -> Result<Vec<u8>> {
    let mut prefixes = HashSet::new();
    for (prefix, _) in splits {
        ensure!(prefixes.insert(prefix), "split '{prefix}' is given twice");
    }
    let buffers: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = splits
        .iter()
        .flat_map(|&(prefix, predictions)| {
            let logits = predictions
                .logits()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            let labels = predictions
                .labels()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            [
                (
                    array_name(prefix, LOGITS),
                    Dtype::F32,
                    vec![predictions.len(), predictions.classes()],
                    logits,
                ),
                (
                    array_name(prefix, LABELS),
                    Dtype::U32,
                    vec![predictions.len()],
                    labels,
                ),
            ]
        })
        .collect();
    let views = buffers
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            Ok((
                name.as_str(),
                TensorView::new(*dtype, shape.clone(), bytes)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(safetensors::serialize(views, None)?)
}
