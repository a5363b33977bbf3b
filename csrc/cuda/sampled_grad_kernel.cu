// sampled_grad on the GPU: one block per output (k, n, p); its threads stride over the output
// positions (consecutive threads read consecutive positions of a row) and the block sums them.

#include <algorithm>

#include "sampled_grad_kernel.h"

namespace vkdnw_fast {
namespace {

constexpr int kMaxThreads = 256;
constexpr int kWarp = 32;

// Sum over the block (a multiple of 32 threads); the result is valid in thread 0.
template <typename T>
__device__ T block_sum(T v) {
  __shared__ T warp_sums[kMaxThreads / kWarp];
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < static_cast<int>(blockDim.x) / kWarp ? warp_sums[lane] : T(0);
    for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  }
  __syncthreads();  // warp_sums is reused by the block's next output
  return v;
}

template <typename T>
__global__ void sampled_grad_kernel(const SampledGradProblem<T> pb, T* out) {
  const int64_t total = pb.batch_k * pb.batch_n * pb.num_coords;
  for (int64_t idx = blockIdx.x; idx < total; idx += gridDim.x) {
    const int64_t p = idx % pb.num_coords, kn = idx / pb.num_coords;
    const T partial = sampled_grad_partial(pb, kn / pb.batch_n, kn % pb.batch_n, p, threadIdx.x, blockDim.x);
    const T sum = block_sum(partial);
    if (threadIdx.x == 0) out[idx] = sum;
  }
}

template <typename T>
void launch(const SampledGradProblem<T>& pb, T* out, cudaStream_t stream) {
  const int64_t total = pb.batch_k * pb.batch_n * pb.num_coords;
  if (total == 0) return;
  // Small spatial outputs (8x8 late layers) get small blocks, so no thread idles whole rows.
  const int64_t positions = pb.out_size[0] * pb.out_size[1];
  int threads = kWarp;
  while (threads < kMaxThreads && threads < positions) threads *= 2;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(total, int64_t{1} << 30));
  sampled_grad_kernel<T><<<blocks, threads, 0, stream>>>(pb, out);
}

}  // namespace

void launch_sampled_grad(const SampledGradProblem<float>& problem, float* out, cudaStream_t stream) {
  launch(problem, out, stream);
}

void launch_sampled_grad(const SampledGradProblem<double>& problem, double* out, cudaStream_t stream) {
  launch(problem, out, stream);
}

}  // namespace vkdnw_fast
