#pragma once

// Arithmetic of sampled_grad shared by the CPU and CUDA kernels (no torch here):
//   out[k, n, p] = sum_s grad_output[k, n, o, s] * input[n, c(o, i), s * stride - padding + kernel * dilation]
// with out-of-range input positions contributing zero, or sum_s grad_output[k, n, o, s] for a bias
// coordinate (i == -1).

#include <cstdint>

#include "vkdnw_fast/macros.h"

namespace vkdnw_fast {

// One sampled_grad call. 1-d problems are stored as 2-d with a height of 1 (sizes 1, strides 0,
// padding 0, kernel row 0) so that both cases share one code path.
template <typename T>
struct SampledGradProblem {
  const T* input;                // (N, C_in, H_in, W_in)
  int64_t input_strides[4];
  const T* grad_output;          // (K, N, C_out, H_out, W_out)
  int64_t grad_strides[5];
  const int64_t* coords;         // (P, 2 + spatial_dims): o, i, k_1[, k_2]
  int64_t coord_strides[2];
  int spatial_dims;
  int64_t batch_k, batch_n, num_coords;
  int64_t in_size[2], out_size[2];
  int64_t stride[2], padding[2], dilation[2];
  int64_t in_channels_per_group, out_channels_per_group;
};

struct SampledCoord {
  int64_t out_channel;
  int64_t in_channel;  // absolute input channel, or -1 for the bias
  int64_t kernel[2];
};

template <typename T>
VKDNW_HD inline SampledCoord decode_coord(const SampledGradProblem<T>& pb, int64_t p) {
  const int64_t* row = pb.coords + p * pb.coord_strides[0];
  const int64_t col = pb.coord_strides[1];
  SampledCoord c;
  c.out_channel = row[0];
  const int64_t i = row[col];
  c.in_channel = i < 0 ? -1 : (c.out_channel / pb.out_channels_per_group) * pb.in_channels_per_group + i;
  c.kernel[0] = pb.spatial_dims == 2 ? row[2 * col] : 0;
  c.kernel[1] = row[(pb.spatial_dims + 1) * col];
  return c;
}

// Four independent partial sums: the adds no longer wait on each other (the CPU loop is latency
// bound otherwise); the CUDA caller passes n <= 1 per row for large steps, where this is a plain add.
template <typename T>
VKDNW_HD inline T strided_dot(const T* a, int64_t a_step, const T* b, int64_t b_step, int64_t n) {
  T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    s0 += a[j * a_step] * b[j * b_step];
    s1 += a[(j + 1) * a_step] * b[(j + 1) * b_step];
    s2 += a[(j + 2) * a_step] * b[(j + 2) * b_step];
    s3 += a[(j + 3) * a_step] * b[(j + 3) * b_step];
  }
  for (; j < n; ++j) s0 += a[j * a_step] * b[j * b_step];
  return (s0 + s1) + (s2 + s3);
}

template <typename T>
VKDNW_HD inline T strided_sum(const T* a, int64_t a_step, int64_t n) {
  T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    s0 += a[j * a_step];
    s1 += a[(j + 1) * a_step];
    s2 += a[(j + 2) * a_step];
    s3 += a[(j + 3) * a_step];
  }
  for (; j < n; ++j) s0 += a[j * a_step];
  return (s0 + s1) + (s2 + s3);
}

// Smallest j >= 0 with first + j * inc >= 0 (inc > 0).
VKDNW_HD inline int64_t first_nonnegative(int64_t first, int64_t inc) {
  return first >= 0 ? 0 : (-first + inc - 1) / inc;
}

// Number of j >= 0 with first + j * inc <= last (inc > 0).
VKDNW_HD inline int64_t count_not_above(int64_t first, int64_t inc, int64_t last) {
  return first > last ? 0 : (last - first) / inc + 1;
}

// Sum of the terms of out[k, n, p] at the flattened output positions begin, begin + step, ... (the
// CPU passes begin = 0, step = 1; a CUDA thread its lane and the block size). The positions are
// walked row by row; the visited columns of a row and their valid input range depend only on the
// row's first visited column, so they are computed once per distinct start (once in all for
// step 1) and the inner loop has neither bounds checks nor divisions.
template <typename T>
VKDNW_HD inline T sampled_grad_partial(const SampledGradProblem<T>& pb, int64_t k, int64_t n, int64_t p,
                                       int64_t begin, int64_t step) {
  const SampledCoord c = decode_coord(pb, p);
  const int64_t out_h = pb.out_size[0], out_w = pb.out_size[1];
  T acc = 0;
  if (begin >= out_h * out_w) return acc;
  const int64_t* gs = pb.grad_strides;
  const int64_t* xs = pb.input_strides;
  const T* g = pb.grad_output + k * gs[0] + n * gs[1] + c.out_channel * gs[2];
  const bool bias = c.in_channel < 0;
  const T* x = bias ? nullptr : pb.input + n * xs[0] + c.in_channel * xs[1];
  const int64_t off_h = c.kernel[0] * pb.dilation[0] - pb.padding[0];
  const int64_t off_w = c.kernel[1] * pb.dilation[1] - pb.padding[1];
  const int64_t g_inc = step * gs[4];
  const int64_t w_inc = step * pb.stride[1];  // input column advance between visited positions

  int64_t oh = begin / out_w, ow = begin - oh * out_w;
  int64_t row_start = -1, count = 0, lo = 0, hi = 0, first = 0;
  while (oh < out_h) {
    if (ow != row_start) {
      row_start = ow;
      count = step == 1 ? out_w - ow : (out_w - ow + step - 1) / step;  // visited positions in the row
      first = ow * pb.stride[1] + off_w;  // input column of the row's first visited position
      lo = first_nonnegative(first, w_inc);
      hi = count_not_above(first, w_inc, pb.in_size[1] - 1);
      hi = hi < count ? hi : count;
    }
    const T* g_row = g + oh * gs[3] + ow * gs[4];
    if (bias) {
      acc += strided_sum(g_row, g_inc, count);
    } else {
      const int64_t ih = oh * pb.stride[0] + off_h;
      if (ih >= 0 && ih < pb.in_size[0] && lo < hi) {
        acc += strided_dot(g_row + lo * g_inc, g_inc, x + ih * xs[2] + (first + lo * w_inc) * xs[3],
                           w_inc * xs[3], hi - lo);
      }
    }
    // The next visited position is count * step further on, in the next row or beyond.
    ow += count * step - out_w;
    ++oh;
    if (ow >= out_w) {
      oh += ow / out_w;
      ow %= out_w;
    }
  }
  return acc;
}

}  // namespace vkdnw_fast
