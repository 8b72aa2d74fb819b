// The reduced-precision products (quant.h) against the scheme they document,
// written out plainly here: int8 rows quantized symmetrically (a scale per row of
// the activations and per output column of the weights) and summed exactly;
// bfloat16 rounded to nearest even and summed in float32, k in pairs, odd before
// even. Results must be equal bit for bit, whichever kernel runs: CTest runs this
// file once per instruction-set level (RNNKIT_ISA), and each run checks the level
// it was given. Every tile height, partial panels, gate blocks, row maps,
// accumulate, 1 and 2 threads.

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "rnnkit/cpu.h"
#include "rnnkit/quant.h"

using rnnkit::Bf16;
using rnnkit::Index;

namespace {

std::vector<float> random_vector(std::size_t n, std::mt19937& rng, float lo = -1, float hi = 1) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, 4) == 0; }

// One row's int8 values and scale, as quant.h says.
float quantize_plain(const float* x, Index K, std::vector<int>& q) {
  float amax = 0;
  for (Index k = 0; k < K; ++k) amax = std::max(amax, std::fabs(x[k]));
  q.assign(std::size_t(K), 0);
  if (amax == 0) return 0;
  for (Index k = 0; k < K; ++k) q[std::size_t(k)] = int(std::nearbyint(x[k] * (127.0f / amax)));
  return amax / 127.0f;
}

float bf16_plain(float f) {  // round to nearest even, then back to float
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  const std::uint32_t lsb = (u >> 16) & 1u;
  u = (u + 0x7fffu + lsb) & 0xffff0000u;
  std::memcpy(&f, &u, 4);
  return f;
}

struct Case {
  Index m, K, block, gates;
  bool accumulate, maps;
};

const Case kCases[] = {
    {1, 1, 1, 1, false, false},   {1, 5, 40, 1, true, false},   {2, 4, 32, 4, false, true},
    {5, 33, 20, 4, true, true},   {6, 64, 64, 3, false, false}, {7, 130, 70, 4, true, false},
    {13, 9, 96, 1, false, true},  {12, 128, 128, 4, true, true}, {3, 2, 8, 3, false, false},
    {1, 37, 64, 4, true, true},   {1, 70, 40, 3, false, false},  // one row, four panels at a time
};

// C (rows through c_rows, ldc > N) from A (rows through a_rows) for one case, by packed_gemm.
template <class W, class Pack, class Reference>
void run_case(const Case& cs, int threads, Pack&& pack, Reference&& reference) {
  std::mt19937 rng(unsigned(cs.m * 131 + cs.K * 7 + cs.block));
  const Index N = cs.block * cs.gates, K = cs.K, m = cs.m, lda = K + 3, ldc = N + 5;
  auto w = random_vector(std::size_t(N * K), rng, -0.5f, 0.5f);  // W (N, K)
  auto a = random_vector(std::size_t((2 * m + 1) * lda), rng, -2.0f, 2.0f);
  if (m > 2) std::fill_n(a.begin() + 1 * lda, K, 0.0f);  // an all-zero row (scale 0)
  std::vector<Index> a_rows, c_rows;
  for (Index i = 0; i < m; ++i) a_rows.push_back(2 * (m - 1 - i) + 1), c_rows.push_back(2 * i);
  if (!cs.maps) {
    a_rows.clear(), c_rows.clear();
    for (Index i = 0; i < m; ++i) a_rows.push_back(i), c_rows.push_back(i);
  }
  const auto c0 = random_vector(std::size_t((2 * m) * ldc), rng);
  auto c = c0;
  const rnnkit::PackedMat<W> pw = pack(w, N, K, cs.gates);
  rnnkit::set_num_threads(threads);
  rnnkit::packed_gemm(c.data(), ldc, a.data(), lda, m, pw, cs.accumulate, cs.maps ? a_rows.data() : nullptr,
                      cs.maps ? c_rows.data() : nullptr);
  rnnkit::set_num_threads(1);
  int wrong = 0;
  for (Index i = 0; i < m; ++i) {
    const float* ar = a.data() + a_rows[std::size_t(i)] * lda;
    const Index cr = c_rows[std::size_t(i)];
    for (Index n = 0; n < ldc; ++n) {
      const float before = c0[std::size_t(cr * ldc + n)];
      const float want = n < N ? reference(ar, w.data() + n * K, K, cs.accumulate ? before : 0.0f) : before;
      if (!same_bits(c[std::size_t(cr * ldc + n)], want) && wrong++ < 3)
        std::printf("  m=%ld K=%ld N=%ld row %ld col %ld: got %.9g, want %.9g\n", long(m), long(K), long(N), long(i),
                    long(n), double(c[std::size_t(cr * ldc + n)]), double(want));
    }
  }
  CHECK(wrong == 0);
}

// The kernel the level RNNKIT_ISA asks for, where the CPU has it.
TEST(kernels_follow_the_level) {
  const auto& f = rnnkit::cpu_features();
  std::printf("  RNNKIT_ISA=%s chosen=%s int8=%s bf16=%s\n", f.cap.c_str(), rnnkit::isa_name(f.chosen),
              rnnkit::int8_kernel(), rnnkit::bf16_kernel());
  CHECK(f.cap_error.empty());
  const std::string i8 = rnnkit::int8_kernel(), b16 = rnnkit::bf16_kernel();
  if (f.chosen == rnnkit::IsaLevel::Baseline) CHECK(i8 == "portable" && b16 == "portable");
  if (f.chosen == rnnkit::IsaLevel::Avx2) CHECK(i8 == "avx2" && b16 == "avx2");
  if (f.chosen == rnnkit::IsaLevel::Avx512) {
    CHECK(i8 == (f.avx512_vnni ? "avx512_vnni" : "avx2"));
    CHECK(b16 == (f.avx512_bf16 ? "avx512_bf16" : "avx2"));
  }
}

TEST(int8_weights_quantize_per_row) {
  std::mt19937 rng(3);
  const Index N = 7, K = 19;
  auto w = random_vector(std::size_t(N * K), rng);
  std::fill_n(w.begin() + 2 * K, K, 0.0f);  // a zero row: scale 0, values 0
  std::vector<std::int8_t> q(std::size_t(N * K));
  std::vector<float> scale(static_cast<std::size_t>(N));
  rnnkit::quantize_int8(w.data(), N, K, q.data(), scale.data());
  for (Index n = 0; n < N; ++n) {
    std::vector<int> want;
    const float s = quantize_plain(w.data() + n * K, K, want);
    CHECK(same_bits(scale[std::size_t(n)], s));
    for (Index k = 0; k < K; ++k) {
      CHECK(q[std::size_t(n * K + k)] == want[std::size_t(k)]);
      CHECK(std::fabs(q[std::size_t(n * K + k)] * s - w[std::size_t(n * K + k)]) <= 0.5f * s * 1.0001f);
    }
  }
  w[5] = std::nanf("");
  bool threw = false;
  try {
    rnnkit::quantize_int8(w.data(), N, K, q.data(), scale.data());
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
}

TEST(bf16_rounds_to_nearest_even) {
  const float cases[] = {1.0f, 1.00390625f /* tie, even below */, 1.01171875f /* tie, even above */, -3.14159f,
                         1e-30f, 65504.0f, 3.0e38f};
  for (float f : cases) CHECK(same_bits(rnnkit::from_bf16(rnnkit::to_bf16(f)), bf16_plain(f)));
  CHECK(rnnkit::from_bf16(rnnkit::to_bf16(1.00390625f)) == 1.0f);
  CHECK(rnnkit::from_bf16(rnnkit::to_bf16(1.01171875f)) == 1.015625f);
  CHECK(std::isnan(rnnkit::from_bf16(rnnkit::to_bf16(std::nanf("")))));
}

TEST(int8_products_are_the_scheme) {
  auto pack = [](const std::vector<float>& w, Index N, Index K, Index gates) {
    std::vector<std::int8_t> q(std::size_t(N * K));
    std::vector<float> scale(static_cast<std::size_t>(N));
    rnnkit::quantize_int8(w.data(), N, K, q.data(), scale.data());
    return rnnkit::pack_int8(q.data(), scale.data(), N, K, gates);
  };
  auto reference = [](const float* a, const float* w, Index K, float c) {
    std::vector<int> qa, qw;
    const float sa = quantize_plain(a, K, qa), sw = quantize_plain(w, K, qw);
    long sum = 0;
    for (Index k = 0; k < K; ++k) sum += long(qa[std::size_t(k)]) * qw[std::size_t(k)];
    return std::fma(float(sum), sa * sw, c);
  };
  for (int threads : {1, 2})
    for (const Case& cs : kCases) run_case<std::int8_t>(cs, threads, pack, reference);
}

TEST(bf16_products_are_the_scheme) {
  auto pack = [](const std::vector<float>& w, Index N, Index K, Index gates) {
    std::vector<Bf16> b(w.size());
    for (std::size_t i = 0; i < w.size(); ++i) b[i] = rnnkit::to_bf16(w[i]);
    return rnnkit::pack_bf16(b.data(), N, K, gates);
  };
  auto reference = [](const float* a, const float* w, Index K, float c) {
    float s = c;
    for (Index k = 0; k < K; k += 2) {
      if (k + 1 < K) s = std::fma(bf16_plain(a[k + 1]), bf16_plain(w[k + 1]), s);
      s = std::fma(bf16_plain(a[k]), bf16_plain(w[k]), s);
    }
    return s;
  };
  for (int threads : {1, 2})
    for (const Case& cs : kCases) run_case<Bf16>(cs, threads, pack, reference);
}

// One row (the streaming step's products), through vec_mat.
TEST(one_row_through_vec_mat) {
  std::mt19937 rng(11);
  const Index N = 50, K = 21;
  auto w = random_vector(std::size_t(N * K), rng), x = random_vector(std::size_t(K), rng);
  std::vector<std::int8_t> q(std::size_t(N * K));
  std::vector<float> scale(static_cast<std::size_t>(N));
  rnnkit::quantize_int8(w.data(), N, K, q.data(), scale.data());
  const auto pw = rnnkit::pack_int8(q.data(), scale.data(), N, K);
  std::vector<float> y(std::size_t(N), 0.0f), y2(std::size_t(N), 0.0f);
  rnnkit::vec_mat(y.data(), x.data(), pw);
  rnnkit::packed_gemm(y2.data(), N, x.data(), K, 1, pw);
  for (Index n = 0; n < N; ++n) CHECK(same_bits(y[std::size_t(n)], y2[std::size_t(n)]));
  // and close to the float product: each term off by at most half a step of each operand
  for (Index n = 0; n < N; ++n) {
    double exact = 0;
    for (Index k = 0; k < K; ++k) exact += double(x[std::size_t(k)]) * w[std::size_t(n * K + k)];
    CHECK(std::fabs(y[std::size_t(n)] - exact) < 0.05);
  }
}

}  // namespace

int main() { return check::run_all(); }
