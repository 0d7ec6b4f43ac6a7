//! Validated classifier outputs.

/// Validated logits (row-major `[n, classes]`) and labels.
///
/// Invariants: `classes >= 2`, `n >= 1`, `logits.len() == n * classes`,
/// every label is below `classes` and every logit is finite.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    logits: Vec<f32>,
    labels: Vec<u32>,
    classes: usize,
}

/// Why a set of logits and labels was rejected by [`Predictions::new`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PredictionsError {
    /// There are no samples at all.
    #[error("no samples: logits and labels are empty")]
    Empty,
    /// Fewer than two classes.
    #[error("need at least 2 classes, got {classes}")]
    TooFewClasses {
        /// The number of classes given.
        classes: usize,
    },
    /// The logits do not hold one row of `classes` values per label.
    #[error(
        "logits have {logits} values but {labels} labels × {classes} classes \
         need {}",
        labels.saturating_mul(*classes)
    )]
    LengthMismatch {
        /// Number of logit values.
        logits: usize,
        /// Number of labels.
        labels: usize,
        /// Number of classes.
        classes: usize,
    },
    /// A label is not a valid class index.
    #[error(
        "label {label} at index {index} is out of range: \
         there are {classes} classes (0..{classes})"
    )]
    LabelOutOfRange {
        /// Position of the first bad label.
        index: usize,
        /// Its value.
        label: u32,
        /// Number of classes.
        classes: usize,
    },
    /// A logit is NaN or infinite.
    #[error("logit at row {row}, column {column} is {value}; logits must be finite")]
    NonFiniteLogit {
        /// Sample index of the first bad logit.
        row: usize,
        /// Class index of the first bad logit.
        column: usize,
        /// Its value.
        value: f32,
    },
}

impl Predictions {
    /// Validates and wraps row-major logits `[labels.len(), classes]` and labels.
    pub fn new(
        logits: Vec<f32>,
        labels: Vec<u32>,
        classes: usize,
    ) -> Result<Self, PredictionsError> {
        let length_mismatch = PredictionsError::LengthMismatch {
            logits: logits.len(),
            labels: labels.len(),
            classes,
        };
        if labels.is_empty() {
            return Err(if logits.is_empty() {
                PredictionsError::Empty
            } else {
                length_mismatch
            });
        }
        if classes < 2 {
            return Err(PredictionsError::TooFewClasses { classes });
        }
        if labels.len().checked_mul(classes) != Some(logits.len()) {
            return Err(length_mismatch);
        }
        if let Some((index, &label)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &label)| label as usize >= classes)
        {
            return Err(PredictionsError::LabelOutOfRange {
                index,
                label,
                classes,
            });
        }
        if let Some((position, &value)) = logits.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(PredictionsError::NonFiniteLogit {
                row: position / classes,
                column: position % classes,
                value,
            });
        }
        Ok(Self {
            logits,
            labels,
            classes,
        })
    }

    /// Number of samples (always at least 1).
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Always `false`: validated predictions hold at least one sample.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of classes (always at least 2).
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Row-major logits `[len(), classes()]`.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// Class labels, one per sample.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Iterates over `(logit row, label)` pairs.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = (&[f32], usize)> + '_ {
        self.logits
            .chunks_exact(self.classes)
            .zip(self.labels.iter().map(|&label| label as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_first_bad_label_and_logit() {
        let err = Predictions::new(vec![0.0; 6], vec![0, 3, 5], 2).unwrap_err();
        assert_eq!(
            err,
            PredictionsError::LabelOutOfRange {
                index: 1,
                label: 3,
                classes: 2
            }
        );
        let err =
            Predictions::new(vec![0.0, 1.0, f32::NAN, f32::INFINITY], vec![0, 1], 2).unwrap_err();
        assert!(matches!(
            err,
            PredictionsError::NonFiniteLogit {
                row: 1,
                column: 0,
                ..
            }
        ));
    }

    #[test]
    fn rejects_shape_problems() {
        assert_eq!(
            Predictions::new(vec![], vec![], 3).unwrap_err(),
            PredictionsError::Empty
        );
        assert_eq!(
            Predictions::new(vec![1.0], vec![0], 1).unwrap_err(),
            PredictionsError::TooFewClasses { classes: 1 }
        );
        let err = Predictions::new(vec![1.0; 5], vec![0, 1], 3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "logits have 5 values but 2 labels × 3 classes need 6"
        );
    }
}
