// tools/config.h — the run configuration: a declared schema of every key (type, default, range or
// choices), validation of a user's JSON file and --set overrides against it, and the resolved
// config (defaults filled in) that a run records as config.json.
//
// Validation happens before any work: an unknown key, a wrong type or an out-of-range value throws
// fm::ConfigError with one line naming the key and what was expected, and nothing is written.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace fm::tools {

using Json = nlohmann::json;

// Reads a config file as JSON (the user config, before overrides and resolution). Throws fm::IOError
// when it cannot be read and fm::ConfigError when it is not JSON.
Json load_config_file(const std::string& path);
// The same for config text already in memory; `source` names it in error messages.
Json parse_config_text(std::string_view text, const std::string& source);
// Applies "key.path=value" overrides (value parsed as JSON when it parses, else as a string) to a
// user config (before resolution). Throws fm::ConfigError for a malformed override or a user config
// that is not a JSON object.
void apply_overrides(Json& user_config, const std::vector<std::string>& overrides);
// Validates a user config against the schema and fills in defaults.
Json resolve_config(const Json& user_config);

// The schema as text, one key per line with its type, default and allowed values (fmtrain --help).
std::string describe_schema();

// True for data sets of 2-D points; false for image data sets.
bool is_2d_dataset(const std::string& name);
// How many classes a data set's labels have (2-D: one per mode, flow/datasets2d.h; fashion_mnist: 10).
int dataset_class_count(const std::string& name);

}  // namespace fm::tools
