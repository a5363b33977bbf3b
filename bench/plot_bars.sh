#!/usr/bin/env bash
# Draw a bars figure of published runs and record the command that drew it beside it (the publish steps'
# shared last step): bench/plot_bars.sh PNG RUN[+RUN] ... [--sort-by METRIC] runs
# `vkdnw-fast plot bars RUN[+RUN] ... --out PNG` and writes that command to PNG's name with .json.
set -euo pipefail
cd "$(dirname "$0")/.."

png=$1
shift
command="plot bars $* --out $png"
python -m vkdnw_fast.cli $command
printf '{"command": "vkdnw-fast %s"}\n' "$command" > "${png%.png}.json"
