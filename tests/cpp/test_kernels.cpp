// The products on packed weights (gemm.h: packed_gemm, vec_mat), the weight
// gradients' A^T·B (gemm_tn) and the lane arithmetic of the cells
// (activations.h: for_lanes), against plain loops in twice double's precision: every tile
// size, partial panels, K past one cache block, strided operands, accumulate,
// gate blocks computed in shares of chunks, float and double, 1 and 2 threads.

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "check.h"
#include "rnnkit/activations.h"
#include "rnnkit/gemm.h"

using rnnkit::Index;

namespace {

template <class S>
std::vector<S> random_vector(std::size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<S> v(n);
  for (auto& x : v) x = S(u(rng));
  return v;
}

// A sum of products carried as hi + lo in two doubles, each product and each addition's
// rounding error kept exactly (std::fma, Knuth's TwoSum: Ogita, Rump and Oishi's Dot2): as
// accurate as summing in twice double's precision, then rounding once. Not long double, which
// is x87's 64-bit significand on x86-64 but IEEE quad on aarch64, done in software there:
// the plain loops took this test five minutes under qemu-aarch64.
struct Dot2 {
  double hi = 0, lo = 0;
  void add(double x) {
    const double s = hi + x, bx = s - hi;
    lo += (hi - (s - bx)) + (x - bx);  // TwoSum: hi + x - s exactly
    hi = s;
  }
  void add_product(double a, double b) {
    const double p = a * b;
    add(p);
    lo += std::fma(a, b, -p);  // a·b - p exactly
  }
  double value() const { return hi + lo; }
};

// C (m, n) ldc = [C +] A (m, k) lda · W (k, n) ldw, the plain way
template <class S>
std::vector<double> reference(const std::vector<S>& c, Index ldc, const std::vector<S>& a, Index lda,
                              const std::vector<S>& w, Index ldw, Index m, Index k, Index n, bool accumulate) {
  std::vector<double> out(std::size_t(m * ldc));
  for (Index i = 0; i < m; ++i)
    for (Index j = 0; j < ldc; ++j) {
      Dot2 sum;
      if (accumulate || j >= n) sum.add(c[i * ldc + j]);
      if (j < n)
        for (Index p = 0; p < k; ++p) sum.add_product(a[i * lda + p], w[p * ldw + j]);
      out[i * ldc + j] = sum.value();
    }
  return out;
}

template <class S>
void check_packed_gemm(int threads) {
  rnnkit::set_num_threads(threads);
  std::mt19937 rng(7);
  int cases = 0;
  for (Index m : {1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 64, 131, 300})
    for (Index k : {1, 3, 17, 300, 1100})  // 1100: past one block of K (gemm.h: KC) for any SIMD width
      for (Index block : {1, 7, 8, 15, 16, 17, 33, 200})
        for (Index gates : {1, 3})
        for (bool accumulate : {false, true}) {
          // rounding grows with the sum's length
          const double tol = (std::is_same_v<S, float> ? 2e-5 : 1e-13) * std::max(1.0, double(k) / 600);
          const Index n = gates * block;
          if (m * k * n > 3000000) continue;
          const Index lda = k + 3, ldc = n + 2, ldw = n + 1;
          auto a = random_vector<S>(std::size_t(m * lda), rng), w = random_vector<S>(std::size_t(k * ldw), rng),
               c = random_vector<S>(std::size_t(m * ldc), rng);
          const auto want = reference(c, ldc, a, lda, w, ldw, m, k, n, accumulate);
          auto packed = rnnkit::pack_for_gemm<S>(rnnkit::cmat(w.data(), k, n, ldw), gates);
          // Every other case reads A's rows through a_rows: row i of A is row
          // rows[i] of a larger array, in shuffled order, with other rows between.
          const bool gathered = (m + k + block) % 2 == 1;
          std::vector<Index> rows(static_cast<std::size_t>(m));
          for (Index i = 0; i < m; ++i) rows[std::size_t(i)] = 2 * i + 1;
          std::shuffle(rows.begin(), rows.end(), rng);
          std::vector<S> big(std::size_t(2 * m * lda), S(1e6));  // rows not in `rows` would spoil the result
          for (Index i = 0; i < m; ++i) std::copy_n(a.data() + i * lda, lda, big.data() + rows[std::size_t(i)] * lda);
          const S* a_ptr = gathered ? big.data() : a.data();
          const Index* a_rows = gathered ? rows.data() : nullptr;
          if (gates == 1) {
            rnnkit::packed_gemm(c.data(), ldc, a_ptr, lda, m, packed, accumulate, a_rows);
          } else {  // in two shares of chunks, as two threads of the recurrent driver's team take them
            const Index half = packed.chunks() / 2;
            rnnkit::packed_gemm_chunks(c.data(), ldc, a_ptr, lda, m, packed, Index(0), half, accumulate, a_rows);
            rnnkit::packed_gemm_chunks(c.data(), ldc, a_ptr, lda, m, packed, half, packed.chunks(), accumulate,
                                       a_rows);
          }
          double worst = 0;
          for (std::size_t i = 0; i < c.size(); ++i)
            worst = std::max(worst, double(std::fabs(c[i] - want[i]) / (1 + std::fabs(want[i]))));
          if (worst > tol)
            std::printf("  m=%ld k=%ld n=%ld gates=%ld acc=%d: error %g\n", long(m), long(k), long(n), long(gates),
                        accumulate, worst);
          CHECK(worst <= tol);
          ++cases;
        }
  CHECK(cases > 500);
  rnnkit::set_num_threads(1);
}

// C (m, n) = [C +] A^T · B with A (K, m) and B (K, n) row-major, strided, as
// the weight gradients call it; split by rows or by panels of columns on 2
// threads (m >= n or not), B's last panel partial or not, K = 0.
template <class S>
void check_gemm_tn(int threads) {
  rnnkit::set_num_threads(threads);
  std::mt19937 rng(11);
  int cases = 0;
  for (Index m : {1, 5, 6, 7, 13, 64, 130})
    for (Index n : {1, 7, 16, 31, 32, 33, 200, 300})
      for (Index k : {0, 1, 17, 129, 300})  // 129: past one block of K (gemm_tn_rows: KC = 128)
        for (bool accumulate : {false, true}) {
          const double tol = (std::is_same_v<S, float> ? 2e-5 : 1e-13) * std::max(1.0, double(k) / 600);
          const Index lda = m + 3, ldb = n + 1, ldc = n + 2;
          auto a = random_vector<S>(std::size_t(std::max<Index>(k, 1) * lda), rng),
               b = random_vector<S>(std::size_t(std::max<Index>(k, 1) * ldb), rng),
               c = random_vector<S>(std::size_t(m * ldc), rng);
          std::vector<S> at(std::size_t(m * std::max<Index>(k, 1)));  // A^T (m, k), for the plain product
          for (Index i = 0; i < m; ++i)
            for (Index p = 0; p < k; ++p) at[std::size_t(i * k + p)] = a[std::size_t(p * lda + i)];
          const auto want = reference(c, ldc, at, k, b, ldb, m, k, n, accumulate);
          rnnkit::gemm_tn(c.data(), ldc, a.data(), lda, b.data(), ldb, m, n, k, accumulate);
          double worst = 0;
          for (std::size_t i = 0; i < c.size(); ++i)
            worst = std::max(worst, double(std::fabs(c[i] - want[i]) / (1 + std::fabs(want[i]))));
          if (worst > tol)
            std::printf("  m=%ld n=%ld k=%ld acc=%d: error %g\n", long(m), long(n), long(k), accumulate, worst);
          CHECK(worst <= tol);
          ++cases;
        }
  CHECK(cases == 7 * 8 * 5 * 2);
  rnnkit::set_num_threads(1);
}

template <class S>
void check_vec_mat() {
  std::mt19937 rng(8);
  const double tol = std::is_same_v<S, float> ? 2e-5 : 1e-13;
  for (Index k : {1, 2, 5, 64, 129})
    for (Index n : {1, 3, 8, 31, 32, 33, 100})
      for (bool accumulate : {false, true})
        for (bool backwards : {false, true}) {
          const Index ldw = n + 5;
          auto x = random_vector<S>(std::size_t(k), rng), w = random_vector<S>(std::size_t(k * ldw), rng),
               y = random_vector<S>(std::size_t(n), rng);
          const auto want = reference(y, n, x, k, w, ldw, 1, k, n, accumulate);
          auto packed = rnnkit::pack_for_vec_mat<S>(rnnkit::cmat(w.data(), k, n, ldw));
          rnnkit::vec_mat(y.data(), x.data(), packed, accumulate, backwards);
          for (Index j = 0; j < n; ++j) CHECK(std::fabs(y[j] - want[j]) <= tol * (1 + std::fabs(want[j])));
        }
}

// Every element of every length goes through the packet body, a half or
// quarter packet (AVX-512: 8 and 4 floats) or the scalar tail; each must give
// σ and tanh (and the derivative helpers) to float precision, and every element
// must be written (the -7 each output starts as is no σ or tanh of anything).
template <class S>
void check_lanes() {
  using namespace rnnkit::lane;
  const double tol = std::is_same_v<S, float> ? 1e-6 : 1e-14;
  for (Index n = 0; n <= 37; ++n) {
    std::vector<S> x(n), sig(n, S(-7)), th(n, S(-7)), ds(n, S(-7)), dt(n, S(-7)), rl(n, S(-7));
    for (Index i = 0; i < n; ++i) x[i] = S(-20 + 40.0 * i / 37.0 + 0.1);
    rnnkit::for_lanes<S>(n, [&](auto v, Index j) {
      using V = decltype(v);
      const V xv = load<V>(x.data() + j);
      store(sig.data() + j, sigmoid(xv));
      store(th.data() + j, rnnkit::lane::tanh(xv));
      store(ds.data() + j, dsigmoid(sigmoid(xv)));
      store(dt.data() + j, dtanh(rnnkit::lane::tanh(xv)));
      store(rl.data() + j, relu(xv));
    });
    for (Index i = 0; i < n; ++i) {
      const long double xi = x[i], s = 1 / (1 + std::exp(-xi)), t = std::tanh(xi);
      CHECK(std::fabs(sig[i] - s) <= tol);
      CHECK(std::fabs(th[i] - t) <= tol);
      CHECK(std::fabs(ds[i] - s * (1 - s)) <= tol);
      CHECK(std::fabs(dt[i] - (1 - t * t)) <= 4 * tol);
      CHECK(rl[i] == (x[i] > 0 ? x[i] : S(0)));
    }
  }
}

}  // namespace

TEST(packed_gemm_float_one_thread) { check_packed_gemm<float>(1); }
TEST(packed_gemm_float_two_threads) { check_packed_gemm<float>(2); }
TEST(packed_gemm_double_two_threads) { check_packed_gemm<double>(2); }
TEST(gemm_tn_float_one_thread) { check_gemm_tn<float>(1); }
TEST(gemm_tn_float_two_threads) { check_gemm_tn<float>(2); }
TEST(gemm_tn_double_two_threads) { check_gemm_tn<double>(2); }
TEST(vec_mat_float) { check_vec_mat<float>(); }
TEST(vec_mat_double) { check_vec_mat<double>(); }
TEST(lanes_float) { check_lanes<float>(); }
TEST(lanes_double) { check_lanes<double>(); }

int main(int argc, char** argv) { return check::run_all(argc, argv); }  // CTest: --part I/3
