// nn/unet_config.cpp — UNetConfig: validation (every inconsistency named by its key) and the JSON
// round trip (see unet_config.h).
#include "nn/unet_config.h"

#include "core/error.h"
#include "nn/config_json.h"

namespace fm::nn {

int UNetConfig::downsample_count() const {
  int count = 0;
  for (bool halve : down_sample) count += halve ? 1 : 0;
  return count;
}

void UNetConfig::validate(const std::string& prefix) const {
  auto key = [&](const std::string& name) { return prefix.empty() ? name : prefix + "." + name; };
  auto check = [](bool ok, const std::string& message) {
    if (!ok) throw ConfigError(message);
  };
  check(in_channels > 0, cat(key("in_channels"), ": expected a positive integer, got ", in_channels));
  check(out_channels >= 0, cat(key("out_channels"), ": expected a non-negative integer (0 = in_channels), got ", out_channels));
  check(down_channels.size() >= 2,
        cat(key("down_channels"), ": expected at least 2 entries (conv_in output, then one per down block), got ",
            down_channels.size()));
  for (std::size_t i = 0; i < down_channels.size(); ++i)
    check(down_channels[i] > 0, cat(key("down_channels"), "[", i, "]: expected a positive integer, got ", down_channels[i]));
  for (std::size_t i = 0; i < mid_channels.size(); ++i)
    check(mid_channels[i] > 0, cat(key("mid_channels"), "[", i, "]: expected a positive integer, got ", mid_channels[i]));
  const std::size_t blocks = down_channels.size() - 1;
  check(down_sample.size() == blocks, cat(key("down_sample"), ": expected ", blocks, " entries (one per down block, ",
                                          key("down_channels"), " has ", down_channels.size(), "), got ", down_sample.size()));
  check(attention.size() == blocks, cat(key("attention"), ": expected ", blocks, " entries (one per down block, ",
                                        key("down_channels"), " has ", down_channels.size(), "), got ", attention.size()));
  check(!mid_channels.empty(), cat(key("mid_channels"), ": expected at least 1 entry"));
  // The seed's asserts: the mid blocks start where the downs end and end where the last up block's
  // input must be (it is concatenated with the skip of the same width).
  check(mid_channels.front() == down_channels.back(),
        cat(key("mid_channels"), "[0] = ", mid_channels.front(), " must equal the last entry of ",
            key("down_channels"), " (", down_channels.back(), ")"));
  check(mid_channels.back() == down_channels[blocks - 1],
        cat(key("mid_channels"), " last entry = ", mid_channels.back(), " must equal ", key("down_channels"), "[",
            blocks - 1, "] = ", down_channels[blocks - 1], " (the skip it is concatenated with)"));
  check(time_emb_dim > 0 && time_emb_dim % 2 == 0,
        cat(key("time_emb_dim"), ": expected a positive even integer (half sine, half cosine), got ", time_emb_dim));
  check(num_heads > 0, cat(key("num_heads"), ": expected a positive integer, got ", num_heads));
  check(groups > 0, cat(key("groups"), ": expected a positive integer, got ", groups));
  check(final_channels > 0, cat(key("final_channels"), ": expected a positive integer, got ", final_channels));
  check(time_scale > 0, cat(key("time_scale"), ": expected a positive number, got ", time_scale));
  check(num_classes >= 0, cat(key("num_classes"), ": expected a non-negative integer (0 = unconditional), got ",
                              num_classes));
  // Every GroupNorm input width is one of these (the up blocks' inputs are 2·down_channels[i]).
  auto divisible = [&](int channels, const std::string& where) {
    check(channels % groups == 0, cat(key("groups"), ": ", groups, " does not divide ", where, " = ", channels,
                                      " (GroupNorm needs channels divisible by groups)"));
  };
  for (std::size_t i = 0; i < down_channels.size(); ++i)
    divisible(down_channels[i], cat(key("down_channels"), "[", i, "]"));
  for (std::size_t i = 0; i < mid_channels.size(); ++i)
    divisible(mid_channels[i], cat(key("mid_channels"), "[", i, "]"));
  divisible(final_channels, key("final_channels"));
  // Attention splits each attending block's output width into num_heads heads.
  auto heads_divide = [&](int channels, const std::string& where) {
    check(channels % num_heads == 0, cat(key("num_heads"), ": ", num_heads, " does not divide ", where, " = ",
                                         channels, " (each head gets channels / num_heads)"));
  };
  for (std::size_t i = 0; i < blocks; ++i) {
    if (!attention[i]) continue;
    heads_divide(down_channels[i + 1], cat(key("down_channels"), "[", i + 1, "] (down block ", i, " attends)"));
    int up_out = i == 0 ? final_channels : down_channels[i - 1];
    heads_divide(up_out, cat("the output width of the up block mirroring down block ", i));
  }
  for (std::size_t i = 0; i + 1 < mid_channels.size(); ++i)
    heads_divide(mid_channels[i + 1], cat(key("mid_channels"), "[", i + 1, "] (mid blocks always attend)"));
}

UNetConfig UNetConfig::from_json(const nlohmann::json& json, const std::string& prefix) {
  UNetConfig config;
  ConfigReader reader(json, prefix);
  std::string type = "unet";
  reader.read_string("type", type);
  if (type != "unet") throw ConfigError(cat(reader.path("type"), ": expected \"unet\", got \"", type, "\""));
  reader.read_positive_int("in_channels", config.in_channels);
  reader.read_nonnegative_int("out_channels", config.out_channels);
  reader.read_positive_int_array("down_channels", config.down_channels);
  reader.read_positive_int_array("mid_channels", config.mid_channels);
  reader.read_positive_int("time_emb_dim", config.time_emb_dim);
  reader.read_bool_array("down_sample", config.down_sample);
  reader.read_bool_array("attention", config.attention);
  reader.read_positive_int("num_heads", config.num_heads);
  reader.read_positive_int("groups", config.groups);
  reader.read_positive_int("final_channels", config.final_channels);
  reader.read_positive_number("time_scale", config.time_scale);
  reader.read_bool("fuse_group_norm_silu", config.fuse_group_norm_silu);
  reader.read_nonnegative_int("num_classes", config.num_classes);
  std::string activations = "float32";
  reader.read_string("activations", activations);
  if (activations != "float32" && activations != "bfloat16")
    throw ConfigError(cat(reader.path("activations"), ": expected \"float32\" or \"bfloat16\", got \"", activations,
                          "\""));
  config.bfloat16_activations = activations == "bfloat16";
  reader.reject_unknown_keys();
  config.validate(prefix);
  return config;
}

nlohmann::json UNetConfig::to_json() const {
  nlohmann::json json{{"type", "unet"},
                        {"in_channels", in_channels},
                        {"out_channels", out_channels},
                        {"down_channels", down_channels},
                        {"mid_channels", mid_channels},
                        {"time_emb_dim", time_emb_dim},
                        {"down_sample", down_sample},
                        {"attention", attention},
                        {"num_heads", num_heads},
                        {"groups", groups},
                        {"final_channels", final_channels},
                        {"time_scale", time_scale},
                        {"fuse_group_norm_silu", fuse_group_norm_silu}};
  if (num_classes > 0) json["num_classes"] = num_classes;
  if (bfloat16_activations) json["activations"] = "bfloat16";  // absent: float32, as before the key existed
  return json;
}

UNetConfig UNetConfig::tiny() {
  UNetConfig config;
  config.in_channels = 1;
  config.down_channels = {4, 8};
  config.mid_channels = {8, 4};
  config.down_sample = {true};
  config.attention = {true};
  config.time_emb_dim = 8;
  config.num_heads = 2;
  config.groups = 2;
  config.final_channels = 4;
  return config;
}

}  // namespace fm::nn
