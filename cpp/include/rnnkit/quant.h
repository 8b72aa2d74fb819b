#pragma once
// Reduced-precision weights: int8 and bfloat16, for inference.
//
// int8: each output row n of a weight matrix W (N, K) has its own scale,
//   s_w[n] = max_k |W[n, k]| / 127,  q[n, k] = round(W[n, k] / s_w[n])  in [-127, 127]
// (symmetric, per output row: CTranslate2's and PyTorch's per-channel scheme).
// A product a·W^T quantizes each row of a the same way as it runs (dynamic,
// one scale per row and call: per row per step on the recurrent product),
//   s_a = max_k |a[k]| / 127,  a_q[k] = round(a[k] / s_a),
// sums a_q·q exactly in int32, and gives  y[n] = float(Σ_k a_q[k] q[n, k]) · (s_a · s_w[n]).
//
// bfloat16: weights and activations rounded to nearest even into bfloat16,
// their products summed in float32 (each product of two bfloat16 is exact in
// float32), k in pairs: acc += a[2i+1]·w[2i+1], then acc += a[2i]·w[2i].
//
// Every kernel (AVX-512 VNNI / BF16, AVX2, portable) computes exactly these sums
// in this order, so their results are the same wherever they run; which one
// runs is chosen once from the CPU (cpu_features, RNNKIT_ISA caps it).
//
// The packing (PackedMat<std::int8_t>, PackedMat<Bf16>): W^T (K, N) in panels of
// kLowpWidth columns as gemm.h's PackedMat (gate blocks chunk by chunk), each
// panel's K rows in groups of kLowpDepth (4 int8 or 2 bfloat16: what one 32-bit
// lane of the dot-product instructions takes), zero-padded:
//   panel j, group g, column c, depth d  at  ((j·G + g)·kLowpWidth + c)·depth + d
// with `scale` (int8: s_w of each padded column) beside it.

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "gemm.h"

namespace rnnkit {

/// The precision a model's weights are stored and multiplied in.
enum class Precision { Float, Int8, Bf16 };

/// "float32" / "int8" / "bf16" (what repr, summary and the model file say).
const char* precision_name(Precision p);
/// The precision a name gives ("int8", "bf16"; "float32" and "float" give Float). Throws std::invalid_argument.
Precision precision_from_name(const std::string& name);

/// A bfloat16, as its 16 bits.
struct Bf16 {
  std::uint16_t bits = 0;
};

/// float -> bfloat16, rounded to nearest even (NaN stays NaN).
inline Bf16 to_bf16(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return Bf16{std::uint16_t((u >> 16) | 0x40)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return Bf16{std::uint16_t(u >> 16)};
}
inline float from_bf16(Bf16 b) {
  const std::uint32_t u = std::uint32_t(b.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

constexpr Index kLowpWidth = 32;  // columns per panel: two AVX-512 registers of 32-bit sums

/// int8 weights of W (N, K) row-major: q (N, K) and the scale of each row (N).
void quantize_int8(const float* w, Index N, Index K, std::int8_t* q, float* scale);

/// Pack W^T for the int8 products, from W (N, K) already quantized (q, scale: quantize_int8's,
/// or a model file's), its N rows in `gates` blocks as PackedMat's.
PackedMat<std::int8_t> pack_int8(const std::int8_t* q, const float* scale, Index N, Index K, Index gates = 1);
/// Pack W^T for the bfloat16 products, from W (N, K) in bfloat16.
PackedMat<Bf16> pack_bf16(const Bf16* w, Index N, Index K, Index gates = 1);

/// The kernels in use (cpu_features' choice): "avx512_vnni", "avx2", "portable" (int8);
/// "avx512_bf16", "avx2", "portable" (bfloat16).
const char* int8_kernel();
const char* bf16_kernel();

// detail::packed_gemm_panels (declared in gemm.h) takes these packings: panels
// [p0, p1) of C (m, N) = A (m, K) · W (or +=), with packed_gemm_panels's row maps.
// Each row of A is quantized (int8) or rounded (bfloat16) as the product runs,
// into a buffer of the calling thread's that grows to the largest product it
// has run and then stays: after the first call of a size, nothing is allocated.

/// y (N) = x (K) · W, or +=, one row: the streaming step's products in reduced precision.
inline void vec_mat(float* y, const float* x, const PackedMat<std::int8_t>& w, bool accumulate = false,
                    bool = false) {
  detail::packed_gemm_panels(y, 0, nullptr, x, 0, nullptr, 1, w, 0, w.chunks() * w.gates, accumulate);
}
inline void vec_mat(float* y, const float* x, const PackedMat<Bf16>& w, bool accumulate = false, bool = false) {
  detail::packed_gemm_panels(y, 0, nullptr, x, 0, nullptr, 1, w, 0, w.chunks() * w.gates, accumulate);
}

}  // namespace rnnkit
