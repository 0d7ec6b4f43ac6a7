//! One function per subcommand: turn its arguments into the library's options, call
//! the library, print. The exit code is 0 on success, 1 when a run failed, 2 for bad
//! input (see [`smoothlab::exit_code`]) and 130 for an interrupted sweep.

use super::args::*;
use smoothlab::{atomic, bench, device, query, report, slurm, spec, store, sweep, BadInput};
use std::path::PathBuf;
use std::process::ExitCode;

type Outcome = anyhow::Result<ExitCode>;

pub fn dispatch(command: Command) -> Outcome {
    match command {
        Command::Run(args) => run(args),
        Command::Status(args) => status(args),
        Command::Slurm(args) => slurm(args),
        Command::Worker => unreachable!("main starts workers before dispatching"),
        Command::Show(args) => show(args),
        Command::Calibrate(args) => calibrate(args),
        Command::Report(args) => report(args),
        Command::Runs(args) => runs(args),
        Command::Compare(args) => compare(args),
        Command::Viz(Viz::Penultimate(args)) => penultimate(args),
        Command::Bench(Bench::Calibration(args)) => bench_calibration(args),
        Command::Bench(Bench::Models(args)) => bench_models(args),
        Command::Bench(Bench::Epoch(args)) => bench_epoch(args),
        Command::Bench(Bench::Train(args)) => bench_train(args),
    }
}

fn run(args: RunArgs) -> Outcome {
    let plan = spec::load(&args.experiment)?;
    if args.dry_run {
        let dir = sweep::experiment_dir(&plan, &args.results);
        let statuses: Vec<_> = sweep::status::collect(&plan, &dir)?
            .into_iter()
            .filter(|s| args.shard.contains(s.position))
            .collect();
        println!(
            "{}: {} run(s) of shard {} in {}",
            plan.file.display(),
            statuses.len(),
            args.shard,
            dir.path().display()
        );
        print!("{}", sweep::status::table(&statuses));
        return Ok(ExitCode::SUCCESS);
    }
    let options = sweep::RunOptions {
        results: args.results,
        device: args.device,
        force: args.force,
        retry_failed: args.retry_failed,
        shard: args.shard,
        jobs: args.jobs,
        threads: args.threads,
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

fn status(args: StatusArgs) -> Outcome {
    let (plan, dir) = sweep::status::open(&args.target, &args.results)?;
    if let Some(seconds) = args.watch {
        return watch(&plan, &dir, std::time::Duration::from_secs(seconds));
    }
    let statuses = sweep::status::collect(&plan, &dir)?;
    match args.format {
        Format::Table => {
            println!("{}: {}", plan.experiment.name, dir.path().display());
            print!("{}", sweep::status::table(&statuses));
        }
        Format::Json => {
            let json = serde_json::json!({
                "experiment": plan.experiment.name,
                "dir": dir.path(),
                "summary": sweep::status::summary_line(&statuses),
                "runs": statuses,
            });
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `status --watch`: the table redrawn in place on a terminal, one summary line per
/// refresh otherwise (a log), until nothing is left to run.
fn watch(plan: &spec::Plan, dir: &store::ExperimentDir, every: std::time::Duration) -> Outcome {
    use std::io::{IsTerminal, Write};
    let terminal = std::io::stdout().is_terminal();
    let mut durations = std::collections::HashMap::new();
    loop {
        let statuses = sweep::status::collect(plan, dir)?;
        let eta = sweep::status::eta(dir, &statuses, &mut durations);
        let now = chrono::Local::now().format("%H:%M:%S");
        let mut out = std::io::stdout().lock();
        if terminal {
            // Home the cursor and clear the screen, then draw the whole table.
            write!(
                out,
                "\x1b[H\x1b[2J{}: {} ({now}, every {} s)\n{}{eta}\n",
                plan.experiment.name,
                dir.path().display(),
                every.as_secs(),
                sweep::status::table(&statuses)
            )?;
        } else {
            writeln!(
                out,
                "{now} {}; {eta}",
                sweep::status::summary_line(&statuses)
            )?;
        }
        out.flush()?;
        drop(out);
        if sweep::status::finished(&statuses) {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(every);
    }
}

fn slurm(args: SlurmArgs) -> Outcome {
    let plan = spec::load(&args.experiment)?;
    let options = slurm::SlurmOptions {
        tasks: args.tasks,
        partition: args.partition,
        time: args.time,
        cpus_per_task: args.cpus_per_task,
        gpus: args.gpus,
        results: args.results,
        device: args.device,
    };
    let script = slurm::script(&plan, &options, &std::env::current_exe()?).map_err(BadInput)?;
    print!("{script}");
    Ok(ExitCode::SUCCESS)
}

fn show(args: ShowArgs) -> Outcome {
    let result = store::read_result(&args.run).map_err(BadInput)?;
    print!("{}", report::show(&result));
    Ok(ExitCode::SUCCESS)
}

fn calibrate(args: CalibrateArgs) -> Outcome {
    let output = report::CalibrationReport::compute(
        &args.predictions,
        args.bins,
        args.fit.as_deref(),
        &args.method,
        (args.bootstrap > 0).then_some(smoothlab::calibration::Bootstrap {
            resamples: args.bootstrap as usize,
            level: args.level,
            seed: args.seed,
        }),
    )?;
    match args.format {
        Format::Table => print!("{}", output.table()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&output)?),
    }
    Ok(ExitCode::SUCCESS)
}

fn report(args: ReportArgs) -> Outcome {
    let options = report::ReportOptions {
        dir: args.dir,
        by: args
            .by
            .map(|keys| keys.into_iter().filter(|k| !k.is_empty()).collect()),
        format: args.format,
        plots: args.plots,
        html: args.html,
        filter: args.filter,
        metrics: args.metrics,
        figure_style: args.figure_scale,
    };
    print!("{}", report::report(&options)?);
    Ok(ExitCode::SUCCESS)
}

fn runs(args: RunsArgs) -> Outcome {
    let rows = query::collect(&args.results)?;
    let asked = query::runs::Query {
        filter: args.filter,
        sort: args.sort,
        columns: args.columns,
        limit: args.limit,
    };
    print!("{}", query::runs::answer(rows, &asked, args.format)?);
    Ok(ExitCode::SUCCESS)
}

fn compare(args: CompareArgs) -> Outcome {
    print!(
        "{}",
        query::compare::compare(&args.runs, args.only_changed, args.format)?
    );
    Ok(ExitCode::SUCCESS)
}

fn penultimate(args: PenultimateArgs) -> Outcome {
    let figure =
        report::penultimate::figure(&args.runs, &args.classes, args.examples, args.figure_scale)?;
    let out = &args.out;
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

fn bench_calibration(args: CalibrationBenchArgs) -> Outcome {
    let figures = bench::CalibrationBench::run(args.repeats);
    print_bench(&figures.table(), &figures, args.json)
}

fn bench_models(args: ModelsBenchArgs) -> Outcome {
    let device = device::open(args.step.device)?;
    let options = bench::ModelsOptions {
        cases: args.models,
        losses: args.losses,
        batch_size: args.step.batch_size,
        warmup: args.warmup,
        steps: args.steps,
        repeats: args.repeats,
    };
    let figures = bench::ModelsBench::run(&options, &device)?;
    print_bench(&figures.table(), &figures, args.step.json)
}

fn bench_epoch(args: EpochBenchArgs) -> Outcome {
    let device = device::open(args.step.device)?;
    let options = bench::EpochOptions {
        model: args.model,
        loss: args.loss,
        data: args.data,
        samples: args.samples,
        warmup_epochs: args.warmup_epochs,
        epochs: args.epochs,
        batch_size: args.step.batch_size,
    };
    let figures = bench::EpochBench::run(&options, &device)?;
    print_bench(&figures.table(), &figures, args.step.json)
}

fn bench_train(args: TrainBenchArgs) -> Outcome {
    let device = device::open(args.step.device)?;
    let figures = bench::TrainBench::run(args.steps, args.step.batch_size, &device)?;
    print_bench(&figures.table(), &figures, args.step.json)
}

/// Prints a benchmark's table and, when asked, writes its figures as JSON.
fn print_bench(table: &str, figures: &impl serde::Serialize, json: Option<PathBuf>) -> Outcome {
    print!("{table}");
    if let Some(path) = json {
        atomic::write_json(&path, figures)?;
    }
    Ok(ExitCode::SUCCESS)
}
