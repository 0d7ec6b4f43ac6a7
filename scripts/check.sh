#!/usr/bin/env bash
# Everything a change must pass before it is committed: formatting, lints, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --all-targets --release -- -D warnings
cargo clippy --all-targets --release --no-default-features -- -D warnings
cargo test --release
