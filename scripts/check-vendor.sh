#!/usr/bin/env bash
# Checks that each crate under vendor/ is exactly the published release with its
# vendor/<crate>-*.patch applied (vendor/README.md): every file of src/, LICENSE and
# README.md byte for byte, and Cargo.toml with only the [[example]], [[test]] and
# [[bench]] sections removed (the vendored copies leave those files out).
#
# Usage: scripts/check-vendor.sh      (exit 0: the copies are what they claim; 1: not)
# A published crate comes from cargo's registry cache when present, else from
# static.crates.io; either way its SHA-256 must be the one crates.io's index records.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Cargo.toml without the target sections whose files are not vendored: each such
# section runs from its header to the next header.
strip_targets() {
    awk '/^\[/ { skip = ($0 ~ /^\[\[(example|test|bench)\]\]$/) } !skip' "$1" | cat -s
}

# check NAME VERSION SHA256 PATCH...: SHA256 is the crate's `cksum` in the crates.io
# index (and in Cargo.lock files that use the registry's copy).
check() {
    local name=$1 version=$2 sha256=$3
    shift 3
    local patches=("$@") crate="$name-$version" vendored="vendor/$name" status=0
    local cached
    cached=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$crate.crate" 2>/dev/null | head -n1 || true)
    if [[ -n "$cached" ]]; then
        cp "$cached" "$work/$crate.crate"
    else
        curl -sSfL --retry 3 -o "$work/$crate.crate" \
            "https://static.crates.io/crates/$name/$crate.crate"
    fi
    echo "$sha256  $work/$crate.crate" | sha256sum --check --quiet - ||
        { echo "check-vendor: $crate.crate does not have the published checksum" >&2; return 1; }
    tar -xzf "$work/$crate.crate" -C "$work"
    local published="$work/$crate"
    for patch_file in "${patches[@]}"; do
        patch --quiet --strip=1 --directory="$published" < "$patch_file" ||
            { echo "check-vendor: $patch_file no longer applies to the published $crate" >&2; return 1; }
    done
    if ! diff -r "$published/src" "$vendored/src"; then status=1; fi
    for file in LICENSE README.md; do
        if ! diff "$published/$file" "$vendored/$file"; then status=1; fi
    done
    if ! diff <(strip_targets "$published/Cargo.toml") <(strip_targets "$vendored/Cargo.toml"); then
        status=1
    fi
    # Nothing else may sit in the vendored copy.
    local extra
    extra=$(cd "$vendored" && find . -mindepth 1 -maxdepth 1 ! -name src ! -name LICENSE ! -name README.md ! -name Cargo.toml)
    if [[ -n "$extra" ]]; then
        echo "check-vendor: unexpected files in $vendored: $extra" >&2
        status=1
    fi
    if ((status == 0)); then
        echo "check-vendor: $vendored is $crate with ${patches[*]}"
    else
        echo "check-vendor: $vendored differs from $crate with ${patches[*]} (diff above); update a patch or the copy" >&2
    fi
    return "$status"
}

status=0
check candle-core 0.11.1 d11c8be87cfbaef9ebb62fb3f850d1fc8e00cc1d11d393fdbe55a4d5c2cdb325 \
    vendor/candle-core-backprop.patch vendor/candle-core-tokenizers.patch || status=1
check gemm-common 0.19.0 88027625910cc9b1085aaaa1c4bc46bb3a36aad323452b33c25b5e4e7c8e2a3e \
    vendor/gemm-common-pack.patch || status=1
exit "$status"
