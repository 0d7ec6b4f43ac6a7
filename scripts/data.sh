#!/usr/bin/env bash
# Makes the real data sets available where the experiment files and the tests read
# them: data/<name> (a link). The one place they come from is SMOOTHLAB_DATA (default
# ../shared/data), which holds mnist/ and fashion-mnist/, each with the four standard
# IDX files (*-idx?-ubyte, gzipped or not). Fashion-MNIST also comes from Debian's
# dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist), used when
# SMOOTHLAB_DATA lacks it.
#
# Usage: scripts/data.sh [NAME...]   (default: mnist fashion-mnist)
#
# To get the files: MNIST from https://ossci-datasets.s3.amazonaws.com/mnist/ (the
# original yann.lecun.com URLs are gone), Fashion-MNIST from
# http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ or
# `apt-get install dataset-fashion-mnist`.
set -euo pipefail
cd "$(dirname "$0")/.."

source_dir="${SMOOTHLAB_DATA:-../shared/data}"
names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(mnist fashion-mnist)
mkdir -p data
for name in "${names[@]}"; do
    candidates=("$source_dir/$name")
    [[ "$name" == fashion-mnist ]] && candidates+=(/usr/share/datasets/fashion-mnist)
    found=""
    for dir in "${candidates[@]}"; do
        if compgen -G "$dir/train-images-idx3-ubyte*" > /dev/null; then
            found="$dir"
            break
        fi
    done
    if [[ -z "$found" ]]; then
        echo "error: $name not found in ${candidates[*]}: set SMOOTHLAB_DATA to the directory holding $name/ (see scripts/data.sh for where to get it)" >&2
        exit 2
    fi
    if [[ -e "data/$name" && ! -L "data/$name" ]]; then
        echo "data: data/$name is a real directory; left as it is"
        continue
    fi
    ln -sfn "$(cd "$found" && pwd)" "data/$name"
    echo "data: data/$name -> $found"
done
