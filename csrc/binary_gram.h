#pragma once

// Torch-side pieces of binary_gram shared by the Meta and CPU registrations.

#include <ATen/core/Tensor.h>

#include "vkdnw_fast/binary_gram_math.h"

namespace vkdnw_fast {

// Checks the codes with the twin's conditions (ValueError): a 2-d bool tensor (N, U).
void check_binary_gram_args(const at::Tensor& codes);

// (N, N) int64 on codes' device; not initialised.
at::Tensor binary_gram_output(const at::Tensor& codes);

}  // namespace vkdnw_fast
