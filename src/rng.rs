//! Seeded randomness. candle's CPU device cannot be seeded, so every random draw a run
//! makes (initialisation, split, shuffling, dropout, augmentation, mixup) comes from ChaCha8 generators
//! derived from the run's seed, one independent stream per purpose: changing how many
//! numbers one purpose draws never shifts another's.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The purposes that draw random numbers, each with its own ChaCha stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    SyntheticCentres = 1,
    SyntheticTrain = 2,
    SyntheticTest = 3,
    ValidationSplit = 4,
    WeightInit = 5,
    Shuffle = 6,
    Dropout = 7,
    Augmentation = 8,
    Mixup = 9,
    Bootstrap = 10,
}

pub fn seeded(seed: u64, stream: Stream) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream as u64);
    rng
}

/// A run's training-time generators (their serde form is the exact stream position, so
/// a checkpoint resumes them where they stopped).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Rngs {
    pub shuffle: ChaCha8Rng,
    pub dropout: ChaCha8Rng,
    pub augmentation: ChaCha8Rng,
    /// Checkpoints written before mixup existed have no mixup stream; their runs never
    /// draw from it, so any stream will do for them.
    #[serde(default = "unused_mixup_stream")]
    pub mixup: ChaCha8Rng,
}

fn unused_mixup_stream() -> ChaCha8Rng {
    seeded(0, Stream::Mixup)
}

impl Rngs {
    /// The generators of a run with `seed`, at the start of training.
    pub fn seeded(seed: u64) -> Self {
        Self {
            shuffle: seeded(seed, Stream::Shuffle),
            dropout: seeded(seed, Stream::Dropout),
            augmentation: seeded(seed, Stream::Augmentation),
            mixup: seeded(seed, Stream::Mixup),
        }
    }
}
