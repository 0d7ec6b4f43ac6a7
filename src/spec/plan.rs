//! Sweep expansion: the experiment's defaults-filled JSON is the template, each sweep
//! path must exist in it, and every combination is re-parsed and re-validated as a
//! whole experiment so a swept value gets exactly the checks a written one gets.

use super::types::*;
use super::SpecError;
use crate::calibration::MAX_BINS;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Upper bounds on model sizes: far beyond any published configuration (He et al. 2016
/// train ResNet-1202 of width 16), low enough that a typo is an error, not an attempt
/// to allocate petabytes.
const MAX_RESNET_DEPTH: usize = 1202;
const MAX_RESNET_WIDTH: usize = 1024;
const MAX_MLP_WIDTH: usize = 1 << 16;

/// Settings that describe the experiment rather than a run, so they cannot be swept.
const NOT_SWEEPABLE: [&str; 4] = ["name", "device", "save_model", "sweep"];

/// The validated experiment and every run it expands to, in sweep order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub file: PathBuf,
    /// The file's text exactly as given (saved beside the results).
    pub text: String,
    /// The experiment with defaults filled in (sweep values not applied).
    pub experiment: Experiment,
    pub runs: Vec<PlannedRun>,
}

/// One resolved run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlannedRun {
    /// `<slug of swept values>_<8 hex digits of the config hash>`; a directory name.
    pub id: String,
    /// The swept settings of this run, in sweep order.
    pub swept: Vec<(String, Value)>,
    pub config: RunConfig,
}

/// A problem at a JSON path, before the file name is attached.
struct Invalid {
    path: String,
    message: String,
}

impl Invalid {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    fn in_file(self, file: &Path) -> SpecError {
        SpecError::Invalid {
            file: file.to_path_buf(),
            path: self.path,
            message: self.message,
        }
    }
}

pub(super) fn expand(file: &Path, text: &str, raw: Value) -> Result<Plan, SpecError> {
    let experiment = parse_experiment(&raw).map_err(|e| e.in_file(file))?;
    let mut template = serde_json::to_value(&experiment).expect("experiment serialises");
    template
        .as_object_mut()
        .expect("experiment is an object")
        .remove("sweep");

    let axes = sweep_axes(&experiment.sweep, &template).map_err(|e| e.in_file(file))?;
    let mut runs: Vec<PlannedRun> = Vec::new();
    for combination in cartesian_product(&axes) {
        let mut value = template.clone();
        for (path, v) in &combination {
            set_path(&mut value, path, (*v).clone());
        }
        let resolved = parse_experiment(&value).map_err(|e| {
            let label = combination
                .iter()
                .map(|(p, v)| format!("{p}={v}"))
                .collect::<Vec<_>>()
                .join(", ");
            Invalid::new(
                "sweep",
                format!(
                    "the run with {label} is invalid: at `{}`: {}",
                    e.path, e.message
                ),
            )
            .in_file(file)
        })?;
        let swept: Vec<(String, Value)> = combination
            .into_iter()
            .map(|(p, v)| (p.to_string(), v.clone()))
            .collect();
        let config = resolved.run_config();
        let id = run_id(&swept, &config);
        if let Some(other) = runs.iter().find(|r| r.id == id) {
            let message = if other.config == config {
                format!("two sweep combinations resolve to the same run `{id}`")
            } else {
                format!("run id collision for `{id}`; change a swept value")
            };
            return Err(Invalid::new("sweep", message).in_file(file));
        }
        runs.push(PlannedRun { id, swept, config });
    }
    Ok(Plan {
        file: file.to_path_buf(),
        text: text.to_string(),
        experiment,
        runs,
    })
}

/// Deserialises and validates one whole experiment value.
fn parse_experiment(value: &Value) -> Result<Experiment, Invalid> {
    let experiment: Experiment =
        deserialize_at(value).map_err(|e| refine_section_error(value, e))?;
    validate(&experiment)?;
    Ok(experiment)
}

fn deserialize_at<T: DeserializeOwned>(value: &Value) -> Result<T, Invalid> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = match e.path().to_string() {
            p if p == "." => String::new(),
            p => p,
        };
        Invalid::new(path, e.inner().to_string())
    })
}

/// serde reports errors inside internally tagged sections (`{"name": "sgd", ...}`) at the
/// section itself; re-parse that section as its variant to find the exact key.
fn refine_section_error(experiment: &Value, error: Invalid) -> Invalid {
    let Some(section) = experiment.get(&error.path) else {
        return error;
    };
    let Some(name) = section.get("name").and_then(Value::as_str) else {
        return error;
    };
    let mut params = section.clone();
    if let Some(map) = params.as_object_mut() {
        map.remove("name");
    }
    let inner = match (error.path.as_str(), name) {
        ("dataset", "synthetic") => deserialize_at::<SyntheticSpec>(&params).err(),
        ("dataset", "mnist" | "fashion-mnist") => deserialize_at::<MnistSpec>(&params).err(),
        ("dataset", "cifar10") => deserialize_at::<CifarSpec>(&params).err(),
        ("dataset", "cifar100") => deserialize_at::<Cifar100Spec>(&params).err(),
        ("model", "mlp") => deserialize_at::<MlpSpec>(&params).err(),
        ("model", "lenet5") => deserialize_at::<Lenet5Spec>(&params).err(),
        ("model", "resnet") => deserialize_at::<ResnetSpec>(&params).err(),
        ("loss", "smoothed_ce") => deserialize_at::<SmoothedCeSpec>(&params).err(),
        ("optimizer", "sgd") => deserialize_at::<SgdSpec>(&params).err(),
        ("optimizer", "adamw") => deserialize_at::<AdamwSpec>(&params).err(),
        ("schedule", "constant") => deserialize_at::<ConstantSchedule>(&params).err(),
        ("schedule", "multistep") => deserialize_at::<MultistepSchedule>(&params).err(),
        ("schedule", "cosine") => deserialize_at::<CosineSchedule>(&params).err(),
        _ => None,
    };
    match inner {
        Some(inner) if !inner.path.is_empty() => {
            Invalid::new(format!("{}.{}", error.path, inner.path), inner.message)
        }
        Some(inner) => Invalid::new(error.path, inner.message),
        None => error,
    }
}

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

/// Range checks that types alone cannot express.
fn validate(e: &Experiment) -> Result<(), Invalid> {
    ensure(is_valid_name(&e.name), "name", || {
        format!(
            "expected a non-empty directory name of letters, digits, '.', '_' or '-', got {:?}",
            e.name
        )
    })?;
    match &e.dataset {
        DatasetSpec::Synthetic(s) => {
            ensure(s.classes >= 2, "dataset.classes", || {
                format!("expected at least 2 classes, got {}", s.classes)
            })?;
            ensure(s.features >= 1, "dataset.features", || {
                "expected at least 1 feature, got 0".into()
            })?;
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
                s.clusters_per_class >= 1,
                "dataset.clusters_per_class",
                || "expected at least 1, got 0".into(),
            )?;
            ensure(s.train_size >= 2, "dataset.train_size", || {
                format!("expected at least 2 samples, got {}", s.train_size)
            })?;
            ensure(s.test_size >= 1, "dataset.test_size", || {
                "expected at least 1 sample, got 0".into()
            })?;
            ensure(s.class_sep > 0.0, "dataset.class_sep", || {
                format!("expected a value > 0, got {}", s.class_sep)
            })?;
            ensure(
                in_unit_interval(s.label_noise),
                "dataset.label_noise",
                || format!("expected a value in [0, 1), got {}", s.label_noise),
            )?;
            let val = e.dataset.val_fraction();
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
    match &e.model {
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
    let convolutional = !matches!(e.model, ModelSpec::Mlp(_));
    let images = match &e.dataset {
        DatasetSpec::Synthetic(s) => s.shape.as_ref().is_some_and(|shape| shape.len() == 3),
        _ => true,
    };
    ensure(!convolutional || images, "model.name", || {
        format!(
            "a convolutional model needs images, but dataset `{}` has flat feature vectors; use `mlp`, or give the synthetic data a `shape` [channels, height, width]",
            e.dataset.name()
        )
    })?;
    match &e.loss {
        LossSpec::SmoothedCe(l) => ensure(in_unit_interval(l.smoothing), "loss.smoothing", || {
            format!("expected a smoothing ε in [0, 1), got {}", l.smoothing)
        })?,
    }
    let lr = e.optimizer.lr();
    ensure(lr > 0.0 && lr.is_finite(), "optimizer.lr", || {
        format!("expected a learning rate > 0, got {lr}")
    })?;
    match &e.optimizer {
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
    let epochs = e.training.epochs;
    ensure(epochs >= 1, "training.epochs", || {
        "expected at least 1 epoch, got 0".into()
    })?;
    ensure(e.training.batch_size >= 1, "training.batch_size", || {
        "expected a batch size ≥ 1, got 0".into()
    })?;
    ensure(
        e.training.eval_batch_size >= 1,
        "training.eval_batch_size",
        || "expected a batch size ≥ 1, got 0".into(),
    )?;
    let warmup = e.schedule.warmup_epochs();
    ensure(
        (0.0..=epochs as f64).contains(&warmup),
        "schedule.warmup_epochs",
        || format!("expected a value in [0, training.epochs = {epochs}], got {warmup}"),
    )?;
    match &e.schedule {
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
    let bins = e.evaluation.bins.get();
    ensure(bins <= MAX_BINS, "evaluation.bins", || {
        format!("expected at most {MAX_BINS} bins, got {bins}")
    })?;
    ensure(
        !e.evaluation.temperature_scaling || e.dataset.val_fraction() > 0.0,
        "evaluation.temperature_scaling",
        || "temperature scaling needs a validation split: set dataset.val_fraction > 0".into(),
    )?;
    Ok(())
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Checks each sweep axis against the template and returns them in file order.
fn sweep_axes<'a>(
    sweep: &'a Map<String, Value>,
    template: &Value,
) -> Result<Vec<(&'a str, &'a [Value])>, Invalid> {
    let mut axes = Vec::new();
    for (path, values) in sweep {
        let at = format!("sweep[{path:?}]");
        let root = path.split('.').next().unwrap_or_default();
        if NOT_SWEEPABLE.contains(&root) {
            return Err(Invalid::new(at, format!("`{root}` cannot be swept")));
        }
        lookup_path(template, path).map_err(|message| Invalid::new(&at, message))?;
        let values = match values {
            Value::Array(v) if !v.is_empty() => v.as_slice(),
            Value::Array(_) => {
                return Err(Invalid::new(
                    at,
                    "expected a non-empty list of values, got []",
                ))
            }
            other => {
                return Err(Invalid::new(
                    at,
                    format!("expected a list of values, got {other}"),
                ))
            }
        };
        for (i, v) in values.iter().enumerate() {
            if values[..i].contains(v) {
                return Err(Invalid::new(
                    format!("{at}[{i}]"),
                    format!("{v} is listed twice"),
                ));
            }
            let mut candidate = template.clone();
            set_path(&mut candidate, path, v.clone());
            parse_experiment(&candidate).map_err(|e| {
                let mut message = format!("{v} is not valid for `{}`: {}", e.path, e.message);
                if let Some(section) = path.strip_suffix(".name") {
                    message += &format!(
                        " (the other `{section}` settings stay as written; to sweep between \
                         kinds, sweep `{section}` itself with a list of complete objects)"
                    );
                }
                Invalid::new(format!("{at}[{i}]"), message)
            })?;
        }
        axes.push((path.as_str(), values));
    }
    Ok(axes)
}

/// Finds a dotted path in a JSON object tree; the error lists the keys that do exist.
fn lookup_path<'v>(root: &'v Value, path: &str) -> Result<&'v Value, String> {
    let mut node = root;
    let mut walked = Vec::new();
    for key in path.split('.') {
        let Some(map) = node.as_object() else {
            return Err(format!(
                "`{}` is not an object, so it has no `{key}`",
                walked.join(".")
            ));
        };
        node = map.get(key).ok_or_else(|| {
            let place = if walked.is_empty() {
                "the top level".to_string()
            } else {
                format!("`{}`", walked.join("."))
            };
            let known: Vec<&str> = map.keys().map(String::as_str).collect();
            format!(
                "no setting `{path}`: {place} has no `{key}` (it has: {})",
                known.join(", ")
            )
        })?;
        walked.push(key);
    }
    Ok(node)
}

/// Sets an existing dotted path (checked by [`lookup_path`] first).
fn set_path(root: &mut Value, path: &str, value: Value) {
    let mut node = root;
    for key in path.split('.') {
        node = node.get_mut(key).expect("sweep path was checked");
    }
    *node = value;
}

/// All combinations of the axes, first axis outermost.
fn cartesian_product<'a>(axes: &[(&'a str, &'a [Value])]) -> Vec<Vec<(&'a str, &'a Value)>> {
    axes.iter().fold(vec![Vec::new()], |acc, (path, values)| {
        acc.iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut next = prefix.clone();
                    next.push((*path, v));
                    next
                })
            })
            .collect()
    })
}

/// The config hash: SHA-256 of the canonical JSON of the resolved config (struct field
/// order, every default explicit), first 8 hex digits. The device is not part of
/// [`RunConfig`], so the same run has the same id on CPU and GPU.
pub fn config_hash(config: &RunConfig) -> String {
    let config = RunConfig {
        dataset: config.dataset.without_dir(),
        ..config.clone()
    };
    let canonical = serde_json::to_string(&config).expect("config serialises");
    let digest = Sha256::digest(canonical.as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// `smoothing=0.1_seed=0_1a2b3c4d`: the last segment of each swept path with its value,
/// then the config hash. `run_<hash>` when nothing is swept.
pub fn run_id(swept: &[(String, Value)], config: &RunConfig) -> String {
    let slug: Vec<String> = swept
        .iter()
        .filter_map(|(path, value)| {
            let key = path.rsplit('.').next().unwrap_or(path);
            slug_value(value).map(|v| format!("{key}={v}"))
        })
        .collect();
    let mut slug = sanitize(&slug.join("_"));
    slug.truncate(96);
    if slug.is_empty() {
        slug = "run".to_string();
    }
    format!("{slug}_{}", config_hash(config))
}

/// A value in a run id: scalars as written, lists joined with `x`, a section object by
/// its `name` (the hash tells apart two objects of the same kind).
fn slug_value(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => items
            .iter()
            .map(slug_value)
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join("x")),
        Value::Object(map) => map.get("name").and_then(slug_value),
        Value::Null => None,
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '=' | '+') {
                c
            } else {
                '-'
            }
        })
        .collect()
}
