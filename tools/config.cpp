// tools/config.cpp — the config schema and its validation (see config.h).
//
// Each key is declared once with its type, default and constraints. Keys under "model." belong to
// one model type (mlp or unet) and are rejected for the other, so a typo or a key meant for another
// model is caught rather than silently ignored.
#include "tools/config.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "core/error.h"

namespace fm::tools {
namespace {

enum class KeyType { Integer, Number, Bool, String, IntArray, BoolArray, NullableNumber };

struct KeySpec {
  std::string path;
  KeyType type;
  Json default_value;
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices;
  std::string only_for_model;  // "", "mlp" or "unet"
  std::string help;
};

constexpr double kInf = std::numeric_limits<double>::infinity();

const std::vector<KeySpec>& schema() {
  static const std::vector<KeySpec> keys = {
      {"device", KeyType::String, "auto", -kInf, kInf, {"auto", "cpu", "cuda"}, "", "where to run: auto picks cuda when a GPU is present"},
      {"kernels", KeyType::String, "custom", -kInf, kInf, {"custom", "library"}, "", "CUDA image ops: the project's kernels or cuDNN/cuBLAS"},
      {"data.name", KeyType::String, "moons", -kInf, kInf, {"moons", "spiral", "8gaussians", "checkerboard", "fashion_mnist"}, "", "training data"},
      {"data.noise", KeyType::NullableNumber, nullptr, 0, 10, {}, "", "2-D data: noise level (null = the data set's default)"},
      {"data.dir", KeyType::String, "/usr/share/datasets/fashion-mnist", -kInf, kInf, {}, "", "image data: folder of IDX files"},
      {"data.images", KeyType::String, "train-images-idx3-ubyte.gz", -kInf, kInf, {}, "", "image data: training images file (in data.dir, or a path)"},
      {"data.limit", KeyType::Integer, 0, 0, 1e9, {}, "", "image data: use only the first N images (0 = all)"},
      {"model.type", KeyType::String, "mlp", -kInf, kInf, {"mlp", "unet"}, "", "velocity network"},
      {"model.hidden_width", KeyType::Integer, 64, 1, 1e5, {}, "mlp", "units per hidden layer"},
      {"model.hidden_layers", KeyType::Integer, 3, 1, 64, {}, "mlp", "hidden layers"},
      {"model.activation", KeyType::String, "gelu", -kInf, kInf, {"gelu", "silu", "relu", "tanh"}, "mlp", "hidden activation"},
      {"model.time_embedding_dim", KeyType::Integer, 0, 0, 4096, {}, "mlp", "0: t is one input column; else a sinusoidal embedding of this size"},
      {"model.in_channels", KeyType::Integer, 1, 1, 64, {}, "unet", "image channels"},
      {"model.down_channels", KeyType::IntArray, Json::array({32, 64, 128}), 1, 4096, {}, "unet", "channels per down level"},
      {"model.mid_channels", KeyType::IntArray, Json::array({128, 64}), 1, 4096, {}, "unet", "channels in the middle block"},
      {"model.time_emb_dim", KeyType::Integer, 128, 2, 4096, {}, "unet", "time embedding size (even)"},
      {"model.down_sample", KeyType::BoolArray, Json::array({true, true}), -kInf, kInf, {}, "unet", "downsample after each level"},
      {"model.attention", KeyType::BoolArray, Json::array({false, true}), -kInf, kInf, {}, "unet", "self-attention in each level"},
      {"model.num_heads", KeyType::Integer, 4, 1, 64, {}, "unet", "attention heads"},
      {"model.groups", KeyType::Integer, 8, 1, 512, {}, "unet", "GroupNorm groups"},
      {"path.scheduler", KeyType::String, "condot", -kInf, kInf, {"condot", "cosine", "vp"}, "", "probability path x_t = a_t x1 + s_t x0"},
      {"train.steps", KeyType::Integer, 5000, 1, 1e9, {}, "", "optimisation steps"},
      {"train.batch_size", KeyType::Integer, 1024, 1, 1e6, {}, "", "examples per step"},
      {"train.lr", KeyType::Number, 1e-3, 0, 10, {}, "", "peak learning rate"},
      {"train.seed", KeyType::Integer, 0, 0, 9.007199254740991e15, {}, "", "seed for initialisation, data order, noise and times"},
      {"train.optimizer", KeyType::String, "adam", -kInf, kInf, {"adam", "adamw", "sgd"}, "", "optimiser"},
      {"train.weight_decay", KeyType::Number, 0.0, 0, 1, {}, "", "AdamW decoupled weight decay"},
      {"train.momentum", KeyType::Number, 0.9, 0, 1, {}, "", "SGD momentum"},
      {"train.beta1", KeyType::Number, 0.9, 0, 0.999999, {}, "", "Adam beta1"},
      {"train.beta2", KeyType::Number, 0.999, 0, 0.999999999, {}, "", "Adam beta2"},
      {"train.warmup_steps", KeyType::Integer, 0, 0, 1e9, {}, "", "linear LR warmup steps"},
      {"train.lr_schedule", KeyType::String, "constant", -kInf, kInf, {"constant", "cosine"}, "", "LR after warmup"},
      {"train.grad_clip", KeyType::Number, 0.0, 0, 1e9, {}, "", "clip the global gradient norm (0 = off)"},
      {"train.ema_decay", KeyType::Number, 0.999, 0, 0.999999999, {}, "", "EMA of the weights (0 = off)"},
      {"train.time_sampler", KeyType::String, "uniform", -kInf, kInf, {"uniform", "logit_normal", "warp"}, "", "distribution of t in the loss"},
      {"train.time_warp_s", KeyType::Number, 0.5, 0, 1.5, {}, "", "warp: slope at t = 1/2 (seed 003)"},
      {"train.logit_normal_mean", KeyType::Number, 0.0, -10, 10, {}, "", "logit_normal: mean"},
      {"train.logit_normal_std", KeyType::Number, 1.0, 1e-3, 10, {}, "", "logit_normal: std"},
      {"train.log_every", KeyType::Integer, 50, 1, 1e9, {}, "", "steps between metrics.jsonl lines"},
      {"train.checkpoint_every", KeyType::Integer, 1000, 1, 1e9, {}, "", "steps between checkpoints"},
      {"train.sample_every", KeyType::Integer, 0, 0, 1e9, {}, "", "steps between sample pictures (0 = only at the end)"},
      {"sample.solver", KeyType::String, "euler", -kInf, kInf, {"euler", "midpoint", "heun", "rk4", "dopri5"}, "", "ODE solver"},
      {"sample.steps", KeyType::Integer, 100, 1, 1e6, {}, "", "fixed-step solvers: steps from t = 0 to 1"},
      {"sample.rtol", KeyType::Number, 1e-5, 1e-12, 1, {}, "", "dopri5: relative tolerance"},
      {"sample.atol", KeyType::Number, 1e-5, 1e-12, 1, {}, "", "dopri5: absolute tolerance"},
      {"sample.n", KeyType::Integer, 2000, 1, 1e7, {}, "", "samples drawn at the end of training"},
      {"sample.use_ema", KeyType::Bool, true, -kInf, kInf, {}, "", "sample with the EMA weights (when train.ema_decay > 0)"},
      {"sample.seed", KeyType::Integer, 1, 0, 9.007199254740991e15, {}, "", "seed for the sampling noise"},
      {"eval.n", KeyType::Integer, 2000, 2, 1e7, {}, "", "2-D: points per set in the sliced Wasserstein distance"},
      {"eval.projections", KeyType::Integer, 256, 1, 1e6, {}, "", "2-D: random directions of the sliced distance"},
      {"output.dir", KeyType::String, "", -kInf, kInf, {}, "", "run directory (default runs/<config file name>)"},
  };
  return keys;
}

const char* type_name(KeyType type) {
  switch (type) {
    case KeyType::Integer: return "an integer";
    case KeyType::Number: return "a number";
    case KeyType::NullableNumber: return "a number or null";
    case KeyType::Bool: return "true or false";
    case KeyType::String: return "a string";
    case KeyType::IntArray: return "an array of integers";
    case KeyType::BoolArray: return "an array of true/false";
  }
  return "?";
}

std::string range_text(const KeySpec& spec) {
  std::ostringstream os;
  if (!spec.choices.empty()) {
    os << "one of";
    for (std::size_t i = 0; i < spec.choices.size(); ++i) os << (i ? ", " : " ") << '"' << spec.choices[i] << '"';
    return os.str();
  }
  if (std::isfinite(spec.min) && std::isfinite(spec.max)) os << "in [" << spec.min << ", " << spec.max << "]";
  return os.str();
}

std::string expected_text(const KeySpec& spec) {
  std::string r = range_text(spec);
  return r.empty() ? type_name(spec.type) : std::string(type_name(spec.type)) + " " + r;
}

[[noreturn]] void reject(const KeySpec& spec, const Json& value) {
  throw ConfigError(cat(spec.path, ": got ", value.dump(), ", expected ", expected_text(spec)));
}

void check_number_range(const KeySpec& spec, const Json& value, double v) {
  if (!(v >= spec.min && v <= spec.max)) reject(spec, value);
}

void check_value(const KeySpec& spec, const Json& value) {
  switch (spec.type) {
    case KeyType::Integer:
      if (!value.is_number_integer()) reject(spec, value);
      check_number_range(spec, value, value.get<double>());
      break;
    case KeyType::NullableNumber:
      if (value.is_null()) break;
      [[fallthrough]];
    case KeyType::Number:
      if (!value.is_number()) reject(spec, value);
      check_number_range(spec, value, value.get<double>());
      break;
    case KeyType::Bool:
      if (!value.is_boolean()) reject(spec, value);
      break;
    case KeyType::String:
      if (!value.is_string()) reject(spec, value);
      if (!spec.choices.empty()) {
        bool found = false;
        for (const auto& c : spec.choices) found = found || c == value.get<std::string>();
        if (!found) reject(spec, value);
      }
      break;
    case KeyType::IntArray:
      if (!value.is_array() || value.empty()) reject(spec, value);
      for (const auto& e : value) {
        if (!e.is_number_integer()) reject(spec, value);
        check_number_range(spec, value, e.get<double>());
      }
      break;
    case KeyType::BoolArray:
      if (!value.is_array()) reject(spec, value);
      for (const auto& e : value)
        if (!e.is_boolean()) reject(spec, value);
      break;
  }
}

// Flattens {"train": {"lr": 1}} into {"train.lr": 1}; a non-object where a section is expected
// (or an object where a value is expected) is an error naming the key.
void flatten(const Json& node, const std::string& prefix, std::map<std::string, Json>& out,
             const std::map<std::string, const KeySpec*>& known) {
  if (!node.is_object())
    throw ConfigError(cat(prefix.empty() ? "config" : prefix, ": expected a JSON object (a section), got ", node.dump()));
  for (auto it = node.begin(); it != node.end(); ++it) {
    std::string path = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (known.count(path)) {
      out[path] = it.value();
      continue;
    }
    bool is_section = false;
    for (const auto& [key, spec] : known) is_section = is_section || key.rfind(path + ".", 0) == 0;
    if (!is_section) throw ConfigError(cat(path, ": unknown key (fmtrain --help lists every key)"));
    flatten(it.value(), path, out, known);
  }
}

void set_path(Json& root, const std::string& path, const Json& value) {
  Json* node = &root;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (dot == std::string::npos) {
      (*node)[part] = value;
      return;
    }
    if (!node->contains(part) || !(*node)[part].is_object()) (*node)[part] = Json::object();
    node = &(*node)[part];
    start = dot + 1;
  }
}

}  // namespace

bool is_2d_dataset(const std::string& name) { return name != "fashion_mnist"; }

Json resolve_config(const Json& user_config) {
  std::map<std::string, const KeySpec*> known;
  for (const auto& spec : schema()) known[spec.path] = &spec;
  std::map<std::string, Json> given;
  flatten(user_config, "", given, known);
  for (const auto& [path, value] : given) check_value(*known[path], value);

  // The model type defaults from the data: an MLP for 2-D points, the U-Net for images.
  std::string data_name = given.count("data.name") ? given["data.name"].get<std::string>() : "moons";
  std::string model_type = given.count("model.type") ? given["model.type"].get<std::string>()
                                                     : (is_2d_dataset(data_name) ? "mlp" : "unet");
  Json resolved = Json::object();
  for (const auto& spec : schema()) {
    bool active = spec.only_for_model.empty() || spec.only_for_model == model_type;
    auto it = given.find(spec.path);
    if (!active) {
      if (it != given.end())
        throw ConfigError(cat(spec.path, ": only applies to model.type \"", spec.only_for_model,
                              "\", but model.type is \"", model_type, "\""));
      continue;
    }
    set_path(resolved, spec.path, it != given.end() ? it->second : spec.default_value);
  }
  resolved["model"]["type"] = model_type;

  // Cross-key rules.
  std::string data = resolved["data"]["name"];
  if (is_2d_dataset(data) && model_type != "mlp")
    throw ConfigError(cat("model.type: \"", model_type, "\" does not fit 2-D data \"", data, "\"; expected \"mlp\""));
  if (!is_2d_dataset(data) && model_type != "unet")
    throw ConfigError(cat("model.type: \"", model_type, "\" does not fit image data \"", data, "\"; expected \"unet\""));
  if (model_type == "unet") {
    const Json& m = resolved["model"];
    std::size_t levels = m["down_channels"].size();
    if (m["down_sample"].size() != levels - 1)
      throw ConfigError(cat("model.down_sample: got ", m["down_sample"].size(), " entries, expected ", levels - 1,
                            " (one per pair of down_channels)"));
    if (m["attention"].size() != levels - 1)
      throw ConfigError(cat("model.attention: got ", m["attention"].size(), " entries, expected ", levels - 1,
                            " (one per pair of down_channels)"));
    if (m["mid_channels"].size() < 2 || m["mid_channels"][0] != m["down_channels"][levels - 1])
      throw ConfigError("model.mid_channels: expected at least 2 entries, the first equal to the last of model.down_channels");
    if (m["time_emb_dim"].get<int>() % 2 != 0)
      throw ConfigError(cat("model.time_emb_dim: got ", m["time_emb_dim"].get<int>(), ", expected an even number"));
    int groups = m["groups"];
    for (const auto* key : {"down_channels", "mid_channels"})
      for (const auto& c : m[key])
        if (c.get<int>() % groups != 0)
          throw ConfigError(cat("model.", key, ": ", c.get<int>(), " channels is not divisible by model.groups = ", groups));
  }
  return resolved;
}

Json load_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IOError(cat(path, ": cannot open config file"));
  Json user;
  try {
    user = Json::parse(in);
  } catch (const Json::parse_error& e) {
    throw ConfigError(cat(path, ": not valid JSON (", e.what(), ")"));
  }
  return user;
}

void apply_overrides(Json& user_config, const std::vector<std::string>& overrides) {
  for (const auto& item : overrides) {
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw ConfigError(cat("--set ", item, ": expected key.path=value"));
    std::string path = item.substr(0, eq), text = item.substr(eq + 1);
    Json value;
    try {
      value = Json::parse(text);
    } catch (const Json::parse_error&) {
      value = text;  // bare words are strings: --set sample.solver=rk4
    }
    set_path(user_config, path, value);
  }
}

std::string describe_schema() {
  std::ostringstream os;
  for (const auto& spec : schema()) {
    os << "  " << spec.path;
    if (!spec.only_for_model.empty()) os << " (" << spec.only_for_model << ")";
    os << " = " << spec.default_value.dump() << "  — " << expected_text(spec) << "; " << spec.help << "\n";
  }
  return os.str();
}

}  // namespace fm::tools
