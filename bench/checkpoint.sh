#!/usr/bin/env bash
# Long runs outlive a session only through git: runs/ is not tracked, and a new session starts from a fresh
# clone. A checkpoint is an unfinished evaluation run's spec and records, committed in the published layout.
#   bench/checkpoint.sh save RUN_DIR...   RUN_DIR (under runs/) -> bench/checkpoints/<its path under runs/>/:
#                                         run.json and results.jsonl.gz (not its lock)
#   bench/checkpoint.sh restore           each checkpoint back into runs/, merged with the run there (its
#                                         records, and the checkpoint's of the cells it lacks: a run
#                                         continued on two machines keeps the work of both); the run's own
#                                         command then resumes it
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
            mkdir -p "$RUNS/$path"
            # The run's lines, then the checkpoint's for the (arch, seed) it lacks; a torn line is dropped.
            python3 - "$RUNS/$path" "$CHECKPOINTS/$path" <<'PY'
import gzip, json, os, shutil, sys
run, saved = sys.argv[1], sys.argv[2]
spec = json.load(open(f"{saved}/run.json"))
if os.path.exists(f"{run}/run.json"):
    mine = json.load(open(f"{run}/run.json"))
    if {k: v for k, v in mine.items() if k != "seeds"} != {k: v for k, v in spec.items() if k != "seeds"}:
        sys.exit(f"{run}: its run.json is another run's than {saved}'s: left alone")
else:
    shutil.copy(f"{saved}/run.json", f"{run}/run.json")
def records(lines):
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        yield (record["arch"], record["seed"]), line.rstrip("\n")
kept = {}
if os.path.exists(f"{run}/results.jsonl"):
    with open(f"{run}/results.jsonl") as handle:
        kept = dict(records(handle))
with gzip.open(f"{saved}/results.jsonl.gz", "rt") as handle:
    added = {key: line for key, line in records(handle) if key not in kept}
with open(f"{run}/results.jsonl", "w") as handle:
    handle.writelines(line + "\n" for line in [*kept.values(), *added.values()])
print(f"{run}: {len(kept)} records kept, {len(added)} restored from the checkpoint")
PY
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
