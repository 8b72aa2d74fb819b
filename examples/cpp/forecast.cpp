// Next-hour temperature forecast from the last 5 hourly readings, with a model
// trained in Python and run here with no Python: the embedded runtime's predict().
//
//   python examples/weather_forecast.py           # writes examples/output/weather_lstm.safetensors
//   forecast examples/output/weather_lstm.safetensors readings.csv
//   tail -n 24 readings.csv | forecast examples/output/weather_lstm.safetensors     # or "-": stdin
//
// The model maps (B, 5, 1) raw readings in deg C to (B, 1): the next hour in deg C
// (weather_forecast.py folds its input standardisation into the weights).
//
// Input, oldest first: one reading per line, or CSV lines whose last column is the
// reading ("2013-12-30T18:00Z,EWR,4.4"). Blank lines and lines starting with '#'
// are skipped, and so is a first line that is not a number (a header). Only the
// last 5 readings are used.
//
// Output, one line:  next hour: 3.917 C (from the last 5 readings: 4.4, 4.4, 3.9, 3.9, 3.3)
// Exit status: 0; 1 for an unusable model file or input; 2 for a usage error.

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include <rnnkit/model.h>

namespace {

constexpr rnnkit::Index kWindow = 5;  // hours the weather model was trained on

struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return "";
  const auto end = s.find_last_not_of(" \t\r\n");
  return s.substr(begin, end - begin + 1);
}

// The whole of `s` as a finite number; false if any of it is not.
bool parse_number(const std::string& s, float& value) {
  if (s.empty()) return false;
  char* end = nullptr;
  value = std::strtof(s.c_str(), &end);
  return end == s.c_str() + s.size() && std::isfinite(value);
}

// Every reading of the stream, oldest first (see the file's top comment for the format).
std::vector<float> read_readings(std::istream& in, const std::string& source) {
  std::vector<float> readings;
  std::string line;
  bool first = true;
  for (long number = 1; std::getline(in, line); ++number) {
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    const auto comma = line.rfind(',');
    const std::string field = trim(comma == std::string::npos ? line : line.substr(comma + 1));
    float value = 0;
    if (parse_number(field, value)) {
      readings.push_back(value);
    } else if (!first) {
      throw InputError(source + ":" + std::to_string(number) + ": \"" + field + "\" is not a temperature");
    }
    first = false;  // only the first line may be a header
  }
  return readings;
}

int usage() {
  std::cerr << "usage: forecast MODEL [CSV|-]\n"
               "  MODEL  a model file from examples/weather_forecast.py (weather_lstm[_quick].safetensors)\n"
               "  CSV    hourly readings in deg C, oldest first, one per line or in the last column;\n"
               "         '-' or nothing: read standard input\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3 || std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help") return usage();
  const std::string model_path = argv[1];
  const std::string csv_path = argc == 3 ? argv[2] : "-";
  try {
    const rnnkit::Model model = rnnkit::Model::load(model_path);
    if (model.takes_ids() || model.input_size() != 1 || model.output_size() != 1 || model.per_step())
      throw rnnkit::ModelFileError(model_path + ": not a forecast model: it must map (B, steps, 1) readings to (B, 1), "
                                   "this one is\n" + model.summary());

    std::vector<float> readings;
    if (csv_path == "-") {
      readings = read_readings(std::cin, "stdin");
    } else {
      std::ifstream file(csv_path);
      if (!file) throw InputError(csv_path + ": cannot open the readings file");
      readings = read_readings(file, csv_path);
    }
    if (rnnkit::Index(readings.size()) < kWindow)
      throw InputError("need the last " + std::to_string(kWindow) + " hourly readings, got " +
                       std::to_string(readings.size()) + " from " + (csv_path == "-" ? "stdin" : csv_path));

    const std::vector<float> window(readings.end() - kWindow, readings.end());  // (1, 5, 1)
    const std::vector<float> next = model.predict(window, 1, kWindow);          // (1, 1)

    std::printf("next hour: %.3f C (from the last %d readings:", double(next[0]), int(kWindow));
    for (rnnkit::Index t = 0; t < kWindow; ++t) std::printf("%s %g", t ? "," : "", double(window[t]));
    std::printf(")\n");
    return 0;
  } catch (const rnnkit::ModelFileError& e) {
    std::cerr << "forecast: cannot use the model: " << e.what() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "forecast: " << e.what() << "\n";
  }
  return 1;
}
