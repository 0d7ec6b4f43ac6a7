//! Training on real images: the MNIST test set in `../shared/data/mnist`, split into
//! 8,000 training and 2,000 held-out images, read through the experiment format exactly
//! as a user's MNIST directory would be.

use crate::common::MNIST_DIR;

use candle_core::Device;
use smoothlab::data::idx::{read_mnist, write_mnist};
use smoothlab::data::images::{Part, RawImages};
use smoothlab::spec;
use smoothlab::train;
use std::path::Path;

fn take(raw: &RawImages, range: std::ops::Range<usize>) -> RawImages {
    let d: usize = raw.shape.iter().product();
    RawImages {
        pixels: raw.pixels[range.start * d..range.end * d].to_vec(),
        labels: raw.labels[range].to_vec(),
        shape: raw.shape,
    }
}

/// A directory holding the first 8,000 real test images as the training part and the
/// last 2,000 as the test part.
fn split_mnist() -> tempfile::TempDir {
    assert!(
        Path::new(MNIST_DIR).is_dir(),
        "the real MNIST test set is missing: expected t10k-*-ubyte.gz in {MNIST_DIR}"
    );
    let all = read_mnist(Path::new(MNIST_DIR), Part::Test, None)
        .expect("reading the real MNIST test set");
    assert_eq!(all.len(), 10_000);
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), Part::Train, &take(&all, 0..8_000)).unwrap();
    write_mnist(dir.path(), Part::Test, &take(&all, 8_000..10_000)).unwrap();
    dir
}

#[test]
fn lenet5_learns_real_mnist_digits() {
    let dir = split_mnist();
    let text = format!(
        r#"{{
        "name": "mnist-lenet5",
        "dataset": {{ "name": "mnist", "dir": {:?}, "val_fraction": 0.1 }},
        "model": {{ "name": "lenet5" }},
        "optimizer": {{ "name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": true, "weight_decay": 5e-4 }},
        "schedule": {{ "name": "cosine", "warmup_epochs": 1 }},
        "training": {{ "epochs": 4, "batch_size": 64 }}
    }}"#,
        dir.path()
    );
    let plan = spec::parse(Path::new("mnist-lenet5.json"), &text).unwrap();
    let config = &plan.runs[0].config;
    let trained = train::run(config, &Device::Cpu, &train::Hooks::none())
        .unwrap_or_else(|f| panic!("{:#}", f.error));
    let test = &trained.metrics.test;
    assert_eq!(test.n, 2_000);
    assert_eq!(trained.validation.as_ref().unwrap().len(), 800);
    assert!(
        test.accuracy >= 0.97,
        "LeNet-5 reached only {:.4} on 2,000 held-out real digits",
        test.accuracy
    );
    let fit = trained.metrics.temperature.as_ref().unwrap();
    assert!(fit.nll_after <= fit.nll_before);
}
