# make ctest       build and run the C++ unit tests of the kernel headers (CMake, no torch)
# make cuda-check  compile every CUDA kernel and link the launch harness with nvcc (no GPU needed)

NVCC ?= nvcc
CUDA_GENCODE := -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
NVCC_FLAGS := -std=c++17 -O3 -Icsrc/include -Icsrc/cuda $(CUDA_GENCODE) --Werror all-warnings
CUDA_BUILD := build/cuda_check
CUDA_HEADERS := $(wildcard csrc/include/vkdnw_fast/*.h csrc/cuda/*.h)
CUDA_OBJECTS := $(patsubst csrc/cuda/%.cu,$(CUDA_BUILD)/%.o,$(wildcard csrc/cuda/*.cu))

.PHONY: ctest cuda-check

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
