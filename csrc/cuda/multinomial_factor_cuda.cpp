// CUDA registration of vkdnw_fast::multinomial_factor: checks, allocation and launch on the
// current stream.

#include <ATen/Dispatch_v2.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../multinomial_factor.h"
#include "multinomial_factor_kernel.h"

namespace vkdnw_fast {
namespace {

at::Tensor multinomial_factor_cuda(const at::Tensor& logits, const at::Tensor& basis, std::string_view variant,
                                   double prob_scale, double prob_offset) {
  const FactorVariant v = check_factor_args(logits, basis, variant, prob_scale, prob_offset);
  TORCH_CHECK_VALUE(logits.is_cuda(), "multinomial_factor: the CUDA kernel needs CUDA tensors, got ", logits.device());
  const c10::cuda::CUDAGuard guard(logits.device());
  at::Tensor out = factor_output(logits, basis, v);
  if (out.numel() == 0) return out;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  // check_factor_args lets only float32 and float64 through (a ValueError naming the op and the
  // dtype); the macro picks the launcher for each of them.
  AT_DISPATCH_V2(logits.scalar_type(), "multinomial_factor_cuda", AT_WRAP([&] {
    launch_multinomial_factor(factor_problem<scalar_t>(logits, basis, v, prob_scale, prob_offset, out), stream);
  }), AT_EXPAND(AT_FLOATING_TYPES));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(vkdnw_fast, CUDA, m) { m.impl("multinomial_factor", &multinomial_factor_cuda); }

}  // namespace vkdnw_fast
