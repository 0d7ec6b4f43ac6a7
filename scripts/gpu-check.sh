#!/usr/bin/env bash
# GPU check of a prebuilt CUDA smoothlab (scripts/build-cuda.sh), for a GPU machine
# that has no Rust toolchain. Needs bash, coreutils and python3 (for the comparison).
#
# Usage: scripts/gpu-check.sh [--out DIR] [--cpu-only]
#        scripts/gpu-check.sh --compare CPU_RESULTS CUDA_RESULTS
#
# Trains experiments/quickstart.json (MLP) and experiments/gpu-check-resnet20.json
# (ResNet-20 on CIFAR-shaped synthetic data, 2 runs of 108 steps) once with --device
# cuda and once with --device cpu, compares every run's losses and test metrics within
# the tolerances below, and prints `smoothlab bench train` on the GPU (samples/s at
# batch 128). Estimated at a few minutes on a 16-core H100/H200 machine, most of it
# the CPU side (about 25 minutes of CPU time on the 2-core development machine).
#
#   --out DIR   keep results and logs in DIR (default: a new directory under /tmp)
#   --cpu-only  run the "cuda" side on the CPU too: checks the script, the binary and
#               the comparison on a machine without a GPU (the two sides then agree
#               exactly)
#   --compare   only compare two results directories that hold the same experiments
#
# Environment: SMOOTHLAB (default target-cuda/release/smoothlab), SMOOTHLAB_CUDA_VENV
# (default .venv-cuda: its CUDA libraries are used when present, else the system's).
#
# Exit status: 0 the two devices agree; 1 a run failed or a metric disagrees; 2 the
# check could not run (no binary, missing libraries, no usable GPU, no python3).
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
root=$PWD

# A path as the caller meant it, from the repository root.
from_caller() { if [[ $1 == /* ]]; then echo "$1"; else echo "$caller/$1"; fi; }

say() { echo "gpu-check: $*" >&2; }
die() {
    say "error: $*"
    exit 2
}

# Compares the runs of each experiment in $1 (reference, CPU) and $2 (CUDA).
#
# Tolerances: both sides start from the same weights and draw the same batches (all
# randomness is seeded on the host), so they differ only by floating-point rounding:
# GPU kernels sum in other orders (and the CPU build uses its own im2col convolution),
# about 1e-7 relative per operation. Training amplifies such differences, by how much
# was measured on the CPU by changing the learning rate by 5e-8 relative:
# - the MLP quickstart is tame: its first epoch's loss moved by 1e-8, the final losses,
#   NLL and temperature by at most 0.4 %, accuracy and ECE by at most 0.003; bounds:
#   1e-3 relative on the first epoch's loss, 2 % relative on later losses, NLL and the
#   temperature, 0.01 absolute on accuracy, ECE and Brier;
# - ResNet-20 (BatchNorm, a steep first epoch) is chaotic: its first epoch's loss moved
#   by 5e-4, the last epoch's by 4 %, the temperature by 2 %, accuracy by 0.008 and ECE
#   by 0.01; bounds: 2e-2 on the first epoch's loss, 15 % on the last, 10 % on NLL and
#   the temperature, 0.05 on accuracy, ECE and Brier.
# A real defect (a wrong kernel, a missed synchronisation) moves these by far more:
# NaN, chance-level accuracy (0.1 against about 0.75), a loss that does not fall.
compare() {
    command -v python3 >/dev/null ||
        die "python3 is needed to compare the results; they are in $1 and $2 (smoothlab show RUN_DIR)"
    python3 - "$1" "$2" <<'EOF'
import json, math, pathlib, sys

REL, ABS = "rel", "abs"
HISTORY_FIRST, HISTORY_LAST = ("history", 0, "train_loss"), ("history", -1, "train_loss")


def checks(first, last, rel, abs_):
    """(label, path into result.json, kind, tolerance) for each compared number."""
    return [
        ("epoch 1 train loss", HISTORY_FIRST, REL, first),
        ("last epoch train loss", HISTORY_LAST, REL, last),
        ("test accuracy", ("metrics", "test", "accuracy"), ABS, abs_),
        ("test nll", ("metrics", "test", "nll"), REL, rel),
        ("test ece", ("metrics", "test", "ece"), ABS, abs_),
        ("test brier", ("metrics", "test", "brier"), ABS, abs_),
        ("temperature", ("metrics", "temperature", "temperature"), REL, rel),
        ("scaled test nll", ("metrics", "test_scaled", "nll"), REL, rel),
        ("scaled test ece", ("metrics", "test_scaled", "ece"), ABS, abs_),
    ]


# See the comment above compare() in gpu-check.sh for where these come from.
TAME = checks(first=1e-3, last=2e-2, rel=2e-2, abs_=1e-2)
CHAOTIC = checks(first=2e-2, last=0.15, rel=0.1, abs_=0.05)
CHECKS = {"quickstart": TAME}


def results(root):
    found = {}
    for path in sorted(pathlib.Path(root).glob("*/*/result.json")):
        r = json.loads(path.read_text())
        found[(r["experiment"], r["run_id"])] = r
    return found


def get(result, path):
    value = result
    for key in path:
        try:
            value = value[key]
        except (IndexError, KeyError, TypeError):
            return None
    return value


def fmt(value):
    return f"{value:12.6g}" if isinstance(value, (int, float)) else f"{value!s:>12}"


cpu, cuda = results(sys.argv[1]), results(sys.argv[2])
if not cpu:
    sys.exit(f"no results under {sys.argv[1]}")
failures = 0
for key in sorted(cpu.keys() | cuda.keys()):
    a, b = cpu.get(key), cuda.get(key)
    label = "/".join(key)
    if a is None or b is None:
        print(f"{label}: only in {'the CUDA' if a is None else 'the CPU'} results")
        failures += 1
        continue
    if a["status"] != "completed" or b["status"] != "completed":
        print(f"{label}: cpu {a['status']} ({a.get('error')}), cuda {b['status']} ({b.get('error')})")
        failures += 1
        continue
    print(f"{label}: {a['environment']['device']} vs {b['environment']['device']}")
    gpu = b["environment"].get("gpu")
    if gpu:
        print(f"  gpu: {json.dumps(gpu)}")
    print(f"  {'':22} {'cpu':>12} {'cuda':>12} {'diff':>10} {'tolerance':>13}")
    for name, path, kind, tol in CHECKS.get(key[0], CHAOTIC):
        x, y = get(a, path), get(b, path)
        if x is None and y is None:
            continue
        if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
            ok, diff = False, float("nan")
        else:
            diff = abs(x - y)
            if kind == REL:
                diff /= max(abs(x), abs(y), 1e-12)
            ok = diff <= tol
        failures += not ok
        verdict = "ok" if ok else "DISAGREE"
        print(f"  {name:22} {fmt(x)} {fmt(y)} {diff:10.2e} {kind} {tol:<8g} {verdict}")
print(f"{len(cpu)} run(s) compared, {failures} disagreement(s)")
sys.exit(1 if failures else 0)
EOF
}

out=""
cpu_only=0
case ${1:-} in
--compare)
    [[ $# == 3 ]] || die "usage: $0 --compare CPU_RESULTS CUDA_RESULTS"
    compare "$(from_caller "$2")" "$(from_caller "$3")"
    exit
    ;;
esac
while [[ $# -gt 0 ]]; do
    case $1 in
    --out)
        [[ $# -ge 2 ]] || die "--out needs a directory"
        out=$(from_caller "$2")
        shift
        ;;
    --cpu-only) cpu_only=1 ;;
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
command -v python3 >/dev/null || die "python3 is needed to compare the results"

# The CUDA libraries of the wheels that scripts/build-cuda.sh installed, if they are
# here; otherwise the system's (ldconfig, LD_LIBRARY_PATH). Never the libcuda stub.
venv=${SMOOTHLAB_CUDA_VENV:-$root/.venv-cuda}
if [[ -d $venv/cuda/lib ]]; then
    export LD_LIBRARY_PATH=$venv/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
if [[ $cpu_only == 1 ]] && ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 ' &&
    [[ -e $venv/cuda/nodriver/libcuda.so.1 ]]; then
    # No driver here: the stub lets the binary start (every CUDA call fails cleanly).
    export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$venv/cuda/nodriver
fi
if command -v ldd >/dev/null; then
    missing=$(ldd "$bin" | awk '/not found/ {print $1}' | tr '\n' ' ')
    if [[ -n $missing ]]; then
        say "the binary cannot start: missing $missing"
        [[ $missing == *libcuda.so* ]] &&
            say "libcuda.so.1 comes with the NVIDIA driver: is one installed (nvidia-smi)?"
        say "the CUDA libraries must match the build (CUDA 13 from scripts/build-cuda.sh's wheels):"
        say "put their directory on LD_LIBRARY_PATH, or copy .venv-cuda/ from the build machine"
        exit 2
    fi
fi

if [[ $cpu_only == 1 ]]; then
    gpu_device=cpu
    say "--cpu-only: both sides run on the CPU"
else
    gpu_device=cuda
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv >&2 || true
    fi
fi

out=${out:-$(mktemp -d /tmp/smoothlab-gpu-check.XXXXXX)}
mkdir -p "$out"
say "results and logs in $out"
"$bin" --version >&2

# Trains experiment $1 on device $2 into $out/$2-side/.
train() {
    local experiment=$1 device=$2 side=$3
    local log=$out/$side-$experiment.log start=$SECONDS
    say "$experiment on $device ..."
    if ! "$bin" run "experiments/$experiment.json" --device "$device" \
        --results "$out/$side" >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        if grep -q "cannot open CUDA device\|built without CUDA" "$log"; then
            die "smoothlab cannot use the GPU (see above)"
        fi
        say "$experiment on $device failed (log: $log)"
        return 1
    fi
    say "$experiment on $device: $((SECONDS - start)) s"
}

status=0
for experiment in quickstart gpu-check-resnet20; do
    train "$experiment" "$gpu_device" cuda || status=1
    train "$experiment" cpu cpu || status=1
done

say "comparing CPU and $gpu_device results"
compare "$out/cpu" "$out/cuda" | tee "$out/compare.txt" || status=1

steps=20
[[ $cpu_only == 1 ]] && steps=2
say "smoothlab bench train --device $gpu_device --steps $steps --batch-size 128"
"$bin" bench train --device "$gpu_device" --steps "$steps" --batch-size 128 \
    --json "$out/bench.json" | tee "$out/bench.txt" || status=1

if [[ $status == 0 ]]; then
    say "OK: CPU and $gpu_device agree (details in $out)"
else
    say "FAILED (details in $out)"
fi
exit $status
