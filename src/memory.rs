//! How much memory a run needs and how much this machine has: a run that cannot fit is
//! refused before anything starts, with the figures, instead of aborting mid-way on an
//! allocation failure.

use crate::data::Extent;
use crate::spec::{ModelSpec, OptimizerSpec, RunConfig};
use std::fmt;
use std::path::Path;

/// A byte count, shown in decimal units ("34.2 GB") as `free -h --si` and most
/// dashboards show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0 as f64;
        match self.0 {
            0..1_000 => write!(f, "{} B", self.0),
            1_000..1_000_000 => write!(f, "{:.1} kB", b / 1e3),
            1_000_000..1_000_000_000 => write!(f, "{:.1} MB", b / 1e6),
            1_000_000_000..1_000_000_000_000 => write!(f, "{:.1} GB", b / 1e9),
            _ => write!(f, "{:.1} TB", b / 1e12),
        }
    }
}

/// Memory this process may still use: the kernel's `MemAvailable`, or what the memory
/// cgroup (Slurm's `--mem`, a container's limit) leaves, whichever is less. `None` where
/// neither can be read.
pub fn available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let system = meminfo.as_deref().and_then(mem_available);
    [system, cgroup_headroom()].into_iter().flatten().min()
}

/// An error unless `bytes` fit in the memory available; `what` says what needs them,
/// e.g. "path: its header (dims [..]) describes".
pub fn ensure_fits(what: impl FnOnce() -> String, bytes: u64) -> anyhow::Result<()> {
    match available() {
        Some(available) if bytes > available => Err(anyhow::anyhow!(
            "{} {} of data, more than the {} of memory available",
            what(),
            Bytes(bytes),
            Bytes(available)
        )),
        _ => Ok(()),
    }
}

/// `MemAvailable` of /proc/meminfo, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// What this process's memory cgroup leaves: the smallest limit minus usage over its
/// cgroup and the cgroups above it (Slurm puts the job's `--mem` limit on the job's
/// cgroup and the task in one below it); `None` without a limit.
fn cgroup_headroom() -> Option<u64> {
    let read =
        |path: &Path| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut headroom: Option<u64> = None;
    for line in cgroups.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let (root, limit_file, usage_file) = if controllers.is_empty() {
            ("/sys/fs/cgroup", "memory.max", "memory.current")
        } else if controllers.split(',').any(|c| c == "memory") {
            (
                "/sys/fs/cgroup/memory",
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
            )
        } else {
            continue;
        };
        let leaf = Path::new(root).join(path.trim_start_matches('/'));
        for dir in leaf.ancestors().take_while(|d| d.starts_with(root)) {
            // "max" (v2) does not parse; v1 writes "no limit" as a huge number.
            let (Some(limit), Some(usage)) =
                (read(&dir.join(limit_file)), read(&dir.join(usage_file)))
            else {
                continue;
            };
            if limit < 1 << 60 {
                let left = limit.saturating_sub(usage);
                headroom = Some(headroom.map_or(left, |h| h.min(left)));
            }
        }
    }
    headroom
}

/// What a run needs, in bytes, by what holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub data: u64,
    /// Weights, their gradients, the optimiser's state and the saved copies.
    pub parameters: u64,
    /// The largest batch's intermediate values (and their gradients, in training), and
    /// the program's own working memory.
    pub activations: u64,
}

impl Estimate {
    pub fn total(&self) -> u64 {
        self.data
            .saturating_add(self.parameters)
            .saturating_add(self.activations)
    }
}

impl fmt::Display for Estimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "about {} (data {}, parameters with their gradients and optimiser state {}, activations and working memory {})",
            Bytes(self.total()),
            Bytes(self.data),
            Bytes(self.parameters),
            Bytes(self.activations)
        )
    }
}

/// f32 throughout.
const VALUE: f64 = 4.0;
/// The most one evaluation batch's widest layer may hold. At the default of 2048 rows
/// a ResNet's 16 × 32 × 32 layers take 134 MB each, and a 50,000-image run peaked at
/// 2.1 GB, most of it evaluation; an eighth of the rows (256) peaked at under half as
/// much in a smaller run and validated no slower.
/// The MLP's layers are narrow enough to keep the full 2048 rows, where they pay.
const EVAL_LAYER_BYTES: f64 = 16.0 * 1024.0 * 1024.0;

/// The program's own memory beside a run's tensors.
const PROGRAM: f64 = 100e6;

/// The rows of one evaluation batch: `training.eval_batch_size`, or fewer where the
/// model's widest layer would hold more than [`EVAL_LAYER_BYTES`] (at least one).
/// Predictions do not depend on it: evaluation normalises with running statistics.
pub fn eval_batch(config: &RunConfig, sample_shape: &[usize], classes: usize) -> usize {
    let features = sample_shape.iter().product();
    let widest = Shape::of(&config.model, sample_shape, features, classes).widest;
    let fits = (EVAL_LAYER_BYTES / (widest * VALUE)).max(1.0) as usize;
    config.training.eval_batch_size.min(fits)
}

/// A run's memory on the CPU, from its configuration and the size of its data. An
/// estimate from the model's shape, not a measurement, meant to err high since its job
/// is to refuse what cannot fit. Against the peak resident size (`/usr/bin/time -v`) of
/// one-epoch runs: the MNIST MLP 784-1200-1200-10 estimated 0.71 GB, measured 0.66 GB;
/// ResNet-20 on 7,120 CIFAR-shaped samples estimated 1.19 GB, measured 1.14 GB.
pub fn estimate(config: &RunConfig, data: &Extent) -> Estimate {
    let features: usize = data.sample_shape.iter().product();
    let shape = Shape::of(&config.model, &data.sample_shape, features, data.classes);
    // Host features, the copies the validation split and the device upload make, and
    // the raw file data while it is decoded.
    let samples = (data.train + data.test) as f64;
    let data_bytes = samples * features as f64 * VALUE * 2.5;
    // Weights, gradients, the epoch checkpoint's copy, and the optimiser's moments.
    let moments = match config.optimizer {
        OptimizerSpec::Sgd(_) => 1.0,
        OptimizerSpec::Adamw(_) => 2.0,
    };
    let parameters = shape.parameters * VALUE * (3.0 + moments);
    // Training keeps every layer's output, its gradient and the backward pass's
    // temporaries; evaluation only the widest layer's input and output at a time. The
    // program itself (code, thread stacks, the allocator's pools) takes the rest.
    // A batch holds at most the whole split.
    let batch = config.training.batch_size.min(data.train) as f64;
    let eval_batch =
        eval_batch(config, &data.sample_shape, data.classes).min(data.train.max(data.test)) as f64;
    let training = batch * shape.activations * VALUE * 3.0;
    let evaluation = eval_batch * shape.widest * VALUE * 2.0;
    Estimate {
        data: bytes(data_bytes),
        parameters: bytes(parameters),
        activations: bytes(training.max(evaluation) + PROGRAM),
    }
}

fn bytes(x: f64) -> u64 {
    // `as` saturates: an absurd configuration shows as 18.4 EB, not as a wrapped number.
    x as u64
}

/// A model's size per sample, counted in values (f64, so that nothing overflows).
struct Shape {
    parameters: f64,
    /// The values one sample's forward pass produces, over all layers.
    activations: f64,
    /// The largest single layer output of one sample.
    widest: f64,
}

impl Shape {
    fn of(model: &ModelSpec, sample_shape: &[usize], features: usize, classes: usize) -> Self {
        let mut shape = Shape {
            parameters: 0.0,
            activations: features as f64,
            widest: features as f64,
        };
        let (channels, h, w) = match *sample_shape {
            [c, h, w] => (c as f64, h as f64, w as f64),
            _ => (1.0, 1.0, features as f64),
        };
        let dense = |shape: &mut Shape, inputs: f64, outputs: f64| {
            shape.parameters += (inputs + 1.0) * outputs;
            shape.layer(outputs);
        };
        match model {
            ModelSpec::Mlp(m) => {
                let mut inputs = features as f64;
                for &width in &m.hidden {
                    dense(&mut shape, inputs, width as f64);
                    inputs = width as f64;
                }
                dense(&mut shape, inputs, classes as f64);
            }
            ModelSpec::Lenet5(_) => {
                // Two 5×5 convolutions (each output plane then pooled 2×2) and three
                // dense layers, on 28×28 (padded to 32) or 32×32 images.
                shape.parameters += (channels * 25.0 + 1.0) * 6.0 + (6.0 * 25.0 + 1.0) * 16.0;
                for plane in [6.0 * 28.0 * 28.0, 6.0 * 14.0 * 14.0, 1600.0, 400.0] {
                    shape.layer(plane);
                }
                dense(&mut shape, 400.0, 120.0);
                dense(&mut shape, 120.0, 84.0);
                dense(&mut shape, 84.0, classes as f64);
            }
            ModelSpec::Resnet(r) => {
                let width = r.width as f64;
                let blocks = r.depth.saturating_sub(2) / 6;
                // Each 3×3 convolution, its BatchNorm and (per block) the residual sum:
                // three outputs of the convolution's size.
                let conv = |shape: &mut Shape, inputs: f64, outputs: f64, pixels: f64| {
                    shape.parameters += inputs * outputs * 9.0 + 4.0 * outputs;
                    for _ in 0..3 {
                        shape.layer(outputs * pixels);
                    }
                };
                conv(&mut shape, channels, width, h * w);
                let mut inputs = width;
                for stage in 0..3 {
                    let outputs = width * f64::from(1 << stage);
                    let pixels = h * w / f64::from(1 << (2 * stage));
                    for block in 0..blocks {
                        let first = if block == 0 { inputs } else { outputs };
                        conv(&mut shape, first, outputs, pixels);
                        conv(&mut shape, outputs, outputs, pixels);
                    }
                    inputs = outputs;
                }
                dense(&mut shape, inputs, classes as f64);
            }
        }
        shape
    }

    fn layer(&mut self, values: f64) {
        self.activations += values;
        self.widest = self.widest.max(values);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(Bytes(999).to_string(), "999 B");
        assert_eq!(Bytes(34_200_000_000).to_string(), "34.2 GB");
        assert_eq!(Bytes(22_900_000_000).to_string(), "22.9 GB");
        assert_eq!(Bytes(1_500_000).to_string(), "1.5 MB");
    }

    #[test]
    fn the_parameter_count_is_the_models_own() {
        for (model, sample_shape) in [
            (r#"{"name": "mlp", "hidden": [64, 32]}"#, vec![20]),
            (r#"{"name": "mlp", "hidden": []}"#, vec![5]),
            (r#"{"name": "lenet5"}"#, vec![1, 28, 28]),
            (r#"{"name": "lenet5"}"#, vec![3, 32, 32]),
            (
                r#"{"name": "resnet", "depth": 8, "width": 4}"#,
                vec![3, 8, 8],
            ),
            (r#"{"name": "resnet", "depth": 20}"#, vec![3, 32, 32]),
        ] {
            let spec: ModelSpec = serde_json::from_str(model).unwrap();
            let built =
                crate::model::build(&spec, &sample_shape, 7, 0, &candle_core::Device::Cpu).unwrap();
            // Every variable, BatchNorm's running statistics included (they are saved
            // and copied like the weights).
            let count: usize = built.vars.all_vars().iter().map(|v| v.elem_count()).sum();
            let features = sample_shape.iter().product();
            let shape = Shape::of(&spec, &sample_shape, features, 7);
            assert_eq!(
                shape.parameters, count as f64,
                "{model} on {sample_shape:?}"
            );
        }
    }

    fn config(model: &str, training: &str) -> RunConfig {
        let text = format!(
            r#"{{"name": "t", "dataset": {{"name": "synthetic", "classes": 10, "features": 3072, "shape": [3, 32, 32]}},
                "model": {model}, "training": {training}}}"#
        );
        let plan = crate::spec::parse(Path::new("t.json"), &text).unwrap();
        plan.runs.into_iter().next().unwrap().config
    }

    #[test]
    fn the_evaluation_batch_is_bounded_by_the_widest_layer() {
        let mlp = config(r#"{"name": "mlp", "hidden": [512, 512]}"#, "{}");
        assert_eq!(eval_batch(&mlp, &[1, 28, 28], 10), 2048);
        // 16 × 32 × 32 values of 4 bytes: 256 rows in 16 MiB.
        let resnet = config(r#"{"name": "resnet", "depth": 20}"#, "{}");
        assert_eq!(eval_batch(&resnet, &[3, 32, 32], 10), 256);
        // LeNet-5's first layer: 6 × 28 × 28 values.
        let lenet = config(r#"{"name": "lenet5"}"#, "{}");
        assert_eq!(
            eval_batch(&lenet, &[1, 28, 28], 10),
            (16 << 20) / (6 * 28 * 28 * 4)
        );
        // A smaller request stands; the widest ResNet, 4 MiB a row, gets 4.
        let small = config(
            r#"{"name": "resnet", "depth": 20}"#,
            r#"{"eval_batch_size": 100}"#,
        );
        assert_eq!(eval_batch(&small, &[3, 32, 32], 10), 100);
        let wide = config(r#"{"name": "resnet", "depth": 8, "width": 1024}"#, "{}");
        assert_eq!(eval_batch(&wide, &[3, 32, 32], 10), 4);
    }

    #[test]
    fn mem_available_is_read_in_kib() {
        let meminfo = "MemTotal:       24000000 kB\nMemAvailable:   23589184 kB\n";
        assert_eq!(mem_available(meminfo), Some(23_589_184 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
    }
}
