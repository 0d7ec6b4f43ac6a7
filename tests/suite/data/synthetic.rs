//! The synthetic data set and the seeded validation split.

use smoothlab::data::{generate_synthetic, split_validation, HostSplit};
use smoothlab::spec::SyntheticSpec;

fn spec() -> SyntheticSpec {
    SyntheticSpec {
        classes: 3,
        features: 5,
        train_size: 900,
        test_size: 300,
        ..SyntheticSpec::default()
    }
}

#[test]
fn generation_is_deterministic_and_shaped() {
    let a = generate_synthetic(&spec());
    let b = generate_synthetic(&spec());
    assert_eq!(a.train, b.train);
    assert_eq!(a.test, b.test);
    assert_eq!((a.train.len(), a.test.len(), a.classes), (900, 300, 3));
    assert_eq!(a.train.features.len(), 900 * 5);
    assert_eq!(a.train.sample_shape, vec![5]);
    assert!(a.train.labels.iter().all(|&y| y < 3));
    // Every class appears in a balanced-ish way (clusters are drawn uniformly).
    for class in 0..3 {
        let count = a.train.labels.iter().filter(|&&y| y == class).count();
        assert!((240..=360).contains(&count), "class {class}: {count}");
    }
    let other = generate_synthetic(&SyntheticSpec {
        data_seed: 1,
        ..spec()
    });
    assert_ne!(a.train.features, other.train.features);
}

#[test]
fn a_shape_only_reshapes_the_samples() {
    let flat = generate_synthetic(&SyntheticSpec {
        features: 12,
        ..spec()
    });
    let images = generate_synthetic(&SyntheticSpec {
        features: 12,
        shape: Some(vec![3, 2, 2]),
        ..spec()
    });
    assert_eq!(images.train.sample_shape, vec![3, 2, 2]);
    assert_eq!(images.test.sample_shape, vec![3, 2, 2]);
    assert_eq!(images.train.features, flat.train.features);
    assert_eq!(images.train.labels, flat.train.labels);
}

#[test]
fn the_test_set_does_not_depend_on_the_training_size() {
    let small = generate_synthetic(&SyntheticSpec {
        train_size: 100,
        ..spec()
    });
    assert_eq!(small.test, generate_synthetic(&spec()).test);
}

#[test]
fn label_noise_replaces_the_requested_share_and_nothing_else() {
    let clean = generate_synthetic(&SyntheticSpec {
        train_size: 5000,
        ..spec()
    });
    let noisy = generate_synthetic(&SyntheticSpec {
        train_size: 5000,
        label_noise: 0.3,
        ..spec()
    });
    assert_eq!(clean.train.features, noisy.train.features);
    // A replaced label is uniform over the K = 3 classes, so it differs with probability
    // 0.3·(2/3) = 0.2 (standard deviation ≈ 0.006 over 5000 samples).
    let differ = clean
        .train
        .labels
        .iter()
        .zip(&noisy.train.labels)
        .filter(|(a, b)| a != b)
        .count();
    let share = differ as f64 / 5000.0;
    assert!((0.17..0.23).contains(&share), "{share}");
}

#[test]
fn validation_split_is_seeded_disjoint_and_complete() {
    let data = generate_synthetic(&spec()).train;
    let (train, val) = split_validation(data.clone(), 0.1, 7);
    let val = val.unwrap();
    assert_eq!((train.len(), val.len()), (810, 90));
    // Same seed, same split; another seed, another split.
    let (train_again, _) = split_validation(data.clone(), 0.1, 7);
    assert_eq!(train, train_again);
    let (other, _) = split_validation(data.clone(), 0.1, 8);
    assert_ne!(train, other);
    // Together the parts are exactly the original samples.
    let rows = |s: &HostSplit| -> Vec<Vec<u32>> {
        let mut rows: Vec<Vec<u32>> = s
            .features
            .chunks(5)
            .zip(&s.labels)
            .map(|(x, &y)| x.iter().map(|v| v.to_bits()).chain([y]).collect())
            .collect();
        rows.sort();
        rows
    };
    let mut joined = rows(&train);
    joined.extend(rows(&val));
    joined.sort();
    assert_eq!(joined, rows(&data));
    // Both parts keep the original order (the training part is compacted in place).
    let position = |row: &[f32]| data.features.chunks(5).position(|x| x == row).unwrap();
    for part in [&train, &val] {
        let positions: Vec<usize> = part.features.chunks(5).map(position).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]));
    }
    assert!(split_validation(data.clone(), 0.0, 7).1.is_none());
}
