#pragma once

// Functions shared by the CPU and CUDA kernels are compiled for both sides by nvcc and as plain
// inline functions by the host compiler.
#ifdef __CUDACC__
#define VKDNW_HD __host__ __device__
#else
#define VKDNW_HD
#endif
