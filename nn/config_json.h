// nn/config_json.h — reading model configs from JSON with errors that name the offending key.
//
// Layer: nn/ (uses core/ only, plus nlohmann::json). Every message starts with the full key path,
// says what was expected and what came: "model.down_channels: expected an array of positive integers,
// got \"abc\"". Unknown keys are errors too (a typo must not silently fall back to a default).
#pragma once
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fm::nn {

// Reads optional keys of one JSON object; a key that is absent leaves the caller's default alone.
class ConfigReader {
 public:
  // `prefix` is the object's own key path ("model"); throws ConfigError when `object` is no object.
  ConfigReader(const nlohmann::json& object, std::string prefix);

  void read_positive_int(const std::string& key, int& value);
  void read_nonnegative_int(const std::string& key, int& value);
  void read_positive_number(const std::string& key, double& value);
  void read_nonnegative_number(const std::string& key, double& value);
  void read_bool(const std::string& key, bool& value);
  void read_string(const std::string& key, std::string& value);
  void read_positive_int_array(const std::string& key, std::vector<int>& value);
  void read_bool_array(const std::string& key, std::vector<bool>& value);

  // Throws ConfigError for the first key no read_* call asked for, listing the known keys.
  void reject_unknown_keys() const;
  std::string path(const std::string& key) const { return prefix_.empty() ? key : prefix_ + "." + key; }

 private:
  const nlohmann::json* find(const std::string& key);
  const nlohmann::json& object_;
  std::string prefix_;
  std::set<std::string> known_;
};

// Short rendering of a JSON value for error messages (long values are cut).
std::string json_excerpt(const nlohmann::json& value);

}  // namespace fm::nn
