//! The `smoothlab` command line: parse, call the library, map errors to exit codes
//! (0 success, 1 a run or the program failed, 2 bad usage or input: nothing was run).

use clap::{Parser, Subcommand, ValueEnum};
use smoothlab::spec::DeviceSpec;
use smoothlab::{progress, report, spec, store, sweep, BadInput};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "smoothlab",
    version,
    about = "Label smoothing and calibration experiments on candle"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train every run of an experiment that is not done yet, and write its results.
    Run {
        experiment: PathBuf,
        /// Results directory (runs go to DIR/<experiment name>/<run id>/).
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// auto, cpu, cuda or cuda:N (overrides the experiment's `device`).
        #[arg(long)]
        device: Option<DeviceSpec>,
        /// Rerun runs that are already completed.
        #[arg(long)]
        force: bool,
        /// Rerun runs whose last attempt failed.
        #[arg(long)]
        retry_failed: bool,
        /// Print the plan with each run's status, and run nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print one run's result readably.
    Show {
        /// A run directory or its result.json.
        run: PathBuf,
    },
    /// Calibration metrics for saved logits and labels (.npz, .safetensors or .json).
    Calibrate {
        predictions: PathBuf,
        /// Number of equal-width confidence bins.
        #[arg(long, default_value = "15")]
        bins: NonZeroUsize,
        /// Fit a temperature on these (validation) predictions and also report the
        /// metrics after scaling.
        #[arg(long, value_name = "VAL_PREDICTIONS")]
        fit_temperature: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Measure throughput.
    #[command(subcommand)]
    Bench(Bench),
}

#[derive(Subcommand)]
enum Bench {
    /// Time the calibration metrics on 1,000,000 × 10 logits and the temperature fit on
    /// 100,000 × 100.
    Calibration {
        /// Repetitions; the median is reported.
        #[arg(long, default_value_t = 5, value_parser = at_least_one)]
        repeats: usize,
        /// Also write the figures to this JSON file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Training samples/s of LeNet-5 (28×28×1) and ResNet-20 (32×32×3) on the CPU, with
    /// candle's conv2d and with smoothlab's im2col convolution.
    Train {
        /// Timed steps per case (after one warm-up step).
        #[arg(long, default_value_t = 20, value_parser = at_least_one)]
        steps: usize,
        #[arg(long, default_value_t = 128, value_parser = at_least_one)]
        batch_size: usize,
        /// Also write the figures to this JSON file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn at_least_one(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err("expected at least 1".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

fn main() -> ExitCode {
    progress::init_logging();
    match dispatch(Cli::parse().command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(smoothlab::exit_code(&error))
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run {
            experiment,
            results,
            device,
            force,
            retry_failed,
            dry_run,
        } => {
            let plan = spec::load(&experiment)?;
            if dry_run {
                print!("{}", sweep::describe_plan(&plan, &results)?);
                return Ok(ExitCode::SUCCESS);
            }
            let options = sweep::RunOptions {
                results,
                device,
                force,
                retry_failed,
            };
            let summary = sweep::run(&plan, &options)?;
            println!("{}", summary.line());
            Ok(if summary.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Show { run } => {
            let result = store::read_result(&run).map_err(BadInput)?;
            print!("{}", report::show(&result));
            Ok(ExitCode::SUCCESS)
        }
        Command::Calibrate {
            predictions,
            bins,
            fit_temperature,
            format,
        } => {
            let output =
                report::CalibrationReport::compute(&predictions, bins, fit_temperature.as_deref())?;
            match format {
                Format::Table => print!("{}", output.table()),
                Format::Json => println!("{}", serde_json::to_string_pretty(&output)?),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(Bench::Calibration { repeats, json }) => {
            let figures = smoothlab::bench::CalibrationBench::run(repeats);
            report_bench(&figures.table(), &figures, json)
        }
        Command::Bench(Bench::Train {
            steps,
            batch_size,
            json,
        }) => {
            let figures = smoothlab::bench::TrainBench::run(steps, batch_size)?;
            report_bench(&figures.table(), &figures, json)
        }
    }
}

/// Prints a benchmark's table and, when asked, writes its figures as JSON.
fn report_bench(
    table: &str,
    figures: &impl serde::Serialize,
    json: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    print!("{table}");
    if let Some(path) = json {
        store::write_json(&path, figures)?;
    }
    Ok(ExitCode::SUCCESS)
}
