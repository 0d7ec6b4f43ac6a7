#!/usr/bin/env bash
# Times `smoothlab runs` over an experiment of N (default 10,000) run directories, each
# holding a real result.json (one small run's, copied under every planned run id).
#
#   scripts/bench-runs.sh [N]
set -euo pipefail
runs=${1:-10000}
bin=${SMOOTHLAB:-target/release/smoothlab}
work=$(mktemp -d)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT

seeds=$(seq -s, 0 $((runs - 1)))
config='"dataset": {"name": "synthetic", "classes": 4, "features": 8, "train_size": 400, "test_size": 200},
  "model": {"name": "mlp", "hidden": [16]}, "training": {"epochs": 3, "batch_size": 64}, "device": "cpu"'
echo "{\"name\": \"one\", $config}" > "$work/one.json"
echo "{\"name\": \"many\", $config, \"sweep\": {\"seed\": [$seeds]}}" > "$work/many.json"

# One real result, the template.
"$bin" run "$work/one.json" --results "$work/results" > /dev/null 2>&1
template=$(ls "$work"/results/one/*/result.json)

# The planned ids of the big experiment, and a result under each.
experiment="$work/results/many"
mkdir -p "$experiment"
cp "$work/many.json" "$experiment/experiment.json"
"$bin" status "$work/many.json" --results "$work/results" --format json |
    sed -n 's/^ *"run_id": "\(.*\)",$/\1/p' |
    while read -r id; do
        mkdir -p "$experiment/$id"
        seed=${id#seed=}
        seed=${seed%_*}
        sed -e "s/\"run_id\": \"[^\"]*\"/\"run_id\": \"$id\"/" \
            -e "s/\"swept\": {}/\"swept\": {\"seed\": $seed}/" \
            -e "s/\"seed\": 0\$/\"seed\": $seed/" "$template" > "$experiment/$id/result.json"
    done
echo "$(ls "$experiment" | wc -l) entries in $experiment ($(du -sh "$experiment" | cut -f1))"

for round in 1 2 3; do
    start=$(date +%s.%N)
    "$bin" runs "$experiment" --where 'metrics.test.ece < 0.2 and swept.seed >= 100' \
        --sort -metrics.test.nll --limit 3 > "$work/out.txt"
    end=$(date +%s.%N)
    echo "round $round: $(echo "$end - $start" | bc) s, $(tail -1 "$work/out.txt")"
done
