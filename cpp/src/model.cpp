// rnnkit::Model: a model file read (format, version, checksum) and handed to
// the architecture reader (architecture.cpp); the layers' properties; and
// save_model, which writes a file the same way rk.save does. Batch predict is
// in predict.cpp, streaming in stream.cpp.

#include "rnnkit/model.h"

#include <algorithm>

#include "json.h"
#include "model_layers.h"
#include "sha256.h"

namespace rnnkit {

constexpr const char* kFormat = "rnnkit";
constexpr const char* kFormatVersion = "3";  // what save_model writes; load reads "1" and "2" too

namespace {

std::size_t tensor_bytes(const TensorRef& r) {
  std::size_t n = dtype_size(r.dtype);
  for (Index d : r.shape) n *= std::size_t(d);
  return n;
}

// Version 1's checksum: for each tensor in name order, its name then its bytes. It left
// out each tensor's dtype and shape and the architecture: a file edited there kept it.
std::string digest_v1(const std::vector<const TensorRef*>& sorted) {
  Sha256 h;
  for (const TensorRef* r : sorted) {
    h.update(r->name.data(), r->name.size());
    h.update(r->data, tensor_bytes(*r));
  }
  return h.hex_digest();
}

void update_u64(Sha256& h, std::uint64_t v) {
  unsigned char le[8];
  for (int k = 0; k < 8; ++k) le[k] = static_cast<unsigned char>(v >> (8 * k));
  h.update(le, 8);
}

void update_string(Sha256& h, const std::string& s) {
  update_u64(h, s.size());
  h.update(s.data(), s.size());
}

// Version 2's checksum (docs/cpp.md, "Model files"; Python's io._digest computes the same):
// everything that decides what the model computes, each field preceded by its length so
// that no two files give the same bytes to hash. All integers are u64 little-endian:
//   the number of tensors; for each tensor in name order (bytewise): its name, its dtype
//   ("F32"), its rank then each dimension, its bytes; then the architecture (UTF-8).
std::string digest_v2(const std::vector<const TensorRef*>& sorted, const std::string& architecture) {
  Sha256 h;
  update_u64(h, sorted.size());
  for (const TensorRef* r : sorted) {
    update_string(h, r->name);
    update_string(h, r->dtype);
    update_u64(h, r->shape.size());
    for (Index d : r->shape) update_u64(h, std::uint64_t(d));
    const std::size_t n = tensor_bytes(*r);
    update_u64(h, n);
    h.update(r->data, n);
  }
  update_string(h, architecture);
  return h.hex_digest();
}

std::string digest(const std::string& version, const std::vector<TensorRef>& refs, const std::string& architecture) {
  std::vector<const TensorRef*> sorted;
  for (const TensorRef& r : refs) sorted.push_back(&r);
  std::sort(sorted.begin(), sorted.end(), [](const TensorRef* a, const TensorRef* b) { return a->name < b->name; });
  return version == "1" ? digest_v1(sorted) : digest_v2(sorted, architecture);
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
  if (!version || (*version != "1" && *version != "2" && *version != "3"))
    throw ModelFileError(path + ": rnnkit format version " + (version ? json::quote(*version) : "none") +
                         "; this runtime reads versions 1, 2 and 3");
  const std::string* arch = get("architecture");
  if (!arch) throw ModelFileError(path + ": no architecture in the metadata");
  std::vector<TensorRef> refs;
  for (const auto& [name, t] : f.tensors()) refs.push_back({name, t.dtype, t.shape, f.bytes(t)});
  const std::string* sha = get("sha256");
  if (!sha || *sha != digest(*version, refs, *arch))
    throw ModelFileError(path + ": corrupt: the tensors or the architecture do not match the sha256 checksum in the "
                                "metadata");
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
void BasicModel<S>::check_tensors(const std::string& architecture, const std::vector<TensorRef>& tensors,
                                  const std::string& what) {
  detail::check_tensors(architecture, tensors, what);
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
  // Check that the file will load before writing it (in float32 where its weights are reduced-precision).
  if (detail::check_tensors(architecture_json, tensors, path))
    BasicModel<float>::from_tensors(architecture_json, tensors, path);
  else
    BasicModel<double>::from_tensors(architecture_json, tensors, path);
  std::map<std::string, std::string> meta{{"format", kFormat},
                                          {"format_version", kFormatVersion},
                                          {"architecture", architecture_json},
                                          {"sha256", digest(kFormatVersion, tensors, architecture_json)}};
  write_safetensors(path, tensors, meta);
}

}  // namespace rnnkit
