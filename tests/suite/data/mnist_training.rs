//! The full real data sets: LeNet-5 trained on the whole MNIST through the experiment
//! format, as a user's run reads it, and the Fashion-MNIST and MNIST readers checked on
//! the full files against the data sets' published counts and pixel statistics.

use crate::common::{mnist_dir, real_data};

use candle_core::Device;
use smoothlab::data::idx::read_mnist;
use smoothlab::data::images::{Part, RawImages};
use smoothlab::spec;
use smoothlab::train;
use std::path::Path;

fn class_counts(raw: &RawImages) -> [usize; 10] {
    let mut counts = [0usize; 10];
    for &label in &raw.labels {
        counts[label as usize] += 1;
    }
    counts
}

/// Mean and population standard deviation of the pixels scaled to [0, 1].
fn pixel_statistics(raw: &RawImages) -> (f64, f64) {
    let n = raw.pixels.len() as f64;
    let sum: f64 = raw.pixels.iter().map(|&p| f64::from(p)).sum();
    let squares: f64 = raw.pixels.iter().map(|&p| f64::from(p).powi(2)).sum();
    let mean = sum / n;
    ((mean / 255.0), ((squares / n - mean * mean).sqrt() / 255.0))
}

#[test]
fn lenet5_reaches_98_5_percent_on_the_full_mnist_in_three_epochs() {
    let text = format!(
        r#"{{
        "name": "mnist-lenet5",
        "dataset": {{ "name": "mnist", "dir": {:?}, "val_fraction": 0.1 }},
        "model": {{ "name": "lenet5" }},
        "optimizer": {{ "name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": true, "weight_decay": 5e-4 }},
        "schedule": {{ "name": "cosine", "warmup_epochs": 1 }},
        "training": {{ "epochs": 3, "batch_size": 128 }}
    }}"#,
        mnist_dir()
    );
    let plan = spec::parse(Path::new("mnist-lenet5.json"), &text).unwrap();
    let config = &plan.runs[0].config;
    let trained = train::run(config, &Device::Cpu, &train::Hooks::none())
        .unwrap_or_else(|f| panic!("{:#}", f.error));
    let test = &trained.metrics.test;
    assert_eq!(test.n, 10_000);
    assert_eq!(trained.validation.as_ref().unwrap().len(), 6_000);
    assert!(
        test.accuracy >= 0.985,
        "LeNet-5 reached only {:.4} on MNIST's 10,000 test digits",
        test.accuracy
    );
    let fit = trained.metrics.temperature.as_ref().unwrap();
    assert!(fit.nll_after <= fit.nll_before);
}

#[test]
fn the_full_fashion_mnist_has_its_published_counts_and_pixel_statistics() {
    let dir = real_data("fashion-mnist");
    let train = read_mnist(&dir, Part::Train, None).expect("the Fashion-MNIST training files");
    let test = read_mnist(&dir, Part::Test, None).expect("the Fashion-MNIST test files");
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!((train.shape, test.shape), ([1, 28, 28], [1, 28, 28]));
    // Balanced: 6,000 and 1,000 images of each of the ten classes.
    assert_eq!(class_counts(&train), [6_000; 10]);
    assert_eq!(class_counts(&test), [1_000; 10]);
    // The normalisation constants every Fashion-MNIST pipeline uses (torchvision
    // examples, timm): mean 0.2860, std 0.3530 over the training pixels.
    let (mean, std) = pixel_statistics(&train);
    assert!((mean - 0.2860).abs() < 5e-5, "mean {mean}");
    assert!((std - 0.3530).abs() < 5e-5, "std {std}");
    assert_eq!(train.pixels.iter().max(), Some(&255));
}

#[test]
fn the_full_mnist_has_its_published_counts_and_pixel_statistics() {
    let train = read_mnist(&mnist_dir(), Part::Train, None).expect("the MNIST training files");
    assert_eq!(train.len(), 60_000);
    assert_eq!(
        class_counts(&train),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    // torchvision's MNIST normalisation: mean 0.1307, std 0.3081.
    let (mean, std) = pixel_statistics(&train);
    assert!((mean - 0.1307).abs() < 5e-5, "mean {mean}");
    assert!((std - 0.3081).abs() < 5e-5, "std {std}");
}
