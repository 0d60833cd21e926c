// tools/final_samples.cpp — fmtrain's last stage (see final_samples.h).
#include "tools/final_samples.h"

#include <algorithm>
#include <cstdio>

#include "core/io/atomic_file.h"
#include "core/io/tensor_io.h"
#include "core/kernel_choice.h"
#include "flow/metrics.h"

namespace fm::tools {

FinalSamples draw_final_samples(const FinishedRun& run) {
  const Json& sample_config = run.config["sample"];
  FinalSamples sampled;
  nn::EMA* use = sample_config["use_ema"].get<bool>() ? run.objects.ema.get() : nullptr;
  sampled.ema_weights = use != nullptr;
  sampled.n = sample_config["n"].get<std::int64_t>();
  // A class-conditional model samples labels drawn uniformly (from sample.seed, as fmsample does) at
  // guidance 0; the labels are written beside the samples and colour the 2-D picture.
  sampled.drawn = generate_run_samples(*run.objects.model, use, *run.objects.solver, run.objects.data->example_shape(),
                                       sampled.n, sample_config["seed"].get<std::uint64_t>(), run.device,
                                       run.objects.source.get());
  return sampled;
}

void write_final_samples(const FinishedRun& run, const FinalSamples& sampled, io::JsonlWriter& metrics) {
  const Json& config = run.config;
  const Json& sample_config = config["sample"];
  nn::VelocityModel& model = *run.objects.model;
  const flow::TrainingData& data = *run.objects.data;
  const std::int64_t step = run.objects.trainer->step();
  const std::int64_t n = sampled.n;
  const bool conditional = model.num_classes() > 0;
  const SampleResult& result = sampled.drawn.result;
  const std::vector<std::int32_t>& labels = sampled.drawn.labels;
  // The .npy in the data's own coordinates (2-D data is normalised for the model: tools/run_setup.h).
  io::save_npy(run.paths.samples_npy().string(), samples_in_data_coordinates(result.samples, config));
  Json summary = {{"step", step},
                  {"solver", sample_config["solver"]},
                  {"nfe", result.nfe},
                  {"samples", n},
                  {"sampling_seconds", result.seconds},
                  {"weights", sampled.ema_weights ? "ema" : "raw"},
                  {"train_seconds", run.train_seconds},
                  {"kernels", kernel_impl_name(kernel_impl())},
                  {"precision", precision_name(precision())},
                  {"parameters", model.parameter_count()}};
  if (conditional) {
    const std::string labels_file = (run.paths.dir / "samples_labels.npy").string();
    save_labels_npy(labels_file, labels);
    summary["labels"] = "samples_labels.npy";
    summary["guidance"] = 0.0;
  }
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
    const std::string picture_title = cat(run.title, " · ", sample_config["solver"].get<std::string>(), " ", result.nfe, " NFE");
    if (conditional) {
      // The fraction of samples in the mode of their label (flow/datasets2d.h's class_of, in the model's coordinates).
      const std::vector<std::int32_t> landed = toy->class_of(result.samples);
      std::int64_t hits = 0;
      for (std::size_t i = 0; i < landed.size(); ++i) hits += landed[i] == labels[i];
      summary["mode_fraction"] = double(hits) / double(std::max<std::int64_t>(n, 1));
      std::printf("conditional: %.4f of the %lld samples landed in the mode of their label (guidance 0; fmeval guidance "
                  "%s measures other weights)\n",
                  double(hits) / double(std::max<std::int64_t>(n, 1)), (long long)n, run.paths.checkpoint().string().c_str());
      write_class_scatter_png(run.paths.samples_png().string(), samples_in_data_coordinates(result.samples, config), labels,
                              model.num_classes(), samples_in_data_coordinates(fresh, config), picture_title);
    } else {
      write_samples_png(run.paths.samples_png().string(), samples_in_data_coordinates(result.samples, config),
                        samples_in_data_coordinates(fresh, config), picture_title);
    }
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
