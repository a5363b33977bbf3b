#!/usr/bin/env bash
# Every proxy of the registry that the reproduction (bench/nb201_reproduction.sh) does not score, on
# its 1,000-architecture sample of the unique set (sample seed 0), on the three datasets.
#   bench/nb201_every_proxy.sh run      score (resumable: run it again after an interruption)
#   bench/nb201_every_proxy.sh publish  bench/results/nb201_every_proxy/<dataset>/: scores, metrics.json,
#                                       table.txt (each proxy beside its published figures); bars.png:
#                                       with the reproduction's proxies, every published dataset
# Settings: WORKERS (default 1), SEEDS (default 1), LIMIT (default 1000), DATASETS (default all three),
# DEVICE (default cpu). On this project's 2-core CPU one architecture takes about 3.9 s of an idle core
# (GraSP's double backward is the largest part; 15.6 s with both cores busy elsewhere): about 35 minutes
# a dataset with WORKERS=2 OMP_NUM_THREADS=1. te_nas_ntk (one Jacobian row per sample, 120 s a network
# in bench/results/proxy_times_cpu.json) is left to DEVICE=cuda with PROXIES=te_nas_ntk.
set -euo pipefail
cd "$(dirname "$0")/.."

WORKERS=${WORKERS:-1}
SEEDS=${SEEDS:-1}
LIMIT=${LIMIT:-1000}
DEVICE=${DEVICE:-cpu}
NDCG_K=$(( (1000 * LIMIT + 4722) / 9444 ))
PROXIES=${PROXIES:-grad_norm,snip,grasp,fisher,plain,l2_norm,epe_nas,zen,zico,meco,meco_opt,swap,swap_reg,te_nas_lr,params,naswot_128}
DATASETS=${DATASETS:-cifar10 cifar100 ImageNet16-120}
OUT=${OUT:-runs/nb201_every_proxy}

run() {
    local dataset
    for dataset in $DATASETS; do
        python -m vkdnw_fast.cli nb201 evaluate --dataset "$dataset" --subset unique --limit "$LIMIT" \
            --sample-seed 0 --seeds "$SEEDS" --proxies "$PROXIES" --device "$DEVICE" \
            --workers "$WORKERS" --out "$OUT/$dataset"
    done
}

publish() {
    local dataset
    for dataset in $DATASETS; do
        bench/publish_run.sh "$OUT/$dataset" "bench/results/nb201_every_proxy/$dataset" "$NDCG_K"
    done
    # Every proxy at a glance (README): each published dataset's run joined with the Table I
    # reproduction's on the same sample, best Spearman first, with the command that drew it.
    local panels=()
    for dataset in cifar10 cifar100 ImageNet16-120; do
        [ -f "bench/results/nb201_every_proxy/$dataset/metrics.json" ] && [ -f "bench/results/nb201/$dataset/metrics.json" ] \
            && panels+=("bench/results/nb201/$dataset+bench/results/nb201_every_proxy/$dataset")
    done
    bench/plot_bars.sh bench/results/nb201_every_proxy/bars.png "${panels[@]}" --sort-by spearman
}

case "${1:-}" in
    run) run ;;
    publish) publish ;;
    *) echo "usage: $0 run|publish" >&2; exit 2 ;;
esac
