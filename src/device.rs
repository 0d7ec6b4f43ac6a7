//! Choosing the compute device. The device is opened once per process and shared:
//! candle treats two `new_cuda(0)` handles as different devices.

use crate::spec::DeviceSpec;
use candle_core::Device;
use serde::{Deserialize, Serialize};

/// What a CUDA run ran on: enough to tell apart results from different GPUs, drivers
/// and builds (recorded in results and benchmarks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    pub name: String,
    /// `major.minor`, e.g. `9.0` for H100/H200.
    pub compute_capability: String,
    pub memory_mib: u64,
    /// The NVIDIA kernel driver, e.g. `580.65.06` (Linux only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// The newest CUDA version the driver supports, e.g. `13.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_cuda_version: Option<String>,
    /// The CUDA version smoothlab was built against.
    pub cuda_build_version: String,
}

/// The requested device cannot be used; nothing was run (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("device `{0}` was requested but this smoothlab was built without CUDA; rebuild with `cargo build --release --features cuda`, or use --device cpu")]
    CudaNotCompiled(DeviceSpec),
    // `cause` is not a `source`: the message already holds it, and anyhow's `{:#}`
    // would print it twice.
    #[error("cannot open CUDA device {index}: {cause}")]
    CudaUnavailable {
        index: usize,
        cause: candle_core::Error,
    },
}

/// Opens the device `spec` names. `auto` prefers CUDA device 0 when compiled in and
/// present, and otherwise falls back to the CPU with a logged notice.
pub fn open(spec: DeviceSpec) -> Result<Device, DeviceError> {
    match spec {
        DeviceSpec::Cpu => Ok(Device::Cpu),
        DeviceSpec::Cuda(index) => open_cuda(index),
        DeviceSpec::Auto if cfg!(feature = "cuda") => open_cuda(0).or_else(|e| {
            tracing::info!("device auto: {e}; using the CPU");
            Ok(Device::Cpu)
        }),
        DeviceSpec::Auto => Ok(Device::Cpu),
    }
}

fn open_cuda(index: usize) -> Result<Device, DeviceError> {
    if !cfg!(feature = "cuda") {
        return Err(DeviceError::CudaNotCompiled(DeviceSpec::Cuda(index)));
    }
    Device::new_cuda(index).map_err(|e| DeviceError::CudaUnavailable {
        index,
        // The driver's message is the point; a backtrace (RUST_BACKTRACE) only buries it.
        cause: match e {
            candle_core::Error::WithBacktrace { inner, .. } => *inner,
            e => e,
        },
    })
}

/// `cpu` or `cuda:N`, as recorded in results.
pub fn describe(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".to_string(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// The GPU behind `device`, for results; `None` on the CPU. A query that fails only
/// leaves the description out (with a warning): the run does not depend on it.
pub fn gpu_info(device: &Device) -> Option<GpuInfo> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(cuda) = device {
        return describe_gpu(cuda)
            .map_err(|e| tracing::warn!("cannot describe the GPU: {e}"))
            .ok();
    }
    let _ = device;
    None
}

#[cfg(feature = "cuda")]
fn describe_gpu(
    device: &candle_core::CudaDevice,
) -> Result<GpuInfo, candle_core::cuda::cudarc::driver::DriverError> {
    use candle_core::cuda::cudarc::driver::sys;
    let stream = device.cuda_stream();
    let context = stream.context();
    let (major, minor) = context.compute_capability()?;
    let mut version = 0;
    // SAFETY: cuDriverGetVersion writes one int through the pointer, which is valid.
    let driver_cuda_version = unsafe { sys::cuDriverGetVersion(&mut version) }
        .result()
        .ok()
        .map(|()| cuda_version(version as u32));
    Ok(GpuInfo {
        name: context.name()?,
        compute_capability: format!("{major}.{minor}"),
        memory_mib: context.total_mem()? as u64 >> 20,
        driver_version: kernel_driver_version(),
        driver_cuda_version,
        cuda_build_version: cuda_version(sys::CUDA_VERSION),
    })
}

/// CUDA's encoding 1000 * major + 10 * minor as `major.minor`.
#[cfg(any(feature = "cuda", test))]
fn cuda_version(encoded: u32) -> String {
    format!("{}.{}", encoded / 1000, encoded % 1000 / 10)
}

/// The NVIDIA kernel module's version, from the line
/// `NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06  Sun Jul 27 ...`
/// (the driver API reports only the CUDA version the driver supports).
#[cfg(feature = "cuda")]
fn kernel_driver_version() -> Option<String> {
    parse_nvrm_version(&std::fs::read_to_string("/proc/driver/nvidia/version").ok()?)
}

#[cfg(any(feature = "cuda", test))]
fn parse_nvrm_version(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with("NVRM version:"))?;
    let rest = line.split("Kernel Module").nth(1)?;
    // The open kernel module says "... Kernel Module for x86_64  570.133.20 ...".
    rest.split_whitespace()
        .find(|v| v.contains('.') && v.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_versions_read_as_major_minor() {
        assert_eq!(cuda_version(13000), "13.0");
        assert_eq!(cuda_version(12080), "12.8");
        assert_eq!(cuda_version(11040), "11.4");
    }

    #[test]
    fn driver_version_from_proc() {
        let text = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06  Sun Jul 27 07:09:29 UTC 2025\nGCC version:  gcc version 12.2.0\n";
        assert_eq!(parse_nvrm_version(text).as_deref(), Some("580.65.06"));
        let open =
            "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.133.20  Release Build\n";
        assert_eq!(parse_nvrm_version(open).as_deref(), Some("570.133.20"));
        assert_eq!(parse_nvrm_version("nothing here"), None);
    }

    #[test]
    fn no_gpu_on_the_cpu() {
        assert_eq!(gpu_info(&Device::Cpu), None);
    }
}
