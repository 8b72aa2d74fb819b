// The reduced-precision products (quant.h): int8 and bfloat16 weights, float32
// activations and results. One kernel per instruction set, all computing the same
// sums in the same order:
//
//   int8      avx512_vnni  vpdpbusd: u8·s8 in 32-bit lanes, 4 k per lane (the activations
//                          shifted by +128 into u8, the shift taken off with the columns' sums)
//             avx2         vpmaddubsw on |a| and the weights signed as a, then vpmaddwd: exact,
//                          since |a|, |q| <= 127 keep every pair's sum within int16
//             portable     plain loops
//   bfloat16  avx512_bf16  vdpbf16ps: 2 k per lane, float32 sums
//             avx2         the weights widened to float32, two FMAs per pair of k
//             portable     std::fma per product
//
// Each kernel is compiled for its own instruction set (a target attribute), whatever the
// rest of the build targets, and runs only where cpu_features() says the CPU has it.
// They use intrinsics alone, no Eigen, so no template is compiled twice with different
// instruction sets under one name.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "rnnkit/cpu.h"
#include "rnnkit/quant.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define RNNKIT_X86_KERNELS 1
#include <immintrin.h>
#define RNNKIT_TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define RNNKIT_TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define RNNKIT_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define RNNKIT_X86_KERNELS 0
#endif

namespace rnnkit {

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::Int8: return "int8";
    case Precision::Bf16: return "bf16";
    default: return "float32";
  }
}

Precision precision_from_name(const std::string& name) {
  if (name == "int8") return Precision::Int8;
  if (name == "bf16" || name == "bfloat16") return Precision::Bf16;
  if (name == "float32" || name == "float") return Precision::Float;
  throw std::invalid_argument("precision must be one of \"int8\", \"bf16\", \"float32\", got \"" + name + "\"");
}

// Σ over the (N, K) products of a's quantized values and q stays within int32: each
// term's magnitude is at most 255 · 127 (the avx512 kernel's shifted activations).
constexpr Index kMaxInt8Depth = std::numeric_limits<std::int32_t>::max() / (255 * 127);

void quantize_int8(const float* w, Index N, Index K, std::int8_t* q, float* scale) {
  for (Index n = 0; n < N; ++n) {
    const float* row = w + n * K;
    float amax = 0;
    bool finite = true;
    for (Index k = 0; k < K; ++k) {
      const float v = std::fabs(row[k]);
      amax = std::max(amax, v);
      finite &= v <= std::numeric_limits<float>::max();
    }
    if (!finite)
      throw std::invalid_argument("cannot quantize weights that are not finite (row " + std::to_string(n) + ")");
    scale[n] = amax / 127.0f;
    const float inv = amax > 0 ? 127.0f / amax : 0.0f;
    for (Index k = 0; k < K; ++k) q[n * K + k] = std::int8_t(std::nearbyint(row[k] * inv));
  }
}

namespace {

// A packing's skeleton: PackedMat's panel order, `depth` k per 32-bit lane.
template <class W>
PackedMat<W> lowp_skeleton(Index N, Index K, Index gates, Index depth) {
  if (gates < 1 || N % gates != 0)
    throw std::invalid_argument("pack: " + std::to_string(N) + " rows do not split into " + std::to_string(gates) +
                                " gate blocks");
  PackedMat<W> m;
  m.K = K, m.N = N, m.width = kLowpWidth, m.gates = gates;
  const Index panels = m.chunks() * gates, groups = (K + depth - 1) / depth;
  m.data.assign(std::size_t(panels * groups * kLowpWidth * depth), W{});
  return m;
}

// Calls f(n, j, c): row n of W is column c of panel j.
template <class F>
void for_packed_columns(Index N, Index gates, F&& f) {
  const Index block = N / gates, chunks = (block + kLowpWidth - 1) / kLowpWidth;
  for (Index ch = 0; ch < chunks; ++ch)
    for (Index g = 0; g < gates; ++g)
      for (Index c = 0; c < std::min(kLowpWidth, block - ch * kLowpWidth); ++c)
        f(g * block + ch * kLowpWidth + c, ch * gates + g, c);
}

}  // namespace

PackedMat<std::int8_t> pack_int8(const std::int8_t* q, const float* scale, Index N, Index K, Index gates) {
  if (K > kMaxInt8Depth)
    throw std::invalid_argument("int8 products take at most " + std::to_string(kMaxInt8Depth) + " inputs, got " +
                                std::to_string(K));
  auto m = lowp_skeleton<std::int8_t>(N, K, gates, 4);
  const Index groups = (K + 3) / 4, panels = m.chunks() * gates;
  m.scale.assign(std::size_t(panels * kLowpWidth), 0.0f);
  m.sums.assign(std::size_t(panels * kLowpWidth), 0);
  for_packed_columns(N, gates, [&](Index n, Index j, Index c) {
    std::int32_t sum = 0;
    for (Index k = 0; k < K; ++k) {
      const std::int8_t v = q[n * K + k];
      m.data[std::size_t(((j * groups + k / 4) * kLowpWidth + c) * 4 + k % 4)] = v;
      sum += v;
    }
    m.scale[std::size_t(j * kLowpWidth + c)] = scale[n];
    m.sums[std::size_t(j * kLowpWidth + c)] = sum;
  });
  return m;
}

PackedMat<Bf16> pack_bf16(const Bf16* w, Index N, Index K, Index gates) {
  auto m = lowp_skeleton<Bf16>(N, K, gates, 2);
  const Index groups = (K + 1) / 2;
  for_packed_columns(N, gates, [&](Index n, Index j, Index c) {
    for (Index k = 0; k < K; ++k) m.data[std::size_t(((j * groups + k / 2) * kLowpWidth + c) * 2 + k % 2)] = w[n * K + k];
  });
  return m;
}

namespace {

// ---- the activations, one row at a time --------------------------------------------

// Row x (K) quantized: out[0, Kp) its values (+128 as u8 where `shifted`, else s8;
// padding: 0), the return value its scale (NaN where x holds a NaN or an infinity:
// the product's row is then NaN, as float32's would be).
float quantize_row(const float* x, Index K, Index Kp, std::uint8_t* out, bool shifted) {
  // max |x| on the bit patterns: those of non-negative floats order as the floats do, and
  // an infinity's or a NaN's lie above every finite one's (an integer max, which vectorizes)
  std::uint32_t bits = 0;
  for (Index k = 0; k < K; ++k) {
    std::uint32_t u;
    std::memcpy(&u, x + k, 4);
    u &= 0x7fffffffu;
    bits = u > bits ? u : bits;
  }
  const bool finite = bits < 0x7f800000u;
  float amax;
  std::memcpy(&amax, &bits, 4);
  const std::uint8_t zero = shifted ? 128 : 0;
  if (!finite || amax == 0) {
    std::fill_n(out, Kp, zero);
    return finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
  }
  const float inv = 127.0f / amax;
  for (Index k = 0; k < K; ++k) {
    const int v = int(std::nearbyint(x[k] * inv));
    out[k] = std::uint8_t(shifted ? v + 128 : v);
  }
  std::fill(out + K, out + Kp, zero);
  return amax / 127.0f;
}

void round_row(const float* x, Index K, Index Kp, Bf16* out) {
  for (Index k = 0; k < K; ++k) out[k] = to_bf16(x[k]);
  std::fill(out + K, out + Kp, Bf16{});
}

// The rows of one product's A, prepared (each thread its own; grown, never shrunk).
struct RowBuffer {
  std::vector<std::uint8_t> bytes;
  std::vector<float> scale;
};
RowBuffer& row_buffer() {
  thread_local RowBuffer b;
  return b;
}

// The arguments of a tile of up to 6 rows by one panel's 32 columns.
template <class A, class W>
struct Tile {
  Index rows;          // 1..6
  float* const* c;     // each row's first column in C
  const A* a;          // the rows' prepared activations, Kp apart
  Index Kp;
  const float* sa;     // int8: each row's scale
  const W* p;          // the panel
  Index groups;        // of `depth` k
  const float* sw;     // int8: each column's scale
  const std::int32_t* sums;  // int8: each column's Σ q
  Index valid;         // real columns (<= 32)
  bool accumulate;
  Index col = 0;       // the panel's first column in C
};

using Int8Tile = Tile<std::uint8_t, std::int8_t>;
using Bf16Tile = Tile<Bf16, Bf16>;

// ---- portable ----------------------------------------------------------------------

void int8_portable(const Int8Tile& t) {
  for (Index r = 0; r < t.rows; ++r) {
    const auto* a = reinterpret_cast<const std::int8_t*>(t.a + r * t.Kp);
    for (Index n = 0; n < t.valid; ++n) {
      std::int32_t s = 0;
      for (Index g = 0; g < t.groups; ++g)
        for (Index d = 0; d < 4; ++d) s += std::int32_t(a[4 * g + d]) * t.p[(g * kLowpWidth + n) * 4 + d];
      t.c[r][n] = std::fma(float(s), t.sa[r] * t.sw[n], t.accumulate ? t.c[r][n] : 0.0f);
    }
  }
}

void bf16_portable(const Bf16Tile& t) {
  for (Index r = 0; r < t.rows; ++r) {
    const Bf16* a = t.a + r * t.Kp;
    for (Index n = 0; n < t.valid; ++n) {
      float s = t.accumulate ? t.c[r][n] : 0.0f;
      for (Index g = 0; g < t.groups; ++g) {
        const Bf16* w = t.p + (g * kLowpWidth + n) * 2;
        s = std::fma(from_bf16(a[2 * g + 1]), from_bf16(w[1]), s);
        s = std::fma(from_bf16(a[2 * g]), from_bf16(w[0]), s);
      }
      t.c[r][n] = s;
    }
  }
}

#if RNNKIT_X86_KERNELS

inline std::int32_t load32(const void* p) {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// ---- AVX-512 -----------------------------------------------------------------------

RNNKIT_TARGET_VNNI inline __mmask16 half_mask(Index valid, int half) {
  const Index n = std::clamp<Index>(valid - 16 * half, 0, 16);
  return __mmask16((1u << n) - 1u);
}

template <int M>
RNNKIT_TARGET_VNNI void int8_vnni_store(const Int8Tile& t, const __m512i* s0, const __m512i* s1);

template <int M>
RNNKIT_TARGET_VNNI void int8_vnni_rows(const Int8Tile& t) {
  __m512i s0[M], s1[M];
  for (int r = 0; r < M; ++r) s0[r] = s1[r] = _mm512_setzero_si512();
  const std::int8_t* p = t.p;
  for (Index g = 0; g < t.groups; ++g, p += 4 * kLowpWidth) {
    const __m512i w0 = _mm512_loadu_si512(p), w1 = _mm512_loadu_si512(p + 64);
    for (int r = 0; r < M; ++r) {
      const __m512i a = _mm512_set1_epi32(load32(t.a + r * t.Kp + 4 * g));
      s0[r] = _mm512_dpbusd_epi32(s0[r], a, w0);
      s1[r] = _mm512_dpbusd_epi32(s1[r], a, w1);
    }
  }
  int8_vnni_store<M>(t, s0, s1);
}

// A tile's sums (two registers per row, of the shifted activations) scaled back into C.
template <int M>
RNNKIT_TARGET_VNNI void int8_vnni_store(const Int8Tile& t, const __m512i* s0, const __m512i* s1) {
  const __mmask16 m0 = half_mask(t.valid, 0), m1 = half_mask(t.valid, 1);
  const __m512 sw0 = _mm512_loadu_ps(t.sw), sw1 = _mm512_loadu_ps(t.sw + 16);
  const __m512i c0 = _mm512_slli_epi32(_mm512_loadu_si512(t.sums), 7), c1 = _mm512_slli_epi32(_mm512_loadu_si512(t.sums + 16), 7);
  for (int r = 0; r < M; ++r) {
    const __m512 sa = _mm512_set1_ps(t.sa[r]);
    const __m512 b0 = t.accumulate ? _mm512_maskz_loadu_ps(m0, t.c[r]) : _mm512_setzero_ps();
    const __m512 b1 = t.accumulate ? _mm512_maskz_loadu_ps(m1, t.c[r] + 16) : _mm512_setzero_ps();
    _mm512_mask_storeu_ps(t.c[r], m0,
                          _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(s0[r], c0)), _mm512_mul_ps(sa, sw0), b0));
    _mm512_mask_storeu_ps(t.c[r] + 16, m1,
                          _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(s1[r], c1)), _mm512_mul_ps(sa, sw1), b1));
  }
}

// One row by four panels at once (the streaming step's products): eight chains of dot
// products in flight, where one panel's two would wait on each other's latency.
RNNKIT_TARGET_VNNI void int8_vnni_row4(const Int8Tile* t) {
  __m512i s[8];
  for (auto& v : s) v = _mm512_setzero_si512();
  for (Index g = 0; g < t[0].groups; ++g) {
    const __m512i a = _mm512_set1_epi32(load32(t[0].a + 4 * g));
    for (int q = 0; q < 4; ++q) {
      const std::int8_t* p = t[q].p + g * 4 * kLowpWidth;
      s[2 * q] = _mm512_dpbusd_epi32(s[2 * q], a, _mm512_loadu_si512(p));
      s[2 * q + 1] = _mm512_dpbusd_epi32(s[2 * q + 1], a, _mm512_loadu_si512(p + 64));
    }
  }
  for (int q = 0; q < 4; ++q) int8_vnni_store<1>(t[q], s + 2 * q, s + 2 * q + 1);
}

template <int M>
RNNKIT_TARGET_BF16 void bf16_avx512_rows(const Bf16Tile& t) {
  const __mmask16 m0 = half_mask(t.valid, 0), m1 = half_mask(t.valid, 1);
  __m512 s0[M], s1[M];
  for (int r = 0; r < M; ++r) {
    s0[r] = t.accumulate ? _mm512_maskz_loadu_ps(m0, t.c[r]) : _mm512_setzero_ps();
    s1[r] = t.accumulate ? _mm512_maskz_loadu_ps(m1, t.c[r] + 16) : _mm512_setzero_ps();
  }
  const Bf16* p = t.p;
  for (Index g = 0; g < t.groups; ++g, p += 2 * kLowpWidth) {
    const __m512bh w0 = (__m512bh)_mm512_loadu_si512(p), w1 = (__m512bh)_mm512_loadu_si512(p + 32);
    for (int r = 0; r < M; ++r) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32(load32(t.a + r * t.Kp + 2 * g));
      s0[r] = _mm512_dpbf16_ps(s0[r], a, w0);
      s1[r] = _mm512_dpbf16_ps(s1[r], a, w1);
    }
  }
  for (int r = 0; r < M; ++r) {
    _mm512_mask_storeu_ps(t.c[r], m0, s0[r]);
    _mm512_mask_storeu_ps(t.c[r] + 16, m1, s1[r]);
  }
}

// ---- AVX2 --------------------------------------------------------------------------

RNNKIT_TARGET_AVX2 inline __m256i quarter_mask(Index valid, int q) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(valid - 8 * q)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

template <int M>
RNNKIT_TARGET_AVX2 void int8_avx2_rows(const Int8Tile& t) {
  __m256i s[M][4];
  for (int r = 0; r < M; ++r)
    for (int q = 0; q < 4; ++q) s[r][q] = _mm256_setzero_si256();
  const __m256i ones = _mm256_set1_epi16(1);
  const std::int8_t* p = t.p;
  for (Index g = 0; g < t.groups; ++g, p += 4 * kLowpWidth)
    for (int r = 0; r < M; ++r) {
      const __m256i a = _mm256_set1_epi32(load32(t.a + r * t.Kp + 4 * g)), ua = _mm256_abs_epi8(a);
      for (int q = 0; q < 4; ++q) {
        const __m256i w = _mm256_sign_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32 * q)), a);
        s[r][q] = _mm256_add_epi32(s[r][q], _mm256_madd_epi16(_mm256_maddubs_epi16(ua, w), ones));
      }
    }
  for (int q = 0; q < 4; ++q) {
    const __m256i mask = quarter_mask(t.valid, q);
    const __m256 sw = _mm256_loadu_ps(t.sw + 8 * q);
    for (int r = 0; r < M; ++r) {
      const __m256 b = t.accumulate ? _mm256_maskload_ps(t.c[r] + 8 * q, mask) : _mm256_setzero_ps();
      _mm256_maskstore_ps(t.c[r] + 8 * q, mask,
                          _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[r][q]), _mm256_mul_ps(_mm256_set1_ps(t.sa[r]), sw), b));
    }
  }
}

template <int M>
RNNKIT_TARGET_AVX2 void bf16_avx2_rows(const Bf16Tile& t) {
  __m256 s[M][4];
  __m256i mask[4];
  for (int q = 0; q < 4; ++q) mask[q] = quarter_mask(t.valid, q);
  for (int r = 0; r < M; ++r)
    for (int q = 0; q < 4; ++q) s[r][q] = t.accumulate ? _mm256_maskload_ps(t.c[r] + 8 * q, mask[q]) : _mm256_setzero_ps();
  const __m256i high = _mm256_set1_epi32(int(0xffff0000u));
  const Bf16* p = t.p;
  for (Index g = 0; g < t.groups; ++g, p += 2 * kLowpWidth)
    for (int q = 0; q < 4; ++q) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16 * q));
      const __m256 w1 = _mm256_castsi256_ps(_mm256_and_si256(w, high)), w0 = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
      for (int r = 0; r < M; ++r) {
        const Bf16* a = t.a + r * t.Kp + 2 * g;
        s[r][q] = _mm256_fmadd_ps(_mm256_set1_ps(from_bf16(a[1])), w1, s[r][q]);
        s[r][q] = _mm256_fmadd_ps(_mm256_set1_ps(from_bf16(a[0])), w0, s[r][q]);
      }
    }
  for (int r = 0; r < M; ++r)
    for (int q = 0; q < 4; ++q) _mm256_maskstore_ps(t.c[r] + 8 * q, mask[q], s[r][q]);
}

#endif  // RNNKIT_X86_KERNELS

// A kernel for tiles of up to `rows` rows, and how it wants its activations.
template <class T>
struct Kernel {
  void (*run)(const T&);
  Index rows;
  bool shifted;  // int8: activations +128 as u8
  const char* name;
  void (*row4)(const T*) = nullptr;  // one row by four panels, where the kernel has it
};

#if RNNKIT_X86_KERNELS
#define RNNKIT_ROWS_SWITCH(FN, MAXR)                  \
  [](const auto& t) {                                 \
    switch (t.rows) {                                 \
      case 6: if constexpr (MAXR >= 6) FN<6>(t); break; \
      case 5: if constexpr (MAXR >= 5) FN<5>(t); break; \
      case 4: if constexpr (MAXR >= 4) FN<4>(t); break; \
      case 3: if constexpr (MAXR >= 3) FN<3>(t); break; \
      case 2: if constexpr (MAXR >= 2) FN<2>(t); break; \
      default: FN<1>(t); break;                       \
    }                                                 \
  }
#endif

const Kernel<Int8Tile>& int8_kernel_in_use() {
  static const Kernel<Int8Tile> k = [] {
    const CpuFeatures& f = cpu_features();
#if RNNKIT_X86_KERNELS
    if (f.chosen == IsaLevel::Avx512 && f.avx512_vnni)
      return Kernel<Int8Tile>{RNNKIT_ROWS_SWITCH(int8_vnni_rows, 6), 6, true, "avx512_vnni", int8_vnni_row4};
    if (f.chosen >= IsaLevel::Avx2)
      return Kernel<Int8Tile>{RNNKIT_ROWS_SWITCH(int8_avx2_rows, 2), 2, false, "avx2"};
#endif
    (void)f;
    return Kernel<Int8Tile>{int8_portable, 6, false, "portable"};
  }();
  return k;
}

const Kernel<Bf16Tile>& bf16_kernel_in_use() {
  static const Kernel<Bf16Tile> k = [] {
    const CpuFeatures& f = cpu_features();
#if RNNKIT_X86_KERNELS
    if (f.chosen == IsaLevel::Avx512 && f.avx512_bf16)
      return Kernel<Bf16Tile>{RNNKIT_ROWS_SWITCH(bf16_avx512_rows, 6), 6, false, "avx512_bf16"};
    if (f.chosen >= IsaLevel::Avx2)
      return Kernel<Bf16Tile>{RNNKIT_ROWS_SWITCH(bf16_avx2_rows, 2), 2, false, "avx2"};
#endif
    (void)f;
    return Kernel<Bf16Tile>{bf16_portable, 6, false, "portable"};
  }();
  return k;
}

// The panels [p0, p1) of C = A · W over tiles of the kernel's rows; `prepare(row, out)`
// writes a row of A as the kernel reads it and returns its scale.
template <class A, class W, class Prepare>
void lowp_panels(const Kernel<Tile<A, W>>& kern, Index depth, float* c, Index ldc, const Index* c_rows, const float* a,
                 Index lda, const Index* a_rows, Index m, const PackedMat<W>& w, Index p0, Index p1, bool accumulate,
                 Prepare&& prepare) {
  if (m <= 0 || p1 <= p0) return;
  const Index groups = (w.K + depth - 1) / depth, Kp = groups * depth;
  RowBuffer& buf = row_buffer();
  const std::size_t need = std::size_t(m * Kp) * sizeof(A);
  if (buf.bytes.size() < need) buf.bytes.resize(need);
  if (buf.scale.size() < std::size_t(m)) buf.scale.resize(std::size_t(m));
  A* rows = reinterpret_cast<A*>(buf.bytes.data());
  for (Index i = 0; i < m; ++i)
    buf.scale[std::size_t(i)] = prepare(a + (a_rows ? a_rows[i] : i) * lda, Kp, rows + i * Kp);
  const Index block = w.block(), MR = kern.rows;
  auto tile_of = [&](Index j) {  // panel j's tile, its rows still to be given
    Tile<A, W> t;
    const Index chunk = j / w.gates;
    t.col = j % w.gates * block + chunk * kLowpWidth;
    t.Kp = Kp;
    t.p = w.data.data() + j * groups * kLowpWidth * depth;
    t.groups = groups;
    t.sw = w.scale.empty() ? nullptr : w.scale.data() + j * kLowpWidth;
    t.sums = w.sums.empty() ? nullptr : w.sums.data() + j * kLowpWidth;
    t.valid = std::min(kLowpWidth, block - chunk * kLowpWidth);
    t.accumulate = accumulate;
    t.a = rows;
    t.sa = buf.scale.data();
    return t;
  };
  Index j = p0;
  if (m == 1 && kern.row4) {  // one row: four panels at a time
    float* row = c + (c_rows ? c_rows[0] : 0) * ldc;
    for (; j + 4 <= p1; j += 4) {
      Tile<A, W> t[4];
      float* ct[4];
      for (int q = 0; q < 4; ++q) {
        t[q] = tile_of(j + q);
        t[q].rows = 1, ct[q] = row + t[q].col, t[q].c = &ct[q];
      }
      kern.row4(t);
    }
  }
  for (; j < p1; ++j) {
    Tile<A, W> t = tile_of(j);
    for (Index i = 0; i < m; i += MR) {
      float* ct[6];
      t.rows = std::min(MR, m - i);
      for (Index r = 0; r < t.rows; ++r) ct[r] = c + (c_rows ? c_rows[i + r] : i + r) * ldc + t.col;
      t.c = ct;
      t.a = rows + i * Kp;
      t.sa = buf.scale.data() + i;
      kern.run(t);
    }
  }
}

}  // namespace

const char* int8_kernel() { return int8_kernel_in_use().name; }
const char* bf16_kernel() { return bf16_kernel_in_use().name; }

namespace detail {

void packed_gemm_panels(float* c, Index ldc, const Index* c_rows, const float* a, Index lda, const Index* a_rows,
                        Index m, const PackedMat<std::int8_t>& w, Index p0, Index p1, bool accumulate) {
  const auto& kern = int8_kernel_in_use();
  const Index K = w.K;
  lowp_panels(kern, 4, c, ldc, c_rows, a, lda, a_rows, m, w, p0, p1, accumulate,
              [&](const float* x, Index Kp, std::uint8_t* out) { return quantize_row(x, K, Kp, out, kern.shifted); });
}

void packed_gemm_panels(float* c, Index ldc, const Index* c_rows, const float* a, Index lda, const Index* a_rows,
                        Index m, const PackedMat<Bf16>& w, Index p0, Index p1, bool accumulate) {
  const Index K = w.K;
  lowp_panels(bf16_kernel_in_use(), 2, c, ldc, c_rows, a, lda, a_rows, m, w, p0, p1, accumulate,
              [&](const float* x, Index Kp, Bf16* out) {
                round_row(x, K, Kp, out);
                return 1.0f;
              });
}

}  // namespace detail
}  // namespace rnnkit
