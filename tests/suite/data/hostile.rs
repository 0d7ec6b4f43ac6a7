//! Hostile files for the image readers: streams that inflate far past what is needed,
//! headers that promise more than memory holds, files that are not regular files, and
//! arbitrary bytes. Each is an error naming the file (or a read of only what is
//! needed), never a panic, a hang or an unbounded allocation.

use super::files::{
    cifar10_batch, cifar10_dir, error_of, gzip, idx, mnist_images, mnist_labels, noise, write,
};
use proptest::prelude::*;
use smoothlab::data::cifar::{read_cifar10, read_cifar100, Cifar100Labels};
use smoothlab::data::idx::{read_idx, read_mnist};
use smoothlab::data::images::Part;

fn assert_contains(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
}

/// A labels file whose header claims 2³¹ records over 1 MiB of zeros (a 1 kB gzip
/// stream), beside images that hold 10: refused from the two headers, before either's
/// data is read.
#[test]
fn a_labels_header_claiming_billions_is_refused_from_the_headers() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "t10k-labels-idx1-ubyte.gz",
        &gzip(&idx(&[1 << 31], &vec![0; 1 << 20])),
    );
    write(
        dir.path(),
        "t10k-images-idx3-ubyte.gz",
        &gzip(&mnist_images(10)),
    );
    let message = error_of(read_mnist(dir.path(), Part::Test, None));
    assert_contains(
        &message,
        &[
            "image and label counts differ",
            "holds 10 images",
            "holds 2147483648 labels",
        ],
    );
}

/// Both headers claim 2³¹ records: 1.7 TB of pixels, refused with the figures.
#[test]
fn headers_promising_more_than_memory_are_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "t10k-labels-idx1-ubyte.gz",
        &gzip(&idx(&[1 << 31], &[0; 16])),
    );
    write(
        dir.path(),
        "t10k-images-idx3-ubyte.gz",
        &gzip(&idx(&[1 << 31, 28, 28], &[0; 16])),
    );
    let message = error_of(read_mnist(dir.path(), Part::Test, None));
    // The labels (2.1 GB) may fit here; the pixels (1.7 TB) cannot.
    assert_contains(&message, &["t10k-", "more than the", "of memory available"]);
}

/// A subset reads only its records: the rest of a large stream is left unread (so
/// damage there goes unnoticed, and costs nothing).
#[test]
fn a_subset_reads_only_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let n = 20_000;
    let mut images = mnist_images(n);
    // Damage after the first 100 images: a full read fails, a read of 100 does not.
    let damaged_at = 16 + 200 * 784;
    images.truncate(damaged_at);
    write(dir.path(), "t10k-images-idx3-ubyte.gz", &gzip(&images));
    write(
        dir.path(),
        "t10k-labels-idx1-ubyte.gz",
        &gzip(&mnist_labels(n)),
    );
    let raw = read_mnist(dir.path(), Part::Test, Some(100)).unwrap();
    assert_eq!((raw.len(), raw.pixels.len()), (100, 100 * 784));
    assert_eq!(raw.pixels, images[16..16 + 100 * 784]);
    assert_eq!(raw.labels[..12], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    let message = error_of(read_mnist(dir.path(), Part::Test, None));
    assert_contains(&message, &["truncated IDX file"]);
    let message = error_of(read_mnist(dir.path(), Part::Test, Some(n + 1)));
    assert_contains(
        &message,
        &["holds 20000 images, fewer than the 20001 asked for"],
    );
}

/// Megabytes of zeros after the data of a gzip stream: an error after counting at most
/// a mebibyte of them, not after inflating them all.
#[test]
fn a_stream_that_inflates_past_its_data_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut labels = idx(&[3], &[1, 2, 3]);
    labels.extend(vec![0; 64 << 20]);
    let path = write(dir.path(), "bomb.gz", &gzip(&labels));
    assert!(std::fs::metadata(&path).unwrap().len() < 100_000);
    let message = error_of(read_idx(&path));
    assert_contains(
        &message,
        &["bomb.gz: at least 1048576 unexpected bytes (decompressed) after the data"],
    );
}

#[test]
fn a_fifo_or_a_device_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "t10k-images-idx3-ubyte", &mnist_images(4));
    let labels = dir.path().join("t10k-labels-idx1-ubyte");
    nix::unistd::mkfifo(&labels, nix::sys::stat::Mode::S_IRWXU).unwrap();
    // Opening a FIFO for reading blocks until a writer comes: this would hang.
    let message = error_of(read_mnist(dir.path(), Part::Test, None));
    assert_contains(
        &message,
        &["t10k-labels-idx1-ubyte", "not a regular file: it is a FIFO"],
    );

    let cifar = cifar10_dir("");
    let test_batch = cifar.path().join("test_batch.bin");
    std::fs::remove_file(&test_batch).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &test_batch).unwrap();
    let message = error_of(read_cifar10(cifar.path(), Part::Test, None));
    assert_contains(&message, &["test_batch.bin", "it is a character device"]);
}

#[test]
fn a_cifar_subset_reads_only_its_records() {
    let dir = cifar10_dir("");
    let all = read_cifar10(dir.path(), Part::Train, None).unwrap();
    // 10 records in five files of 2: the first 3 come from the first two files.
    let three = read_cifar10(dir.path(), Part::Train, Some(3)).unwrap();
    assert_eq!(three.labels, all.labels[..3]);
    assert_eq!(three.pixels, all.pixels[..3 * 3072]);
    let message = error_of(read_cifar10(dir.path(), Part::Train, Some(11)));
    assert_contains(&message, &["hold 10 records, fewer than the 11 asked for"]);
}

/// An IDX file around `body`: a valid header for `dims`, or raw bytes.
fn idx_case(dims: Option<Vec<u32>>, body: Vec<u8>, gz: bool) -> Vec<u8> {
    let bytes = match dims {
        Some(dims) => idx(&dims, &body),
        None => body,
    };
    if gz {
        gzip(&bytes)
    } else {
        bytes
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes, and arbitrary data behind valid headers of arbitrary dims,
    /// gzipped or not.
    #[test]
    fn arbitrary_idx_files_are_read_or_refused(
        dims in prop::option::of(prop::collection::vec(0u32..40, 1..5)),
        body in prop::collection::vec(any::<u8>(), 0..600),
        gz in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "f", &idx_case(dims, body, gz));
        if let Ok(array) = read_idx(&path) {
            prop_assert_eq!(array.data.len(), array.dims.iter().product::<usize>());
        }
    }

    /// Damaged MNIST parts (bytes changed, cut short or appended) with and without a
    /// subset: an error or a well-formed result.
    #[test]
    fn damaged_mnist_parts_are_read_or_refused(
        images_cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        extra in prop::collection::vec(any::<u8>(), 0..8),
        limit in prop::option::of(1usize..8),
        gz in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut images = mnist_images(5);
        for (index, value) in flips {
            let position = index.index(images.len());
            images[position] = value;
        }
        images.truncate(images_cut.index(images.len() + 1));
        images.extend(extra);
        let wrap = |b: &[u8]| if gz { gzip(b) } else { b.to_vec() };
        write(dir.path(), "t10k-images-idx3-ubyte", &wrap(&images));
        write(dir.path(), "t10k-labels-idx1-ubyte", &wrap(&mnist_labels(5)));
        if let Ok(raw) = read_mnist(dir.path(), Part::Test, limit) {
            prop_assert_eq!(raw.pixels.len(), raw.len() * 784);
            prop_assert!(raw.labels.iter().all(|&l| l < 10));
        }
    }

    /// CIFAR files of arbitrary bytes and lengths.
    #[test]
    fn arbitrary_cifar_files_are_read_or_refused(
        labels in prop::collection::vec(any::<u8>(), 0..4),
        tail in prop::collection::vec(any::<u8>(), 0..10),
        limit in prop::option::of(1usize..6),
        hundred in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = cifar10_batch(&labels, 1);
        if hundred {
            bytes.extend(noise(tail.len() * 300, 3));
        }
        bytes.extend(tail);
        let read = if hundred {
            write(dir.path(), "test.bin", &bytes);
            read_cifar100(dir.path(), Part::Test, Cifar100Labels::Fine, limit)
        } else {
            write(dir.path(), "test_batch.bin", &bytes);
            read_cifar10(dir.path(), Part::Test, limit)
        };
        if let Ok(raw) = read {
            prop_assert_eq!(raw.pixels.len(), raw.len() * 3072);
        }
    }
}

#[test]
fn the_real_files_are_not_affected_by_a_subset() {
    let dir = &crate::common::mnist_dir();
    let all = read_mnist(dir, Part::Test, None).expect("the shared MNIST test set");
    let first = read_mnist(dir, Part::Test, Some(1000)).unwrap();
    assert_eq!(first.labels, all.labels[..1000]);
    assert_eq!(first.pixels, all.pixels[..1000 * 784]);
}
