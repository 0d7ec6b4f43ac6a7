//! Data sets: generation or loading on the host, the seeded validation split, and the
//! device-resident tensors that training indexes into.

pub mod cifar;
#[cfg(feature = "download")]
mod download;
pub mod idx;
pub mod images;
mod synthetic;
pub mod vision;

pub use synthetic::generate as generate_synthetic;

use crate::rng::{seeded, Stream};
use crate::spec::DatasetSpec;
use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Host-side samples: row-major features and labels.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSplit {
    pub features: Vec<f32>,
    pub labels: Vec<u32>,
    /// Shape of one sample (e.g. `[32]` or `[1, 28, 28]`).
    pub sample_shape: Vec<usize>,
}

impl HostSplit {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// The samples at `indices`, in that order.
    fn select(&self, indices: &[usize]) -> HostSplit {
        let d = self.sample_len();
        let mut features = Vec::with_capacity(indices.len() * d);
        for &i in indices {
            features.extend_from_slice(&self.features[i * d..(i + 1) * d]);
        }
        HostSplit {
            features,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            sample_shape: self.sample_shape.clone(),
        }
    }

    /// Keeps only the samples at the ascending `indices`, moving each forward in place:
    /// no second copy of a split that may be most of the data set.
    fn retain_sorted(&mut self, indices: &[usize]) {
        debug_assert!(indices.windows(2).all(|w| w[0] < w[1]));
        let d = self.sample_len();
        for (kept, &i) in indices.iter().enumerate() {
            // kept ≤ i, so the source row has not been overwritten yet.
            self.features.copy_within(i * d..(i + 1) * d, kept * d);
            self.labels[kept] = self.labels[i];
        }
        self.features.truncate(indices.len() * d);
        self.labels.truncate(indices.len());
    }
}

/// One split on the device: `x` is f32 `[n, sample_shape...]`, `y` is u32 `[n]`.
#[derive(Debug, Clone)]
pub struct Split {
    pub x: Tensor,
    pub y: Tensor,
}

impl Split {
    /// Moves `host` to `device`; on the CPU its buffers become the tensors' storage
    /// without a copy.
    fn upload(host: HostSplit, device: &Device) -> Result<Self> {
        let n = host.len();
        let mut shape = vec![n];
        shape.extend_from_slice(&host.sample_shape);
        Ok(Self {
            x: Tensor::from_vec(host.features, shape, device)?,
            y: Tensor::from_vec(host.labels, n, device)?,
        })
    }

    pub fn len(&self) -> usize {
        self.y.dims1().expect("labels are 1-D")
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A data set ready for training on one device.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub train: Split,
    /// Carved from the training data with the run's seed; `None` when `val_fraction` is 0.
    pub val: Option<Split>,
    pub test: Split,
    pub classes: usize,
    pub sample_shape: Vec<usize>,
    /// Random crops and flips for training batches, when the data set asks for them.
    pub augmentation: Option<Augmentation>,
}

impl Dataset {
    /// How many training samples each class has.
    pub fn train_class_counts(&self) -> candle_core::Result<Vec<usize>> {
        class_counts(&self.train.y, self.classes)
    }
}

/// How many of the U32 `labels` fall in each of `classes` classes (one read from the
/// device; a label out of range counts nowhere).
pub fn class_counts(labels: &Tensor, classes: usize) -> candle_core::Result<Vec<usize>> {
    let mut counts = vec![0; classes];
    for y in labels.to_vec1::<u32>()? {
        if let Some(count) = counts.get_mut(y as usize) {
            *count += 1;
        }
    }
    Ok(counts)
}

/// Training and test data as the source provides them, before the validation split.
#[derive(Debug, Clone)]
pub struct HostDataset {
    pub train: HostSplit,
    pub test: HostSplit,
    pub classes: usize,
}

/// The size of a data set, as a run would see it (its subsets applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extent {
    /// Training samples, the validation split included.
    pub train: usize,
    pub test: usize,
    pub sample_shape: Vec<usize>,
    pub classes: usize,
}

/// Checks that the data set `spec` asks for is there and readable (reading image files
/// in full, or downloading them once when they are missing), and returns its size. What
/// a run's [`load`] then reads has been read once already.
pub fn check(spec: &DatasetSpec) -> Result<Extent> {
    match spec {
        DatasetSpec::Synthetic(s) => Ok(Extent {
            train: s.train_size,
            test: s.test_size,
            sample_shape: s.shape.clone().unwrap_or_else(|| vec![s.features]),
            classes: s.classes,
        }),
        image => vision::check(image),
    }
}

/// Builds the data set a run asks for and moves it to `device`.
pub fn load(spec: &DatasetSpec, seed: u64, device: &Device) -> Result<Dataset> {
    let host = match spec {
        DatasetSpec::Synthetic(s) => synthetic::generate(s),
        image => vision::load(image)?,
    };
    if spec.val_fraction() > 0.0 {
        let n_val = (spec.val_fraction() * host.train.len() as f64).floor() as usize;
        anyhow::ensure!(
            n_val >= 1 && n_val < host.train.len(),
            "dataset.val_fraction {} of {} training samples leaves an empty split",
            spec.val_fraction(),
            host.train.len()
        );
    }
    // Each host buffer is consumed as soon as its successor exists, and the validation
    // split is carved out in place, so that the training set is never held twice.
    let HostDataset {
        train,
        test,
        classes,
    } = host;
    let sample_shape = train.sample_shape.clone();
    let (train, val) = split_validation(train, spec.val_fraction(), seed);
    let upload = |split: HostSplit, what: &str| {
        Split::upload(split, device)
            .with_context(|| format!("moving the {what} split to {device:?}"))
    };
    Ok(Dataset {
        train: upload(train, "training")?,
        val: val.map(|v| upload(v, "validation")).transpose()?,
        test: upload(test, "test")?,
        classes,
        sample_shape,
        augmentation: spec
            .augment()
            .then(|| {
                let (mean, std) = vision::normalisation(spec);
                Augmentation::new(mean, std, device)
            })
            .transpose()?,
    })
}

/// CIFAR-style augmentation of a training batch `[n, c, h, w]`: each image is padded by
/// [`Augmentation::PAD`] black pixels on every side, cropped back to h×w at a random
/// offset, and flipped horizontally with probability 1/2 — torchvision's
/// `RandomCrop(32, padding=4)` + `RandomHorizontalFlip()`, drawn from the run's seed.
#[derive(Debug, Clone)]
pub struct Augmentation {
    /// The normalised value of a black pixel per channel, `[1, c, 1, 1]`: padding happens
    /// in pixel space, before normalisation.
    black: Tensor,
}

impl Augmentation {
    pub const PAD: usize = 4;

    pub fn new(mean: &[f32], std: &[f32], device: &Device) -> Result<Self> {
        let black: Vec<f32> = mean.iter().zip(std).map(|(m, s)| -m / s).collect();
        let channels = black.len();
        Ok(Self {
            black: Tensor::from_vec(black, (1, channels, 1, 1), device)?,
        })
    }

    pub fn apply(&self, x: &Tensor, rng: &mut ChaCha8Rng) -> candle_core::Result<Tensor> {
        let (n, _, h, w) = x.dims4()?;
        let p = Self::PAD;
        // Pad with zeros, then add black on the border only (image pixels stay exact).
        let border = Tensor::ones((1, 1, h, w), x.dtype(), x.device())?
            .pad_with_zeros(2, p, p)?
            .pad_with_zeros(3, p, p)?
            .affine(-1.0, 1.0)?;
        let padded = x
            .pad_with_zeros(2, p, p)?
            .pad_with_zeros(3, p, p)?
            .broadcast_add(&border.broadcast_mul(&self.black)?)?;
        let reversed = Tensor::from_vec((0..w as u32).rev().collect::<Vec<_>>(), w, x.device())?;
        let mut crops = Vec::with_capacity(n);
        for i in 0..n {
            let dy = rng.random_range(0..=2 * p);
            let dx = rng.random_range(0..=2 * p);
            let crop = padded.get(i)?.narrow(1, dy, h)?.narrow(2, dx, w)?;
            crops.push(if rng.random::<bool>() {
                crop.contiguous()?.index_select(&reversed, 2)?
            } else {
                crop
            });
        }
        Tensor::stack(&crops, 0)
    }
}

/// Holds out `floor(fraction·n)` training samples, chosen by a permutation seeded with
/// the run's seed; both parts keep the original sample order.
pub fn split_validation(
    mut train: HostSplit,
    fraction: f64,
    seed: u64,
) -> (HostSplit, Option<HostSplit>) {
    let n_val = (fraction * train.len() as f64).floor() as usize;
    if n_val == 0 {
        return (train, None);
    }
    let mut order: Vec<usize> = (0..train.len()).collect();
    order.shuffle(&mut seeded(seed, Stream::ValidationSplit));
    let (val_idx, train_idx) = order.split_at_mut(n_val);
    val_idx.sort_unstable();
    train_idx.sort_unstable();
    let val = train.select(val_idx);
    train.retain_sorted(train_idx);
    (train, Some(val))
}
