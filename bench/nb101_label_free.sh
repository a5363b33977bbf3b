#!/usr/bin/env bash
# NAS-Bench-101, the bundled 292 cells: the label-free proxies that bench/results/nb101/ (naswot, synflow,
# FLOPs, params, l2_norm) does not have, one seed (README, "NAS-Bench-101").
#   bench/nb101_label_free.sh run      score (resumable: run it again after an interruption)
#   bench/nb101_label_free.sh publish  bench/results/nb101_label_free/: scores, metrics.json, table.txt;
#                                      bars.png: with bench/results/nb101's proxies in one panel
# Settings: WORKERS (default 1), DEVICE (default cpu), PROXIES. VKDNW has its own run (bench/nb101_vkdnw.sh);
# te_nas_ntk (64 coupled backward passes a network) is left to DEVICE=cuda PROXIES=te_nas_ntk OUT=another dir.
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
