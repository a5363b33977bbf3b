#!/usr/bin/env bash
# TransNAS-Bench-101's long scoring on a lent CUDA machine, one device call at a time, resumable across calls and
# sessions through bench/checkpoints/: VKDNW on the seeded 100-cell samples (bench/transnas_vkdnw.sh) on the GPU,
# then naswot_128 on the whole micro space for the searches (bench/transnas_search.sh score), and, beside them on
# the machine's CPU cores, the label-free runs not yet published (bench/transnas_label_free.sh).
# Both stop themselves before BUDGET seconds are spent (a stopped run keeps every cell it finished, and the cells
# its workers finish in the minute it is given to end), and every run is then saved to $OUT/checkpoints/, laid out
# as bench/checkpoints/:
#
#   OUT=runs/gpu_transnas bash bench/gpu_transnas.sh    (the device tool: timeout_s = BUDGET + 30)
#   cp -r <files_at>/checkpoints/. bench/checkpoints/   (here, then commit; bench/checkpoint.sh restore resumes)
#
# Run bench/gpu_check.sh first in a session: its CUDA tests say whether the GPU's scores can be trusted, and the
# extension it built is reused here while the machine stays warm. Settings: BUDGET (default 540), GPU_SPACES
# and GPU_TASKS (default both spaces, class_scene class_object), GPU_WORKERS (default 1, in process: the path a
# GPU has run; more share the GPU from spawned processes, overlapping one's CPU work with another's kernels, not yet
# tried on a GPU), CPU_SPACES and CPU_TASKS (default tnb_macro, all seven tasks), CPU_WORKERS (default the cores
# less 4, at most 16; a macro layout needs under 1 to 22 GiB, and the pool runs as many at a time as the memory holds; 0
# leaves the CPU runs out).
set -uo pipefail
OUT=${OUT:-runs/gpu_transnas}
source "$(dirname "$0")/gpu_common.sh"
GPU_SPACES=${GPU_SPACES:-tnb_micro tnb_macro}
GPU_TASKS=${GPU_TASKS:-class_scene class_object}
CPU_SPACES=${CPU_SPACES:-tnb_macro}
CPU_TASKS=${CPU_TASKS:-class_scene class_object jigsaw room_layout segmentsemantic normal autoencoder}
cores=$(nproc)
CPU_WORKERS=${CPU_WORKERS:-$(( cores - 4 < 0 ? 0 : (cores - 4 > 16 ? 16 : cores - 4) ))}
SAVE_SECONDS=20  # kept back to save the checkpoints

build_extension "$(allow 240 120)" || exit 1
bench/checkpoint.sh restore

# Each run ends before the deadline: SIGTERM stops an evaluation's queue, its workers' cells under way are kept
# as they finish, and KILL follows a minute later; a cell's record is written when it finishes.
stop_in=$(allow 100000 "$((SAVE_SECONDS + 90))")
echo "== scoring for $stop_in s: VKDNW, then the micro space for the searches, on cuda; label-free on $CPU_WORKERS cores"
# The searches' scoring (naswot_128 on all 4,096 micro cells a task) once VKDNW's samples are done.
SPACES=$GPU_SPACES TASKS=$GPU_TASKS DEVICE=cuda WORKERS=${GPU_WORKERS:-1} OMP_NUM_THREADS=1 \
    timeout --kill-after=60 "$stop_in" \
    bash -c 'bash bench/transnas_vkdnw.sh run && TASKS="class_scene class_object" bash bench/transnas_search.sh score' \
    > "$OUT/vkdnw.log" 2>&1 &
gpu_job=$!
if [ "$CPU_WORKERS" -gt 0 ]; then
    SPACES=$CPU_SPACES TASKS=$CPU_TASKS DEVICE=cpu WORKERS=$CPU_WORKERS OMP_NUM_THREADS=1 \
        timeout --kill-after=60 "$stop_in" bash bench/transnas_label_free.sh run > "$OUT/label_free.log" 2>&1 &
    cpu_job=$!
    wait "$cpu_job"
fi
wait "$gpu_job"
# Each timeout leads a process group of its own. The scripts end at the signal; their evaluations, in the same
# group, end at their current cell (a worker pool takes a minute to close), or are killed before the saving.
jobs_left() { kill -0 -- "-$gpu_job" 2>/dev/null || { [ -n "${cpu_job:-}" ] && kill -0 -- "-$cpu_job" 2>/dev/null; }; }
while jobs_left && [ "$SECONDS" -lt $((deadline - SAVE_SECONDS)) ]; do sleep 2; done
kill -9 -- "-$gpu_job" ${cpu_job:+"-$cpu_job"} 2>/dev/null
for log in "$OUT"/vkdnw.log "$OUT"/label_free.log; do
    [ -f "$log" ] && { echo "== $log"; tr '\r' '\n' < "$log" | grep -v '^\s*$' | tail -6; }
done

echo "== saving"
find runs/tnb -name run.json 2>/dev/null | while read -r spec; do
    CHECKPOINTS="$OUT/checkpoints" bench/checkpoint.sh save "$(dirname "$spec")"
done
echo "== done in $SECONDS s"
