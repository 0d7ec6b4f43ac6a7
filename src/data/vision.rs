//! Image data sets read from files: which reader, per-channel normalisation, subsets,
//! and the download fallback when the files are not there.

use super::cifar::{self, Cifar100Labels};
use super::idx;
use super::images::{MissingFiles, Part, RawImages};
use super::{HostDataset, HostSplit};
use crate::spec::{Cifar100LabelsSpec, DatasetSpec};
use anyhow::{bail, Context, Result};
use std::path::Path;

/// Per-channel mean and standard deviation of the training images' pixels in [0, 1]
/// (the constants the reference PyTorch code uses; CIFAR's are the true per-channel
/// standard deviations, not the often copied 0.2023/0.1994/0.2010).
pub fn normalisation(spec: &DatasetSpec) -> (&'static [f32], &'static [f32]) {
    match spec {
        DatasetSpec::Mnist(_) => (&[0.1307], &[0.3081]),
        DatasetSpec::FashionMnist(_) => (&[0.2860], &[0.3530]),
        DatasetSpec::Cifar10(_) => (&[0.4914, 0.4822, 0.4465], &[0.2470, 0.2435, 0.2616]),
        DatasetSpec::Cifar100(_) => (&[0.5071, 0.4865, 0.4409], &[0.2673, 0.2564, 0.2762]),
        DatasetSpec::Synthetic(_) => (&[], &[]),
    }
}

/// Number of classes of an image data set.
fn classes(spec: &DatasetSpec) -> usize {
    match spec {
        DatasetSpec::Cifar100(s) if s.labels == Cifar100LabelsSpec::Coarse => 20,
        DatasetSpec::Cifar100(_) => 100,
        _ => 10,
    }
}

/// Reads (or downloads) the training and test images of `spec`, applies the subsets and
/// normalises every pixel to `(p/255 − mean_c) / std_c`.
pub fn load(spec: &DatasetSpec) -> Result<HostDataset> {
    let (train, test) = read(spec)?;
    let (mean, std) = normalisation(spec);
    Ok(HostDataset {
        train: normalise(&train, mean, std),
        test: normalise(&test, mean, std),
        classes: classes(spec),
    })
}

/// What [`load`] would load, read and checked but not kept.
pub fn check(spec: &DatasetSpec) -> Result<super::Extent> {
    let (train, test) = read(spec)?;
    Ok(super::Extent {
        train: train.len(),
        test: test.len(),
        sample_shape: train.shape.to_vec(),
        classes: classes(spec),
    })
}

/// The training and test images of `spec`, read (or downloaded), subsets applied.
fn read(spec: &DatasetSpec) -> Result<(RawImages, RawImages)> {
    let files = spec.files().expect("an image data set");
    let (train, test) = read_or_download(
        spec,
        &files.dir,
        read_part(
            spec,
            &files.dir,
            Part::Train,
            files.train_subset,
            "train_subset",
        ),
        read_part(
            spec,
            &files.dir,
            Part::Test,
            files.test_subset,
            "test_subset",
        ),
        || download(spec),
        |part, raw| cache(spec, &files.dir, part, raw),
    )?;
    Ok((
        subset(train, files.train_subset, "train_subset")?,
        subset(test, files.test_subset, "test_subset")?,
    ))
}

/// The images of `part`, only the first `limit` of them when a subset is asked for
/// (`key` names it in messages).
fn read_part(
    spec: &DatasetSpec,
    dir: &Path,
    part: Part,
    limit: Option<usize>,
    key: &str,
) -> Result<RawImages> {
    let read = match spec {
        DatasetSpec::Mnist(_) | DatasetSpec::FashionMnist(_) => idx::read_mnist(dir, part, limit),
        DatasetSpec::Cifar10(_) => cifar::read_cifar10(dir, part, limit),
        DatasetSpec::Cifar100(s) => {
            let labels = match s.labels {
                Cifar100LabelsSpec::Fine => Cifar100Labels::Fine,
                Cifar100LabelsSpec::Coarse => Cifar100Labels::Coarse,
            };
            cifar::read_cifar100(dir, part, labels, limit)
        }
        DatasetSpec::Synthetic(_) => unreachable!("synthetic data is generated"),
    };
    match (read, limit) {
        (Err(e), Some(n)) if e.downcast_ref::<MissingFiles>().is_none() => {
            Err(e.context(format!("dataset.{key} is {n}")))
        }
        (read, _) => read,
    }
}

/// The first `n` samples, in file order (a read with a limit already holds just these;
/// a download holds them all).
fn subset(mut raw: RawImages, n: Option<usize>, key: &str) -> Result<RawImages> {
    let Some(n) = n else { return Ok(raw) };
    if n > raw.len() {
        bail!(
            "dataset.{key} is {n}, but the split has only {} samples",
            raw.len()
        );
    }
    let d: usize = raw.shape.iter().product();
    raw.pixels.truncate(n * d);
    raw.labels.truncate(n);
    Ok(raw)
}

fn normalise(raw: &RawImages, mean: &[f32], std: &[f32]) -> HostSplit {
    let [channels, h, w] = raw.shape;
    let plane = h * w;
    let features = raw
        .pixels
        .chunks_exact(plane)
        .enumerate()
        .flat_map(|(i, pixels)| {
            let c = i % channels;
            let (m, s) = (mean[c], std[c]);
            pixels.iter().map(move |&p| (p as f32 / 255.0 - m) / s)
        })
        .collect();
    HostSplit {
        features,
        labels: raw.labels.clone(),
        sample_shape: raw.shape.to_vec(),
    }
}

/// The parts read from `dir` where they are there, the downloaded ones where they are
/// missing. Only missing parts are downloaded and cached: a part read locally stays as
/// it is on disk. A part that is there but unreadable (corrupt, truncated, no
/// permission) is an error of its own, and nothing is downloaded over it.
fn read_or_download(
    spec: &DatasetSpec,
    dir: &Path,
    train: Result<RawImages>,
    test: Result<RawImages>,
    fetch: impl FnOnce() -> Result<(RawImages, RawImages)>,
    cache: impl Fn(Part, &RawImages) -> Result<()>,
) -> Result<(RawImages, RawImages)> {
    let (train, test) = match (present_or_missing(train)?, present_or_missing(test)?) {
        (Ok(train), Ok(test)) => return Ok((train, test)),
        pair => pair,
    };
    let missing = train
        .as_ref()
        .err()
        .or(test.as_ref().err())
        .map(ToString::to_string)
        .unwrap_or_default();
    let (fetched_train, fetched_test) =
        fetch().map_err(|e| no_files_error(spec, dir, &missing, e))?;
    let keep = |local: Result<RawImages>, fetched: RawImages, part: Part| match local {
        Ok(local) => local,
        Err(_) => {
            // The data is in memory either way; a read-only `dir` only costs the next
            // run another download.
            if let Err(e) = cache(part, &fetched) {
                tracing::warn!("{e:#}; the downloaded data is used without a local copy");
            }
            fetched
        }
    };
    Ok((
        keep(train, fetched_train, Part::Train),
        keep(test, fetched_test, Part::Test),
    ))
}

/// Splits a read into "there" (`Ok(Ok)`), "missing, may be downloaded" (`Ok(Err)`) and
/// any other failure (`Err`).
fn present_or_missing(read: Result<RawImages>) -> Result<Result<RawImages>> {
    match read {
        Err(e) if e.downcast_ref::<MissingFiles>().is_none() => Err(e),
        read => Ok(read),
    }
}

/// The files could not be read and could not be downloaded: say where to put them.
fn no_files_error(
    spec: &DatasetSpec,
    dir: &Path,
    missing: &str,
    download: anyhow::Error,
) -> anyhow::Error {
    let how = match spec {
        DatasetSpec::Mnist(_) => "the four MNIST files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; gzipped or not)",
        DatasetSpec::FashionMnist(_) => "the four Fashion-MNIST files (same names as MNIST's, from https://github.com/zalandoresearch/fashion-mnist)",
        DatasetSpec::Cifar10(_) => "the contents of https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz (data_batch_1.bin … data_batch_5.bin, test_batch.bin)",
        DatasetSpec::Cifar100(_) => "the contents of https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz (train.bin, test.bin)",
        DatasetSpec::Synthetic(_) => unreachable!("synthetic data is generated"),
    };
    anyhow::anyhow!(
        "{missing}; {}. Put {how} in {}, or point dataset.dir at them",
        said_once(&format!("{download:#}")),
        dir.display()
    )
}

/// `text` with each repeat of the part before it left out: an error chain whose layers
/// each quote the one below (the HTTP client's "for url (U)", then the hub's "(U)"),
/// said once.
fn said_once(text: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split(": ") {
        if parts.last() != Some(&part) {
            parts.push(part);
        }
    }
    let mut joined = parts.join(": ");
    // " (U) (U)" → " (U)".
    let mut search = 0;
    while let Some(open) = joined[search..].find(" (").map(|i| i + search) {
        let Some(close) = joined[open..].find(')').map(|i| i + open + 1) else {
            break;
        };
        let group = joined[open..close].to_string();
        if joined[close..].starts_with(&group) {
            joined.replace_range(close..close + group.len(), "");
        } else {
            search = open + 2;
        }
    }
    joined
}

/// Fetches both parts from the Hugging Face hub through candle-datasets (whose loaders
/// fetch both at once).
#[cfg(feature = "download")]
fn download(spec: &DatasetSpec) -> Result<(RawImages, RawImages)> {
    use candle_datasets::vision;
    let fetched = match spec {
        DatasetSpec::Mnist(_) => vision::mnist::load(),
        DatasetSpec::FashionMnist(_) => vision::fashion_mnist::load(),
        // candle-datasets' CIFAR-10 hub loader lays the decoded HWC pixels out as CHW
        // and divides u8 pixels by 255 in u8 (all but white become 0): not usable.
        _ => bail!(
            "smoothlab does not download {} (no correct hub loader)",
            spec.name()
        ),
    };
    let fetched = fetched
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("downloading {} from the Hugging Face hub", spec.name()))?;
    let to_raw =
        |images: &candle_core::Tensor, labels: &candle_core::Tensor| -> Result<RawImages> {
            let pixels = (images.flatten_all()? * 255.0)?
                .round()?
                .clamp(0.0, 255.0)?
                .to_dtype(candle_core::DType::U8)?
                .to_vec1::<u8>()?;
            let labels = labels.to_dtype(candle_core::DType::U32)?.to_vec1::<u32>()?;
            Ok(RawImages {
                pixels,
                labels,
                shape: [1, 28, 28],
            })
        };
    tracing::info!("downloaded {}", spec.name());
    Ok((
        to_raw(&fetched.train_images, &fetched.train_labels)?,
        to_raw(&fetched.test_images, &fetched.test_labels)?,
    ))
}

#[cfg(not(feature = "download"))]
fn download(spec: &DatasetSpec) -> Result<(RawImages, RawImages)> {
    bail!(
        "this smoothlab was built without the `download` feature, so it cannot fetch {}",
        spec.name()
    )
}

/// Saves a downloaded part in `dir` in the format its reader reads (uncompressed IDX for
/// the MNIST family, the only data sets that are downloaded), so the next run reads it.
fn cache(spec: &DatasetSpec, dir: &Path, part: Part, raw: &RawImages) -> Result<()> {
    match spec {
        DatasetSpec::Mnist(_) | DatasetSpec::FashionMnist(_) => {
            idx::write_mnist(dir, part, raw).with_context(|| {
                format!(
                    "caching the downloaded {} files in {}",
                    spec.name(),
                    dir.display()
                )
            })?;
            tracing::info!(
                "saved the downloaded {} files in {}",
                spec.name(),
                dir.display()
            );
            Ok(())
        }
        _ => bail!("smoothlab does not cache downloaded {} files", spec.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::MnistSpec;
    use std::cell::RefCell;

    fn images(pixel: u8) -> RawImages {
        RawImages {
            pixels: vec![pixel; 4],
            labels: vec![1],
            shape: [1, 2, 2],
        }
    }

    fn missing() -> anyhow::Error {
        MissingFiles {
            dir: "/data".into(),
            what: "MNIST-format".into(),
            expected: vec!["t10k-images-idx3-ubyte".into()],
        }
        .into()
    }

    fn spec() -> DatasetSpec {
        DatasetSpec::Mnist(MnistSpec::default())
    }

    #[test]
    fn a_chain_that_repeats_itself_is_said_once() {
        assert_eq!(
            said_once("a: b: b: error for url (https://x/y) (https://x/y). More (z)"),
            "a: b: error for url (https://x/y). More (z)"
        );
        assert_eq!(said_once("plain"), "plain");
        assert_eq!(said_once("unclosed (x"), "unclosed (x");
    }

    #[test]
    fn only_the_missing_part_is_taken_from_the_download_and_cached() {
        let cached = RefCell::new(vec![]);
        let (train, test) = read_or_download(
            &spec(),
            Path::new("/data"),
            Ok(images(1)),
            Err(missing()),
            || Ok((images(2), images(3))),
            |part, raw| {
                cached.borrow_mut().push((part, raw.pixels[0]));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!((train.pixels[0], test.pixels[0]), (1, 3));
        assert_eq!(cached.into_inner(), [(Part::Test, 3)]);
    }

    #[test]
    fn a_corrupt_part_is_reported_and_nothing_is_downloaded() {
        let (train, test) = (Err(missing()), Err(anyhow::anyhow!("bytes 0..4 are wrong")));
        let err = read_or_download(
            &spec(),
            Path::new("/data"),
            train,
            test,
            || panic!("must not download"),
            |_, _| panic!("must not cache"),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "bytes 0..4 are wrong");
    }

    #[test]
    fn a_failed_download_says_what_is_missing_and_where_to_put_it() {
        let err = read_or_download(
            &spec(),
            Path::new("/data"),
            Ok(images(1)),
            Err(missing()),
            || bail!("no network"),
            |_, _| panic!("must not cache"),
        )
        .unwrap_err();
        let message = err.to_string();
        for expected in [
            "/data: no MNIST-format files here",
            "no network",
            "Put the four MNIST files",
            "in /data, or point dataset.dir at them",
        ] {
            assert!(message.contains(expected), "{expected:?} in {message}");
        }
    }

    #[test]
    fn a_failed_cache_write_still_returns_the_downloaded_data() {
        let (train, test) = read_or_download(
            &spec(),
            Path::new("/data"),
            Err(missing()),
            Err(missing()),
            || Ok((images(2), images(3))),
            |_, _| bail!("read-only file system"),
        )
        .unwrap();
        assert_eq!((train.pixels[0], test.pixels[0]), (2, 3));
    }
}
