// rnnkit::Model: a model file read (format, version, checksum) and handed to
// the architecture reader (architecture.cpp); the layers' properties; and
// save_model, which writes a file the same way rk.save does. Batch predict is
// in predict.cpp, streaming in stream.cpp.

#include "rnnkit/model.h"

#include <algorithm>

#include "model_layers.h"
#include "sha256.h"

namespace rnnkit {

constexpr const char* kFormat = "rnnkit";
constexpr const char* kFormatVersion = "1";

namespace {

std::string digest(const std::vector<TensorRef>& refs) {
  std::vector<const TensorRef*> sorted;
  for (const TensorRef& r : refs) sorted.push_back(&r);
  std::sort(sorted.begin(), sorted.end(), [](const TensorRef* a, const TensorRef* b) { return a->name < b->name; });
  Sha256 h;
  for (const TensorRef* r : sorted) {
    std::size_t n = dtype_size(r->dtype);
    for (Index d : r->shape) n *= std::size_t(d);
    h.update(r->name.data(), r->name.size());
    h.update(r->data, n);
  }
  return h.hex_digest();
}

}  // namespace

// ---- BasicModel ---------------------------------------------------------------------------

template <class S>
BasicModel<S> BasicModel<S>::load(const std::string& path) {
  TensorFile f = TensorFile::read(path);
  const auto& meta = f.metadata();
  auto get = [&](const char* key) -> const std::string* {
    auto it = meta.find(key);
    return it == meta.end() ? nullptr : &it->second;
  };
  const std::string* format = get("format");
  if (!format || *format != kFormat)
    throw ModelFileError(path + ": a safetensors file but not an rnnkit model (no format=rnnkit in its metadata)");
  const std::string* version = get("format_version");
  if (!version || *version != kFormatVersion)
    throw ModelFileError(path + ": rnnkit format version \"" + (version ? *version : std::string("none")) +
                         "\"; this runtime reads version " + kFormatVersion);
  std::vector<TensorRef> refs;
  for (const auto& [name, t] : f.tensors()) refs.push_back({name, t.dtype, t.shape, f.bytes(t)});
  const std::string* sha = get("sha256");
  if (!sha || *sha != digest(refs))
    throw ModelFileError(path + ": corrupt: the tensors do not match the sha256 checksum in the metadata");
  const std::string* arch = get("architecture");
  if (!arch) throw ModelFileError(path + ": no architecture in the metadata");
  return from_tensors(*arch, refs, path);
}

template <class S>
BasicModel<S> BasicModel<S>::from_tensors(const std::string& architecture, const std::vector<TensorRef>& tensors,
                                          const std::string& what) {
  BasicModel m;
  m.layers_ = detail::build<S>(architecture, tensors, what);
  return m;
}

template <class S>
bool BasicModel<S>::takes_ids() const { return layers_->ids; }
template <class S>
Index BasicModel<S>::input_size() const { return layers_->input; }
template <class S>
Index BasicModel<S>::output_size() const { return layers_->output; }
template <class S>
bool BasicModel<S>::per_step() const { return layers_->per_step; }
template <class S>
bool BasicModel<S>::can_stream() const { return !layers_->bidirectional; }
template <class S>
Index BasicModel<S>::num_parameters() const { return layers_->num_params; }
template <class S>
Index BasicModel<S>::vocab_size() const { return layers_->ids ? layers_->layers[0].in : 0; }

template <class S>
std::string BasicModel<S>::summary() const {
  std::string out;
  for (const auto& L : layers_->layers) out += L.summary + "\n";
  return out;
}

template class BasicModel<float>;
template class BasicModel<double>;

void save_model(const std::string& path, const std::string& architecture_json, const std::vector<TensorRef>& tensors) {
  // Check that the file will load before writing it.
  BasicModel<double>::from_tensors(architecture_json, tensors, path);
  std::map<std::string, std::string> meta{{"format", kFormat},
                                          {"format_version", kFormatVersion},
                                          {"architecture", architecture_json},
                                          {"sha256", digest(tensors)}};
  write_safetensors(path, tensors, meta);
}

}  // namespace rnnkit
