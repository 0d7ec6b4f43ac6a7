//! smoothlab: train classifiers with label-smoothed cross-entropy on candle and measure
//! how well they are calibrated.
//!
//! Data flows one way: [`spec`] (experiment file → plan of runs) → per run [`data`] +
//! [`model`] + [`loss`] + [`optim`] → [`train`] → predictions → [`calibration`] →
//! [`store`] → [`report`]; [`sweep`] drives a plan.

pub mod atomic;
pub mod bench;
pub mod calibration;
pub mod data;
pub mod device;
pub mod fault;
pub mod files;
pub mod kernels;
pub mod loss;
pub mod memory;
pub mod model;
pub mod optim;
pub mod progress;
pub mod query;
pub mod report;
pub mod rng;
pub mod slurm;
pub mod spec;
pub mod store;
pub mod sweep;
pub mod train;

/// A user-supplied file or argument is unusable (exit code 2, nothing was run).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BadInput(pub anyhow::Error);

/// The process exit code for an error: 2 when the input was bad and nothing ran, else 1.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    let bad_input = error.chain().any(|cause| {
        cause.is::<spec::SpecError>()
            || cause.is::<device::DeviceError>()
            || cause.is::<store::SchemaMismatch>()
            || cause.is::<BadInput>()
    });
    if bad_input {
        2
    } else {
        1
    }
}
