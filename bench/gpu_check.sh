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
# Where the machine's setuptools is older than pyproject.toml needs (77), a wheel under .whl/ (carried) is put
# first on the path. Copy the JSON files into bench/results/ (their names say the device) and commit them.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu_check}
BUDGET=${BUDGET:-540}
mkdir -p "$OUT"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}
deadline=$((SECONDS + BUDGET))
# The seconds a step may take: its cap, or what is left before the deadline less what later steps need.
allow() {
    local left=$((deadline - SECONDS - ${2:-0}))
    left=$(( left < 1 ? 1 : left ))
    echo $(( left < $1 ? left : $1 ))
}

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  $PYTHON -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
  $PYTHON -c "import setuptools; print('setuptools', setuptools.__version__)"
  nvcc --version | tail -2; g++ --version | head -1; echo "cores: $(nproc)"; } > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

if ! $PYTHON -c "import setuptools, sys; sys.exit(int(setuptools.__version__.split('.')[0]) < 77)" \
        && compgen -G ".whl/setuptools-*.whl" > /dev/null; then
    $PYTHON -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/setuptools-*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PYTHONPATH
fi

# In place and without pip: the image's torch stays, nothing is downloaded. One target, the card's own.
arch=$($PYTHON -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")
echo "== build (sm $arch)"
begun=$SECONDS
if ! TORCH_CUDA_ARCH_LIST="$arch" MAX_JOBS=$(nproc) timeout "$(allow 240 240)" \
        $PYTHON setup.py build_ext --inplace > "$OUT/build.log" 2>&1; then
    tail -40 "$OUT/build.log"; exit 1
fi
echo "built in $((SECONDS - begun)) s; $(ldd vkdnw_fast/_C*.so | grep -o 'libstdc++[^ ]*' || echo 'libstdc++ linked statically')"
$PYTHON -c "import vkdnw_fast.ops as o; print('backend on cuda:', o.backend('cuda'))" || exit 1

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
