//! `smoothlab slurm`: an sbatch script for a job array whose task i runs shard i/N of a
//! sweep. Slurm schedules; smoothlab's locks, shards and checkpoints make the tasks
//! safe to requeue, to overlap and to rerun.

use crate::spec::{DeviceSpec, Plan};
use crate::sweep;
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Seconds before the time limit at which Slurm warns a task (USR1), so that it can stop
/// at the next step and requeue itself.
const WARNING_SECONDS: u32 = 120;

#[derive(Debug, Clone)]
pub struct SlurmOptions {
    /// Array tasks (shards).
    pub tasks: usize,
    pub partition: Option<String>,
    /// A Slurm time limit (`MM`, `HH:MM:SS`, `D-HH:MM`, ...).
    pub time: Option<String>,
    pub cpus_per_task: Option<usize>,
    pub gpus: Option<usize>,
    /// Parent of `<experiment>/`, on a filesystem every node sees.
    pub results: PathBuf,
    pub device: Option<DeviceSpec>,
}

/// The sbatch script for `plan`, run by `executable`. Creates the directory the tasks'
/// logs go to (Slurm does not create it).
pub fn script(plan: &Plan, options: &SlurmOptions, executable: &Path) -> Result<String> {
    check_word("--partition", options.partition.as_deref(), |c| {
        c.is_ascii_alphanumeric() || "_-.,".contains(c)
    })?;
    check_word("--time", options.time.as_deref(), |c| {
        c.is_ascii_digit() || ":-".contains(c)
    })?;
    let tasks = options.tasks;
    let runs = plan.runs.len();
    if tasks > runs {
        tracing::warn!(
            "{tasks} tasks for {runs} run(s): {} task(s) will find nothing to do",
            tasks - runs
        );
    }
    let experiment = absolute(&plan.file)?;
    let results = absolute(&options.results)?;
    let name = &plan.experiment.name;
    let logs = sweep::experiment_dir(plan, &results).slurm_logs();
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;

    let mut s = String::new();
    let _ = writeln!(s, "#!/bin/bash");
    let _ = writeln!(
        s,
        "# smoothlab experiment `{name}`: {runs} run(s) in {tasks} array task(s); task i runs shard i/{tasks}."
    );
    let _ = writeln!(
        s,
        "# Every task writes to {} (a filesystem all nodes must see).",
        results.display()
    );
    let _ = writeln!(
        s,
        "# Submit with `sbatch <this file>`; follow with `smoothlab status {}`.",
        sweep::experiment_dir(plan, &results).path().display()
    );
    let _ = writeln!(s, "#SBATCH --job-name=smoothlab-{name}");
    let _ = writeln!(s, "#SBATCH --array=0-{}", tasks - 1);
    let _ = writeln!(
        s,
        "#SBATCH --output={}",
        sbatch_value(&format!(
            "{}/%A_%a.out",
            escape_percent(&logs.to_string_lossy())
        ))?
    );
    let _ = writeln!(s, "#SBATCH --open-mode=append");
    if let Some(partition) = &options.partition {
        let _ = writeln!(s, "#SBATCH --partition={partition}");
    }
    if let Some(time) = &options.time {
        let _ = writeln!(s, "#SBATCH --time={time}");
    }
    if let Some(cpus) = options.cpus_per_task {
        let _ = writeln!(s, "#SBATCH --cpus-per-task={cpus}");
    }
    if let Some(gpus) = options.gpus {
        let _ = writeln!(s, "#SBATCH --gres=gpu:{gpus}");
    }
    let _ = writeln!(s, "#SBATCH --requeue");
    let _ = writeln!(s, "#SBATCH --signal=B:USR1@{WARNING_SECONDS}");
    let _ = writeln!(s, "set -uo pipefail");
    s += r#"
# Near the time limit Slurm sends USR1 to this script: stop smoothlab (each run stops at
# its next step, keeps its last epoch checkpoint and releases its lock), then requeue the
# task, which resumes from those checkpoints.
requeue() {
  kill -TERM "$worker" 2>/dev/null
  wait "$worker"
  scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}" || exit 1
  exit 0
}
trap requeue USR1

export RAYON_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"
"#;
    let mut command = format!(
        "{} run {} --results {} --shard \"${{SLURM_ARRAY_TASK_ID}}/{tasks}\"",
        quote(&executable.to_string_lossy()),
        quote(&experiment.to_string_lossy()),
        quote(&results.to_string_lossy()),
    );
    if let Some(device) = options.device {
        let _ = write!(command, " --device {device}");
    }
    let _ = writeln!(s, "{command} &");
    s += "worker=$!\nwait \"$worker\"\n";
    Ok(s)
}

fn check_word(flag: &str, value: Option<&str>, allowed: impl Fn(char) -> bool) -> Result<()> {
    match value {
        Some(v) if v.is_empty() || !v.chars().all(allowed) => {
            bail!(
                "{flag} `{v}` is not a Slurm value (letters, digits and the usual separators only)"
            )
        }
        _ => Ok(()),
    }
}

/// `%` in a path, protected from sbatch's filename patterns.
fn escape_percent(path: &str) -> String {
    path.replace('%', "%%")
}

/// `value` in double quotes, as sbatch reads `#SBATCH` lines (spaces allowed; a double
/// quote or a line break cannot be written there).
fn sbatch_value(value: &str) -> Result<String> {
    if value.contains(['"', '\n', '\r']) {
        bail!("the path {value:?} contains a double quote or a line break, which a #SBATCH line cannot hold; use another --results directory");
    }
    Ok(format!("\"{value}\""))
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

/// `text` as one single-quoted shell word.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quoting_survives_spaces_and_quotes() {
        assert_eq!(quote("/a b/c"), "'/a b/c'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
