#pragma once
// A recurrent layer-direction's weights as the driver's products read them: packed
// float weights (packed from the parameters on every call: they may have changed
// since the last), or reduced-precision ones (quant.h), packed once when a model is
// quantized or loaded and kept in a LowpStack beside the float parameters, which
// then hold the biases and per-unit weights the cells read themselves.

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "quant.h"
#include "spec.h"

namespace rnnkit {

template <class W>
struct DirWeights {
  PackedMat<W> w_in;     // W_ih^T (I, G·H), in gate blocks
  PackedMat<W> w_rec;    // W_hh[0:R]^T (P, R), in gate blocks
  PackedMat<W> w_gated;  // W_hh[R:G·H]^T, a Gated block's (the cell multiplies it), else empty
  PackedMat<W> w_proj;   // W_hr^T (H, P) with proj_size, else empty
};

/// The float weights of layer-direction dp, packed (the driver's forward).
template <class S>
DirWeights<S> pack_dir_weights(const StackSpec& s, const S* params, const DirParams& dp) {
  const CellDecl d = s.decl();
  const Index H = s.hidden_size, P = s.out_size(), GH = d.gates * H, R = d.rec_gates() * H, I = dp.input_size;
  DirWeights<S> w;
  w.w_in = pack_for_gemm<S>(cmat(params + dp.w_ih, GH, I).transpose(), d.gates);
  w.w_rec = pack_for_gemm<S>(cmat(params + dp.w_hh, R, P).transpose(), R / H);
  if (R < GH) w.w_gated = pack_for_gemm<S>(cmat(params + dp.w_hh + R * P, GH - R, P).transpose());
  if (dp.w_hr >= 0) w.w_proj = pack_for_gemm<S>(cmat(params + dp.w_hr, P, H).transpose());
  return w;
}

/// A recurrent stack's weight matrices in int8 or bfloat16, packed, for every
/// layer-direction [l·D + d]. Its biases (and peepholes) stay float32, in the
/// stack's parameters.
struct LowpStack {
  Precision precision = Precision::Float;
  std::vector<DirWeights<std::int8_t>> int8;
  std::vector<DirWeights<Bf16>> bf16;
};

/// Where a stack's reduced-precision tensors are: tensor(name) gives the data of the
/// weight `name` (int8 (rows, cols) or bfloat16 bits), or of `name + "_scale"` (float32
/// (rows), int8 only). The names are the parameters' (weight_ih_l0, weight_hh_l0_reverse, ...).
using LowpTensors = std::function<const void*(const std::string& name)>;

/// The packed stack, from its tensors (throws std::invalid_argument for a missing one).
LowpStack lowp_stack(const StackSpec& s, Precision p, const LowpTensors& tensor);

/// The names of a stack's weight matrices, the ones stored in reduced precision:
/// (name, rows, cols) for weight_ih, weight_hh and weight_hr of every layer-direction.
struct LowpMatrix {
  std::string name;
  Index rows, cols;
};
std::vector<LowpMatrix> lowp_matrices(const StackSpec& s);

/// A Linear layer's weight W (out, in) in int8 / bfloat16, packed for y = x · W^T.
struct LowpLinear {
  Precision precision = Precision::Float;
  Index in = 0, out = 0;
  PackedMat<std::int8_t> int8;
  PackedMat<Bf16> bf16;
  /// y (m, out) = x (m, in) · W^T, or y += x · W^T.
  void apply(float* y, const float* x, Index m, bool accumulate) const {
    if (precision == Precision::Int8)
      packed_gemm(y, out, x, in, m, int8, accumulate);
    else
      packed_gemm(y, out, x, in, m, bf16, accumulate);
  }
};

/// From W's int8 values and row scales (int8), or its bfloat16 bits (scale unused).
inline LowpLinear lowp_linear(Precision p, Index out, Index in, const void* weight, const float* scale) {
  LowpLinear l;
  l.precision = p, l.in = in, l.out = out;
  if (p == Precision::Int8)
    l.int8 = pack_int8(static_cast<const std::int8_t*>(weight), scale, out, in);
  else if (p == Precision::Bf16)
    l.bf16 = pack_bf16(static_cast<const Bf16*>(weight), out, in);
  else
    throw std::invalid_argument("lowp_linear: precision must be int8 or bf16");
  return l;
}

}  // namespace rnnkit
