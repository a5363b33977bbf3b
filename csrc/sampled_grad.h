#pragma once

// Torch-side pieces of sampled_grad shared by the Meta, CPU and CUDA registrations: argument
// checks (the twin's conditions and messages, raised as ValueError) and the view of the tensors
// the kernels work on.

#include <ATen/core/Tensor.h>

#include "vkdnw_fast/sampled_grad_math.h"

namespace vkdnw_fast {

// Checks everything that does not read coords' values; returns the number of spatial dims.
int64_t check_sampled_grad_shapes(const at::Tensor& input, const at::Tensor& grad_output, const at::Tensor& coords,
                                  at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                                  int64_t groups);

// Checks coords' values (a CPU tensor) against the channel counts.
void check_sampled_grad_coords(const at::Tensor& coords, int64_t out_channels, int64_t in_channels_per_group);

// (N, P) or (K, N, P), contiguous, grad_output's dtype and device; not initialised.
at::Tensor sampled_grad_output(const at::Tensor& input, const at::Tensor& grad_output, const at::Tensor& coords);

// Sizes and element strides of checked arguments; `coords` must live where the kernel reads it.
template <typename T>
SampledGradProblem<T> sampled_grad_problem(const at::Tensor& input, const at::Tensor& grad_output,
                                           const at::Tensor& coords, at::IntArrayRef stride, at::IntArrayRef padding,
                                           at::IntArrayRef dilation, int64_t groups) {
  const int64_t d = input.dim() - 2;
  const bool batched = grad_output.dim() == d + 3;
  const int64_t lead = batched ? 1 : 0;  // grad_output dims before N
  SampledGradProblem<T> pb{};
  pb.input = input.const_data_ptr<T>();
  pb.grad_output = grad_output.const_data_ptr<T>();
  pb.coords = coords.const_data_ptr<int64_t>();
  pb.spatial_dims = static_cast<int>(d);
  pb.batch_k = batched ? grad_output.size(0) : 1;
  pb.batch_n = input.size(0);
  pb.num_coords = coords.size(0);
  pb.input_strides[0] = input.stride(0);
  pb.input_strides[1] = input.stride(1);
  pb.grad_strides[0] = batched ? grad_output.stride(0) : 0;
  pb.grad_strides[1] = grad_output.stride(lead);
  pb.grad_strides[2] = grad_output.stride(lead + 1);
  pb.coord_strides[0] = coords.stride(0);
  pb.coord_strides[1] = coords.stride(1);
  // 1-d is 2-d with a height of 1.
  const int64_t first = 2 - d;  // first of the two spatial slots that is real
  for (int64_t a = 0; a < 2; ++a) {
    const bool real = a >= first;
    const int64_t axis = a - first;
    pb.in_size[a] = real ? input.size(2 + axis) : 1;
    pb.out_size[a] = real ? grad_output.size(lead + 2 + axis) : 1;
    pb.input_strides[2 + a] = real ? input.stride(2 + axis) : 0;
    pb.grad_strides[3 + a] = real ? grad_output.stride(lead + 2 + axis) : 0;
    pb.stride[a] = real ? stride[axis] : 1;
    pb.padding[a] = real ? padding[axis] : 0;
    pb.dilation[a] = real ? dilation[axis] : 1;
  }
  pb.in_channels_per_group = input.size(1) / groups;
  pb.out_channels_per_group = grad_output.size(lead + 1) / groups;
  return pb;
}

}  // namespace vkdnw_fast
