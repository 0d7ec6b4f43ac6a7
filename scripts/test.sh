#!/usr/bin/env bash
# The test suite, as CI runs it: every test, then the Slurm integration tests against a
# single-node Slurm cluster started here (scripts/local-slurm.sh; root needed to install
# and start it) and stopped at the end, also when a test fails. The Slurm tests print
# their jobs' logs.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --release

# Starting replaces a local cluster left running by an earlier start with a fresh one.
trap 'scripts/local-slurm.sh stop' EXIT
export "$(scripts/local-slurm.sh start | tail -n1)"
cargo test --release --test slurm -- --ignored --nocapture --test-threads 1
