// CPU kernel of vkdnw_fast::sampled_grad: one output (k, n, p) per iteration of a parallel loop,
// reading the inputs in place whatever their strides.

#include <ATen/Dispatch_v2.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "../sampled_grad.h"

namespace vkdnw_fast {
namespace {

// Multiply-adds per parallel task; calls are small and frequent, so most run on one thread.
constexpr int64_t kGrainWork = 32768;

template <typename T>
void sampled_grad_cpu_loop(const SampledGradProblem<T>& pb, T* out) {
  const int64_t n_count = pb.batch_n, p_count = pb.num_coords;
  const int64_t total = pb.batch_k * n_count * p_count;
  const int64_t positions = std::max<int64_t>(pb.out_size[0] * pb.out_size[1], 1);
  at::parallel_for(0, total, std::max<int64_t>(1, kGrainWork / positions), [&](int64_t begin, int64_t end) {
    for (int64_t idx = begin; idx < end; ++idx) {
      const int64_t p = idx % p_count, kn = idx / p_count;
      out[idx] = sampled_grad_partial(pb, kn / n_count, kn % n_count, p, 0, 1);
    }
  });
}

at::Tensor sampled_grad_cpu(const at::Tensor& input, const at::Tensor& grad_output, const at::Tensor& coords,
                            at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const int64_t d = check_sampled_grad_shapes(input, grad_output, coords, stride, padding, dilation, groups);
  TORCH_CHECK_VALUE(input.is_cpu() && coords.is_cpu(), "sampled_grad: the CPU kernel needs input, grad_output and "
                    "coords on the CPU, got ", input.device(), " and ", coords.device());
  check_sampled_grad_coords(coords, grad_output.size(-(d + 1)), input.size(1) / groups);
  at::Tensor out = sampled_grad_output(input, grad_output, coords);
  if (out.numel() == 0) return out;
  // check_sampled_grad_shapes lets only float32 and float64 through (a ValueError naming the op
  // and the dtype); the macro instantiates the kernel for each of them.
  AT_DISPATCH_V2(input.scalar_type(), "sampled_grad_cpu", AT_WRAP([&] {
    sampled_grad_cpu_loop(sampled_grad_problem<scalar_t>(input, grad_output, coords, stride, padding, dilation, groups),
                          out.mutable_data_ptr<scalar_t>());
  }), AT_EXPAND(AT_FLOATING_TYPES));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(vkdnw_fast, CPU, m) { m.impl("sampled_grad", &sampled_grad_cpu); }

}  // namespace vkdnw_fast
