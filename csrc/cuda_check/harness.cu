// Torch-free driver of every CUDA launch function. `make cuda-check` only compiles and links it,
// which proves the kernels build for the target architectures without a GPU. Run on a machine
// with a GPU, it also compares each launch with the same header functions evaluated on the host.

#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "multinomial_factor_kernel.h"
#include "sampled_grad_kernel.h"

namespace {

using vkdnw_fast::FactorProblem;
using vkdnw_fast::FactorVariant;
using vkdnw_fast::SampledGradProblem;

int failures = 0;

bool ok(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return true;
  std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(status));
  ++failures;
  return false;
}

template <typename V>
V* to_device(const std::vector<V>& host) {
  V* ptr = nullptr;
  if (!ok(cudaMalloc(&ptr, host.size() * sizeof(V)), "cudaMalloc")) return nullptr;
  ok(cudaMemcpy(ptr, host.data(), host.size() * sizeof(V), cudaMemcpyHostToDevice), "cudaMemcpy to device");
  return ptr;
}

template <typename V>
std::vector<V> to_host(const V* ptr, size_t n) {
  std::vector<V> host(n);
  ok(cudaMemcpy(host.data(), ptr, n * sizeof(V), cudaMemcpyDeviceToHost), "cudaMemcpy to host");
  return host;
}

template <typename T>
void compare(const char* what, const std::vector<T>& got, const std::vector<T>& want, double tol) {
  for (size_t i = 0; i < want.size(); ++i) {
    if (!(std::fabs(double(got[i]) - double(want[i])) <= tol * (1 + std::fabs(double(want[i]))))) {
      std::fprintf(stderr, "%s: element %zu is %.9g on the GPU, %.9g on the host\n", what, i, double(got[i]),
                   double(want[i]));
      ++failures;
      return;
    }
  }
}

double pseudo_random(int i) { return std::sin(12.9898 * i + 78.233); }

// A grouped, strided, padded 3x3 convolution with a bias coordinate, K = 2 cotangents.
template <typename T>
void check_sampled_grad(double tol) {
  const int64_t K = 2, N = 3, C_in = 4, C_out = 6, H = 9, W = 7, OH = 5, OW = 4, P = 4;
  std::vector<T> input(N * C_in * H * W), grad(K * N * C_out * OH * OW);
  for (size_t i = 0; i < input.size(); ++i) input[i] = T(pseudo_random(int(i)));
  for (size_t i = 0; i < grad.size(); ++i) grad[i] = T(pseudo_random(int(i) + 7777));
  const std::vector<int64_t> coords = {0, 1, 2, 0, 5, 0, 1, 1, 3, -1, 0, 0, 4, 1, 0, 2};

  SampledGradProblem<T> pb{};
  pb.input_strides[0] = C_in * H * W;
  pb.input_strides[1] = H * W;
  pb.input_strides[2] = W;
  pb.input_strides[3] = 1;
  pb.grad_strides[0] = N * C_out * OH * OW;
  pb.grad_strides[1] = C_out * OH * OW;
  pb.grad_strides[2] = OH * OW;
  pb.grad_strides[3] = OW;
  pb.grad_strides[4] = 1;
  pb.coord_strides[0] = 4;
  pb.coord_strides[1] = 1;
  pb.spatial_dims = 2;
  pb.batch_k = K;
  pb.batch_n = N;
  pb.num_coords = P;
  pb.in_size[0] = H;
  pb.in_size[1] = W;
  pb.out_size[0] = OH;
  pb.out_size[1] = OW;
  pb.stride[0] = pb.stride[1] = 2;
  pb.padding[0] = pb.padding[1] = 1;
  pb.dilation[0] = pb.dilation[1] = 1;
  pb.in_channels_per_group = C_in / 2;
  pb.out_channels_per_group = C_out / 2;

  std::vector<T> want(K * N * P);
  pb.input = input.data();
  pb.grad_output = grad.data();
  pb.coords = coords.data();
  for (int64_t idx = 0; idx < K * N * P; ++idx) {
    want[idx] = vkdnw_fast::sampled_grad_partial(pb, idx / (N * P), (idx / P) % N, idx % P, 0, 1);
  }

  pb.input = to_device(input);
  pb.grad_output = to_device(grad);
  pb.coords = to_device(coords);
  T* out = to_device(std::vector<T>(want.size(), T(NAN)));
  if (failures) return;
  vkdnw_fast::launch_sampled_grad(pb, out, nullptr);
  if (ok(cudaGetLastError(), "launch_sampled_grad") && ok(cudaDeviceSynchronize(), "sampled_grad kernel")) {
    compare(sizeof(T) == 4 ? "sampled_grad float" : "sampled_grad double", to_host(out, want.size()), want, tol);
  }
  cudaFree(const_cast<T*>(pb.input));
  cudaFree(const_cast<T*>(pb.grad_output));
  cudaFree(const_cast<int64_t*>(pb.coords));
  cudaFree(out);
}

template <typename T>
void check_factor(FactorVariant variant, double prob_scale, double prob_offset, double tol) {
  const int64_t N = 3, C = 10, P = 5;
  const int64_t K = vkdnw_fast::factor_rows(variant, C);
  std::vector<T> logits(N * C), basis(N * C * P);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = T(4 * pseudo_random(int(i) + 99));
  for (size_t i = 0; i < basis.size(); ++i) basis[i] = T(pseudo_random(int(i) + 555));

  FactorProblem<T> pb{};
  pb.logit_strides[0] = C;
  pb.logit_strides[1] = 1;
  pb.basis_strides[0] = C * P;
  pb.basis_strides[1] = P;
  pb.basis_strides[2] = 1;
  pb.batch_n = N;
  pb.classes = C;
  pb.cols = P;
  pb.variant = variant;
  pb.prob_scale = prob_scale;
  pb.prob_offset = prob_offset;

  std::vector<T> want(N * K * P);
  pb.logits = logits.data();
  pb.basis = basis.data();
  pb.out = want.data();
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t p = 0; p < P; ++p) vkdnw_fast::factor_columns<T, 1>(pb, n, p, 1);
  }

  pb.logits = to_device(logits);
  pb.basis = to_device(basis);
  pb.out = to_device(std::vector<T>(want.size(), T(NAN)));
  if (failures) return;
  vkdnw_fast::launch_multinomial_factor(pb, nullptr);
  if (ok(cudaGetLastError(), "launch_multinomial_factor") && ok(cudaDeviceSynchronize(), "multinomial_factor kernel")) {
    compare(sizeof(T) == 4 ? "multinomial_factor float" : "multinomial_factor double", to_host(pb.out, want.size()),
            want, tol);
  }
  cudaFree(const_cast<T*>(pb.logits));
  cudaFree(const_cast<T*>(pb.basis));
  cudaFree(pb.out);
}

}  // namespace

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("harness: no CUDA device; the kernels compiled and linked\n");
    return 0;
  }
  check_sampled_grad<float>(1e-5);
  check_sampled_grad<double>(1e-13);
  for (FactorVariant v : {FactorVariant::cholesky, FactorVariant::sqrt}) {
    check_factor<float>(v, 0.95, 0.005, 1e-5);
    check_factor<double>(v, 1.0, 0.0, 1e-13);
  }
  check_factor<float>(FactorVariant::paper, 0.9501953125, 0.00499725341796875, 1e-4);
  check_factor<double>(FactorVariant::paper, 1.0, 0.0, 1e-12);
  std::printf("harness: %s\n", failures ? "FAILED" : "GPU results match the host");
  return failures ? 1 : 0;
}
