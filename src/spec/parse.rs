//! From a JSON value to a validated [`Experiment`], with the JSON path of every error.

use super::types::*;
use super::validate::validate;
use super::SpecError;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::Path;

/// A problem at a JSON path, before the file name is attached.
pub(super) struct Invalid {
    pub path: String,
    pub message: String,
}

/// The most characters of a JSON path and of a message an error shows: serde's messages
/// quote the offending key or value, which may be megabytes long.
const MAX_PATH_SHOWN: usize = 200;
const MAX_MESSAGE_SHOWN: usize = 600;

impl Invalid {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: elide(path.into(), MAX_PATH_SHOWN),
            message: elide(message.into(), MAX_MESSAGE_SHOWN),
        }
    }

    pub fn in_file(self, file: &Path) -> SpecError {
        SpecError::Invalid {
            file: file.to_path_buf(),
            path: self.path,
            message: self.message,
        }
    }
}

/// `text`, or when it is longer than `max` characters its start and end around a note
/// of how much was left out.
fn elide(text: String, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text;
    }
    let keep = max / 2;
    let head: String = text.chars().take(keep).collect();
    let tail: String = text.chars().skip(count - keep).collect();
    format!(
        "{head} … ({} characters left out) … {tail}",
        count - 2 * keep
    )
}

/// Deserialises and validates one whole experiment value.
pub(super) fn parse_experiment(value: &Value) -> Result<Experiment, Invalid> {
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
        ("loss", "focal") => deserialize_at::<FocalSpec>(&params).err(),
        ("loss", "focal_adaptive") => deserialize_at::<FocalAdaptiveSpec>(&params).err(),
        ("loss", "confidence_penalty") => deserialize_at::<ConfidencePenaltySpec>(&params).err(),
        ("loss", "brier") => deserialize_at::<BrierSpec>(&params).err(),
        ("loss", "mmce") => deserialize_at::<MmceSpec>(&params).err(),
        ("loss", "mbls") => deserialize_at::<MblsSpec>(&params).err(),
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
