#!/usr/bin/env bash
# Publish a finished evaluation run: bench/publish_run.sh SRC DST NDCG_K copies SRC's
# run.json and compressed scores to DST and writes DST/metrics.json and DST/table.txt over the seeds every
# architecture of SRC has finished (the reproduction scripts' publish step).
set -euo pipefail
cd "$(dirname "$0")/.."

src=$1 dst=$2 ndcg_k=$3
seeds=$(python -c 'import sys; from vkdnw_fast.evaluation import finished_seeds as f; print(",".join(map(str, f(sys.argv[1]))))' "$src")
[ -n "$seeds" ] || { echo "$src: no seed finished for every architecture yet" >&2; exit 1; }
mkdir -p "$dst"
cp "$src/run.json" "$dst/run.json"
gzip -9 -n -c "$src/results.jsonl" > "$dst/results.jsonl.gz"
python -m vkdnw_fast.cli report "$dst" --ndcg-k "$ndcg_k" --only-seeds "$seeds" --json > "$dst/metrics.json"
python -m vkdnw_fast.cli report "$dst" --ndcg-k "$ndcg_k" --only-seeds "$seeds" | tee "$dst/table.txt"
