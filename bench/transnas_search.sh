#!/usr/bin/env bash
# TransNAS-Bench-101's micro space: NASWOT's searches with the protocol of bench/results/nb201_search/ (naswot,
# the best of N = 10, 100, 1,000 draws by naswot_128 over 500 runs; AREA, 300 benchmark queries over 50 runs)
# for each classification task, from one scoring of the whole space (4,096 cells) by naswot_128 per task.
#   bench/transnas_search.sh score    score the space (resumable): 11-15 s of one core a cell here, about
#                                     13 core-hours a task, or a GPU run (DEVICE=cuda)
#   bench/transnas_search.sh search   the searches from those scores (seconds each), in runs/tnb_search/
#   bench/transnas_search.sh publish  bench/results/tnb_search/<task>_<algorithm>_...: results.json, run.json,
#                                     runs.json.gz (the baselines random and rea are there already)
# Settings: TASKS (default class_scene class_object), WORKERS (default 1), DEVICE (default cpu).
set -euo pipefail
cd "$(dirname "$0")/.."

TASKS=${TASKS:-class_scene class_object}
WORKERS=${WORKERS:-1}
DEVICE=${DEVICE:-cpu}

scores() { echo "runs/tnb/tnb_micro_$1_naswot128_all"; }

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
            python -m vkdnw_fast.cli evaluate --space tnb_micro --task "$task" --proxies naswot_128 --seeds 1 \
                --device "$DEVICE" --workers "$WORKERS" --out "$(scores "$task")"
        done ;;
    search)
        for task in $TASKS; do
            # Borrowed scores only: a search from a partial scoring would score the rest in its own directory.
            scored=$(wc -l 2>/dev/null < "$(scores "$task")/results.jsonl" || echo 0)
            if [ "$scored" -lt 4096 ]; then
                echo "$(scores "$task") holds $scored of the 4,096 cells: run '$0 score' to the end first" >&2; exit 1
            fi
            searches "$task" | while IFS=: read -r name arguments; do
                # shellcheck disable=SC2086  # the arguments are words
                python -m vkdnw_fast.cli search --space tnb_micro --task "$task" $arguments --workers "$WORKERS" \
                    --scores-from "$(scores "$task")" --no-progress --out "runs/tnb_search/$name"
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
