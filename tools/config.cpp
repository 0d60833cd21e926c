// tools/config.cpp — the config schema and its validation (see config.h).
//
// Each key is declared once with its type, default and constraints. The "model" section is checked
// by the model's own reader (nn/mlp.h, nn/unet.h), so a key meant for the other model type, or a
// typo, is caught rather than silently ignored.
#include "tools/config.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "flow/scheduler.h"
#include "flow/solver.h"
#include "flow/coupling.h"
#include "flow/datasets2d.h"
#include "flow/source.h"
#include "flow/time_sampler.h"
#include "nn/mlp.h"
#include "nn/unet.h"
#include "tools/cli_args.h"
#include "tools/fashion_mnist_files.h"

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
  std::string help;
};

constexpr double kInf = std::numeric_limits<double>::infinity();

const std::vector<KeySpec>& schema() {
  static const std::vector<KeySpec> keys = {
      {"device", KeyType::String, "auto", -kInf, kInf, {"auto", "cpu", "cuda"}, "where to run: auto picks cuda when a GPU is present"},
      {"kernels", KeyType::String, "custom", -kInf, kInf, {"custom", "library"}, "CUDA image ops: the project's kernels or cuDNN/cuBLAS"},
      {"precision", KeyType::String, "fp32", -kInf, kInf, {"fp32", "tf32", "bf16"}, "CUDA matrix products and our convolutions: strict FP32, or TF32 or bfloat16 tensor cores with FP32 accumulation and FP32 tensors (docs/ops/tensor_cores.md; FM_PRECISION overrides; CPU runs ignore it)"},
      {"data.name", KeyType::String, "moons", -kInf, kInf, {"moons", "spiral", "8gaussians", "checkerboard", "fashion_mnist"}, "training data"},
      {"data.noise", KeyType::NullableNumber, nullptr, 0, 10, {}, "2-D data: noise level (null = the data set's default)"},
      {"data.dir", KeyType::String, kFashionMnistDir, -kInf, kInf, {}, "image data: folder of IDX files"},
      {"data.images", KeyType::String, "train-images-idx3-ubyte.gz", -kInf, kInf, {}, "image data: training images file (in data.dir, or a path)"},
      {"data.labels", KeyType::String, "train-labels-idx1-ubyte.gz", -kInf, kInf, {}, "image data: the images' label file (in data.dir, or a path), read when model.num_classes > 0"},
      {"data.limit", KeyType::Integer, 0, 0, 1e9, {}, "image data: use only the first N images (0 = all)"},
      {"data.source", KeyType::String, "gaussian", -kInf, kInf, flow::source_names(), "the source x0 is drawn from: N(0, I), or a 2-D data set (2-D data only)"},
      {"data.pairs", KeyType::String, "", -kInf, kInf, {}, "reflow pairs file (made by fmreflow): train on its (x0, x1) pairs instead of fresh data and noise (\"\" = off)"},
      {"model.type", KeyType::String, "mlp", -kInf, kInf, {"mlp", "unet"}, "velocity network (default: mlp for 2-D data, unet for images); its other keys are listed below"},
      {"path.scheduler", KeyType::String, "condot", -kInf, kInf, flow::scheduler_names(), "probability path x_t = a_t x1 + s_t x0"},
      {"train.steps", KeyType::Integer, 5000, 1, 1e9, {}, "optimisation steps"},
      {"train.batch_size", KeyType::Integer, 1024, 1, 1e6, {}, "examples per step"},
      {"train.lr", KeyType::Number, 1e-3, 0, 10, {}, "peak learning rate"},
      {"train.seed", KeyType::Integer, 0, 0, double(kMaxSeed), {}, "seed for initialisation, data order, noise and times"},
      {"train.optimizer", KeyType::String, "adam", -kInf, kInf, {"adam", "adamw", "sgd"}, "optimiser"},
      {"train.coupling", KeyType::String, "independent", -kInf, kInf, flow::coupling_names(), "pairing of x0 and x1 in a batch: as drawn, the exact minibatch OT assignment, or Sinkhorn draws"},
      {"train.sinkhorn_epsilon", KeyType::Number, 0.05, 1e-4, 10, {}, "sinkhorn: entropic regularisation, relative to the batch's mean squared distance"},
      {"train.label_dropout", KeyType::Number, 0.1, 0, 1, {}, "class-conditional models (model.num_classes > 0): probability that a sample's label is replaced by the null class (classifier-free guidance), in [0, 1)"},
      {"train.init_from", KeyType::String, "", -kInf, kInf, {}, "start from this checkpoint's weights (its EMA weights when it has them; the model sections must match): a reflow student starts from its teacher (\"\" = random initialisation)"},
      {"train.weight_decay", KeyType::Number, 0.0, 0, 1, {}, "AdamW decoupled weight decay"},
      {"train.momentum", KeyType::Number, 0.9, 0, 1, {}, "SGD momentum"},
      {"train.beta1", KeyType::Number, 0.9, 0, 0.999999, {}, "Adam beta1"},
      {"train.beta2", KeyType::Number, 0.999, 0, 0.999999999, {}, "Adam beta2"},
      {"train.warmup_steps", KeyType::Integer, 0, 0, 1e9, {}, "linear LR warmup steps"},
      {"train.lr_schedule", KeyType::String, "constant", -kInf, kInf, {"constant", "cosine"}, "LR after warmup"},
      {"train.grad_clip", KeyType::Number, 0.0, 0, 1e9, {}, "clip the global gradient norm (0 = off)"},
      {"train.ema_decay", KeyType::Number, 0.999, 0, 0.999999999, {}, "EMA of the weights (0 = off)"},
      {"train.time_sampler", KeyType::String, "uniform", -kInf, kInf, flow::time_sampler_names(), "distribution of t in the loss"},
      {"train.time_warp_s", KeyType::Number, 0.5, 0, 1.5, {}, "warp: slope at t = 1/2 (seed 003)"},
      {"train.logit_normal_mean", KeyType::Number, 0.0, -10, 10, {}, "logit_normal: mean"},
      {"train.logit_normal_std", KeyType::Number, 1.0, 1e-3, 10, {}, "logit_normal: std"},
      {"train.time_grid", KeyType::Integer, 1, 1, 1000, {}, "grid: t on {0, 1/k, ..., (k-1)/k} (k-step distillation on reflow pairs)"},
      {"train.log_every", KeyType::Integer, 50, 1, 1e9, {}, "steps between metrics.jsonl lines"},
      {"train.checkpoint_every", KeyType::Integer, 1000, 1, 1e9, {}, "steps between checkpoints"},
      {"train.detect_anomaly", KeyType::Bool, false, -kInf, kInf, {}, "check every op's output and gradient for NaN/Inf and stop at the first one, naming it (slow: for debugging)"},
      {"train.keep_checkpoints", KeyType::Bool, false, -kInf, kInf, {}, "also keep every checkpoint as checkpoint_step_NNNNNNN.safetensors (to measure quality against steps)"},
      {"train.sample_every", KeyType::Integer, 0, 0, 1e9, {}, "steps between sample pictures (0 = only at the end)"},
      {"sample.solver", KeyType::String, "euler", -kInf, kInf, flow::solver_names(), "ODE solver"},
      {"sample.steps", KeyType::Integer, 100, 1, 1e6, {}, "fixed-step solvers: steps from t = 0 to 1"},
      {"sample.rtol", KeyType::Number, 1e-5, 1e-12, 1, {}, "dopri5: relative tolerance"},
      {"sample.atol", KeyType::Number, 1e-5, 1e-12, 1, {}, "dopri5: absolute tolerance"},
      {"sample.n", KeyType::Integer, 2000, 1, 1e7, {}, "samples drawn at the end of training"},
      {"sample.use_ema", KeyType::Bool, true, -kInf, kInf, {}, "sample with the EMA weights (when train.ema_decay > 0)"},
      {"sample.seed", KeyType::Integer, 1, 0, double(kMaxSeed), {}, "seed for the sampling noise"},
      {"eval.n", KeyType::Integer, 2000, 2, 1e7, {}, "2-D: points per set in the sliced Wasserstein distance"},
      {"eval.projections", KeyType::Integer, 256, 1, 1e6, {}, "2-D: random directions of the sliced distance"},
      {"output.dir", KeyType::String, "", -kInf, kInf, {}, "run directory (default runs/<config file name>)"},
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

// The fewest digits that read back as `value`: the default 6 would print train.beta2's bound
// 0.999999999 as 1, and "got 1.0, expected a number in [0, 1]" would contradict itself.
std::string shortest_text(double value) {
  std::ostringstream os;
  for (int digits = 6; digits <= 17; ++digits) {
    os.str("");
    os << std::setprecision(digits) << value;
    if (std::strtod(os.str().c_str(), nullptr) == value) break;
  }
  return os.str();
}

std::string range_text(const KeySpec& spec) {
  std::ostringstream os;
  if (!spec.choices.empty()) {
    os << "one of";
    for (std::size_t i = 0; i < spec.choices.size(); ++i) os << (i ? ", " : " ") << '"' << spec.choices[i] << '"';
    return os.str();
  }
  if (std::isfinite(spec.min) && std::isfinite(spec.max))
    os << "in [" << shortest_text(spec.min) << ", " << shortest_text(spec.max) << "]";
  return os.str();
}

std::string expected_text(const KeySpec& spec) {
  if (!spec.choices.empty()) return range_text(spec);
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

// --set PATH=... where a prefix of PATH holds a value in the config: a section the config gives as
// something else ({"train": 5}: the config's error, which replacing it would hide), or a key path that
// goes on past a value key (train.lr.max). ConfigError saying which.
void refuse_path_through_value(const Json& config, const std::string& path) {
  const Json* node = &config;
  for (std::size_t start = 0, dot; (dot = path.find('.', start)) != std::string::npos; start = dot + 1) {
    const std::string part = path.substr(start, dot - start);
    if (!node->is_object() || !node->contains(part)) return;  // made as sections by set_path
    node = &node->at(part);
    if (node->is_object()) continue;
    const std::string prefix = path.substr(0, dot);
    const std::string value = node->dump(-1, ' ', false, Json::error_handler_t::replace);
    if (start == 0)
      throw ConfigError(cat("--set ", path, ": ", prefix, " is ", value,
                            " in the config, expected a section (a JSON object) to set a key in"));
    throw ConfigError(cat("--set ", path, ": unknown key (", prefix, " is a value, ", value, ", not a section)"));
  }
}

}  // namespace

bool is_2d_dataset(const std::string& name) { return name != "fashion_mnist"; }

int dataset_class_count(const std::string& name) {
  return is_2d_dataset(name) ? flow::make_toy_distribution(name)->num_classes() : 10;
}

namespace {

// model.num_classes against the data's labels, and train.label_dropout against the model.
void check_class_conditioning(const Json& resolved, bool label_dropout_given) {
  const int classes = resolved["model"].value("num_classes", 0);
  const double dropout = resolved["train"]["label_dropout"];
  const std::string data = resolved["data"]["name"];
  if (classes == 0) {
    if (label_dropout_given && dropout != 0.1)
      throw ConfigError(cat("train.label_dropout: got ", shortest_text(dropout),
                            ", but the model is unconditional (model.num_classes = 0); set model.num_classes or drop the key"));
    return;
  }
  if (!(dropout < 1))
    throw ConfigError(cat("train.label_dropout: got ", shortest_text(dropout), ", expected a number in [0, 1) (1 would never train the labels)"));
  if (!resolved["data"]["pairs"].get<std::string>().empty())
    throw ConfigError(cat("model.num_classes: ", classes, ", but reflow pairs (data.pairs) carry no labels; expected 0"));
  const int data_classes = dataset_class_count(data);
  if (classes != data_classes)
    throw ConfigError(cat("model.num_classes: got ", classes, ", but data \"", data, "\" has ", data_classes,
                          " classes (expected ", data_classes, " or 0 for an unconditional model)"));
}

}  // namespace

Json resolve_config(const Json& user_config_in) {
  if (!user_config_in.is_object())
    throw ConfigError(cat("config: expected a JSON object at the top level, got ", user_config_in.dump()));
  // The model section is validated by the model's own config reader (nn/mlp.h, nn/unet.h), which
  // knows every key of its model type; the rest is checked against the schema here.
  Json user_config = user_config_in;
  Json model = Json::object();
  if (user_config.contains("model")) {
    model = user_config["model"];
    if (!model.is_object()) throw ConfigError(cat("model: expected a JSON object (a section), got ", model.dump()));
    user_config.erase("model");
  }
  std::map<std::string, const KeySpec*> known;
  for (const auto& spec : schema()) known[spec.path] = &spec;
  std::map<std::string, Json> given;
  flatten(user_config, "", given, known);
  for (const auto& [path, value] : given) check_value(*known[path], value);

  Json resolved = Json::object();
  for (const auto& spec : schema()) {
    if (spec.path == "model.type") continue;
    auto it = given.find(spec.path);
    set_path(resolved, spec.path, it != given.end() ? it->second : spec.default_value);
  }

  // The model type defaults from the data: an MLP for 2-D points, the U-Net for images.
  std::string data = resolved["data"]["name"];
  // A 2-D data set as the source carries points to points: images need the Gaussian.
  if (!is_2d_dataset(data) && resolved["data"]["source"] != "gaussian")
    throw ConfigError(cat("data.source: \"", resolved["data"]["source"].get<std::string>(), "\" gives 2-D points, but data.name \"",
                          data, "\" is images (only \"gaussian\" works there)"));
  if (model.contains("type")) check_value(*known["model.type"], model["type"]);
  std::string model_type = model.value("type", is_2d_dataset(data) ? "mlp" : "unet");
  model["type"] = model_type;
  if (is_2d_dataset(data) && model_type != "mlp")
    throw ConfigError(cat("model.type: \"", model_type, "\" does not fit 2-D data \"", data, "\"; expected \"mlp\""));
  if (!is_2d_dataset(data) && model_type != "unet")
    throw ConfigError(cat("model.type: \"", model_type, "\" does not fit image data \"", data, "\"; expected \"unet\""));
  resolved["model"] = model_type == "mlp" ? nn::MLPConfig::from_json(model, "model").to_json()
                                          : nn::UNetConfig::from_json(model, "model").to_json();
  check_class_conditioning(resolved, given.count("train.label_dropout") > 0);
  return resolved;
}

Json load_config_file(const std::string& path) {
  // An ifstream opens a folder without complaint and then reads nothing ("not valid JSON").
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) throw IOError(cat(path, ": is a folder, expected a JSON config file"));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IOError(cat(path, ": cannot open config file"));
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config_text(text.str(), path);
}

namespace {

// Far deeper than any config (a section holding an array is 2 deep). nlohmann parses iteratively but
// copies and dumps recursively, so 100,000 nested '[' (or key parts) would overflow the stack later.
constexpr int kMaxConfigDepth = 64;

// Json::parse refusing nesting beyond kMaxConfigDepth, and a key given twice in one object (JSON
// parsers keep the last; a config with "steps" twice says two things), with a ConfigError naming `what`.
Json parse_depth_limited(std::string_view text, const std::string& what) {
  std::vector<std::set<std::string>> keys_of_open_objects;
  auto check = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if ((event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) &&
        depth >= kMaxConfigDepth)
      throw ConfigError(cat(what, ": JSON nested more than ", kMaxConfigDepth, " levels deep, expected sections of values"));
    if (event == Json::parse_event_t::object_start) keys_of_open_objects.emplace_back();
    if (event == Json::parse_event_t::object_end) keys_of_open_objects.pop_back();
    if (event == Json::parse_event_t::key && !keys_of_open_objects.back().insert(parsed.get<std::string>()).second)
      throw ConfigError(cat(what, ": the key \"", parsed.get<std::string>(), "\" appears twice in one object, expected each once"));
    return true;
  };
  return Json::parse(text, check);
}

}  // namespace

Json parse_config_text(std::string_view text, const std::string& source) {
  try {
    return parse_depth_limited(text, source);
  } catch (const Json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
    throw ConfigError(cat(source, ": not valid JSON (", e.what(), ")"));
  }
}

void apply_overrides(Json& user_config, const std::vector<std::string>& overrides) {
  // set_path indexes objects by key; on an array or a number nlohmann would throw its own type_error.
  if (!overrides.empty() && !user_config.is_object())
    throw ConfigError(cat("--set: the config is ", user_config.type_name(), ", expected a JSON object to override keys in"));
  for (const auto& item : overrides) {
    // The JSON parser refuses invalid UTF-8 in a config file, but a bare word below bypasses it, and
    // nlohmann's dump() (config.json, error messages) would then throw its own type_error.
    try {
      (void)Json(item).dump();
    } catch (const Json::type_error&) {
      throw ConfigError(cat("--set ", Json(item).dump(-1, ' ', false, Json::error_handler_t::replace),
                            ": not valid UTF-8, expected key.path=value in UTF-8 text"));
    }
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw ConfigError(cat("--set ", item, ": expected key.path=value"));
    std::string path = item.substr(0, eq), text = item.substr(eq + 1);
    // "train..lr" or "train." would make a key "" that the schema then reports as "train.: unknown key".
    if (path.front() == '.' || path.back() == '.' || path.find("..") != std::string::npos)
      throw ConfigError(cat("--set ", item, ": empty part in the key path, expected key.path=value"));
    if (std::count(path.begin(), path.end(), '.') >= kMaxConfigDepth)
      throw ConfigError(cat("--set ", path.substr(0, 40), "...: key path has more than ", kMaxConfigDepth, " parts"));
    refuse_path_through_value(user_config, path);
    Json value;
    try {
      value = parse_depth_limited(text, cat("--set ", path));
    } catch (const Json::exception&) {  // parse_error, or out_of_range for 1e999
      value = text;  // bare words are strings: --set sample.solver=rk4
    }
    set_path(user_config, path, value);
  }
}

std::string describe_schema() {
  std::ostringstream os;
  for (const auto& spec : schema()) {
    os << "  " << spec.path;
    os << " = " << spec.default_value.dump() << "  — " << expected_text(spec) << "; " << spec.help << "\n";
  }
  os << "  model (mlp): " << nn::MLPConfig().to_json().dump() << "\n";
  os << "  model (unet): " << nn::UNetConfig().to_json().dump() << "\n";
  os << "  model.num_classes = 0 (mlp and unet)  — an integer >= 0; 0 = unconditional, else class-conditional on the "
        "data's labels (equal to its class count: 8gaussians 8, moons 2, checkerboard 8, spiral 3, fashion_mnist 10)\n";
  os << "  model.class_embedding_dim = 16 (mlp)  — a positive integer; width of a class's learned vector\n";
  return os.str();
}

}  // namespace fm::tools
