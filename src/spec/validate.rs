//! Range checks that the types alone cannot express, each naming its JSON path.

use super::parse::Invalid;
use super::types::*;
use crate::calibration::{Calibrator, MAX_BINS};

/// Upper bounds on model sizes: far beyond any published configuration (He et al. 2016
/// train ResNet-1202 of width 16), low enough that a typo is an error, not an attempt
/// to allocate petabytes.
const MAX_RESNET_DEPTH: usize = 1202;
const MAX_RESNET_WIDTH: usize = 1024;
const MAX_MLP_WIDTH: usize = 1 << 16;
/// Upper bounds on synthetic data: beyond any data set it stands in for (ImageNet-21k
/// has 21,841 classes; 2²⁴ values are a 4096×4096 image), so that no arithmetic on them
/// overflows. Whether a run of them fits in memory is checked before it starts.
const MAX_CLASSES: usize = 100_000;
const MAX_FEATURES: usize = 1 << 24;
const MAX_SAMPLES: usize = 1 << 31;
const MAX_CLUSTERS: usize = 1024;
/// An experiment name is a directory name, and its runs' logs and ids are built on it;
/// 100 bytes keep every path component well under the usual 255-byte limit.
const MAX_NAME_LEN: usize = 100;
/// Linux's PATH_MAX: a longer path cannot be opened, so it is a mistake, and it would
/// be copied into every result file.
const MAX_PATH_LEN: usize = 4096;

fn ensure(ok: bool, path: &str, message: impl FnOnce() -> String) -> Result<(), Invalid> {
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(path, message()))
    }
}

fn in_unit_interval(x: f64) -> bool {
    (0.0..1.0).contains(&x)
}

/// Range checks that types alone cannot express, section by section.
pub(super) fn validate(e: &Experiment) -> Result<(), Invalid> {
    ensure(is_valid_name(&e.name), "name", || {
        format!(
            "expected a directory name of 1 to {MAX_NAME_LEN} letters, digits, '.', '_' or '-', got {}",
            excerpt(&e.name)
        )
    })?;
    dataset(&e.dataset)?;
    model(&e.model, &e.dataset)?;
    loss(&e.loss)?;
    optimizer(&e.optimizer)?;
    training_and_schedule(&e.training, &e.schedule, e.optimizer.lr())?;
    evaluation(&e.evaluation, &e.dataset)
}

fn dataset(d: &DatasetSpec) -> Result<(), Invalid> {
    match d {
        DatasetSpec::Synthetic(s) => {
            ensure(
                (2..=MAX_CLASSES).contains(&s.classes),
                "dataset.classes",
                || format!("expected 2..={MAX_CLASSES} classes, got {}", s.classes),
            )?;
            ensure(
                (1..=MAX_FEATURES).contains(&s.features),
                "dataset.features",
                || format!("expected 1..={MAX_FEATURES} features, got {}", s.features),
            )?;
            if let Some(shape) = &s.shape {
                let product = shape.iter().try_fold(1usize, |p, &d| p.checked_mul(d));
                ensure(
                    !shape.is_empty() && product == Some(s.features),
                    "dataset.shape",
                    || {
                        format!(
                        "expected dimensions whose product is dataset.features = {}, got {shape:?}",
                        s.features
                    )
                    },
                )?;
            }
            ensure(
                (1..=MAX_CLUSTERS).contains(&s.clusters_per_class),
                "dataset.clusters_per_class",
                || format!("expected 1..={MAX_CLUSTERS}, got {}", s.clusters_per_class),
            )?;
            ensure(
                (2..=MAX_SAMPLES).contains(&s.train_size),
                "dataset.train_size",
                || format!("expected 2..={MAX_SAMPLES} samples, got {}", s.train_size),
            )?;
            ensure(
                (1..=MAX_SAMPLES).contains(&s.test_size),
                "dataset.test_size",
                || format!("expected 1..={MAX_SAMPLES} samples, got {}", s.test_size),
            )?;
            ensure(s.class_sep > 0.0, "dataset.class_sep", || {
                format!("expected a value > 0, got {}", s.class_sep)
            })?;
            ensure(
                in_unit_interval(s.label_noise),
                "dataset.label_noise",
                || format!("expected a value in [0, 1), got {}", s.label_noise),
            )?;
            let val = d.val_fraction();
            ensure(in_unit_interval(val), "dataset.val_fraction", || {
                format!("expected a value in [0, 1), got {val}")
            })?;
            let val_size = (val * s.train_size as f64).floor() as usize;
            ensure(
                val == 0.0 || (val_size >= 1 && val_size < s.train_size),
                "dataset.val_fraction",
                || {
                    format!(
                        "{val} of {} training samples leaves an empty split",
                        s.train_size
                    )
                },
            )?;
        }
        image => {
            let files = image.files().expect("an image data set");
            let dir = files.dir.to_string_lossy();
            ensure(dir.len() <= MAX_PATH_LEN, "dataset.dir", || {
                format!(
                    "expected a path of at most {MAX_PATH_LEN} bytes, got {} bytes: {}",
                    dir.len(),
                    excerpt(&dir)
                )
            })?;
            let val = files.val_fraction;
            ensure(in_unit_interval(val), "dataset.val_fraction", || {
                format!("expected a value in [0, 1), got {val}")
            })?;
            for (key, subset) in [
                ("train_subset", files.train_subset),
                ("test_subset", files.test_subset),
            ] {
                ensure(subset != Some(0), &format!("dataset.{key}"), || {
                    "expected at least 1 sample, got 0 (leave it out to use every sample)".into()
                })?;
            }
            if let Some(n) = files.train_subset {
                ensure(
                    val == 0.0 || n >= 2 && (val * n as f64).floor() >= 1.0,
                    "dataset.val_fraction",
                    || format!("{val} of {n} training samples leaves an empty split"),
                )?;
            }
        }
    }
    Ok(())
}

fn model(m: &ModelSpec, dataset: &DatasetSpec) -> Result<(), Invalid> {
    match m {
        ModelSpec::Mlp(m) => {
            if let Some(i) = m.hidden.iter().position(|&w| w == 0 || w > MAX_MLP_WIDTH) {
                return Err(Invalid::new(
                    format!("model.hidden[{i}]"),
                    format!(
                        "expected a layer width in 1..={MAX_MLP_WIDTH}, got {}",
                        m.hidden[i]
                    ),
                ));
            }
            ensure(in_unit_interval(m.dropout), "model.dropout", || {
                format!("expected a value in [0, 1), got {}", m.dropout)
            })?;
        }
        ModelSpec::Lenet5(m) => {
            ensure(in_unit_interval(m.dropout), "model.dropout", || {
                format!("expected a value in [0, 1), got {}", m.dropout)
            })?;
        }
        ModelSpec::Resnet(m) => {
            ensure(
                m.depth >= 8 && m.depth <= MAX_RESNET_DEPTH && (m.depth - 2) % 6 == 0,
                "model.depth",
                || {
                    format!(
                        "expected a depth 6n+2 from 8 to {MAX_RESNET_DEPTH} (8, 14, 20, 32, 44, 56, 110, ...), got {}",
                        m.depth
                    )
                },
            )?;
            ensure(
                (1..=MAX_RESNET_WIDTH).contains(&m.width),
                "model.width",
                || format!("expected 1..={MAX_RESNET_WIDTH} channels, got {}", m.width),
            )?;
        }
    }
    let convolutional = !matches!(m, ModelSpec::Mlp(_));
    let images = match dataset {
        DatasetSpec::Synthetic(s) => s.shape.as_ref().is_some_and(|shape| shape.len() == 3),
        _ => true,
    };
    ensure(!convolutional || images, "model.name", || {
        format!(
            "a convolutional model needs images, but dataset `{}` has flat feature vectors; use `mlp`, or give the synthetic data a `shape` [channels, height, width]",
            dataset.name()
        )
    })
}

/// The largest focusing parameter γ accepted: `(1−p)^γ` underflows f32 for any p
/// below 1 − 10⁻¹ long before, and published schedules stay below 10.
const MAX_GAMMA: f64 = 100.0;

/// The most steps a focal γ schedule may have.
const MAX_GAMMA_STEPS: usize = 16;

fn loss(l: &LossSpec) -> Result<(), Invalid> {
    let weight = |x: f64, path: &str| {
        ensure(x >= 0.0 && x.is_finite(), path, || {
            format!("expected a finite value ≥ 0, got {x}")
        })
    };
    let gamma = |g: f64, path: &str| {
        ensure((0.0..=MAX_GAMMA).contains(&g), path, || {
            format!("expected a focusing parameter γ in [0, {MAX_GAMMA}], got {g}")
        })
    };
    match l {
        LossSpec::SmoothedCe(l) => ensure(in_unit_interval(l.smoothing), "loss.smoothing", || {
            format!("expected a smoothing ε in [0, 1), got {}", l.smoothing)
        }),
        LossSpec::Focal(f) => gamma(f.gamma, "loss.gamma"),
        LossSpec::FocalAdaptive(f) => {
            ensure(f.schedule.len() <= MAX_GAMMA_STEPS, "loss.schedule", || {
                format!(
                    "expected at most {MAX_GAMMA_STEPS} steps, got {}",
                    f.schedule.len()
                )
            })?;
            let mut previous = 0.0;
            for (i, step) in f.schedule.iter().enumerate() {
                ensure(
                    step.below > previous && step.below <= 1.0,
                    &format!("loss.schedule[{i}].below"),
                    || {
                        format!(
                            "expected a probability in ({previous}, 1], above the previous step's, got {}",
                            step.below
                        )
                    },
                )?;
                gamma(step.gamma, &format!("loss.schedule[{i}].gamma"))?;
                previous = step.below;
            }
            gamma(f.gamma, "loss.gamma")
        }
        LossSpec::ConfidencePenalty(c) => weight(c.beta, "loss.beta"),
        LossSpec::Brier(_) => Ok(()),
        LossSpec::Mmce(m) => weight(m.lambda, "loss.lambda"),
        LossSpec::Mbls(m) => {
            weight(m.margin, "loss.margin")?;
            weight(m.alpha, "loss.alpha")
        }
    }
}

fn optimizer(o: &OptimizerSpec) -> Result<(), Invalid> {
    let lr = o.lr();
    ensure(lr > 0.0 && lr.is_finite(), "optimizer.lr", || {
        format!("expected a learning rate > 0, got {lr}")
    })?;
    match o {
        OptimizerSpec::Sgd(s) => {
            ensure(in_unit_interval(s.momentum), "optimizer.momentum", || {
                format!("expected a value in [0, 1), got {}", s.momentum)
            })?;
            ensure(
                !s.nesterov || s.momentum > 0.0,
                "optimizer.nesterov",
                || "Nesterov momentum needs momentum > 0".into(),
            )?;
            ensure(s.weight_decay >= 0.0, "optimizer.weight_decay", || {
                format!("expected a value ≥ 0, got {}", s.weight_decay)
            })?;
        }
        OptimizerSpec::Adamw(a) => {
            ensure(in_unit_interval(a.beta1), "optimizer.beta1", || {
                format!("expected a value in [0, 1), got {}", a.beta1)
            })?;
            ensure(in_unit_interval(a.beta2), "optimizer.beta2", || {
                format!("expected a value in [0, 1), got {}", a.beta2)
            })?;
            ensure(a.eps > 0.0, "optimizer.eps", || {
                format!("expected a value > 0, got {}", a.eps)
            })?;
            ensure(a.weight_decay >= 0.0, "optimizer.weight_decay", || {
                format!("expected a value ≥ 0, got {}", a.weight_decay)
            })?;
        }
    }
    Ok(())
}

/// The largest mixup α accepted: Beta(α, α) is already all but the point ½ at 1000.
const MAX_MIXUP_ALPHA: f64 = 1000.0;

/// The schedule is checked with the training section: warm-up is bounded by the epochs
/// and the cosine floor by the optimiser's learning rate `lr`.
fn training_and_schedule(
    training: &TrainingSpec,
    schedule: &ScheduleSpec,
    lr: f64,
) -> Result<(), Invalid> {
    let epochs = training.epochs;
    ensure(epochs >= 1, "training.epochs", || {
        "expected at least 1 epoch, got 0".into()
    })?;
    ensure(training.batch_size >= 1, "training.batch_size", || {
        "expected a batch size ≥ 1, got 0".into()
    })?;
    ensure(
        training.eval_batch_size >= 1,
        "training.eval_batch_size",
        || "expected a batch size ≥ 1, got 0".into(),
    )?;
    if let Some(mixup) = &training.mixup {
        ensure(
            mixup.alpha > 0.0 && mixup.alpha <= MAX_MIXUP_ALPHA,
            "training.mixup.alpha",
            || {
                format!(
                    "expected a Beta(α, α) parameter α in (0, {MAX_MIXUP_ALPHA}], got {}",
                    mixup.alpha
                )
            },
        )?;
    }
    let warmup = schedule.warmup_epochs();
    ensure(
        (0.0..=epochs as f64).contains(&warmup),
        "schedule.warmup_epochs",
        || format!("expected a value in [0, training.epochs = {epochs}], got {warmup}"),
    )?;
    match schedule {
        ScheduleSpec::Constant(_) => {}
        ScheduleSpec::Multistep(m) => {
            ensure(m.gamma > 0.0, "schedule.gamma", || {
                format!("expected a value > 0, got {}", m.gamma)
            })?;
            for (i, w) in m.milestones.windows(2).enumerate() {
                ensure(
                    w[0] < w[1],
                    &format!("schedule.milestones[{}]", i + 1),
                    || {
                        format!(
                            "expected strictly increasing epochs, got {} after {}",
                            w[1], w[0]
                        )
                    },
                )?;
            }
        }
        ScheduleSpec::Cosine(c) => {
            ensure((0.0..=lr).contains(&c.min_lr), "schedule.min_lr", || {
                format!(
                    "expected a value in [0, optimizer.lr = {lr}], got {}",
                    c.min_lr
                )
            })?
        }
    }
    Ok(())
}

fn evaluation(evaluation: &EvaluationSpec, dataset: &DatasetSpec) -> Result<(), Invalid> {
    let bins = evaluation.bins.get();
    ensure(bins <= MAX_BINS, "evaluation.bins", || {
        format!("expected at most {MAX_BINS} bins, got {bins}")
    })?;
    ensure(
        !evaluation.temperature_scaling || dataset.val_fraction() > 0.0,
        "evaluation.temperature_scaling",
        || "temperature scaling needs a validation split: set dataset.val_fraction > 0".into(),
    )?;
    let bootstrap = &evaluation.bootstrap;
    ensure(
        bootstrap.resamples <= BootstrapSpec::MAX_RESAMPLES,
        "evaluation.bootstrap.resamples",
        || {
            format!(
                "expected at most {} resamples (0 for none), got {}",
                BootstrapSpec::MAX_RESAMPLES,
                bootstrap.resamples
            )
        },
    )?;
    ensure(
        bootstrap.level > 0.0 && bootstrap.level < 1.0,
        "evaluation.bootstrap.level",
        || format!("expected a level in (0, 1), got {}", bootstrap.level),
    )?;
    let listed = &evaluation.calibrators;
    for (i, calibrator) in listed.iter().enumerate() {
        let path = format!("evaluation.calibrators[{i}]");
        ensure(!listed[..i].contains(calibrator), &path, || {
            format!("\"{calibrator}\" is listed twice")
        })?;
        // Temperature scaling's own switch has the check above.
        let fitted = *calibrator != Calibrator::Temperature;
        ensure(!fitted || dataset.val_fraction() > 0.0, &path, || {
            format!(
                "\"{calibrator}\" is fitted on the validation split: set dataset.val_fraction > 0"
            )
        })?;
    }
    ensure(
        evaluation.temperature_scaling
            || listed == &[Calibrator::Temperature]
            || !listed.contains(&Calibrator::Temperature),
        "evaluation.calibrators",
        || {
            "lists \"temperature\" while evaluation.temperature_scaling is false: \
             leave one of them out"
                .into()
        },
    )?;
    Ok(())
}

/// `"text"`, or its first characters and its length when it is long: messages
/// never echo a whole huge value.
pub fn excerpt(text: &str) -> String {
    const SHOWN: usize = 40;
    match text.char_indices().nth(SHOWN) {
        None => format!("{text:?}"),
        Some((end, _)) => format!(
            "{:?}... ({} characters)",
            &text[..end],
            text.chars().count()
        ),
    }
}

fn is_valid_name(name: &str) -> bool {
    name.len() <= MAX_NAME_LEN
        && !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}
