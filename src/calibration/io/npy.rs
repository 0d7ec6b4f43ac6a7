//! The `.npy` array format (versions 1.0, 2.0 and 3.0).
//!
//! A file is the magic `\x93NUMPY`, a major and minor version byte, the
//! header length (2 bytes little-endian in version 1, 4 bytes after), a
//! header that is a Python dict literal with the keys `descr`,
//! `fortran_order` and `shape`, and then the raw elements.

use std::io::Read;

use anyhow::{bail, ensure, Context, Result};

use super::array::{ElementType, RawArray};

const MAGIC: &[u8] = b"\x93NUMPY";

/// Parses a `.npy` file, borrowing its data section.
pub(super) fn parse_npy(bytes: &[u8]) -> Result<RawArray<'_>> {
    ensure!(
        bytes.starts_with(MAGIC),
        "not a .npy array: it does not start with \\x93NUMPY"
    );
    let (header, data) = split_header(&bytes[MAGIC.len()..])?;
    let header = parse_header(header)?;
    ensure!(
        !header.fortran_order,
        "the array is stored in Fortran order, which is not supported; \
         save a C-ordered copy (numpy.ascontiguousarray)"
    );
    Ok(RawArray {
        element: element_type(&header.descr),
        shape: header.shape,
        data,
    })
}

/// The most header text read from a stream: numpy writes headers of a few hundred
/// bytes, and a longer one is damage, not an array.
const MAX_HEADER: usize = 1 << 16;

/// Reads one `.npy` array from `reader` (a member of an archive), no more than its
/// header describes: the bytes of a whole `.npy` file, for [`parse_npy`]. A member that
/// inflates to more than its header's shape and dtype hold is an error once the first
/// surplus byte arrives, not after it has all been decompressed.
pub(super) fn read_npy(mut reader: impl Read) -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; MAGIC.len() + 2];
    reader
        .read_exact(&mut bytes)
        .context("not a .npy array: shorter than its magic and version")?;
    ensure!(
        bytes.starts_with(MAGIC),
        "not a .npy array: it does not start with \\x93NUMPY"
    );
    let length_bytes = match bytes[MAGIC.len()] {
        1 => 2,
        2 | 3 => 4,
        major => bail!(
            "unsupported .npy format version {major}.{}",
            bytes[MAGIC.len() + 1]
        ),
    };
    let mut length = [0u8; 4];
    reader
        .read_exact(&mut length[..length_bytes])
        .context(".npy header is truncated")?;
    bytes.extend_from_slice(&length[..length_bytes]);
    let header_length = u32::from_le_bytes(length) as usize;
    ensure!(
        header_length <= MAX_HEADER,
        ".npy header declares {header_length} bytes, more than the {MAX_HEADER} a header can need"
    );
    let start = bytes.len();
    bytes.resize(start + header_length, 0);
    reader
        .read_exact(&mut bytes[start..])
        .context(".npy header is truncated")?;
    let header = std::str::from_utf8(&bytes[start..]).context(".npy header is not text")?;
    let header = parse_header(header)?;
    // An unsupported dtype is reported by the decoder; its data is not needed for that.
    let Some(element) = element_type(&header.descr).size() else {
        return Ok(bytes);
    };
    let data_len = header
        .shape
        .iter()
        .try_fold(element, |n, &d| n.checked_mul(d))
        .with_context(|| {
            format!(
                "shape {:?} describes more bytes than fit in memory",
                header.shape
            )
        })?;
    let start = bytes.len();
    // Capacity for what arrives, not for what the header claims.
    bytes.reserve(data_len.min(64 << 20));
    (&mut reader)
        .take(data_len as u64)
        .read_to_end(&mut bytes)
        .context("reading the array's data")?;
    if bytes.len() - start < data_len {
        // Truncated: the decoder says so, as it does for every format.
        return Ok(bytes);
    }
    let mut surplus = [0u8; 1];
    ensure!(
        reader
            .read(&mut surplus)
            .context("reading the array's data")?
            == 0,
        "more data than the header's shape {:?} and dtype {} describe ({data_len} bytes)",
        header.shape,
        header.descr
    );
    Ok(bytes)
}

/// Splits what follows the magic into header text and data.
fn split_header(bytes: &[u8]) -> Result<(&str, &[u8])> {
    let (length_bytes, after_version) = match bytes {
        [1, _, rest @ ..] => (2, rest),
        [2 | 3, _, rest @ ..] => (4, rest),
        [major, minor, ..] => bail!("unsupported .npy format version {major}.{minor}"),
        _ => bail!(".npy header is truncated"),
    };
    ensure!(
        after_version.len() >= length_bytes,
        ".npy header is truncated"
    );
    let (length, rest) = after_version.split_at(length_bytes);
    let mut wide = [0u8; 4];
    wide[..length_bytes].copy_from_slice(length);
    let header_length = u32::from_le_bytes(wide) as usize;
    ensure!(
        rest.len() >= header_length,
        ".npy header is truncated: it declares {header_length} bytes, the file has {} left",
        rest.len()
    );
    let (header, data) = rest.split_at(header_length);
    let header = std::str::from_utf8(header).context(".npy header is not text")?;
    Ok((header, data))
}

/// The fields of a `.npy` header.
#[derive(Debug, PartialEq)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Parses the header dict, e.g.
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
fn parse_header(text: &str) -> Result<Header> {
    let mut cursor = Cursor { rest: text };
    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    cursor.expect('{')?;
    while !cursor.eat('}') {
        let key = cursor.string()?;
        cursor.expect(':')?;
        match key {
            "descr" => {
                descr = Some(
                    cursor
                        .string()
                        .context("unsupported 'descr' (structured dtypes are not supported)")?,
                )
            }
            "fortran_order" => fortran_order = Some(cursor.boolean()?),
            "shape" => shape = Some(cursor.shape()?),
            other => bail!(".npy header has an unexpected key '{other}'"),
        }
        if !cursor.eat(',') {
            cursor.expect('}')?;
            break;
        }
    }
    let missing = |key: &str| format!(".npy header has no '{key}'");
    Ok(Header {
        descr: descr.with_context(|| missing("descr"))?.to_owned(),
        fortran_order: fortran_order.with_context(|| missing("fortran_order"))?,
        shape: shape.with_context(|| missing("shape"))?,
    })
}

/// Maps a numpy type string such as `<f4` or `|u1` to an element type.
fn element_type(descr: &str) -> ElementType {
    let little_endian = |order: u8, bytes: usize| {
        order == b'<' || (bytes == 1 && matches!(order, b'|' | b'>' | b'='))
    };
    match descr.as_bytes() {
        [order, kind @ (b'f' | b'i' | b'u'), size] if size.is_ascii_digit() => {
            let bytes = usize::from(size - b'0');
            match (kind, bytes) {
                _ if !little_endian(*order, bytes) => ElementType::Other(descr.to_owned()),
                (b'f', 4) => ElementType::Float32,
                (b'f', 8) => ElementType::Float64,
                (b'i' | b'u', 1 | 2 | 4 | 8) => ElementType::Integer {
                    bytes,
                    signed: *kind == b'i',
                },
                _ => ElementType::Other(descr.to_owned()),
            }
        }
        _ => ElementType::Other(descr.to_owned()),
    }
}

/// A minimal reader for the Python literals that appear in `.npy` headers.
struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    /// Skips whitespace, then consumes `expected` if it comes next.
    fn eat(&mut self, expected: char) -> bool {
        self.rest = self.rest.trim_start();
        match self.rest.strip_prefix(expected) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, expected: char) -> Result<()> {
        ensure!(
            self.eat(expected),
            "malformed .npy header: expected '{expected}' before {:?}",
            self.rest.chars().take(20).collect::<String>()
        );
        Ok(())
    }

    /// A single- or double-quoted string without escapes.
    fn string(&mut self) -> Result<&'a str> {
        let quote = if self.eat('\'') {
            '\''
        } else {
            self.expect('"')?;
            '"'
        };
        let (content, rest) = self
            .rest
            .split_once(quote)
            .context("malformed .npy header: unterminated string")?;
        self.rest = rest;
        Ok(content)
    }

    fn boolean(&mut self) -> Result<bool> {
        self.rest = self.rest.trim_start();
        for (word, value) in [("True", true), ("False", false)] {
            if let Some(rest) = self.rest.strip_prefix(word) {
                self.rest = rest;
                return Ok(value);
            }
        }
        bail!("malformed .npy header: expected True or False")
    }

    /// A tuple of non-negative integers: `()`, `(3,)`, `(3, 4)`.
    fn shape(&mut self) -> Result<Vec<usize>> {
        self.expect('(')?;
        let mut shape = Vec::new();
        while !self.eat(')') {
            shape.push(self.integer()?);
            if !self.eat(',') {
                self.expect(')')?;
                break;
            }
        }
        Ok(shape)
    }

    /// A non-negative integer, with the `L` suffix old Python 2 headers use.
    fn integer(&mut self) -> Result<usize> {
        self.rest = self.rest.trim_start();
        let digits = self.rest.len()
            - self
                .rest
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .len();
        let (number, rest) = self.rest.split_at(digits);
        let value = number.parse().with_context(|| {
            format!(
                "malformed .npy header: bad dimension {:?}",
                self.rest.chars().take(20).collect::<String>()
            )
        })?;
        self.rest = rest.strip_prefix('L').unwrap_or(rest);
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numpy_headers() {
        let header =
            parse_header("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }    \n")
                .unwrap();
        assert_eq!(
            header,
            Header {
                descr: "<f8".into(),
                fortran_order: false,
                shape: vec![3, 4]
            }
        );
        assert_eq!(
            parse_header("{\"shape\":(7L,),\"descr\":\"|u1\",\"fortran_order\":True}")
                .unwrap()
                .shape,
            [7]
        );
        assert_eq!(
            parse_header("{'descr': '<i4', 'fortran_order': False, 'shape': ()}")
                .unwrap()
                .shape,
            Vec::<usize>::new()
        );
    }

    #[test]
    fn rejects_malformed_headers() {
        for (text, message) in [
            ("{'descr': '<f8', 'shape': (3,)}", "no 'fortran_order'"),
            (
                "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,)}",
                "structured dtypes",
            ),
            (
                "{'descr': '<f8', 'fortran_order': Maybe, 'shape': (3,)}",
                "True or False",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (-3,)}",
                "bad dimension",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
                "bad dimension",
            ),
            ("{'descr': '<f8", "unterminated string"),
            ("{'descr': '<f8', 'extra': 1}", "unexpected key 'extra'"),
        ] {
            let error = format!("{:#}", parse_header(text).unwrap_err());
            assert!(error.contains(message), "{text}: {error}");
        }
    }

    #[test]
    fn maps_type_strings() {
        assert_eq!(element_type("<f4"), ElementType::Float32);
        assert_eq!(
            element_type("|u1"),
            ElementType::Integer {
                bytes: 1,
                signed: false
            }
        );
        assert_eq!(
            element_type("<i8"),
            ElementType::Integer {
                bytes: 8,
                signed: true
            }
        );
        for unsupported in [">f4", "<f2", "|b1", "<c8", "<i3", "<U5", "O"] {
            assert_eq!(
                element_type(unsupported),
                ElementType::Other(unsupported.into())
            );
        }
    }
}
