// Schema, argument checks and Meta (shape-only) kernel of vkdnw_fast::binary_gram.

#include "binary_gram.h"

#include <ATen/ops/empty.h>
#include <torch/library.h>

namespace vkdnw_fast {

void check_binary_gram_args(const at::Tensor& codes) {
  TORCH_CHECK_VALUE(codes.dim() == 2 && codes.scalar_type() == at::kBool,
                    "binary_gram: codes must be a 2-d bool tensor (N, U), got ", codes.scalar_type(), " of shape ",
                    codes.sizes());
}

at::Tensor binary_gram_output(const at::Tensor& codes) {
  return at::empty({codes.size(0), codes.size(0)}, codes.options().dtype(at::kLong));
}

namespace {

at::Tensor binary_gram_meta(const at::Tensor& codes) {
  check_binary_gram_args(codes);
  return binary_gram_output(codes);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(vkdnw_fast, m) { m.def("binary_gram(Tensor codes) -> Tensor"); }

TORCH_LIBRARY_IMPL(vkdnw_fast, Meta, m) { m.impl("binary_gram", &binary_gram_meta); }

}  // namespace vkdnw_fast
