// sampled_grad_partial against a brute-force convolution weight gradient, on random sizes, strides,
// padding, dilation, groups, bias coordinates and memory layouts, for every way the CPU (step 1)
// and CUDA (step = block size) kernels split the output positions.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "check.h"
#include "vkdnw_fast/sampled_grad_math.h"

using vkdnw_fast::SampledGradProblem;
using vkdnw_fast::sampled_grad_partial;

namespace {

using Rng = std::mt19937_64;

int64_t uniform_int(Rng& rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

// A tensor in random memory layout: dimension order shuffled, gaps between dimensions and
// (optionally) stride-0 expanded dimensions.
template <typename V>
struct Strided {
  std::vector<V> data;
  std::vector<int64_t> strides;
  V at(const std::vector<int64_t>& index) const {
    int64_t offset = 0;
    for (size_t d = 0; d < index.size(); ++d) offset += index[d] * strides[d];
    return data[offset];
  }
  V& at(const std::vector<int64_t>& index) {
    int64_t offset = 0;
    for (size_t d = 0; d < index.size(); ++d) offset += index[d] * strides[d];
    return data[offset];
  }
};

template <typename V>
Strided<V> random_layout(const std::vector<int64_t>& sizes, Rng& rng, bool allow_expand) {
  Strided<V> t;
  t.strides.assign(sizes.size(), 0);
  std::vector<size_t> order(sizes.size());
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  int64_t running = 1;
  for (size_t d : order) {
    if (allow_expand && uniform_int(rng, 0, 5) == 0) continue;  // stride 0
    t.strides[d] = running;
    running = running * sizes[d] + uniform_int(rng, 0, 2);
  }
  int64_t extent = 1;
  for (size_t d = 0; d < sizes.size(); ++d) extent += (std::max<int64_t>(sizes[d], 1) - 1) * t.strides[d];
  t.data.resize(extent);
  std::uniform_real_distribution<double> value(-1.0, 1.0);
  for (auto& v : t.data) v = static_cast<V>(value(rng));
  return t;
}

struct Case {
  int dims;
  int64_t K, N, C_in, C_out, groups, P;
  int64_t in_size[2], out_size[2], stride[2], padding[2], dilation[2], kernel[2];
};

Case random_case(Rng& rng) {
  Case c{};
  c.dims = static_cast<int>(uniform_int(rng, 1, 2));
  c.K = uniform_int(rng, 1, 3);
  c.N = uniform_int(rng, 1, 3);
  c.groups = uniform_int(rng, 1, 3);
  const bool depthwise = uniform_int(rng, 0, 3) == 0;
  c.C_in = c.groups * (depthwise ? 1 : uniform_int(rng, 1, 3));
  c.C_out = c.groups * uniform_int(rng, 1, 3);
  c.P = uniform_int(rng, 1, 6);
  // Occasionally grad_output and kernel indices that no real convolution would produce, so that
  // every bounds check is exercised, and empty spatial outputs.
  const bool loose = uniform_int(rng, 0, 4) == 0;
  for (int a = 0; a < 2; ++a) {
    const bool flat = c.dims == 1 && a == 0;
    c.in_size[a] = flat ? 1 : uniform_int(rng, 1, 12);
    c.stride[a] = flat ? 1 : uniform_int(rng, 1, 3);
    c.padding[a] = flat ? 0 : uniform_int(rng, 0, 3);
    c.dilation[a] = flat ? 1 : uniform_int(rng, 1, 3);
    c.kernel[a] = flat ? 1 : uniform_int(rng, 1, 4);
    const int64_t span = c.in_size[a] + 2 * c.padding[a] - c.dilation[a] * (c.kernel[a] - 1) - 1;
    c.out_size[a] = flat ? 1 : loose ? uniform_int(rng, 0, 9) : (span < 0 ? 0 : span / c.stride[a] + 1);
    if (loose && !flat) c.kernel[a] += 3;
  }
  return c;
}

template <typename T>
void check_case(const Case& c, Rng& rng, int trial) {
  const int d = c.dims;
  std::vector<int64_t> in_sizes = {c.N, c.C_in}, grad_sizes = {c.K, c.N, c.C_out};
  for (int a = 2 - d; a < 2; ++a) {
    in_sizes.push_back(c.in_size[a]);
    grad_sizes.push_back(c.out_size[a]);
  }
  auto input = random_layout<T>(in_sizes, rng, true);
  auto grad = random_layout<T>(grad_sizes, rng, true);
  auto coords = random_layout<int64_t>({c.P, 2 + d}, rng, false);
  const int64_t cin_pg = c.C_in / c.groups, cout_pg = c.C_out / c.groups;
  for (int64_t p = 0; p < c.P; ++p) {
    coords.at({p, 0}) = uniform_int(rng, 0, c.C_out - 1);
    coords.at({p, 1}) = uniform_int(rng, 0, 4) == 0 ? -1 : uniform_int(rng, 0, cin_pg - 1);
    for (int a = 0; a < d; ++a) coords.at({p, 2 + a}) = uniform_int(rng, 0, c.kernel[2 - d + a] - 1);
  }

  SampledGradProblem<T> pb{};
  pb.input = input.data.data();
  pb.grad_output = grad.data.data();
  pb.coords = coords.data.data();
  pb.input_strides[0] = input.strides[0];
  pb.input_strides[1] = input.strides[1];
  pb.input_strides[2] = d == 2 ? input.strides[2] : 0;
  pb.input_strides[3] = input.strides[1 + d];
  for (int a = 0; a < 3; ++a) pb.grad_strides[a] = grad.strides[a];
  pb.grad_strides[3] = d == 2 ? grad.strides[3] : 0;
  pb.grad_strides[4] = grad.strides[2 + d];
  pb.coord_strides[0] = coords.strides[0];
  pb.coord_strides[1] = coords.strides[1];
  pb.spatial_dims = d;
  pb.batch_k = c.K;
  pb.batch_n = c.N;
  pb.num_coords = c.P;
  for (int a = 0; a < 2; ++a) {
    pb.in_size[a] = c.in_size[a];
    pb.out_size[a] = c.out_size[a];
    pb.stride[a] = c.stride[a];
    pb.padding[a] = c.padding[a];
    pb.dilation[a] = c.dilation[a];
  }
  pb.in_channels_per_group = cin_pg;
  pb.out_channels_per_group = cout_pg;

  const T eps = std::numeric_limits<T>::epsilon();
  for (int64_t k = 0; k < c.K; ++k) {
    for (int64_t n = 0; n < c.N; ++n) {
      for (int64_t p = 0; p < c.P; ++p) {
        // Brute force straight from the definition, in long double.
        const int64_t o = coords.at({p, 0}), i = coords.at({p, 1});
        int64_t kern[2] = {0, 0};
        for (int a = 0; a < d; ++a) kern[2 - d + a] = coords.at({p, 2 + a});
        long double expect = 0, magnitude = 0;
        int64_t terms = 0;
        for (int64_t oh = 0; oh < c.out_size[0]; ++oh) {
          for (int64_t ow = 0; ow < c.out_size[1]; ++ow) {
            std::vector<int64_t> gi = {k, n, o};
            if (d == 2) gi.push_back(oh);
            gi.push_back(ow);
            const long double gv = grad.at(gi);
            long double term = gv;
            if (i >= 0) {
              const int64_t ih = oh * c.stride[0] - c.padding[0] + kern[0] * c.dilation[0];
              const int64_t iw = ow * c.stride[1] - c.padding[1] + kern[1] * c.dilation[1];
              if (ih < 0 || ih >= c.in_size[0] || iw < 0 || iw >= c.in_size[1]) continue;
              std::vector<int64_t> xi = {n, (o / cout_pg) * cin_pg + i};
              if (d == 2) xi.push_back(ih);
              xi.push_back(iw);
              term *= input.at(xi);
            }
            expect += term;
            magnitude += std::fabs(term);
            ++terms;
          }
        }
        // Rounding bound of a sum of `terms` products; a wrong or missing term is far larger.
        const long double tol = (terms + 2) * eps * magnitude + 1e-30L;
        for (int64_t step : {1, 2, 3, 7, 32, 256}) {
          long double got = 0;
          for (int64_t begin = 0; begin < step; ++begin) got += sampled_grad_partial(pb, k, n, p, begin, step);
          CHECK(std::fabs(got - expect) <= tol, "trial %d (%s) d=%d k=%lld n=%lld p=%lld step=%lld: got %.17Lg, want %.17Lg",
                trial, sizeof(T) == 4 ? "float" : "double", d, (long long)k, (long long)n, (long long)p,
                (long long)step, got, expect);
        }
      }
    }
  }
}

// A case small enough to check by hand: 1-d, input [1, 2, 3, 4], grad_output [1, 10, 100] of a
// kernel-2 convolution with padding 1; W[0, 0, 1] sees x at s - 1 + 1 = s, W[0, 0, 0] sees x at s - 1.
void check_by_hand() {
  const double x[4] = {1, 2, 3, 4};
  const double g[3] = {1, 10, 100};
  const int64_t coords[3][3] = {{0, 0, 1}, {0, 0, 0}, {0, -1, 0}};
  SampledGradProblem<double> pb{};
  pb.input = x;
  pb.input_strides[3] = 1;
  pb.grad_output = g;
  pb.grad_strides[4] = 1;
  pb.coords = &coords[0][0];
  pb.coord_strides[0] = 3;
  pb.coord_strides[1] = 1;
  pb.spatial_dims = 1;
  pb.batch_k = pb.batch_n = 1;
  pb.num_coords = 3;
  pb.in_size[0] = 1;
  pb.in_size[1] = 4;
  pb.out_size[0] = 1;
  pb.out_size[1] = 3;
  pb.stride[0] = pb.stride[1] = pb.dilation[0] = pb.dilation[1] = 1;
  pb.padding[1] = 1;
  pb.in_channels_per_group = pb.out_channels_per_group = 1;
  CHECK(sampled_grad_partial(pb, 0, 0, 0, 0, 1) == 1 * 1 + 10 * 2 + 100 * 3, "weight [0,0,1]");
  CHECK(sampled_grad_partial(pb, 0, 0, 1, 0, 1) == 10 * 1 + 100 * 2, "weight [0,0,0] with padding");
  CHECK(sampled_grad_partial(pb, 0, 0, 2, 0, 1) == 111, "bias");
}

}  // namespace

int main() {
  check_by_hand();
  Rng rng(20250611);
  for (int trial = 0; trial < 400; ++trial) {
    const Case c = random_case(rng);
    if (trial % 2) {
      check_case<float>(c, rng, trial);
    } else {
      check_case<double>(c, rng, trial);
    }
  }
  return TEST_MAIN_RESULT("test_sampled_grad_math");
}
