// The embedded runtime (rnnkit/model.h): model files written by Python's
// rk.save load and predict what Python predicted; streaming step by step gives
// what predict gives on the whole sequence; every damaged file (missing,
// truncated at every length, a bit flipped in every byte, another version,
// foreign, unknown layer) throws ModelFileError, never reads out of bounds
// (CI runs this under AddressSanitizer).

#include <cstdio>
#include <fstream>
#include <iterator>

#include "check.h"
#include "model_helpers.h"
#include "rnnkit/architecture.h"

using namespace testing;
using rnnkit::CellType;
using rnnkit::Model;
using rnnkit::ModelFileError;
using rnnkit::TensorFile;

namespace {

const std::string kData = RNNKIT_TEST_DATA;  // tests/cpp/data, written by make_fixtures.py
const char* kFixtures[] = {"lstm_proj_per_step", "embedding_gru_last"};

template <class T>
std::vector<T> tensor(const TensorFile& f, const std::string& name) {
  const auto& t = f.tensors().at(name);
  std::vector<T> v(static_cast<size_t>(t.numel()));
  std::memcpy(v.data(), f.bytes(t), t.end - t.begin);
  return v;
}

// Predict on (B, T) inputs of a fixture's expected file.
struct Case {
  Model model;
  TensorFile expected;
  Index B, T;
  std::vector<float> x;
  std::vector<std::int64_t> ids, lengths;
  std::vector<float> y;

  explicit Case(const std::string& name)
      : model(Model::load(kData + "/" + name + ".safetensors")),
        expected(TensorFile::read(kData + "/" + name + ".expected.safetensors")) {
    const auto& xs = expected.tensors().at("x");
    B = xs.shape[0], T = xs.shape[1];
    if (model.takes_ids()) ids = tensor<std::int64_t>(expected, "x");
    else x = tensor<float>(expected, "x");
    lengths = tensor<std::int64_t>(expected, "lengths");
    y = tensor<float>(expected, "y");
  }
  std::vector<float> predict(const std::int64_t* len, Index steps) const {
    std::vector<float> out(size_t((model.per_step() ? B * steps : B) * model.output_size()));
    if (model.takes_ids()) model.predict(ids.data(), B, steps, out.data(), len);
    else model.predict(x.data(), B, steps, out.data(), len);
    return out;
  }
};

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = a.size() == b.size() ? 0 : 1e30;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, double(std::abs(a[i] - b[i])));
  return m;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST(python_files_load_and_predict_what_python_predicted) {
  for (const char* name : kFixtures) {
    Case c(name);
    const auto y = c.predict(c.lengths.data(), c.T);
    CHECK(max_diff(y, c.y) <= 1e-5);
  }
  Case lstm("lstm_proj_per_step");
  CHECK(!lstm.model.takes_ids() && lstm.model.per_step() && lstm.model.input_size() == 3);
  CHECK(lstm.model.output_size() == 2);
  Case gru("embedding_gru_last");
  CHECK(gru.model.takes_ids() && !gru.model.per_step() && gru.model.output_size() == 3);
  CHECK(contains(gru.model.summary(), "GRU(5, 6)"));
}

TEST(int32_ids_give_the_same_as_int64) {
  Case c("embedding_gru_last");
  std::vector<std::int32_t> ids32(c.ids.begin(), c.ids.end());
  std::vector<float> y(size_t(c.B * 3));
  c.model.predict(ids32.data(), c.B, c.T, y.data(), c.lengths.data());
  CHECK(max_diff(y, c.predict(c.lengths.data(), c.T)) == 0);
}

TEST(stepping_gives_what_predict_gives_on_the_whole_sequence) {
  for (const char* name : kFixtures) {
    Case c(name);
    auto s = c.model.stream(c.B);
    const Index I = c.model.input_size(), O = c.model.output_size();
    for (int pass = 0; pass < 2; ++pass) {  // the second pass after reset() must repeat the first
      std::vector<float> x_t(size_t(c.B * I)), y_t(size_t(c.B * O));
      std::vector<std::int64_t> ids_t(size_t(c.B));
      for (Index t = 0; t < c.T; ++t) {
        for (Index b = 0; b < c.B; ++b) {
          if (c.model.takes_ids()) ids_t[b] = c.ids[b * c.T + t];
          else std::copy_n(c.x.data() + (b * c.T + t) * I, I, x_t.data() + b * I);
        }
        if (c.model.takes_ids()) s.step(ids_t.data(), y_t.data());
        else s.step(x_t.data(), y_t.data());
        // per-step head: row t of predict; LastStep: predict on the first t+1 steps
        std::vector<float> want(size_t(c.B * O));
        if (c.model.per_step()) {
          const auto full = c.predict(nullptr, c.T);
          for (Index b = 0; b < c.B; ++b) std::copy_n(full.data() + (b * c.T + t) * O, O, want.data() + b * O);
        } else {
          std::vector<std::int64_t> upto(size_t(c.B), t + 1);
          want = c.predict(upto.data(), c.T);
        }
        CHECK(max_diff(y_t, want) <= 1e-5);
      }
      CHECK(s.steps() == c.T);
      s.reset();
      CHECK(s.steps() == 0);
    }
  }
}

TEST(every_cell_and_option_streams_like_predict) {
  std::vector<rnnkit::StackSpec> specs;
  for (CellType cell : {CellType::RNN_TANH, CellType::RNN_RELU, CellType::LSTM, CellType::GRU}) {
    specs.push_back(spec(cell, 3, 5, 2));
    auto nb = spec(cell, 3, 5);
    nb.bias = false;
    specs.push_back(nb);
  }
  auto proj = spec(CellType::LSTM, 3, 6, 2);
  proj.proj_size = 2;
  specs.push_back(proj);
  auto gru = spec(CellType::GRU, 3, 5, 2);
  gru.reset_after = false;
  specs.push_back(gru);
  for (Index proj : {0, 2}) {  // LSTM with peepholes, with and without a projection
    auto peep = spec(CellType::LSTM, 3, 6, 2);
    peep.peepholes = true;
    peep.proj_size = proj;
    specs.push_back(peep);
  }
  unsigned seed = 1;
  for (const auto& s : specs) {
    for (const char* head : {"", "MeanPool", "LastStep"}) {
      std::vector<LayerDesc> layers{recurrent(s)};
      if (*head) layers.push_back(pool(head));
      layers.push_back(linear(s.out_size(), 2));
      const Model model = random_model(layers, seed++).model();
      const Index B = 2, T = 5, O = 2;
      std::mt19937 rng(seed);
      std::normal_distribution<float> n;
      std::vector<float> x(size_t(B * T * 3));
      for (auto& v : x) v = n(rng);
      auto st = model.stream(B);
      for (Index t = 0; t < T; ++t) {
        std::vector<float> x_t(size_t(B * 3)), y_t(size_t(B * O));
        for (Index b = 0; b < B; ++b) std::copy_n(x.data() + (b * T + t) * 3, 3, x_t.data() + b * 3);
        st.step(x_t.data(), y_t.data());
        // the oracle: predict on the first t+1 steps, output at step t
        std::vector<float> y(size_t((*head ? B : B * (t + 1)) * O));
        std::vector<float> prefix;
        for (Index b = 0; b < B; ++b) prefix.insert(prefix.end(), x.begin() + b * T * 3, x.begin() + (b * T + t + 1) * 3);
        model.predict(prefix.data(), B, t + 1, y.data());
        std::vector<float> want(size_t(B * O));
        for (Index b = 0; b < B; ++b)
          std::copy_n(y.data() + (*head ? b : b * (t + 1) + t) * O, O, want.data() + b * O);
        CHECK(max_diff(y_t, want) <= 1e-5);
      }
    }
  }
}

TEST(a_bidirectional_model_refuses_to_stream_and_predicts) {
  auto s = spec(CellType::LSTM, 3, 4);
  s.bidirectional = true;
  const Model m = random_model({recurrent(s), pool("LastStep", true), linear(8, 1)}, 7).model();
  CHECK(!m.can_stream());
  bool thrown = false;
  try {
    m.stream(1);
  } catch (const std::invalid_argument& e) {
    thrown = contains(e.what(), "bidirectional");
  }
  CHECK(thrown);
  std::vector<float> x(2 * 4 * 3, 0.5f), y(2);
  m.predict(x.data(), 2, 4, y.data());
  CHECK(std::isfinite(y[0]) && y[0] == y[1]);
}

TEST(bad_calls_throw_and_leave_the_stream_unchanged) {
  const Model m = random_model({embedding(5, 3), recurrent(spec(CellType::GRU, 3, 4)), linear(4, 2)}, 3).model();
  std::vector<std::int64_t> ids{1, 4}, bad{1, 5};
  std::vector<float> y(4), y2(4), x(6);
  const std::int64_t long_len[] = {3, 1};
  CHECK_THROWS(m.predict(ids.data(), 2, 1, y.data(), long_len));  // length 3 > steps 1
  CHECK_THROWS(m.predict(bad.data(), 2, 1, y.data()));            // id 5 >= 5
  CHECK_THROWS(m.predict(x.data(), 2, 1, y.data()));              // floats into an Embedding model
  CHECK_THROWS(m.stream(0));
  auto a = m.stream(2), b = m.stream(2);
  a.step(ids.data(), y.data());
  CHECK_THROWS(a.step(bad.data(), y.data()));
  CHECK(a.steps() == 1);
  a.step(ids.data(), y.data());
  b.step(ids.data(), y2.data());
  b.step(ids.data(), y2.data());
  CHECK(max_diff(y, y2) == 0);
}

TEST(save_model_round_trips) {
  const auto rm = random_model({recurrent(spec(CellType::LSTM, 2, 3)), pool("MeanPool"), linear(3, 2)}, 11);
  const std::string path = "test_model_roundtrip.safetensors";
  rnnkit::save_model(path, rm.architecture, rm.refs());
  const Model a = rm.model(), b = Model::load(path);
  std::vector<float> x(3 * 4 * 2, 0.25f), ya(6), yb(6);
  x[5] = -1;
  a.predict(x.data(), 3, 4, ya.data());
  b.predict(x.data(), 3, 4, yb.data());
  CHECK(max_diff(ya, yb) == 0);
  std::remove(path.c_str());
  // save_model refuses what load would refuse
  CHECK_THROWS(rnnkit::save_model(path, "{\"class\": \"Conv1d\", \"config\": {}}", rm.refs()));
  CHECK(!std::ifstream(path).good());
}

TEST(missing_foreign_and_other_version_files_say_what_is_wrong) {
  CHECK(contains(error_of([] { Model::load(kData + "/no_such_model.safetensors"); }), "cannot open"));
  const std::string path = "test_model_bad.safetensors";
  const float w[] = {1, 2};
  rnnkit::write_safetensors(path, {{"w", "F32", {2}, w}}, {});
  CHECK(contains(error_of([&] { Model::load(path); }), "not an rnnkit model"));
  rnnkit::write_safetensors(path, {{"w", "F32", {2}, w}}, {{"format", "rnnkit"}, {"format_version", "999"}});
  CHECK(contains(error_of([&] { Model::load(path); }), "version \"999\""));
  write_bytes(path, {});
  CHECK(contains(error_of([&] { Model::load(path); }), "truncated"));
  std::remove(path.c_str());
}

TEST(unknown_layers_options_and_mismatched_tensors_are_refused) {
  const auto rm = random_model({recurrent(spec(CellType::LSTM, 2, 3)), linear(3, 2)}, 5);
  auto err = [&](std::string arch, std::vector<rnnkit::TensorRef> refs = {}) {
    if (refs.empty()) refs = rm.refs();
    return error_of([&] { Model::from_tensors(arch, refs); });
  };
  auto replace = [](std::string s, const std::string& a, const std::string& b) {
    s.replace(s.find(a), a.size(), b);
    return s;
  };
  const std::string& arch = rm.architecture;
  CHECK(contains(err(replace(arch, "\"Linear\"", "\"Conv1d\"")), "unknown layer \"Conv1d\""));
  CHECK(contains(err(replace(arch, "\"proj_size\"", "\"peephole\"")), "unknown option 'peephole'"));
  // sizes that fit together but not the tensors
  const std::string wider = replace(replace(arch, "\"hidden_size\": 3", "\"hidden_size\": 4"), "\"in_features\": 3",
                                    "\"in_features\": 4");
  CHECK(contains(err(wider), "the architecture needs (16, 2)"));
  CHECK(contains(err(replace(arch, "\"in_features\": 3", "\"in_features\": 4")), "in_features is 4"));
  CHECK(contains(err(replace(arch, "\"hidden_size\": 3", "\"hidden_size\": -3")), "hidden_size"));
  CHECK(contains(err(arch.substr(0, arch.size() - 3)), "not valid JSON"));
  auto refs = rm.refs();
  refs.pop_back();
  CHECK(contains(err(arch, refs), "layer 1 (Linear(3, 2)) needs 2 tensors, 6 with the layers before it; the file "
                                  "has 5"));
  refs = rm.refs();
  refs.back().name = "1.bias_";
  CHECK(contains(err(arch, refs), "'1.bias' is missing"));
  refs = rm.refs();
  refs.push_back({"2.weight", "F32", {1}, rm.data[0].data()});
  CHECK(contains(err(arch, refs), "'2.weight' belongs to no layer"));
  refs = rm.refs();
  refs[0].dtype = "I32";
  CHECK(contains(err(arch, refs), "dtype I32"));
}

TEST(the_architecture_table_drives_the_reader_and_the_summary) {
  namespace arch = rnnkit::arch;
  std::string names;
  for (const arch::LayerClass& c : arch::table()) names += c.name + " ";
  CHECK(names == "Embedding RNN LSTM GRU Linear LastStep MeanPool Dropout ");
  CHECK(arch::find("LSTM")->role == arch::Role::Recurrent && arch::find("Conv1d") == nullptr);

  const auto rm = random_model({embedding(6, 2), recurrent(spec(CellType::LSTM, 2, 3, 2)), pool("LastStep"),
                                {"Dropout", "\"p\": 0.25", {}}, linear(3, 2)}, 9);
  CHECK(rm.model().summary() ==
        "Embedding(6, 2)\nLSTM(2, 3, num_layers=2)\nLastStep()\nDropout(p=0.25)\nLinear(3, 2)\n");
  auto err = [&](const std::string& a, const std::string& b) {
    std::string s = rm.architecture;
    s.replace(s.find(a), a.size(), b);
    return error_of([&] { Model::from_tensors(s, rm.refs()); });
  };
  CHECK(contains(err("\"p\": 0.25", "\"p\": 1.5"), "layer 3 (Dropout): option 'p' must be in [0, 1), got 1.5"));
  CHECK(contains(err("\"dropout\": 0.0", "\"dropout\": -1"), "option 'dropout' must be in [0, 1), got -1"));
  CHECK(contains(err("\"num_layers\": 2", "\"num_layers\": 2.5"),
                 "layer 1 (LSTM): option 'num_layers' must be a whole number >= 1, got 2.5"));
  CHECK(contains(err("\"bias\": true, \"batch_first\"", "\"bias\": \"yes\", \"batch_first\""),
                 "option 'bias' must be true or false, got \"yes\""));
  CHECK(contains(err("\"padding_idx\": null", "\"padding_idx\": 6"),
                 "layer 0 (Embedding): padding_idx must be in -6..5 (num_embeddings is 6), got 6"));
  CHECK(contains(err("\"proj_size\": 0", "\"proj_size\": 3"), "proj_size must be smaller than hidden_size (3), got 3"));
  CHECK(contains(err("\"hidden_size\": 3", "\"hidden_size\": 3, \"hidden_size\": 3"),
                 "not valid JSON (invalid JSON: duplicate key \"hidden_size\" at byte"));
  CHECK(contains(err("\"in_features\": 3, \"out_features\": 2, \"bias\": true, \"dtype\": \"float32\"",
                     "\"in_features\": 3, \"out_features\": 2, \"bias\": true, \"dtype\": \"float64\""),
                 "layer 4 (Linear(3, 2)): dtype \"float64\" differs"));
  CHECK(contains(err("\"peepholes\": false", "\"peepholes\": 1"),
                 "option 'peepholes' must be true or false, got 1"));
}

TEST(truncated_files_throw_at_every_length) {
  for (const char* name : kFixtures) {
    const auto bytes = read_bytes(kData + "/" + name + ".safetensors");
    CHECK(bytes.size() > 1000);
    int model_errors = 0;
    for (size_t n = 0; n < bytes.size(); ++n) {
      std::vector<unsigned char> cut(bytes.begin(), bytes.begin() + long(n));
      const std::string e = error_of([&] { TensorFile::parse(cut, "cut"); });
      if (contains(e, "cut: ")) ++model_errors;
      else std::printf("  length %zu: %s\n", n, e.c_str());
    }
    CHECK(model_errors == int(bytes.size()));
  }
}

TEST(a_flipped_bit_anywhere_is_caught_or_harmless) {
  // Flips in the tensors' bytes break the checksum; flips in the header break
  // its JSON, a name, a size or the architecture. A few flips leave a valid
  // file that means the same model (e.g. a digit of "dropout", unused at
  // inference): those must load and predict what the original predicts.
  for (const char* name : kFixtures) {
    const std::string path = std::string("test_model_flip_") + name + ".safetensors";
    Case c(name);
    const auto bytes = read_bytes(kData + "/" + name + ".safetensors");
    int caught = 0, harmless = 0;
    for (size_t i = 0; i < bytes.size(); ++i) {
      auto flipped = bytes;
      flipped[i] ^= static_cast<unsigned char>(1u << (i % 8));
      write_bytes(path, flipped);
      try {
        const Model m = Model::load(path);
        Case d = c;
        d.model = m;
        if (max_diff(d.predict(c.lengths.data(), c.T), c.y) <= 1e-5) ++harmless;
        else std::printf("  byte %zu: a flipped file loads and predicts differently\n", i);
      } catch (const ModelFileError&) {
        ++caught;
      } catch (const std::exception& e) {
        std::printf("  byte %zu: %s\n", i, e.what());
      }
    }
    std::printf("  %s: %zu flips, %d caught, %d harmless\n", name, bytes.size(), caught, harmless);
    CHECK(caught + harmless == int(bytes.size()));
    CHECK(caught > int(bytes.size()) * 9 / 10);
    std::remove(path.c_str());
  }
}

TEST(float64_model_computes_in_double) {
  const auto rm = random_model({recurrent(spec(CellType::GRU, 2, 3)), linear(3, 1)}, 9);
  std::vector<std::vector<double>> d64;
  std::vector<rnnkit::TensorRef> refs = rm.refs();
  for (size_t i = 0; i < refs.size(); ++i) {
    d64.emplace_back(rm.data[i].begin(), rm.data[i].end());
    refs[i].dtype = "F64";
    refs[i].data = d64.back().data();
  }
  const auto md = rnnkit::ModelD::from_tensors(rm.architecture, refs);
  const auto mf = rm.model();
  std::vector<double> x(2 * 3 * 2, 0.3), yd(6);
  std::vector<float> xf(x.begin(), x.end()), yf(6);
  md.predict(x.data(), 2, 3, yd.data());
  mf.predict(xf.data(), 2, 3, yf.data());
  for (int i = 0; i < 6; ++i) CHECK_CLOSE(yd[i], yf[i], 1e-5);
}

int main() { return check::run_all(); }
