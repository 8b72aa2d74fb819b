// rnnkit._core.Runtime32 / Runtime64 and Stream32 / Stream64: the embedded C++
// runtime (rnnkit/model.h) reachable from Python, for model.stream(batch) and
// rk.runtime.load(path). ModelFileError becomes rnnkit._core.ModelFileError, a
// ValueError; the GIL is released while the core computes. Every argument is
// checked here or in the core, whatever Python passes: inputs are converted as
// np.asarray converts them, and what is not an array of numbers is refused by
// name. architecture_table() is the table of layer classes the runtime reads
// (rnnkit/architecture.h), as plain dicts and lists, for Python's loader to read the same.

#include <pybind11/stl.h>

#include "numpy.h"
#include "rnnkit/architecture.h"
#include "rnnkit/model.h"

namespace rnnkit_py {

namespace {

template <class S>
std::string dtype_code() {
  return sizeof(S) == 4 ? "F32" : "F64";
}

// `a` as a C-contiguous array of T: itself when it already is one, else a converted copy
// (NumPy's casting rules, as np.ascontiguousarray(a, dtype=T) does).
template <class T>
Array<T> convert(const py::array& a) {
  if (py::isinstance<Array<T>>(a)) return py::reinterpret_borrow<Array<T>>(a);
  return py::module_::import("numpy").attr("ascontiguousarray")(a, py::dtype::of<T>()).template cast<Array<T>>();
}

// `obj` as np.asarray makes it (an array, a nested list, a Python or NumPy number: what
// forward takes), or a TypeError / ValueError naming `name` for what is not an array.
py::array as_array(const py::handle& obj, const std::string& name) {
  if (obj.is_none()) throw py::type_error(name + " must be an array of numbers, got None");
  try {
    return py::module_::import("numpy").attr("asarray")(obj);
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_ValueError) && !e.matches(PyExc_TypeError)) throw;
    throw py::value_error(name + " is not an array of numbers (a ragged list?): " + std::string(e.what()));
  }
}

std::string dtype_str(const py::array& a) { return py::str(a.dtype()); }

// Integer token ids as int64 (a copy only when the dtype differs).
IntArray as_ids(const py::array& a, const std::string& name) {
  if (a.dtype().kind() != 'i' && a.dtype().kind() != 'u')
    throw py::type_error(name + " must be integer token ids (the model starts with an Embedding), got dtype " +
                         dtype_str(a));
  return convert<std::int64_t>(a);
}

template <class S>
Array<S> as_floats(const py::array& a, const std::string& name) {
  if (py::isinstance<Array<S>>(a)) return py::reinterpret_borrow<Array<S>>(a);
  const char kind = a.dtype().kind();
  if (kind != 'f' && kind != 'i' && kind != 'u')
    throw py::type_error(name + " must be real numbers (float or integer), got dtype " + dtype_str(a));
  return convert<S>(a);
}

// "(batch, input_size) = (2, 3)": what an argument's shape must be, in words and numbers.
std::string expected(const std::string& words, const std::vector<Index>& shape) {
  return words + " = " + shape_str(shape);
}

template <class S>
void register_dtype(py::module_& m, const char* model_name, const char* stream_name) {
  using Model = rnnkit::BasicModel<S>;
  using Stream = rnnkit::BasicStream<S>;

  py::class_<Stream>(m, stream_name, "Streaming runner: the state of a fixed batch, one time step per call.")
      .def("step", [](Stream& s, const py::object& obj) -> py::array {
        // (batch, input_size) features or (batch,) ids; with batch 1 also unbatched: (input_size,) or one id.
        // Checked without building shape vectors: at small sizes the call's own cost is most of a step's.
        const Index B = s.batch(), I = s.input_size(), O = s.output_size();
        const bool ids = s.takes_ids();
        const py::array x = py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj)
                                                            : as_array(obj, "x_t");
        const bool unbatched = B == 1 && x.ndim() == (ids ? 0 : 1);
        const py::ssize_t* shape = x.shape();
        const bool shape_ok = ids ? unbatched || (x.ndim() == 1 && shape[0] == B)
                                  : unbatched ? shape[0] == I : x.ndim() == 2 && shape[0] == B && shape[1] == I;
        if (!shape_ok) {
          const std::string got = "x_t has shape " + shape_str(shape_of(x)) + ", expected ";
          if (ids)
            throw py::value_error(got + expected("(batch,) token ids", {B}) + (B == 1 ? " or one id" : ""));
          throw py::value_error(got + expected("(batch, input_size)", {B, I}) +
                                (B == 1 ? " or " + shape_str({I}) : ""));
        }
        auto y = unbatched ? Array<S>(O) : Array<S>({B, O});
        if (ids) {
          IntArray xs = as_ids(x, "x_t");
          py::gil_scoped_release release;
          s.step(xs.data(), y.mutable_data());
        } else {
          Array<S> xs = as_floats<S>(x, "x_t");
          py::gil_scoped_release release;
          s.step(xs.data(), y.mutable_data());
        }
        return y;
      }, py::arg("x_t"),
      "One time step: x_t (batch, input_size), or token ids (batch,); returns y (batch, output_size).")
      .def("reset", &Stream::reset, "Back to the zero state, as at creation.")
      .def_property_readonly("batch", &Stream::batch)
      .def_property_readonly("steps", &Stream::steps, "Steps since creation or the last reset().");

  py::class_<Model>(m, model_name, "A model in the C++ runtime (rnnkit::Model): predict and stream.")
      .def_static("load", [](const std::string& path) {
        if (path.find('\0') != std::string::npos)
          throw py::value_error("path must not contain a NUL character, got " + std::string(py::repr(py::str(path))));
        py::gil_scoped_release release;
        return Model::load(path);
      }, py::arg("path"))
      .def_static("from_tensors", [](const std::string& arch, const py::dict& tensors) {
        // Float32 and float64 arrays go in as they are (the core converts while it copies);
        // any other is converted to S, but only once every name and shape is checked (a
        // broadcast view can claim terabytes that a copy would try to allocate).
        std::vector<py::array> keep;  // owns the arrays while the model copies them
        std::vector<rnnkit::TensorRef> refs;
        for (const auto& kv : tensors) {
          if (!py::isinstance<py::str>(kv.first))
            throw py::type_error("tensors' keys must be str (the parameters' names), got " +
                                 std::string(py::repr(kv.first)));
          const std::string name = py::str(kv.first);
          py::array a = as_array(kv.second, "tensor '" + name + "'");
          const char kind = a.dtype().kind();
          if (kind != 'f' && kind != 'i' && kind != 'u')
            throw py::type_error("tensor '" + name + "' must be real numbers (float or integer), got dtype " +
                                 dtype_str(a));
          // int8 and uint16 (bfloat16's bits) arrays are a reduced-precision layer's weights (rk.quantize):
          // they go in as I8 / BF16, which only such a layer's matrices may be
          const bool i8 = py::isinstance<py::array_t<std::int8_t, py::array::c_style>>(a);
          const bool bf16 = py::isinstance<py::array_t<std::uint16_t, py::array::c_style>>(a);
          const bool as_is = py::isinstance<Array<float>>(a) || py::isinstance<Array<double>>(a) || i8 || bf16;
          keep.push_back(a);
          refs.push_back({name, i8 ? "I8" : bf16 ? "BF16" : py::isinstance<Array<double>>(a) ? "F64"
                                : as_is ? "F32" : dtype_code<S>(),
                          shape_of(a), as_is ? a.data() : nullptr});
        }
        Model::check_tensors(arch, refs, "model");
        for (std::size_t i = 0; i < refs.size(); ++i)
          if (!refs[i].data) {
            keep[i] = convert<S>(keep[i]);
            refs[i].data = keep[i].data();
          }
        return Model::from_tensors(arch, refs, "model");
      }, py::arg("architecture"), py::arg("tensors"))
      .def_property_readonly("takes_ids", &Model::takes_ids)
      .def_property_readonly("vocab_size", &Model::vocab_size)
      .def_property_readonly("input_size", &Model::input_size)
      .def_property_readonly("output_size", &Model::output_size)
      .def_property_readonly("per_step", &Model::per_step)
      .def_property_readonly("can_stream", &Model::can_stream)
      .def_property_readonly("num_parameters", &Model::num_parameters)
      .def("summary", &Model::summary)
      .def("predict", [](const Model& model, const py::object& x_obj, const py::object& lengths_obj) {
        const Index I = model.input_size(), O = model.output_size();
        const py::array x = as_array(x_obj, "x");
        const Index need = model.takes_ids() ? 2 : 3;
        const std::string want = model.takes_ids() ? "(batch, steps) token ids" : "(batch, steps, input_size)";
        if (x.ndim() != need || (!model.takes_ids() && x.shape(2) != I))
          throw py::value_error("x has shape " + shape_str(shape_of(x)) + ", expected " + want +
                                (model.takes_ids() ? "" : " with input_size " + std::to_string(I)));
        const Index B = x.shape(0), T = x.shape(1);
        std::optional<IntArray> lengths;
        if (!lengths_obj.is_none()) {
          const py::array l = as_array(lengths_obj, "lengths");
          if (l.dtype().kind() != 'i' && l.dtype().kind() != 'u')
            throw py::type_error("lengths must be integers, got dtype " + dtype_str(l));
          lengths = convert<std::int64_t>(l);
          if (shape_of(*lengths) != std::vector<Index>{B})
            throw py::value_error("lengths has shape " + shape_str(shape_of(*lengths)) + ", expected " +
                                  expected("(batch,)", {B}));
        }
        const std::int64_t* len = lengths ? lengths->data() : nullptr;
        try {
          auto y = empty<S>(model.per_step() ? std::vector<Index>{B, T, O} : std::vector<Index>{B, O});
          if (model.takes_ids()) {
            IntArray ids = as_ids(x, "x");
            py::gil_scoped_release release;
            model.predict(ids.data(), B, T, y.mutable_data(), len);
          } else {
            Array<S> xs = as_floats<S>(x, "x");
            py::gil_scoped_release release;
            model.predict(xs.data(), B, T, y.mutable_data(), len);
          }
          return y;
        } catch (const std::bad_alloc&) {  // the GIL is held again here (the release has unwound)
          const double rows = double(B) * double(T), widest = double(std::max(I, O));
          const std::string msg = "predict on x of shape " + shape_str(shape_of(x)) +
                                  ": not enough memory for the layers' activations (about " +
                                  std::to_string(rows * widest * sizeof(S) / double(1 << 20)) +
                                  " MiB per layer at the input's or the output's width, more for wider layers)";
          PyErr_SetString(PyExc_MemoryError, msg.c_str());
          throw py::error_already_set();
        }
      }, py::arg("x"), py::arg("lengths") = py::none(),
      "x (batch, steps, input_size) or token ids (batch, steps) -> y (batch, steps, out) or (batch, out).")
      .def("stream", [](const Model& model, Index batch) {
        try {
          return model.stream(batch);
        } catch (const std::bad_alloc&) {
          const std::string msg = "batch " + std::to_string(batch) + ": not enough memory for the stream's state";
          PyErr_SetString(PyExc_MemoryError, msg.c_str());
          throw py::error_already_set();
        }
      }, py::arg("batch"));
}

// One option as a dict: key, type, default (absent when required), minimum / maximum
// (Int and Number), allowed (String), summary.
py::dict option_dict(const rnnkit::arch::Option& o) {
  using rnnkit::arch::Type;
  // in the enums' order
  static const char* const types[] = {"bool", "int", "number", "string", "int_or_null"};
  static const char* const shown[] = {"never", "positional", "always", "not_default"};
  py::dict d;
  d["key"] = o.key;
  d["type"] = types[int(o.type)];
  d["required"] = o.required;
  if (!o.required) {
    switch (o.type) {
      case Type::Bool: d["default"] = o.default_number != 0; break;
      case Type::Int: d["default"] = py::int_(std::int64_t(o.default_number)); break;
      case Type::Number: d["default"] = o.default_number; break;
      case Type::String: d["default"] = o.default_string; break;
      case Type::IntOrNull: d["default"] = py::none(); break;
    }
  }
  if (o.type == Type::Int || o.type == Type::IntOrNull) {
    d["minimum"] = py::int_(std::int64_t(o.minimum));
    d["maximum"] = py::int_(std::int64_t(o.maximum));
  }
  if (o.type == Type::Number) {
    d["minimum"] = o.minimum;
    d["maximum"] = o.maximum;  // exclusive
  }
  if (o.type == Type::String) d["allowed"] = o.allowed;
  d["summary"] = shown[int(o.shown)];
  return d;
}

py::dict architecture_table() {
  using rnnkit::arch::CheckKind;
  static const char* const roles[] = {"embedding", "recurrent", "linear", "pool", "dropout"};  // Role's order
  py::dict table;
  for (const rnnkit::arch::LayerClass& c : rnnkit::arch::table()) {
    py::list options, checks;
    for (const auto& o : c.options) options.append(option_dict(o));
    for (const auto& k : c.checks) {
      py::dict d;
      d["kind"] = k.kind == CheckKind::SmallerThan ? "smaller_than" : "index_into";
      d["option"] = k.option;
      d["other"] = k.other;
      checks.append(d);
    }
    py::dict d;
    d["role"] = roles[int(c.role)];
    d["options"] = options;
    d["checks"] = checks;
    d["input"] = c.input.empty() ? py::object(py::none()) : py::str(c.input);
    table[py::str(c.name)] = d;
  }
  return table;
}

}  // namespace

void register_model(py::module_& m) {
  m.def("architecture_table", &architecture_table,
        "The layer classes a model file may hold: {class: {role, options, checks, input}} (rnnkit/architecture.h).");
  // Not py::register_exception: its translator hands what() to PyErr_SetString, which
  // raises UnicodeDecodeError instead when a message is not UTF-8.
  PYBIND11_CONSTINIT static py::gil_safe_call_once_and_store<py::exception<rnnkit::ModelFileError>> error;
  error.call_once_and_store_result(
      [&] { return py::exception<rnnkit::ModelFileError>(m, "ModelFileError", PyExc_ValueError); });
  py::register_exception_translator([](std::exception_ptr p) {
    if (!p) return;
    try {
      std::rethrow_exception(p);
    } catch (const rnnkit::ModelFileError& e) {
      const std::string msg = e.what();
      py::object text = py::reinterpret_steal<py::object>(
          PyUnicode_DecodeUTF8(msg.data(), py::ssize_t(msg.size()), "backslashreplace"));
      PyErr_SetObject(error.get_stored().ptr(), text.ptr());
    }
  });
  register_dtype<float>(m, "Runtime32", "Stream32");
  register_dtype<double>(m, "Runtime64", "Stream64");
}

}  // namespace rnnkit_py
