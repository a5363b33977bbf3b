#!/usr/bin/env bash
# Long runs outlive a session only through git: runs/ is not tracked, and a new session starts from a fresh
# clone. A checkpoint is an unfinished evaluation run's spec and records, committed in the published layout.
#   bench/checkpoint.sh save RUN_DIR...   RUN_DIR (under runs/) -> bench/checkpoints/<its path under runs/>/:
#                                         run.json and results.jsonl.gz (not its lock)
#   bench/checkpoint.sh restore           each checkpoint back into runs/, where the run there holds fewer
#                                         records; the run's own command then resumes it
#   bench/checkpoint.sh drop RUN_DIR...   remove the checkpoints of runs that have been published
# Settings (for the tests): RUNS (default runs), CHECKPOINTS (default bench/checkpoints).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs}
CHECKPOINTS=${CHECKPOINTS:-bench/checkpoints}

records() { if [ -f "$1" ]; then wc -l < "$1"; else echo 0; fi; }

# The path of a run directory under $RUNS, or an error naming it.
under_runs() {
    local run=${1%/}
    case "$run" in
        "$RUNS"/*) [ -f "$run/run.json" ] || { echo "$run: not a run directory (no run.json)" >&2; exit 1; }
                   echo "${run#"$RUNS"/}" ;;
        *) echo "$run: not under $RUNS/" >&2; exit 1 ;;
    esac
}

case "${1:-}" in
    save)
        shift
        for run in "$@"; do
            path=$(under_runs "$run")
            if [ "$(records "$RUNS/$path/results.jsonl")" = 0 ]; then
                echo "$RUNS/$path: no records yet, nothing saved"; continue
            fi
            mkdir -p "$CHECKPOINTS/$path"
            cp "$RUNS/$path/run.json" "$CHECKPOINTS/$path/run.json"
            gzip -9 -n -c "$RUNS/$path/results.jsonl" > "$CHECKPOINTS/$path/results.jsonl.gz"
            echo "$RUNS/$path: $(records "$RUNS/$path/results.jsonl") records saved in $CHECKPOINTS/$path"
        done ;;
    restore)
        find "$CHECKPOINTS" -name run.json 2>/dev/null | sort | while read -r spec; do
            path=${spec#"$CHECKPOINTS"/}; path=${path%/run.json}
            saved=$(gzip -dc "$CHECKPOINTS/$path/results.jsonl.gz" | wc -l)
            here=$(records "$RUNS/$path/results.jsonl")
            if [ "$here" -ge "$saved" ]; then
                echo "$RUNS/$path: keeps its $here records (the checkpoint has $saved)"; continue
            fi
            mkdir -p "$RUNS/$path"
            cp "$spec" "$RUNS/$path/run.json"
            gzip -dc "$CHECKPOINTS/$path/results.jsonl.gz" > "$RUNS/$path/results.jsonl"
            echo "$RUNS/$path: $saved records restored"
        done ;;
    drop)
        shift
        for run in "$@"; do
            run=${run%/}; path=${run#"$RUNS"/}
            [ -d "$CHECKPOINTS/$path" ] || { echo "$CHECKPOINTS/$path: no such checkpoint" >&2; exit 1; }
            rm -r "${CHECKPOINTS:?}/$path"
            echo "$CHECKPOINTS/$path dropped"
        done ;;
    *) echo "usage: $0 save RUN_DIR... | restore | drop RUN_DIR..." >&2; exit 2 ;;
esac
