// nn/classifier.cpp — the feature classifier for the Fréchet distance (see classifier.h).
#include "nn/classifier.h"

#include "core/ops.h"
#include "nn/activation.h"
#include "nn/config_json.h"
#include "nn/conv.h"
#include "nn/group_norm.h"

namespace fm::nn {

void ClassifierConfig::validate(const std::string& prefix) const {
  auto key = [&](const std::string& name) { return prefix.empty() ? name : prefix + "." + name; };
  auto check_positive = [&](const char* name, int value) {
    FM_CHECK(value > 0, ConfigError, key(name), ": expected a positive integer, got ", value);
  };
  check_positive("in_channels", in_channels);
  check_positive("image_size", image_size);
  check_positive("stem_channels", stem_channels);
  check_positive("middle_channels", middle_channels);
  check_positive("last_channels", last_channels);
  check_positive("groups", groups);
  check_positive("feature_dim", feature_dim);
  check_positive("classes", classes);
  FM_CHECK(image_size % 4 == 0, ConfigError, key("image_size"), ": got ", image_size,
           ", expected a multiple of 4 (the body halves the image twice)");
  for (int channels : {stem_channels, middle_channels, last_channels})
    FM_CHECK(channels % groups == 0, ConfigError, key("groups"), ": ", groups, " groups do not divide ", channels,
             " channels");
}

ClassifierConfig ClassifierConfig::from_json(const nlohmann::json& json, const std::string& prefix) {
  ClassifierConfig config;
  ConfigReader reader(json, prefix);
  std::string type = "conv_classifier";
  reader.read_string("type", type);
  FM_CHECK(type == "conv_classifier", ConfigError, reader.path("type"), ": expected \"conv_classifier\", got \"",
           type, "\"");
  reader.read_positive_int("in_channels", config.in_channels);
  reader.read_positive_int("image_size", config.image_size);
  reader.read_positive_int("stem_channels", config.stem_channels);
  reader.read_positive_int("middle_channels", config.middle_channels);
  reader.read_positive_int("last_channels", config.last_channels);
  reader.read_positive_int("groups", config.groups);
  reader.read_positive_int("feature_dim", config.feature_dim);
  reader.read_positive_int("classes", config.classes);
  reader.reject_unknown_keys();
  config.validate(prefix);
  return config;
}

nlohmann::json ClassifierConfig::to_json() const {
  return nlohmann::json{{"type", "conv_classifier"},   {"in_channels", in_channels},
                        {"image_size", image_size},     {"stem_channels", stem_channels},
                        {"middle_channels", middle_channels}, {"last_channels", last_channels},
                        {"groups", groups},             {"feature_dim", feature_dim},
                        {"classes", classes}};
}

ConvClassifier::ConvClassifier(const ClassifierConfig& config, Generator& gen)
    : Module("ConvClassifier"), config_(config) {
  config_.validate();
  const ClassifierConfig& c = config_;
  // Conv → GroupNorm → SiLU triples; Sequential runs each GroupNorm + SiLU as the fused op.
  body = register_module("body", std::make_shared<Sequential>());
  body->push_back(std::make_shared<Conv2d>(c.in_channels, c.stem_channels, 3, 1, 1, gen));
  body->push_back(std::make_shared<GroupNorm>(c.groups, c.stem_channels));
  body->push_back(std::make_shared<SiLU>());
  body->push_back(std::make_shared<Conv2d>(c.stem_channels, c.middle_channels, 4, 2, 1, gen));
  body->push_back(std::make_shared<GroupNorm>(c.groups, c.middle_channels));
  body->push_back(std::make_shared<SiLU>());
  body->push_back(std::make_shared<Conv2d>(c.middle_channels, c.last_channels, 4, 2, 1, gen));
  body->push_back(std::make_shared<GroupNorm>(c.groups, c.last_channels));
  body->push_back(std::make_shared<SiLU>());
  const std::int64_t side = c.image_size / 4;
  feature_layer = register_module("features", std::make_shared<Linear>(std::int64_t(c.last_channels) * side * side,
                                                                       c.feature_dim, gen));
  head = register_module("head", std::make_shared<Linear>(c.feature_dim, c.classes, gen));
}

void ConvClassifier::check_input(const Tensor& x) const {
  const ClassifierConfig& c = config_;
  FM_CHECK(x.defined() && x.dim() == 4 && x.size(1) == c.in_channels && x.size(2) == c.image_size &&
               x.size(3) == c.image_size,
           ShapeError, "ConvClassifier: input ", x.defined() ? shape_str(x.shape()) : "undefined", ", expected [N, ",
           c.in_channels, ", ", c.image_size, ", ", c.image_size, "]");
}

Tensor ConvClassifier::features(const Tensor& x) {
  check_input(x);
  Tensor body_out = body->forward(x);
  return feature_layer->forward(body_out.flatten(1));
}

ConvClassifier::Output ConvClassifier::forward(const Tensor& x) {
  Output out;
  out.features = features(x);
  out.logits = head->forward(silu(out.features));
  return out;
}

}  // namespace fm::nn
