#!/usr/bin/env bash
# NAS-Bench-101, the bundled 292 cells: VKDNW (both presets) with the proxies of the NAS-Bench-201
# reproduction, so that VKDNW_agg is ranked as in the paper's Table I (README, "NAS-Bench-101").
#   bench/nb101_vkdnw.sh run      score (resumable: run it again after an interruption; a larger SEEDS
#                                 extends the run by the new seeds only)
#   bench/nb101_vkdnw.sh publish  bench/results/nb101_vkdnw/: scores, metrics.json, table.txt, bars.png
# Settings: WORKERS (default 1), SEEDS (default 1), DEVICE (default cpu). 29 s a cell on one core here on
# average, 7-132 s by the cell's size (VKDNW alone 7-44 s a preset).
set -euo pipefail
cd "$(dirname "$0")/.."

WORKERS=${WORKERS:-1}
SEEDS=${SEEDS:-1}
DEVICE=${DEVICE:-cpu}
PROXIES=vkdnw_single,vkdnw,aleph,jacov,expressivity,progressivity,trainability,flops,naswot,synflow
PROXIES=$PROXIES,fim_q1,fim_q2,fim_q3,fim_q4,fim_q5,fim_q6,fim_q7,fim_q8,fim_q9
OUT=${OUT:-runs/nb101_vkdnw}
PUBLISHED=bench/results/nb101_vkdnw

case "${1:-}" in
    run)
        python -m vkdnw_fast.cli evaluate --space nb101 --dataset cifar10 --proxies "$PROXIES" --preset paper,exact \
            --seeds "$SEEDS" --device "$DEVICE" --workers "$WORKERS" --out "$OUT" ;;
    publish)
        bench/publish_run.sh "$OUT" "$PUBLISHED" 1000
        bench/plot_bars.sh "$PUBLISHED/bars.png" "$PUBLISHED" --sort-by spearman ;;
    *) echo "usage: $0 run|publish" >&2; exit 2 ;;
esac
