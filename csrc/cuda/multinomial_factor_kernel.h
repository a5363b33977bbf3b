#pragma once

// Launchers of the multinomial_factor CUDA kernel (torch-free). `problem` holds device pointers,
// sizes and element strides, and its `out` is contiguous (N, K, P) (see multinomial_factor_math.h).
// Errors surface through cudaGetLastError.

#include <cuda_runtime_api.h>

#include "vkdnw_fast/multinomial_factor_math.h"

namespace vkdnw_fast {

void launch_multinomial_factor(const FactorProblem<float>& problem, cudaStream_t stream);
void launch_multinomial_factor(const FactorProblem<double>& problem, cudaStream_t stream);

}  // namespace vkdnw_fast
