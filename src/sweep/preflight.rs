//! What is checked once before any run of a sweep starts: every distinct data set of
//! the runs to train is read (a wrong `dataset.dir` is one message and exit 2, not a
//! failed record per run), and every run must fit in the memory this machine has.
//! Failing either leaves the results directory as it was.

use super::RunOptions;
use crate::data::{self, Extent};
use crate::memory::{self, Bytes};
use crate::spec::{DatasetSpec, DeviceSpec, Plan, PlannedRun};
use crate::store::ExperimentDir;
use crate::BadInput;
use anyhow::{anyhow, Result};

/// Checks the runs of `positions` that this invocation would train.
pub(super) fn check(
    plan: &Plan,
    dir: &ExperimentDir,
    positions: impl Iterator<Item = usize>,
    options: &RunOptions,
    device: DeviceSpec,
) -> Result<()> {
    let runs: Vec<(usize, &PlannedRun)> = positions
        .map(|p| (p, &plan.runs[p]))
        .filter(|(_, run)| needs_training(dir, run, options))
        .collect();
    let mut extents: Vec<(&DatasetSpec, Extent)> = Vec::new();
    for (_, run) in &runs {
        let spec = &run.config.dataset;
        if !extents.iter().any(|(s, _)| *s == spec) {
            let extent = data::check(spec).map_err(|e| {
                BadInput(e.context(format!("checking the {} data set", spec.name())))
            })?;
            extents.push((spec, extent));
        }
    }
    let Some(available) = memory::available() else {
        return Ok(());
    };
    // Each run alone must fit, and so must the `--jobs` largest together.
    let mut needs: Vec<(u64, usize, &PlannedRun, memory::Estimate)> = Vec::new();
    for (position, run) in &runs {
        let extent = &extents
            .iter()
            .find(|(s, _)| *s == &run.config.dataset)
            .expect("every data set was checked")
            .1;
        let estimate = memory::estimate(&run.config, extent);
        // On a GPU the model and its activations live in the GPU's memory; the host
        // still holds the data.
        let needed = match device {
            DeviceSpec::Cuda(_) => estimate.data,
            _ => estimate.total(),
        };
        needs.push((needed, *position, run, estimate));
    }
    needs.sort_by_key(|n| std::cmp::Reverse(n.0));
    let at_once = options.jobs.min(needs.len());
    let together: u64 = needs[..at_once]
        .iter()
        .map(|n| n.0)
        .fold(0, u64::saturating_add);
    if let Some(&(_, position, run, estimate)) = needs.first() {
        if together > available {
            let jobs = if at_once > 1 {
                format!(
                    "; the {at_once} largest runs at once (--jobs {}) need {}",
                    options.jobs,
                    Bytes(together)
                )
            } else {
                String::new()
            };
            return Err(BadInput(anyhow!(
                "run {}/{} {} needs {estimate}{jobs}, but {} is available; make it smaller (model, batch_size, eval_batch_size, data), use fewer --jobs, or run it where memory is larger",
                position + 1,
                plan.runs.len(),
                run.id,
                Bytes(available)
            ))
            .into());
        }
    }
    Ok(())
}

/// Whether this invocation would train `run` on what is stored now (the supervisor
/// decides again, under the run's lock, before training it). An unreadable directory
/// counts: it is recorded as failed when its turn comes.
fn needs_training(dir: &ExperimentDir, run: &PlannedRun, options: &RunOptions) -> bool {
    match dir.run(&run.id).stored() {
        Ok(state) => {
            super::supervisor::stored_outcome(options, state, chrono::Utc::now()).is_none()
        }
        Err(_) => true,
    }
}
