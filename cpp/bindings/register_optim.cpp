// rnnkit._core: optimizer steps and gradient clipping over one flat buffer
// (rnnkit/optim.h), float and double. rnnkit/optim.py owns the state arrays.

#include "numpy.h"
#include "rnnkit/optim.h"

namespace rnnkit_py {

namespace {

template <class A>
void same_size(const A& a, Index n, const char* name) {
  if (Index(a.size()) != n)
    throw py::value_error(std::string(name) + " has " + std::to_string(a.size()) + " elements, expected " +
                          std::to_string(n));
}

template <class S>
void register_dtype(py::module_& m) {
  m.def("sgd_step", [](Array<S>& p, const Array<S>& g, Array<S>& buf, double lr, double momentum, bool nesterov,
                       double weight_decay, bool first_step) {
    const Index n = Index(p.size());
    same_size(g, n, "grads");
    same_size(buf, n, "momentum buffer");
    rnnkit::SgdOptions o;
    o.lr = lr;
    o.momentum = momentum;
    o.nesterov = nesterov;
    o.weight_decay = weight_decay;
    S *pp = p.mutable_data(), *bp = buf.mutable_data();
    py::gil_scoped_release release;
    rnnkit::sgd_step(pp, g.data(), bp, n, o, first_step);
  }, py::arg("params").noconvert(), py::arg("grads").noconvert(), py::arg("buf").noconvert(), py::arg("lr"),
     py::arg("momentum"), py::arg("nesterov"), py::arg("weight_decay"), py::arg("first_step"));

  m.def("adam_step", [](Array<S>& p, const Array<S>& g, Array<S>& m1, Array<S>& m2, double lr, double beta1,
                        double beta2, double eps, double weight_decay, bool decoupled, long step) {
    const Index n = Index(p.size());
    same_size(g, n, "grads");
    same_size(m1, n, "first moment");
    same_size(m2, n, "second moment");
    rnnkit::AdamOptions o;
    o.lr = lr;
    o.beta1 = beta1;
    o.beta2 = beta2;
    o.eps = eps;
    o.weight_decay = weight_decay;
    o.decoupled = decoupled;
    S *pp = p.mutable_data(), *mp = m1.mutable_data(), *vp = m2.mutable_data();
    py::gil_scoped_release release;
    rnnkit::adam_step(pp, g.data(), mp, vp, n, o, step);
  }, py::arg("params").noconvert(), py::arg("grads").noconvert(), py::arg("exp_avg").noconvert(),
     py::arg("exp_avg_sq").noconvert(), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
     py::arg("weight_decay"), py::arg("decoupled"), py::arg("step"));

  m.def("clip_grad_norm", [](Array<S>& g, double max_norm) {
    return rnnkit::clip_grad_norm(g.mutable_data(), Index(g.size()), max_norm);
  }, py::arg("grads").noconvert(), py::arg("max_norm"));
}

}  // namespace

void register_optim(py::module_& m) {
  register_dtype<float>(m);
  register_dtype<double>(m);
}

}  // namespace rnnkit_py
