//! The command line's types (clap derive): one enum of subcommands, one struct of
//! arguments per subcommand.

use clap::{Args, Parser, Subcommand, ValueEnum};
use smoothlab::report;
use smoothlab::report::plot::Style;
use smoothlab::spec::DeviceSpec;
use smoothlab::sweep::Shard;
use std::num::NonZeroUsize;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "smoothlab",
    version,
    about = "Label smoothing and calibration experiments on candle",
    after_help = TOP_LEVEL_NOTES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level help's notes on what no single subcommand owns.
const TOP_LEVEL_NOTES: &str = "\
Logging:
  Log lines go to stderr; RUST_LOG sets how many: warn, info (the default) or
  debug, or any tracing filter, e.g.
  RUST_LOG=debug smoothlab run experiments/quickstart.json

Progress bars:
  `run` draws a bar per active run under an overall bar only when stderr is a
  terminal; elsewhere (CI, Slurm logs, a redirect) only the log lines appear.

Exit codes:
  0 success; 1 a run or the program failed; 2 bad usage or input, nothing was
  run; 130 interrupted by SIGINT/SIGTERM (rerun the same command to resume).";

// Each subcommand's examples: every line that starts with `smoothlab ` must parse
// (tests/suite/cli_help.rs checks them), so they stay true to the arguments.

const RUN_EXAMPLES: &str = "\
Examples:
  smoothlab run experiments/quickstart.json
  smoothlab run experiments/quickstart.json --jobs 2 --threads 1
  smoothlab run experiments/mnist-lenet5-smoothing.json --device cuda --retry-failed
  smoothlab run experiments/cifar10-resnet20-smoothing.json --shard 0/3 --dry-run";

const STATUS_EXAMPLES: &str = "\
Examples:
  smoothlab status experiments/quickstart.json
  smoothlab status results/quickstart --format json
  smoothlab status /shared/results/cifar10-resnet20-smoothing --watch 30";

const SLURM_EXAMPLES: &str = "\
Examples:
  smoothlab slurm experiments/cifar10-resnet20-smoothing.json --tasks 9 \\
      --partition gpu --time 12:00:00 --cpus-per-task 8 --gpus 1 \\
      --results /shared/results > job.sh
  sbatch job.sh";

const SHOW_EXAMPLES: &str = "\
Examples:
  smoothlab show results/quickstart/smoothing=0.1_744862da
  smoothlab show results/quickstart/smoothing=0.1_744862da/result.json";

const CALIBRATE_EXAMPLES: &str = "\
Examples:
  smoothlab calibrate predictions.npz --bins 20
  smoothlab calibrate test.json --fit val.json --method temperature,dirichlet --format json
  smoothlab calibrate results/quickstart/smoothing=0.1_744862da/predictions.safetensors \\
      --fit results/quickstart/smoothing=0.1_744862da/predictions.safetensors \\
      --method temperature,isotonic --bootstrap 1000 --level 0.9";

const REPORT_EXAMPLES: &str = "\
Examples:
  smoothlab report results/quickstart
  smoothlab report results/quickstart --plots figures --html report.html
  smoothlab report results/mueller2019-fashion-mnist-lenet5 --plots figures --figure-scale 0.75
  smoothlab report results --by experiment,loss.smoothing --format csv > report.csv
  smoothlab report results/smoothing --where 'config.optimizer.name == \"sgd\"' \\
      --metrics accuracy,ece,ece_scaled,temperature";

const RUNS_EXAMPLES: &str = "\
Examples:
  smoothlab runs results --where 'metrics.test.ece < 0.03' --sort -metrics.test.accuracy
  smoothlab runs results --where 'status == \"failed\"' --columns experiment,run_id,error
  smoothlab runs results/smoothing --columns 'swept.*,metrics.test.*ece*' --limit 10 --format csv";

const COMPARE_EXAMPLES: &str = "\
Examples:
  smoothlab compare results/quickstart/smoothing=0.0_9eec0710 results/quickstart/smoothing=0.1_744862da
  smoothlab compare results/smoothing/optimizer=sgd_smoothing=0.0_seed=0_2a8d2cfa \\
      results/smoothing/optimizer=sgd_smoothing=0.1_seed=0_b7d1debf --only-changed --format md";

const PENULTIMATE_EXAMPLES: &str = "\
Examples:
  smoothlab viz penultimate results/mueller2019-fashion-mnist-lenet5/smoothing=0.0_seed=0_* \\
      results/mueller2019-fashion-mnist-lenet5/smoothing=0.1_seed=0_* \\
      --classes 0,1,2 --examples 150 --out figures/penultimate --figure-scale 0.75
  smoothlab viz penultimate results/cifar10-resnet20-smoothing/smoothing=0.1_seed=0_* \\
      --classes airplane,automobile,bird";

const BENCH_CALIBRATION_EXAMPLES: &str = "\
Examples:
  smoothlab bench calibration
  smoothlab bench calibration --repeats 3 --json calibration.json";

const BENCH_MODELS_EXAMPLES: &str = "\
Examples:
  smoothlab bench models --models mlp-sgd,lenet5 --losses ls,ce,focal
  smoothlab bench models --device cuda --batch-size 256 --steps 50 --json models.json";

const BENCH_EPOCH_EXAMPLES: &str = "\
Examples:
  smoothlab bench epoch --model lenet5 --loss focal --samples 10000 --epochs 2
  smoothlab bench epoch --model resnet20 --data data/cifar10 --device cuda --json epoch.json";

const BENCH_TRAIN_EXAMPLES: &str = "\
Examples:
  smoothlab bench train
  smoothlab bench train --device cuda --steps 50 --json train.json";

#[derive(Subcommand)]
pub enum Command {
    /// Train every run of an experiment that is not done yet, and write its results.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// List every planned run with its state: done, failed, running, stale or pending.
    #[command(after_help = STATUS_EXAMPLES)]
    Status(StatusArgs),
    /// Print an sbatch script for a Slurm job array whose task i runs shard i/N.
    #[command(after_help = SLURM_EXAMPLES)]
    Slurm(SlurmArgs),
    /// Train one run for a supervising `smoothlab run` (reads the job on stdin).
    #[command(hide = true)]
    Worker,
    /// Print one run's result readably.
    #[command(after_help = SHOW_EXAMPLES)]
    Show(ShowArgs),
    /// Calibration metrics for saved logits and labels (.npz, .safetensors or .json).
    #[command(after_help = CALIBRATE_EXAMPLES)]
    Calibrate(CalibrateArgs),
    /// Compare runs: one row per group of runs with the mean ± std over its completed
    /// runs (seeds), failed and missing runs counted; figures and an HTML page on request.
    #[command(after_help = REPORT_EXAMPLES)]
    Report(ReportArgs),
    /// Ask questions of results: one row per run directory, filtered with --where over
    /// its flattened keys (config.*, swept.*, metrics.test.*, status, error, ...),
    /// sorted, with the chosen columns.
    #[command(after_help = RUNS_EXAMPLES)]
    Runs(RunsArgs),
    /// Runs side by side: config, metrics (with the difference to the first run),
    /// history, and where the environment differs.
    #[command(after_help = COMPARE_EXAMPLES)]
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
    #[command(after_help = PENULTIMATE_EXAMPLES)]
    Penultimate(PenultimateArgs),
}

#[derive(Subcommand)]
pub enum Bench {
    /// Time the calibration metrics on 1,000,000 × 10 logits and the temperature fit on
    /// 100,000 × 100.
    #[command(after_help = BENCH_CALIBRATION_EXAMPLES)]
    Calibration(CalibrationBenchArgs),
    /// Training samples/s of the reference models (MLP 784-512-512-10 with SGD and with
    /// AdamW, LeNet-5 on 28×28×1, ResNet-20 on 32×32×3) through a run's training step, on
    /// fixed random batches: the median of several repetitions after a warm-up.
    #[command(after_help = BENCH_MODELS_EXAMPLES)]
    Models(ModelsBenchArgs),
    /// Whole epochs of a real run of one reference model (training loop, validation,
    /// final evaluation) on a data set of real size, synthetic or read from MNIST or
    /// CIFAR-10 files: samples/s, the evaluation's share and the peak resident memory.
    #[command(after_help = BENCH_EPOCH_EXAMPLES)]
    Epoch(EpochBenchArgs),
    /// Training samples/s of LeNet-5 (28×28×1) and ResNet-20 (32×32×3), with candle's
    /// conv2d and (on the CPU) with smoothlab's fused convolution.
    #[command(after_help = BENCH_TRAIN_EXAMPLES)]
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
    /// Aligned text for the terminal.
    Table,
    /// JSON for scripts.
    Json,
}

#[derive(Args)]
pub struct RunArgs {
    /// The experiment file (JSON): data set, model, loss, optimizer, training and the
    /// sweep that expands it into runs.
    pub experiment: PathBuf,
    /// Results directory (runs go to DIR/<experiment name>/<run id>/).
    #[arg(long, value_name = "DIR", default_value = "results")]
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
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    /// Output format: an aligned table with a summary line, or JSON for scripts.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Refresh every SECONDS (2 when --watch has no value) until no run is pending,
    /// running or stale: in place on a terminal, a line per refresh otherwise.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "2", value_parser = clap::value_parser!(u64).range(1..))]
    pub watch: Option<u64>,
}

#[derive(Args)]
pub struct SlurmArgs {
    /// The experiment file, at a path every node sees; task i trains its shard i/N.
    pub experiment: PathBuf,
    /// Array tasks (shards): N in shard i/N.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub tasks: usize,
    /// Slurm partition to submit to (default: the cluster's).
    #[arg(long)]
    pub partition: Option<String>,
    /// Time limit per task, in Slurm's format (e.g. 4:00:00).
    #[arg(long)]
    pub time: Option<String>,
    /// CPUs per task; each task's runs use that many threads (1 when not given and
    /// Slurm sets none).
    #[arg(long, value_parser = at_least_one)]
    pub cpus_per_task: Option<usize>,
    /// GPUs per task (--gres=gpu:G).
    #[arg(long, value_name = "G", value_parser = at_least_one)]
    pub gpus: Option<usize>,
    /// Results directory, on a filesystem every node sees.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    /// auto, cpu, cuda or cuda:N for every task (overrides the experiment's `device`).
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
    /// Logits and labels to measure: .npz (arrays `logits`, `labels`), .safetensors
    /// (`logits`/`labels`, or a run's predictions.safetensors) or .json.
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
    /// Output format: an aligned table, or JSON with the field names of result.json.
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
    /// Output format: an aligned table, GitHub Markdown, or one flat record per group
    /// as CSV or JSON (full precision, with `_mean`, `_std`, `_low`, `_high` columns).
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
    /// Panel size of the figures relative to the standard size (0.5 to 3); text keeps
    /// its size.
    /// 0.75 suits a paper's single column: a one-panel figure set 3.3 in wide then has
    /// 8 pt tick labels.
    #[arg(long, default_value = "1", value_name = "S", value_parser = figure_style)]
    pub figure_scale: Style,
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
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Output format: an aligned table, GitHub Markdown, or CSV or JSON at full
    /// precision.
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
    /// Output format: an aligned table, GitHub Markdown, CSV or JSON.
    #[arg(long, value_enum, default_value_t = report::ReportFormat::Table)]
    pub format: report::ReportFormat,
}

#[derive(Args)]
pub struct PenultimateArgs {
    /// Run directories, drawn side by side.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Three classes, by index or name (e.g. 0,1,2 or airplane,automobile,bird).
    #[arg(long, value_name = "A,B,C")]
    pub classes: String,
    /// Test examples per class (the first in test-set order).
    #[arg(long, default_value_t = 100, value_parser = at_least_one)]
    pub examples: usize,
    /// Output path without extension: writes OUT.svg and OUT.png.
    #[arg(long, default_value = "penultimate")]
    pub out: PathBuf,
    /// Panel size of the figure relative to the standard size (0.5 to 3), as for
    /// `report`.
    #[arg(long, default_value = "1", value_name = "S", value_parser = figure_style)]
    pub figure_scale: Style,
}

/// `--figure-scale`: a number in [`Style::SCALES`].
fn figure_style(text: &str) -> Result<Style, String> {
    let scale: f64 = text
        .parse()
        .map_err(|_| format!("expected a number, got {text:?}"))?;
    Style::new(scale).map_err(|e| e.to_string())
}

#[derive(Args)]
pub struct CalibrationBenchArgs {
    /// Repetitions; the median is reported.
    #[arg(long, default_value_t = 5, value_parser = at_least_one)]
    pub repeats: usize,
    /// Also write the figures to this JSON file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Args)]
pub struct ModelsBenchArgs {
    /// Cases to run, comma-separated: mlp-sgd, mlp-adamw, lenet5, lenet5-adamw, resnet20,
    /// resnet20-adamw.
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
    /// The case to train: mlp-sgd, mlp-adamw, lenet5, lenet5-adamw, resnet20, resnet20-adamw.
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
    /// Samples per training step.
    #[arg(long, default_value_t = 128, value_parser = at_least_one)]
    pub batch_size: usize,
    /// Device to measure on: cpu, cuda, cuda:N, or auto (CUDA device 0 when this build
    /// has CUDA and a GPU is usable, else the CPU).
    // cpu rather than auto, so that a benchmark measures the same device in every build.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Also write the figures to this JSON file.
    #[arg(long, value_name = "FILE")]
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
