#!/usr/bin/env bash
# The standing GPU check, as one command for a session that has a CUDA machine: build the CUDA extension in
# place against the machine's own torch, run the CUDA tests (and the CPU op's argument errors, whose messages a
# second libstdc++ once broke), then NB201 throughput on 2,000 architectures against the torch.func reference,
# and the engine against the floor and torch.func with what time is left. A lease is short (15 minutes of
# device time, the machine's start included; one command at most 10), so the steps share BUDGET seconds
# (default 540): each gets a cap and what the earlier ones left, and the throughput, stopped by its cap, still
# reports what it measured. Everything it writes goes to $OUT (default runs/gpu_check): device.txt, build.log,
# tests.log, throughput.log, throughput_nb201_cuda.json, engine.log, engine_cuda.json
#
#   OUT=runs/gpu_check bash bench/gpu_check.sh      (the device tool: timeout_s 570, carry .whl if needed)
#
# Copy the JSON files into bench/results/ (their names say the device) and commit them. Building and the
# budget: bench/gpu_common.sh.
set -uo pipefail
OUT=${OUT:-runs/gpu_check}
source "$(dirname "$0")/gpu_common.sh"
build_extension "$(allow 240 240)" || exit 1
$PYTHON -c "import vkdnw_fast.ops as o; print('backend on cuda:', o.backend('cuda'))"

echo "== CUDA tests"
timeout "$(allow 180 300)" $PYTHON -m pytest tests/test_cuda_ops.py tests/test_cuda_engine.py \
    tests/test_ops.py::test_sampled_grad_argument_errors tests/test_ops.py::test_factor_argument_errors \
    -q -p no:cacheprovider 2>&1 | tee "$OUT/tests.log" | tail -15

echo "== NB201 throughput, 2,000 architectures (VKDNW alone; 20 by the reference too)"
timeout "$(allow 560 10)" $PYTHON -m vkdnw_fast.cli bench throughput --space nb201 --dataset cifar10 --count 2000 \
    --reference-count 20 --without-aggregation --device cuda --out "$OUT/throughput_nb201_cuda.json" \
    > "$OUT/throughput.log" 2>&1
tail -c 1500 "$OUT/throughput.log"

echo "== engine against the floor and torch.func"
timeout "$(allow 120)" $PYTHON bench/bench_engine.py --device cuda --repeats 3 --out "$OUT/engine_cuda.json" \
    > "$OUT/engine.log" 2>&1
tail -25 "$OUT/engine.log"
echo "== done in $SECONDS s"
