// The model file's readers, hardened: the JSON reader is strict where JSON readers
// differ (a repeated key, bytes that are not UTF-8, numbers past a double, nesting),
// the safetensors header's sizes are whole numbers written as such, an architecture is
// checked against the tensors there before anything is allocated from it (a file of a
// few KB claiming 2^31 layers or a hidden size of 12000 is refused at once), weights
// must be finite in the model's dtype and the runtime's, and the version-2 checksum
// covers what decides what the model computes. Python's rk.load reads the same way
// (tests/test_file_hardening.py runs both loaders over the same files).

// The replaced operator new takes its memory from malloc and operator delete gives it back
// to free: GCC's -Wmismatched-new-delete cannot see that they are a pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <new>

#include "check.h"
#include "model_helpers.h"

using namespace testing;
using rnnkit::CellType;
using rnnkit::Model;
using rnnkit::ModelD;
using rnnkit::ModelFileError;
using rnnkit::TensorFile;
using rnnkit::TensorRef;

// The largest single allocation since the last reset: a refused file must not have asked
// for the memory its architecture claims.
namespace {
std::size_t g_largest = 0;
}
void* operator new(std::size_t n) {
  g_largest = std::max(g_largest, n);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace {

bool contains(const std::string& s, const std::string& part) {
  const bool yes = s.find(part) != std::string::npos;
  if (!yes) std::printf("  expected \"%s\" in: %s\n", part.c_str(), s.c_str());
  return yes;
}

std::string replace(std::string s, const std::string& a, const std::string& b) {
  const auto at = s.find(a);
  if (at == std::string::npos) throw std::logic_error("no '" + a + "' in " + s);
  return s.replace(at, a.size(), b);
}

// A message is text Python can show: valid UTF-8 (here: no byte past 0x7F but in a
// well-formed 2- to 4-byte sequence), whatever bytes the input held.
bool utf8(const std::string& s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) continue;
    const std::size_t more = c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : 0;
    if (more == 0 || i + more >= s.size()) return false;
    for (std::size_t k = 1; k <= more; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += more;
  }
  return true;
}

// A safetensors file of `header` (JSON text) and `data`.
std::vector<unsigned char> file_of(const std::string& header, const std::string& data = "") {
  std::vector<unsigned char> out(8);
  for (int k = 0; k < 8; ++k) out[std::size_t(k)] = static_cast<unsigned char>(header.size() >> (8 * k));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::string parse_error(const std::string& header, const std::string& data = "") {
  return error_of([&] { TensorFile::parse(file_of(header, data), "f"); });
}

// A GRU(3, 4) with every option written out, and its tensors.
RandomModel gru() { return random_model({recurrent(spec(CellType::GRU, 3, 4))}, 3); }

std::string from_tensors_error(const std::string& arch, const std::vector<TensorRef>& refs) {
  return error_of([&] { Model::from_tensors(arch, refs); });
}

}  // namespace

// ---- the JSON reader ------------------------------------------------------------------

TEST(a_repeated_key_is_refused_at_every_level) {
  const auto m = gru();
  const std::string& a = m.architecture;
  auto err = [&](const std::string& arch) { return from_tensors_error(arch, m.refs()); };
  // two models in one text: Python's json keeps the last value, a first-match reader the first
  CHECK(contains(err(replace(a, "\"reset_after\": true", "\"reset_after\": true, \"reset_after\": false")),
                 "duplicate key \"reset_after\""));
  CHECK(contains(err(replace(a, "{\"class\": \"Sequential\"", "{\"class\": \"Sequential\", \"class\": \"GRU\"")),
                 "duplicate key \"class\""));
  CHECK(contains(err(replace(a, "\"layers\": [", "\"layers\": [], \"layers\": [")), "duplicate key \"layers\""));
  CHECK(contains(err(replace(a, "{\"class\": \"GRU\"", "{\"class\": \"GRU\", \"class\": \"LSTM\"")),
                 "duplicate key \"class\""));
  CHECK(contains(err(replace(a, "\"config\": {\"input_size\"", "\"config\": {}, \"config\": {\"input_size\"")),
                 "duplicate key \"config\""));
  // in the safetensors header: the metadata, a tensor, a tensor's field
  CHECK(contains(parse_error("{\"__metadata__\": {\"a\": \"1\"}, \"__metadata__\": {\"a\": \"2\"}}"),
                 "duplicate key \"__metadata__\""));
  CHECK(contains(parse_error("{\"__metadata__\": {\"a\": \"1\", \"a\": \"2\"}}"), "duplicate key \"a\""));
  const std::string t = "{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}";
  CHECK(contains(parse_error("{\"w\": " + t + ", \"w\": " + t + "}", "abcd"), "duplicate key \"w\""));
  CHECK(contains(parse_error("{\"w\": {\"dtype\": \"F32\", \"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
                             "abcd"),
                 "duplicate key \"dtype\""));
}

TEST(nesting_is_bounded_at_64_arrays_and_objects) {
  const auto m = gru();
  // the dropout option sits inside 4 objects and a list: a value nested n deep there makes 5 + n
  auto nested = [&](int n) {
    return replace(m.architecture, "\"dropout\": 0.0", "\"dropout\": " + std::string(std::size_t(n), '[') + "0" +
                                                            std::string(std::size_t(n), ']'));
  };
  CHECK(contains(from_tensors_error(nested(59), m.refs()), "option 'dropout' must be a number, got a list"));
  CHECK(contains(from_tensors_error(nested(60), m.refs()), "nesting deeper than 64 arrays and objects"));
  // far deeper: a bounded stack, whatever the input
  CHECK(contains(from_tensors_error(std::string(100000, '['), m.refs()), "nesting deeper than 64"));
  CHECK(contains(parse_error(std::string(100000, '[')), "nesting deeper than 64"));
}

TEST(bytes_that_are_not_utf8_are_refused_and_the_message_is_utf8) {
  const auto m = gru();
  for (const std::string bad : {"\xff", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x28\xa1", "\xc3"}) {
    const std::string e = from_tensors_error(replace(m.architecture, "\"GRU\"", "\"GRU" + bad + "\""), m.refs());
    CHECK(contains(e, "invalid UTF-8") || contains(e, "truncated UTF-8"));
    CHECK(utf8(e));
  }
  const std::string e = from_tensors_error(replace(m.architecture, "{\"class\"", "\xff{\"class\""), m.refs());
  CHECK(contains(e, "unexpected character byte 0xff at byte 0") && utf8(e));
  CHECK(utf8(parse_error("{\"\\u00e9\xff\": 1}")));
  // well-formed UTF-8 passes: a class name with an accent is an unknown class, not bad JSON
  CHECK(contains(from_tensors_error(replace(m.architecture, "\"GRU\"", "\"GR\xc3\x9c\""), m.refs()),
                 "unknown layer \"GR\xc3\x9c\""));
}

TEST(surrogates_control_characters_and_bad_escapes_are_refused) {
  const auto m = gru();
  auto err = [&](const std::string& s) {
    return from_tensors_error(replace(m.architecture, "\"GRU\"", "\"" + s + "\""), m.refs());
  };
  CHECK(contains(err("\\ud800"), "lone high surrogate"));
  CHECK(contains(err("\\ud800\\u0041"), "bad low surrogate"));
  CHECK(contains(err("\\udc00"), "lone low surrogate"));
  CHECK(contains(err("a\tb"), "control character"));
  CHECK(contains(err("\\x"), "bad escape 'x'"));
  CHECK(contains(err("\\ud83d\\ude00"), "unknown layer \"\xf0\x9f\x98\x80\""));  // a pair is one character
}

TEST(numbers_follow_json_and_python_reads_them_alike) {
  const auto m = gru();
  auto with_dropout = [&](const std::string& v) {
    return from_tensors_error(replace(m.architecture, "\"dropout\": 0.0", "\"dropout\": " + v), m.refs());
  };
  CHECK(contains(with_dropout("1e400"), "number out of range"));
  CHECK(contains(with_dropout("-1e400"), "number out of range"));
  CHECK(contains(with_dropout("1" + std::string(400, '0')), "number out of range"));
  CHECK(contains(with_dropout("00"), "leading zero"));
  CHECK(contains(with_dropout("01"), "leading zero"));
  CHECK(contains(with_dropout(".5"), "unexpected character '.'"));
  CHECK(contains(with_dropout("1."), "expected a digit"));
  CHECK(contains(with_dropout("+1"), "unexpected character '+'"));
  CHECK(contains(with_dropout("NaN"), "unexpected character 'N'"));
  CHECK(contains(with_dropout("Infinity"), "unexpected character 'I'"));
  // underflow is 0 and a subnormal is itself, as in Python: both are dropouts in [0, 1)
  CHECK(with_dropout("1e-400") == "NO EXCEPTION");
  CHECK(with_dropout("0." + std::string(400, '0') + "1") == "NO EXCEPTION");
  CHECK(with_dropout("4.9e-324") == "NO EXCEPTION");
  CHECK(with_dropout("-0") == "NO EXCEPTION");
  CHECK(with_dropout("0.25E+0") == "NO EXCEPTION");
  CHECK(contains(with_dropout("1e-400e"), "expected '}', got 'e'"));
}

// ---- the safetensors header ------------------------------------------------------------

TEST(header_sizes_are_whole_numbers_written_as_such) {
  auto header = [](const std::string& shape, const std::string& offsets) {
    return "{\"w\": {\"dtype\": \"F32\", \"shape\": " + shape + ", \"data_offsets\": " + offsets + "}}";
  };
  CHECK(error_of([&] { TensorFile::parse(file_of(header("[2]", "[0, 8]"), "abcdefgh"), "f"); }) == "NO EXCEPTION");
  // safetensors' reader refuses each of these (serde: "expected usize"), so this one does
  for (const char* shape : {"[2.0]", "[2e0]", "[-0]", "[-2]", "[\"2\"]", "[true]", "[02]"})
    CHECK(contains(parse_error(header(shape, "[0, 8]"), "abcdefgh"), "corrupt"));
  for (const char* offsets : {"[0, 8.0]", "[-0, 8]", "[0, 8e0]", "[0]", "[0, 8, 8]", "[8, 0]"})
    CHECK(contains(parse_error(header("[2]", offsets), "abcdefgh"), "corrupt"));
}

TEST(an_empty_tensor_with_huge_dimensions_is_counted_without_overflow) {
  // Each dimension is at most the data section's size (4 MiB here), and three of them
  // multiply past an Index; the element count is 0 all the same.
  const std::string d = std::to_string(1 << 22);
  const std::string h = "{\"w\": {\"dtype\": \"F32\", \"shape\": [" + d + ", " + d + ", " + d + ", 0], "
                        "\"data_offsets\": [0, 0]}, \"v\": {\"dtype\": \"U8\", \"shape\": [" + d +
                        "], \"data_offsets\": [0, " + d + "]}}";
  const TensorFile f = TensorFile::parse(file_of(h, std::string(std::size_t(1) << 22, 'x')), "f");
  CHECK(f.tensors().at("w").numel() == 0);
}

// ---- the architecture against the tensors ----------------------------------------------

TEST(a_huge_architecture_is_refused_before_anything_is_allocated) {
  const auto m = gru();  // GRU(3, 4): 4 tensors, 132 parameters
  auto refused = [&](const std::string& from, const std::string& to, const std::string& message) {
    const std::string arch = replace(m.architecture, from, to);
    g_largest = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const std::string e = from_tensors_error(arch, m.refs());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(contains(e, message));
    CHECK(g_largest < (std::size_t(1) << 20));  // the file's size, not the architecture's claim
    CHECK(s < 1.0);
  };
  refused("\"num_layers\": 1", "\"num_layers\": 1000000000",
          "layer 0 (GRU(3, 4, num_layers=1000000000)) needs 4000000000 tensors; the file has 4");
  refused("\"num_layers\": 1", "\"num_layers\": 2147483648", "needs 8589934592 tensors; the file has 4");
  refused("\"num_layers\": 1", "\"num_layers\": 1000000000000", "needs 4000000000000 tensors; the file has 4");
  refused("\"hidden_size\": 4", "\"hidden_size\": 12000",
          "tensor '0.weight_ih_l0' has shape (12, 3), the architecture needs (36000, 3)");
  refused("\"hidden_size\": 4", "\"hidden_size\": 1000000000000",
          "tensor '0.weight_ih_l0' has shape (12, 3), the architecture needs (3000000000000, 3)");
  refused("\"input_size\": 3", "\"input_size\": 1000000000000",
          "tensor '0.weight_ih_l0' has shape (12, 3), the architecture needs (12, 1000000000000)");

  const auto lin = random_model({embedding(5, 2), linear(2, 3)}, 1);
  auto lin_refused = [&](const std::string& from, const std::string& to, const std::string& message) {
    g_largest = 0;
    CHECK(contains(from_tensors_error(replace(lin.architecture, from, to), lin.refs()), message));
    CHECK(g_largest < (std::size_t(1) << 20));
  };
  // sizes whose product is past an Index: no product is formed before the shapes match
  lin_refused("\"num_embeddings\": 5", "\"num_embeddings\": 1000000000000",
              "tensor '0.weight' has shape (5, 2), the architecture needs (1000000000000, 2)");
  lin_refused("\"embedding_dim\": 2, \"padding_idx\": null, \"dtype\": \"float32\"}}, {\"class\": \"Linear\", "
              "\"config\": {\"in_features\": 2",
              "\"embedding_dim\": 1000000000000, \"padding_idx\": null, \"dtype\": \"float32\"}}, {\"class\": "
              "\"Linear\", \"config\": {\"in_features\": 1000000000000",
              "tensor '0.weight' has shape (5, 2), the architecture needs (5, 1000000000000)");
  lin_refused("\"in_features\": 2, \"out_features\": 3", "\"in_features\": 2, \"out_features\": 1000000000000",
              "tensor '1.weight' has shape (3, 2), the architecture needs (1000000000000, 2)");
  const auto seq = random_model({linear(3, 4), recurrent(spec(CellType::LSTM, 4, 4)), linear(4, 2)}, 2);
  CHECK(contains(from_tensors_error(replace(seq.architecture, "\"num_layers\": 1", "\"num_layers\": 1000000000"),
                                    seq.refs()),
                 "layer 1 (LSTM(4, 4, num_layers=1000000000)) needs 4000000000 tensors, 4000000002 with the layers "
                 "before it; the file has 8"));
}

TEST(tensors_are_checked_by_name_shape_and_dtype_then_none_left_over) {
  const auto m = gru();
  auto refs = m.refs();  // in the layout's order: weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0
  refs[1].name = "0.weight_hh_l9";
  CHECK(contains(from_tensors_error(m.architecture, refs), "tensor '0.weight_hh_l0' is missing"));
  refs = m.refs();
  refs[0].shape = {4, 3};
  CHECK(contains(from_tensors_error(m.architecture, refs),
                 "tensor '0.weight_ih_l0' has shape (4, 3), the architecture needs (12, 3)"));
  refs = m.refs();
  refs[2].dtype = "I32";
  CHECK(contains(from_tensors_error(m.architecture, refs), "tensor '0.bias_ih_l0' has dtype I32, expected F32 or F64"));
  refs = m.refs();
  refs.push_back(refs[0]);
  CHECK(contains(from_tensors_error(m.architecture, refs), "tensor '0.weight_ih_l0' is given twice"));
  refs = m.refs();
  refs.push_back({"0.extra", "F32", {1}, m.data[0].data()});
  CHECK(contains(from_tensors_error(m.architecture, refs), "tensor '0.extra' belongs to no layer"));
  // check_tensors makes the same checks without the data
  refs = m.refs();
  for (auto& r : refs) r.data = nullptr;
  CHECK(error_of([&] { Model::check_tensors(m.architecture, refs); }) == "NO EXCEPTION");
  refs[0].shape = {3};
  CHECK(contains(error_of([&] { Model::check_tensors(m.architecture, refs); }), "has shape (3,)"));
}

TEST(keys_no_reader_knows_are_refused) {
  const auto m = gru();
  auto err = [&](const std::string& from, const std::string& to) {
    return from_tensors_error(replace(m.architecture, from, to), m.refs());
  };
  CHECK(contains(err("{\"class\": \"Sequential\"", "{\"version\": 2, \"class\": \"Sequential\""),
                 "the architecture has an unknown key \"version\"; it takes \"class\" and \"config\""));
  CHECK(contains(err("\"layers\": [", "\"activation\": \"relu\", \"layers\": ["),
                 "the Sequential's config has an unknown key \"activation\"; it takes \"layers\""));
  CHECK(contains(err("{\"class\": \"GRU\"", "{\"name\": \"gru\", \"class\": \"GRU\""),
                 "layer 0 has an unknown key \"name\"; it takes \"class\" and \"config\""));
}

TEST(weights_must_be_finite_in_the_models_dtype_and_the_runtimes) {
  auto m = gru();
  m.data[2][5] = std::numeric_limits<float>::quiet_NaN();  // 0.bias_ih_l0, in name order
  CHECK(contains(from_tensors_error(m.architecture, m.refs()), "tensor '0.bias_ih_l0' has a NaN or infinite value "
                                                                "(element 5)"));
  m.data[2][5] = -std::numeric_limits<float>::infinity();
  CHECK(contains(from_tensors_error(m.architecture, m.refs()), "has a NaN or infinite value (element 5)"));
  m.data[2][5] = 0;
  // a float64 value past float32's range: a float32 model cannot hold it, nor a float32 runtime
  std::vector<double> big(m.data[2].begin(), m.data[2].end());
  big[7] = 1e300;
  auto refs = m.refs();
  refs[2] = {refs[2].name, "F64", refs[2].shape, big.data()};
  CHECK(contains(from_tensors_error(m.architecture, refs), "has a value beyond float32's range (element 7)"));
  CHECK(contains(error_of([&] { ModelD::from_tensors(m.architecture, refs); }), "beyond float32's range"));
  const std::string f64 = replace(m.architecture, "\"float32\"", "\"float64\"");
  CHECK(contains(from_tensors_error(f64, refs), "beyond float32's range (element 7)"));
  CHECK(error_of([&] { ModelD::from_tensors(f64, refs); }) == "NO EXCEPTION");
  big[7] = 3e38;  // within float32's range: converted
  CHECK(from_tensors_error(m.architecture, refs) == "NO EXCEPTION");
}

// ---- the checksum ----------------------------------------------------------------------

TEST(save_model_writes_version_3_with_the_documented_checksum) {
  const float w[] = {0.5f, -1.0f}, b[] = {0.25f};
  const std::string arch = "{\"class\": \"Linear\", \"config\": {\"in_features\": 2, \"out_features\": 1}}";
  const std::string path = "test_files_digest.safetensors";
  rnnkit::save_model(path, arch, {{"weight", "F32", {1, 2}, w}, {"bias", "F32", {1}, b}});
  const TensorFile f = TensorFile::read(path);
  CHECK(f.metadata().at("format_version") == "3");  // version 2's checksum: version 3 added dtypes, not fields
  // tests/model_files.py's digest() of this file: the format's description, computed apart from this code
  CHECK(f.metadata().at("sha256") == "2b03f8ab1bdb61a64046805a115cd4d1ad5663ea109ff25ac8a909184e9ee474");
  CHECK(error_of([&] { Model::load(path); }) == "NO EXCEPTION");
  std::remove(path.c_str());
}

TEST(every_bit_flipped_in_a_version_2_file_is_refused) {
  // Version 2's checksum covers the architecture too (version 1's lets a flipped dropout
  // digit through), so no single flipped bit anywhere leaves a loadable file.
  const auto rm = random_model({embedding(6, 3), recurrent(spec(CellType::GRU, 3, 4)), pool("LastStep"),
                                linear(4, 2)}, 4);
  const std::string path = "test_files_flip.safetensors";
  rnnkit::save_model(path, rm.architecture, rm.refs());
  const auto bytes = read_bytes(path);
  int loaded = 0, other = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    auto flipped = bytes;
    flipped[i] ^= static_cast<unsigned char>(1u << (i % 8));
    write_bytes(path, flipped);
    const std::string e = error_of([&] { Model::load(path); });
    if (e == "NO EXCEPTION") {
      ++loaded;
      std::printf("  byte %zu: still loads\n", i);
    } else if (e.rfind("OTHER", 0) == 0) {
      ++other;
      std::printf("  byte %zu: %s\n", i, e.c_str());
    }
  }
  CHECK(loaded == 0 && other == 0);
  std::remove(path.c_str());
}

TEST(version_1_files_load_and_other_versions_and_folders_are_refused) {
  const std::string dir = std::string(RNNKIT_TEST_DATA) + "/v1";  // written by rk.save before version 2
  for (const char* name : {"lstm_proj_per_step", "embedding_gru_last"}) {
    const std::string path = dir + "/" + name + ".safetensors";
    CHECK(TensorFile::read(path).metadata().at("format_version") == "1");
    CHECK(error_of([&] { Model::load(path); }) == "NO EXCEPTION");
  }
  const float w[] = {1, 2};
  const std::string path = "test_files_version.safetensors";
  for (const char* v : {"0", "4", "", "2.0", "02", " 2"}) {
    rnnkit::write_safetensors(path, {{"w", "F32", {2}, w}}, {{"format", "rnnkit"}, {"format_version", v}});
    CHECK(contains(error_of([&] { Model::load(path); }),
                   "rnnkit format version \"" + std::string(v) + "\"; this runtime reads versions 1, 2 and 3"));
  }
  rnnkit::write_safetensors(path, {{"w", "F32", {2}, w}}, {{"format", "rnnkit"}, {"format_version", "2"}});
  CHECK(contains(error_of([&] { Model::load(path); }), "no architecture in the metadata"));
  std::remove(path.c_str());
  // a folder opens as a stream, with a size that means nothing
  CHECK(contains(error_of([] { Model::load("."); }), ".: not a regular file"));
}

// ---- the layout the checks rely on ------------------------------------------------------

TEST(param_shapes_and_num_tensors_agree_with_the_layout) {
  for (CellType cell : {CellType::RNN_TANH, CellType::LSTM, CellType::GRU})
    for (int variant = 0; variant < 8; ++variant) {
      rnnkit::StackSpec s = spec(cell, 3, 5, 1 + variant % 3);
      s.bias = variant % 2 == 0;
      s.bidirectional = variant >= 4;
      if (cell == CellType::LSTM) s.proj_size = variant % 4 == 1 ? 2 : 0, s.peepholes = variant % 4 == 3;
      const auto layout = s.param_layout(), shapes = s.param_shapes();
      CHECK(Index(layout.size()) == s.num_tensors() && shapes.size() == layout.size());
      Index end = 0;
      for (std::size_t i = 0; i < layout.size(); ++i) {
        CHECK(layout[i].name == shapes[i].name && layout[i].rows == shapes[i].rows && layout[i].cols == shapes[i].cols);
        CHECK(layout[i].offset == end);
        end += layout[i].size();
      }
      CHECK(end == s.num_params());
      // the offsets are where dir_params places each layer-direction's parameters
      for (Index l = 0; l < s.num_layers; ++l)
        for (Index d = 0; d < s.directions(); ++d) {
          const std::string sfx = "_l" + std::to_string(l) + (d ? "_reverse" : "");
          const rnnkit::DirParams p = s.dir_params(l, d);
          for (const auto& info : layout) {
            if (info.name == "weight_ih" + sfx) CHECK(info.offset == p.w_ih);
            if (info.name == "weight_hh" + sfx) CHECK(info.offset == p.w_hh);
            if (info.name == "bias_ih" + sfx) CHECK(info.offset == p.b_ih);
            if (info.name == "bias_hh" + sfx) CHECK(info.offset == p.b_hh);
            if (info.name == "weight_hr" + sfx) CHECK(info.offset == p.w_hr);
            if (info.name == "weight_peephole" + sfx) CHECK(info.offset == p.peep);
          }
        }
    }
}

// ---- streaming input -----------------------------------------------------------------

TEST(a_stream_refuses_nan_and_bad_ids_naming_x_t_and_keeps_its_state) {
  const auto rm = random_model({recurrent(spec(CellType::LSTM, 2, 3)), linear(3, 1)}, 6);
  auto s = rm.model().stream(2);
  float x[] = {0.5f, -0.5f, 1.0f, 0.25f}, y[2], y_again[2];
  s.step(x, y);
  s.reset();
  x[3] = std::numeric_limits<float>::quiet_NaN();
  CHECK(contains(error_of([&] { s.step(x, y_again); }), "x_t[1, 1] is NaN"));
  CHECK(s.steps() == 0);
  x[3] = 0.25f;
  s.step(x, y_again);  // as if the refused step never happened
  CHECK(y[0] == y_again[0] && y[1] == y_again[1]);
  x[3] = std::numeric_limits<float>::infinity();  // saturates the gates, as in the forward
  CHECK(error_of([&] { s.step(x, y); }) == "NO EXCEPTION");

  const auto em = random_model({embedding(5, 2), recurrent(spec(CellType::GRU, 2, 3))}, 7);
  auto e = em.model().stream(3);
  const std::int64_t ids[] = {1, 5, 0};
  float ye[9];
  CHECK(contains(error_of([&] { e.step(ids, ye); }), "x_t[1] = 5 is out of range: token ids must be in 0..4"));
  CHECK(e.steps() == 0);
}

int main() { return check::run_all(); }
