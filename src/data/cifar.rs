//! CIFAR-10 and CIFAR-100 in their official binary formats.
//!
//! Each file is a sequence of fixed-size records: the label byte(s), then 3072 pixel
//! bytes (R plane, G plane, B plane, each 32×32 row-major) — already `[3, 32, 32]`.

use super::images::{exists, read_full, MissingFiles, Part, RawImages};
use anyhow::{bail, Context, Result};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// Which CIFAR-100 label to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cifar100Labels {
    /// 100 classes.
    Fine,
    /// 20 superclasses.
    Coarse,
}

const PIXELS: usize = 3 * 32 * 32;

/// The layout of one binary format.
struct Format {
    /// For messages and [`MissingFiles::what`].
    what: &'static str,
    /// The directory the official archive unpacks to; looked in after `dir` itself.
    subdir: &'static str,
    /// The label bytes at the start of each record, in order: (name, number of classes).
    labels: &'static [(&'static str, u8)],
    /// Which of `labels` is returned.
    pick: usize,
}

impl Format {
    fn record_len(&self) -> usize {
        self.labels.len() + PIXELS
    }

    fn record_desc(&self) -> String {
        let names: Vec<String> = self
            .labels
            .iter()
            .map(|(n, _)| format!("{n} byte"))
            .collect();
        format!("{} + 3072 pixel bytes", names.join(" + "))
    }
}

/// CIFAR-10 binary format: `data_batch_1.bin` … `data_batch_5.bin` (Train, concatenated
/// in that order) or `test_batch.bin` (Test), found in `dir` itself or in
/// `dir/cifar-10-batches-bin/`. Records: 1 label byte + 3072 pixel bytes. Labels < 10.
/// Shape `[3, 32, 32]`.
///
/// No file of the part in either place → root error [`MissingFiles`]; some but not all
/// of the training batches → an error naming the missing ones. With `limit`, only the
/// first `limit` records are read.
pub fn read_cifar10(dir: &Path, part: Part, limit: Option<usize>) -> Result<RawImages> {
    let names: Vec<String> = match part {
        Part::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        Part::Test => vec!["test_batch.bin".to_string()],
    };
    let format = Format {
        what: "CIFAR-10 binary",
        subdir: "cifar-10-batches-bin",
        labels: &[("label", 10)],
        pick: 0,
    };
    read_records(&locate(dir, &names, &format)?, &format, limit)
}

/// CIFAR-100 binary format: `train.bin` / `test.bin` in `dir` or
/// `dir/cifar-100-binary/`. Records: coarse label byte, fine label byte, 3072 pixel
/// bytes. Fine labels < 100, coarse < 20 (both are checked, whichever is returned).
/// Shape `[3, 32, 32]`. No file in either place → root error [`MissingFiles`].
pub fn read_cifar100(
    dir: &Path,
    part: Part,
    labels: Cifar100Labels,
    limit: Option<usize>,
) -> Result<RawImages> {
    let name = match part {
        Part::Train => "train.bin",
        Part::Test => "test.bin",
    };
    let format = Format {
        what: "CIFAR-100 binary",
        subdir: "cifar-100-binary",
        labels: &[("coarse label", 20), ("fine label", 100)],
        pick: match labels {
            Cifar100Labels::Coarse => 0,
            Cifar100Labels::Fine => 1,
        },
    };
    read_records(&locate(dir, &[name.to_string()], &format)?, &format, limit)
}

/// The paths of `names`, all in `dir` or all in `dir/<subdir>` (the first place that
/// has all of them). A place holding only some of them is an error rather than a
/// silently smaller data set.
fn locate(dir: &Path, names: &[String], format: &Format) -> Result<Vec<PathBuf>> {
    let mut partial = None;
    for base in [dir.to_path_buf(), dir.join(format.subdir)] {
        let present = names
            .iter()
            .map(|n| exists(&base.join(n)))
            .collect::<Result<Vec<bool>>>()?;
        if present.iter().all(|&p| p) {
            return Ok(names.iter().map(|n| base.join(n)).collect());
        }
        if partial.is_none() && present.iter().any(|&p| p) {
            partial = Some((base, present));
        }
    }
    if let Some((base, present)) = partial {
        let pick = |want: bool| -> Vec<&str> {
            names
                .iter()
                .zip(&present)
                .filter(|(_, &p)| p == want)
                .map(|(n, _)| n.as_str())
                .collect()
        };
        bail!(
            "{}: incomplete {} data set: {} missing (found {}; all of {} are needed)",
            base.display(),
            format.what,
            pick(false).join(", "),
            pick(true).join(", "),
            names.join(", ")
        );
    }
    let mut expected = names.to_vec();
    expected.extend(names.iter().map(|n| format!("{}/{n}", format.subdir)));
    Err(MissingFiles {
        dir: dir.to_path_buf(),
        what: format.what.to_string(),
        expected,
    }
    .into())
}

/// Reads the records of `files`, concatenated in order; with `limit`, only that many
/// from the start (the files must hold at least that many).
fn read_records(files: &[PathBuf], format: &Format, limit: Option<usize>) -> Result<RawImages> {
    let record = format.record_len();
    // Sizes first: a malformed file is reported before anything is read, and one
    // allocation then holds all the pixels.
    let mut opened = Vec::with_capacity(files.len());
    for path in files {
        let file = crate::files::open_regular(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let len = file
            .metadata()
            .with_context(|| format!("reading the size of {}", path.display()))?
            .len();
        let len = usize::try_from(len)
            .with_context(|| format!("{}: {len} bytes do not fit in memory", path.display()))?;
        if len == 0 {
            bail!(
                "{}: empty file; expected {} records of {record} bytes ({})",
                path.display(),
                format.what,
                format.record_desc()
            );
        }
        if len % record != 0 {
            bail!(
                "{}: file size {len} is not a multiple of the record size {record} ({}): {} whole records and {} leftover bytes",
                path.display(),
                format.record_desc(),
                len / record,
                len % record
            );
        }
        opened.push((file, len / record));
    }
    let held: usize = opened.iter().map(|(_, count)| count).sum();
    let total = limit.unwrap_or(held);
    if total > held {
        bail!(
            "{}: hold{} {held} records, fewer than the {total} asked for",
            files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if files.len() == 1 { "s" } else { "" }
        );
    }
    crate::memory::ensure_fits(
        || {
            format!(
                "{}: {total} images of {PIXELS} bytes are",
                files[0].display()
            )
        },
        (total * PIXELS) as u64,
    )?;
    // What the limit leaves of each file.
    let mut left = total;
    let counts: Vec<usize> = opened
        .iter()
        .map(|&(_, count)| {
            let take = count.min(left);
            left -= take;
            take
        })
        .collect();
    let total: usize = counts.iter().sum();
    let mut pixels = vec![0u8; total * PIXELS];
    let mut labels = Vec::with_capacity(total);
    let mut chunks = pixels.chunks_exact_mut(PIXELS);
    let mut label_bytes = [0u8; 2];
    let label_bytes = &mut label_bytes[..format.labels.len()];
    for ((path, (file, held)), &count) in files.iter().zip(opened).zip(&counts) {
        if count == 0 {
            break;
        }
        let mut reader = BufReader::with_capacity(1 << 16, file);
        for i in 0..count {
            let offset = i * record;
            let image = chunks.next().expect("one pixel chunk per counted record");
            reader
                .read_exact(label_bytes)
                .and_then(|()| reader.read_exact(image))
                .with_context(|| {
                    format!(
                        "{}: reading record {i} at byte offset {offset} (the file shrank while being read?)",
                        path.display()
                    )
                })?;
            for (j, (&value, &(name, classes))) in label_bytes.iter().zip(format.labels).enumerate()
            {
                if value >= classes {
                    bail!(
                        "{}: {name} {value} of record {i} (byte offset {}) is out of range: expected < {classes}",
                        path.display(),
                        offset + j
                    );
                }
            }
            labels.push(u32::from(label_bytes[format.pick]));
        }
        if count < held {
            continue;
        }
        // The size was taken before reading: data appended since must not be ignored.
        let mut probe = [0u8; 1];
        if read_full(&mut reader, &mut probe)
            .with_context(|| format!("reading {}", path.display()))?
            > 0
        {
            bail!(
                "{}: the file grew while being read (expected {count} records of {record} bytes)",
                path.display()
            );
        }
    }
    Ok(RawImages {
        pixels,
        labels,
        shape: [3, 32, 32],
    })
}
