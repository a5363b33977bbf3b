#!/usr/bin/env bash
# TransNAS-Bench-101: the label-free proxies that cost about a second of one core per network at the
# benchmark's 256x256 (README, "TransNAS-Bench-101"), on a seeded 500-architecture sample of each space,
# for every task.
#   bench/transnas_cheap.sh run      score (resumable: run it again after an interruption)
#   bench/transnas_cheap.sh publish  bench/results/tnb/<space>_<task>_cheap500/: scores, metrics.json, table.txt
# Settings: SPACES (default both), TASKS (default all seven), LIMIT (default 500), WORKERS (default 1),
# DEVICE (default cpu). nDCG@k takes k as the top share of NAS-Bench-201's nDCG@1000 of 9,444 cells
# (122 of 500 micro cells, 154 of 500 macro layouts). One network costs 1.5-5 s of one core here
# (the dense decoders most): 15-40 minutes a space and task.
set -euo pipefail
cd "$(dirname "$0")/.."

SPACES=${SPACES:-tnb_micro tnb_macro}
TASKS=${TASKS:-class_scene class_object jigsaw room_layout segmentsemantic normal autoencoder}
LIMIT=${LIMIT:-500}
WORKERS=${WORKERS:-1}
DEVICE=${DEVICE:-cpu}
PROXIES=flops,params,l2_norm,synflow,meco_opt
declare -A SPACE_SIZE=([tnb_micro]=4096 [tnb_macro]=3256)

# MeCo runs one sample in training mode: where a macro layout reduces a 64x64 jigsaw tile to 1x1 before
# a BatchNorm, that BatchNorm has one value per channel and is undefined (the authors' code fails there
# too), so MeCo_opt would exclude those layouts from every ranking of the task; it is left out there.
proxies_for() {
    if [ "$1:$2" = tnb_macro:jigsaw ]; then echo "${PROXIES%,meco_opt}"; else echo "$PROXIES"; fi
}

run() {
    local space task
    for space in $SPACES; do
        for task in $TASKS; do
            python -m vkdnw_fast.cli evaluate --space "$space" --task "$task" --limit "$LIMIT" --sample-seed 0 \
                --seeds 1 --proxies "$(proxies_for "$space" "$task")" --device "$DEVICE" --workers "$WORKERS" \
                --out "runs/tnb/${space}_${task}_cheap$LIMIT"
        done
    done
}

publish() {
    local space task
    for space in $SPACES; do
        for task in $TASKS; do
            bench/publish_run.sh "runs/tnb/${space}_${task}_cheap$LIMIT" "bench/results/tnb/${space}_${task}_cheap$LIMIT" \
                $(( (1000 * LIMIT + ${SPACE_SIZE[$space]} / 2) / ${SPACE_SIZE[$space]} ))
        done
    done
}

case "${1:-}" in
    run) run ;;
    publish) publish ;;
    *) echo "usage: $0 run|publish" >&2; exit 2 ;;
esac
