// tools/nll_eval.h — `fmeval nll`: the negative log-likelihood of held-out data under a trained
// flow-matching checkpoint (flow/likelihood.h), with its standard error; for images also bits per
// dimension under uniform dequantisation; for 2-D data the data distribution's own entropy where it is
// known (the floor the NLL approaches from above as the model gets better).
//
// Sits in tools/: reads checkpoints and data, drives flow/likelihood.h in batches, prints and writes.
// The argument parsing is here too (parse_nll_args), so that tests check the flags without a process.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "flow/likelihood.h"
#include "tools/checkpoint_model.h"
#include "tools/fashion_mnist_files.h"

namespace fm::tools {

struct NllEvalRequest {
  std::string checkpoint;
  std::string weights = "auto";
  flow::LikelihoodOptions likelihood;  // solver, steps, divergence, probes, probe; seed/first_sample set per batch
  bool divergence_given = false;       // else: exact for 2-D data, hutchinson for images
  std::int64_t n = 0;                  // examples; 0: 2000 for 2-D data, 1000 for images
  std::int64_t batch = 500;
  // Held-out 2-D points come from fm::Generator(seed), a different generator from the training
  // stream (Philox keyed by train.seed), so they are fresh draws for any seed; the same seed keys the
  // dequantisation noise of images and the Hutchinson probes.
  std::uint64_t seed = 987654321;
  std::string data_dir = kFashionMnistDir;
  std::string csv;  // per-example values, if set
  // The progress file (tools/nll_progress.h; fmeval nll keeps nll_progress_path(csv) when --csv is
  // given): examples finished in an earlier run with the same settings are taken from it, and every
  // batch finished is added to it. Empty: none.
  std::string progress_file;
  Device device = Device::CPU;
  // A class-conditional model's density: false, its null class (the unconditional density p(x), the
  // default); true, each example's own class (log p(x | y): the t10k label of an image, the mode a 2-D
  // point was drawn from). --condition null|label.
  bool given_label = false;
};

struct NllEvalResult {
  std::string data;        // data.name of the run
  bool images = false;
  bool given_label = false;  // log p(x | y) with each example's own class (else p(x))
  std::int64_t n = 0, dims = 0, checkpoint_step = 0;
  // Nats per example: 2-D: −log p(x) in the data's own coordinates; images: the upper bound on
  // −log P(pixels) of the 256-level discrete image (see nll_eval.cpp for the derivation).
  double nll = 0, nll_se = 0;
  double bpd = 0, bpd_se = 0;            // images only
  double normalization_log_jacobian = 0; // added to log p in model coordinates to get data coordinates
  bool entropy_known = false;
  double entropy = 0, entropy_se = 0;    // nats, data coordinates (Monte-Carlo estimate); H(X | Y) given labels
  double kl = 0, kl_se = 0;              // KL(p_data ‖ p_model): the mean of NLL_i + log p_data(x_i) (| y_i)
  std::string entropy_note;
  std::string solver, divergence, probe;
  int steps = 0, probes = 0;              // steps: fixed-step solvers only
  double rtol = 0, atol = 0;              // dopri5 only
  std::int64_t nfe_per_example = 0;
  double seconds = 0;                     // evaluation time, over all runs when resumed
  std::int64_t resumed = 0;               // examples taken from the progress file
  std::vector<double> per_example_nll;   // in the order of the examples
  std::vector<std::int32_t> labels;      // given_label only: each example's class, in the same order
  Json to_json() const;
};

// ConfigError for a model whose source is not N(0, I), images other than the t10k set's shape, or
// given_label with an unconditional model or labels outside its classes.
// The model is evaluated in eval mode with requires_grad off on its parameters; both are restored on
// return (also when it throws), so the caller's model is left as it was. Inside a ShardOverRanks scope
// under mpirun (tools/sharded_sampling.h) each rank evaluates its share and all ranks get every value.
NllEvalResult evaluate_nll(CheckpointModel& loaded, const NllEvalRequest& request,
                           const std::function<void(const std::string&)>& progress = {});

// The log-density of a 2-D data set in its own coordinates at points given in data coordinates [N, 2]
// (samples_in_data_coordinates), where it is known in closed form (8 gaussians). Given each point's
// class (`labels`, one per point), the class-conditional density log p(x | y) instead: for 8
// gaussians the one Gaussian of mode y. Returns false (and a note) otherwise.
bool toy_log_density(const Json& config, const Tensor& data_points, std::vector<double>& log_density, std::string& note,
                     const std::vector<std::int32_t>* labels = nullptr);

// The first n t10k images of data_dir, dequantised with uniform noise u from fm::Generator(seed) (one draw
// per pixel, in file order) and mapped to model space as training maps pixels: x = 2·(p + u)/256 − 1,
// [n, example_shape...] float32. ConfigError when the file's image shape is not example_shape or n is
// more than the file holds.
Tensor dequantised_test_images(const std::string& data_dir, std::int64_t n, const Shape& example_shape,
                               std::uint64_t seed);
// The labels of the first n t10k images of data_dir (t10k-labels-idx1-ubyte.gz); ConfigError when the
// file holds fewer.
std::vector<std::int32_t> test_labels(const std::string& data_dir, std::int64_t n);
// The entropy of a 2-D data set in its own coordinates, where its density is known: a Monte-Carlo
// estimate over `samples` draws, with its standard error; given_label: the conditional entropy
// H(X | Y) = E[−log p(x | y)] over the draws and their classes. Returns false (and a note) otherwise.
bool toy_entropy(const Json& config, std::int64_t samples, std::uint64_t seed, double& entropy, double& standard_error,
                 std::string& note, bool given_label = false);

// `fmeval nll ...` with argv[0] = "nll": ConfigError naming the flag on bad input.
NllEvalRequest parse_nll_args(int argc, char** argv);
// The whole subcommand: parse, load, evaluate, print (progress on stderr), write --csv atomically.
int nll_command(int argc, char** argv);
extern const char* const kNllUsage;

}  // namespace fm::tools
