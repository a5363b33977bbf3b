// Schema, argument checks and Meta (shape-only) kernel of vkdnw_fast::sampled_grad.

#include "sampled_grad.h"

#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <utility>
#include <vector>

namespace vkdnw_fast {

int64_t check_sampled_grad_shapes(const at::Tensor& input, const at::Tensor& grad_output, const at::Tensor& coords,
                                  at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                                  int64_t groups) {
  const int64_t d = input.dim() - 2;
  TORCH_CHECK_VALUE(d == 1 || d == 2, "sampled_grad: input must be (N, C_in, L) or (N, C_in, H, W), got shape ",
                    input.sizes());
  TORCH_CHECK_VALUE(grad_output.dim() == d + 2 || grad_output.dim() == d + 3, "sampled_grad: grad_output must have ",
                    d + 2, " or ", d + 3, " dims for a ", d, "-d input, got shape ", grad_output.sizes());
  const int64_t n = grad_output.size(-(d + 2));
  TORCH_CHECK_VALUE(n == input.size(0), "sampled_grad: batch of grad_output (", n, ") differs from input (",
                    input.size(0), ")");
  TORCH_CHECK_VALUE(input.scalar_type() == grad_output.scalar_type() && input.device() == grad_output.device(),
                    "sampled_grad: input and grad_output need the same dtype and device, got ", input.scalar_type(),
                    "/", input.device(), " and ", grad_output.scalar_type(), "/", grad_output.device());
  TORCH_CHECK_VALUE(input.scalar_type() == at::kFloat || input.scalar_type() == at::kDouble,
                    "sampled_grad: the compiled kernels take float32 or float64, got ", input.scalar_type());
  TORCH_CHECK_VALUE(coords.scalar_type() == at::kLong && coords.dim() == 2 && coords.size(1) == 2 + d,
                    "sampled_grad: coords must be int64 of shape (P, ", 2 + d, "), got ", coords.scalar_type(), " ",
                    coords.sizes());
  const std::pair<const char*, at::IntArrayRef> lists[] = {{"stride", stride}, {"padding", padding}, {"dilation", dilation}};
  for (const auto& [name, value] : lists) {
    TORCH_CHECK_VALUE(static_cast<int64_t>(value.size()) == d, "sampled_grad: ", name, " must have ", d,
                      " entries, got ", value);
  }
  for (int64_t a = 0; a < d; ++a) {
    TORCH_CHECK_VALUE(stride[a] >= 1 && dilation[a] >= 1 && padding[a] >= 0, "sampled_grad: invalid stride ", stride,
                      ", padding ", padding, " or dilation ", dilation);
  }
  const int64_t c_in = input.size(1), c_out = grad_output.size(-(d + 1));
  TORCH_CHECK_VALUE(groups >= 1 && c_in % groups == 0 && c_out % groups == 0, "sampled_grad: groups=", groups,
                    " must divide C_in=", c_in, " and C_out=", c_out);
  return d;
}

void check_sampled_grad_coords(const at::Tensor& coords, int64_t out_channels, int64_t in_channels_per_group) {
  const auto rows = coords.accessor<int64_t, 2>();
  std::vector<int64_t> row(rows.size(1));
  for (int64_t p = 0; p < rows.size(0); ++p) {
    bool negative_kernel = false;
    for (int64_t a = 0; a < rows.size(1); ++a) {
      row[a] = rows[p][a];
      negative_kernel = negative_kernel || (a >= 2 && row[a] < 0);
    }
    const int64_t o = row[0], i = row[1];
    TORCH_CHECK_VALUE(o >= 0 && o < out_channels && i >= -1 && i < in_channels_per_group,
                      "sampled_grad: coords out of range for C_out=", out_channels, ", C_in/groups=",
                      in_channels_per_group, ": row ", p, " is ", at::IntArrayRef(row));
    TORCH_CHECK_VALUE(i < 0 || !negative_kernel, "sampled_grad: negative kernel index in coords: row ", p, " is ",
                      at::IntArrayRef(row));
  }
}

at::Tensor sampled_grad_output(const at::Tensor& input, const at::Tensor& grad_output, const at::Tensor& coords) {
  const int64_t n = input.size(0), p = coords.size(0);
  if (grad_output.dim() == input.dim() + 1) return at::empty({grad_output.size(0), n, p}, grad_output.options());
  return at::empty({n, p}, grad_output.options());
}

namespace {

at::Tensor sampled_grad_meta(const at::Tensor& input, const at::Tensor& grad_output, const at::Tensor& coords,
                             at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  check_sampled_grad_shapes(input, grad_output, coords, stride, padding, dilation, groups);
  return sampled_grad_output(input, grad_output, coords);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(vkdnw_fast, m) {
  m.def(
      "sampled_grad(Tensor input, Tensor grad_output, Tensor coords, int[] stride, int[] padding, int[] dilation, "
      "int groups) -> Tensor");
}

TORCH_LIBRARY_IMPL(vkdnw_fast, Meta, m) { m.impl("sampled_grad", &sampled_grad_meta); }

}  // namespace vkdnw_fast
