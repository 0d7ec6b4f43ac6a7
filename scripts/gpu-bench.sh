#!/usr/bin/env bash
# The GPU run of a prebuilt CUDA smoothlab (scripts/build-cuda.sh), for a GPU machine
# that has no Rust toolchain but has PyTorch: the CPU/CUDA agreement check, then one
# real ResNet-20 epoch race against PyTorch eager on the same card and the same bytes.
#
# Usage: scripts/gpu-bench.sh [--out DIR] [--cpu-only] [--no-check]
#
#   1. scripts/gpu-check.sh --out DIR/check: the quickstart and the ResNet-20 check on
#      CPU and CUDA, compared within that script's tolerances;
#   2. 50,000 + 10,000 (a fifth as many test images, at most 10,000) synthetic CIFAR-shaped images written once as CIFAR-10 binary
#      batches (scripts/bench_pytorch.py write-cifar), to a temporary directory;
#   3. ROUNDS alternated rounds of the ResNet-20 epoch at batch 128 (SGD momentum 0.9,
#      lr 0.01, label smoothing 0.1, a tenth held out, no augmentation), PyTorch eager
#      (`bench_pytorch.py epoch`) then smoothlab (`smoothlab bench epoch --model
#      resnet20 --data`), each WARMUP_EPOCHS untimed epochs then the median of EPOCHS;
#   4. the summary: each side's samples/s (median of the round medians, and the range),
#      the ratio, into DIR/summary.txt and DIR/summary.json;
#   5. with nsys on PATH, a profile of one smoothlab and one PyTorch epoch on
#      PROFILE_SAMPLES images: the GPU kernel summaries in DIR/nsys-*.txt.
#
#   --out DIR   write everything there (default: a new directory under /tmp); on the
#               device machine, pass $OUT
#   --cpu-only  run every "cuda" side on the CPU, on SAMPLES (default 2,560) images:
#               checks the script, the binary and both loops without a GPU
#   --no-check  skip step 1 (for a rerun of the race alone)
#
# Environment: SMOOTHLAB (default target-cuda/release/smoothlab), SMOOTHLAB_CUDA_VENV
# (see gpu-check.sh), PYTHON (default python3; must import torch), SAMPLES (50000),
# ROUNDS (2), EPOCHS (3), WARMUP_EPOCHS (1), PROFILE_SAMPLES (10000), THREADS (nproc,
# PyTorch's CPU threads).
#
# Time on an H200 machine, estimated: the check a few minutes, the race under two
# (a ResNet-20 epoch of 45,000 images takes seconds on either side).
#
# Exit status: 0 everything ran and the devices agree; 1 a check disagreed or a side
# failed; 2 the run could not start (no binary, no torch, no GPU).
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
root=$PWD

from_caller() { if [[ $1 == /* ]]; then echo "$1"; else echo "$caller/$1"; fi; }
say() { echo "gpu-bench: $*" >&2; }
die() {
    say "error: $*"
    exit 2
}

out=""
cpu_only=0
check=1
while [[ $# -gt 0 ]]; do
    case $1 in
    --out)
        [[ $# -ge 2 ]] || die "--out needs a directory"
        out=$(from_caller "$2")
        shift
        ;;
    --cpu-only) cpu_only=1 ;;
    --no-check) check=0 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done

bin=$(from_caller "${SMOOTHLAB:-$root/target-cuda/release/smoothlab}")
[[ -x $bin ]] || die "no smoothlab binary at $bin: build one with scripts/build-cuda.sh, or set SMOOTHLAB"
python=${PYTHON:-python3}
"$python" -c 'import torch' 2>/dev/null || die "$python cannot import torch (set PYTHON)"
if [[ $cpu_only == 1 ]]; then
    device=cpu
    samples=${SAMPLES:-2560}
else
    device=cuda
    samples=${SAMPLES:-50000}
    "$python" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' ||
        die "PyTorch sees no GPU (nvidia-smi?)"
fi
rounds=${ROUNDS:-2}
epochs=${EPOCHS:-3}
warmup=${WARMUP_EPOCHS:-1}
threads=${THREADS:-$(nproc)}
out=${out:-$(mktemp -d /tmp/smoothlab-gpu-bench.XXXXXX)}
mkdir -p "$out"
say "results and logs in $out"
export SMOOTHLAB=$bin

# The same library set-up as gpu-check.sh, for the bench runs outside it.
venv=${SMOOTHLAB_CUDA_VENV:-$root/.venv-cuda}
if [[ -d $venv/cuda/lib ]]; then
    export LD_LIBRARY_PATH=$venv/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
if [[ $cpu_only == 1 ]] && ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 ' &&
    [[ -e $venv/cuda/nodriver/libcuda.so.1 ]]; then
    export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$venv/cuda/nodriver
fi

status=0
if [[ $check == 1 ]]; then
    say "step 1: scripts/gpu-check.sh"
    check_args=(--out "$out/check")
    [[ $cpu_only == 1 ]] && check_args+=(--cpu-only)
    scripts/gpu-check.sh "${check_args[@]}" 2>&1 | tee "$out/check.log" || status=1
fi

data=$(mktemp -d /tmp/smoothlab-gpu-bench-data.XXXXXX)
trap 'rm -rf "$data"' EXIT
test_samples=$((samples / 5 < 10000 ? samples / 5 : 10000))
say "step 2: $samples + $test_samples synthetic CIFAR-shaped images in $data"
"$python" scripts/bench_pytorch.py write-cifar "$data" --samples "$samples" \
    --test-samples "$test_samples" >&2

say "step 3: $rounds rounds of the ResNet-20 epoch on $device, PyTorch then smoothlab"
for round in $(seq 1 "$rounds"); do
    say "round $round/$rounds: PyTorch"
    "$python" scripts/bench_pytorch.py epoch --model resnet20 --data "$data" --device "$device" \
        --threads "$threads" --warmup-epochs "$warmup" --epochs "$epochs" \
        --json "$out/pytorch-$round.json" 2>&1 | tee "$out/pytorch-$round.log" || status=1
    say "round $round/$rounds: smoothlab"
    RUST_LOG=warn "$bin" bench epoch --model resnet20 --data "$data" --device "$device" \
        --warmup-epochs "$warmup" --epochs "$epochs" \
        --json "$out/smoothlab-$round.json" 2>&1 | tee "$out/smoothlab-$round.log" || status=1
done

say "step 4: summary"
"$python" - "$out" "$rounds" <<'EOF' | tee "$out/summary.txt" || status=1
import json, pathlib, statistics, sys

out, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
sides = {}
for side in ("pytorch", "smoothlab"):
    runs = [json.loads((out / f"{side}-{r}.json").read_text()) for r in range(1, rounds + 1)
            if (out / f"{side}-{r}.json").exists()]
    if not runs:
        sys.exit(f"no {side} figures in {out}")
    rates = [r["samples_per_second"] for r in runs]
    sides[side] = {"environment": runs[0]["environment"], "parameters": runs[0]["parameters"],
                   "train_samples": runs[0]["train_samples"],
                   "samples_per_second": statistics.median(rates), "round_medians": rates}
ours, theirs = sides["smoothlab"], sides["pytorch"]
env, tenv = ours["environment"], theirs["environment"]
print(f"device: {tenv.get('gpu', tenv['device'])}; PyTorch {tenv['torch_version']} "
      f"(CUDA {tenv.get('cuda_version')}, cuDNN {tenv.get('cudnn_version')}); "
      f"smoothlab {env['smoothlab_version']} ({env.get('git_commit')}), candle {env['candle_version']}, "
      f"device {env['device']}")
print(f"ResNet-20 epoch, batch 128, {ours['train_samples']} training images "
      f"(PyTorch {theirs['train_samples']}); {rounds} alternated rounds")
if ours["parameters"] != theirs["parameters"]:
    print(f"warning: {ours['parameters']} parameters in smoothlab, {theirs['parameters']} in PyTorch")
for name, side in (("smoothlab", ours), ("PyTorch eager", theirs)):
    r = side["round_medians"]
    print(f"  {name:<14} {side['samples_per_second']:10.1f} samples/s ({min(r):.1f}-{max(r):.1f})")
ratio = ours["samples_per_second"] / theirs["samples_per_second"]
print(f"  smoothlab / PyTorch: {ratio:.2f}")
(out / "summary.json").write_text(json.dumps({**sides, "ratio": ratio}, indent=2) + "\n")
EOF

if [[ $cpu_only == 0 ]] && command -v nsys >/dev/null; then
    profile=${PROFILE_SAMPLES:-10000}
    say "step 5: nsys profiles of one epoch on $profile images"
    RUST_LOG=warn timeout 300 nsys profile --force-overwrite true --stats=true \
        -o "$out/nsys-smoothlab" "$bin" bench epoch --model resnet20 --data "$data" \
        --samples "$profile" --device cuda --warmup-epochs 1 --epochs 1 \
        >"$out/nsys-smoothlab.txt" 2>&1 || say "the smoothlab profile failed (see $out/nsys-smoothlab.txt)"
    timeout 300 nsys profile --force-overwrite true --stats=true -o "$out/nsys-pytorch" \
        "$python" scripts/bench_pytorch.py epoch --model resnet20 --data "$data" \
        --samples "$profile" --device cuda --warmup-epochs 1 --epochs 1 \
        >"$out/nsys-pytorch.txt" 2>&1 || say "the PyTorch profile failed (see $out/nsys-pytorch.txt)"
    # The .nsys-rep files are large; the text summaries are what comes back.
    rm -f "$out"/nsys-*.nsys-rep "$out"/nsys-*.sqlite
fi

if [[ $status == 0 ]]; then
    say "OK (details in $out)"
else
    say "FAILED (details in $out)"
fi
exit $status
