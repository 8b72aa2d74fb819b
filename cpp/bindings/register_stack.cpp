// rnnkit._core.StackSpec, forward and backward: one template for all cells and
// both dtypes. Shapes are checked here (the core trusts its pointers), the
// outputs are allocated, then the GIL is released while the core computes.

#include <pybind11/stl.h>

#include "numpy.h"
#include "rnnkit/cells.h"
#include "rnnkit/rnnkit.h"
#include "rnnkit/weights.h"

namespace rnnkit_py {

using rnnkit::CellType;
using rnnkit::StackCache;
using rnnkit::StackSpec;

namespace {

template <class S>
py::tuple forward(const StackSpec& s, const Array<S>& params, const Array<S>& x, bool batch_first,
                  const std::optional<Array<S>>& h0, const std::optional<Array<S>>& c0,
                  const std::optional<IntArray>& lengths, const std::vector<Array<S>>& dropout, bool training,
                  const py::object& reuse, const rnnkit::LowpStack* lowp) {
  const Index L = s.num_layers, D = s.directions(), P = s.out_size(), H = s.hidden_size;
  const bool lstm = s.decl().has_c;
  check_shape(params, {s.num_params()}, "params");
  if (x.ndim() != 3 || x.shape(2) != s.input_size)
    throw py::value_error("x has shape " + shape_str(shape_of(x)) + ", expected (T, B, " +
                          std::to_string(s.input_size) + ")");
  const Index T = batch_first ? x.shape(1) : x.shape(0), B = batch_first ? x.shape(0) : x.shape(1);
  if (h0) check_shape(*h0, {D * L, B, P}, "h0");
  if (c0) {
    if (!lstm) throw py::value_error("c0 is only for a cell with a cell state (LSTM)");
    check_shape(*c0, {D * L, B, H}, "c0");
  }
  if (lengths) check_shape(*lengths, {B}, "lengths");
  if (lowp) {
    if (!std::is_same_v<S, float>) throw py::value_error("reduced-precision weights run in float32 only");
    if (training) throw py::value_error("a model with reduced-precision weights runs inference only");
    const std::size_t dirs = std::size_t(L * D);
    if ((lowp->int8.size() != dirs && lowp->bf16.size() != dirs))
      throw py::value_error("lowp: its weights are for another stack");
  }
  if (!dropout.empty()) {
    if (Index(dropout.size()) != L - 1)
      throw py::value_error("dropout: expected " + std::to_string(L - 1) + " masks, got " +
                            std::to_string(dropout.size()));
    for (const auto& m : dropout) check_shape(m, {x.shape(0), x.shape(1), D * P}, "dropout mask");
  }

  auto out = empty<S>({x.shape(0), x.shape(1), D * P});
  auto h_n = empty<S>({D * L, B, P});
  py::object c_n = py::none();
  std::vector<const S*> masks;
  for (const auto& m : dropout) masks.push_back(m.data());

  rnnkit::SeqArgs<S> a;
  a.T = T;
  a.B = B;
  a.batch_first = batch_first;
  a.lengths = lengths ? lengths->data() : nullptr;
  a.x = x.data();
  a.h0 = data_or_null(h0);
  a.c0 = data_or_null(c0);
  a.dropout = masks.empty() ? nullptr : masks.data();
  a.out = out.mutable_data();
  a.h_n = h_n.mutable_data();
  a.lowp = lowp;
  if (lstm) {
    auto cn = empty<S>({D * L, B, H});
    a.c_n = cn.mutable_data();
    c_n = cn;
  }
  // Training: `reuse` (a cache whose backward is done: the forward refills its buffers) or a fresh cache.
  py::object cache_obj = py::none();
  StackCache<S>* cache = nullptr;
  if (training) {
    if (reuse.is_none())
      cache_obj = py::cast(std::make_unique<StackCache<S>>());
    else if (py::isinstance<StackCache<S>>(reuse))
      cache_obj = reuse;
    else
      throw py::type_error("reuse: expected a cache of the same dtype from an earlier training forward, got " +
                           std::string(py::str(py::type::of(reuse))));
    cache = cache_obj.cast<StackCache<S>*>();
  }
  {
    py::gil_scoped_release release;
    rnnkit::forward(s, params.data(), a, cache);
  }
  return py::make_tuple(out, h_n, c_n, cache_obj);
}

template <class S>
py::tuple backward(const StackSpec& s, const Array<S>& params, Array<S>& grads, StackCache<S>& cache,
                   const std::optional<Array<S>>& grad_out, const std::optional<Array<S>>& grad_h_n,
                   const std::optional<Array<S>>& grad_c_n) {
  const Index L = s.num_layers, D = s.directions(), P = s.out_size(), H = s.hidden_size;
  const bool lstm = s.decl().has_c;
  check_shape(params, {s.num_params()}, "params");
  check_shape(grads, {s.num_params()}, "grads");
  const auto& pk = cache.pack;
  const Index T = pk.T, B = pk.B;
  const std::vector<Index> seq = cache.batch_first ? std::vector<Index>{B, T} : std::vector<Index>{T, B};
  if (grad_out) check_shape(*grad_out, {seq[0], seq[1], D * P}, "grad_out");
  if (grad_h_n) check_shape(*grad_h_n, {D * L, B, P}, "grad_h_n");
  if (grad_c_n) {
    if (!lstm) throw py::value_error("grad_c_n is only for a cell with a cell state (LSTM)");
    check_shape(*grad_c_n, {D * L, B, H}, "grad_c_n");
  }
  auto grad_x = empty<S>({seq[0], seq[1], s.input_size});
  auto grad_h0 = empty<S>({D * L, B, P});
  py::object grad_c0 = py::none();
  rnnkit::SeqGradArgs<S> g;
  g.grad_out = data_or_null(grad_out);
  g.grad_h_n = data_or_null(grad_h_n);
  g.grad_c_n = data_or_null(grad_c_n);
  g.grad_x = grad_x.mutable_data();
  g.grad_h0 = grad_h0.mutable_data();
  if (lstm) {
    auto gc0 = empty<S>({D * L, B, H});
    g.grad_c0 = gc0.mutable_data();
    grad_c0 = gc0;
  }
  S* gp = grads.mutable_data();
  {
    py::gil_scoped_release release;
    rnnkit::backward(s, params.data(), gp, cache, g);
  }
  return py::make_tuple(grad_x, grad_h0, grad_c0);
}

template <class S>
void register_dtype(py::module_& m, const char* cache_name) {
  py::class_<StackCache<S>>(m, cache_name, "What a training forward keeps for backward (opaque).");
  m.def("forward", &forward<S>, py::arg("spec"), py::arg("params").noconvert(), py::arg("x").noconvert(),
        py::arg("batch_first"), py::arg("h0").noconvert() = py::none(), py::arg("c0").noconvert() = py::none(),
        py::arg("lengths").noconvert() = py::none(), py::arg("dropout") = std::vector<Array<S>>(),
        py::arg("training") = false, py::arg("reuse") = py::none(), py::arg("lowp") = nullptr);
  m.def("backward", &backward<S>, py::arg("spec"), py::arg("params").noconvert(), py::arg("grads").noconvert(),
        py::arg("cache"), py::arg("grad_out").noconvert() = py::none(),
        py::arg("grad_h_n").noconvert() = py::none(), py::arg("grad_c_n").noconvert() = py::none());
}

}  // namespace

void register_stack(py::module_& m) {
  py::class_<StackSpec>(m, "StackSpec", "A recurrent stack's cell type, sizes and options.")
      .def(py::init([](const std::string& mode, Index input_size, Index hidden_size, Index num_layers, bool bias,
                       bool bidirectional, Index proj_size, bool reset_after, bool peepholes) {
             StackSpec s;
             s.cell = rnnkit::cell_type(mode);
             s.input_size = input_size;
             s.hidden_size = hidden_size;
             s.num_layers = num_layers;
             s.bias = bias;
             s.bidirectional = bidirectional;
             s.proj_size = proj_size;
             s.reset_after = reset_after;
             s.peepholes = peepholes;
             s.validate();
             return s;
           }),
           py::arg("mode"), py::arg("input_size"), py::arg("hidden_size"), py::arg("num_layers") = 1,
           py::arg("bias") = true, py::arg("bidirectional") = false, py::arg("proj_size") = 0,
           py::arg("reset_after") = true, py::arg("peepholes") = false)
      .def_property_readonly("num_params", &StackSpec::num_params)
      .def_property_readonly("gates", &StackSpec::gates,
                             "Gate blocks of hidden_size rows in each weight (the cell's declaration).")
      .def_property_readonly("unit_weight_rows", [](const StackSpec& s) { return s.decl().peepholes; },
                             "Rows of the per-unit weight (LSTM peepholes: 3), 0 for none (the cell's declaration).")
      .def_property_readonly("num_tensors", &StackSpec::num_tensors,
                             "len(param_layout()), in closed form: nothing is listed or allocated.")
      .def("param_shapes", [](const StackSpec& s) {
        py::list out;
        for (const auto& p : s.param_shapes())
          out.append(py::make_tuple(p.name, p.cols ? py::tuple(py::make_tuple(p.rows, p.cols))
                                                   : py::tuple(py::make_tuple(p.rows))));
        return out;
      }, "[(name, shape)] of every parameter, in buffer order, with no product of sizes formed "
         "(for sizes whose buffer would not fit).")
      .def("param_layout", [](const StackSpec& s) {
        py::list out;
        for (const auto& p : s.param_layout()) {
          py::tuple shape = p.cols ? py::tuple(py::make_tuple(p.rows, p.cols)) : py::tuple(py::make_tuple(p.rows));
          out.append(py::make_tuple(p.name, p.offset, shape));
        }
        return out;
      }, "[(name, offset, shape)] of every parameter, in buffer order.");
  register_dtype<float>(m, "_Cache32");
  register_dtype<double>(m, "_Cache64");
}

}  // namespace rnnkit_py
