#!/usr/bin/env bash
# smoothlab's training throughput against PyTorch's on the same models, shapes, batch,
# optimisers, label smoothing (0.1) and thread count (scripts/bench_pytorch.py is the
# PyTorch side), measured two ways:
#
# - steps: `smoothlab bench models` against `bench_pytorch.py models`, the training
#   step on a few cached random batches (WARMUP steps, then the median of REPEATS
#   repetitions of STEPS steps);
# - epoch: `smoothlab bench epoch --data DIR` against `bench_pytorch.py epoch`, whole
#   epochs of a real loop over the same files: the full MNIST (MNIST_DIR, default
#   data/mnist: 54,000 training images after the validation split) for the MLP and
#   LeNet-5, and 50,000 synthetic CIFAR-shaped images written once as CIFAR-10 binary
#   batches for ResNet-20 (WARMUP_EPOCHS untimed, then the median of EPOCHS). This is
#   what a user waits for; it also gives smoothlab's evaluation share and peak memory.
#
# The two sides are run alternately, PyTorch then smoothlab, ROUNDS times, so that a
# change in the machine's load hits both; each side's figure per case is the median of
# its round medians, the range is that of the round medians.
#
# PyTorch is installed from PyPI into .venv-bench/ (ignored by git) on the first run.
# PyPI has no CPU-only torch for Linux x86_64: plain `pip install torch` also brings the
# CUDA libraries (nvidia-*, triton). torch 2.15.0 measured: about 3 GB downloaded, 5.3 GB
# installed, 80 s. They are not loaded on the CPU, but `import torch` fails without them
# (`pip install --no-deps torch` was tried), so nothing smaller from PyPI works.
# Denormals are flushed on neither side (PyTorch's AdamW can slow down on them).
#
# Settings, from the environment: MODES (steps,epoch), THREADS (default: nproc), ROUNDS
# (2), STEPS (20), REPEATS (5), WARMUP (5), BATCH (128), MODELS
# (mlp-sgd,mlp-adamw,lenet5,resnet20, for the steps; also lenet5-adamw, resnet20-adamw),
# EPOCH_MODELS (mlp-sgd,mlp-adamw,lenet5,lenet5-adamw; add resnet20 and resnet20-adamw for
# their epochs: about 25 minutes each on 2 cores at the defaults),
# EPOCHS (2), WARMUP_EPOCHS (1), MNIST_DIR, OUT (target/bench-vs-pytorch: the JSON files
# and summary.json), SMOOTHLAB (a smoothlab binary; default: cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."

MODES=${MODES:-steps,epoch}
THREADS=${THREADS:-$(nproc)}
ROUNDS=${ROUNDS:-2}
STEPS=${STEPS:-20}
REPEATS=${REPEATS:-5}
WARMUP=${WARMUP:-5}
BATCH=${BATCH:-128}
MODELS=${MODELS:-mlp-sgd,mlp-adamw,lenet5,resnet20}
EPOCH_MODELS=${EPOCH_MODELS:-mlp-sgd,mlp-adamw,lenet5,lenet5-adamw}
EPOCHS=${EPOCHS:-2}
WARMUP_EPOCHS=${WARMUP_EPOCHS:-1}
MNIST_DIR=${MNIST_DIR:-data/mnist}
OUT=${OUT:-target/bench-vs-pytorch}
VENV=.venv-bench

if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    echo "installing PyTorch from PyPI into $VENV (about 3 GB to download)" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet torch
fi
PYTHON="$VENV/bin/python"

if [[ -z "${SMOOTHLAB:-}" ]]; then
    cargo build --release --quiet
    SMOOTHLAB="${CARGO_TARGET_DIR:-target}/release/smoothlab"
fi

mkdir -p "$OUT"
rm -f "$OUT"/pytorch-*.json "$OUT"/smoothlab-*.json "$OUT"/summary.json
# candle's matrix products follow RAYON_NUM_THREADS (smoothlab runs candle's elementwise
# pool on one thread unless CANDLE_NUM_THREADS is set; see src/main.rs).
export RAYON_NUM_THREADS="$THREADS"

if [[ ,$MODES, == *,steps,* ]]; then
    common=(--steps "$STEPS" --repeats "$REPEATS" --warmup "$WARMUP" --batch-size "$BATCH")
    for round in $(seq 1 "$ROUNDS"); do
        echo "== steps, round $round/$ROUNDS: PyTorch" >&2
        "$PYTHON" scripts/bench_pytorch.py models --models "$MODELS" "${common[@]}" \
            --threads "$THREADS" --json "$OUT/pytorch-steps-$round.json" >&2
        echo "== steps, round $round/$ROUNDS: smoothlab" >&2
        "$SMOOTHLAB" bench models --models "$MODELS" "${common[@]}" --device cpu \
            --json "$OUT/smoothlab-steps-$round.json" >&2
    done
fi

if [[ ,$MODES, == *,epoch,* ]]; then
    cifar=""
    if [[ ,$EPOCH_MODELS, == *,resnet20* ]]; then
        cifar=$(mktemp -d /tmp/smoothlab-bench-cifar.XXXXXX)
        trap 'rm -rf "$cifar"' EXIT
        "$PYTHON" scripts/bench_pytorch.py write-cifar "$cifar" >&2
    fi
    if [[ ,$EPOCH_MODELS, =~ ,(mlp|lenet) && ! -e $MNIST_DIR/train-images-idx3-ubyte.gz &&
        ! -e $MNIST_DIR/train-images-idx3-ubyte ]]; then
        echo "error: no MNIST training images in $MNIST_DIR (set MNIST_DIR; see the README's Data section)" >&2
        exit 2
    fi
    IFS=, read -ra epoch_models <<<"$EPOCH_MODELS"
    epoch_args=(--warmup-epochs "$WARMUP_EPOCHS" --epochs "$EPOCHS" --batch-size "$BATCH")
    for round in $(seq 1 "$ROUNDS"); do
        for model in "${epoch_models[@]}"; do
            data=$MNIST_DIR
            [[ $model == resnet20* ]] && data=$cifar
            echo "== epoch, round $round/$ROUNDS, $model: PyTorch" >&2
            "$PYTHON" scripts/bench_pytorch.py epoch --model "$model" --data "$data" \
                "${epoch_args[@]}" --threads "$THREADS" \
                --json "$OUT/pytorch-epoch-$model-$round.json" >&2
            echo "== epoch, round $round/$ROUNDS, $model: smoothlab" >&2
            RUST_LOG=warn "$SMOOTHLAB" bench epoch --model "$model" --data "$data" \
                "${epoch_args[@]}" --device cpu --json "$OUT/smoothlab-epoch-$model-$round.json" >&2
        done
    done
fi

"$PYTHON" - "$OUT" <<'EOF'
import json, pathlib, re, statistics, sys

out = pathlib.Path(sys.argv[1])


def rounds(pattern):
    """{case: [(environment, figures) of each round]} of the files whose names match
    `pattern`; a file holds a `cases` list (steps) or one case (epoch)."""
    found = {}
    for path in sorted(out.glob("*.json")):
        if re.fullmatch(pattern, path.name):
            figures = json.loads(path.read_text())
            for case in figures.get("cases", [figures]):
                found.setdefault(case["case"], []).append((figures["environment"], case))
    return found


def cell(runs):
    medians = [case["samples_per_second"] for _, case in runs]
    value = statistics.median(medians)
    return value, f"{value:9.1f} ({min(medians):.1f}-{max(medians):.1f})"


summary = {"steps": [], "epoch": []}
environments = {}
for mode in ("steps", "epoch"):
    ours = rounds(rf"smoothlab-{mode}-[a-z0-9-]*\d+\.json")
    theirs = rounds(rf"pytorch-{mode}-[a-z0-9-]*\d+\.json")
    if not ours:
        continue
    environments.setdefault("smoothlab", next(iter(ours.values()))[0][0])
    if theirs:
        environments.setdefault("pytorch", next(iter(theirs.values()))[0][0])
    first = next(iter(ours.values()))[0][1]
    print()
    if mode == "steps":
        print(f"steps: the training step on {first['batch_size']}-sample batches, "
              f"{first['warmup_steps']} warm-up steps then the median of {first['repeats']} x "
              f"{first['steps']} steps, per round")
    else:
        print(f"epoch: whole epochs of a real loop at batch {first['config']['training']['batch_size']}, "
              f"{first['warmup_epochs']} warm-up epoch(s) then the median of "
              f"{len(first['epochs']) - first['warmup_epochs']}, per round")
    print(f"{'case':<10} {'params':>8}  {'smoothlab samples/s':>26}  {'PyTorch samples/s':>26}  {'ratio':>6}")
    for name, runs in ours.items():
        ours_value, ours_text = cell(runs)
        params = runs[0][1]["parameters"]
        other = theirs.get(name, [])
        theirs_value, theirs_text, ratio = None, "-", None
        if other:
            theirs_value, theirs_text = cell(other)
            ratio = ours_value / theirs_value
            if other[0][1]["parameters"] != params:
                print(f"warning: {name} has {params} parameters in smoothlab, "
                      f"{other[0][1]['parameters']} in PyTorch")
        ratio_text = f"{ratio:.2f}" if ratio is not None else "-"
        print(f"{name:<10} {params:>8}  {ours_text:>26}  {theirs_text:>26}  {ratio_text:>6}")
        row = {"case": name, "parameters": params, "smoothlab_samples_per_second": ours_value,
               "pytorch_samples_per_second": theirs_value, "ratio": ratio}
        if mode == "epoch":
            last = runs[-1][1]
            row.update(train_samples=last["train_samples"], data=last["data"],
                       evaluation_share=last["evaluation_share"], memory=last["memory"])
        summary[mode].append(row)
    if mode == "epoch":
        print("smoothlab's evaluation and memory, last round:")
        for row in summary["epoch"]:
            share, memory = row["evaluation_share"], row["memory"]
            peak = "n/a" if memory["peak_mb"] is None else f"{memory['peak_mb']:.0f} MB"
            print(f"  {row['case']:<10} {row['train_samples']} training samples; validation "
                  f"{100 * share['epoch_share']:.1f} % of an epoch; peak {peak} "
                  f"(data {memory['dataset_mb']:.0f} MB as f32)")

env, tenv = environments.get("smoothlab"), environments.get("pytorch", {})
if env is None:
    sys.exit(f"no smoothlab figures in {out}")
commit = f" ({env['git_commit']})" if env.get("git_commit") else ""
print()
print(f"machine: {env['cpu']}, {env['logical_cpus']} logical CPUs; {env['threads']} threads "
      f"(PyTorch {tenv.get('threads')})")
print(f"smoothlab {env['smoothlab_version']}{commit}, candle {env['candle_version']}, "
      f"{env['allocator']} allocator; PyTorch {tenv.get('torch_version')} "
      f"({tenv.get('cpu_capability')} kernels), denormals not flushed")
(out / "summary.json").write_text(json.dumps({**environments, **summary}, indent=2) + "\n")
EOF
