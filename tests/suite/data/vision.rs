//! Image data sets as a run sees them: normalisation, subsets, the missing-files
//! message, the validation split, and CIFAR augmentation.

use candle_core::{Device, Tensor};
use smoothlab::data::idx::write_mnist;
use smoothlab::data::images::{Part, RawImages};
use smoothlab::data::{self, vision, Augmentation};
use smoothlab::rng::{seeded, Stream};
use smoothlab::spec::{self, DatasetSpec};
use std::path::Path;

fn dataset(json: &str) -> DatasetSpec {
    let text = format!(r#"{{"name": "x", "dataset": {json}, "model": {{"name": "lenet5"}}}}"#);
    spec::parse(Path::new("x.json"), &text)
        .unwrap()
        .experiment
        .dataset
}

/// Tiny MNIST-format files: image i has every pixel equal to i, label i % 10.
fn tiny_mnist(train: usize, test: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (part, n) in [(Part::Train, train), (Part::Test, test)] {
        let raw = RawImages {
            pixels: (0..n).flat_map(|i| [i as u8; 784]).collect(),
            labels: (0..n as u32).map(|i| i % 10).collect(),
            shape: [1, 28, 28],
        };
        write_mnist(dir.path(), part, &raw).unwrap();
    }
    dir
}

#[test]
fn pixels_are_normalised_per_channel_and_subsets_take_the_first_samples() {
    let dir = tiny_mnist(30, 12);
    let spec = dataset(&format!(
        r#"{{"name": "mnist", "dir": {:?}, "train_subset": 20, "test_subset": 5}}"#,
        dir.path()
    ));
    let host = vision::load(&spec).unwrap();
    assert_eq!(
        (host.train.len(), host.test.len(), host.classes),
        (20, 5, 10)
    );
    assert_eq!(host.train.sample_shape, [1, 28, 28]);
    assert_eq!(host.test.labels, [0, 1, 2, 3, 4]);
    // Image 7 is all 7s: (7/255 − 0.1307) / 0.3081.
    let expected = (7.0 / 255.0 - 0.1307) / 0.3081;
    let image7 = &host.train.features[7 * 784..8 * 784];
    assert!(
        image7.iter().all(|&v| (v - expected).abs() < 1e-6),
        "{}",
        image7[0]
    );

    let too_many = dataset(&format!(
        r#"{{"name": "mnist", "dir": {:?}, "train_subset": 31}}"#,
        dir.path()
    ));
    let err = vision::load(&too_many).unwrap_err();
    assert!(
        format!("{err:#}").contains("dataset.train_subset is 31: ")
            && format!("{err:#}").contains("holds 30 images, fewer than the 31 asked for"),
        "{err:#}"
    );
}

#[test]
fn the_validation_split_is_carved_from_the_training_files() {
    let dir = tiny_mnist(40, 10);
    let spec = dataset(&format!(
        r#"{{"name": "fashion-mnist", "dir": {:?}, "val_fraction": 0.25}}"#,
        dir.path()
    ));
    let d = data::load(&spec, 3, &Device::Cpu).unwrap();
    assert_eq!(
        (d.train.len(), d.val.as_ref().unwrap().len(), d.test.len()),
        (30, 10, 10)
    );
    assert!(d.augmentation.is_none(), "MNIST-like data is never flipped");
    // Too few samples for the fraction asked: a clear error, not an empty split.
    let spec = dataset(&format!(
        r#"{{"name": "mnist", "dir": {:?}, "val_fraction": 0.01}}"#,
        dir.path()
    ));
    let err = data::load(&spec, 3, &Device::Cpu).err().unwrap();
    assert!(
        format!("{err:#}").contains("leaves an empty split"),
        "{err:#}"
    );
}

#[test]
fn missing_cifar_files_say_where_to_put_them() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dataset(&format!(
        r#"{{"name": "cifar10", "dir": {:?}}}"#,
        dir.path()
    ));
    let err = format!("{:#}", vision::load(&spec).unwrap_err());
    for expected in [
        "no CIFAR-10 binary files here",
        "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        "point dataset.dir at them",
        &dir.path().display().to_string(),
    ] {
        assert!(err.contains(expected), "{expected:?} not in: {err}");
    }
}

#[test]
fn the_files_location_is_not_part_of_the_run_id() {
    let id = |dir: &str| {
        let text = format!(
            r#"{{"name": "x", "dataset": {{"name": "mnist", "dir": {dir:?}}}, "model": {{"name": "lenet5"}}}}"#
        );
        spec::parse(Path::new("x.json"), &text).unwrap().runs[0]
            .id
            .clone()
    };
    assert_eq!(id("/data/a"), id("elsewhere/mnist"));
}

#[test]
fn cifar_augmentation_crops_and_flips_reproducibly() {
    let (mean, std) = (&[0.5f32, 0.4, 0.3][..], &[0.2f32, 0.25, 0.5][..]);
    let augmentation = Augmentation::new(mean, std, &Device::Cpu).unwrap();
    // Each channel constant at 1.0 (a normalised value), 16 images.
    let x = Tensor::ones((16, 3, 32, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
    let run = |seed| {
        augmentation
            .apply(&x, &mut seeded(seed, Stream::Augmentation))
            .unwrap()
    };
    let a = run(0);
    assert_eq!(a.dims(), [16, 3, 32, 32]);
    let values = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(
        values,
        run(0).flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    assert_ne!(
        values,
        run(1).flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    // Every pixel is either the image's or black (−mean/std of its channel), and a crop
    // shifted by at most 4 pixels keeps at least 28×28 of the image's pixels.
    for (i, image) in values.chunks_exact(3 * 1024).enumerate() {
        for (c, plane) in image.chunks_exact(1024).enumerate() {
            let black = -mean[c] / std[c];
            let kept = plane.iter().filter(|&&v| v == 1.0).count();
            assert!(plane.iter().all(|&v| v == 1.0 || (v - black).abs() < 1e-6));
            assert!(kept >= 28 * 28, "image {i} channel {c} kept {kept}");
        }
    }
    // Across 16 images some crop moves the image.
    assert!(values.iter().any(|&v| v != 1.0));
}

#[test]
fn augmentation_flips_horizontally() {
    let augmentation = Augmentation::new(&[0.0], &[1.0], &Device::Cpu).unwrap();
    // One row ramp 0..32 repeated on every row; a flip reverses it. With the crop the
    // kept part of each row is a run of consecutive values, increasing or decreasing.
    let ramp: Vec<f32> = (0..64 * 32 * 32).map(|i| (i % 32) as f32 + 1.0).collect();
    let x = Tensor::from_vec(ramp, (64, 1, 32, 32), &Device::Cpu).unwrap();
    let y = augmentation
        .apply(&x, &mut seeded(5, Stream::Augmentation))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let (mut increasing, mut decreasing) = (0, 0);
    for image in y.chunks_exact(1024) {
        let row: Vec<f32> = image[16 * 32..17 * 32]
            .iter()
            .copied()
            .filter(|&v| v != 0.0)
            .collect();
        if row.windows(2).all(|w| w[1] == w[0] + 1.0) {
            increasing += 1;
        } else if row.windows(2).all(|w| w[1] == w[0] - 1.0) {
            decreasing += 1;
        }
    }
    assert_eq!(increasing + decreasing, 64);
    assert!(
        increasing >= 16 && decreasing >= 16,
        "{increasing} vs {decreasing}"
    );
}

/// CIFAR-10 binary files of `per_batch` images per training batch (and as many test
/// images), each image a flat colour that depends on its label, plus noise.
fn tiny_cifar10(per_batch: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut state = 1u32;
    let mut noise = move || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 27) as u8
    };
    let mut batch = |name: &str| {
        let mut bytes = Vec::new();
        for i in 0..per_batch {
            let label = (i % 10) as u8;
            bytes.push(label);
            bytes.extend((0..3072).map(|_| label * 20 + noise()));
        }
        std::fs::write(dir.path().join(name), bytes).unwrap();
    };
    for b in 1..=5 {
        batch(&format!("data_batch_{b}.bin"));
    }
    batch("test_batch.bin");
    dir
}

#[test]
fn a_resnet_trains_on_cifar_files_with_augmentation_reproducibly() {
    use smoothlab::train;
    let dir = tiny_cifar10(40);
    let text = format!(
        r#"{{
        "name": "cifar-tiny",
        "dataset": {{ "name": "cifar10", "dir": {:?}, "val_fraction": 0.2 }},
        "model": {{ "name": "resnet", "depth": 8, "width": 4 }},
        "optimizer": {{ "name": "sgd", "lr": 0.05, "momentum": 0.9 }},
        "training": {{ "epochs": 2, "batch_size": 32 }}
    }}"#,
        dir.path()
    );
    let plan = spec::parse(Path::new("cifar-tiny.json"), &text).unwrap();
    let config = &plan.runs[0].config;
    let run = || {
        train::run(config, &Device::Cpu, &train::Hooks::none())
            .unwrap_or_else(|f| panic!("{:#}", f.error))
    };
    let (a, b) = (run(), run());
    assert_eq!(a.metrics, b.metrics, "same seed, same numbers");
    assert_eq!(a.metrics.test.n, 40);
    assert_eq!(a.history.len(), 2);
    assert!(a.history.iter().all(|e| e.train_loss.is_finite()));
    assert!(a.metrics.test.nll.is_finite());
    // BatchNorm's running statistics moved during training and are among the saved variables.
    let vars = a.vars.data().lock().unwrap();
    let running = vars["stem_norm.running_mean"]
        .as_tensor()
        .to_vec1::<f32>()
        .unwrap();
    assert!(running.iter().any(|&m| m != 0.0), "{running:?}");
}
