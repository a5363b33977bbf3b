// CPU kernel of vkdnw_fast::multinomial_factor: the parallel loop runs over (sample, block of up to
// 64 columns), so the per-class exp/log of the sweeps is shared by the block's columns.

#include <ATen/Dispatch_v2.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "../multinomial_factor.h"

namespace vkdnw_fast {
namespace {

constexpr int64_t kBlock = 64;
// About one exp/log per class and block: a task of this many classes is worth a thread.
constexpr int64_t kGrainClasses = 4096;

template <typename T>
void factor_cpu_loop(const FactorProblem<T>& pb) {
  const int64_t blocks = (pb.cols + kBlock - 1) / kBlock;
  at::parallel_for(0, pb.batch_n * blocks, std::max<int64_t>(1, kGrainClasses / pb.classes),
                   [&](int64_t begin, int64_t end) {
                     for (int64_t unit = begin; unit < end; ++unit) {
                       const int64_t p = (unit % blocks) * kBlock;
                       factor_columns<T, kBlock>(pb, unit / blocks, p, static_cast<int>(std::min(kBlock, pb.cols - p)));
                     }
                   });
}

at::Tensor multinomial_factor_cpu(const at::Tensor& logits, const at::Tensor& basis, std::string_view variant,
                                  double prob_scale, double prob_offset) {
  const FactorVariant v = check_factor_args(logits, basis, variant, prob_scale, prob_offset);
  TORCH_CHECK_VALUE(logits.is_cpu(), "multinomial_factor: the CPU kernel needs CPU tensors, got ", logits.device());
  at::Tensor out = factor_output(logits, basis, v);
  if (out.numel() == 0) return out;
  // check_factor_args lets only float32 and float64 through (a ValueError naming the op and the
  // dtype); the macro instantiates the kernel for each of them.
  AT_DISPATCH_V2(logits.scalar_type(), "multinomial_factor_cpu", AT_WRAP([&] {
    factor_cpu_loop(factor_problem<scalar_t>(logits, basis, v, prob_scale, prob_offset, out));
  }), AT_EXPAND(AT_FLOATING_TYPES));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(vkdnw_fast, CPU, m) { m.impl("multinomial_factor", &multinomial_factor_cpu); }

}  // namespace vkdnw_fast
