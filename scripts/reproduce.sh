#!/usr/bin/env bash
# The paper-style reproductions on the full Fashion-MNIST, each regenerated from scratch
# by one command:
#
#   mueller2019  Müller, Kornblith & Hinton 2019, Table 3: the baseline, temperature
#                scaling of the baseline and label smoothing ε ∈ {0.01, 0.02, 0.05, 0.1},
#                LeNet-5, 3 seeds, and the penultimate-layer picture (ε = 0 against 0.1)
#   mukhoti2020  Mukhoti et al. 2020, Tables 1–2: CE, Brier, MMCE (both estimators),
#                LS-0.05, FL-3 and FLSD-53, ECE before and after temperature scaling
#   guo2017      Guo et al. 2017, Tables 1–2: every post-hoc calibrator on the CE runs
#                of mukhoti2020 (trained here if they are not done yet)
#   all          the three in turn
#
# Each writes results/<study>/: report.md/.csv/.json/.html (every metric), summary.md
# (the study's columns, as the README quotes them), figures/ (SVG and PNG),
# published.md (the paper's numbers, quoted) and, when it trained any run,
# wall-seconds.txt (the study's wall time in seconds; a rerun that only redraws the
# reports leaves it as it is). Runs go to target/reproduce/runs (RUNS=...); a rerun skips the runs already done.
#
# The data: SMOOTHLAB_DATA (default ../shared/data) holds fashion-mnist/ (the four IDX
# .gz files); it is linked as data/fashion-mnist, where the experiment files read it.
#
# Usage: scripts/reproduce.sh mueller2019|mukhoti2020|guo2017|all
set -euo pipefail
cd "$(dirname "$0")/.."

study="${1:-}"
case "$study" in
    mueller2019 | mukhoti2020 | guo2017 | all) ;;
    *)
        echo "usage: scripts/reproduce.sh mueller2019|mukhoti2020|guo2017|all" >&2
        exit 2
        ;;
esac

runs="${RUNS:-target/reproduce/runs}"
scripts/data.sh fashion-mnist
cargo build --release --quiet
smoothlab="${CARGO_TARGET_DIR:-target}/release/smoothlab"

# report OUT METRICS [report options...]: the report in every format and its figures
# under OUT, and summary.md with the METRICS columns.
report() {
    local out="$1" metrics="$2"
    shift 2
    mkdir -p "$out"
    "$smoothlab" report "$@" --format md --metrics "$metrics" > "$out/summary.md"
    "$smoothlab" report "$@" --format md > "$out/report.md"
    "$smoothlab" report "$@" --format csv > "$out/report.csv"
    "$smoothlab" report "$@" --format json > "$out/report.json"
    "$smoothlab" report "$@" --plots "$out/figures" --html "$out/report.html" > /dev/null
}

# timed STUDY COMMAND...: runs COMMAND; when it trained runs, writes its wall time to
# results/STUDY/wall-seconds.txt.
timed() {
    local name="$1" start marker trained seconds
    shift
    marker=$(mktemp)
    start=$(date +%s)
    "$@"
    seconds=$(($(date +%s) - start))
    trained=$(find "$runs" -name result.json -newer "$marker" | wc -l)
    rm -f "$marker"
    echo "reproduce: $name took $seconds s, $trained run(s) trained"
    if ((trained > 0)); then
        echo "$seconds" > "results/$name/wall-seconds.txt"
    fi
}

# fresh OUT: OUT without the reports and figures of an earlier run of its study.
fresh() {
    rm -rf "$1/figures" "$1"/report.* "$1/summary.md" "$1/published.md"
    mkdir -p "$1"
}

run_dir() { # EXPERIMENT PREFIX: the directory of the run whose id starts with PREFIX
    local dirs=("$runs/$1/$2"_*)
    [[ -d "${dirs[0]}" ]] || { echo "error: no run $runs/$1/$2_*" >&2; exit 1; }
    echo "${dirs[0]}"
}

mueller2019() {
    local experiment=mueller2019-fashion-mnist-lenet5 out=results/mueller2019
    "$smoothlab" run "experiments/$experiment.json" --results "$runs"
    fresh "$out"
    report "$out" accuracy,nll,ece,smooth_ece,ece_scaled,temperature,logit_gap "$runs/$experiment"
    "$smoothlab" viz penultimate \
        "$(run_dir "$experiment" smoothing=0.0_seed=0)" \
        "$(run_dir "$experiment" smoothing=0.1_seed=0)" \
        --classes 0,1,2 --examples 150 --out "$out/figures/penultimate"
    cp docs/published/mueller2019.md "$out/published.md"
}

mukhoti2020() {
    local experiment=mukhoti2020-fashion-mnist-lenet5 out=results/mukhoti2020
    "$smoothlab" run "experiments/$experiment.json" --results "$runs"
    fresh "$out"
    report "$out" accuracy,nll,ece,smooth_ece,ece_scaled,temperature,logit_gap "$runs/$experiment"
    cp docs/published/mukhoti2020.md "$out/published.md"
}

guo2017() {
    local experiment=mukhoti2020-fashion-mnist-lenet5 out=results/guo2017
    "$smoothlab" run "experiments/$experiment.json" --results "$runs"
    fresh "$out"
    local columns=ece,ece_scaled,ece_vector,ece_matrix,ece_dirichlet,ece_histogram,ece_isotonic
    columns+=,nll,nll_scaled,nll_vector,nll_matrix,nll_dirichlet,nll_histogram,nll_isotonic
    report "$out" "$columns" "$runs/$experiment" \
        --where 'config.loss.name == "smoothed_ce" and config.loss.smoothing == 0'
    cp docs/published/guo2017.md "$out/published.md"
}

for name in mueller2019 mukhoti2020 guo2017; do
    if [[ "$study" == all || "$study" == "$name" ]]; then
        timed "$name" "$name"
    fi
done
