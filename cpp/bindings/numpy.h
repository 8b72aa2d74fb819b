#pragma once
// NumPy <-> core helpers for the bindings: typed array aliases, size checks
// whose messages name the argument, and output allocation.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "rnnkit/config.h"

namespace rnnkit_py {

namespace py = pybind11;
using rnnkit::Index;

// C-contiguous arrays of exactly this dtype; layers.py converts once, so no
// silent copy happens here.
template <class S>
using Array = py::array_t<S, py::array::c_style>;
using IntArray = py::array_t<std::int64_t, py::array::c_style>;

inline std::string shape_str(const std::vector<Index>& shape) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << (shape.size() == 1 ? ",)" : ")");
  return os.str();
}

template <class A>
inline std::vector<Index> shape_of(const A& a) {
  return std::vector<Index>(a.shape(), a.shape() + a.ndim());
}

// Raise ValueError unless `a` has exactly `shape`.
template <class A>
inline void check_shape(const A& a, const std::vector<Index>& shape, const char* name) {
  if (shape_of(a) != shape)
    throw py::value_error(std::string(name) + " has shape " + shape_str(shape_of(a)) + ", expected " +
                          shape_str(shape));
}

template <class S>
inline Array<S> empty(const std::vector<Index>& shape) {
  return Array<S>(std::vector<py::ssize_t>(shape.begin(), shape.end()));
}

template <class S>
inline const S* data_or_null(const std::optional<Array<S>>& a) {
  return a ? a->data() : nullptr;
}

}  // namespace rnnkit_py
