# What bench/gpu_check.sh and bench/gpu_transnas.sh share (sourced): $OUT, the BUDGET of seconds the steps share
# (a lease is 15 minutes of device time, the machine's start included; one command at most 10), device.txt,
# and the CUDA extension built in place against the machine's own torch (no pip, nothing downloaded). The
# build is skipped where an earlier call on the same warm machine left one that serves CUDA. Where the
# machine's setuptools is older than pyproject.toml needs (77), a wheel under .whl/ (carried) goes first on
# the path.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
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

serves_cuda() { $PYTHON -c "import sys, vkdnw_fast.ops as o; sys.exit(o.backend('cuda') != 'cuda')" 2>/dev/null; }

# $1: the most seconds the build may take.
build_extension() {
    if serves_cuda; then echo "== the extension built by an earlier call serves cuda"; return 0; fi
    if ! $PYTHON -c "import setuptools, sys; sys.exit(int(setuptools.__version__.split('.')[0]) < 77)" \
            && compgen -G ".whl/setuptools-*.whl" > /dev/null; then
        $PYTHON -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/setuptools-*.whl || return 1
        export PYTHONPATH=/tmp/site:$PYTHONPATH
    fi
    # One target, the card's own.
    local arch begun=$SECONDS
    arch=$($PYTHON -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")
    echo "== build (sm $arch)"
    if ! TORCH_CUDA_ARCH_LIST="$arch" MAX_JOBS=$(nproc) timeout "$1" \
            $PYTHON setup.py build_ext --inplace > "$OUT/build.log" 2>&1; then
        tail -40 "$OUT/build.log"; return 1
    fi
    echo "built in $((SECONDS - begun)) s; $(ldd vkdnw_fast/_C*.so | grep -o 'libstdc++[^ ]*' || echo 'libstdc++ linked statically')"
    serves_cuda || { echo "the extension built but does not serve cuda" >&2; return 1; }
}
