#!/usr/bin/env bash
# TransNAS-Bench-101's micro space: NASWOT's searches with the protocol of bench/results/nb201_search/ (naswot,
# the best of N = 10, 100, 1,000 draws by naswot_128 over 500 runs; AREA, 300 benchmark queries over 50 runs)
# for each classification task, from one scoring of the whole space (4,096 cells) by naswot_128 per task.
#   bench/transnas_search.sh score    score the space (resumable; a task whose scoring is published is skipped):
#                                     14.7 s of one core a cell here on average, about 17 core-hours a task, or
#                                     a GPU run (DEVICE=cuda)
#   bench/transnas_search.sh search   publish the finished scoring to bench/results/tnb/tnb_micro_<task>_naswot128_all,
#                                     then the searches from that copy (seconds each), in runs/tnb_search/
#   bench/transnas_search.sh publish  bench/results/tnb_search/<task>_<algorithm>_...: results.json, run.json,
#                                     runs.json.gz (the baselines random and rea are there already)
# Settings: TASKS (default class_scene class_object), WORKERS (default 1), DEVICE (default cpu).
set -euo pipefail
cd "$(dirname "$0")/.."

TASKS=${TASKS:-class_scene class_object}
WORKERS=${WORKERS:-1}
DEVICE=${DEVICE:-cpu}

scores() { echo "runs/tnb/tnb_micro_$1_naswot128_all"; }
published_scores() { echo "bench/results/tnb/tnb_micro_$1_naswot128_all"; }

searches() {  # task -> "name: arguments" lines
    local n
    for n in 10 100 1000; do
        echo "$1_naswot128_n$n: --algorithm naswot --proxy naswot_128 --samples $n --runs 500"
    done
    echo "$1_area_naswot128_q300: --algorithm area --proxy naswot_128 --budget 300 --runs 50"
}

case "${1:-}" in
    score)
        for task in $TASKS; do
            # A fresh clone has the published scoring only: scoring it again would start from nothing.
            if [ -d "$(published_scores "$task")" ]; then
                echo "$task: the whole space's scoring is published in $(published_scores "$task")"; continue
            fi
            python -m vkdnw_fast.cli evaluate --space tnb_micro --task "$task" --proxies naswot_128 --seeds 1 \
                --device "$DEVICE" --workers "$WORKERS" --out "$(scores "$task")"
        done ;;
    search)
        for task in $TASKS; do
            # Borrowed scores only: a search from a partial scoring would score the rest in its own directory.
            if [ ! -d "$(published_scores "$task")" ]; then
                scored=$(wc -l 2>/dev/null < "$(scores "$task")/results.jsonl" || echo 0)
                if [ "$scored" -lt 4096 ]; then
                    echo "$(scores "$task") holds $scored of the 4,096 cells: run '$0 score' to the end first" >&2
                    exit 1
                fi
                bench/publish_run.sh "$(scores "$task")" "$(published_scores "$task")" 1000
            fi
            # The searches borrow the published copy, so that a clone replays them with their own commands.
            searches "$task" | while IFS=: read -r name arguments; do
                # shellcheck disable=SC2086  # the arguments are words
                python -m vkdnw_fast.cli search --space tnb_micro --task "$task" $arguments --workers "$WORKERS" \
                    --scores-from "$(published_scores "$task")" --no-progress --out "runs/tnb_search/$name"
            done
        done ;;
    publish)
        for task in $TASKS; do
            searches "$task" | while IFS=: read -r name _; do
                mkdir -p "bench/results/tnb_search/$name"
                cp "runs/tnb_search/$name/results.json" "runs/tnb_search/$name/run.json" "bench/results/tnb_search/$name/"
                gzip -9n < "runs/tnb_search/$name/runs.json" > "bench/results/tnb_search/$name/runs.json.gz"
            done
        done ;;
    *) echo "usage: $0 score|search|publish" >&2; exit 2 ;;
esac
