//! Calibration metrics and temperature scaling for classifier outputs.
//!
//! Everything is computed from logits, in `f64`, with the row maximum
//! subtracted before exponentiating, so saturated softmax outputs and logits
//! as large as `±1e30` never produce NaN. For a row of logits `z` with `K`
//! classes, `p = softmax(z)`:
//!
//! * **prediction**: `argmax_k z_k`; ties go to the lowest class index.
//! * **confidence**: `max_k p_k`.
//! * **accuracy**: fraction of samples whose prediction equals the label.
//! * **top-5 accuracy** (only when `K >= 5`): fraction of samples whose label
//!   is among the five largest logits, ties again broken by lower index.
//! * **NLL**: mean of `logsumexp(z) - z_y`.
//! * **Brier score**: `(1/n) Σ_i Σ_k (p_ik - [k = y_i])²`, in `[0, 2]`.
//! * **entropy**: mean of `-Σ_k p_k ln p_k` with `0 · ln 0 = 0`.
//!
//! Binned calibration errors use `M` bins (default [`DEFAULT_BINS`] = 15).
//! Equal-width bin `m` (0-based) is the interval `(m/M, (m+1)/M]`, except that
//! a confidence of exactly 0 falls into bin 0; see [`bin_index`]. For a
//! binning `B_1..B_M` of `n` samples, with `acc(B)` the fraction of correct
//! predictions and `conf(B)` the mean confidence in the bin:
//!
//! * **ECE** = `Σ_m (|B_m|/n) |acc(B_m) - conf(B_m)|` (Guo et al., 2017).
//! * **MCE** = `max` over non-empty bins of `|acc(B_m) - conf(B_m)|`.
//! * **RMSCE** = `sqrt(Σ_m (|B_m|/n) (acc(B_m) - conf(B_m))²)`.
//! * **adaptive ECE**: the ECE sum over equal-mass bins. Samples are sorted
//!   by confidence (stable, so ties keep sample order) and bin `b` holds
//!   sorted positions `floor(b·n/M) .. floor((b+1)·n/M)`; when `n < M` some
//!   bins are empty and contribute nothing.
//! * **classwise ECE**: for each class `k`, the probabilities `p_k` of all
//!   samples are binned with the equal-width bins, and
//!   `ECE_k = Σ_m (|B_m|/n) |freq(y = k in B_m) - mean(p_k in B_m)|`;
//!   the classwise ECE is the mean of `ECE_k` over classes.
//!
//! Logit statistics: the **true-class gap** `z_y - mean_{k≠y} z_k`, the
//! **max-logit gap** (largest minus second-largest logit, 0 on a tie) and
//! the **L2 norm** of the logit row, each averaged over samples.
//!
//! When metrics are evaluated at a temperature `T`, every quantity above,
//! logit statistics included, is computed from the scaled logits `z / T`.
//!
//! Conventions elsewhere: torchmetrics bins confidences into `[a, b)`
//! intervals with an extra bin for exactly 1.0, and netcal uses `[a, b)` with
//! a closed last bin. Both agree with the `(a, b]` bins used here except for
//! confidences that lie exactly on an interior bin edge.
//!
//! Temperature scaling ([`fit_temperature`]) picks the `T` that minimises the
//! mean NLL of `softmax(z / T)`, searching `T` in
//! [[`MIN_TEMPERATURE`], [`MAX_TEMPERATURE`]].
//!
//! [`catalog`] names every metric: its JSON key, labels and the decimals it is shown with.

mod binning;
pub mod bootstrap;
pub mod calibrators;
pub mod catalog;
pub mod io;
mod metrics;
mod predictions;
pub mod scaling;
pub mod smooth;
mod softmax;
mod temperature;
pub mod top_label;

pub use binning::{bin_edge, bin_index, BinStats, Binned, ClasswiseBins};
pub use bootstrap::{Bootstrap, Interval, Intervals};
pub use calibrators::{calibrate, Calibrated, Calibrator, Fitted};
pub use metrics::{
    evaluate, evaluate_top_label, evaluate_with_intervals, Metrics, ReliabilityBin, DEFAULT_BINS,
    MAX_BINS, TOP_LABEL_PROBABILITY_FLOOR,
};
pub use predictions::{Predictions, PredictionsError};
pub use softmax::{softmax_into, RowSoftmax};
pub use temperature::{
    fit_temperature, nll_derivatives, NllDerivatives, TemperatureFit, MAX_TEMPERATURE,
    MIN_TEMPERATURE,
};
