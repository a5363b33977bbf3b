// CPU kernel of vkdnw_fast::binary_gram: pack each row's codes into 64-bit words (rows in parallel), then
// count the common ones of every pair over blocks of words small enough that all rows' block stays in
// cache while each pair reads it (rows of the upper triangle in parallel), and mirror the triangle.

#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../binary_gram.h"

namespace vkdnw_fast {
namespace {

// 128 rows of 256 words (2 KiB each) take 256 KiB: a block of all rows fits a core's L2 cache.
constexpr int64_t kWordBlock = 256;

at::Tensor binary_gram_cpu(const at::Tensor& codes) {
  check_binary_gram_args(codes);
  TORCH_CHECK_VALUE(codes.is_cpu(), "binary_gram: the CPU kernel needs a CPU tensor, got ", codes.device());
  at::Tensor gram = binary_gram_output(codes).zero_();
  const int64_t rows = codes.size(0), units = codes.size(1);
  if (rows == 0 || units == 0) return gram;
  const at::Tensor dense = codes.contiguous();
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(dense.const_data_ptr<bool>());
  const int64_t words = binary_gram_words(units);
  std::vector<uint64_t> packed(static_cast<size_t>(rows * words));
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) binary_gram_pack_row(bytes + i * units, units, packed.data() + i * words);
  });
  int64_t* out = gram.mutable_data_ptr<int64_t>();
  for (int64_t begin = 0; begin < words; begin += kWordBlock) {
    const int64_t end = std::min(words, begin + kWordBlock);
    at::parallel_for(0, rows, 1, [&](int64_t first, int64_t last) {
      for (int64_t i = first; i < last; ++i) binary_gram_row_block(packed.data(), words, rows, i, begin, end, out);
    });
  }
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < i; ++j) out[i * rows + j] = out[j * rows + i];
  }
  return gram;
}

}  // namespace

TORCH_LIBRARY_IMPL(vkdnw_fast, CPU, m) { m.impl("binary_gram", &binary_gram_cpu); }

}  // namespace vkdnw_fast
