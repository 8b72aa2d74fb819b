// rnnkit::lowp_stack: a recurrent stack's int8 / bfloat16 weight matrices, packed
// once for the driver's products (weights.h).

#include "rnnkit/weights.h"

#include <stdexcept>

namespace rnnkit {

namespace {

std::string suffix(Index l, Index d) { return "_l" + std::to_string(l) + (d ? "_reverse" : ""); }

template <class W, class Pack>
DirWeights<W> pack_dir(const StackSpec& s, Index l, Index d, Pack&& pack) {
  const CellDecl cd = s.decl();
  const Index H = s.hidden_size, P = s.out_size(), GH = cd.gates * H, R = cd.rec_gates() * H;
  const Index I = s.layer_input_size(l);
  const std::string sfx = suffix(l, d);
  DirWeights<W> w;
  w.w_in = pack("weight_ih" + sfx, 0, GH, I, cd.gates);
  w.w_rec = pack("weight_hh" + sfx, 0, R, P, R / H);
  if (R < GH) w.w_gated = pack("weight_hh" + sfx, R, GH - R, P, 1);
  if (s.proj_size > 0) w.w_proj = pack("weight_hr" + sfx, 0, P, H, 1);
  return w;
}

const void* need(const LowpTensors& tensor, const std::string& name) {
  const void* p = tensor(name);
  if (!p) throw std::invalid_argument("no tensor " + name);
  return p;
}

}  // namespace

std::vector<LowpMatrix> lowp_matrices(const StackSpec& s) {
  std::vector<LowpMatrix> out;
  for (const ParamInfo& p : s.param_shapes())
    if (p.name.rfind("weight_ih", 0) == 0 || p.name.rfind("weight_hh", 0) == 0 || p.name.rfind("weight_hr", 0) == 0)
      out.push_back({p.name, p.rows, p.cols});
  return out;
}

LowpStack lowp_stack(const StackSpec& s, Precision p, const LowpTensors& tensor) {
  s.validate();
  LowpStack st;
  st.precision = p;
  for (Index l = 0; l < s.num_layers; ++l)
    for (Index d = 0; d < s.directions(); ++d) {
      if (p == Precision::Int8) {
        st.int8.push_back(pack_dir<std::int8_t>(s, l, d, [&](const std::string& name, Index row0, Index rows,
                                                                      Index cols, Index gates) {
          const auto* q = static_cast<const std::int8_t*>(need(tensor, name));
          const auto* scale = static_cast<const float*>(need(tensor, name + "_scale"));
          return pack_int8(q + row0 * cols, scale + row0, rows, cols, gates);
        }));
      } else if (p == Precision::Bf16) {
        st.bf16.push_back(pack_dir<Bf16>(s, l, d, [&](const std::string& name, Index row0, Index rows,
                                                               Index cols, Index gates) {
          const auto* b = static_cast<const Bf16*>(need(tensor, name));
          return pack_bf16(b + row0 * cols, rows, cols, gates);
        }));
      } else {
        throw std::invalid_argument("lowp_stack: precision must be int8 or bf16");
      }
    }
  return st;
}

}  // namespace rnnkit
