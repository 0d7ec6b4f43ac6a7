//! Run ids: a readable slug of the swept values plus a short hash of the resolved
//! config, so that the same config always maps to the same run directory.

use super::types::{LossSpec, RunConfig};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

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
            slug_value(path, value).map(|v| format!("{key}={v}"))
        })
        .collect();
    let mut slug = sanitize(&slug.join("_"));
    slug.truncate(96);
    if slug.is_empty() {
        slug = "run".to_string();
    }
    format!("{slug}_{}", config_hash(config))
}

/// A value in a run id: scalars as written, lists joined with `x`, a loss section by its
/// [`LossSpec::slug`], another section object by its `name` (the hash tells apart two
/// objects of the same kind; an object without a name, by the hash alone, as always).
fn slug_value(path: &str, value: &Value) -> Option<String> {
    if path == "loss" {
        if let Ok(loss) = LossSpec::deserialize(value) {
            return Some(loss.slug());
        }
    }
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => items
            .iter()
            .map(|item| slug_value("", item))
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join("x")),
        Value::Object(map) => map.get("name").and_then(|name| slug_value("", name)),
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
