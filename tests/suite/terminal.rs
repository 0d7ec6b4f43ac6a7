//! What `smoothlab run` shows while it works: nothing but plain text when stderr is not a
//! terminal, and the figures its bars show (samples/s, the sweep's ETA).

use crate::common::{assert_exit, stdout, Workspace, SWEEP};
use smoothlab::progress::{
    colour_allowed, format_duration, format_rate, run_message, sweep_eta, sweep_message, Throughput,
};
use std::ffi::OsStr;
use std::time::{Duration, Instant};

const ESC: u8 = 0x1b;

#[test]
fn a_sweep_with_its_output_piped_writes_no_escape_codes() {
    let ws = Workspace::new();
    let file = ws.write("sweep.json", SWEEP);
    // An earlier experiment file in the results, which the sweep keeps aside, saying so
    // in a log line of its own (the workers' lines reach it as plain text).
    let experiment_dir = ws.results().join("sweep");
    std::fs::create_dir_all(&experiment_dir).unwrap();
    std::fs::write(experiment_dir.join("experiment.json"), "{}").unwrap();
    let out = ws
        .run_command(&file, &["--jobs", "2"])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert_exit!(out, 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in ["the experiment file changed", "INFO epoch 1/3"] {
        assert!(stderr.contains(line), "no {line:?} to check:\n{stderr}");
    }
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        if let Some(at) = bytes.iter().position(|&b| b == ESC) {
            let text = String::from_utf8_lossy(bytes);
            panic!("ESC at byte {at} of {name}:\n{text}");
        }
    }
}

#[test]
fn runs_done_before_count_as_done_before_any_run_starts() {
    let ws = Workspace::new();
    let file = ws.write("sweep.json", SWEEP);
    let first = ws.run(&file, &[]);
    assert_exit!(first, 0);
    // The plan's first run is redone; the three after it are done already.
    let text = stdout(&first);
    let first_run = text
        .lines()
        .find_map(|l| l.strip_prefix("[1/4] ")?.split(':').next())
        .unwrap_or_else(|| panic!("no line of the first run:\n{text}"));
    std::fs::remove_dir_all(ws.results().join("sweep").join(first_run)).unwrap();

    let again = ws.run(&file, &["--jobs", "1"]);
    assert_exit!(again, 0);
    let text = stdout(&again);
    let lines: Vec<&str> = text.lines().collect();
    let skipped: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].ends_with("already completed, skipped"))
        .collect();
    let training = lines
        .iter()
        .position(|l| l.contains(": training on "))
        .unwrap_or_else(|| panic!("the removed run was not trained:\n{text}"));
    assert_eq!(skipped.len(), 3, "{text}");
    assert!(skipped.iter().all(|&i| i < training), "{text}");
}

#[test]
fn the_eta_of_idle_slots_is_the_queued_runs_in_waves() {
    // 5 runs of 10 s on 2 slots: 10 + 10 + 10.
    assert_eq!(sweep_eta(10.0, &[], 5, 2), 30.0);
    assert_eq!(sweep_eta(10.0, &[], 4, 2), 20.0);
    assert_eq!(sweep_eta(10.0, &[], 1, 4), 10.0);
    assert_eq!(sweep_eta(10.0, &[], 0, 2), 0.0);
}

#[test]
fn the_eta_counts_what_the_running_runs_have_left() {
    // Two runs 4 s and 7 s in: they end in 6 s and 3 s; the queued one follows the
    // second, on the first slot to come free.
    assert_eq!(sweep_eta(10.0, &[4.0, 7.0], 1, 2), 13.0);
    assert_eq!(sweep_eta(10.0, &[4.0, 7.0], 0, 2), 6.0);
    // A run past the mean is taken to end now, not to have negative time left.
    assert_eq!(sweep_eta(10.0, &[12.0], 1, 1), 10.0);
    // More running than `jobs` (a run waited for and then taken over) still counts.
    assert_eq!(sweep_eta(10.0, &[0.0, 0.0, 0.0], 0, 2), 10.0);
}

#[test]
fn the_sweep_message_has_no_eta_before_a_run_completed() {
    assert_eq!(
        sweep_message(None, 4, 2),
        "ETA once a run has completed (4 run(s) left, 2 at a time)"
    );
    assert_eq!(
        sweep_message(Some(125.0), 3, 2),
        "ETA 2m 05s (3 run(s) left, 2 at a time)"
    );
    assert_eq!(sweep_message(Some(0.0), 0, 2), "finishing");
}

#[test]
fn durations_read_in_seconds_minutes_or_hours() {
    assert_eq!(format_duration(0.4), "0s");
    assert_eq!(format_duration(59.4), "59s");
    assert_eq!(format_duration(59.6), "1m 00s");
    assert_eq!(format_duration(3599.0), "59m 59s");
    assert_eq!(format_duration(3.0 * 3600.0 + 7.0 * 60.0 + 20.0), "3h 07m");
    assert_eq!(format_duration(-5.0), "0s");
}

#[test]
fn rates_have_three_significant_digits() {
    assert_eq!(format_rate(4.2), "4.20 samples/s");
    assert_eq!(format_rate(84.54), "84.5 samples/s");
    assert_eq!(format_rate(845.4), "845 samples/s");
    assert_eq!(format_rate(1234.0), "1.23k samples/s");
    assert_eq!(format_rate(12_345.0), "12.3k samples/s");
    assert_eq!(format_rate(123_456.0), "123k samples/s");
    assert_eq!(format_rate(1_234_567.0), "1.23M samples/s");
}

#[test]
fn rates_that_round_up_take_the_next_unit() {
    assert_eq!(format_rate(9.996), "10.0 samples/s");
    assert_eq!(format_rate(99.96), "100 samples/s");
    assert_eq!(format_rate(999.6), "1.00k samples/s");
    assert_eq!(format_rate(999_600.0), "1.00M samples/s");
}

#[test]
fn a_run_message_shows_the_rate_and_loss_once_known() {
    assert_eq!(run_message(1, 20, None, None), "epoch 1/20");
    assert_eq!(
        run_message(3, 20, Some(12_345.0), Some(0.43214)),
        "epoch 3/20 | 12.3k samples/s | loss 0.4321"
    );
}

#[test]
fn throughput_is_measured_over_the_recent_reports_of_an_epoch() {
    let start = Instant::now();
    let at = |seconds: f64| start + Duration::from_secs_f64(seconds);
    let mut throughput = Throughput::default();
    throughput.record(at(0.0), 1, 0);
    assert_eq!(throughput.per_second(), None);
    throughput.record(at(1.0), 1, 1000);
    assert_eq!(throughput.per_second(), Some(1000.0));
    // Slower from here on: after enough reports the first, fast second is forgotten.
    for i in 1..=20 {
        throughput.record(at(1.0 + i as f64), 1, 1000 + 100 * i);
    }
    assert_eq!(throughput.per_second(), Some(100.0));
    // Validation time before the next epoch is not training: the rate stands until the
    // new epoch has two reports, and is then the new epoch's alone.
    throughput.record(at(100.0), 2, 3500);
    assert_eq!(throughput.per_second(), Some(100.0));
    throughput.record(at(100.5), 2, 4000);
    assert_eq!(throughput.per_second(), Some(1000.0));
}

#[test]
fn colour_needs_a_terminal_and_no_no_color() {
    assert!(colour_allowed(true, None));
    assert!(!colour_allowed(false, None));
    assert!(!colour_allowed(true, Some(OsStr::new("1"))));
    // An empty NO_COLOR does not count (no-color.org).
    assert!(colour_allowed(true, Some(OsStr::new(""))));
    assert!(!colour_allowed(false, Some(OsStr::new(""))));
}
