#pragma once

// Torch-side pieces of multinomial_factor shared by the Meta, CPU and CUDA registrations.

#include <ATen/core/Tensor.h>

#include <string_view>

#include "vkdnw_fast/multinomial_factor_math.h"

namespace vkdnw_fast {

// Parses the variant and checks the arguments with the twin's conditions (ValueError).
FactorVariant check_factor_args(const at::Tensor& logits, const at::Tensor& basis, std::string_view variant,
                                double prob_scale, double prob_offset);

// (N, K, P), contiguous, logits' dtype and device; not initialised.
at::Tensor factor_output(const at::Tensor& logits, const at::Tensor& basis, FactorVariant variant);

template <typename T>
FactorProblem<T> factor_problem(const at::Tensor& logits, const at::Tensor& basis, FactorVariant variant,
                                double prob_scale, double prob_offset, at::Tensor& out) {
  FactorProblem<T> pb{};
  pb.logits = logits.const_data_ptr<T>();
  pb.logit_strides[0] = logits.stride(0);
  pb.logit_strides[1] = logits.stride(1);
  pb.basis = basis.const_data_ptr<T>();
  for (int a = 0; a < 3; ++a) pb.basis_strides[a] = basis.stride(a);
  pb.out = out.mutable_data_ptr<T>();
  pb.batch_n = basis.size(0);
  pb.classes = basis.size(1);
  pb.cols = basis.size(2);
  pb.variant = variant;
  pb.prob_scale = prob_scale;
  pb.prob_offset = prob_offset;
  return pb;
}

}  // namespace vkdnw_fast
