//! JSON prediction files: `{"logits": [[...], ...], "labels": [...]}`.

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};

use super::array::{integer_labels, narrow_logits, LogitMatrix};
use super::Container;

/// A parsed JSON object whose members are arrays.
pub(super) struct Json {
    members: Map<String, Value>,
}

impl Json {
    pub(super) fn parse(bytes: &[u8]) -> Result<Self> {
        let members = serde_json::from_slice(bytes).context("not a JSON object of arrays")?;
        Ok(Self { members })
    }

    fn take(&mut self, name: &str) -> Result<Value> {
        match self.members.remove(name) {
            Some(value) => Ok(value),
            None => bail!("no array '{name}'"),
        }
    }
}

impl Container for Json {
    fn array_names(&self) -> Vec<String> {
        self.members.keys().cloned().collect()
    }

    fn logits(&mut self, name: &str) -> Result<LogitMatrix> {
        let rows: Vec<Vec<f64>> = serde_json::from_value(self.take(name)?)
            .with_context(|| format!("array '{name}' must be a list of rows of numbers"))?;
        let columns = rows.first().map_or(0, Vec::len);
        if let Some((row, values)) = rows
            .iter()
            .enumerate()
            .find(|(_, values)| values.len() != columns)
        {
            bail!(
                "array '{name}' is ragged: row {row} has {} values, row 0 has {columns}",
                values.len()
            );
        }
        let values = narrow_logits(name, rows.iter().flatten().copied(), columns)?;
        Ok(LogitMatrix {
            values,
            rows: rows.len(),
            columns,
        })
    }

    fn labels(&mut self, name: &str) -> Result<Vec<u32>> {
        let labels: Vec<i64> = serde_json::from_value(self.take(name)?)
            .with_context(|| format!("array '{name}' must be a list of integers"))?;
        integer_labels(name, labels.into_iter().map(i128::from))
    }
}
