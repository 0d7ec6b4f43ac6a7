//! A group's test predictions pooled over its completed runs (each run's saved
//! `predictions.safetensors`): what the smoothed reliability diagrams draw and the
//! pooled bootstrap intervals of a group of several runs are computed from.

use super::summary::ReportRun;
use crate::calibration::Predictions;
use crate::store::RunDir;
use anyhow::{bail, Context, Result};

/// The test sets of a group's completed runs, one after the other.
pub struct PooledTest {
    pub runs: usize,
    pub raw: Predictions,
    /// Each run's logits divided by its own fitted temperature; `None` unless every
    /// run fitted one.
    pub scaled: Option<Predictions>,
}

/// The pooled test predictions of the completed runs among `runs`; `None` without any.
/// An error when a run's predictions cannot be read or the runs' class counts differ.
pub fn pooled_test<'a>(
    runs: impl IntoIterator<Item = &'a ReportRun>,
) -> Result<Option<PooledTest>> {
    let mut classes = None;
    let (mut logits, mut labels, mut scaled) = (vec![], vec![], Some(vec![]));
    let mut count = 0;
    for run in runs {
        let Some(metrics) = run.result().and_then(|r| r.metrics.as_ref()) else {
            continue;
        };
        let predictions = RunDir::new(&run.dir)
            .read_test_predictions()
            .with_context(|| format!("run {}", run.run_id))?;
        if *classes.get_or_insert(predictions.classes()) != predictions.classes() {
            bail!(
                "run {} has {} classes, the group's other runs {}",
                run.run_id,
                predictions.classes(),
                classes.unwrap_or_default()
            );
        }
        match (&mut scaled, &metrics.temperature) {
            (Some(scaled), Some(fit)) => scaled.extend(
                predictions
                    .logits()
                    .iter()
                    .map(|&z| (f64::from(z) / fit.temperature) as f32),
            ),
            _ => scaled = None,
        }
        logits.extend_from_slice(predictions.logits());
        labels.extend_from_slice(predictions.labels());
        count += 1;
    }
    let Some(classes) = classes else {
        return Ok(None);
    };
    let scaled = scaled
        .map(|s| Predictions::new(s, labels.clone(), classes))
        .transpose()?;
    Ok(Some(PooledTest {
        runs: count,
        raw: Predictions::new(logits, labels, classes)?,
        scaled,
    }))
}
