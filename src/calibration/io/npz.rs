//! `.npz` archives as written by `numpy.savez` and `numpy.savez_compressed`:
//! a zip file with one `<name>.npy` member per array.

use std::io::Cursor;

use anyhow::{Context, Result};
use zip::ZipArchive;

use super::array::{decode_labels, decode_logits, LogitMatrix, RawArray};
use super::npy::{parse_npy, read_npy};
use super::Container;

/// An opened `.npz` archive.
pub(super) struct Npz<'a> {
    archive: ZipArchive<Cursor<&'a [u8]>>,
}

impl<'a> Npz<'a> {
    pub(super) fn open(bytes: &'a [u8]) -> Result<Self> {
        let archive =
            ZipArchive::new(Cursor::new(bytes)).context("not a valid .npz (zip) archive")?;
        Ok(Self { archive })
    }

    /// Reads member `<name>.npy` and hands its parsed array to `decode`.
    fn decode<T>(
        &mut self,
        name: &str,
        decode: impl FnOnce(&str, &RawArray<'_>) -> Result<T>,
    ) -> Result<T> {
        let member = format!("{name}.npy");
        let file = self
            .archive
            .by_name(&member)
            .with_context(|| format!("cannot read '{member}' from the archive"))?;
        let bytes = read_npy(file).with_context(|| format!("array '{name}' ('{member}')"))?;
        let raw = parse_npy(&bytes).with_context(|| format!("array '{name}'"))?;
        decode(name, &raw)
    }
}

impl Container for Npz<'_> {
    fn array_names(&self) -> Vec<String> {
        self.archive
            .file_names()
            .filter_map(|name| Some(name.ok()?.strip_suffix(".npy")?.to_owned()))
            .collect()
    }

    fn logits(&mut self, name: &str) -> Result<LogitMatrix> {
        self.decode(name, decode_logits)
    }

    fn labels(&mut self, name: &str) -> Result<Vec<u32>> {
        self.decode(name, decode_labels)
    }
}
