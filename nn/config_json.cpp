// nn/config_json.cpp — typed, key-naming JSON config reading (see config_json.h).
#include "nn/config_json.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace fm::nn {

std::string json_excerpt(const nlohmann::json& value) {
  std::string text = value.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

ConfigReader::ConfigReader(const nlohmann::json& object, std::string prefix)
    : object_(object), prefix_(std::move(prefix)) {
  FM_CHECK(object.is_object(), ConfigError, prefix_.empty() ? "config" : prefix_,
           ": expected a JSON object, got ", json_excerpt(object));
}

const nlohmann::json* ConfigReader::find(const std::string& key) {
  known_.insert(key);
  auto it = object_.find(key);
  return it == object_.end() ? nullptr : &*it;
}

namespace {

bool as_int(const nlohmann::json& v, long long& out) {
  if (v.is_number_integer()) {
    out = v.get<long long>();
    return true;
  }
  // 4.0 is an integer too; 4.5 is not.
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::abs(d) < 1e15) {
      out = static_cast<long long>(d);
      return true;
    }
  }
  return false;
}

bool fits_int(long long v) {
  return v <= std::numeric_limits<int>::max() && v >= std::numeric_limits<int>::min();
}

}  // namespace

void ConfigReader::read_positive_int(const std::string& key, int& value) {
  const nlohmann::json* v = find(key);
  if (!v) return;
  long long n = 0;
  FM_CHECK(as_int(*v, n) && n > 0 && fits_int(n), ConfigError, path(key),
           ": expected a positive integer, got ", json_excerpt(*v));
  value = int(n);
}

void ConfigReader::read_nonnegative_int(const std::string& key, int& value) {
  const nlohmann::json* v = find(key);
  if (!v) return;
  long long n = 0;
  FM_CHECK(as_int(*v, n) && n >= 0 && fits_int(n), ConfigError, path(key),
           ": expected a non-negative integer, got ", json_excerpt(*v));
  value = int(n);
}

void ConfigReader::read_positive_number(const std::string& key, double& value) {
  const nlohmann::json* v = find(key);
  if (!v) return;
  FM_CHECK(v->is_number() && std::isfinite(v->get<double>()) && v->get<double>() > 0, ConfigError,
           path(key), ": expected a positive number, got ", json_excerpt(*v));
  value = v->get<double>();
}

void ConfigReader::read_nonnegative_number(const std::string& key, double& value) {
  const nlohmann::json* v = find(key);
  if (!v) return;
  FM_CHECK(v->is_number() && std::isfinite(v->get<double>()) && v->get<double>() >= 0, ConfigError,
           path(key), ": expected a non-negative number, got ", json_excerpt(*v));
  value = v->get<double>();
}

void ConfigReader::read_bool(const std::string& key, bool& value) {
  const nlohmann::json* v = find(key);
  if (!v) return;
  FM_CHECK(v->is_boolean(), ConfigError, path(key), ": expected true or false, got ", json_excerpt(*v));
  value = v->get<bool>();
}

void ConfigReader::read_string(const std::string& key, std::string& value) {
  const nlohmann::json* v = find(key);
  if (!v) return;
  FM_CHECK(v->is_string(), ConfigError, path(key), ": expected a string, got ", json_excerpt(*v));
  value = v->get<std::string>();
}

void ConfigReader::read_positive_int_array(const std::string& key, std::vector<int>& value) {
  const nlohmann::json* v = find(key);
  if (!v) return;
  std::vector<int> parsed;
  bool ok = v->is_array();
  if (ok) {
    for (const auto& element : *v) {
      long long n = 0;
      if (!as_int(element, n) || n <= 0 || !fits_int(n)) {
        ok = false;
        break;
      }
      parsed.push_back(int(n));
    }
  }
  FM_CHECK(ok, ConfigError, path(key), ": expected an array of positive integers, got ", json_excerpt(*v));
  value = parsed;
}

void ConfigReader::read_bool_array(const std::string& key, std::vector<bool>& value) {
  const nlohmann::json* v = find(key);
  if (!v) return;
  std::vector<bool> parsed;
  bool ok = v->is_array();
  if (ok) {
    for (const auto& element : *v) {
      if (!element.is_boolean()) {
        ok = false;
        break;
      }
      parsed.push_back(element.get<bool>());
    }
  }
  FM_CHECK(ok, ConfigError, path(key), ": expected an array of true/false values, got ", json_excerpt(*v));
  value = parsed;
}

void ConfigReader::reject_unknown_keys() const {
  for (auto it = object_.begin(); it != object_.end(); ++it) {
    if (known_.count(it.key())) continue;
    std::string known_list;
    for (const auto& k : known_) known_list += (known_list.empty() ? "" : ", ") + k;
    throw ConfigError(cat(path(it.key()), ": unknown key (known keys: ", known_list, ")"));
  }
}

}  // namespace fm::nn
