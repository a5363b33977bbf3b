#pragma once

// A minimal assertion for the header tests: report every failure, exit non-zero at the end.

#include <cstdio>

namespace vkdnw_test {
inline int& failures() {
  static int count = 0;
  return count;
}
}  // namespace vkdnw_test

#define CHECK(cond, ...)                                                  \
  do {                                                                    \
    if (!(cond)) {                                                        \
      if (++vkdnw_test::failures() <= 20) {                               \
        std::fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
        std::fprintf(stderr, __VA_ARGS__);                                \
        std::fprintf(stderr, "\n");                                       \
      }                                                                   \
    }                                                                     \
  } while (0)

#define TEST_MAIN_RESULT(name)                                                        \
  (vkdnw_test::failures() == 0                                                        \
       ? (std::printf("%s: all checks passed\n", name), 0)                            \
       : (std::fprintf(stderr, "%s: %d checks failed\n", name, vkdnw_test::failures()), 1))
