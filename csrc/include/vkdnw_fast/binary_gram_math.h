#pragma once

// The Gram matrix of binary codes, G_ij = sum_u c_iu c_ju for 0/1 codes c (NASWOT's activation
// patterns: its Hamming kernel is 2G + U - G_ii - G_jj), from bit-packed rows by AND and popcount:
// exact integers, about 64 codes per instruction where a float matrix product spends two flops on
// each code pair. Torch-free; the CPU kernel calls these functions and the C++ tests check them.

#include <cstdint>
#include <cstring>

namespace vkdnw_fast {

// Words of 64 codes that a row of `units` codes packs into.
inline int64_t binary_gram_words(int64_t units) { return (units + 63) / 64; }

// Eight bytes, each 0 or 1, as eight bits (byte k of the little-endian word to bit k): the product
// puts b_k at bit 56 + k, and every other partial product below bit 56 is a distinct power of two
// (no carry reaches the top byte) or lies at bit 64 or above (gone).
inline uint64_t binary_gram_pack8(const uint8_t* bytes) {
  uint64_t word;
  std::memcpy(&word, bytes, sizeof(word));
  return (word * 0x0102040810204080ULL) >> 56;
}

// Packs a row of `units` bytes, each 0 or 1 (a bool tensor's storage), into binary_gram_words(units)
// words; the bits past the last code are 0.
inline void binary_gram_pack_row(const uint8_t* codes, int64_t units, uint64_t* words) {
  const int64_t full = units / 64;
  for (int64_t w = 0; w < full; ++w) {
    uint64_t word = 0;
    for (int b = 0; b < 8; ++b) word |= binary_gram_pack8(codes + 64 * w + 8 * b) << (8 * b);
    words[w] = word;
  }
  const int64_t rest = units - 64 * full;
  if (rest > 0) {
    uint8_t tail[64] = {0};
    std::memcpy(tail, codes + 64 * full, static_cast<size_t>(rest));
    uint64_t word = 0;
    for (int b = 0; b < 8; ++b) word |= binary_gram_pack8(tail + 8 * b) << (8 * b);
    words[full] = word;
  }
}

inline int binary_gram_popcount(uint64_t word) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_popcountll(word);
#else
  int count = 0;
  for (; word; word &= word - 1) ++count;
  return count;
#endif
}

// Adds to gram[i * rows + j], for row i and every j >= i, the common ones of rows i and j over words
// [begin, end): rows of packed words `stride` words apart. The CPU kernel takes the words in blocks
// that stay in cache for all the pairs, and rows in parallel (each row of gram has one writer).
inline void binary_gram_row_block(const uint64_t* packed, int64_t stride, int64_t rows, int64_t i, int64_t begin,
                                  int64_t end, int64_t* gram) {
  const uint64_t* a = packed + i * stride;
  for (int64_t j = i; j < rows; ++j) {
    const uint64_t* b = packed + j * stride;
    int64_t count = 0;
    for (int64_t w = begin; w < end; ++w) count += binary_gram_popcount(a[w] & b[w]);
    gram[i * rows + j] += count;
  }
}

}  // namespace vkdnw_fast
