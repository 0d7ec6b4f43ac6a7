#!/usr/bin/env bash
# Müller, Kornblith & Hinton 2019, Table 3 in miniature: the baseline (ε = 0), temperature
# scaling of the baseline, and label smoothing (ε = 0.05, 0.1), three seeds each, on two
# problems a 2-core CPU trains in about ten minutes:
#
#   - mueller2019-synthetic-mlp: an MLP on the embedded synthetic Gaussian-mixture data;
#   - mueller2019-mnist-lenet5: LeNet-5 on real MNIST digits. Only the MNIST *test* set is
#     assumed to be here (10,000 images): its first 8,000 images become the training set
#     (of which 10% is held out for validation and temperature scaling) and its last
#     2,000 the test set. This is not the paper's setup; it is real data at CPU scale.
#
# Writes the reports (Markdown, CSV, JSON, HTML), the figures and the penultimate-layer
# picture to results/mueller2019/; the runs themselves go to target/mueller2019/runs
# (rerunning skips what is done), the MNIST split to data/mnist-split. The paper's
# GPU-scale config is experiments/cifar100-resnet56-mueller2019.json.
#
# Usage: scripts/reproduce-mueller2019.sh [MNIST_DIR]   (default ../shared/data/mnist)
set -euo pipefail
cd "$(dirname "$0")/.."

mnist_source="${1:-../shared/data/mnist}"
work="target/mueller2019"
runs="$work/runs"
out="results/mueller2019"

cargo build --release --quiet
smoothlab="${CARGO_TARGET_DIR:-target}/release/smoothlab"

# --- MNIST test set → 8,000 training + 2,000 test images, in IDX format -------------
split="data/mnist-split"
read_idx() { # NAME: the bytes of MNIST's file NAME, gzipped or not
    local file="$mnist_source/$1"
    if [[ -f "$file.gz" ]]; then gzip -dc "$file.gz"; elif [[ -f "$file" ]]; then cat "$file"; else
        echo "error: neither $file.gz nor $file exists; give the directory of MNIST's t10k files" >&2
        exit 2
    fi
}
be32() { # N: N as 4 big-endian bytes
    printf "\\x$(printf %02x $(($1 >> 24 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 & 255)))"
}
bytes() { # FILE OFFSET LENGTH
    dd if="$1" bs=64K iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none
}
if [[ ! -f "$split/t10k-labels-idx1-ubyte" ]]; then
    mkdir -p "$split"
    read_idx t10k-images-idx3-ubyte > "$split/all-images"
    read_idx t10k-labels-idx1-ubyte > "$split/all-labels"
    # part, first image, count: IDX headers (magic 0x803 / 0x801, counts, 28×28), then the bytes.
    for part in "train 0 8000" "t10k 8000 2000"; do
        read -r name first count <<< "$part"
        { printf '\x00\x00\x08\x03'; be32 "$count"; be32 28; be32 28
          bytes "$split/all-images" $((16 + first * 784)) $((count * 784)); } > "$split/$name-images-idx3-ubyte"
        { printf '\x00\x00\x08\x01'; be32 "$count"
          bytes "$split/all-labels" $((8 + first)) "$count"; } > "$split/$name-labels-idx1-ubyte"
    done
    rm "$split/all-images" "$split/all-labels"
fi

# --- train (skips runs already done) ---------------------------------------------------
"$smoothlab" run experiments/mueller2019-synthetic-mlp.json --results "$runs"
"$smoothlab" run experiments/mueller2019-mnist-lenet5.json --results "$runs"

# --- reports, figures, penultimate picture ----------------------------------------------
mkdir -p "$out"
for experiment in mueller2019-synthetic-mlp mueller2019-mnist-lenet5; do
    "$smoothlab" report "$runs/$experiment" --format md > "$out/$experiment.md"
    "$smoothlab" report "$runs/$experiment" --format csv > "$out/$experiment.csv"
    "$smoothlab" report "$runs/$experiment" --format json > "$out/$experiment.json"
    "$smoothlab" report "$runs/$experiment" --plots "$out/$experiment" --html "$out/$experiment.html"
done
run_dir() { # EXPERIMENT SLUG: the directory of the run whose id starts with SLUG
    local dirs=("$runs/$1/$2"_*)
    echo "${dirs[0]}"
}
"$smoothlab" viz penultimate \
    "$(run_dir mueller2019-mnist-lenet5 smoothing=0.0_seed=0)" \
    "$(run_dir mueller2019-mnist-lenet5 smoothing=0.1_seed=0)" \
    --classes 0,1,2 --examples 150 --out "$out/penultimate-mnist-lenet5"
"$smoothlab" viz penultimate \
    "$(run_dir mueller2019-synthetic-mlp smoothing=0.0_seed=0)" \
    "$(run_dir mueller2019-synthetic-mlp smoothing=0.1_seed=0)" \
    --classes 0,1,2 --examples 150 --out "$out/penultimate-synthetic-mlp"

echo "wrote $out:"
cat "$out/mueller2019-synthetic-mlp.md" "$out/mueller2019-mnist-lenet5.md"
