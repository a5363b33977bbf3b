// CUDA registration of vkdnw_fast::sampled_grad: checks, allocation and launch on the current stream.

#include <ATen/Dispatch_v2.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../sampled_grad.h"
#include "sampled_grad_kernel.h"

namespace vkdnw_fast {
namespace {

at::Tensor sampled_grad_cuda(const at::Tensor& input, const at::Tensor& grad_output, const at::Tensor& coords,
                             at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const int64_t d = check_sampled_grad_shapes(input, grad_output, coords, stride, padding, dilation, groups);
  TORCH_CHECK_VALUE(input.is_cuda(), "sampled_grad: the CUDA kernel needs input and grad_output on a CUDA device, got ",
                    input.device());
  // The values are checked on the host because an out-of-range coordinate would make the kernel
  // read out of bounds; coords on the CPU avoid a device-to-host copy here.
  check_sampled_grad_coords(coords.cpu(), grad_output.size(-(d + 1)), input.size(1) / groups);
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor device_coords = coords.to(input.device());
  at::Tensor out = sampled_grad_output(input, grad_output, coords);
  if (out.numel() == 0) return out;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  // check_sampled_grad_shapes lets only float32 and float64 through (a ValueError naming the op
  // and the dtype); the macro picks the launcher for each of them.
  AT_DISPATCH_V2(input.scalar_type(), "sampled_grad_cuda", AT_WRAP([&] {
    launch_sampled_grad(sampled_grad_problem<scalar_t>(input, grad_output, device_coords, stride, padding, dilation,
                                                       groups),
                        out.mutable_data_ptr<scalar_t>(), stream);
  }), AT_EXPAND(AT_FLOATING_TYPES));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(vkdnw_fast, CUDA, m) { m.impl("sampled_grad", &sampled_grad_cuda); }

}  // namespace vkdnw_fast
