#!/usr/bin/env bash
# The standing GPU check, as one command for a session that has a CUDA machine (about 8 minutes on an
# H200): build the CUDA extension in place against the machine's own torch, run the CUDA tests, then
# time the engine on the GPU against the floor and the torch.func reference, NB201 throughput on 2,000
# architectures included. Everything it writes goes to $OUT (default runs/gpu_check):
#   device.txt, build.log, tests.log, engine_cuda.json, throughput_nb201_cuda.json
#
#   OUT=runs/gpu_check bash bench/gpu_check.sh
#
# Copy the JSON files into bench/results/ (their names say the device) and commit them.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu_check}
mkdir -p "$OUT"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  $PYTHON -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
  nvcc --version | tail -2; } > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

# In place and without pip: the image's torch stays, nothing is downloaded. One target, the card's own.
arch=$($PYTHON -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")
echo "== build (sm $arch)"
if ! TORCH_CUDA_ARCH_LIST="$arch" MAX_JOBS=$(nproc) $PYTHON setup.py build_ext --inplace > "$OUT/build.log" 2>&1; then
    tail -40 "$OUT/build.log"; exit 1
fi
$PYTHON -c "import vkdnw_fast.ops as o; print('backend on cuda:', o.backend('cuda'))" || exit 1

echo "== CUDA tests"
timeout 240 $PYTHON -m pytest tests/test_cuda_ops.py tests/test_cuda_engine.py -q -p no:cacheprovider -x \
    2>&1 | tee "$OUT/tests.log" | tail -15

echo "== engine against the floor and torch.func"
timeout 150 $PYTHON bench/bench_engine.py --device cuda --repeats 5 --out "$OUT/engine_cuda.json" 2>&1 | tail -25

echo "== NB201 throughput, 2,000 architectures"
timeout 240 $PYTHON -m vkdnw_fast.cli bench throughput --space nb201 --dataset cifar10 --count 2000 \
    --reference-count 20 --device cuda --out "$OUT/throughput_nb201_cuda.json" 2>&1 | tail -20
