//! What a benchmark ran on, printed above its figures and stored with them: a figure
//! means little without the build, the device, the threads and the processor.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct BenchEnvironment {
    pub smoothlab_version: String,
    pub git_commit: Option<String>,
    pub candle_version: String,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Threads candle's CPU kernels use (`RAYON_NUM_THREADS` or the physical core count).
    pub threads: usize,
    /// The binary's allocator (`mimalloc` with the default feature, else `system`).
    pub allocator: String,
    /// The processor's model name from /proc/cpuinfo, where there is one.
    pub cpu: Option<String>,
    pub logical_cpus: usize,
}

impl BenchEnvironment {
    pub fn current(device: &candle_core::Device) -> Self {
        let commit = env!("SMOOTHLAB_GIT_COMMIT");
        Self {
            smoothlab_version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: (!commit.is_empty()).then(|| commit.to_string()),
            candle_version: env!("SMOOTHLAB_CANDLE_VERSION").to_string(),
            device: crate::device::describe(device),
            threads: candle_core::utils::get_num_threads(),
            allocator: allocator().to_string(),
            cpu: cpu_model(),
            logical_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// Two lines: the build and where it ran.
    pub fn header(&self) -> String {
        let commit = self
            .git_commit
            .as_deref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        format!(
            "smoothlab {}{commit}, candle {}, device {}, {} threads, {} allocator\n\
             CPU: {}, {} logical CPUs\n",
            self.smoothlab_version,
            self.candle_version,
            self.device,
            self.threads,
            self.allocator,
            self.cpu.as_deref().unwrap_or("unknown"),
            self.logical_cpus
        )
    }
}

pub fn allocator() -> &'static str {
    if cfg!(feature = "mimalloc") {
        "mimalloc"
    } else {
        "system"
    }
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim() == "model name")
        .map(|(_, value)| value.trim().to_string())
}

/// A `kB` field of /proc/self/status (`VmRSS`, `VmHWM`), in MB (10⁶ bytes); `None`
/// where there is no such file (not Linux).
pub fn process_memory_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        let kib: f64 = value.trim().strip_suffix("kB")?.trim().parse().ok()?;
        Some(kib * 1024.0 / 1e6)
    })
}

/// Resets the process's peak resident size (`VmHWM`) to its current size (Linux ≥ 4.0),
/// so that the next read is the peak since now. False where that is not possible.
pub fn reset_peak_memory() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}
