//! The `smoothlab` command line: parse, call the library, map errors to exit codes
//! (0 success, 1 a run or the program failed, 2 bad usage or input: nothing was run).

use clap::{Parser, Subcommand, ValueEnum};
use smoothlab::spec::DeviceSpec;
use smoothlab::sweep::Shard;
use smoothlab::{atomic, progress, report, slurm, spec, store, sweep, BadInput};
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
        /// Run only shard I of N (0-based): the plan's runs I, I+N, I+2N, ...
        #[arg(long, value_name = "I/N", default_value = "0/1")]
        shard: Shard,
        /// Train this many runs at once, each in its own process.
        #[arg(long, default_value_t = 1, value_parser = at_least_one)]
        jobs: usize,
        /// CPU threads per run (default: the cores divided among the jobs).
        #[arg(long, value_parser = at_least_one)]
        threads: Option<usize>,
        /// Print the plan with each run's status, and run nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List every planned run with its state: done, failed, running, stale or pending.
    Status {
        /// An experiment file, or an experiment's results directory (which holds the
        /// experiment.json that `run` keeps).
        target: PathBuf,
        /// Results directory, when TARGET is an experiment file.
        #[arg(long, default_value = "results")]
        results: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Print an sbatch script for a Slurm job array whose task i runs shard i/N.
    Slurm {
        experiment: PathBuf,
        /// Array tasks (shards).
        #[arg(long, value_parser = at_least_one)]
        tasks: usize,
        #[arg(long)]
        partition: Option<String>,
        /// Time limit per task, in Slurm's format (e.g. 4:00:00).
        #[arg(long)]
        time: Option<String>,
        #[arg(long, value_parser = at_least_one)]
        cpus_per_task: Option<usize>,
        /// GPUs per task.
        #[arg(long, value_parser = at_least_one)]
        gpus: Option<usize>,
        /// Results directory, on a filesystem every node sees.
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// auto, cpu, cuda or cuda:N for every task.
        #[arg(long)]
        device: Option<DeviceSpec>,
    },
    /// Train one run for a supervising `smoothlab run` (reads the job on stdin).
    #[command(hide = true)]
    Worker,
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
    /// Compare runs: one row per group of runs with the mean ± std over its completed
    /// runs (seeds), failed and missing runs counted; figures and an HTML page on request.
    Report {
        /// An experiment's results directory (results/<experiment>), or a directory of them.
        dir: PathBuf,
        /// Group by these dotted config keys (or `experiment`), comma-separated; default:
        /// the swept keys but the seed. `--by ''` puts every run in one group.
        #[arg(long, value_delimiter = ',', value_name = "KEY,...")]
        by: Option<Vec<String>>,
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
        /// Write the figures (reliability diagrams, metrics against ε, training curves)
        /// here as SVG and PNG.
        #[arg(long, value_name = "DIR")]
        plots: Option<PathBuf>,
        /// Write one self-contained HTML page with the table and the figures.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Pictures of trained models.
    #[command(subcommand)]
    Viz(Viz),
    /// Measure throughput.
    #[command(subcommand)]
    Bench(Bench),
}

#[derive(Subcommand)]
enum Viz {
    /// Müller et al. 2019, Fig. 1: penultimate-layer activations of test examples of three
    /// classes, projected onto the plane through those classes' last-layer templates;
    /// one panel per run (needs the runs' model.safetensors: set "save_model": true).
    Penultimate {
        /// Run directories, drawn side by side.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Three classes, by index or name (e.g. 0,1,2 or airplane,automobile,bird).
        #[arg(long)]
        classes: String,
        /// Test examples per class (the first in test-set order).
        #[arg(long, default_value_t = 100, value_parser = at_least_one)]
        examples: usize,
        /// Output path without extension: writes OUT.svg and OUT.png.
        #[arg(long, default_value = "penultimate")]
        out: PathBuf,
    },
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
    /// Training samples/s of the reference models (MLP 784-512-512-10 with SGD and with
    /// AdamW, LeNet-5 on 28×28×1, ResNet-20 on 32×32×3) through a run's training step, on
    /// fixed random batches: the median of several repetitions after a warm-up.
    Models {
        /// Cases to run, comma-separated: mlp-sgd, mlp-adamw, lenet5, resnet20.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "mlp-sgd,mlp-adamw,lenet5,resnet20"
        )]
        models: Vec<smoothlab::bench::ModelCase>,
        /// Timed steps per repetition.
        #[arg(long, default_value_t = 20, value_parser = at_least_one)]
        steps: usize,
        /// Repetitions; the median is reported, with the minimum and maximum.
        #[arg(long, default_value_t = 5, value_parser = at_least_one)]
        repeats: usize,
        /// Untimed steps before the first repetition.
        #[arg(long, default_value_t = 5)]
        warmup: usize,
        #[arg(long, default_value_t = 128, value_parser = at_least_one)]
        batch_size: usize,
        /// cpu, cuda or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
        /// Also write the figures to this JSON file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// One epoch of the MLP on MNIST-sized random data through the training loop: the
    /// share of evaluation and calibration metrics in it, and the peak resident memory
    /// of each epoch of a short run.
    Epoch {
        /// Training samples (784 features each) before the validation split; the test
        /// set has a sixth as many. At least 10, so that every split has a sample.
        #[arg(long, default_value_t = 60_000, value_parser = at_least_ten)]
        samples: usize,
        /// Epochs of the run whose memory is measured.
        #[arg(long, default_value_t = 3, value_parser = at_least_one)]
        epochs: usize,
        #[arg(long, default_value_t = 128, value_parser = at_least_one)]
        batch_size: usize,
        /// cpu, cuda or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
        /// Also write the figures to this JSON file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Training samples/s of LeNet-5 (28×28×1) and ResNet-20 (32×32×3), with candle's
    /// conv2d and (on the CPU) with smoothlab's fused convolution.
    Train {
        /// Timed steps per case (after one warm-up step).
        #[arg(long, default_value_t = 20, value_parser = at_least_one)]
        steps: usize,
        #[arg(long, default_value_t = 128, value_parser = at_least_one)]
        batch_size: usize,
        /// cpu, cuda or cuda:N (auto: CUDA when available).
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
        /// Also write the figures to this JSON file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn at_least_one(value: &str) -> Result<usize, String> {
    at_least(value, 1)
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
enum Format {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Table,
    Md,
    Csv,
    Json,
}

fn main() -> ExitCode {
    elementwise_on_one_thread();
    #[cfg(feature = "mimalloc")]
    keep_freed_memory_a_minute();
    let command = Cli::parse().command;
    if let Command::Worker = command {
        smoothlab::sweep::worker::init_logging();
        return match sweep::interrupt_flag(false) {
            Ok(interrupt) => ExitCode::from(sweep::worker::main(interrupt) as u8),
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(sweep::worker::exit::FATAL as u8)
            }
        };
    }
    progress::init_logging();
    match dispatch(command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(smoothlab::exit_code(&error))
        }
    }
}

/// candle runs large elementwise ops on its own pool of `CANDLE_NUM_THREADS` threads
/// (default: the core count) beside gemm's rayon pool, and its threads spin while they
/// wait. With both pools on the same cores the spinning starves the matrix products:
/// an MLP 784-512-512-10 epoch took 10.3 s with the default and 1.5 s with one thread
/// on 2 busy cores (see README, Performance). Elementwise work at these sizes is cheap
/// on one thread; a user who sets the variable keeps their choice. Set before any
/// thread exists (workers inherit it), so changing the environment is sound.
///
/// `RAYON_NUM_THREADS` is pinned to the count candle would choose (its physical-core
/// count) for the same reason it exists: without it candle works that count out again
/// for every matrix product, reading /proc/cpuinfo each time.
fn elementwise_on_one_thread() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = candle_core::utils::get_num_threads();
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
}

/// mimalloc hands freed memory back to the kernel after its purge delay (1 s by default in
/// mimalloc 3). A training step frees its activations and gradients and allocates the
/// same sizes again in the next step, and with that delay the kernel still took memory
/// back and zeroed it again on the next fault every few steps: 17,000 faults and 15 % of
/// the CPU time in 13 ResNet-20 steps. With a minute, the freed memory is reused (770
/// faults; see README, Performance). The peak is unchanged: memory is only held longer
/// while nothing uses it. `MIMALLOC_PURGE_DELAY` still overrides this.
#[cfg(feature = "mimalloc")]
fn keep_freed_memory_a_minute() {
    // `mi_option_purge_delay` in mimalloc 3's `mi_option_t` (include/mimalloc.h); the
    // Rust bindings have no constant for it.
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: called before any other thread exists (options are not thread safe).
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 60_000) };
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
            shard,
            jobs,
            threads,
            dry_run,
        } => {
            let plan = spec::load(&experiment)?;
            if dry_run {
                let dir = sweep::experiment_dir(&plan, &results);
                let statuses: Vec<_> = sweep::status::collect(&plan, &dir)?
                    .into_iter()
                    .filter(|s| shard.contains(s.position))
                    .collect();
                println!(
                    "{}: {} run(s) of shard {shard} in {}",
                    plan.file.display(),
                    statuses.len(),
                    dir.display()
                );
                print!("{}", sweep::status::table(&statuses));
                return Ok(ExitCode::SUCCESS);
            }
            let options = sweep::RunOptions {
                results,
                device,
                force,
                retry_failed,
                shard,
                jobs,
                threads,
                executable: std::env::current_exe()?,
            };
            let summary = sweep::run(&plan, &options)?;
            println!("{}", summary.line());
            Ok(
                if !summary.interrupted.is_empty() || !summary.not_started.is_empty() {
                    ExitCode::from(sweep::worker::exit::INTERRUPTED as u8)
                } else if summary.failed.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                },
            )
        }
        Command::Status {
            target,
            results,
            format,
        } => {
            let (plan, dir) = sweep::status::open(&target, &results)?;
            let statuses = sweep::status::collect(&plan, &dir)?;
            match format {
                Format::Table => {
                    println!("{}: {}", plan.experiment.name, dir.display());
                    print!("{}", sweep::status::table(&statuses));
                }
                Format::Json => {
                    let json = serde_json::json!({
                        "experiment": plan.experiment.name,
                        "dir": dir,
                        "summary": sweep::status::summary_line(&statuses),
                        "runs": statuses,
                    });
                    println!("{}", serde_json::to_string_pretty(&json)?);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Slurm {
            experiment,
            tasks,
            partition,
            time,
            cpus_per_task,
            gpus,
            results,
            device,
        } => {
            let plan = spec::load(&experiment)?;
            let options = slurm::SlurmOptions {
                tasks,
                partition,
                time,
                cpus_per_task,
                gpus,
                results,
                device,
            };
            let script =
                slurm::script(&plan, &options, &std::env::current_exe()?).map_err(BadInput)?;
            print!("{script}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Worker => unreachable!("handled in main"),
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
        Command::Report {
            dir,
            by,
            format,
            plots,
            html,
        } => {
            let options = report::ReportOptions {
                dir,
                by: by.map(|keys| keys.into_iter().filter(|k| !k.is_empty()).collect()),
                format: match format {
                    ReportFormat::Table => report::ReportFormat::Table,
                    ReportFormat::Md => report::ReportFormat::Markdown,
                    ReportFormat::Csv => report::ReportFormat::Csv,
                    ReportFormat::Json => report::ReportFormat::Json,
                },
                plots,
                html,
            };
            print!("{}", report::report(&options)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Viz(Viz::Penultimate {
            runs,
            classes,
            examples,
            out,
        }) => {
            let figure = report::penultimate::figure(&runs, &classes, examples)?;
            let dir = match out.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let stem = out
                .file_name()
                .ok_or_else(|| {
                    BadInput(anyhow::anyhow!(
                        "--out {}: expected a file path",
                        out.display()
                    ))
                })?
                .to_string_lossy()
                .into_owned();
            for path in figure.write(&dir, &stem)? {
                println!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(Bench::Calibration { repeats, json }) => {
            let figures = smoothlab::bench::CalibrationBench::run(repeats);
            report_bench(&figures.table(), &figures, json)
        }
        Command::Bench(Bench::Models {
            models,
            steps,
            repeats,
            warmup,
            batch_size,
            device,
            json,
        }) => {
            let device = smoothlab::device::open(device)?;
            let options = smoothlab::bench::ModelsOptions {
                cases: models,
                batch_size,
                warmup,
                steps,
                repeats,
            };
            let figures = smoothlab::bench::ModelsBench::run(&options, &device)?;
            report_bench(&figures.table(), &figures, json)
        }
        Command::Bench(Bench::Epoch {
            samples,
            epochs,
            batch_size,
            device,
            json,
        }) => {
            let device = smoothlab::device::open(device)?;
            let options = smoothlab::bench::EpochOptions {
                samples,
                epochs,
                batch_size,
            };
            let figures = smoothlab::bench::EpochBench::run(&options, &device)?;
            report_bench(&figures.table(), &figures, json)
        }
        Command::Bench(Bench::Train {
            steps,
            batch_size,
            device,
            json,
        }) => {
            let device = smoothlab::device::open(device)?;
            let figures = smoothlab::bench::TrainBench::run(steps, batch_size, &device)?;
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
        atomic::write_json(&path, figures)?;
    }
    Ok(ExitCode::SUCCESS)
}
