//! What a sweep prints about its runs.

use super::Summary;
use crate::calibration::catalog::{self, ACCURACY, ECE, NLL, TEMPERATURE, TRUE_LOGIT_GAP};
use crate::store::RunResult;
use std::fmt::Write as _;

impl Summary {
    pub fn line(&self) -> String {
        let mut line = format!(
            "{} run(s): {} completed now, {} already done, {} failed",
            self.completed.len()
                + self.skipped.len()
                + self.failed.len()
                + self.interrupted.len()
                + self.not_started.len(),
            self.completed.len(),
            self.skipped.len(),
            self.failed.len()
        );
        if !self.interrupted.is_empty() || !self.not_started.is_empty() {
            let _ = write!(
                line,
                ", {} interrupted, {} not started (rerun the same command to continue)",
                self.interrupted.len(),
                self.not_started.len()
            );
        }
        for (id, reason) in &self.failed {
            let _ = write!(line, "\n  failed: {id}: {reason}");
        }
        line
    }
}

/// The line printed when a run completes.
pub(super) fn describe_outcome(result: &RunResult) -> String {
    let Some(m) = &result.metrics else {
        return "completed".to_string();
    };
    let mut line = format!(
        "test {}",
        catalog::describe(&m.test, &[&ACCURACY, &NLL, &ECE, &TRUE_LOGIT_GAP])
    );
    if let (Some(fit), Some(scaled)) = (&m.temperature, &m.test_scaled) {
        let _ = write!(
            line,
            " | {}: {}",
            catalog::describe(fit, &[&TEMPERATURE]),
            catalog::describe(scaled, &[&NLL, &ECE])
        );
    }
    let _ = write!(
        line,
        " | {:.1}s",
        result.timings.train_seconds + result.timings.eval_seconds
    );
    line
}
