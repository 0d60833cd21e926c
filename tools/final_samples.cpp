// tools/final_samples.cpp — fmtrain's last stage (see final_samples.h).
#include "tools/final_samples.h"

#include <algorithm>
#include <cstdio>

#include "core/io/atomic_file.h"
#include "core/io/tensor_io.h"
#include "core/kernel_choice.h"
#include "flow/metrics.h"

namespace fm::tools {

void write_final_samples(const FinishedRun& run, io::JsonlWriter& metrics) {
  const Json& config = run.config;
  const Json& sample_config = config["sample"];
  nn::VelocityModel& model = *run.objects.model;
  const flow::TrainingData& data = *run.objects.data;
  const std::int64_t step = run.objects.trainer->step();
  nn::EMA* use = sample_config["use_ema"].get<bool>() ? run.objects.ema.get() : nullptr;
  Generator sample_gen(sample_config["seed"].get<std::uint64_t>());
  const std::int64_t n = sample_config["n"];
  SampleResult result =
      generate_samples_with_ema(model, use, *run.objects.solver, data.example_shape(), n, sample_gen, run.device,
                                run.objects.source.get());
  // The .npy in the data's own coordinates (2-D data is normalised for the model: tools/run_setup.h).
  io::save_npy(run.paths.samples_npy().string(), samples_in_data_coordinates(result.samples, config));
  Json summary = {{"step", step},
                  {"solver", sample_config["solver"]},
                  {"nfe", result.nfe},
                  {"samples", n},
                  {"sampling_seconds", result.seconds},
                  {"weights", use ? "ema" : "raw"},
                  {"train_seconds", run.train_seconds},
                  {"kernels", kernel_impl_name(kernel_impl())},
                  {"parameters", model.parameter_count()}};
  if (data.example_shape().size() == 1) {
    // Quality on 2-D data: sliced W2 to fresh data, next to the same distance between two
    // independent data samples of the same size (the floor a perfect model would sit at).
    auto toy = build_toy_distribution(config);
    Generator eval_gen(sample_config["seed"].get<std::uint64_t>() + 1000);
    const std::int64_t eval_n = config["eval"]["n"];
    flow::SlicedWassersteinOptions sw;
    sw.directions = config["eval"]["projections"];
    sw.seed = 7;
    Tensor fresh = toy->sample(eval_n, eval_gen);
    Tensor generated = result.samples.narrow(0, 0, std::min(eval_n, n));
    double distance = flow::sliced_wasserstein2(generated, fresh, sw);
    double floor = flow::sliced_wasserstein2(toy->sample(eval_n, eval_gen), toy->sample(eval_n, eval_gen), sw);
    summary["sliced_w2"] = distance;
    summary["sliced_w2_floor"] = floor;
    summary["ratio_to_floor"] = distance / floor;
    metrics.append({{"event", "eval"}, {"step", step}, {"sliced_w2", distance}, {"sliced_w2_floor", floor},
                    {"nfe", result.nfe}, {"solver", sample_config["solver"]}});
    std::printf("quality: sliced W2 to fresh %s data = %.4f (floor between two data samples = %.4f, ratio %.2f) "
                "with %s, %lld NFE, %lld points\n",
                config["data"]["name"].get<std::string>().c_str(), distance, floor, distance / floor,
                sample_config["solver"].get<std::string>().c_str(), (long long)result.nfe, (long long)generated.size(0));
    write_samples_png(run.paths.samples_png().string(), samples_in_data_coordinates(result.samples, config),
                      samples_in_data_coordinates(fresh, config),
                      cat(run.title, " · ", sample_config["solver"].get<std::string>(), " ", result.nfe, " NFE"));
  } else {
    std::int64_t shown = std::min<std::int64_t>(n, 64);
    write_samples_png(run.paths.samples_png().string(), result.samples.narrow(0, 0, shown), Tensor(),
                      cat(run.title, " · step ", step));
    std::printf("samples: %lld images in %s (grid of %lld in %s); fmeval --checkpoint %s measures quality\n",
                (long long)n, run.paths.samples_npy().string().c_str(), (long long)shown,
                run.paths.samples_png().string().c_str(), run.paths.checkpoint().string().c_str());
  }
  metrics.sync();
  io::write_file_atomically(run.paths.summary().string(), summary.dump(2) + "\n");
}

}  // namespace fm::tools
