//! Types shared by the image-file readers ([`super::idx`], [`super::cifar`]).

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Which part of a data set's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Train,
    Test,
}

/// Images as the files store them: u8 pixels, each image channel-major `[C, H, W]`,
/// images concatenated; labels as u32.
#[derive(Debug, Clone, PartialEq)]
pub struct RawImages {
    pub pixels: Vec<u8>,
    pub labels: Vec<u32>,
    /// `[C, H, W]` of one image.
    pub shape: [usize; 3],
}

impl RawImages {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// The files of a data set are not in the directory (the caller may then download
/// them). Returned as the root error, so callers can branch on it with
/// `e.downcast_ref::<MissingFiles>()`.
#[derive(Debug, thiserror::Error)]
#[error("{}: no {what} files here (looked for {})", dir.display(), expected.join(", "))]
pub struct MissingFiles {
    pub dir: PathBuf,
    pub what: String,
    pub expected: Vec<String>,
}

/// Whether `path` exists; an error (e.g. permission denied on the directory) is not
/// taken for "missing", since downloading over it would not help.
pub(crate) fn exists(path: &Path) -> Result<bool> {
    path.try_exists()
        .with_context(|| format!("checking whether {} exists", path.display()))
}

/// Reads until `buf` is full or the reader is at its end; returns the bytes read.
/// Unlike `read_exact`, a short read tells how much was there, for the error message.
pub(crate) fn read_full(reader: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::read_full;
    use std::io::{self, Read};

    /// Hands out one byte per call and is interrupted in between.
    struct Trickle<'a>(&'a [u8], bool);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 = !self.1;
            if self.1 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = self.0.len().min(buf.len()).min(1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn read_full_collects_short_reads_and_stops_at_the_end() {
        let mut buf = [0u8; 4];
        assert_eq!(
            read_full(&mut Trickle(&[1, 2, 3, 4, 5], false), &mut buf).unwrap(),
            4
        );
        assert_eq!(buf, [1, 2, 3, 4]);
        let mut buf = [0u8; 4];
        assert_eq!(
            read_full(&mut Trickle(&[7, 8], false), &mut buf).unwrap(),
            2
        );
        assert_eq!(buf[..2], [7, 8]);
    }
}
