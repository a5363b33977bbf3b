// Schema, argument checks and Meta (shape-only) kernel of vkdnw_fast::multinomial_factor.

#include "multinomial_factor.h"

#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cmath>
#include <cstdio>

namespace vkdnw_fast {

FactorVariant check_factor_args(const at::Tensor& logits, const at::Tensor& basis, std::string_view variant,
                                double prob_scale, double prob_offset) {
  FactorVariant v;
  if (variant == "cholesky") {
    v = FactorVariant::cholesky;
  } else if (variant == "sqrt") {
    v = FactorVariant::sqrt;
  } else if (variant == "paper") {
    v = FactorVariant::paper;
  } else {
    TORCH_CHECK_VALUE(false, "unknown multinomial factor variant '", variant,
                      "'; variants are ('cholesky', 'sqrt', 'paper')");
  }
  TORCH_CHECK_VALUE(logits.dim() == 2 && basis.dim() == 3 && basis.size(0) == logits.size(0) &&
                        basis.size(1) == logits.size(1),
                    "multinomial_factor: logits must be (N, C) and basis (N, C, P), got ", logits.sizes(), " and ",
                    basis.sizes());
  TORCH_CHECK_VALUE(logits.size(1) >= 2, "multinomial_factor: needs at least 2 classes, got C=", logits.size(1));
  TORCH_CHECK_VALUE(logits.scalar_type() == basis.scalar_type() &&
                        (logits.scalar_type() == at::kFloat || logits.scalar_type() == at::kDouble),
                    "multinomial_factor: logits and basis must both be float32 or float64, got ", logits.scalar_type(),
                    " and ", basis.scalar_type());
  TORCH_CHECK_VALUE(logits.device() == basis.device(), "multinomial_factor: logits and basis must be on one device, got ",
                    logits.device(), " and ", basis.device());
  TORCH_CHECK_VALUE(prob_scale > 0.0 && prob_offset >= 0.0,
                    "multinomial_factor: need prob_scale > 0 and prob_offset >= 0, got ", prob_scale, ", ", prob_offset);
  const double total = prob_scale + static_cast<double>(logits.size(1)) * prob_offset;
  if (v != FactorVariant::paper && !(std::abs(total - 1.0) <= 1e-9)) {
    char sum[32];
    std::snprintf(sum, sizeof(sum), "%.17g", total);
    TORCH_CHECK_VALUE(false, "multinomial_factor: variant '", variant, "' needs probabilities summing to 1, these sum to ",
                      sum, " (only 'paper' accepts that)");
  }
  return v;
}

at::Tensor factor_output(const at::Tensor& logits, const at::Tensor& basis, FactorVariant variant) {
  return at::empty({basis.size(0), factor_rows(variant, basis.size(1)), basis.size(2)}, logits.options());
}

namespace {

at::Tensor multinomial_factor_meta(const at::Tensor& logits, const at::Tensor& basis, std::string_view variant,
                                   double prob_scale, double prob_offset) {
  return factor_output(logits, basis, check_factor_args(logits, basis, variant, prob_scale, prob_offset));
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(vkdnw_fast, m) {
  m.def("multinomial_factor(Tensor logits, Tensor basis, str variant, float prob_scale, float prob_offset) -> Tensor");
}

TORCH_LIBRARY_IMPL(vkdnw_fast, Meta, m) { m.impl("multinomial_factor", &multinomial_factor_meta); }

}  // namespace vkdnw_fast
