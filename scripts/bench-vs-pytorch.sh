#!/usr/bin/env bash
# smoothlab's training throughput against PyTorch's on the same models, shapes, batch,
# optimisers, label smoothing (0.1) and thread count (scripts/bench_pytorch.py is the
# PyTorch side), then smoothlab's evaluation share and peak memory (`bench epoch`).
#
# The two are run alternately, PyTorch then smoothlab, ROUNDS times, so that a change in
# the machine's load hits both; each side's figure per model is the median of its round
# medians (each round: WARMUP steps, then the median of REPEATS repetitions of STEPS
# steps), the range is that of the round medians.
#
# PyTorch is installed from PyPI into .venv-bench/ (ignored by git) on the first run.
# PyPI has no CPU-only torch for Linux x86_64: plain `pip install torch` also brings the
# CUDA libraries (nvidia-*, triton). torch 2.15.0 measured: about 3 GB downloaded, 5.3 GB
# installed, 80 s. They are not loaded on the CPU, but `import torch` fails without them
# (`pip install --no-deps torch` was tried), so nothing smaller from PyPI works.
# Denormals are flushed on neither side (PyTorch's AdamW can slow down on them).
#
# Settings, from the environment: THREADS (default: nproc), ROUNDS (2), STEPS (20),
# REPEATS (5), WARMUP (5), BATCH (128), MODELS (mlp-sgd,mlp-adamw,lenet5,resnet20),
# EPOCH_SAMPLES (60000), EPOCHS (3), OUT (target/bench-vs-pytorch: the JSON files and
# summary.json), SMOOTHLAB (a smoothlab binary; default: cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=${THREADS:-$(nproc)}
ROUNDS=${ROUNDS:-2}
STEPS=${STEPS:-20}
REPEATS=${REPEATS:-5}
WARMUP=${WARMUP:-5}
BATCH=${BATCH:-128}
MODELS=${MODELS:-mlp-sgd,mlp-adamw,lenet5,resnet20}
EPOCH_SAMPLES=${EPOCH_SAMPLES:-60000}
EPOCHS=${EPOCHS:-3}
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
rm -f "$OUT"/pytorch-*.json "$OUT"/smoothlab-*.json "$OUT"/epoch.json "$OUT"/summary.json
# candle's matrix products follow RAYON_NUM_THREADS (smoothlab runs candle's elementwise
# pool on one thread unless CANDLE_NUM_THREADS is set; see src/main.rs).
export RAYON_NUM_THREADS="$THREADS"
common=(--models "$MODELS" --steps "$STEPS" --repeats "$REPEATS" --warmup "$WARMUP" --batch-size "$BATCH")
for round in $(seq 1 "$ROUNDS"); do
    echo "== round $round/$ROUNDS: PyTorch" >&2
    "$PYTHON" scripts/bench_pytorch.py "${common[@]}" --threads "$THREADS" \
        --json "$OUT/pytorch-$round.json" >&2
    echo "== round $round/$ROUNDS: smoothlab" >&2
    "$SMOOTHLAB" bench models "${common[@]}" --device cpu --json "$OUT/smoothlab-$round.json" >&2
done
echo "== smoothlab bench epoch" >&2
RUST_LOG=warn "$SMOOTHLAB" bench epoch --samples "$EPOCH_SAMPLES" --epochs "$EPOCHS" \
    --batch-size "$BATCH" --device cpu --json "$OUT/epoch.json" >&2

"$PYTHON" - "$OUT" "$ROUNDS" <<'EOF'
import json, statistics, sys

out, rounds = sys.argv[1], int(sys.argv[2])
def load(name):
    with open(f"{out}/{name}") as f:
        return json.load(f)
torch_runs = [load(f"pytorch-{r}.json") for r in range(1, rounds + 1)]
ours_runs = [load(f"smoothlab-{r}.json") for r in range(1, rounds + 1)]
epoch = load("epoch.json")

def per_case(runs):
    figures = {}
    for run in runs:
        for case in run["cases"]:
            figures.setdefault(case["case"], []).append(case)
    return figures

torch_cases, ours_cases = per_case(torch_runs), per_case(ours_runs)
env, tenv = ours_runs[0]["environment"], torch_runs[0]["environment"]
print(f"machine: {env['cpu']}, {env['logical_cpus']} logical CPUs; {env['threads']} threads on both sides "
      f"(PyTorch {tenv['threads']})")
commit = f" ({env['git_commit']})" if env.get("git_commit") else ""
print(f"smoothlab {env['smoothlab_version']}{commit}, candle {env['candle_version']}, "
      f"{env['allocator']} allocator; PyTorch {tenv['torch_version']} ({tenv['cpu_capability']} kernels), "
      "denormals not flushed")
first = ours_runs[0]["cases"][0]
print(f"batch {first['batch_size']}, label smoothing {ours_runs[0]['smoothing']}, {rounds} alternating rounds, "
      f"each {first['warmup_steps']} warm-up steps then the median of {first['repeats']} x {first['steps']} steps")
print()
print(f"{'model':<10} {'params':>8}  {'smoothlab samples/s':>26}  {'PyTorch samples/s':>26}  {'smoothlab/PyTorch':>17}")
summary = []
def cell(cases):
    medians = [c["samples_per_second"] for c in cases]
    value = statistics.median(medians)
    return value, f"{value:9.1f} ({min(medians):.1f}-{max(medians):.1f})"
for name, ours in ours_cases.items():
    theirs = torch_cases.get(name, [])
    ours_value, ours_text = cell(ours)
    if theirs:
        theirs_value, theirs_text = cell(theirs)
        ratio = ours_value / theirs_value
    else:
        theirs_value, theirs_text, ratio = None, "-", None
    params = ours[0]["parameters"]
    if theirs and theirs[0]["parameters"] != params:
        print(f"warning: {name} has {params} parameters in smoothlab, {theirs[0]['parameters']} in PyTorch")
    ratio_text = f"{ratio:.2f}" if ratio is not None else "-"
    print(f"{name:<10} {params:>8}  {ours_text:>26}  {theirs_text:>26}  {ratio_text:>17}")
    summary.append({"case": name, "parameters": params, "smoothlab_samples_per_second": ours_value,
                    "pytorch_samples_per_second": theirs_value, "ratio": ratio})

share, memory = epoch["evaluation_share"], epoch["memory"]
print()
print(f"evaluation share, one MLP epoch on {epoch['train_samples'] + epoch['validation_samples']} samples "
      f"({epoch['train_samples']} training, {epoch['validation_samples']} validation):")
print(f"  training {share['train_seconds']:.2f} s; validation + calibration {share['validation_seconds']:.3f} s "
      f"= {100 * share['epoch_share']:.1f} % of the epoch; end of run (test + validation predictions, "
      f"temperature fit, metrics) {share['final_evaluation_seconds']:.3f} s; "
      f"a one-epoch run evaluates {100 * share['one_epoch_run_share']:.1f} % of its time")
def mb(v):
    return "n/a" if v is None else f"{v:.1f} MB"
verdict = {True: "within", False: "OVER", None: "not measured against"}[memory["within_budget"]]
print(f"peak memory, {memory['epochs']}-epoch MLP run: {mb(memory['peak_mb'])}, {verdict} the budget of "
      f"{memory['budget_mb']:.1f} MB (2 x {memory['dataset_mb']:.1f} MB of f32 data + 200)")
print(f"  loading {mb(memory['load_peak_mb'])}; per epoch "
      + ", ".join(mb(e["peak_mb"]) for e in memory["per_epoch"])
      + f"; final evaluation {mb(memory['final_evaluation_peak_mb'])}")
print("  resident at the end of each epoch's training: "
      + ", ".join(mb(e["rss_mb"]) for e in memory["per_epoch"]))
with open(f"{out}/summary.json", "w") as f:
    json.dump({"smoothlab": env, "pytorch": tenv, "cases": summary,
               "evaluation_share": share, "memory": memory}, f, indent=2)
    f.write("\n")
EOF
