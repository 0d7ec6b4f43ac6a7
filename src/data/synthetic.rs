//! The embedded default data set: a seeded Gaussian mixture, no download.

use super::{HostDataset, HostSplit};
use crate::rng::{seeded, Stream};
use crate::spec::SyntheticSpec;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// Generates the train and test sets of `spec` from `spec.data_seed`. Train and test use
/// separate streams, so changing `train_size` leaves the test set unchanged.
pub fn generate(spec: &SyntheticSpec) -> HostDataset {
    let n_centres = spec.classes * spec.clusters_per_class;
    let mut rng = seeded(spec.data_seed, Stream::SyntheticCentres);
    let centres: Vec<f32> = (0..n_centres * spec.features)
        .map(|_| (spec.class_sep * rng.sample::<f64, _>(StandardNormal)) as f32)
        .collect();
    let draw = |n, stream| sample_split(spec, &centres, n, &mut seeded(spec.data_seed, stream));
    HostDataset {
        train: draw(spec.train_size, Stream::SyntheticTrain),
        test: draw(spec.test_size, Stream::SyntheticTest),
        classes: spec.classes,
    }
}

fn sample_split(
    spec: &SyntheticSpec,
    centres: &[f32],
    n: usize,
    rng: &mut ChaCha8Rng,
) -> HostSplit {
    let d = spec.features;
    let n_centres = spec.classes * spec.clusters_per_class;
    let mut features = Vec::with_capacity(n * d);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let cluster = rng.random_range(0..n_centres);
        let centre = &centres[cluster * d..(cluster + 1) * d];
        features.extend(
            centre
                .iter()
                .map(|&c| c + rng.sample::<f32, _>(StandardNormal)),
        );
        // Both draws happen for every sample, so the features (and every clean label) do
        // not depend on `label_noise`.
        let flip = rng.random::<f64>() < spec.label_noise;
        let replacement = rng.random_range(0..spec.classes);
        let class = if flip {
            replacement
        } else {
            cluster / spec.clusters_per_class
        };
        labels.push(class as u32);
    }
    HostSplit {
        features,
        labels,
        sample_shape: spec.shape.clone().unwrap_or_else(|| vec![d]),
    }
}
