// rnnkit._core's reduced-precision parts (quant.h, weights.h): quantizing and rounding
// weights, the packed weights of a recurrent stack and of a Linear layer, and what the
// CPU has. The scheme lives in C++ alone; Python stores what these return.

#include <pybind11/stl.h>

#include <map>

#include "numpy.h"
#include "rnnkit/cpu.h"
#include "rnnkit/rnnkit.h"
#include "rnnkit/weights.h"

namespace rnnkit_py {

using rnnkit::Bf16;
using rnnkit::Precision;

namespace {

using I8Array = py::array_t<std::int8_t, py::array::c_style>;
using U16Array = py::array_t<std::uint16_t, py::array::c_style>;

Precision reduced(const std::string& name) {
  const Precision p = rnnkit::precision_from_name(name);
  if (p == Precision::Float) throw py::value_error("precision must be \"int8\" or \"bf16\", got \"" + name + "\"");
  return p;
}

// tensors[name] as an array of exactly dtype T and shape, else a ValueError naming it.
template <class T>
py::array_t<T, py::array::c_style> tensor(const py::dict& tensors, const std::string& name,
                                          const std::vector<Index>& shape, const char* dtype) {
  if (!tensors.contains(name)) throw py::value_error("missing tensor " + name);
  py::object obj = tensors[py::str(name)];
  py::array arr = py::array::ensure(obj);
  if (!arr || !arr.dtype().is(py::dtype::of<T>()))
    throw py::value_error(name + ": expected a " + dtype + " array, got " +
                          std::string(py::str(arr ? py::object(arr.dtype()) : py::type::of(obj))));
  auto a = py::array_t<T, py::array::c_style>::ensure(arr);
  check_shape(a, shape, name.c_str());
  return a;
}

}  // namespace

void register_lowp(py::module_& m) {
  m.def("quantize_int8", [](const Array<float>& w) {
    if (w.ndim() != 2) throw py::value_error("w has shape " + shape_str(shape_of(w)) + ", expected (rows, cols)");
    const Index N = w.shape(0), K = w.shape(1);
    I8Array q({N, K});
    Array<float> scale(std::vector<py::ssize_t>{N});
    rnnkit::quantize_int8(w.data(), N, K, q.mutable_data(), scale.mutable_data());
    return py::make_tuple(q, scale);
  }, py::arg("w").noconvert(),
  "(q int8 (rows, cols), scale float32 (rows)): symmetric, one scale per row, w ≈ q · scale[:, None].");
  m.def("to_bf16", [](const Array<float>& w) {
    U16Array out(std::vector<py::ssize_t>(w.shape(), w.shape() + w.ndim()));
    auto* o = reinterpret_cast<Bf16*>(out.mutable_data());
    for (Index i = 0; i < w.size(); ++i) o[i] = rnnkit::to_bf16(w.data()[i]);
    return out;
  }, py::arg("w").noconvert(), "w rounded to nearest even into bfloat16, as its uint16 bits.");
  m.def("from_bf16", [](const U16Array& b) {
    Array<float> out(std::vector<py::ssize_t>(b.shape(), b.shape() + b.ndim()));
    const auto* in = reinterpret_cast<const Bf16*>(b.data());
    for (Index i = 0; i < b.size(); ++i) out.mutable_data()[i] = rnnkit::from_bf16(in[i]);
    return out;
  }, py::arg("bits").noconvert(), "bfloat16 bits (uint16) as float32.");
  m.def("lowp_matrices", [](const rnnkit::StackSpec& s) {
    py::list out;
    for (const auto& mtx : rnnkit::lowp_matrices(s)) out.append(py::make_tuple(mtx.name, mtx.rows, mtx.cols));
    return out;
  }, "[(name, rows, cols)] of the stack's weight matrices, the ones stored in reduced precision.");

  py::class_<rnnkit::LowpStack, std::shared_ptr<rnnkit::LowpStack>>(
      m, "LowpStack", "A recurrent stack's weight matrices in int8 or bfloat16, packed for the products.")
      .def(py::init([](const rnnkit::StackSpec& s, const std::string& precision, const py::dict& tensors) {
             const Precision p = reduced(precision);
             std::vector<py::array> keep;
             std::map<std::string, const void*> ptrs;
             for (const auto& mtx : rnnkit::lowp_matrices(s)) {
               if (p == Precision::Int8) {
                 auto q = tensor<std::int8_t>(tensors, mtx.name, {mtx.rows, mtx.cols}, "int8");
                 auto sc = tensor<float>(tensors, mtx.name + "_scale", {mtx.rows}, "float32");
                 ptrs[mtx.name] = q.data(), ptrs[mtx.name + "_scale"] = sc.data();
                 keep.push_back(q), keep.push_back(sc);
               } else {
                 auto b = tensor<std::uint16_t>(tensors, mtx.name, {mtx.rows, mtx.cols}, "uint16 (bfloat16 bits)");
                 ptrs[mtx.name] = b.data();
                 keep.push_back(b);
               }
             }
             return std::make_shared<rnnkit::LowpStack>(rnnkit::lowp_stack(s, p, [&](const std::string& name) {
               auto it = ptrs.find(name);
               return it == ptrs.end() ? nullptr : it->second;
             }));
           }),
           py::arg("spec"), py::arg("precision"), py::arg("tensors"))
      .def_property_readonly("precision",
                             [](const rnnkit::LowpStack& s) { return rnnkit::precision_name(s.precision); });

  py::class_<rnnkit::LowpLinear, std::shared_ptr<rnnkit::LowpLinear>>(
      m, "LowpLinear", "A Linear layer's weight in int8 or bfloat16, packed for y = x W^T + b.")
      .def(py::init([](const std::string& precision, const py::array& weight, const std::optional<Array<float>>& scale) {
             const Precision p = reduced(precision);
             if (weight.ndim() != 2)
               throw py::value_error("weight has shape " + shape_str(shape_of(weight)) + ", expected (out, in)");
             const Index out = weight.shape(0), in = weight.shape(1);
             py::dict t;
             t["weight"] = weight;
             if (p == Precision::Int8) {
               if (!scale) throw py::value_error("an int8 weight needs its scale");
               auto q = tensor<std::int8_t>(t, "weight", {out, in}, "int8");
               check_shape(*scale, {out}, "weight_scale");
               return std::make_shared<rnnkit::LowpLinear>(rnnkit::lowp_linear(p, out, in, q.data(), scale->data()));
             }
             auto b = tensor<std::uint16_t>(t, "weight", {out, in}, "uint16 (bfloat16 bits)");
             return std::make_shared<rnnkit::LowpLinear>(rnnkit::lowp_linear(p, out, in, b.data(), nullptr));
           }),
           py::arg("precision"), py::arg("weight"), py::arg("scale") = py::none())
      .def("forward", [](const rnnkit::LowpLinear& l, const Array<float>& x, const std::optional<Array<float>>& bias) {
        if (x.ndim() != 2 || x.shape(1) != l.in)
          throw py::value_error("x has shape " + shape_str(shape_of(x)) + ", expected (rows, " + std::to_string(l.in) +
                                ")");
        if (bias) check_shape(*bias, {l.out}, "bias");
        const Index M = x.shape(0);
        auto y = empty<float>({M, l.out});
        float* yp = y.mutable_data();
        const float* b = data_or_null(bias);
        {
          py::gil_scoped_release release;
          for (Index r = 0; r < M; ++r)
            for (Index j = 0; j < l.out; ++j) yp[r * l.out + j] = b ? b[j] : 0.0f;
          l.apply(yp, x.data(), M, true);
        }
        return y;
      }, py::arg("x").noconvert(), py::arg("bias").noconvert() = py::none());

  m.def("cpu_features", [] {
    const auto& f = rnnkit::cpu_features();
    py::dict d;
    d["avx2"] = f.avx2, d["fma"] = f.fma, d["avx512f"] = f.avx512f, d["avx512bw"] = f.avx512bw;
    d["avx512vl"] = f.avx512vl, d["avx512_vnni"] = f.avx512_vnni, d["avx512_bf16"] = f.avx512_bf16;
    d["f16c"] = f.f16c, d["avx512dq"] = f.avx512dq, d["avx512cd"] = f.avx512cd;
    d["best"] = rnnkit::isa_name(f.best), d["build"] = rnnkit::isa_name(f.build);
    d["chosen"] = rnnkit::isa_name(f.chosen);
    d["RNNKIT_ISA"] = f.cap.empty() ? py::object(py::none()) : py::object(py::str(f.cap));
    if (!f.cap_error.empty()) d["RNNKIT_ISA_error"] = f.cap_error;
    d["int8_kernel"] = rnnkit::int8_kernel(), d["bf16_kernel"] = rnnkit::bf16_kernel();
    return d;
  }, "What the CPU has, the instruction-set level chosen (RNNKIT_ISA caps it) and the kernels in use.");
  m.def("build_info", [] {
    const auto& b = rnnkit::build_info();
    py::dict d;
    d["version"] = b.version, d["compiler"] = b.compiler, d["flags"] = b.flags, d["eigen"] = b.eigen;
    d["eigen_simd"] = b.eigen_simd, d["openmp"] = b.openmp, d["openmp_version"] = b.openmp_version;
    return d;
  }, "How this copy of the core was built: version, compiler, instruction-set flags, Eigen, OpenMP.");
}

}  // namespace rnnkit_py
