//! The `smoothlab` binary: process-wide settings, then parse and dispatch ([`cli`]);
//! errors become exit codes (0 success, 1 a run or the program failed, 2 bad usage or
//! input: nothing was run).

mod cli;

use clap::Parser;
use smoothlab::{progress, sweep};
use std::process::ExitCode;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    elementwise_on_one_thread();
    #[cfg(feature = "mimalloc")]
    keep_freed_memory_a_minute();
    let command = cli::Cli::parse().command;
    if let cli::Command::Worker = command {
        sweep::worker::init_logging();
        return match sweep::interrupt_flag(false) {
            Ok(interrupt) => ExitCode::from(sweep::worker::main(interrupt) as u8),
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(sweep::worker::exit::FATAL as u8)
            }
        };
    }
    progress::init_logging();
    match cli::dispatch(command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(smoothlab::exit_code(&error))
        }
    }
}

/// candle runs large elementwise ops on its own pool of `CANDLE_NUM_THREADS` threads
/// (default: the core count) beside gemm's rayon pool, and its threads spin while they
/// wait. With both pools on the same cores the spinning starves the matrix products:
/// an MLP 784-512-512-10 epoch took 10.3 s with the default and 1.5 s with one thread
/// on 2 busy cores (see README, Performance). Elementwise work at these sizes is cheap
/// on one thread; a user who sets the variable keeps their choice. Set before any
/// thread exists (workers inherit it), so changing the environment is sound.
///
/// `RAYON_NUM_THREADS` is pinned to the count candle would choose (its physical-core
/// count) for the same reason it exists: without it candle works that count out again
/// for every matrix product, reading /proc/cpuinfo each time.
fn elementwise_on_one_thread() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = candle_core::utils::get_num_threads();
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
}

/// mimalloc hands freed memory back to the kernel after its purge delay (1 s by default in
/// mimalloc 3). A training step frees its activations and gradients and allocates the
/// same sizes again in the next step, and with that delay the kernel still took memory
/// back and zeroed it again on the next fault every few steps: 17,000 faults and 15 % of
/// the CPU time in 13 ResNet-20 steps. With a minute, the freed memory is reused (770
/// faults; see README, Performance). The peak is unchanged: memory is only held longer
/// while nothing uses it. `MIMALLOC_PURGE_DELAY` still overrides this.
#[cfg(feature = "mimalloc")]
fn keep_freed_memory_a_minute() {
    // `mi_option_purge_delay` in mimalloc 3's `mi_option_t` (include/mimalloc.h); the
    // Rust bindings have no constant for it.
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: called before any other thread exists (options are not thread safe).
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 60_000) };
    }
}
