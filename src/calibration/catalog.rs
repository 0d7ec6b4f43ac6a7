//! The metrics by name: every number of [`Metrics`], and the fitted temperature, with
//! the key, labels and precision that tables, report columns and console lines show it
//! with. Whatever lists metrics takes them from here.

use super::{Metrics, TemperatureFit};

/// One number of an `Of` (by default a set's [`Metrics`]).
pub struct Measure<Of = Metrics> {
    /// Its field in `Of`'s JSON (`result.json`, `calibrate --format json`).
    pub key: &'static str,
    /// Its heading in tables.
    pub label: &'static str,
    /// Its name in one-line console summaries.
    pub short: &'static str,
    /// Decimals in console lines and report columns. The tables of `smoothlab show` and
    /// `calibrate` give every metric four.
    pub decimals: usize,
    /// Its value; `None` where `Of` has none (top-5 accuracy below five classes).
    pub get: fn(&Of) -> Option<f64>,
}

impl<Of> Measure<Of> {
    /// Its value in `of`.
    pub fn of(&self, of: &Of) -> Option<f64> {
        (self.get)(of)
    }

    /// `value` as console lines write it: `acc 0.8483`.
    pub fn describe(&self, value: f64) -> String {
        format!(
            "{} {value:.decimals$}",
            self.short,
            decimals = self.decimals
        )
    }
}

/// The `measures` of `of` in one line, `acc 0.8483 nll 0.6473 ece 0.0903`; a measure
/// without a value is left out.
pub fn describe<Of>(of: &Of, measures: &[&Measure<Of>]) -> String {
    let values: Vec<_> = measures
        .iter()
        .filter_map(|&m| Some((m, m.of(of)?)))
        .collect();
    describe_values(&values)
}

/// Values given with their measures in one line:
/// `describe_values(&[(&ACCURACY, 0.66), (&NLL, 0.9304)])` is `acc 0.6600 nll 0.9304`.
pub fn describe_values<Of>(values: &[(&Measure<Of>, f64)]) -> String {
    values
        .iter()
        .map(|(m, value)| m.describe(*value))
        .collect::<Vec<_>>()
        .join(" ")
}

pub const ACCURACY: Measure = Measure {
    key: "accuracy",
    label: "accuracy",
    short: "acc",
    decimals: 4,
    get: |m| Some(m.accuracy),
};
pub const TOP5_ACCURACY: Measure = Measure {
    key: "top5_accuracy",
    label: "top-5 accuracy",
    short: "top-5 acc",
    decimals: 4,
    get: |m| m.top5_accuracy,
};
pub const NLL: Measure = Measure {
    key: "nll",
    label: "NLL",
    short: "nll",
    decimals: 4,
    get: |m| Some(m.nll),
};
pub const BRIER: Measure = Measure {
    key: "brier",
    label: "Brier",
    short: "brier",
    decimals: 4,
    get: |m| Some(m.brier),
};
pub const ECE: Measure = Measure {
    key: "ece",
    label: "ECE",
    short: "ece",
    decimals: 4,
    get: |m| Some(m.ece),
};
pub const MCE: Measure = Measure {
    key: "mce",
    label: "MCE",
    short: "mce",
    decimals: 4,
    get: |m| Some(m.mce),
};
pub const RMSCE: Measure = Measure {
    key: "rmsce",
    label: "RMSCE",
    short: "rmsce",
    decimals: 4,
    get: |m| Some(m.rmsce),
};
pub const ADAPTIVE_ECE: Measure = Measure {
    key: "adaptive_ece",
    label: "adaptive ECE",
    short: "adaptive ece",
    decimals: 4,
    get: |m| Some(m.adaptive_ece),
};
pub const CLASSWISE_ECE: Measure = Measure {
    key: "classwise_ece",
    label: "classwise ECE",
    short: "classwise ece",
    decimals: 4,
    get: |m| Some(m.classwise_ece),
};
pub const SMOOTH_ECE: Measure = Measure {
    key: "smooth_ece",
    label: "smooth ECE",
    short: "smece",
    decimals: 4,
    get: |m| m.smooth_ece,
};
pub const SMOOTH_ECE_SIGMA: Measure = Measure {
    key: "smooth_ece_sigma",
    label: "smooth ECE σ",
    short: "smece σ",
    decimals: 4,
    get: |m| m.smooth_ece_sigma,
};
pub const DEBIASED_ECE: Measure = Measure {
    key: "debiased_ece",
    label: "debiased L2 ECE",
    short: "debiased ece",
    decimals: 4,
    get: |m| m.debiased_ece,
};
pub const MEAN_CONFIDENCE: Measure = Measure {
    key: "mean_confidence",
    label: "mean confidence",
    short: "confidence",
    decimals: 4,
    get: |m| Some(m.mean_confidence),
};
pub const MEAN_ENTROPY: Measure = Measure {
    key: "mean_entropy",
    label: "mean entropy",
    short: "entropy",
    decimals: 4,
    get: |m| Some(m.mean_entropy),
};
pub const TRUE_LOGIT_GAP: Measure = Measure {
    key: "mean_true_logit_gap",
    label: "true-logit gap",
    short: "logit gap",
    decimals: 2,
    get: |m| Some(m.mean_true_logit_gap),
};
pub const MAX_LOGIT_GAP: Measure = Measure {
    key: "mean_max_logit_gap",
    label: "max-logit gap",
    short: "max-logit gap",
    decimals: 2,
    get: |m| Some(m.mean_max_logit_gap),
};
pub const LOGIT_NORM: Measure = Measure {
    key: "mean_logit_norm",
    label: "logit norm",
    short: "logit norm",
    decimals: 2,
    get: |m| Some(m.mean_logit_norm),
};

/// Every metric of a set, in the order of [`Metrics`]' fields. The counts (`n`,
/// `classes`, `bins`) and the reliability bins are not metrics.
pub const ALL: &[Measure] = &[
    ACCURACY,
    TOP5_ACCURACY,
    NLL,
    BRIER,
    ECE,
    MCE,
    RMSCE,
    ADAPTIVE_ECE,
    CLASSWISE_ECE,
    SMOOTH_ECE,
    SMOOTH_ECE_SIGMA,
    DEBIASED_ECE,
    MEAN_CONFIDENCE,
    MEAN_ENTROPY,
    TRUE_LOGIT_GAP,
    MAX_LOGIT_GAP,
    LOGIT_NORM,
];

/// The temperature of a [`TemperatureFit`].
pub const TEMPERATURE: Measure<TemperatureFit> = Measure {
    key: "temperature",
    label: "T",
    short: "T",
    decimals: 3,
    get: |fit| Some(fit.temperature),
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibration::{evaluate, fit_temperature, Predictions, DEFAULT_BINS};

    fn metrics(classes: usize) -> Metrics {
        let logits: Vec<f32> = (0..8 * classes).map(|i| ((i * 7) % 5) as f32).collect();
        let labels: Vec<u32> = (0..8).map(|i| (i % classes) as u32).collect();
        let predictions = Predictions::new(logits, labels, classes).unwrap();
        evaluate(&predictions, DEFAULT_BINS, 1.0)
    }

    #[test]
    fn keys_name_the_json_fields() {
        for classes in [3, 6] {
            let m = metrics(classes);
            let json = serde_json::to_value(&m).unwrap();
            for measure in ALL {
                assert_eq!(
                    json[measure.key].as_f64(),
                    measure.of(&m),
                    "{}",
                    measure.key
                );
            }
            let fields = json.as_object().unwrap().len();
            // n, classes, bins and reliability are not metrics.
            assert_eq!(ALL.len(), fields - 4);
        }
        let fit =
            fit_temperature(&Predictions::new(vec![2.0, 0.0, 0.0, 1.0], vec![0, 1], 2).unwrap());
        let json = serde_json::to_value(&fit).unwrap();
        assert_eq!(json[TEMPERATURE.key].as_f64(), TEMPERATURE.of(&fit));
    }

    #[test]
    fn lines_name_and_round_each_value() {
        let mut m = metrics(3);
        (m.accuracy, m.nll, m.ece, m.mean_true_logit_gap) = (0.84831, 0.64729, 0.0903, 16.1712);
        assert_eq!(
            describe(&m, &[&ACCURACY, &NLL, &ECE, &TRUE_LOGIT_GAP]),
            "acc 0.8483 nll 0.6473 ece 0.0903 logit gap 16.17"
        );
        // Three classes: no top-5 accuracy.
        assert_eq!(describe(&m, &[&TOP5_ACCURACY, &ACCURACY]), "acc 0.8483");
        assert_eq!(
            describe_values(&[(&ACCURACY, 0.66), (&NLL, 0.93041), (&ECE, 0.0963)]),
            "acc 0.6600 nll 0.9304 ece 0.0963"
        );
        assert_eq!(TEMPERATURE.describe(2.2130), "T 2.213");
        assert_eq!(describe::<Metrics>(&m, &[]), "");
    }
}
