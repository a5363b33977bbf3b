#!/usr/bin/env bash
# TransNAS-Bench-101: every label-free proxy but te_nas_ntk and VKDNW (README, "TransNAS-Bench-101") on a
# seeded sample of each space, for the classification tasks; the cheap five of bench/transnas_cheap.sh
# are scored again so that the sample's table is whole.
#   bench/transnas_label_free.sh run      score (resumable: run it again after an interruption)
#   bench/transnas_label_free.sh publish  bench/results/tnb/<space>_<task>_label_free<LIMIT>/: scores, metrics.json,
#                                         table.txt, bars.png
# Settings: SPACES (default both), TASKS (default class_scene class_object; the others take the proxies that
# apply, bench/transnas_common.sh says which), LIMIT (default 100), WORKERS (default 1), DEVICE
# (default cpu), PROXIES and NAME (the run's name: te_nas_ntk, 64 coupled backward passes a network at 256x256,
# is a GPU run of its own: DEVICE=cuda PROXIES=te_nas_ntk NAME=te_nas_ntk). nDCG@24 of 100 micro cells, @31 of
# 100 macro layouts. 34 s of one core a network here (micro); macro: median 52 s, the largest layouts (up to
# 58 GMACs) many minutes and up to 22 GiB each (segmentsemantic): the worker pool starts a layout beside another
# only where their predicted memory fits (backends.PoolBackend).
set -euo pipefail
cd "$(dirname "$0")/.."

PROXIES=${PROXIES:-flops,params,l2_norm,synflow,naswot,naswot_128,jacov,expressivity,progressivity,trainability,\
zen,meco,meco_opt,swap,swap_reg,te_nas_lr}
NAME=${NAME:-label_free}
BARS=1
source bench/transnas_common.sh
