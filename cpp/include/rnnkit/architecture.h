#pragma once
// The architectures a model file may describe, as one table: each layer class
// (RNN, LSTM, GRU, Embedding, Linear, LastStep, MeanPool, Dropout), its options
// (key, type, default, range or allowed values, where its summary line shows
// it) and the checks across its options. The C++ loader (Model::load) reads
// configs against it, and Python's rk.load reads the same table through
// rnnkit._core.architecture_table(), so the two loaders accept and refuse the
// same files, with the same messages.
//
// A config is JSON, e.g. {"input_size": 3, "hidden_size": 8, "num_layers": 2};
// an option it leaves out takes its default, and an option the table does not
// list is refused (it could change what the layer computes).

#include <limits>
#include <string>
#include <vector>

namespace rnnkit::arch {

/// How the runtime builds and runs a layer of the class.
enum class Role { Embedding, Recurrent, Linear, Pool, Dropout };

/// The JSON an option takes. Int: a whole number (3 or 3.0); IntOrNull: one, or null.
enum class Type { Bool, Int, Number, String, IntOrNull };

/// Where an option shows in the layer's summary line, "LSTM(3, 8, num_layers=2)":
/// its value alone, in table order (Positional), as key=value always or only when
/// it differs from its default, or not at all.
enum class Shown { Never, Positional, Always, NotDefault };

struct Option {
  std::string key;
  Type type = Type::Int;
  bool required = false;       // no default: a config must give it
  double default_number = 0;   // the default of Bool (0 or 1), Int and Number; IntOrNull's is null
  std::string default_string;  // the default of String
  // Int, IntOrNull: the least and greatest values allowed; Number: minimum <= value < maximum
  double minimum = -std::numeric_limits<double>::infinity();
  double maximum = std::numeric_limits<double>::infinity();
  std::vector<std::string> allowed;  // String: the values it may take (empty: any)
  Shown shown = Shown::Never;
};

/// A check across a layer's options, after each option is read.
enum class CheckKind {
  SmallerThan,  // option < other unless option is 0: "proj_size must be smaller than hidden_size (8), got 8"
  IndexInto,    // unless null, -other <= option < other: an index into `other` rows, negative from the end
};

struct Check {
  CheckKind kind;
  std::string option, other;
};

struct LayerClass {
  std::string name;  // the "class" of a layer entry
  Role role;
  std::vector<Option> options;  // in the order the summary line shows them
  std::vector<Check> checks;
  std::string input;  // the option that must equal the features of the layer before ("" if none)
};

/// Every layer class a model file may hold, in the order messages list them.
const std::vector<LayerClass>& table();

/// The class called `name`, or nullptr.
const LayerClass* find(const std::string& name);

/// The largest whole number an Int option takes: a size past it cannot be allocated anyway.
constexpr double kMaxInt = 1e12;

}  // namespace rnnkit::arch
