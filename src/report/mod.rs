//! Human-readable views of results: `smoothlab show`, metric tables, and `smoothlab
//! report` over whole results directories ([`summary`], [`format`]).

pub mod figures;
pub mod format;
pub mod html;
pub mod penultimate;
pub mod plot;
pub mod pooled;
pub mod summary;

use crate::calibration::{catalog, Intervals, Metrics, TemperatureFit};
use crate::store::RunResult;
use std::fmt::Write as _;

/// One run's `result.json`, readable.
pub fn show(r: &RunResult) -> String {
    let mut out = String::new();
    let env = &r.environment;
    let _ = writeln!(out, "run        {} ({})", r.run_id, r.experiment);
    let _ = writeln!(out, "status     {:?}", r.status);
    if let Some(error) = &r.error {
        let _ = writeln!(out, "error      {error}");
    }
    for (path, value) in &r.swept {
        let _ = writeln!(out, "swept      {path} = {value}");
    }
    let _ = writeln!(
        out,
        "device     {} ({} threads), smoothlab {}{}, candle {}",
        env.device,
        env.threads,
        env.smoothlab_version,
        env.git_commit
            .as_deref()
            .map(|c| format!(" @ {c}"))
            .unwrap_or_default(),
        env.candle_version
    );
    if let Some(gpu) = &env.gpu {
        let _ = writeln!(
            out,
            "gpu        {} (compute {}, {} MiB), driver {} (CUDA {}), built with CUDA {}",
            gpu.name,
            gpu.compute_capability,
            gpu.memory_mib,
            gpu.driver_version.as_deref().unwrap_or("?"),
            gpu.driver_cuda_version.as_deref().unwrap_or("?"),
            gpu.cuda_build_version
        );
    }
    let _ = writeln!(
        out,
        "time       {} → {}; train {:.1}s ({:.0} samples/s), evaluation {:.1}s",
        env.started_at.format("%Y-%m-%d %H:%M:%S"),
        env.finished_at.format("%H:%M:%S"),
        r.timings.train_seconds,
        r.timings.train_samples_per_second,
        r.timings.eval_seconds
    );
    let _ = writeln!(
        out,
        "config     {}",
        serde_json::to_string(&r.config).unwrap_or_default()
    );

    if !r.history.is_empty() {
        let _ = writeln!(
            out,
            "\n epoch        lr  train loss  train acc    val acc    val nll    val ece      s"
        );
        for e in &r.history {
            let opt = |v: Option<f64>| {
                v.map(|v| format!("{v:10.4}"))
                    .unwrap_or_else(|| format!("{:>10}", "-"))
            };
            let _ = writeln!(
                out,
                "{:6} {:9.5} {:11.4} {:10.4} {} {} {} {:6.1}",
                e.epoch,
                e.lr,
                e.train_loss,
                e.train_accuracy,
                opt(e.val_accuracy),
                opt(e.val_nll),
                opt(e.val_ece),
                e.seconds
            );
        }
    }
    if let Some(m) = &r.metrics {
        let mut columns = vec![("test", &m.test)];
        if let Some(scaled) = &m.test_scaled {
            columns.push(("test, T-scaled", scaled));
        }
        if let Some(val) = &m.validation {
            columns.push(("validation", val));
        }
        out.push('\n');
        out += &metrics_table(&columns);
        if let Some(fit) = &m.temperature {
            out += &describe_fit(fit);
        }
    }
    out
}

/// Reads one row of [`metrics_table`] from a set's metrics.
type MetricGetter = fn(&Metrics) -> Option<f64>;

/// Decimals of every metric in [`metrics_table`].
const TABLE_DECIMALS: usize = 4;

/// Metrics side by side, one column per set: the number of samples, then every metric
/// of the [`catalog`].
pub fn metrics_table(columns: &[(&str, &Metrics)]) -> String {
    let samples: (&str, MetricGetter, usize) = ("samples", |m| Some(m.n as f64), 0);
    let metrics = catalog::ALL
        .iter()
        .map(|metric| (metric.label, metric.get, TABLE_DECIMALS));
    let width = columns
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0)
        .max(10);
    let mut out = format!("{:16}", "");
    for (name, _) in columns {
        let _ = write!(out, " {name:>width$}");
    }
    out.push('\n');
    for (label, get, decimals) in std::iter::once(samples).chain(metrics) {
        let _ = write!(out, "{label:16}");
        for (_, m) in columns {
            let cell = match get(m) {
                Some(v) => format!("{v:.decimals$}"),
                None => "-".to_string(),
            };
            let _ = write!(out, " {cell:>width$}");
        }
        out.push('\n');
    }
    let bins = columns.first().map(|(_, m)| m.bins).unwrap_or_default();
    let _ = writeln!(out, "({bins} equal-width confidence bins)");
    if let Some(first) = columns.iter().find_map(|(_, m)| m.intervals.as_ref()) {
        let _ = writeln!(
            out,
            "{:.0} % bootstrap intervals ({} resamples of the samples):",
            100.0 * first.level,
            first.resamples
        );
        let cell_width = width.max(18);
        let _ = write!(out, "{:16}", "");
        for (name, _) in columns {
            let _ = write!(out, " {name:>cell_width$}");
        }
        out.push('\n');
        for metric in catalog::ALL
            .iter()
            .filter(|m| Intervals::KEYS.contains(&m.key))
        {
            let _ = write!(out, "{:16}", metric.label);
            for (_, m) in columns {
                let cell = m
                    .intervals
                    .as_ref()
                    .and_then(|i| i.of(metric.key))
                    .map_or("-".to_string(), |i| {
                        format!("[{:.4}, {:.4}]", i.low, i.high)
                    });
                let _ = write!(out, " {cell:>cell_width$}");
            }
            out.push('\n');
        }
    }
    out
}

/// The temperature fit in one line.
pub fn describe_fit(fit: &TemperatureFit) -> String {
    format!(
        "temperature {:.4} (validation NLL {:.4} → {:.4}, {} iterations, dNLL/d(1/T) = {:.1e}{})\n",
        fit.temperature,
        fit.nll_before,
        fit.nll_after,
        fit.iterations,
        fit.gradient,
        if fit.at_bound {
            ", a limit: the NLL keeps falling beyond it"
        } else {
            ""
        }
    )
}

/// `smoothlab calibrate`: metrics of saved predictions, optionally after fitting
/// post-hoc calibrators on other (validation) predictions.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CalibrationReport {
    pub file: std::path::PathBuf,
    pub metrics: Metrics,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<TemperatureFit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaled: Option<Metrics>,
    /// The other calibrators asked for, in the order asked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calibrators: Vec<crate::calibration::Calibrated>,
}

impl CalibrationReport {
    /// Reads `predictions` (`logits`/`labels`, else smoothlab's `test.*`) and `fit_on`
    /// (`logits`/`labels`, else `val.*`: a run's `predictions.safetensors` can be given
    /// for both), fits each of `methods` on the latter and evaluates everything.
    /// Unreadable or invalid files, and methods without `fit_on`, are
    /// [`crate::BadInput`].
    pub fn compute(
        predictions: &std::path::Path,
        bins: std::num::NonZeroUsize,
        fit_on: Option<&std::path::Path>,
        methods: &[crate::calibration::Calibrator],
        bootstrap: Option<crate::calibration::Bootstrap>,
    ) -> anyhow::Result<Self> {
        use crate::calibration::io::{read_predictions, read_validation_predictions};
        use crate::calibration::{calibrate, evaluate_with_intervals, fit_temperature, Calibrator};
        let evaluate =
            |predictions: &crate::calibration::Predictions, temperature: f64| match &bootstrap {
                Some(b) => evaluate_with_intervals(predictions, bins, temperature, b),
                None => crate::calibration::evaluate(predictions, bins, temperature),
            };
        let bad = |message: String| crate::BadInput(anyhow::anyhow!(message));
        if bins.get() > crate::calibration::MAX_BINS {
            let max = crate::calibration::MAX_BINS;
            return Err(bad(format!("--bins {bins}: expected at most {max} bins")).into());
        }
        let test = read_predictions(predictions).map_err(crate::BadInput)?;
        let Some(path) = fit_on else {
            return Ok(Self {
                file: predictions.to_path_buf(),
                metrics: evaluate(&test, 1.0),
                temperature: None,
                scaled: None,
                calibrators: Vec::new(),
            });
        };
        let val = read_validation_predictions(path).map_err(crate::BadInput)?;
        if val.classes() != test.classes() {
            return Err(bad(format!(
                "{} has {} classes but {} has {}",
                path.display(),
                val.classes(),
                predictions.display(),
                test.classes()
            ))
            .into());
        }
        let temperature = methods
            .contains(&Calibrator::Temperature)
            .then(|| fit_temperature(&val));
        let calibrators = methods
            .iter()
            .filter(|&&m| m != Calibrator::Temperature)
            .map(|&method| {
                calibrate(method, &val, &test, bins, bootstrap.as_ref())
                    .map_err(|e| bad(format!("{method}: {e}")).into())
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            file: predictions.to_path_buf(),
            metrics: evaluate(&test, 1.0),
            scaled: temperature
                .as_ref()
                .map(|fit| evaluate(&test, fit.temperature)),
            temperature,
            calibrators,
        })
    }

    pub fn table(&self) -> String {
        let mut columns = vec![("raw", &self.metrics)];
        if let Some(scaled) = &self.scaled {
            columns.push(("T-scaled", scaled));
        }
        for calibrated in &self.calibrators {
            columns.push((calibrated.method.name(), &calibrated.test));
        }
        let mut out = format!("{}\n", self.file.display());
        out += &metrics_table(&columns);
        if let Some(fit) = &self.temperature {
            out += &describe_fit(fit);
        }
        for calibrated in &self.calibrators {
            out += &describe_calibrated(calibrated);
        }
        out
    }
}

/// One line on how a calibrator's fit went.
pub fn describe_calibrated(calibrated: &crate::calibration::Calibrated) -> String {
    let fit = match (calibrated.gradient_norm, calibrated.gradient_tolerance) {
        (Some(norm), Some(tolerance)) => format!(
            ", {} iterations, gradient norm {norm:.1e} (tolerance {tolerance:.0e}){}",
            calibrated.iterations,
            if calibrated.converged {
                ""
            } else {
                ", NOT converged"
            }
        ),
        _ => String::new(),
    };
    format!(
        "{} (validation NLL {:.4} → {:.4}{fit})\n",
        calibrated.method.label(),
        calibrated.validation_nll_before,
        calibrated.validation_nll_after,
    )
}

/// How `smoothlab report` prints its table (also its `--format` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    #[value(name = "md")]
    Markdown,
    Csv,
    Json,
}

/// What `smoothlab report` was asked for.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub dir: std::path::PathBuf,
    /// Grouping keys; the swept keys but the seed when `None`.
    pub by: Option<Vec<String>>,
    pub format: ReportFormat,
    /// Write every figure here as SVG and PNG.
    pub plots: Option<std::path::PathBuf>,
    /// Write the self-contained HTML page here.
    pub html: Option<std::path::PathBuf>,
    /// Only the runs that pass this `--where` expression ([`crate::query::expr`]).
    pub filter: Option<String>,
    /// Only these metric columns in the returned table, in this order.
    pub metrics: Option<Vec<String>>,
    /// How large the figures are drawn.
    pub figure_style: plot::Style,
}

/// `smoothlab report`: groups the runs under `options.dir`, writes the figures and the
/// page it is asked for, and returns the table in the requested format.
pub fn report(options: &ReportOptions) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let mut collected = summary::collect(&options.dir)?;
    if let Some(filter) = &options.filter {
        let rows = crate::query::collect(std::slice::from_ref(&options.dir))?;
        let kept: std::collections::HashSet<String> =
            crate::query::runs::select(rows.rows, Some(filter))?
                .iter()
                .map(|row| super::report::summary::value_text(row.get("dir")))
                .collect();
        let passes = |dir: &std::path::Path| kept.contains(&dir.display().to_string());
        collected.runs.retain(|run| passes(&run.dir));
        collected.not_in_plan.retain(|dir| passes(dir));
    }
    let keys = options
        .by
        .clone()
        .unwrap_or_else(|| summary::default_keys(&collected));
    let mut report = summary::Report::new(collected, keys)?;
    if options.plots.is_some() || options.html.is_some() {
        let figures = figures::all(&report, options.figure_style)?;
        if let Some(dir) = &options.plots {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for named in &figures {
                named.figure.write(dir, &named.stem)?;
            }
            tracing::info!("{} figure(s) written to {}", figures.len(), dir.display());
        }
        if let Some(path) = &options.html {
            let title = format!(
                "smoothlab report: {}",
                report.collected.experiments.join(", ")
            );
            crate::atomic::write_bytes(path, html::page(&title, &report, &figures).as_bytes())?;
            tracing::info!("report page written to {}", path.display());
        }
    }
    if let Some(names) = &options.metrics {
        report.keep_metrics(names)?;
    }
    Ok(match options.format {
        ReportFormat::Table => format::table(&report),
        ReportFormat::Markdown => format::markdown(&report),
        ReportFormat::Csv => format::csv(&report),
        ReportFormat::Json => format::json(&report),
    })
}
