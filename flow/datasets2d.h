// flow/datasets2d.h — 2D toy data distributions (moons, spiral, 8 gaussians, checkerboard),
// generated in code: fresh, unlimited samples for the laptop-CPU toy runs and for testing the sampler
// against a known distribution.
//
// Sits in flow/ on top of core/ (Tensor, random). How point i is made from a few draws is said once,
// in kernels/toy_law.h (toy_point, in double with IEEE-exact operations); each distribution here gives
// its law() (which formula, which parameters). The draws come either from an fm::Generator in order,
// or — in training — from point i's own Philox place in NoiseStream::DataPoint at (seed, step, global
// index) (flow/step_noise.h), so any slice of a batch is the same points whoever draws it, on the host
// or on the device (core/random.h philox_toy_points, the same bits). Every
// distribution returns a Tensor [N, 2] sized to roughly match the N(0, I) source: each point lies
// within about ±3 of the origin.
//
// Labels (class-conditional training, issue 16): each distribution has num_classes() classes, one per
// mode — 8 gaussians' Gaussian, moons' moon, checkerboard's filled square, spiral's turn — and
// labelled_point() says which class the drawn point came from; class_of() gives the class of any point (the
// nearest mode), e.g. to check where a conditional model's samples landed.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/ops.h"
#include "core/random.h"
#include "core/tensor.h"
#include "flow/step_noise.h"
#include "kernels/toy_law.h"

namespace fm::flow {

class ToyDistribution2D {
 public:
  virtual ~ToyDistribution2D() = default;
  virtual std::string name() const = 0;
  // A drawn point and the class (mode) it was drawn from, 0 … num_classes() − 1.
  struct DrawnPoint {
    std::array<double, 2> xy;
    std::int32_t label;
  };
  // The distribution's formulas and parameters (kernels/toy_law.h): the host's draws and the device's
  // kernel compute every point by them, with the same bits.
  virtual kernels::ToyLaw law() const = 0;
  // Point number `index` (some shapes alternate by index) from its draws, with its class.
  DrawnPoint labelled_point(std::int64_t index, RandomDraws& draws) const;
  std::array<double, 2> point(std::int64_t index, RandomDraws& draws) const {
    return labelled_point(index, draws).xy;
  }
  // How many classes (modes) the distribution's labels have.
  virtual int num_classes() const = 0;
  // The class of each point of `points` [N, 2] (any dtype/device; read on the host), given in the
  // coordinates sample() returns (for moons that is after its normalisation; to_data_coordinates'
  // output must be mapped back first): the nearest mode. For a point drawn by sample() it is the drawn
  // label, except where modes overlap (moons' noise, spiral's turn ends; see each class).
  virtual std::vector<std::int32_t> class_of(const Tensor& points) const;
  // The class of one point (same coordinates as class_of).
  virtual std::int32_t class_of_point(double x, double y) const = 0;
  // n points [n, 2], drawn in order from `gen`.
  Tensor sample(std::int64_t n, Generator& gen, DType dtype = DType::Float32,
                Device device = Device::CPU) const;
  // The same points as interleaved (x, y) pairs on the host.
  std::vector<double> sample_host(std::int64_t n, Generator& gen) const;
  // How the points were normalised for the model: model = (data − center)·scale. Samples are turned
  // back with to_data_coordinates before they are written (.npy), so they compare directly with the
  // data set as its own code draws it (e.g. scikit-learn's make_moons). Identity unless overridden.
  struct Normalization {
    double scale = 1, center_x = 0, center_y = 0;
    nlohmann::json to_json() const { return {{"scale", scale}, {"center", {center_x, center_y}}}; }
  };
  virtual Normalization normalization() const { return {}; }
  // Points noise.first_sample … + n − 1 of step noise.step, each from its own Philox place in `stream`
  // (DataPoint for training data; SourcePoint when the distribution is a flow's source), drawn on
  // `device` itself (core/random.h philox_toy_points; float32 on CUDA, float32/float64 on the CPU;
  // other dtypes are drawn on the host and converted). noise.step_on_device is followed on CUDA.
  // labels (CPU only; null: not wanted): each point's label too, from the same draws in the same pass.
  Tensor sample(std::int64_t n, const StepNoise& noise, DType dtype = DType::Float32,
                Device device = Device::CPU, NoiseStream stream = NoiseStream::DataPoint,
                std::vector<std::int32_t>* labels = nullptr) const;
  // The labels of sample(n, noise, ..., stream)'s points, on the host (drawn by the same kernel).
  std::vector<std::int32_t> labels(std::int64_t n, const StepNoise& noise,
                                   NoiseStream stream = NoiseStream::DataPoint) const;
  // The labels of sample(out.size(), noise, ..., stream)'s points, each replaced by the null class where
  // `dropout` says (its own key and step), made on out's device (core/ops.h toy_labels): a recorded
  // step of a class-conditional model on fresh points makes its labels there.
  void labels_into(RowIndex& out, const StepNoise& noise, const LabelDropout& dropout,
                   NoiseStream stream = NoiseStream::DataPoint) const;
  // The same draws as the two sample() overloads (bitwise the same points), with each point's label:
  // the readable reference, one labelled_point after another.
  struct LabelledPoints {
    Tensor points;                     // [n, 2]
    std::vector<std::int32_t> labels;  // [n], 0 … num_classes() − 1
  };
  LabelledPoints sample_labelled(std::int64_t n, Generator& gen, DType dtype = DType::Float32,
                                 Device device = Device::CPU) const;
  LabelledPoints sample_labelled(std::int64_t n, const StepNoise& noise, DType dtype = DType::Float32,
                                 Device device = Device::CPU,
                                 NoiseStream stream = NoiseStream::DataPoint) const;
};

// Two interleaving half circles, scikit-learn's make_moons (seed 004: make_moons(256, noise=0.05)):
// outer moon (cos θ, sin θ), inner moon (1 − cos θ, 0.5 − sin θ), plus N(0, noise²) per coordinate.
// Differences from scikit-learn, on purpose: θ ~ U[0, π] (scikit-learn spaces θ evenly, which would
// give the same points in every batch), and points alternate between the moons (even index outer,
// odd inner) instead of being shuffled, so any prefix is balanced.
// Normalisation (normalize = true, the default): the raw moons span x ∈ [−1, 2], y ∈ [−0.5, 1] with
// mean (0.5, 0.25); we subtract kMoonsCenter and multiply by kMoonsScale = 2, giving a centred cloud
// of std ≈ (1.7, 1.0) in [−3, 3] × [−1.5, 1.5] whose scale matches the N(0, I) source (as the
// usual toy setups do, e.g. torchcfm's moons ×3 − 1). The noise is added before scaling, so its
// standard deviation in the output is noise·2.
class MoonsDistribution final : public ToyDistribution2D {
 public:
  static constexpr double kCenterX = 0.5, kCenterY = 0.25, kScale = 2.0;
  explicit MoonsDistribution(double noise = 0.05, bool normalize = true);
  std::string name() const override { return "moons"; }
  kernels::ToyLaw law() const override;
  // Class 0 = outer moon (even index), 1 = inner moon (odd index); class_of: the nearer half circle.
  // With noise 0.05 the moons (0.5 apart at their closest) overlap only in the far tails.
  int num_classes() const override { return 2; }
  std::int32_t class_of_point(double x, double y) const override;
  double noise() const { return noise_; }
  bool normalized() const { return normalize_; }
  Normalization normalization() const override {
    return normalize_ ? Normalization{kScale, kCenterX, kCenterY} : Normalization{};
  }

 private:
  double noise_;
  bool normalize_;
};

// Seed 003's spiral: θ ~ U[0, 6π] (three turns), point scale/(2π)·(θ·cos θ, θ·sin θ) plus
// N(0, (0.1·scale)²) per coordinate. scale = 1 reaches radius 3.
class SpiralDistribution final : public ToyDistribution2D {
 public:
  explicit SpiralDistribution(double scale = 1.0);
  std::string name() const override { return "spiral"; }
  kernels::ToyLaw law() const override;
  // One arm, so the classes are its three turns: class k for θ ∈ [2πk, 2π(k + 1)). Neighbouring turns
  // lie `scale` apart (10 noise std), so class_of (the turn whose radius at the point's angle is
  // nearest) errs only where one turn runs into the next (θ near 2π and 4π, within the noise).
  int num_classes() const override { return 3; }
  std::int32_t class_of_point(double x, double y) const override;

 private:
  double scale_;
};

// A mixture of 8 equally weighted isotropic Gaussians centred at radius·(cos 2πk/8, sin 2πk/8).
// Defaults radius 2, std 0.1: neighbouring centres are 2·2·sin(π/8) ≈ 1.53 apart, over 15 std, so
// the modes are clearly separate (the test of whether a sampler drops or blurs modes).
class EightGaussiansDistribution final : public ToyDistribution2D {
 public:
  explicit EightGaussiansDistribution(double radius = 2.0, double std = 0.1);
  std::string name() const override { return "8gaussians"; }
  kernels::ToyLaw law() const override;
  // Class k = the Gaussian at angle 2πk/8; class_of: the nearest centre (the nearest angle).
  int num_classes() const override { return 8; }
  std::int32_t class_of_point(double x, double y) const override;
  double radius() const { return radius_; }
  double std() const { return std_; }
  // The centre of class k, radius·(cos 2πk/8, sin 2πk/8), in data coordinates, for closed-form
  // densities. The sampler (kernels/toy_law.h's toy_point) computes its centres with its own exact
  // quarter-turn sine and cosine, so the two agree to rounding, not bit for bit.
  std::array<double, 2> centre(int k) const;

 private:
  double radius_, std_;
};

// Uniform on the dark squares of a 4×4 checkerboard of unit cells covering [−2, 2)², scaled by
// `scale`: cell (column ⌊x⌋, row ⌊y⌋) is filled when ⌊x⌋ + ⌊y⌋ is even. x ~ U[−2, 2), then one of
// the two filled cells in that column. Sharp edges, no noise: hard for a smooth flow to fit exactly.
class CheckerboardDistribution final : public ToyDistribution2D {
 public:
  explicit CheckerboardDistribution(double scale = 1.0);
  std::string name() const override { return "checkerboard"; }
  kernels::ToyLaw law() const override;
  // Class = the filled square: 2·(column + 2) + (0 for the lower, 1 for the upper filled cell of the
  // column). class_of: the square the point lies in, or the nearest filled square (exact for data).
  int num_classes() const override { return 8; }
  std::int32_t class_of_point(double x, double y) const override;

 private:
  double scale_;
};

// Points [N, 2] in model coordinates → the data set's own coordinates (data = model/scale + center).
Tensor to_data_coordinates(const Tensor& points, const ToyDistribution2D::Normalization& normalization);

// "moons", "spiral", "8gaussians" (or "eight_gaussians"), "checkerboard" with default parameters;
// ConfigError listing the valid names otherwise.
std::shared_ptr<const ToyDistribution2D> make_toy_distribution(const std::string& name);
std::vector<std::string> toy_distribution_names();

}  // namespace fm::flow
