//! Choosing the compute device. The device is opened once per process and shared:
//! candle treats two `new_cuda(0)` handles as different devices.

use crate::spec::DeviceSpec;
use candle_core::Device;

/// The requested device cannot be used; nothing was run (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("device `{0}` was requested but this smoothlab was built without CUDA; rebuild with `cargo build --release --features cuda`, or use --device cpu")]
    CudaNotCompiled(DeviceSpec),
    #[error("cannot open CUDA device {index}: {source}")]
    CudaUnavailable {
        index: usize,
        source: candle_core::Error,
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
    Device::new_cuda(index).map_err(|source| DeviceError::CudaUnavailable { index, source })
}

/// `cpu` or `cuda:N`, as recorded in results.
pub fn describe(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".to_string(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}
