#pragma once
// A minimal test harness: CHECK/CHECK_CLOSE record failures, TEST registers a
// function, main() in each test file runs them all. No dependency beyond the core.

#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace check {

struct Test {
  const char* name;
  std::function<void()> fn;
};
inline std::vector<Test>& registry() {
  static std::vector<Test> tests;
  return tests;
}
inline int& failures() {
  static int n = 0;
  return n;
}
struct Register {
  Register(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};

// Every test of the file; with the arguments "--part I/N" (0 <= I < N), those whose place in
// the file is I modulo N: N CTest entries of a slow file then run side by side under ctest -j,
// and together they run every test the file holds, whatever is added to it.
inline int run_all(int argc = 1, char** argv = nullptr) {
  std::size_t part = 0, parts = 1;
  if (argc > 1) {
    unsigned i = 0, n = 0;
    char end = 0;
    if (argc != 3 || std::string(argv[1]) != "--part" || std::sscanf(argv[2], "%u/%u%c", &i, &n, &end) != 2 ||
        i >= n) {
      std::printf("usage: %s [--part I/N]   (0 <= I < N)\n", argv[0]);
      return 2;
    }
    part = i, parts = n;
    std::printf("part %u of %u: every %u-th of the file's %zu tests from number %u\n", i, n, n, registry().size(), i);
  }
  int ran = 0;
  for (std::size_t k = 0; k < registry().size(); ++k) {
    if (k % parts != part) continue;
    const Test& t = registry()[k];
    ++ran;
    const int before = failures();
    try {
      t.fn();
    } catch (const std::exception& e) {
      std::printf("  exception: %s\n", e.what());
      ++failures();
    }
    std::printf("%s %s\n", failures() == before ? "PASS" : "FAIL", t.name);
  }
  std::printf("%d tests, %d failures\n", ran, failures());
  if (ran == 0) std::printf("FAIL: no test in this part\n");
  return failures() || ran == 0 ? 1 : 0;
}

}  // namespace check

#define CHECK_CAT2(a, b) a##b
#define CHECK_CAT(a, b) CHECK_CAT2(a, b)
#define TEST(name)                                                   \
  static void name();                                                \
  static check::Register CHECK_CAT(reg_, name)(#name, name);         \
  static void name()

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      std::printf("  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      ++check::failures();                                                   \
    }                                                                        \
  } while (0)

#define CHECK_CLOSE(a, b, tol)                                                                        \
  do {                                                                                                \
    const double a_ = (a), b_ = (b);                                                                  \
    if (!(std::abs(a_ - b_) <= (tol) * (1 + std::abs(b_)))) {                                         \
      std::printf("  %s:%d: %s = %.12g, %s = %.12g (tol %g)\n", __FILE__, __LINE__, #a, a_, #b, b_, \
                  double(tol));                                                                       \
      ++check::failures();                                                                            \
    }                                                                                                 \
  } while (0)

#define CHECK_THROWS(expr)                                                        \
  do {                                                                            \
    bool thrown_ = false;                                                         \
    try {                                                                         \
      expr;                                                                       \
    } catch (const std::exception&) {                                             \
      thrown_ = true;                                                             \
    }                                                                             \
    if (!thrown_) {                                                               \
      std::printf("  %s:%d: %s did not throw\n", __FILE__, __LINE__, #expr);      \
      ++check::failures();                                                        \
    }                                                                             \
  } while (0)
