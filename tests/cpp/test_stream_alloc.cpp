// Stream::step allocates nothing. This program replaces the global operator
// new (and, outside sanitizer builds, malloc, calloc and realloc: Eigen's
// aligned buffers come from malloc) with counting versions, then runs
// thousands of steps of models of every kind and asserts the counts did not move.

// The replaced operator new takes its memory from malloc and operator delete gives it back
// to free: GCC's -Wmismatched-new-delete cannot see that they are a pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <atomic>
#include <cstdlib>
#include <new>

#include "check.h"
#include "model_helpers.h"

namespace {
std::atomic<long> g_news{0}, g_mallocs{0};
}

void* operator new(std::size_t n) {
  ++g_news;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  ++g_news;
  return std::malloc(n ? n : 1);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RNNKIT_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define RNNKIT_ASAN 1
#endif

#if defined(__GLIBC__) && !defined(RNNKIT_ASAN)
#define RNNKIT_COUNT_MALLOC 1
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* malloc(std::size_t n) {
  ++g_mallocs;
  return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t m) {
  ++g_mallocs;
  return __libc_calloc(n, m);
}
void* realloc(void* p, std::size_t n) {
  ++g_mallocs;
  return __libc_realloc(p, n);
}
}
#endif

using namespace testing;
using rnnkit::CellType;

namespace {

// Steps `model` `steps` times with batch B and returns the allocations made by step().
long allocations_in_steps(const rnnkit::Model& model, Index B, int steps) {
  auto s = model.stream(B);
  std::vector<float> x(size_t(B * model.input_size()), 0.5f), y(size_t(B * model.output_size()));
  std::vector<std::int64_t> ids(size_t(B), 1);
  auto run = [&](int n) {
    for (int t = 0; t < n; ++t) {
      x[0] = float(t % 7) * 0.1f;
      if (model.takes_ids()) s.step(ids.data(), y.data());
      else s.step(x.data(), y.data());
    }
  };
  run(2);  // first steps: nothing lazy should remain after them, but be fair to one-time setup
  const long before = g_news + g_mallocs;
  run(steps);
  s.reset();
  run(steps / 10);
  return g_news + g_mallocs - before;
}

}  // namespace

TEST(the_counters_count) {
  const long before = g_news + g_mallocs;
  auto* v = new std::vector<float>(100);
  delete v;
  CHECK(g_news + g_mallocs - before >= 2);
}

TEST(no_heap_allocation_in_thousands_of_steps) {
  std::vector<std::vector<LayerDesc>> models;
  for (CellType cell : {CellType::RNN_TANH, CellType::LSTM, CellType::GRU})
    for (Index H : {8, 32, 128}) models.push_back({recurrent(spec(cell, 1, H)), linear(H, 1)});
  auto proj = spec(CellType::LSTM, 4, 16, 2);
  proj.proj_size = 8;
  models.push_back({recurrent(proj), pool("MeanPool"), linear(8, 3)});
  auto gru = spec(CellType::GRU, 4, 16, 2);
  gru.reset_after = false;
  models.push_back({embedding(10, 4), recurrent(gru), pool("LastStep"), linear(16, 2)});
  auto peep = spec(CellType::LSTM, 3, 24, 2);
  peep.peepholes = true;
  models.push_back({recurrent(peep), linear(24, 2)});
  // weights in int8 and bfloat16 (rk.quantize): their products' per-thread row buffers are sized
  // by the first steps, then reused
  for (const char* p : {"int8", "bf16"}) {
    models.push_back({quantized(recurrent(spec(CellType::LSTM, 2, 40)), p), quantized(linear(40, 3), p)});
    models.push_back({embedding(10, 4), quantized(recurrent(gru), p), pool("LastStep"), linear(16, 2)});
    models.push_back({quantized(recurrent(proj), p), pool("MeanPool"), quantized(linear(8, 3), p)});
  }
  unsigned seed = 1;
  for (const auto& layers : models) {
    const rnnkit::Model m = random_model(layers, seed++).model();
    for (Index B : {1, 4}) {
      const long n = allocations_in_steps(m, B, 3000);
      if (n != 0) std::printf("  %s batch %td: %ld allocations in 3300 steps\n", m.summary().c_str(), B, n);
      CHECK(n == 0);
    }
  }
  // A larger batch and hidden size, where a GEMM's packing buffers would pass Eigen's
  // 128 KiB stack limit and the cells' row loops would start a thread team outside the
  // streaming step (batch·4H >= 16k).
  const rnnkit::Model big = random_model({recurrent(spec(CellType::LSTM, 8, 256)), linear(256, 4)}, 99).model();
  const long n = allocations_in_steps(big, 16, 300);
  if (n != 0) std::printf("  LSTM(8, 256) batch 16: %ld allocations in 330 steps\n", n);
  CHECK(n == 0);
#ifdef RNNKIT_COUNT_MALLOC
  std::printf("  counted operator new and malloc/calloc/realloc\n");
#else
  std::printf("  counted operator new only (sanitizer build: malloc belongs to the sanitizer)\n");
#endif
}

int main() { return check::run_all(); }
