// nn/mlp.cpp — the 2-D velocity MLP (see mlp.h).
#include "nn/mlp.h"

#include "core/autograd.h"
#include "core/ops.h"
#include "nn/activation.h"
#include "nn/class_embedding.h"
#include "nn/config_json.h"

namespace fm::nn {

void MLPConfig::validate(const std::string& prefix) const {
  auto key = [&](const std::string& name) { return prefix.empty() ? name : prefix + "." + name; };
  auto check = [](bool ok, const std::string& message) {
    if (!ok) throw ConfigError(message);
  };
  check(data_dim > 0, cat(key("data_dim"), ": expected a positive integer, got ", data_dim));
  check(hidden_width > 0, cat(key("hidden_width"), ": expected a positive integer, got ", hidden_width));
  check(hidden_layers >= 0, cat(key("hidden_layers"), ": expected a non-negative integer, got ", hidden_layers));
  check(is_known_activation(activation), cat(key("activation"), ": unknown activation '", activation,
                                             "', expected one of \"silu\", \"gelu\", \"relu\", \"tanh\""));
  check(time_input == "raw" || time_input == "sinusoidal",
        cat(key("time_input"), ": expected \"raw\" or \"sinusoidal\", got \"", time_input, "\""));
  check(time_embedding_dim > 0 && time_embedding_dim % 2 == 0,
        cat(key("time_embedding_dim"), ": expected a positive even integer, got ", time_embedding_dim));
  check(time_scale > 0, cat(key("time_scale"), ": expected a positive number, got ", time_scale));
  check(num_classes >= 0, cat(key("num_classes"), ": expected a non-negative integer (0 = unconditional), got ",
                              num_classes));
  check(class_embedding_dim > 0, cat(key("class_embedding_dim"), ": expected a positive integer, got ",
                                     class_embedding_dim));
}

MLPConfig MLPConfig::from_json(const nlohmann::json& json, const std::string& prefix) {
  MLPConfig config;
  ConfigReader reader(json, prefix);
  std::string type = "mlp";
  reader.read_string("type", type);
  if (type != "mlp") throw ConfigError(cat(reader.path("type"), ": expected \"mlp\", got \"", type, "\""));
  reader.read_positive_int("data_dim", config.data_dim);
  reader.read_positive_int("hidden_width", config.hidden_width);
  reader.read_nonnegative_int("hidden_layers", config.hidden_layers);
  reader.read_string("activation", config.activation);
  reader.read_string("time_input", config.time_input);
  reader.read_positive_int("time_embedding_dim", config.time_embedding_dim);
  reader.read_positive_number("time_scale", config.time_scale);
  reader.read_nonnegative_int("num_classes", config.num_classes);
  reader.read_positive_int("class_embedding_dim", config.class_embedding_dim);
  reader.reject_unknown_keys();
  // The width would be dropped (an unconditional model has no class table): say so rather than ignore it.
  if (config.num_classes == 0 && json.is_object() && json.contains("class_embedding_dim"))
    throw ConfigError(cat(reader.path("class_embedding_dim"), ": got ", config.class_embedding_dim,
                          ", but the model is unconditional (", reader.path("num_classes"),
                          " = 0); set ", reader.path("num_classes"), " or drop the key"));
  config.validate(prefix);
  return config;
}

nlohmann::json MLPConfig::to_json() const {
  nlohmann::json json{{"type", "mlp"},
                        {"data_dim", data_dim},
                        {"hidden_width", hidden_width},
                        {"hidden_layers", hidden_layers},
                        {"activation", activation},
                        {"time_input", time_input},
                        {"time_embedding_dim", time_embedding_dim},
                        {"time_scale", time_scale}};
  if (num_classes > 0) {
    json["num_classes"] = num_classes;
    json["class_embedding_dim"] = class_embedding_dim;
  }
  return json;
}

VelocityMLP::VelocityMLP(const MLPConfig& config, Generator& gen) : VelocityModel("VelocityMLP"), config_(config) {
  config_.validate();
  if (config_.time_input == "sinusoidal")
    time_embedding_ = std::make_shared<SinusoidalTimeEmbedding>(config_.time_embedding_dim, config_.time_scale);
  net = register_module("net", std::make_shared<Sequential>());
  int width = config_.input_features();
  activation_kind_ = activation_kind(config_.activation, "model.activation");
  for (int layer = 0; layer < config_.hidden_layers; ++layer) {
    net->push_back(linears_.emplace_back(std::make_shared<Linear>(width, config_.hidden_width, gen)));
    net->push_back(make_activation(config_.activation, "model.activation"));
    width = config_.hidden_width;
  }
  net->push_back(linears_.emplace_back(std::make_shared<Linear>(width, config_.data_dim, gen)));
  // Drawn after the layers, so the layers take the same draws as in an unconditional model.
  if (config_.num_classes > 0) {
    class_embedding = make_class_embedding_table(config_.num_classes, config_.class_embedding_dim, gen);
    register_parameter("class_embedding", &class_embedding);
  }
}

Tensor VelocityMLP::forward(const Tensor& x, const Tensor& t) { return forward_labelled(x, t, ClassLabelsRef{}); }

Tensor VelocityMLP::forward(const Tensor& x, const Tensor& t, const std::vector<std::int32_t>& labels) {
  return forward_labelled(x, t, ClassLabelsRef{&labels, nullptr});
}

Tensor VelocityMLP::forward(const Tensor& x, const Tensor& t, const RowIndex& labels) {
  return forward_labelled(x, t, ClassLabelsRef{nullptr, &labels});
}

Tensor VelocityMLP::forward_labelled(const Tensor& x, const Tensor& t, ClassLabelsRef labels) {
  FM_CHECK(config_.num_classes > 0 || labels.size() == 0, ConfigError, "VelocityMLP: this model is unconditional "
           "(model.num_classes = 0) but was given ", labels.size(), " class labels");
  FM_CHECK(x.defined() && x.dim() == 2 && x.size(1) == config_.data_dim, ShapeError, "VelocityMLP: input ",
           x.defined() ? shape_str(x.shape()) : "undefined", ", expected [N, ", config_.data_dim, "]");
  Tensor time = expand_time(t, x, "VelocityMLP");
  Tensor time_features = time_embedding_ ? time_embedding_->forward(time) : time.reshape({x.size(0), 1});
  // The class rows first, in a named tensor: GCC 12 mis-cleans an initializer list whose element
  // throws inside a ?: (AddressSanitizer: stack-use-after-scope on the bad-label path).
  std::vector<Tensor> parts = {x, time_features};
  if (config_.num_classes > 0) parts.push_back(class_embedding_rows(class_embedding, labels, x.size(0), "VelocityMLP"));
  Tensor features = concat(parts, 1);
  if (grad_mode_enabled()) return net->forward(features);
  std::vector<DenseLayer> layers;
  for (const auto& linear : linears_) layers.push_back({linear->weight, linear->bias});
  return mlp_inference(features, layers, activation_kind_);
}

}  // namespace fm::nn
