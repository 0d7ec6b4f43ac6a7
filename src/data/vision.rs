//! Image data sets read from files: which reader, per-channel normalisation, subsets,
//! and the download fallback when the files are not there.

use super::cifar::{self, Cifar100Labels};
use super::idx;
use super::images::{MissingFiles, Part, RawImages};
use super::{HostDataset, HostSplit};
use crate::spec::{Cifar100LabelsSpec, DatasetSpec};
use anyhow::{bail, Result};
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
    let files = spec.files().expect("an image data set");
    let read = |part| read_part(spec, &files.dir, part);
    let (train, test) = match (read(Part::Train), read(Part::Test)) {
        (Ok(train), Ok(test)) => (train, test),
        (train, test) => {
            let missing = |r: &Result<RawImages>| {
                r.as_ref()
                    .err()
                    .is_some_and(|e| e.downcast_ref::<MissingFiles>().is_some())
            };
            if !missing(&train) && !missing(&test) {
                return Err(train.and(test).unwrap_err());
            }
            let (train_missing, test_missing) = (missing(&train), missing(&test));
            let first_missing =
                if train_missing { train } else { test }.expect_err("a missing part");
            let downloaded = download(spec, &files.dir)
                .map_err(|e| no_files_error(spec, &files.dir, first_missing, e))?;
            let pick = |local: Result<RawImages>, fetched: RawImages, is_missing: bool| {
                if is_missing {
                    Ok(fetched)
                } else {
                    local
                }
            };
            (
                pick(read(Part::Train), downloaded.0, train_missing)?,
                pick(read(Part::Test), downloaded.1, test_missing)?,
            )
        }
    };
    let (mean, std) = normalisation(spec);
    Ok(HostDataset {
        train: normalise(
            &subset(train, files.train_subset, "train_subset")?,
            mean,
            std,
        ),
        test: normalise(&subset(test, files.test_subset, "test_subset")?, mean, std),
        classes: classes(spec),
    })
}

fn read_part(spec: &DatasetSpec, dir: &Path, part: Part) -> Result<RawImages> {
    match spec {
        DatasetSpec::Mnist(_) | DatasetSpec::FashionMnist(_) => idx::read_mnist(dir, part),
        DatasetSpec::Cifar10(_) => cifar::read_cifar10(dir, part),
        DatasetSpec::Cifar100(s) => {
            let labels = match s.labels {
                Cifar100LabelsSpec::Fine => Cifar100Labels::Fine,
                Cifar100LabelsSpec::Coarse => Cifar100Labels::Coarse,
            };
            cifar::read_cifar100(dir, part, labels)
        }
        DatasetSpec::Synthetic(_) => unreachable!("synthetic data is generated"),
    }
}

/// The first `n` samples, in file order.
fn subset(raw: RawImages, n: Option<usize>, key: &str) -> Result<RawImages> {
    let Some(n) = n else { return Ok(raw) };
    if n > raw.len() {
        bail!(
            "dataset.{key} is {n}, but the split has only {} samples",
            raw.len()
        );
    }
    let d: usize = raw.shape.iter().product();
    Ok(RawImages {
        pixels: raw.pixels[..n * d].to_vec(),
        labels: raw.labels[..n].to_vec(),
        shape: raw.shape,
    })
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

/// The files could not be read and could not be downloaded: say where to put them.
fn no_files_error(
    spec: &DatasetSpec,
    dir: &Path,
    missing: anyhow::Error,
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
        "{missing}; {download:#}. Put {how} in {}, or point dataset.dir at them",
        dir.display()
    )
}

/// Fetches both parts from the Hugging Face hub through candle-datasets and caches them
/// as uncompressed IDX files in `dir`, so the next run reads them locally.
#[cfg(feature = "download")]
fn download(spec: &DatasetSpec, dir: &Path) -> Result<(RawImages, RawImages)> {
    use anyhow::Context;
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
    let train = to_raw(&fetched.train_images, &fetched.train_labels)?;
    let test = to_raw(&fetched.test_images, &fetched.test_labels)?;
    for (raw, part) in [(&train, Part::Train), (&test, Part::Test)] {
        idx::write_mnist(dir, part, raw)
            .with_context(|| format!("caching the downloaded {} files", spec.name()))?;
    }
    tracing::info!(
        "downloaded {} and saved it in {}",
        spec.name(),
        dir.display()
    );
    Ok((train, test))
}

#[cfg(not(feature = "download"))]
fn download(spec: &DatasetSpec, _dir: &Path) -> Result<(RawImages, RawImages)> {
    bail!(
        "this smoothlab was built without the `download` feature, so it cannot fetch {}",
        spec.name()
    )
}
