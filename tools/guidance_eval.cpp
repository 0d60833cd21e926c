// tools/guidance_eval.cpp — `fmeval guidance` (see guidance_eval.h).
#include "tools/guidance_eval.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>
#include <tuple>
#include <utility>

#include "core/error.h"
#include "core/io/atomic_file.h"
#include "core/io/png.h"
#include "core/ops.h"
#include "flow/frechet.h"
#include "flow/metrics.h"
#include "tools/conditional_sampling.h"
#include "tools/run_setup.h"

namespace fm::tools {

namespace {

void say(const std::function<void(const std::string&)>& log, const std::string& line) {
  if (log) log(line);
}

// Rows [begin, begin + count) of a [N, ...] tensor, as a contiguous copy.
Tensor rows_of(const Tensor& x, std::int64_t begin, std::int64_t count) { return x.narrow(0, begin, count).contiguous(); }

// The first `per_class` items of each class from `labels` (indices into them), class after class;
// fewer than per_class of a class: an empty result.
std::vector<std::int64_t> balanced_indices(const std::vector<std::int32_t>& labels, int classes, std::int64_t per_class) {
  std::vector<std::vector<std::int64_t>> by_class(static_cast<std::size_t>(classes));
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (labels[i] >= 0 && labels[i] < classes && std::int64_t(by_class[std::size_t(labels[i])].size()) < per_class)
      by_class[std::size_t(labels[i])].push_back(std::int64_t(i));
  std::vector<std::int64_t> out;
  for (const auto& members : by_class) {
    if (std::int64_t(members.size()) < per_class) return {};
    out.insert(out.end(), members.begin(), members.end());
  }
  return out;
}

// The class with the fewest items in `labels` (0 … classes − 1), and its count.
std::pair<int, std::int64_t> rarest_class(const std::vector<std::int32_t>& labels, int classes) {
  std::vector<std::int64_t> counts(static_cast<std::size_t>(classes), 0);
  for (std::int32_t label : labels)
    if (label >= 0 && label < classes) ++counts[std::size_t(label)];
  const auto fewest = std::min_element(counts.begin(), counts.end());
  return {int(fewest - counts.begin()), *fewest};
}

Tensor gather_rows(const Tensor& x, const std::vector<std::int64_t>& indices) {
  std::vector<Tensor> rows;
  rows.reserve(indices.size());
  for (std::int64_t i : indices) rows.push_back(x.narrow(0, i, 1));
  return concat(rows, 0).contiguous();
}

// per_class points of each class of the toy distribution (model coordinates), class after class:
// labelled draws until every class has enough (modes are equally likely, so a few rounds at most).
Tensor balanced_toy_sample(const flow::ToyDistribution2D& toy, std::int64_t per_class, Generator& gen) {
  const int classes = toy.num_classes();
  for (std::int64_t draw = 2 * per_class * classes;; draw *= 2) {
    flow::ToyDistribution2D::LabelledPoints drawn = toy.sample_labelled(draw, gen);
    std::vector<std::int64_t> picked = balanced_indices(drawn.labels, classes, per_class);
    if (!picked.empty()) return gather_rows(drawn.points, picked);
    FM_CHECK(draw < (std::int64_t(1) << 26), ValueError, "guidance eval: ", toy.name(), " did not yield ", per_class,
             " points of every class in ", draw, " draws");
  }
}

// Arg-max classes of the classifier's logits for `images` (any device), in batches without autograd.
double accuracy_against(nn::ConvClassifier& classifier, const Tensor& images, const std::vector<std::int32_t>& asked) {
  LabelledImages data{images, asked};
  return classifier_accuracy(classifier, data);
}

}  // namespace

const GuidanceRow& GuidanceEvalResult::overall(double weight) const {
  for (const GuidanceRow& row : rows)
    if (row.weight == weight && row.label < 0) return row;
  throw ValueError(cat("guidance eval: weight ", weight, " was not evaluated"));
}

Json GuidanceEvalResult::to_json() const {
  Json out = {{"kind", images ? "images" : "2d"},  {"classes", num_classes}, {"hit", hit_name},
              {"distance", distance_name},         {"solver", solver},       {"nfe", nfe},
              {"n_per_class", n_per_class},        {"sampling_seconds", sampling_seconds}};
  Json list = Json::array();
  for (const GuidanceRow& row : rows)
    list.push_back({{"weight", row.weight},
                    {"class", row.label < 0 ? Json("all") : Json(row.label)},
                    {"n", row.n},
                    {"hit_fraction", row.hit_fraction},
                    {"distance", row.distance},
                    {"distance_floor", row.distance_floor}});
  out["rows"] = list;
  return out;
}

GuidanceEvalResult evaluate_guidance(CheckpointModel& loaded, const GuidanceEvalRequest& request,
                                     const std::function<void(const std::string&)>& log) {
  require_conditional_model(*loaded.model, "guidance");
  FM_CHECK(!request.weights.empty(), ConfigError, "--weights-list: empty, expected guidance weights such as 0,0.5,1,2,4");
  for (double w : request.weights)
    FM_CHECK(std::isfinite(w) && w >= 0 && w <= 1000, ConfigError, "--weights-list: weight ", w,
             ", expected numbers in [0, 1000]");
  const std::string data_name = loaded.config["data"]["name"].get<std::string>();
  const bool images = !is_2d_dataset(data_name);
  const int classes = loaded.model->num_classes();
  const std::int64_t per_class = request.n_per_class > 0 ? request.n_per_class : (images ? 200 : 500);
  FM_CHECK(per_class >= 2, ConfigError, "--n: ", per_class, " samples per class, expected at least 2");

  GuidanceEvalResult result;
  result.images = images;
  result.num_classes = classes;
  result.n_per_class = per_class;
  result.hit_name = images ? "classifier accuracy" : "mode fraction";
  result.distance_name = images ? "FD" : "sliced W2";
  Json sample = loaded.config["sample"];
  sample.merge_patch(request.sample_overrides);
  std::unique_ptr<flow::OdeSolver> solver = build_solver(sample);
  result.solver = sample["solver"].get<std::string>();

  // ---- the references and their floors (cheap checks and data first) ----
  const std::int64_t total = per_class * classes;
  std::vector<Tensor> class_reference(static_cast<std::size_t>(classes));  // 2-D: model coordinates; images: features
  Tensor overall_reference;
  std::vector<double> class_floor(static_cast<std::size_t>(classes));
  double overall_floor = 0;
  std::shared_ptr<const flow::ToyDistribution2D> toy;
  std::optional<LoadedClassifier> classifier;
  flow::SlicedWassersteinOptions sw;
  sw.seed = 7;
  if (!images) {
    toy = build_toy_distribution(loaded.config);
    FM_CHECK(toy->num_classes() == classes, ConfigError, "fmeval guidance: the model has ", classes, " classes but ",
             data_name, " has ", toy->num_classes());
    Generator data_gen(request.seed + 1000);
    overall_reference = balanced_toy_sample(*toy, per_class, data_gen);
    const Tensor second = balanced_toy_sample(*toy, per_class, data_gen);
    for (int k = 0; k < classes; ++k) {
      class_reference[std::size_t(k)] = rows_of(overall_reference, k * per_class, per_class);
      class_floor[std::size_t(k)] =
          flow::sliced_wasserstein2(class_reference[std::size_t(k)], rows_of(second, k * per_class, per_class), sw);
    }
    overall_floor = flow::sliced_wasserstein2(overall_reference, second, sw);
  } else {
    const std::string classifier_path = find_classifier(request.classifier, request.checkpoint_path);
    classifier.emplace(load_classifier(classifier_path, request.device));
    FM_CHECK(classifier->model->config().classes == classes, ConfigError, classifier_path, ": the classifier has ",
             classifier->model->config().classes, " classes, the model ", classes);
    LabelledImages test = load_fashion_mnist(request.data_dir, "t10k");
    LabelledImages train = load_fashion_mnist(request.data_dir, "train");
    const std::vector<std::int64_t> test_picked = balanced_indices(test.labels, classes, per_class);
    const std::vector<std::int64_t> train_picked = balanced_indices(train.labels, classes, per_class);
    for (const auto& [set, labels, picked] : {std::tuple{"t10k", &test.labels, &test_picked},
                                              std::tuple{"train", &train.labels, &train_picked}}) {
      if (!picked->empty()) continue;
      const auto [k, count] = rarest_class(*labels, classes);
      throw ConfigError(cat("--n: ", per_class, " images per class, but the ", set, " set has only ", count,
                            " of class ", k));
    }
    say(log, cat("classifier: ", classifier_path, "; features of ", total, " t10k and ", total, " train images..."));
    const Tensor test_features = classifier_features(*classifier->model, gather_rows(test.images, test_picked));
    const Tensor train_features = classifier_features(*classifier->model, gather_rows(train.images, train_picked));
    overall_reference = test_features;
    for (int k = 0; k < classes; ++k) {
      class_reference[std::size_t(k)] = rows_of(test_features, k * per_class, per_class);
      class_floor[std::size_t(k)] =
          flow::frechet_distance(rows_of(train_features, k * per_class, per_class), class_reference[std::size_t(k)]);
    }
    overall_floor = flow::frechet_distance(train_features, test_features);
  }

  // ---- the same noise and labels for every weight ----
  std::vector<std::int32_t> labels;
  for (int k = 0; k < classes; ++k) labels.insert(labels.end(), std::size_t(per_class), k);
  Generator gen(request.seed);
  const Shape example = example_shape(loaded.config);
  auto source = build_source(loaded.config);
  Shape noise_shape = example;
  noise_shape.insert(noise_shape.begin(), total);
  const flow::GaussianSource gaussian;
  const Tensor noise = (source ? *source : static_cast<const flow::SourceDistribution&>(gaussian))
                           .sample(noise_shape, gen, DType::Float32, request.device);

  for (double w : request.weights) {
    say(log, cat("guidance w = ", w, ": sampling ", total, " ", images ? "images" : "points", " (", per_class,
                 " per class) with ", result.solver, "..."));
    SampleResult sampled = generate_guided_samples_from_noise(*loaded.model, *solver, noise, labels, w);
    result.nfe = sampled.nfe;
    result.sampling_seconds += sampled.seconds;
    Tensor samples = sampled.samples;
    std::vector<double> hits(static_cast<std::size_t>(classes), 0.0);
    std::vector<double> distances(static_cast<std::size_t>(classes), 0.0);
    double overall_hit = 0, overall_distance = 0;
    if (!images) {
      const std::vector<std::int32_t> landed = toy->class_of(samples);
      for (std::int64_t i = 0; i < total; ++i)
        if (landed[std::size_t(i)] == labels[std::size_t(i)]) hits[std::size_t(labels[std::size_t(i)])] += 1;
      for (int k = 0; k < classes; ++k)
        distances[std::size_t(k)] =
            flow::sliced_wasserstein2(rows_of(samples, k * per_class, per_class), class_reference[std::size_t(k)], sw);
      overall_distance = flow::sliced_wasserstein2(samples, overall_reference, sw);
    } else {
      // Values just outside [-1, 1] clamped as fmeval's Fréchet evaluation does; a diverged sample fails.
      float* values = samples.data<float>();
      for (std::int64_t i = 0; i < samples.numel(); ++i) {
        FM_CHECK(std::isfinite(values[i]), ValueError, "guidance w = ", w, ": the sampler diverged (NaN or infinity)");
        values[i] = std::clamp(values[i], -1.f, 1.f);
      }
      const Tensor features = classifier_features(*classifier->model, samples);
      for (int k = 0; k < classes; ++k) {
        const std::vector<std::int32_t> asked(std::size_t(per_class), k);
        hits[std::size_t(k)] = accuracy_against(*classifier->model, rows_of(samples, k * per_class, per_class), asked) * per_class;
        distances[std::size_t(k)] =
            flow::frechet_distance(rows_of(features, k * per_class, per_class), class_reference[std::size_t(k)]);
      }
      overall_distance = flow::frechet_distance(features, overall_reference);
    }
    for (double h : hits) overall_hit += h;
    result.rows.push_back({w, -1, total, overall_hit / double(total), overall_distance, overall_floor});
    for (int k = 0; k < classes; ++k)
      result.rows.push_back({w, k, per_class, hits[std::size_t(k)] / double(per_class), distances[std::size_t(k)],
                             class_floor[std::size_t(k)]});
    say(log, cat("guidance w = ", w, ": ", result.hit_name, " ", overall_hit / double(total), ", ", result.distance_name,
                 " ", overall_distance, " (floor ", overall_floor, ")"));
  }
  return result;
}

std::string guidance_table(const GuidanceEvalResult& result) {
  char cell[96];
  std::string out = cat("| w | class | n | ", result.hit_name, " | ", result.distance_name, " | ", result.distance_name,
                        " floor |\n|---|---|---|---|---|---|\n");
  for (const GuidanceRow& row : result.rows) {
    std::snprintf(cell, sizeof(cell), "| %g | %s | %lld | %.4f | %.4f | %.4f |\n", row.weight,
                  row.label < 0 ? "all" : std::to_string(row.label).c_str(), (long long)row.n, row.hit_fraction,
                  row.distance, row.distance_floor);
    out += cell;
  }
  return out;
}

std::string guidance_distance_png_path(const std::string& png_path) {
  const std::filesystem::path p(png_path);
  return (p.parent_path() / (p.stem().string() + "_distance" + p.extension().string())).string();
}

std::vector<std::string> write_guidance_outputs(const GuidanceEvalResult& result, const std::string& csv_path,
                                                const std::string& png_path) {
  std::vector<std::string> files;
  const std::string hit_key = result.images ? "accuracy" : "mode_fraction";
  const std::string distance_key = result.images ? "fd" : "sliced_w2";
  if (!csv_path.empty()) {
    std::string csv = cat("weight,class,n,", hit_key, ",", distance_key, ",", distance_key, "_floor\n");
    for (const GuidanceRow& row : result.rows)
      csv += cat(row.weight, ",", row.label < 0 ? std::string("all") : std::to_string(row.label), ",", row.n, ",",
                 row.hit_fraction, ",", row.distance, ",", row.distance_floor, "\n");
    io::write_file_atomically(csv_path, csv);
    files.push_back(csv_path);
  }
  if (!png_path.empty() && !result.rows.empty()) {
    // Fidelity against w: the overall hit fraction and each class's. The plotter colours series from a
    // ten-colour palette, so with more than nine classes the per-class lines would repeat the overall
    // line's colour: then the plot shows the worst and the best class at each w instead (the CSV has all).
    const bool every_class = result.num_classes <= 9;
    std::vector<io::LineSeries> hit_series(every_class ? std::size_t(result.num_classes) + 1 : 3);
    hit_series[0].label = "all classes";
    if (every_class) {
      for (int k = 0; k < result.num_classes; ++k) hit_series[std::size_t(k) + 1].label = cat("class ", k);
    } else {
      hit_series[1].label = "worst class";
      hit_series[2].label = "best class";
    }
    io::LineSeries distance{{}, {}, cat(result.distance_name, ", all classes")};
    io::LineSeries floor{{}, {}, "floor: two real samples"};
    for (const GuidanceRow& row : result.rows) {
      if (row.label < 0) {
        hit_series[0].x.push_back(row.weight), hit_series[0].y.push_back(row.hit_fraction);
        distance.x.push_back(row.weight), distance.y.push_back(row.distance);
        floor.x.push_back(row.weight), floor.y.push_back(row.distance_floor);
        if (!every_class)
          for (std::size_t s = 1; s < 3; ++s) hit_series[s].x.push_back(row.weight), hit_series[s].y.push_back(s == 1 ? 1e300 : -1e300);
      } else if (every_class) {
        hit_series[std::size_t(row.label + 1)].x.push_back(row.weight);
        hit_series[std::size_t(row.label + 1)].y.push_back(row.hit_fraction);
      } else {
        // Rows come weight by weight, the overall row first: the last point is this weight's.
        hit_series[1].y.back() = std::min(hit_series[1].y.back(), row.hit_fraction);
        hit_series[2].y.back() = std::max(hit_series[2].y.back(), row.hit_fraction);
      }
    }
    io::LinePlotOptions options;
    options.title = cat(result.hit_name, " vs guidance w (", result.n_per_class, "/class, ", result.solver, " ",
                        result.nfe, " NFE)");
    options.x_label = "guidance weight w";
    options.y_label = result.hit_name;
    io::write_line_plot_png(png_path, hit_series, options);
    files.push_back(png_path);
    const std::string distance_path = guidance_distance_png_path(png_path);
    options.title = cat(result.distance_name, " to real data vs guidance w (", result.n_per_class, "/class)");
    options.y_label = result.distance_name;
    io::write_line_plot_png(distance_path, {distance, floor}, options);
    files.push_back(distance_path);
  }
  return files;
}

}  // namespace fm::tools
