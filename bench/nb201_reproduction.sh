#!/usr/bin/env bash
# The NAS-Bench-201 reproduction (README, "Reproducing the paper's Table I").
#   bench/nb201_reproduction.sh run      score (resumable: run it again after an interruption)
#   bench/nb201_reproduction.sh publish  copy the finished seeds to bench/results/nb201/<dataset>/, draw
#                                        bench/results/nb201/bars.png from every published dataset
# Settings: WORKERS (default 1), LIMIT (unique-set sample size, default 1000; 9444 = the whole set),
# SEEDS (default 5), NDCG_K (default: 1000 scaled to the sample, 1000 * LIMIT / 9444), DATASETS
# (default all three; e.g. DATASETS=cifar100 to run or publish one of them).
set -euo pipefail
cd "$(dirname "$0")/.."

WORKERS=${WORKERS:-1}
LIMIT=${LIMIT:-1000}
SEEDS=${SEEDS:-5}
NDCG_K=${NDCG_K:-$(( (1000 * LIMIT + 4722) / 9444 ))}
PROXIES=vkdnw_single,vkdnw,aleph,jacov,expressivity,progressivity,trainability,flops,naswot,synflow
PROXIES=$PROXIES,fim_q1,fim_q2,fim_q3,fim_q4,fim_q5,fim_q6,fim_q7,fim_q8,fim_q9
DATASETS=${DATASETS:-cifar10 cifar100 ImageNet16-120}
declare -A RUN_DIR=([cifar10]=runs/nb201_cifar10 [cifar100]=runs/nb201_cifar100 [ImageNet16-120]=runs/nb201_imagenet16)

# Seed by seed, every dataset each time (a run extended by a seed scores only that seed), so an
# interrupted run leaves the datasets with the same seeds finished.
run() {
    local seeds dataset
    for seeds in $(seq 1 "$SEEDS"); do
        for dataset in $DATASETS; do
            python -m vkdnw_fast.cli nb201 evaluate --dataset "$dataset" --subset unique --limit "$LIMIT" \
                --sample-seed 0 --seeds "$seeds" --preset paper,exact --proxies "$PROXIES" \
                --workers "$WORKERS" --out "${RUN_DIR[$dataset]}"
        done
    done
}

publish() {
    local dataset
    for dataset in $DATASETS; do
        bench/publish_run.sh "${RUN_DIR[$dataset]}" "bench/results/nb201/$dataset" "$NDCG_K"
    done
    # Every published dataset's rankings at a glance (README), with the command that drew them.
    local published=()
    for dataset in cifar10 cifar100 ImageNet16-120; do
        [ -f "bench/results/nb201/$dataset/metrics.json" ] && published+=("bench/results/nb201/$dataset")
    done
    bench/plot_bars.sh bench/results/nb201/bars.png "${published[@]}"
}

case "${1:-}" in
    run) run ;;
    publish) publish ;;
    *) echo "usage: $0 run|publish" >&2; exit 2 ;;
esac
