#pragma once

// Arithmetic of multinomial_factor shared by the CPU and CUDA kernels (no torch here). A factor M
// of Sigma = diag(p) - p p^T, p = prob_scale * softmax(z) + prob_offset, is applied to up to W columns
// of one sample's basis in O(C) sweeps over the classes, with O(W) state and no per-class buffer:
//   cholesky  K = C - 1   row j = sqrt(d_j) (J_j - mu_j)          (L~^T J, Tanabe-Sagae)
//   sqrt      K = C       row c = sqrt(p_c) (J_c - sum_k p_k J_k)  (B J)
//   paper     K = C       L~ J with q = 1 - cumsum(p)              (the authors' code)
// The CUDA kernel handles one column per thread (W = 1); the CPU kernel amortises the per-class
// exp/log over up to W = 64 columns. Each column sees the same operations whatever W is.

#include <math.h>

#include <cstdint>

#include "vkdnw_fast/macros.h"

namespace vkdnw_fast {

enum class FactorVariant : int { cholesky = 0, sqrt = 1, paper = 2 };

VKDNW_HD inline int64_t factor_rows(FactorVariant variant, int64_t classes) {
  return variant == FactorVariant::cholesky ? classes - 1 : classes;
}

// Overloads rather than std:: so that the same call compiles to the float or double intrinsic on
// both sides.
VKDNW_HD inline float fexp(float v) { return ::expf(v); }
VKDNW_HD inline double fexp(double v) { return ::exp(v); }
VKDNW_HD inline float flog(float v) { return ::logf(v); }
VKDNW_HD inline double flog(double v) { return ::log(v); }
VKDNW_HD inline float flog1p(float v) { return ::log1pf(v); }
VKDNW_HD inline double flog1p(double v) { return ::log1p(v); }
VKDNW_HD inline float fsqrt(float v) { return ::sqrtf(v); }
VKDNW_HD inline double fsqrt(double v) { return ::sqrt(v); }

// log(exp(a) + exp(b)) as torch.logaddexp: exact for equal infinities, never exp of a large value.
template <typename T>
VKDNW_HD inline T log_add_exp(T a, T b) {
  if (a == b && (a - a) != (a - a)) return a;  // equal infinities (inf - inf is NaN)
  const T hi = a > b ? a : b;
  const T diff = a > b ? b - a : a - b;
  return hi + flog1p(fexp(diff));
}

// One call: logits (N, C) and basis (N, C, P) of any strides, out contiguous (N, K, P).
template <typename T>
struct FactorProblem {
  const T* logits;
  int64_t logit_strides[2];
  const T* basis;
  int64_t basis_strides[3];
  T* out;
  int64_t batch_n, classes, cols;
  FactorVariant variant;
  double prob_scale, prob_offset;
};

// Per-sample constants of p, from one pass for the max and one for the sum of exp(z - max).
template <typename T>
struct SampleProbs {
  const T* z;
  int64_t z_stride;
  T z_max, inv_sum, log_sum;
  T log_scale, log_offset;
  bool scaled, offset;
  T scale, offset_value;

  // log p_j = log(scale * softmax(z)_j + offset), finite for logits of any magnitude.
  VKDNW_HD T log_prob(int64_t j) const {
    T lp = (z[j * z_stride] - z_max) - log_sum;
    if (scaled) lp += log_scale;
    if (offset) lp = log_add_exp(lp, log_offset);
    return lp;
  }

  // p_j evaluated directly as the authors' code does.
  VKDNW_HD T prob(int64_t j) const {
    return scale * (fexp(z[j * z_stride] - z_max) * inv_sum) + offset_value;
  }
};

template <typename T>
VKDNW_HD inline SampleProbs<T> sample_probs(const FactorProblem<T>& pb, int64_t n) {
  SampleProbs<T> sp;
  sp.z = pb.logits + n * pb.logit_strides[0];
  sp.z_stride = pb.logit_strides[1];
  T z_max = sp.z[0];
  for (int64_t j = 1; j < pb.classes; ++j) {
    const T v = sp.z[j * sp.z_stride];
    z_max = (v > z_max || v != v) ? v : z_max;
  }
  T sum = 0;
  for (int64_t j = 0; j < pb.classes; ++j) sum += fexp(sp.z[j * sp.z_stride] - z_max);
  sp.z_max = z_max;
  sp.inv_sum = T(1) / sum;
  sp.log_sum = flog(sum);
  sp.scaled = pb.prob_scale != 1.0;
  sp.offset = pb.prob_offset > 0.0;
  sp.log_scale = static_cast<T>(::log(pb.prob_scale));
  sp.log_offset = sp.offset ? static_cast<T>(::log(pb.prob_offset)) : T(0);
  sp.scale = static_cast<T>(pb.prob_scale);
  sp.offset_value = static_cast<T>(pb.prob_offset);
  return sp;
}

// Columns p0 .. p0 + cols - 1 of sample n, cols <= W (W = 1 makes the column loops disappear).
template <typename T, int W>
VKDNW_HD inline void factor_columns(const FactorProblem<T>& pb, int64_t n, int64_t p0, int cols) {
  const int m = W == 1 ? 1 : cols;
  const SampleProbs<T> sp = sample_probs(pb, n);
  const int64_t C = pb.classes;
  const int64_t bc = pb.basis_strides[1], bp = pb.basis_strides[2];
  const T* J = pb.basis + n * pb.basis_strides[0] + p0 * bp;  // J[j * bc + c * bp]
  T* out = pb.out + n * factor_rows(pb.variant, C) * pb.cols + p0;  // out[j * oc + c]
  const int64_t oc = pb.cols;
  T carry[W];  // cholesky: tail mean mu_j; sqrt: mean; paper: prefix sum

  if (pb.variant == FactorVariant::cholesky) {
    // Reverse sweep. lse_gt = log q_j = log sum_{i>j} p_i; the tail mean is carried as the convex
    // combination mu_{j-1} = a_j J_j + (1 - a_j) mu_j, a_j = p_j / q_{j-1}, so it stays exact and
    // finite however peaked p is.
    T lse_gt = sp.log_prob(C - 1);
    for (int c = 0; c < m; ++c) carry[c] = J[(C - 1) * bc + c * bp];
    for (int64_t j = C - 2; j >= 0; --j) {
      const T lp = sp.log_prob(j);
      const T lse_j = log_add_exp(lp, lse_gt);
      const T sqrt_d = fexp(T(0.5) * ((lp + lse_gt) - lse_j));
      const T a = fexp(lp - lse_j);
      const T b = fexp(lse_gt - lse_j);
      for (int c = 0; c < m; ++c) {
        const T Jj = J[j * bc + c * bp];
        out[j * oc + c] = sqrt_d * (Jj - carry[c]);
        carry[c] = a * Jj + b * carry[c];
      }
      lse_gt = lse_j;
    }
  } else if (pb.variant == FactorVariant::sqrt) {
    for (int c = 0; c < m; ++c) carry[c] = 0;
    for (int64_t j = 0; j < C; ++j) {
      const T pj = fexp(sp.log_prob(j));
      for (int c = 0; c < m; ++c) carry[c] += pj * J[j * bc + c * bp];
    }
    for (int64_t j = 0; j < C; ++j) {
      const T sqrt_p = fexp(T(0.5) * sp.log_prob(j));
      for (int c = 0; c < m; ++c) out[j * oc + c] = sqrt_p * (J[j * bc + c * bp] - carry[c]);
    }
  } else {
    // Forward prefix scan: row j = d_j J_j - p_j sum_{i<j} (d_i / q_i) J_i, with the authors'
    // q_j = 1 - cumsum(p)_j, q_{C-1} := 0, q_{-1} := 1 and a zero coefficient where q_j == 0.
    for (int c = 0; c < m; ++c) carry[c] = 0;
    T cumsum = 0, q_prev = 1;
    for (int64_t j = 0; j < C; ++j) {
      const T pj = sp.prob(j);
      cumsum += pj;
      const T q = j == C - 1 ? T(0) : T(1) - cumsum;
      const T d = fsqrt(pj * q / q_prev);
      const T w = q != T(0) ? d / q : T(0);
      for (int c = 0; c < m; ++c) {
        const T Jj = J[j * bc + c * bp];
        out[j * oc + c] = d * Jj - pj * carry[c];
        carry[c] += w * Jj;
      }
      q_prev = q;
    }
  }
}

}  // namespace vkdnw_fast
