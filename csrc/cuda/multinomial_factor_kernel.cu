// multinomial_factor on the GPU: one thread per output column (n, p); consecutive threads take
// consecutive columns, so reads of the basis and writes of the output coalesce.

#include <algorithm>

#include "multinomial_factor_kernel.h"

namespace vkdnw_fast {
namespace {

constexpr int kThreads = 128;

template <typename T>
__global__ void multinomial_factor_kernel(const FactorProblem<T> pb) {
  const int64_t total = pb.batch_n * pb.cols;
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += step) {
    factor_columns<T, 1>(pb, idx / pb.cols, idx % pb.cols, 1);
  }
}

template <typename T>
void launch(const FactorProblem<T>& pb, cudaStream_t stream) {
  const int64_t total = pb.batch_n * pb.cols;
  if (total == 0) return;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((total + kThreads - 1) / kThreads, int64_t{1} << 30));
  multinomial_factor_kernel<T><<<blocks, kThreads, 0, stream>>>(pb);
}

}  // namespace

void launch_multinomial_factor(const FactorProblem<float>& problem, cudaStream_t stream) { launch(problem, stream); }

void launch_multinomial_factor(const FactorProblem<double>& problem, cudaStream_t stream) { launch(problem, stream); }

}  // namespace vkdnw_fast
