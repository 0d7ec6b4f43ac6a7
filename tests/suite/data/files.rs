//! The image-file readers: the real MNIST test set, and small files written here, then
//! corrupted, to check that every kind of bad input gets its specific error.

use flate2::write::GzEncoder;
use flate2::Compression;
use proptest::prelude::*;
use smoothlab::data::cifar::{read_cifar10, read_cifar100, Cifar100Labels};
use smoothlab::data::idx::{read_idx, read_mnist};
use smoothlab::data::images::{MissingFiles, Part, RawImages};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------- helpers

pub(super) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A valid IDX file of unsigned bytes.
pub(super) fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    bytes
}

/// Pixels that do not compress to nothing, so a gzip stream has a body to corrupt.
pub(super) fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}

pub(super) fn mnist_images(n: usize) -> Vec<u8> {
    idx(&[n as u32, 28, 28], &noise(n * 784, 7))
}

pub(super) fn mnist_labels(n: usize) -> Vec<u8> {
    idx(
        &[n as u32],
        &(0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>(),
    )
}

pub(super) fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A test part of `n` images, as `.gz` files when `gz`.
/// Writes gzipped test-part MNIST files with the given contents.
fn write_gz_test_part(dir: &Path, images: &[u8], labels: &[u8]) {
    write(dir, "t10k-images-idx3-ubyte.gz", &gzip(images));
    write(dir, "t10k-labels-idx1-ubyte.gz", &gzip(labels));
}

fn mnist_dir(n: usize, gz: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let suffix = if gz { ".gz" } else { "" };
    let wrap = |bytes: Vec<u8>| if gz { gzip(&bytes) } else { bytes };
    write(
        dir.path(),
        &format!("t10k-images-idx3-ubyte{suffix}"),
        &wrap(mnist_images(n)),
    );
    write(
        dir.path(),
        &format!("t10k-labels-idx1-ubyte{suffix}"),
        &wrap(mnist_labels(n)),
    );
    dir
}

/// The full error chain, as `{:#}` prints it.
pub(super) fn error_of<T: std::fmt::Debug>(result: anyhow::Result<T>) -> String {
    format!("{:#}", result.expect_err("expected an error"))
}

fn assert_contains(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            message.contains(part),
            "{message:?}\n  does not contain {part:?}"
        );
    }
}

/// One CIFAR record: label bytes, then 3072 pixels derived from `seed`.
fn cifar_record(labels: &[u8], seed: u8) -> Vec<u8> {
    let mut record = labels.to_vec();
    record.extend((0..3072u32).map(|p| (p as u8).wrapping_mul(seed).wrapping_add(seed)));
    record
}

pub(super) fn cifar10_batch(labels: &[u8], first_seed: u8) -> Vec<u8> {
    labels
        .iter()
        .enumerate()
        .flat_map(|(i, &l)| cifar_record(&[l], first_seed + i as u8))
        .collect()
}

/// Writes the five training batches (2 records each, labels 0..10 in order) and a
/// test batch into `dir/sub`.
pub(super) fn cifar10_dir(sub: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for b in 0..5u8 {
        let name = format!("{sub}data_batch_{}.bin", b + 1);
        write(
            dir.path(),
            &name,
            &cifar10_batch(&[2 * b, 2 * b + 1], 10 * b + 1),
        );
    }
    write(
        dir.path(),
        &format!("{sub}test_batch.bin"),
        &cifar10_batch(&[9, 3, 0], 100),
    );
    dir
}

fn expected_cifar10_train() -> RawImages {
    let mut pixels = Vec::new();
    for b in 0..5u8 {
        for i in 0..2 {
            pixels.extend_from_slice(&cifar_record(&[], 10 * b + 1 + i));
        }
    }
    RawImages {
        pixels,
        labels: (0..10).collect(),
        shape: [3, 32, 32],
    }
}

// ---------------------------------------------------------------- real MNIST

#[test]
fn real_mnist_test_set() {
    let dir = &crate::common::mnist_dir();
    assert!(
        dir.join("t10k-images-idx3-ubyte.gz").is_file() && dir.join("t10k-labels-idx1-ubyte.gz").is_file(),
        "the real MNIST test set is missing: expected t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz in {}",
        dir.display()
    );
    let raw = read_mnist(dir, Part::Test, None).unwrap();
    assert_eq!(raw.len(), 10_000);
    assert_eq!(raw.shape, [1, 28, 28]);
    assert_eq!(raw.pixels.len(), 10_000 * 784);
    let mut histogram = [0usize; 10];
    for &l in &raw.labels {
        histogram[l as usize] += 1;
    }
    assert_eq!(
        histogram,
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    assert_eq!(raw.pixels.iter().min(), Some(&0));
    assert_eq!(raw.pixels.iter().max(), Some(&255));

    // A decompressed copy reads back identically.
    let copy = tempfile::tempdir().unwrap();
    for name in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
        let file = std::fs::File::open(dir.join(format!("{name}.gz"))).unwrap();
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(file)
            .read_to_end(&mut bytes)
            .unwrap();
        write(copy.path(), name, &bytes);
    }
    assert_eq!(read_mnist(copy.path(), Part::Test, None).unwrap(), raw);
    // The copy holds no training part: typed, so a caller could download it.
    let err = read_mnist(copy.path(), Part::Train, None).unwrap_err();
    assert!(err.downcast_ref::<MissingFiles>().is_some(), "{err:#}");
}

// ---------------------------------------------------------------- IDX / MNIST files

#[test]
fn small_mnist_reads_the_same_plain_and_gzipped() {
    let plain = read_mnist(mnist_dir(12, false).path(), Part::Test, None).unwrap();
    let gz = read_mnist(mnist_dir(12, true).path(), Part::Test, None).unwrap();
    assert_eq!(plain, gz);
    assert_eq!(plain.len(), 12);
    assert_eq!(plain.shape, [1, 28, 28]);
    assert_eq!(plain.pixels, noise(12 * 784, 7));
    assert_eq!(plain.labels, (0..12).map(|i| i % 10).collect::<Vec<u32>>());

    // Train part: the other file names.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "train-images-idx3-ubyte", &mnist_images(3));
    write(
        dir.path(),
        "train-labels-idx1-ubyte.gz",
        &gzip(&mnist_labels(3)),
    );
    assert_eq!(
        read_mnist(dir.path(), Part::Train, None).unwrap().labels,
        vec![0, 1, 2]
    );
}

#[test]
fn gzip_is_detected_by_content_not_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "plain.gz", &idx(&[3], &[1, 2, 3]));
    let b = write(dir.path(), "zipped", &gzip(&idx(&[3], &[1, 2, 3])));
    assert_eq!(read_idx(&a).unwrap().data, vec![1, 2, 3]);
    assert_eq!(read_idx(&b).unwrap().dims, vec![3]);
}

#[test]
fn the_uncompressed_file_wins_when_both_exist() {
    let dir = mnist_dir(4, false);
    write_gz_test_part(dir.path(), &mnist_images(5), &mnist_labels(5));
    assert_eq!(read_mnist(dir.path(), Part::Test, None).unwrap().len(), 4);
}

#[test]
fn missing_mnist_files_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let err = read_mnist(dir.path(), Part::Test, None).unwrap_err();
    let missing = err
        .downcast_ref::<MissingFiles>()
        .expect("MissingFiles as root error");
    assert_eq!(missing.dir, dir.path());
    assert_eq!(missing.what, "MNIST-format");
    assert_eq!(
        missing.expected,
        [
            "t10k-images-idx3-ubyte",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte",
            "t10k-labels-idx1-ubyte.gz"
        ]
    );
    println!("{err:#}");
    assert_contains(
        &err.to_string(),
        &["no MNIST-format files here", "t10k-labels-idx1-ubyte.gz"],
    );

    // Only the labels missing: still MissingFiles, naming just them.
    write(
        dir.path(),
        "t10k-images-idx3-ubyte.gz",
        &gzip(&mnist_images(2)),
    );
    let err = read_mnist(dir.path(), Part::Test, None).unwrap_err();
    let missing = err.downcast_ref::<MissingFiles>().expect("MissingFiles");
    assert_eq!(
        missing.expected,
        ["t10k-labels-idx1-ubyte", "t10k-labels-idx1-ubyte.gz"]
    );

    // A directory that does not exist at all.
    let err = read_mnist(&dir.path().join("nowhere"), Part::Train, None).unwrap_err();
    assert!(err.downcast_ref::<MissingFiles>().is_some());
}

#[test]
fn wrong_idx_magic() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = mnist_images(2);
    bytes[0] = 1;
    let path = write(dir.path(), "a-idx", &bytes);
    let message = error_of(read_idx(&path));
    println!("{message}");
    assert_contains(
        &message,
        &[
            "a-idx",
            "bytes 0..4 are 01 00 08 03",
            "bytes 0..2 must be 00 00",
        ],
    );

    let mut bytes = mnist_images(2);
    bytes[2] = 0x0d; // float
    let path = write(dir.path(), "b-idx", &bytes);
    let message = error_of(read_idx(&path));
    println!("{message}");
    assert_contains(
        &message,
        &[
            "b-idx",
            "00 00 0d 03",
            "type code (byte 2) 0x0d is not 0x08",
        ],
    );

    for count in [0u8, 5] {
        let mut bytes = mnist_images(2);
        bytes[3] = count;
        let path = write(dir.path(), "c-idx", &bytes);
        let message = error_of(read_idx(&path));
        assert_contains(
            &message,
            &[
                "c-idx",
                &format!("dimension count (byte 3) {count} is not in 1..=4"),
            ],
        );
    }

    // In a gzip file, the bytes are those of the decompressed data.
    let mut bytes = mnist_images(2);
    bytes[1] = 0xff;
    let path = write(dir.path(), "d-idx.gz", &gzip(&bytes));
    let message = error_of(read_idx(&path));
    assert_contains(
        &message,
        &["d-idx.gz", "bytes 0..4 (decompressed) are 00 ff 08 03"],
    );
}

#[test]
fn truncated_idx_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "short", &[0, 0]);
    let message = error_of(read_idx(&path));
    assert_contains(
        &message,
        &["short", "expected a 4-byte magic number, found 2 bytes"],
    );
    let path = write(dir.path(), "header", &mnist_images(2)[..10]);
    let message = error_of(read_idx(&path));
    println!("{message}");
    assert_contains(
        &message,
        &[
            "header",
            "expected 16 bytes (magic number and 3 dimensions of 4 bytes), found 10",
        ],
    );
}

#[test]
fn truncated_idx_data() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = mnist_images(10);
    let path = write(
        dir.path(),
        "t10k-images-idx3-ubyte",
        &bytes[..bytes.len() - 100],
    );
    write(dir.path(), "t10k-labels-idx1-ubyte", &mnist_labels(10));
    let message = error_of(read_mnist(dir.path(), Part::Test, None));
    println!("{message}");
    assert_contains(
        &message,
        &[
            &path.display().to_string(),
            "expected 7840 bytes of data after the 16-byte header",
            "found 7740",
        ],
    );
    assert!(!message.contains("decompressed"));

    // A valid gzip stream of a truncated file: the counts are of decompressed bytes.
    let path = write(dir.path(), "labels.gz", &gzip(&mnist_labels(10)[..15]));
    let message = error_of(read_idx(&path));
    println!("{message}");
    assert_contains(
        &message,
        &[
            "labels.gz",
            "expected 10 bytes of data after the 8-byte header",
            "found 7 (counting decompressed bytes)",
        ],
    );
}

#[test]
fn trailing_idx_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = mnist_labels(10);
    bytes.extend_from_slice(&[1, 2, 3]);
    let path = write(dir.path(), "long", &bytes);
    let message = error_of(read_idx(&path));
    println!("{message}");
    assert_contains(
        &message,
        &["long", "3 unexpected bytes after the data", "8 + 10 bytes"],
    );
    let path = write(dir.path(), "long.gz", &gzip(&bytes));
    let message = error_of(read_idx(&path));
    assert_contains(
        &message,
        &[
            "long.gz",
            "3 unexpected bytes (decompressed) after the data",
        ],
    );
}

#[test]
fn image_label_count_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    write_gz_test_part(dir.path(), &mnist_images(5), &mnist_labels(4));
    let message = error_of(read_mnist(dir.path(), Part::Test, None));
    println!("{message}");
    assert_contains(
        &message,
        &[
            "t10k-images-idx3-ubyte.gz holds 5 images",
            "t10k-labels-idx1-ubyte.gz holds 4 labels",
        ],
    );
}

#[test]
fn wrong_image_size_or_rank() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "t10k-images-idx3-ubyte",
        &idx(&[4, 32, 32], &[0; 4 * 1024]),
    );
    write(dir.path(), "t10k-labels-idx1-ubyte", &mnist_labels(4));
    let message = error_of(read_mnist(dir.path(), Part::Test, None));
    println!("{message}");
    assert_contains(
        &message,
        &[
            "t10k-images-idx3-ubyte",
            "expected images of 28×28 pixels",
            "found dims [4, 32, 32]",
        ],
    );

    // The labels and images files swapped.
    write(dir.path(), "t10k-images-idx3-ubyte", &mnist_labels(4));
    write(dir.path(), "t10k-labels-idx1-ubyte", &mnist_images(4));
    let message = error_of(read_mnist(dir.path(), Part::Test, None));
    assert_contains(
        &message,
        &[
            "t10k-labels-idx1-ubyte",
            "expected a labels file with dims [N], found dims [4, 28, 28]",
        ],
    );
}

#[test]
fn empty_mnist_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "t10k-images-idx3-ubyte", &mnist_images(0));
    write(dir.path(), "t10k-labels-idx1-ubyte", &mnist_labels(0));
    let message = error_of(read_mnist(dir.path(), Part::Test, None));
    assert_contains(&message, &["t10k-images-idx3-ubyte", "holds 0 images"]);
}

#[test]
fn mnist_label_out_of_range() {
    for gz in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut labels = mnist_labels(6);
        labels[8 + 3] = 10;
        let (name, bytes) = if gz {
            ("t10k-labels-idx1-ubyte.gz", gzip(&labels))
        } else {
            ("t10k-labels-idx1-ubyte", labels)
        };
        write(dir.path(), name, &bytes);
        write(dir.path(), "t10k-images-idx3-ubyte", &mnist_images(6));
        let message = error_of(read_mnist(dir.path(), Part::Test, None));
        println!("{message}");
        assert_contains(
            &message,
            &[
                name,
                "label 10 of record 3 (byte offset 11",
                "expected < 10",
            ],
        );
        assert_eq!(message.contains("of the decompressed data"), gz);
    }
}

/// The number in "after N decompressed bytes".
fn bytes_before_failure(message: &str) -> usize {
    let rest = message.split("failed after ").nth(1).expect(message);
    rest.split(' ').next().unwrap().parse().expect(message)
}

#[test]
fn gzip_corrupt_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    // Two deflate blocks; the second one's header gets the reserved block type 11.
    let plain = mnist_images(250);
    let half = plain.len() / 2;
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(&plain[..half]).unwrap();
    encoder.flush().unwrap(); // ends the first block on a byte boundary
    let second_block = encoder.get_ref().len();
    encoder.write_all(&plain[half..]).unwrap();
    let mut bytes = encoder.finish().unwrap();
    bytes[second_block] = 0b111; // BFINAL = 1, BTYPE = 11 (reserved)
    let path = write(dir.path(), "corrupt.gz", &bytes);
    let message = error_of(read_idx(&path));
    println!("{message}");
    assert_contains(
        &message,
        &[
            "corrupt.gz",
            "gzip stream failed after",
            "decompressed bytes",
            "corrupt deflate stream",
        ],
    );
    // Counted per read of at most 64 KiB, so the count is that close to the failure.
    let got = bytes_before_failure(&message);
    assert!(got <= half && got + (64 << 10) >= half, "{half}: {message}");

    // Damage to stored (uncompressed) blocks: the checksum catches it.
    let plain = mnist_images(20);
    let mut bytes = gzip(&plain);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    let path = write(dir.path(), "stored.gz", &bytes);
    let message = error_of(read_idx(&path));
    println!("{message}");
    assert_contains(
        &message,
        &[
            "stored.gz",
            &format!(
                "gzip stream failed after {} decompressed bytes",
                plain.len()
            ),
            "checksum",
        ],
    );
}

#[test]
fn gzip_truncated_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let plain = mnist_images(20);
    let bytes = gzip(&plain);
    let path = write(dir.path(), "cut.gz", &bytes[..bytes.len() / 2]);
    let message = error_of(read_idx(&path));
    println!("{message}");
    assert_contains(
        &message,
        &["cut.gz", "gzip stream failed after", "decompressed bytes"],
    );
    let got = bytes_before_failure(&message);
    assert!(got > 0 && got < plain.len(), "{message}");

    // Cut inside the 8-byte trailer: all data is there, but the stream is incomplete.
    let path = write(dir.path(), "trailer.gz", &bytes[..bytes.len() - 3]);
    let message = error_of(read_idx(&path));
    println!("{message}");
    assert_contains(
        &message,
        &[
            "trailer.gz",
            &format!(
                "gzip stream failed after {} decompressed bytes",
                plain.len()
            ),
        ],
    );

    // A wrong checksum.
    let mut bad_crc = bytes.clone();
    let at = bad_crc.len() - 8;
    bad_crc[at] ^= 1;
    let path = write(dir.path(), "crc.gz", &bad_crc);
    let message = error_of(read_idx(&path));
    println!("{message}");
    assert_contains(&message, &["crc.gz", "gzip stream failed", "checksum"]);

    // Garbage after the gzip stream is not ignored.
    let mut garbage = bytes;
    garbage.extend_from_slice(b"junk");
    let path = write(dir.path(), "junk.gz", &garbage);
    let message = error_of(read_idx(&path));
    println!("{message}");
    assert_contains(&message, &["junk.gz", "gzip stream failed after"]);
}

#[test]
fn concatenated_gzip_members_are_one_stream() {
    let dir = tempfile::tempdir().unwrap();
    let plain = mnist_labels(10);
    let mut bytes = gzip(&plain[..5]);
    bytes.extend(gzip(&plain[5..]));
    let path = write(dir.path(), "two.gz", &bytes);
    assert_eq!(read_idx(&path).unwrap().data, plain[8..]);
}

// ---------------------------------------------------------------- CIFAR

#[test]
fn cifar10_batches_in_order_and_test_batch() {
    for sub in ["", "cifar-10-batches-bin/"] {
        let dir = cifar10_dir(sub);
        assert_eq!(
            read_cifar10(dir.path(), Part::Train, None).unwrap(),
            expected_cifar10_train()
        );
        let test = read_cifar10(dir.path(), Part::Test, None).unwrap();
        assert_eq!(test.labels, vec![9, 3, 0]);
        assert_eq!(test.shape, [3, 32, 32]);
        assert_eq!(&test.pixels[3072..6144], &cifar_record(&[], 101)[..]);
    }
}

#[test]
fn cifar10_missing_files_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let err = read_cifar10(dir.path(), Part::Test, None).unwrap_err();
    println!("{err:#}");
    let missing = err
        .downcast_ref::<MissingFiles>()
        .expect("MissingFiles as root error");
    assert_eq!(missing.what, "CIFAR-10 binary");
    assert_eq!(
        missing.expected,
        ["test_batch.bin", "cifar-10-batches-bin/test_batch.bin"]
    );
    let err = read_cifar10(dir.path(), Part::Train, None).unwrap_err();
    let missing = err.downcast_ref::<MissingFiles>().expect("MissingFiles");
    assert_eq!(missing.expected.len(), 10);
    assert!(missing.expected.contains(&"data_batch_5.bin".to_string()));

    let err = read_cifar100(dir.path(), Part::Train, Cifar100Labels::Fine, None).unwrap_err();
    let missing = err.downcast_ref::<MissingFiles>().expect("MissingFiles");
    assert_eq!(missing.what, "CIFAR-100 binary");
    assert_eq!(
        missing.expected,
        ["train.bin", "cifar-100-binary/train.bin"]
    );
}

#[test]
fn cifar10_partial_training_set() {
    let dir = cifar10_dir("cifar-10-batches-bin/");
    std::fs::remove_file(dir.path().join("cifar-10-batches-bin/data_batch_3.bin")).unwrap();
    let err = read_cifar10(dir.path(), Part::Train, None).unwrap_err();
    assert!(err.downcast_ref::<MissingFiles>().is_none());
    let message = format!("{err:#}");
    println!("{message}");
    assert_contains(
        &message,
        &[
            "cifar-10-batches-bin",
            "data_batch_3.bin missing",
            "found data_batch_1.bin, data_batch_2.bin, data_batch_4.bin, data_batch_5.bin",
        ],
    );
    // The test part is complete, and still reads.
    assert_eq!(read_cifar10(dir.path(), Part::Test, None).unwrap().len(), 3);
}

#[test]
fn cifar_size_not_a_multiple_of_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = cifar10_batch(&[1, 2, 3], 5);
    bytes.truncate(bytes.len() - 100);
    let path = write(dir.path(), "test_batch.bin", &bytes);
    let message = error_of(read_cifar10(dir.path(), Part::Test, None));
    println!("{message}");
    assert_contains(
        &message,
        &[
            &path.display().to_string(),
            "file size 9119 is not a multiple of the record size 3073",
            "2 whole records and 2973 leftover bytes",
        ],
    );
    let mut bytes = cifar_record(&[1, 2], 3);
    bytes.push(0);
    write(dir.path(), "cifar-100-binary/test.bin", &bytes);
    let message = error_of(read_cifar100(
        dir.path(),
        Part::Test,
        Cifar100Labels::Fine,
        None,
    ));
    println!("{message}");
    assert_contains(
        &message,
        &[
            "test.bin",
            "record size 3074 (coarse label byte + fine label byte + 3072 pixel bytes)",
            "1 whole records and 1 leftover bytes",
        ],
    );
}

#[test]
fn cifar_empty_file() {
    let dir = cifar10_dir("");
    write(dir.path(), "data_batch_4.bin", &[]);
    let message = error_of(read_cifar10(dir.path(), Part::Train, None));
    println!("{message}");
    assert_contains(&message, &["data_batch_4.bin", "empty file"]);
}

#[test]
fn cifar10_bad_label() {
    let dir = cifar10_dir("");
    write(dir.path(), "data_batch_2.bin", &cifar10_batch(&[4, 10], 1));
    let message = error_of(read_cifar10(dir.path(), Part::Train, None));
    println!("{message}");
    assert_contains(
        &message,
        &[
            "data_batch_2.bin",
            "label 10 of record 1 (byte offset 3073) is out of range: expected < 10",
        ],
    );
}

#[test]
fn cifar100_fine_and_coarse() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<u8> = [(3u8, 71u8), (19, 99), (0, 0)]
        .iter()
        .enumerate()
        .flat_map(|(i, &(coarse, fine))| cifar_record(&[coarse, fine], i as u8 + 1))
        .collect();
    write(dir.path(), "cifar-100-binary/train.bin", &records);
    write(dir.path(), "test.bin", &records[..3074]);
    let fine = read_cifar100(dir.path(), Part::Train, Cifar100Labels::Fine, None).unwrap();
    let coarse = read_cifar100(dir.path(), Part::Train, Cifar100Labels::Coarse, None).unwrap();
    assert_eq!(fine.labels, vec![71, 99, 0]);
    assert_eq!(coarse.labels, vec![3, 19, 0]);
    assert_eq!(fine.pixels, coarse.pixels);
    assert_eq!(&fine.pixels[3072..6144], &cifar_record(&[], 2)[..]);
    assert_eq!(fine.shape, [3, 32, 32]);
    let test = read_cifar100(dir.path(), Part::Test, Cifar100Labels::Coarse, None).unwrap();
    assert_eq!(test.labels, vec![3]);
}

#[test]
fn cifar100_bad_labels() {
    let dir = tempfile::tempdir().unwrap();
    let mut records = cifar_record(&[1, 2], 1);
    records.extend(cifar_record(&[5, 100], 2));
    write(dir.path(), "train.bin", &records);
    let message = error_of(read_cifar100(
        dir.path(),
        Part::Train,
        Cifar100Labels::Fine,
        None,
    ));
    println!("{message}");
    assert_contains(
        &message,
        &[
            "train.bin",
            "fine label 100 of record 1 (byte offset 3075)",
            "expected < 100",
        ],
    );

    let mut records = cifar_record(&[1, 2], 1);
    records.extend(cifar_record(&[20, 3], 2));
    write(dir.path(), "train.bin", &records);
    // Checked even when the fine labels are asked for: a bad byte means a bad file.
    let message = error_of(read_cifar100(
        dir.path(),
        Part::Train,
        Cifar100Labels::Fine,
        None,
    ));
    println!("{message}");
    assert_contains(
        &message,
        &[
            "train.bin",
            "coarse label 20 of record 1 (byte offset 3074)",
            "expected < 20",
        ],
    );
}

// ---------------------------------------------------------------- properties

fn small_idx() -> Vec<u8> {
    mnist_images(3)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Every proper prefix of a valid IDX file, plain or gzipped, is an error.
    #[test]
    fn any_truncation_is_an_error(fraction in 0.0f64..1.0, gz in any::<bool>()) {
        let full = if gz { gzip(&small_idx()) } else { small_idx() };
        let cut = ((full.len() as f64) * fraction) as usize;
        prop_assume!(cut < full.len());
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "file", &full[..cut]);
        prop_assert!(read_idx(&path).is_err(), "a prefix of {cut} of {} bytes was accepted", full.len());
    }

    /// A CIFAR file cut anywhere but between two records is an error (cut between
    /// records it is a valid, shorter file).
    #[test]
    fn any_cifar_truncation_is_an_error(cut in 0usize..3 * 3073) {
        prop_assume!(cut == 0 || cut % 3073 != 0);
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "test_batch.bin", &cifar10_batch(&[1, 2, 3], 1)[..cut]);
        prop_assert!(read_cifar10(dir.path(), Part::Test, None).is_err());
    }

    /// Arbitrary byte damage never panics (it may happen to leave a valid file).
    #[test]
    fn corruption_never_panics(at in 0usize..2000, value in any::<u8>(), gz in any::<bool>()) {
        let mut bytes = if gz { gzip(&small_idx()) } else { small_idx() };
        let at = at % bytes.len();
        bytes[at] = value;
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "file", &bytes);
        let _ = read_idx(&path);
    }
}

#[test]
fn every_truncation_of_a_small_gz_is_an_error() {
    // Exhaustive over the small gzip file: the proptest samples, this covers every cut.
    let full = gzip(&mnist_labels(30));
    let dir = tempfile::tempdir().unwrap();
    for cut in 0..full.len() {
        let path = write(dir.path(), "labels.gz", &full[..cut]);
        assert!(
            read_idx(&path).is_err(),
            "a prefix of {cut} bytes was accepted"
        );
    }
}

#[test]
fn absurd_dims_are_an_error_not_an_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "overflow", &idx(&[u32::MAX; 4], &[1, 2, 3]));
    let message = error_of(read_idx(&path));
    println!("{message}");
    assert_contains(
        &message,
        &["overflow", "describe more bytes than fit in memory"],
    );
    for (name, bytes) in [
        ("huge", idx(&[4_000_000_000, 4_000_000_000], &[1, 2, 3])),
        (
            "huge.gz",
            gzip(&idx(&[4_000_000_000, 4_000_000_000], &[1, 2, 3])),
        ),
    ] {
        let path = write(dir.path(), name, &bytes);
        let message = error_of(read_idx(&path));
        assert_contains(
            &message,
            &[
                name,
                "its header (dims [4000000000, 4000000000]) describes 16000000.0 TB of data",
                "more than the",
                "of memory available",
            ],
        );
    }
}
