#!/usr/bin/env bash
# Checks that vendor/candle-core is exactly the published candle-core 0.11.1 with
# vendor/candle-core-*.patch applied (vendor/README.md): every file of src/,
# LICENSE and README.md byte for byte, and Cargo.toml with only the [[example]],
# [[test]] and [[bench]] sections removed (the vendored copy leaves those files out).
#
# Usage: scripts/check-vendor.sh      (exit 0: the copy is what it claims; 1: it is not)
# The published crate comes from cargo's registry cache when present, else from
# static.crates.io; either way its SHA-256 must be the one crates.io's index records.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=0.11.1
# The `cksum` of candle-core 0.11.1 in the crates.io index (and in Cargo.lock files
# that use the registry's copy).
SHA256=d11c8be87cfbaef9ebb62fb3f850d1fc8e00cc1d11d393fdbe55a4d5c2cdb325
CRATE=candle-core-$VERSION
VENDORED=vendor/candle-core
PATCHES=(vendor/candle-core-backprop.patch vendor/candle-core-tokenizers.patch)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cached=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$CRATE.crate" 2>/dev/null | head -n1 || true)
if [[ -n "$cached" ]]; then
    cp "$cached" "$work/$CRATE.crate"
else
    curl -sSfL --retry 3 -o "$work/$CRATE.crate" \
        "https://static.crates.io/crates/candle-core/$CRATE.crate"
fi
echo "$SHA256  $work/$CRATE.crate" | sha256sum --check --quiet - ||
    { echo "check-vendor: $CRATE.crate does not have the published checksum" >&2; exit 1; }
tar -xzf "$work/$CRATE.crate" -C "$work"
published="$work/$CRATE"
for patch_file in "${PATCHES[@]}"; do
    patch --quiet --strip=1 --directory="$published" < "$patch_file" ||
        { echo "check-vendor: $patch_file no longer applies to the published $CRATE" >&2; exit 1; }
done

# Cargo.toml without the target sections whose files are not vendored: each such
# section runs from its header to the next header.
strip_targets() {
    awk '/^\[/ { skip = ($0 ~ /^\[\[(example|test|bench)\]\]$/) } !skip' "$1" | cat -s
}

status=0
if ! diff -r "$published/src" "$VENDORED/src"; then status=1; fi
for file in LICENSE README.md; do
    if ! diff "$published/$file" "$VENDORED/$file"; then status=1; fi
done
if ! diff <(strip_targets "$published/Cargo.toml") <(strip_targets "$VENDORED/Cargo.toml"); then
    status=1
fi
# Nothing else may sit in the vendored copy.
extra=$(cd "$VENDORED" && find . -mindepth 1 -maxdepth 1 ! -name src ! -name LICENSE ! -name README.md ! -name Cargo.toml)
if [[ -n "$extra" ]]; then
    echo "check-vendor: unexpected files in $VENDORED: $extra" >&2
    status=1
fi
if ((status == 0)); then
    echo "check-vendor: $VENDORED is $CRATE with ${PATCHES[*]}"
else
    echo "check-vendor: $VENDORED differs from $CRATE with ${PATCHES[*]} (diff above); update a patch or the copy" >&2
fi
exit "$status"
