// tools/guidance_eval.h — `fmeval guidance`: what classifier-free guidance buys and costs for a
// class-conditional checkpoint, at each guidance weight w.
//
// For each w, the same source noise and the same labels (n per class, class after class) are sampled
// with guidance w (tools/conditional_sampling.h), then:
//   2-D models:   the fraction of samples landing in the asked mode (ToyDistribution2D::class_of), per
//                 class and overall, and the sliced W2 to data of the asked class (overall: to data with
//                 the same class counts), next to its floor (two independent data samples);
//   image models: the fmeval classifier's accuracy against the asked class, and the Fréchet distance of
//                 classifier features to real t10k images of the asked class (overall: the same number
//                 of t10k images of every class), next to its floor (train images vs those t10k images).
// Fidelity (mode fraction / accuracy) should rise with w while diversity falls (the distance to the
// data, which needs the whole spread of each class, eventually rises): the trade-off plot.
//
// Layer: tools/ (on tools/conditional_sampling.h, tools/eval_classifier.h, flow/metrics.h,
// flow/frechet.h).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tools/checkpoint_model.h"
#include "tools/config.h"
#include "tools/eval_classifier.h"

namespace fm::tools {

struct GuidanceEvalRequest {
  std::vector<double> weights{0, 0.5, 1, 2, 4};
  std::int64_t n_per_class = 0;  // 0: 500 for 2-D models, 200 for image models
  std::uint64_t seed = 0;        // source noise (the same for every w) and the data draws
  Json sample_overrides = Json::object();  // merged into the checkpoint's "sample" section
  std::string checkpoint_path;   // where find_classifier also looks (images)
  std::string classifier;        // images: empty = find_classifier
  std::string data_dir = kFashionMnistDir;
  Device device = Device::CPU;
};

// One line of the table: one weight, one asked class (or all classes: label -1).
struct GuidanceRow {
  double weight = 0;
  int label = -1;               // -1: all classes together
  std::int64_t n = 0;           // samples in the row
  double hit_fraction = 0;      // 2-D: in the asked mode; images: classified as the asked class
  double distance = 0;          // 2-D: sliced W2; images: Fréchet distance
  double distance_floor = 0;    // the same distance between two real samples of the same size
};

struct GuidanceEvalResult {
  bool images = false;
  int num_classes = 0;
  std::string hit_name;       // "mode fraction" or "classifier accuracy"
  std::string distance_name;  // "sliced W2" or "FD"
  std::string solver;
  std::int64_t nfe = 0;       // per sample, with the null branch counted as part of the same forward
  std::int64_t n_per_class = 0;
  std::vector<GuidanceRow> rows;  // for each weight: the overall row, then one per class
  double sampling_seconds = 0;
  const GuidanceRow& overall(double weight) const;  // ValueError when the weight was not evaluated
  Json to_json() const;
};

// ConfigError for an unconditional model, an empty or negative weight list, n_per_class < 2.
GuidanceEvalResult evaluate_guidance(CheckpointModel& loaded, const GuidanceEvalRequest& request,
                                     const std::function<void(const std::string&)>& log);

// The table fmeval prints (markdown): one line per weight with the overall numbers, then per class.
std::string guidance_table(const GuidanceEvalResult& result);
// The second picture write_guidance_outputs makes beside --png: PNG's stem + "_distance", same folder.
std::string guidance_distance_png_path(const std::string& png_path);

// CSV (weight,class,n,<hit>,<distance>,<distance>_floor; class "all" for the overall rows) and the
// trade-off as two line plots (the line plotter has one y axis): `png_path` has the hit fraction against
// w (overall and per class; with more than nine classes overall, worst and best class, as the plot's
// palette has ten colours), and the same name with "_distance" before the extension has the overall
// distance and its floor against w. Empty paths are skipped. Returns the files written.
std::vector<std::string> write_guidance_outputs(const GuidanceEvalResult& result, const std::string& csv_path,
                                                const std::string& png_path);

}  // namespace fm::tools
