//! The command line's types (clap derive): one enum of subcommands, one struct of
//! arguments per subcommand.

use clap::{Args, Parser, Subcommand, ValueEnum};
use smoothlab::report;
use smoothlab::spec::DeviceSpec;
use smoothlab::sweep::Shard;
use std::num::NonZeroUsize;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "smoothlab",
    version,
    about = "Label smoothing and calibration experiments on candle"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Train every run of an experiment that is not done yet, and write its results.
    Run(RunArgs),
    /// List every planned run with its state: done, failed, running, stale or pending.
    Status(StatusArgs),
    /// Print an sbatch script for a Slurm job array whose task i runs shard i/N.
    Slurm(SlurmArgs),
    /// Train one run for a supervising `smoothlab run` (reads the job on stdin).
    #[command(hide = true)]
    Worker,
    /// Print one run's result readably.
    Show(ShowArgs),
    /// Calibration metrics for saved logits and labels (.npz, .safetensors or .json).
    Calibrate(CalibrateArgs),
    /// Compare runs: one row per group of runs with the mean ± std over its completed
    /// runs (seeds), failed and missing runs counted; figures and an HTML page on request.
    Report(ReportArgs),
    /// Ask questions of results: one row per run directory, filtered with --where over
    /// its flattened keys (config.*, swept.*, metrics.test.*, status, error, ...),
    /// sorted, with the chosen columns.
    Runs(RunsArgs),
    /// Runs side by side: config, metrics (with the difference to the first run),
    /// history, and where the environment differs.
    Compare(CompareArgs),
    /// Pictures of trained models.
    #[command(subcommand)]
    Viz(Viz),
    /// Measure throughput.
    #[command(subcommand)]
    Bench(Bench),
}

#[derive(Subcommand)]
pub enum Viz {
    /// Müller et al. 2019, Fig. 1: penultimate-layer activations of test examples of three
    /// classes, projected onto the plane through those classes' last-layer templates;
    /// one panel per run (needs the runs' model.safetensors: set "save_model": true).
    Penultimate(PenultimateArgs),
}

#[derive(Subcommand)]
pub enum Bench {
    /// Time the calibration metrics on 1,000,000 × 10 logits and the temperature fit on
    /// 100,000 × 100.
    Calibration(CalibrationBenchArgs),
    /// Training samples/s of the reference models (MLP 784-512-512-10 with SGD and with
    /// AdamW, LeNet-5 on 28×28×1, ResNet-20 on 32×32×3) through a run's training step, on
    /// fixed random batches: the median of several repetitions after a warm-up.
    Models(ModelsBenchArgs),
    /// One epoch of the MLP on MNIST-sized random data through the training loop: the
    /// share of evaluation and calibration metrics in it, and the peak resident memory
    /// of each epoch of a short run.
    Epoch(EpochBenchArgs),
    /// Training samples/s of LeNet-5 (28×28×1) and ResNet-20 (32×32×3), with candle's
    /// conv2d and (on the CPU) with smoothlab's fused convolution.
    Train(TrainBenchArgs),
}

fn at_least_one(value: &str) -> Result<usize, String> {
    at_least(value, 1)
}

/// More threads than this per run is a typo, not a machine (each one is an OS thread
/// with its own stack and buffers).
const MAX_THREADS: usize = 1024;

fn thread_count(value: &str) -> Result<usize, String> {
    match at_least(value, 1)? {
        n if n <= MAX_THREADS => Ok(n),
        n => Err(format!("expected at most {MAX_THREADS} threads, got {n}")),
    }
}

fn at_least_ten(value: &str) -> Result<usize, String> {
    at_least(value, 10)
}

fn at_least(value: &str, min: usize) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        Ok(_) => Err(format!("expected at least {min}")),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Args)]
pub struct RunArgs {
    pub experiment: PathBuf,
    /// Results directory (runs go to DIR/<experiment name>/<run id>/).
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// auto, cpu, cuda or cuda:N (overrides the experiment's `device`).
    #[arg(long)]
    pub device: Option<DeviceSpec>,
    /// Rerun runs that are already completed.
    #[arg(long)]
    pub force: bool,
    /// Rerun runs whose last attempt failed.
    #[arg(long)]
    pub retry_failed: bool,
    /// Run only shard I of N (0-based): the plan's runs I, I+N, I+2N, ...
    #[arg(long, value_name = "I/N", default_value = "0/1")]
    pub shard: Shard,
    /// Train this many runs at once, each in its own process.
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    pub jobs: usize,
    /// CPU threads per run (default: the cores divided among the jobs).
    #[arg(long, value_parser = thread_count)]
    pub threads: Option<usize>,
    /// Print the plan with each run's status, and run nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args)]
pub struct StatusArgs {
    /// An experiment file, or an experiment's results directory (which holds the
    /// experiment.json that `run` keeps).
    pub target: PathBuf,
    /// Results directory, when TARGET is an experiment file.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Refresh every SECONDS (default 2) until no run is pending, running or stale: in
    /// place on a terminal, a line per refresh otherwise.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "2", value_parser = clap::value_parser!(u64).range(1..))]
    pub watch: Option<u64>,
}

#[derive(Args)]
pub struct SlurmArgs {
    pub experiment: PathBuf,
    /// Array tasks (shards).
    #[arg(long, value_parser = at_least_one)]
    pub tasks: usize,
    #[arg(long)]
    pub partition: Option<String>,
    /// Time limit per task, in Slurm's format (e.g. 4:00:00).
    #[arg(long)]
    pub time: Option<String>,
    #[arg(long, value_parser = at_least_one)]
    pub cpus_per_task: Option<usize>,
    /// GPUs per task.
    #[arg(long, value_parser = at_least_one)]
    pub gpus: Option<usize>,
    /// Results directory, on a filesystem every node sees.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// auto, cpu, cuda or cuda:N for every task.
    #[arg(long)]
    pub device: Option<DeviceSpec>,
}

#[derive(Args)]
pub struct ShowArgs {
    /// A run directory or its result.json.
    pub run: PathBuf,
}

#[derive(Args)]
pub struct CalibrateArgs {
    pub predictions: PathBuf,
    /// Number of equal-width confidence bins (histogram binning uses the same).
    #[arg(long, default_value = "15")]
    pub bins: NonZeroUsize,
    /// Fit the calibrators on these (validation) predictions and also report the
    /// metrics after each.
    #[arg(long, value_name = "VAL_PREDICTIONS", alias = "fit-temperature")]
    pub fit: Option<PathBuf>,
    /// Calibrators to fit, comma-separated: temperature, vector, matrix, dirichlet,
    /// histogram, isotonic.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "temperature",
        requires = "fit"
    )]
    pub method: Vec<smoothlab::calibration::Calibrator>,
    /// Bootstrap resamples for the intervals of the test metrics (0: none).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub bootstrap: u32,
    /// Level of the bootstrap's percentile intervals.
    #[arg(long, default_value_t = 0.95, value_parser = level)]
    pub level: f64,
    /// Seed of the bootstrap's resamples (a run draws them from its own seed).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Args)]
pub struct ReportArgs {
    /// An experiment's results directory (results/<experiment>), or a directory of them.
    pub dir: PathBuf,
    /// Group by these dotted config keys (or `experiment`), comma-separated; default:
    /// the swept keys but the seed. `--by ''` puts every run in one group.
    #[arg(long, value_delimiter = ',', value_name = "KEY,...")]
    pub by: Option<Vec<String>>,
    #[arg(long, value_enum, default_value_t = report::ReportFormat::Table)]
    pub format: report::ReportFormat,
    /// Write the figures (reliability diagrams, metrics against ε, training curves)
    /// here as SVG and PNG.
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// Write one self-contained HTML page with the table and the figures.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Only the runs that pass this expression (as in `smoothlab runs --where`).
    #[arg(long = "where", value_name = "EXPR")]
    pub filter: Option<String>,
    /// Only these metric columns of the table, in this order, by their CSV names
    /// without `_mean` (e.g. `accuracy,ece,ece_scaled,temperature`); figures and the
    /// HTML page keep every metric.
    #[arg(long, value_delimiter = ',', value_name = "METRIC,...")]
    pub metrics: Option<Vec<String>>,
}

#[derive(Args)]
pub struct RunsArgs {
    /// Experiments' results directories (results/<experiment>), or directories of them.
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// Only the runs for which this holds, e.g. 'swept.loss.smoothing >= 0.05 and
    /// metrics.test.ece < 0.03'. Operators: == != < <= > >=, and, or, not, in [..],
    /// like "glob*", ~ "regex"; values: numbers, "strings", true, false, null (a key a
    /// run lacks is null).
    #[arg(long = "where", value_name = "EXPR")]
    pub filter: Option<String>,
    /// Sort by these keys, comma-separated; a leading - sorts descending (nulls last).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "[-]KEY,...",
        allow_hyphen_values = true
    )]
    pub sort: Vec<String>,
    /// Columns: keys or globs (e.g. 'metrics.test.*ece*'), comma-separated. Default: the
    /// swept keys, status, accuracy, NLL, ECE, ECE after temperature scaling, T.
    #[arg(long, value_delimiter = ',', value_name = "KEY|GLOB,...")]
    pub columns: Vec<String>,
    /// At most this many rows (after sorting).
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, value_enum, default_value_t = report::ReportFormat::Table)]
    pub format: report::ReportFormat,
}

#[derive(Args)]
pub struct CompareArgs {
    /// Run directories (results/<experiment>/<run-id>); the first is the reference.
    #[arg(required = true, num_args = 2..)]
    pub runs: Vec<PathBuf>,
    /// Only the keys whose values differ between the runs.
    #[arg(long)]
    pub only_changed: bool,
    #[arg(long, value_enum, default_value_t = report::ReportFormat::Table)]
    pub format: report::ReportFormat,
}

#[derive(Args)]
pub struct PenultimateArgs {
    /// Run directories, drawn side by side.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Three classes, by index or name (e.g. 0,1,2 or airplane,automobile,bird).
    #[arg(long)]
    pub classes: String,
    /// Test examples per class (the first in test-set order).
    #[arg(long, default_value_t = 100, value_parser = at_least_one)]
    pub examples: usize,
    /// Output path without extension: writes OUT.svg and OUT.png.
    #[arg(long, default_value = "penultimate")]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct CalibrationBenchArgs {
    /// Repetitions; the median is reported.
    #[arg(long, default_value_t = 5, value_parser = at_least_one)]
    pub repeats: usize,
    /// Also write the figures to this JSON file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Args)]
pub struct ModelsBenchArgs {
    /// Cases to run, comma-separated: mlp-sgd, mlp-adamw, lenet5, resnet20.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "mlp-sgd,mlp-adamw,lenet5,resnet20"
    )]
    pub models: Vec<smoothlab::bench::ModelCase>,
    /// Losses, comma-separated, each case measured with each: ls (ε = 0.1), ce, focal
    /// (γ = 3), flsd53, cp (β = 0.1), brier, mmce (λ = 2), mbls (m = 10, α = 0.1).
    #[arg(long, value_delimiter = ',', default_value = "ls")]
    pub losses: Vec<smoothlab::bench::LossCase>,
    /// Timed steps per repetition.
    #[arg(long, default_value_t = 20, value_parser = at_least_one)]
    pub steps: usize,
    /// Repetitions; the median is reported, with the minimum and maximum.
    #[arg(long, default_value_t = 5, value_parser = at_least_one)]
    pub repeats: usize,
    /// Untimed steps before the first repetition.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    #[command(flatten)]
    pub step: StepBenchArgs,
}

#[derive(Args)]
pub struct EpochBenchArgs {
    /// The case to train: mlp-sgd, mlp-adamw, lenet5, resnet20.
    #[arg(long, default_value = "mlp-sgd")]
    pub model: smoothlab::bench::ModelCase,
    /// Its loss: ls (ε = 0.1), ce, focal, flsd53, cp, brier, mmce, mbls.
    #[arg(long, default_value = "ls")]
    pub loss: smoothlab::bench::LossCase,
    /// Read the images from this directory: MNIST IDX files for the MNIST-shaped cases,
    /// CIFAR-10 binary batches for resnet20. Default: synthetic data of the case's shape.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Training samples before the validation split (default: 60,000 MNIST-shaped or
    /// 50,000 CIFAR-shaped synthetic ones, or all the files hold). At least 10, so that
    /// every split has a sample.
    #[arg(long, value_parser = at_least_ten)]
    pub samples: Option<usize>,
    /// Untimed epochs first.
    #[arg(long, default_value_t = 1)]
    pub warmup_epochs: usize,
    /// Timed epochs; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = at_least_one)]
    pub epochs: usize,
    #[command(flatten)]
    pub step: StepBenchArgs,
}

#[derive(Args)]
pub struct TrainBenchArgs {
    /// Timed steps per case (after one warm-up step).
    #[arg(long, default_value_t = 20, value_parser = at_least_one)]
    pub steps: usize,
    #[command(flatten)]
    pub step: StepBenchArgs,
}

/// What the training benchmarks share.
#[derive(Args)]
pub struct StepBenchArgs {
    #[arg(long, default_value_t = 128, value_parser = at_least_one)]
    pub batch_size: usize,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Also write the figures to this JSON file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// A confidence level strictly between 0 and 1.
fn level(text: &str) -> Result<f64, String> {
    let level: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if level > 0.0 && level < 1.0 {
        Ok(level)
    } else {
        Err(format!("expected a level in (0, 1), got {level}"))
    }
}
