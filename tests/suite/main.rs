//! The integration tests, one module per feature; `common` holds what they share.

mod autograd;
mod bench;
mod calibration;
mod cli;
mod cli_help;
mod common;
mod data;
mod determinism;
mod docs;
mod hostile;
mod loss;
mod models;
mod optim;
mod plots;
mod query;
mod report;
mod report_page;
mod slurm;
mod spec;
mod sweeps;
mod terminal;
mod train;
