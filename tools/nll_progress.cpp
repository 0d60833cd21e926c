// tools/nll_progress.cpp — the progress file of `fmeval nll` (see nll_progress.h).
//
// The file: {"format": "fmeval-nll-progress", "version": 1, "settings": {...}, "nfe": N, "seconds": S,
// "index": [i, ...], "nll": [v, ...]} with the finished examples in index order. JSON writes a double
// with 17 significant digits, which reads back as the same double, so a resumed run's mean and standard
// error are the uninterrupted run's bits.
#include "tools/nll_progress.h"

#include <cmath>
#include <filesystem>
#include <limits>

#include "core/error.h"
#include "core/io/atomic_file.h"

namespace fm::tools {

namespace {
constexpr const char* kFormat = "fmeval-nll-progress";
constexpr int kVersion = 1;

// JSON text of a value; bytes that are not UTF-8 (a path's) become U+FFFD instead of an exception,
// the same way when written and when compared, so such a path still names one run.
std::string json_text(const Json& value) { return value.dump(-1, ' ', false, Json::error_handler_t::replace); }
}  // namespace

std::int64_t NllProgress::finished() const {
  std::int64_t count = 0;
  for (double v : values) count += std::isnan(v) ? 0 : 1;
  return count;
}

bool NllProgress::finished(std::int64_t begin, std::int64_t end) const {
  for (std::int64_t i = begin; i < end; ++i)
    if (std::isnan(values[std::size_t(i)])) return false;
  return true;
}

std::string nll_progress_path(const std::string& csv) { return csv + ".partial.json"; }

bool load_nll_progress(const std::string& path, NllProgress& progress) {
  if (!std::filesystem::exists(path)) return false;
  decode_nll_progress(io::read_file_bytes(path), path, progress);
  return true;
}

void decode_nll_progress(const std::string& text, const std::string& path, NllProgress& progress) {
  Json file;
  try {
    file = parse_config_text(text, path);
  } catch (const ConfigError& e) {
    throw FormatError(e.what());
  }
  const auto field = [&](const char* key) -> const Json& {
    FM_CHECK(file.is_object() && file.contains(key), FormatError, path, ": no \"", key, "\"; expected the progress file (",
             kFormat, ") that fmeval nll --csv keeps beside its CSV");
    return file.at(key);
  };
  FM_CHECK(field("format") == kFormat && field("version") == kVersion, FormatError, path, ": format ",
           field("format").dump(), " version ", field("version").dump(), ", expected \"", kFormat, "\" version ", kVersion);
  const Json& settings = field("settings");
  FM_CHECK(settings.is_object(), FormatError, path, ": \"settings\" is ", settings.type_name(), ", expected an object");
  for (const auto& [key, value] : progress.settings.items()) {
    const std::string was = settings.contains(key) ? json_text(settings.at(key)) : std::string("(none)");
    FM_CHECK(was == json_text(value), ConfigError, path, " holds the progress of a run with ", key, " = ", was, ", not ",
             json_text(value), " as now: run with that setting to go on, or delete the file to start over");
  }
  // A setting the file has and this run does not (a key added for a new option, kept out of the
  // settings when the option is at its default, so older files still go on).
  for (const auto& [key, value] : settings.items())
    FM_CHECK(progress.settings.contains(key), ConfigError, path, " holds the progress of a run with ", key, " = ",
             json_text(value), ", which this run does not set: run with that setting to go on, or delete the file to "
             "start over");
  const Json &index = field("index"), &nll = field("nll"), &nfe = field("nfe"), &seconds = field("seconds");
  FM_CHECK(index.is_array() && nll.is_array() && index.size() == nll.size(), FormatError, path,
           ": \"index\" and \"nll\" must be arrays of the same length");
  FM_CHECK(nfe.is_number_integer() && nfe.get<std::int64_t>() >= 0 && seconds.is_number() && seconds.get<double>() >= 0,
           FormatError, path, ": \"nfe\" ", nfe.dump(), " and \"seconds\" ", seconds.dump(),
           " must be a count and a number of seconds");
  const std::int64_t n = std::int64_t(progress.values.size());
  progress.values.assign(std::size_t(n), std::numeric_limits<double>::quiet_NaN());
  for (std::size_t k = 0; k < index.size(); ++k) {
    FM_CHECK(index[k].is_number_integer() && index[k].get<std::int64_t>() >= 0 && index[k].get<std::int64_t>() < n,
             FormatError, path, ": example index ", index[k].dump(), " is not one of 0 … ", n - 1);
    FM_CHECK(nll[k].is_number() && std::isfinite(nll[k].get<double>()), FormatError, path, ": the value of example ",
             index[k].dump(), " is ", nll[k].dump(), ", expected a finite number");
    progress.values[index[k].get<std::size_t>()] = nll[k].get<double>();
  }
  progress.nfe = nfe.get<std::int64_t>();
  progress.seconds = seconds.get<double>();
}

void save_nll_progress(const std::string& path, const NllProgress& progress) {
  Json index = Json::array(), nll = Json::array();
  for (std::size_t i = 0; i < progress.values.size(); ++i)
    if (!std::isnan(progress.values[i])) index.push_back(i), nll.push_back(progress.values[i]);
  const Json file = {{"format", kFormat},   {"version", kVersion},         {"settings", progress.settings},
                     {"nfe", progress.nfe}, {"seconds", progress.seconds}, {"index", index},
                     {"nll", nll}};
  io::write_file_atomically(path, json_text(file) + "\n");
}

}  // namespace fm::tools
