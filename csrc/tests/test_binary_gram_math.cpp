// binary_gram_math.h against brute-force counts: the 8-byte packing for all 256 patterns, rows of every
// length around the word and byte boundaries, and the Gram in every way the CPU kernel splits the words.

#include <cstdint>
#include <random>
#include <vector>

#include "check.h"
#include "vkdnw_fast/binary_gram_math.h"

using namespace vkdnw_fast;

static void test_pack8_is_a_bijection_in_order() {
  for (int pattern = 0; pattern < 256; ++pattern) {
    uint8_t bytes[8];
    for (int k = 0; k < 8; ++k) bytes[k] = (pattern >> k) & 1;
    const uint64_t bits = binary_gram_pack8(bytes);
    CHECK(bits == static_cast<uint64_t>(pattern), "pattern %d packed to %llu", pattern, (unsigned long long)bits);
  }
}

static void test_rows_pack_every_code_and_nothing_else(std::mt19937_64& rng) {
  for (int64_t units : {0, 1, 7, 8, 9, 63, 64, 65, 127, 128, 129, 200, 1000}) {
    std::vector<uint8_t> codes(units);
    for (auto& c : codes) c = rng() & 1;
    const int64_t words = binary_gram_words(units);
    std::vector<uint64_t> packed(words + 1, ~0ULL);  // a sentinel word past the row
    binary_gram_pack_row(codes.data(), units, packed.data());
    for (int64_t u = 0; u < 64 * words; ++u) {
      const int bit = (packed[u / 64] >> (u % 64)) & 1;
      const int want = u < units ? codes[u] : 0;
      CHECK(bit == want, "units %lld: bit %lld is %d, want %d", (long long)units, (long long)u, bit, want);
    }
    CHECK(packed[words] == ~0ULL, "units %lld: wrote past the row", (long long)units);
  }
}

static void test_gram_counts_common_ones(std::mt19937_64& rng) {
  for (int64_t rows : {1, 2, 5, 17}) {
    for (int64_t units : {1, 64, 65, 300, 777}) {
      for (double density : {0.05, 0.5, 0.95}) {
        std::bernoulli_distribution one(density);
        std::vector<uint8_t> codes(rows * units);
        for (auto& c : codes) c = one(rng);
        const int64_t stride = binary_gram_words(units) + 3;  // rows need not be adjacent
        std::vector<uint64_t> packed(rows * stride, 0);
        for (int64_t i = 0; i < rows; ++i) binary_gram_pack_row(&codes[i * units], units, &packed[i * stride]);
        const int64_t words = binary_gram_words(units);
        for (int64_t block : {int64_t{1}, int64_t{2}, int64_t{5}, words}) {
          std::vector<int64_t> gram(rows * rows, 0);
          for (int64_t begin = 0; begin < words; begin += block) {
            const int64_t end = begin + block < words ? begin + block : words;
            for (int64_t i = 0; i < rows; ++i) binary_gram_row_block(packed.data(), stride, rows, i, begin, end, gram.data());
          }
          for (int64_t i = 0; i < rows; ++i) {
            for (int64_t j = 0; j < rows; ++j) {
              int64_t want = 0;
              for (int64_t u = 0; u < units; ++u) want += codes[i * units + u] & codes[j * units + u];
              const int64_t got = j >= i ? gram[i * rows + j] : 0;
              CHECK(got == (j >= i ? want : 0), "rows %lld units %lld block %lld: G[%lld][%lld] = %lld, want %lld",
                    (long long)rows, (long long)units, (long long)block, (long long)i, (long long)j, (long long)got,
                    (long long)want);
            }
          }
        }
      }
    }
  }
}

int main() {
  std::mt19937_64 rng(7);
  test_pack8_is_a_bijection_in_order();
  test_rows_pack_every_code_and_nothing_else(rng);
  test_gram_counts_common_ones(rng);
  return TEST_MAIN_RESULT("binary_gram_math");
}
