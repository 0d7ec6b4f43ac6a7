//! IDX files (the MNIST / Fashion-MNIST format), gzipped or not.
//!
//! An IDX file is a 4-byte magic number (`00 00`, a type code, a dimension count), one
//! big-endian u32 per dimension, then the data in row-major order.

use super::images::{exists, read_full, MissingFiles, Part, RawImages};
use anyhow::{anyhow, bail, Context, Result};
use flate2::bufread::MultiGzDecoder;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// An IDX array of unsigned bytes (type code 0x08): dims and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Type code of unsigned bytes, the only one MNIST-format files use.
const UBYTE: u8 = 0x08;

/// Counts the bytes handed out, so that a failing gzip stream can say how far it got.
struct Counting<R> {
    inner: R,
    count: u64,
}

/// The most one read asks for. flate2 drops what a read decompressed before it hit an
/// error, so smaller reads keep the count of good bytes within this of the failure.
const READ_CHUNK: usize = 64 << 10;

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len().min(READ_CHUNK);
        let n = self.inner.read(&mut buf[..len])?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Bytes after the data that are counted for the message before giving up: a gzip
/// stream can inflate to far more than its size, and only the count's order matters.
const TRAILING_COUNTED: u64 = 1 << 20;

/// An IDX file whose header has been read: the reader is at the first data byte, and
/// nothing has been allocated for the data yet. Reading the headers of both files of a
/// data set before the data of either lets a mismatch be reported from the headers
/// alone, and a header that promises more than memory holds be refused unread.
struct IdxFile {
    shown: String,
    reader: Counting<Box<dyn Read>>,
    dims: Vec<usize>,
    /// Whether the file is gzipped (byte offsets then refer to the decompressed data).
    gzip: bool,
    /// The size of the file on disk.
    file_len: u64,
}

impl IdxFile {
    fn open(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        let file = crate::files::open_regular(path).with_context(|| format!("opening {shown}"))?;
        let file_len = file
            .metadata()
            .with_context(|| format!("reading the size of {shown}"))?
            .len();
        let mut buffered = BufReader::with_capacity(1 << 16, file);
        let gzip = buffered
            .fill_buf()
            .with_context(|| format!("reading {shown}"))?
            .starts_with(&[0x1f, 0x8b]);
        let inner: Box<dyn Read> = if gzip {
            // Multi-member, as gzip(1) reads it; it also rejects garbage after the stream.
            Box::new(MultiGzDecoder::new(buffered))
        } else {
            Box::new(buffered)
        };
        let mut file = IdxFile {
            shown,
            reader: Counting { inner, count: 0 },
            dims: Vec::new(),
            gzip,
            file_len,
        };
        file.dims = file.read_header()?;
        file.data_len()?;
        Ok(file)
    }

    fn header_len(&self) -> usize {
        4 + 4 * self.dims.len()
    }

    /// Says which bytes an offset counts, for messages.
    fn offsets(&self) -> &'static str {
        if self.gzip {
            " of the decompressed data"
        } else {
            ""
        }
    }

    fn failed(&self, e: io::Error) -> anyhow::Error {
        let (shown, count) = (&self.shown, self.reader.count);
        let what = if self.gzip {
            format!("{shown}: gzip stream failed after {count} decompressed bytes")
        } else {
            format!("{shown}: reading failed after {count} bytes")
        };
        anyhow::Error::new(e).context(what)
    }

    fn read_header(&mut self) -> Result<Vec<usize>> {
        let shown = self.shown.clone();
        let decompressed = if self.gzip { " (decompressed)" } else { "" };
        let mut magic = [0u8; 4];
        let got = read_full(&mut self.reader, &mut magic).map_err(|e| self.failed(e))?;
        if got < 4 {
            bail!("{shown}: too short for an IDX file: expected a 4-byte magic number, found {got} bytes{decompressed}");
        }
        let mut problems = Vec::new();
        if magic[..2] != [0, 0] {
            problems.push("bytes 0..2 must be 00 00".to_string());
        }
        if magic[2] != UBYTE {
            problems.push(format!(
                "type code (byte 2) 0x{:02x} is not 0x08 (unsigned byte)",
                magic[2]
            ));
        }
        if !(1..=4).contains(&magic[3]) {
            problems.push(format!(
                "dimension count (byte 3) {} is not in 1..=4",
                magic[3]
            ));
        }
        if !problems.is_empty() {
            bail!(
                "{shown}: not an IDX file of unsigned bytes: bytes 0..4{decompressed} are {:02x} {:02x} {:02x} {:02x}; {}",
                magic[0],
                magic[1],
                magic[2],
                magic[3],
                problems.join("; ")
            );
        }
        let ndims = magic[3] as usize;
        let header_len = 4 + 4 * ndims;
        let mut raw_dims = [0u8; 16];
        let got =
            read_full(&mut self.reader, &mut raw_dims[..4 * ndims]).map_err(|e| self.failed(e))?;
        if got < 4 * ndims {
            bail!(
                "{shown}: truncated IDX header: expected {header_len} bytes (magic number and {ndims} dimensions of 4 bytes), found {}{decompressed}",
                4 + got
            );
        }
        Ok(raw_dims[..4 * ndims]
            .chunks_exact(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .collect())
    }

    /// The number of data bytes the header describes.
    fn data_len(&self) -> Result<usize> {
        self.dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                anyhow!(
                    "{}: dims {:?} in the header describe more bytes than fit in memory",
                    self.shown,
                    self.dims
                )
            })
    }

    /// The data of the first `records` records (along the first dimension). All of them
    /// are read through the end of the file, which must end there (and a gzip stream's
    /// checksum then is verified); fewer are read and the rest left unread.
    fn read_records(mut self, records: usize) -> Result<Vec<u8>> {
        let shown = self.shown.clone();
        let (dims, header_len) = (self.dims.clone(), self.header_len());
        let all = self.data_len()?;
        let wanted = if records >= dims[0] {
            all
        } else {
            records * (all / dims[0].max(1))
        };
        crate::memory::ensure_fits(
            || format!("{shown}: its header (dims {dims:?}) describes"),
            wanted as u64,
        )?;
        // Preallocate no more than the file can hold, so that a corrupt header cannot
        // ask for an absurd allocation; a gzip stream's data arrives in steps.
        let capacity = if self.gzip {
            wanted.min(64 << 20)
        } else {
            wanted.min(usize::try_from(self.file_len).unwrap_or(usize::MAX))
        };
        let mut data = Vec::with_capacity(capacity);
        (&mut self.reader)
            .take(wanted as u64)
            .read_to_end(&mut data)
            .map_err(|e| self.failed(e))?;
        if data.len() < wanted {
            let counting = if self.gzip {
                " (counting decompressed bytes)"
            } else {
                ""
            };
            bail!(
                "{shown}: truncated IDX file: expected {all} bytes of data after the {header_len}-byte header (dims {dims:?}), found {}{counting}",
                data.len()
            );
        }
        if wanted < all {
            return Ok(data);
        }
        // Reading on to the end also makes the gzip decoder check its CRC and length trailer.
        let decompressed = if self.gzip { " (decompressed)" } else { "" };
        let extra = io::copy(&mut (&mut self.reader).take(TRAILING_COUNTED), &mut io::sink())
            .map_err(|e| {
                if self.gzip {
                    // All the data came out: a checksum mismatch (damage anywhere), or a
                    // damaged trailer, or bytes after the stream that are not another
                    // gzip member.
                    anyhow::Error::new(e).context(format!(
                        "{shown}: gzip stream failed after {} decompressed bytes, i.e. all of the IDX data, at its end-of-stream checks",
                        self.reader.count
                    ))
                } else {
                    self.failed(e)
                }
            })?;
        if extra > 0 {
            let count = if extra < TRAILING_COUNTED {
                extra.to_string()
            } else {
                format!("at least {extra}")
            };
            bail!(
                "{shown}: {count} unexpected bytes{decompressed} after the data: dims {dims:?} make the file end after {header_len} + {all} bytes"
            );
        }
        Ok(data)
    }
}

/// Reads an IDX file, gzipped or not (detected by the gzip magic bytes `1f 8b`, not by
/// the extension). The whole file must be the array: a short or overlong file is an
/// error, and a gzip stream is read to its end so that its checksum is verified.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let file = IdxFile::open(path)?;
    let dims = file.dims.clone();
    let data = file.read_records(usize::MAX)?;
    Ok(IdxArray { dims, data })
}

/// The path of IDX file `name` in `dir`, as-is or with `.gz` appended. When both exist
/// the uncompressed one wins: it is what a user who decompressed in place (or the
/// download cache, which writes uncompressed files) means to be read, and it reads faster.
fn find_idx(dir: &Path, name: &str) -> Result<Option<PathBuf>> {
    for candidate in [dir.join(name), dir.join(format!("{name}.gz"))] {
        if exists(&candidate)? {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

const SIDE: usize = 28;
const CLASSES: u8 = 10;

/// MNIST-format data set (MNIST and Fashion-MNIST share it) in `dir`: files
/// `train-images-idx3-ubyte`, `train-labels-idx1-ubyte` (Part::Train) or
/// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte` (Part::Test), each as-is or with
/// `.gz` appended; when both variants exist the uncompressed one is read.
/// Images must be 28×28, labels < 10, counts equal and non-zero. Returns shape `[1, 28, 28]`.
/// With `limit`, only the first `limit` images and labels are read (and checked): the
/// files' headers must hold at least that many.
///
/// If neither variant of the images or of the labels file exists, the root error is
/// [`MissingFiles`] (`what` = "MNIST-format", `expected` = the names of the missing file's
/// variants).
pub fn read_mnist(dir: &Path, part: Part, limit: Option<usize>) -> Result<RawImages> {
    let (images_name, labels_name) = mnist_file_names(part);
    let images_path = find_idx(dir, &images_name)?;
    let labels_path = find_idx(dir, &labels_name)?;
    let (images_path, labels_path) = match (images_path, labels_path) {
        (Some(i), Some(l)) => (i, l),
        (images, labels) => {
            let mut expected = Vec::new();
            for (found, name) in [(images, images_name), (labels, labels_name)] {
                if found.is_none() {
                    expected.push(name.clone());
                    expected.push(format!("{name}.gz"));
                }
            }
            return Err(MissingFiles {
                dir: dir.to_path_buf(),
                what: "MNIST-format".to_string(),
                expected,
            }
            .into());
        }
    };

    // Both headers before the data of either: a mismatch is reported from the headers
    // alone, and only what is needed is then read.
    let labels = IdxFile::open(&labels_path)?;
    if labels.dims.len() != 1 {
        bail!(
            "{}: expected a labels file with dims [N], found dims {:?}",
            labels_path.display(),
            labels.dims
        );
    }
    let n_labels = labels.dims[0];
    let images = IdxFile::open(&images_path)?;
    let dims = &images.dims;
    if dims.len() != 3 || dims[1] != SIDE || dims[2] != SIDE {
        bail!(
            "{}: expected images of 28×28 pixels (dims [N, 28, 28]), found dims {dims:?}",
            images_path.display()
        );
    }
    if dims[0] != n_labels {
        bail!(
            "image and label counts differ: {} holds {} images but {} holds {n_labels} labels",
            images_path.display(),
            dims[0],
            labels_path.display()
        );
    }
    if n_labels == 0 {
        bail!("{}: holds 0 images", images_path.display());
    }
    let records = limit.unwrap_or(n_labels);
    if records > n_labels {
        bail!(
            "{}: holds {n_labels} images, fewer than the {records} asked for",
            images_path.display()
        );
    }

    // Both files' data must fit at once, before the first is read.
    crate::memory::ensure_fits(
        || {
            format!(
                "{} and {}: their headers (dims {:?} and {dims:?}) describe",
                labels_path.display(),
                images_path.display(),
                labels.dims
            )
        },
        (records as u64).saturating_mul(1 + (SIDE * SIDE) as u64),
    )?;
    let (label_header, label_offsets) = (labels.header_len(), labels.offsets());
    let label_bytes = labels.read_records(records)?;
    if let Some(i) = label_bytes.iter().position(|&l| l >= CLASSES) {
        bail!(
            "{}: label {} of record {i} (byte offset {}{label_offsets}) is out of range: expected < {CLASSES}",
            labels_path.display(),
            label_bytes[i],
            label_header + i,
        );
    }
    Ok(RawImages {
        pixels: images.read_records(records)?,
        labels: label_bytes.iter().map(|&l| u32::from(l)).collect(),
        shape: [1, SIDE, SIDE],
    })
}

/// Writes `raw` as the two uncompressed MNIST-format IDX files of `part` in `dir`
/// (atomically), under the names [`read_mnist`] looks for. Labels must be < 256.
pub fn write_mnist(dir: &Path, part: Part, raw: &RawImages) -> Result<()> {
    let (images_name, labels_name) = mnist_file_names(part);
    let n = raw.len() as u32;
    let [_, h, w] = raw.shape;
    let mut images = [0x0803u32, n, h as u32, w as u32]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect::<Vec<u8>>();
    images.extend_from_slice(&raw.pixels);
    let mut labels = [0x0801u32, n]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect::<Vec<u8>>();
    labels.extend(raw.labels.iter().map(|&l| l as u8));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    crate::atomic::write_bytes(&dir.join(images_name), &images)?;
    crate::atomic::write_bytes(&dir.join(labels_name), &labels)
}

/// The uncompressed names of the images and labels files of `part`.
pub(crate) fn mnist_file_names(part: Part) -> (String, String) {
    let prefix = match part {
        Part::Train => "train",
        Part::Test => "t10k",
    };
    (
        format!("{prefix}-images-idx3-ubyte"),
        format!("{prefix}-labels-idx1-ubyte"),
    )
}
