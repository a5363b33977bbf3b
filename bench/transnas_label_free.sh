#!/usr/bin/env bash
# TransNAS-Bench-101: every label-free proxy but te_nas_ntk and VKDNW (README, "TransNAS-Bench-101") on a
# seeded sample of each space, for the classification tasks; the cheap five of bench/transnas_cheap.sh
# are scored again so that the sample's table is whole.
#   bench/transnas_label_free.sh run      score (resumable: run it again after an interruption)
#   bench/transnas_label_free.sh publish  bench/results/tnb/<space>_<task>_label_free<LIMIT>/: scores, metrics.json,
#                                         table.txt, bars.png
# Settings: SPACES (default both), TASKS (default class_scene class_object; the others take the proxies that
# apply), LIMIT (default 100), WORKERS (default 1), DEVICE (default cpu). nDCG@k as in transnas_cheap.sh
# (24 of 100 micro cells, 31 of 100 macro layouts). About 45 s of one core a network at 256x256 here.
set -euo pipefail
cd "$(dirname "$0")/.."

SPACES=${SPACES:-tnb_micro tnb_macro}
TASKS=${TASKS:-class_scene class_object}
LIMIT=${LIMIT:-100}
WORKERS=${WORKERS:-1}
DEVICE=${DEVICE:-cpu}
PROXIES=flops,params,l2_norm,synflow,naswot,naswot_128,jacov,expressivity,progressivity,trainability,zen
PROXIES=$PROXIES,meco,meco_opt,swap,swap_reg,te_nas_lr
declare -A SPACE_SIZE=([tnb_micro]=4096 [tnb_macro]=3256)

# As in transnas_cheap.sh: MeCo's one-sample BatchNorm is undefined where a macro layout reduces a jigsaw
# tile to 1x1, so both MeCo proxies are left out of macro jigsaw.
proxies_for() {
    if [ "$1:$2" = tnb_macro:jigsaw ]; then echo "${PROXIES//,meco,meco_opt/}"; else echo "$PROXIES"; fi
}

run() {
    local space task
    for space in $SPACES; do
        for task in $TASKS; do
            python -m vkdnw_fast.cli evaluate --space "$space" --task "$task" --limit "$LIMIT" --sample-seed 0 \
                --seeds 1 --proxies "$(proxies_for "$space" "$task")" --device "$DEVICE" --workers "$WORKERS" \
                --out "runs/tnb/${space}_${task}_label_free$LIMIT"
        done
    done
}

publish() {
    local space task published
    for space in $SPACES; do
        for task in $TASKS; do
            published="bench/results/tnb/${space}_${task}_label_free$LIMIT"
            bench/publish_run.sh "runs/tnb/${space}_${task}_label_free$LIMIT" "$published" \
                $(( (1000 * LIMIT + ${SPACE_SIZE[$space]} / 2) / ${SPACE_SIZE[$space]} ))
            bench/plot_bars.sh "$published/bars.png" "$published" --sort-by spearman
        done
    done
}

case "${1:-}" in
    run) run ;;
    publish) publish ;;
    *) echo "usage: $0 run|publish" >&2; exit 2 ;;
esac
