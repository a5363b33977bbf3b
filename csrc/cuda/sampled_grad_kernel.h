#pragma once

// Launchers of the sampled_grad CUDA kernel (torch-free). `problem` holds device pointers, sizes and
// element strides (see sampled_grad_math.h); `out` is contiguous (K, N, P) on the same device.
// Errors surface through cudaGetLastError.

#include <cuda_runtime_api.h>

#include "vkdnw_fast/sampled_grad_math.h"

namespace vkdnw_fast {

void launch_sampled_grad(const SampledGradProblem<float>& problem, float* out, cudaStream_t stream);
void launch_sampled_grad(const SampledGradProblem<double>& problem, double* out, cudaStream_t stream);

}  // namespace vkdnw_fast
