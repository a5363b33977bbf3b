# make run         install, then the main job: a short NAS-Bench-201 evaluation on the bundled data
# make test        install, then every test (pytest; it runs ctest and cuda-check too)
# make install     torch only if none is importable (keeps a user's CPU or CUDA torch), ninja only if
#                  none is on the PATH (torch's extension builder compiles in parallel with it, one file
#                  at a time without), then this package in editable mode, its extension built against
#                  that torch
# make ctest       build and run the C++ unit tests of the kernel headers (CMake, no torch)
# make cuda-check  compile every CUDA kernel and link the launch harness with nvcc (no GPU needed)

PYTHON ?= python3
DEMO_DIR ?= runs/demo

NVCC ?= nvcc
CUDA_GENCODE := -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
NVCC_FLAGS := -std=c++17 -O3 -Icsrc/include -Icsrc/cuda $(CUDA_GENCODE) --Werror all-warnings
CUDA_BUILD := build/cuda_check
CUDA_HEADERS := $(wildcard csrc/include/vkdnw_fast/*.h csrc/cuda/*.h)
CUDA_OBJECTS := $(patsubst csrc/cuda/%.cu,$(CUDA_BUILD)/%.o,$(wildcard csrc/cuda/*.cu))

.PHONY: run test install ctest cuda-check

# pip puts ninja into the Python's scripts folder, which need not be on the PATH (a venv not activated).
SCRIPTS = $(shell $(PYTHON) -c "import sysconfig; print(sysconfig.get_path('scripts'))")

install:
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install torch==2.13.0
	@PATH="$(SCRIPTS):$$PATH" ninja --version >/dev/null 2>&1 || $(PYTHON) -m pip install ninja
	@# Likewise the setuptools that reads pyproject's license field (a fresh venv's may be older).
	@$(PYTHON) -c "import setuptools, sys; sys.exit(int(setuptools.__version__.split('.')[0]) < 77)" 2>/dev/null \
		|| $(PYTHON) -m pip install "setuptools>=77"
	PATH="$(SCRIPTS):$$PATH" $(PYTHON) -m pip install --no-build-isolation -e ".[test]"

run: install
	$(PYTHON) -m vkdnw_fast.cli nb201 evaluate --dataset cifar10 --limit 100 --seeds 1 --workers 2 \
		--preset paper,exact --out $(DEMO_DIR)

test: install
	$(PYTHON) -m pytest

ctest:
	cmake -S . -B build/cmake && cmake --build build/cmake -j2 && ctest --test-dir build/cmake --output-on-failure

cuda-check: $(CUDA_BUILD)/harness

$(CUDA_BUILD)/%.o: csrc/cuda/%.cu $(CUDA_HEADERS)
	@mkdir -p $(@D)
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@

$(CUDA_BUILD)/harness.o: csrc/cuda_check/harness.cu $(CUDA_HEADERS)
	@mkdir -p $(@D)
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@

$(CUDA_BUILD)/harness: $(CUDA_BUILD)/harness.o $(CUDA_OBJECTS)
	$(NVCC) $(CUDA_GENCODE) $^ -o $@
