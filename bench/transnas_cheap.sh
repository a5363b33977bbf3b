#!/usr/bin/env bash
# TransNAS-Bench-101: the label-free proxies that cost about a second of one core per network at the
# benchmark's 256x256 (README, "TransNAS-Bench-101"), on a seeded 500-architecture sample of each space,
# for every task.
#   bench/transnas_cheap.sh run      score (resumable: run it again after an interruption)
#   bench/transnas_cheap.sh publish  bench/results/tnb/<space>_<task>_cheap500/: scores, metrics.json, table.txt
# Settings: SPACES (default both), TASKS (default all seven), LIMIT (default 500), WORKERS (default 1),
# DEVICE (default cpu). nDCG@k: 122 of 500 micro cells, 154 of 500 macro layouts. One network costs 1.5-5 s
# of one core here (the dense decoders most): 15-40 minutes a space and task. MeCo_opt is left out of macro
# jigsaw (bench/transnas_common.sh says why).
set -euo pipefail
cd "$(dirname "$0")/.."

TASKS=${TASKS:-class_scene class_object jigsaw room_layout segmentsemantic normal autoencoder}
LIMIT=${LIMIT:-500}
PROXIES=flops,params,l2_norm,synflow,meco_opt
NAME=cheap
source bench/transnas_common.sh
