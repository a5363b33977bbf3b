#!/usr/bin/env bash
# NAS-Bench-101, the bundled 292 cells: the label-free proxies that bench/results/nb101/ (naswot, synflow,
# FLOPs, params, l2_norm) does not have, one seed (README, "NAS-Bench-101").
#   bench/nb101_label_free.sh run      score (resumable: run it again after an interruption)
#   bench/nb101_label_free.sh publish  bench/results/nb101_label_free/: scores, metrics.json, table.txt;
#                                      bars.png: with bench/results/nb101's proxies in one panel
# Settings: WORKERS (default 1), DEVICE (default cpu). VKDNW (about 2.5 minutes a cell and preset here) and
# te_nas_ntk are left to DEVICE=cuda with PROXIES=vkdnw_single,vkdnw,te_nas_ntk.
set -euo pipefail
cd "$(dirname "$0")/.."

WORKERS=${WORKERS:-1}
DEVICE=${DEVICE:-cpu}
PROXIES=${PROXIES:-naswot_128,jacov,expressivity,progressivity,trainability,zen,meco,meco_opt,swap,swap_reg,te_nas_lr}
OUT=${OUT:-runs/nb101_label_free}
PUBLISHED=bench/results/nb101_label_free

case "${1:-}" in
    run)
        python -m vkdnw_fast.cli evaluate --space nb101 --dataset cifar10 --proxies "$PROXIES" --preset exact \
            --seeds 1 --device "$DEVICE" --workers "$WORKERS" --out "$OUT" ;;
    publish)
        bench/publish_run.sh "$OUT" "$PUBLISHED" 1000
        bench/plot_bars.sh "$PUBLISHED/bars.png" "bench/results/nb101+$PUBLISHED" --sort-by spearman ;;
    *) echo "usage: $0 run|publish" >&2; exit 2 ;;
esac
