#!/usr/bin/env bash
# TransNAS-Bench-101: VKDNW (both presets) with the proxies of the NAS-Bench-201 reproduction, so that VKDNW_agg
# is ranked as in the paper's Table I, on the seeded 100-cell samples of bench/transnas_label_free.sh (the same
# cells: same LIMIT and sample seed), for the classification tasks (README, "TransNAS-Bench-101"); the scores that
# sample's published run holds are taken from it (evaluate --scores-from), so that VKDNW alone is computed.
#   DEVICE=cuda bench/transnas_vkdnw.sh run   score (resumable: run it again after an interruption; a network
#                                             under way resumes at its first missing block of passes)
#   bench/transnas_vkdnw.sh publish           bench/results/tnb/<space>_<task>_vkdnw<LIMIT>/: scores, metrics.json,
#                                             table.txt, bars.png
# Settings: SPACES (default both), TASKS (default class_scene class_object), LIMIT (default 100), WORKERS
# (default 1), DEVICE (default cpu). A GPU run: on one core here the 100 networks of class_scene cost about 18
# core-hours (micro) and 40 (macro, whose sample holds layouts of up to 58 GMACs), class_object more, measured before
# the retained heap, which scores micro cells 1.6x faster here since (bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

PROXIES=vkdnw_single,vkdnw,aleph,jacov,expressivity,progressivity,trainability,flops,naswot,synflow
PROXIES=$PROXIES,fim_q1,fim_q2,fim_q3,fim_q4,fim_q5,fim_q6,fim_q7,fim_q8,fim_q9
PRESETS=paper,exact
NAME=vkdnw
LENDER=label_free
BARS=1
source bench/transnas_common.sh
