//! Image data sets read from files: which reader, per-channel normalisation, subsets,
//! and the download fallback when the files are not there.

use super::cifar::{self, Cifar100Labels};
use super::idx;
use super::images::{MissingFiles, Part, RawImages};
use super::{HostDataset, HostSplit};
use crate::spec::{Cifar100LabelsSpec, DatasetSpec};
use anyhow::Result;
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
        train: normalise(train, mean, std),
        test: normalise(test, mean, std),
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
    let keys = |part| match part {
        Part::Train => (files.train_subset, "train_subset"),
        Part::Test => (files.test_subset, "test_subset"),
    };
    let local = |dir: &Path, part| {
        let (limit, key) = keys(part);
        read_part(spec, dir, part, limit, key)
    };
    // Downloaded files are read like local ones, subsets included.
    read_or_download(
        spec,
        &files.dir,
        local(&files.dir, Part::Train),
        local(&files.dir, Part::Test),
        |part| download(spec, &files.dir, part, |dir| local(dir, part)),
    )
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

fn normalise(raw: RawImages, mean: &[f32], std: &[f32]) -> HostSplit {
    let [channels, h, w] = raw.shape;
    let plane = h * w;
    // Sized once: a collected `flat_map` has no exact length and would grow by
    // doubling, touching up to twice the split's size while the data set loads.
    let mut features = Vec::with_capacity(raw.pixels.len());
    for (i, pixels) in raw.pixels.chunks_exact(plane).enumerate() {
        let c = i % channels;
        let (m, s) = (mean[c], std[c]);
        features.extend(pixels.iter().map(|&p| (p as f32 / 255.0 - m) / s));
    }
    HostSplit {
        features,
        labels: raw.labels,
        sample_shape: raw.shape.to_vec(),
    }
}

/// The parts read from `dir` where they are there, downloaded where they are missing.
/// Only missing parts are downloaded: a part read locally stays as it is on disk. A part
/// that is there but unreadable (corrupt, truncated, no permission) is an error of its
/// own, and nothing is downloaded over it.
fn read_or_download(
    spec: &DatasetSpec,
    dir: &Path,
    train: Result<RawImages>,
    test: Result<RawImages>,
    fetch: impl Fn(Part) -> Result<RawImages>,
) -> Result<(RawImages, RawImages)> {
    let (train, test) = (present_or_missing(train)?, present_or_missing(test)?);
    let fetched = |local: Result<RawImages>, part| match local {
        Ok(local) => Ok(local),
        Err(missing) => fetch(part).map_err(|e| no_files_error(spec, dir, &missing.to_string(), e)),
    };
    Ok((fetched(train, Part::Train)?, fetched(test, Part::Test)?))
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
        "{missing}; {download:#}. Put {how} in {}, or point dataset.dir at them",
        dir.display()
    )
}

#[cfg(feature = "download")]
use super::download::fetch as download;

#[cfg(not(feature = "download"))]
fn download(
    spec: &DatasetSpec,
    _dir: &Path,
    _part: Part,
    _read: impl FnOnce(&Path) -> Result<RawImages>,
) -> Result<RawImages> {
    anyhow::bail!(
        "this smoothlab was built without the `download` feature, so it cannot fetch {}",
        spec.name()
    )
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
    fn only_the_missing_part_is_downloaded() {
        let fetched = RefCell::new(vec![]);
        let (train, test) = read_or_download(
            &spec(),
            Path::new("/data"),
            Ok(images(1)),
            Err(missing()),
            |part| {
                fetched.borrow_mut().push(part);
                Ok(images(3))
            },
        )
        .unwrap();
        assert_eq!((train.pixels[0], test.pixels[0]), (1, 3));
        assert_eq!(fetched.into_inner(), [Part::Test]);
    }

    #[test]
    fn a_corrupt_part_is_reported_and_nothing_is_downloaded() {
        let (train, test) = (Err(missing()), Err(anyhow::anyhow!("bytes 0..4 are wrong")));
        let err = read_or_download(&spec(), Path::new("/data"), train, test, |_| {
            panic!("must not download")
        })
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
            |_| anyhow::bail!("no network"),
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
}
