//! The integration tests, one module per feature; `common` holds what they share.

mod autograd;
mod bench;
mod calibration;
mod cli;
mod common;
mod data;
mod determinism;
mod hostile;
mod loss;
mod models;
mod optim;
mod plots;
mod query;
mod report;
mod slurm;
mod spec;
mod sweeps;
mod train;
