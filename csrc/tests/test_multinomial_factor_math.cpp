// factor_columns against dense long-double formulas for the three variants: rows M J for random
// bases in random layouts, M^T M = Sigma (cholesky, sqrt) and M = L~ (paper) with an expanded
// identity basis, W-column blocks against single columns, and finite results for logits of
// magnitude up to 1e8 with C up to 1000.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "check.h"
#include "vkdnw_fast/multinomial_factor_math.h"

using vkdnw_fast::FactorProblem;
using vkdnw_fast::FactorVariant;
using vkdnw_fast::factor_columns;
using vkdnw_fast::factor_rows;

namespace {

using Rng = std::mt19937_64;
using Real = long double;
using Matrix = std::vector<std::vector<Real>>;  // [row][column]

const char* name(FactorVariant v) {
  return v == FactorVariant::cholesky ? "cholesky" : v == FactorVariant::sqrt ? "sqrt" : "paper";
}

std::vector<Real> probabilities(const std::vector<Real>& z, Real scale, Real offset) {
  const Real z_max = *std::max_element(z.begin(), z.end());
  Real sum = 0;
  for (Real v : z) sum += std::exp(v - z_max);
  std::vector<Real> p;
  for (Real v : z) p.push_back(scale * std::exp(v - z_max) / sum + offset);
  return p;
}

// The factor M (K x C) from its textbook definition; tail sums are summed directly.
Matrix dense_factor(FactorVariant variant, const std::vector<Real>& p) {
  const int64_t C = static_cast<int64_t>(p.size());
  Matrix M(factor_rows(variant, C), std::vector<Real>(C, 0));
  if (variant == FactorVariant::sqrt) {
    for (int64_t c = 0; c < C; ++c) {
      for (int64_t k = 0; k < C; ++k) M[c][k] = (c == k ? std::sqrt(p[c]) : 0) - std::sqrt(p[c]) * p[k];
    }
  } else if (variant == FactorVariant::cholesky) {
    for (int64_t j = 0; j + 1 < C; ++j) {
      Real q = 0;  // q_j = sum_{i>j} p_i
      for (int64_t i = j + 1; i < C; ++i) q += p[i];
      const Real q_prev = q + p[j];
      if (q == 0 || q_prev == 0) continue;  // d_j = 0: the row vanishes
      const Real sqrt_d = std::sqrt(p[j] * q / q_prev);
      M[j][j] = sqrt_d;
      for (int64_t i = j + 1; i < C; ++i) M[j][i] = -sqrt_d * p[i] / q;
    }
  } else {
    std::vector<Real> q(C), d(C);
    Real cumsum = 0;
    for (int64_t j = 0; j < C; ++j) {
      cumsum += p[j];
      q[j] = j == C - 1 ? 0 : 1 - cumsum;
      d[j] = std::sqrt(p[j] * q[j] / (j == 0 ? 1 : q[j - 1]));
    }
    for (int64_t i = 0; i < C; ++i) {
      M[i][i] = d[i];
      for (int64_t j = 0; j < i; ++j) M[i][j] = q[j] == 0 ? 0 : -p[i] * d[j] / q[j];
    }
  }
  return M;
}

struct Options {
  FactorVariant variant;
  int64_t N, C, P;
  double logit_scale;
  double prob_scale, prob_offset;
  bool identity;  // basis = identity expanded over the batch (P = C, strides (0, C, 1))
};

// Runs factor_columns<T, 16> on blocks of up to 16 columns (the last one partial, as in the CPU
// kernel) and <T, 1> on every column (the CUDA kernel) and compares both with the dense formulas.
template <typename T>
void check_factor(const Options& o, Rng& rng, int trial) {
  const int64_t N = o.N, C = o.C, P = o.identity ? o.C : o.P, K = factor_rows(o.variant, C);
  std::normal_distribution<double> normal;
  // Logits stored transposed, (C, N), so that the class stride is not 1.
  std::vector<T> logits(N * C);
  for (auto& v : logits) v = static_cast<T>(o.logit_scale * normal(rng));
  const int64_t z_n = 1, z_c = N;

  std::vector<T> basis;
  int64_t b_n, b_c, b_p;
  if (o.identity) {
    basis.assign(C * C, T(0));
    for (int64_t c = 0; c < C; ++c) basis[c * C + c] = 1;
    b_n = 0, b_c = C, b_p = 1;
  } else {
    basis.resize(N * C * P);
    for (auto& v : basis) v = static_cast<T>(normal(rng));
    b_n = 1, b_c = N * P, b_p = N;  // (C, P, N) memory order
  }

  FactorProblem<T> pb{};
  pb.logits = logits.data();
  pb.logit_strides[0] = z_n;
  pb.logit_strides[1] = z_c;
  pb.basis = basis.data();
  pb.basis_strides[0] = b_n;
  pb.basis_strides[1] = b_c;
  pb.basis_strides[2] = b_p;
  pb.batch_n = N;
  pb.classes = C;
  pb.cols = P;
  pb.variant = o.variant;
  pb.prob_scale = o.prob_scale;
  pb.prob_offset = o.prob_offset;

  std::vector<T> blocked(N * K * P, std::numeric_limits<T>::quiet_NaN());
  std::vector<T> single(N * K * P, std::numeric_limits<T>::quiet_NaN());
  for (int64_t n = 0; n < N; ++n) {
    pb.out = blocked.data();
    for (int64_t p = 0; p < P; p += 16) factor_columns<T, 16>(pb, n, p, static_cast<int>(std::min<int64_t>(16, P - p)));
    pb.out = single.data();
    for (int64_t p = 0; p < P; ++p) factor_columns<T, 1>(pb, n, p, 1);
  }

  const Real eps = std::numeric_limits<T>::epsilon();
  // Rounding grows with C (the sweeps) and with the logits' size (absolute error of log p).
  const Real rel = eps * (16 * (C + 16) + 4 * std::min(o.logit_scale * 8, 1e4));
  for (int64_t n = 0; n < N; ++n) {
    std::vector<Real> z(C);
    for (int64_t c = 0; c < C; ++c) z[c] = logits[n * z_n + c * z_c];
    const std::vector<Real> p = probabilities(z, o.prob_scale, o.prob_offset);
    const Matrix M = dense_factor(o.variant, p);
    for (int64_t k = 0; k < K; ++k) {
      for (int64_t col = 0; col < P; ++col) {
        Real want = 0, magnitude = 0;
        for (int64_t c = 0; c < C; ++c) {
          const Real term = M[k][c] * static_cast<Real>(basis[n * b_n + c * b_c + col * b_p]);
          want += term;
          magnitude += std::fabs(term);
        }
        if (o.variant == FactorVariant::sqrt) {
          // The kernel forms J_k - sum_c p_c J_c, whose rounding is relative to its parts even
          // where they cancel (p peaked); the dense coefficient sqrt(p_k)(1 - p_k) hides that.
          Real parts = std::fabs(static_cast<Real>(basis[n * b_n + k * b_c + col * b_p]));
          for (int64_t c = 0; c < C; ++c) parts += p[c] * std::fabs(static_cast<Real>(basis[n * b_n + c * b_c + col * b_p]));
          magnitude = std::max(magnitude, std::sqrt(p[k]) * parts);
        }
        const T got = blocked[(n * K + k) * P + col];
        const T one = single[(n * K + k) * P + col];
        CHECK(std::isfinite(got), "trial %d %s C=%lld: non-finite %g at n=%lld k=%lld col=%lld", trial,
              name(o.variant), (long long)C, (double)got, (long long)n, (long long)k, (long long)col);
        CHECK(std::fabs(got - want) <= rel * magnitude + 32 * std::numeric_limits<T>::min(),
              "trial %d %s %s C=%lld scale=%g: n=%lld row %lld col %lld got %.17g want %.17Lg (magnitude %.3Lg)",
              trial, sizeof(T) == 4 ? "float" : "double", name(o.variant), (long long)C, o.logit_scale,
              (long long)n, (long long)k, (long long)col, (double)got, want, magnitude);
        CHECK(std::fabs(got - one) <= 4 * eps * (magnitude + std::fabs(want)) + std::numeric_limits<T>::min(),
              "trial %d %s: W=16 block %.17g differs from single column %.17g", trial, name(o.variant),
              (double)got, (double)one);
      }
    }
    // With the identity basis the output is M itself: M^T M must be Sigma = diag(p) - p p^T.
    if (o.identity && o.variant != FactorVariant::paper && sizeof(T) == 8) {
      Real worst = 0;
      for (int64_t a = 0; a < C; ++a) {
        for (int64_t b = 0; b < C; ++b) {
          Real s = 0;
          for (int64_t k = 0; k < K; ++k) s += Real(blocked[(n * K + k) * P + a]) * Real(blocked[(n * K + k) * P + b]);
          const Real sigma = (a == b ? p[a] : 0) - p[a] * p[b];
          worst = std::max(worst, std::fabs(s - sigma));
        }
      }
      CHECK(worst <= 1e-12L, "trial %d %s C=%lld scale=%g: |M^T M - Sigma| = %.3Lg", trial, name(o.variant),
            (long long)C, o.logit_scale, worst);
    }
  }
}

// The authors' float16 probability constants for C classes: scale fp16(1 - fp16(0.05)), offset
// fp16(fp16(0.05) / C), as twins.probability_constants computes them; exact values for C = 10, 100.
void fp16_constants(int64_t C, double* scale, double* offset) {
  *scale = 0.9501953125;
  *offset = C == 10 ? 0.00499725341796875 : 0.000499725341796875;
}

}  // namespace

int main() {
  Rng rng(1234);
  const FactorVariant variants[] = {FactorVariant::cholesky, FactorVariant::sqrt, FactorVariant::paper};
  int trial = 0;
  for (FactorVariant v : variants) {
    for (int64_t C : {2, 3, 10, 37, 100}) {
      for (double logit_scale : {0.01, 1.0, 10.0, 300.0}) {
        for (bool identity : {false, true}) {
          for (int smoothing = 0; smoothing < 2; ++smoothing) {
            // The paper variant is ill-conditioned where q = 1 - cumsum(p) cancels: keep its
            // dense comparison to moderate logits, where q stays well above rounding.
            if (v == FactorVariant::paper && logit_scale > 1) continue;
            Options o{v, 3, C, identity ? C : 21, logit_scale, 1.0, 0.0, identity};
            if (smoothing) {
              if (v == FactorVariant::paper && (C == 10 || C == 100)) {
                fp16_constants(C, &o.prob_scale, &o.prob_offset);
              } else {
                o.prob_scale = 0.95;
                o.prob_offset = 0.05 / C;
              }
            }
            check_factor<double>(o, rng, trial++);
            if (v != FactorVariant::paper || C <= 10) check_factor<float>(o, rng, trial++);
          }
        }
      }
    }
  }
  // C = 1000 with random columns, and logits of magnitude 1e8 (probabilities underflow to exact
  // zeros, the long-double oracle sees the same) for the stable variants.
  for (FactorVariant v : {FactorVariant::cholesky, FactorVariant::sqrt}) {
    for (int64_t C : {2, 10, 1000}) {
      for (double logit_scale : {1.0, 1e4, 1e8}) {
        for (int smoothing = 0; smoothing < 2; ++smoothing) {
          Options o{v, 2, C, 5, logit_scale, smoothing ? 0.95 : 1.0, smoothing ? 0.05 / C : 0.0, false};
          check_factor<double>(o, rng, trial++);
          check_factor<float>(o, rng, trial++);
          if (C <= 10) {
            o.identity = true;
            check_factor<double>(o, rng, trial++);
          }
        }
      }
    }
  }
  // The paper variant with the authors' constants stays finite for saturated logits.
  for (int64_t C : {10, 100}) {
    for (double logit_scale : {1e4, 1e8}) {
      Options o{FactorVariant::paper, 4, C, 7, logit_scale, 0, 0, false};
      fp16_constants(C, &o.prob_scale, &o.prob_offset);
      check_factor<double>(o, rng, trial++);
    }
  }
  return TEST_MAIN_RESULT("test_multinomial_factor_math");
}
