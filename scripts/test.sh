#!/usr/bin/env bash
# The test suite, as CI runs it: every test, including the Slurm integration tests,
# which run against a single-node Slurm cluster started here (scripts/local-slurm.sh,
# root needed to install and start it) and stopped at the end, also when a test fails.
# Extra arguments go to cargo test (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

# Compile first, so the cluster is not up longer than the tests need it.
cargo test --release --no-run "$@"

# Starting replaces a local cluster left running by an earlier start with a fresh one.
trap 'scripts/local-slurm.sh stop' EXIT
export "$(scripts/local-slurm.sh start | tail -n1)"
cargo test --release "$@" -- --include-ignored
