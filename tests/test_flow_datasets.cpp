// tests/test_flow_datasets.cpp — the 2D toy distributions (flow/datasets2d.h): shapes and dtypes,
// determinism by seed, and each distribution's geometry (moons on their arcs within the noise,
// the spiral's radius, the 8 modes, the checkerboard's filled cells); the training form drawn by
// (seed, step, sample index), independent of the batch split; the one formula of each (kernels/toy_law.h)
// drawn by the kernel equals the host's draws bit for bit (labels too, after the label dropout), within
// 1e-15 of the libm formula, and on CUDA (the step read from a device word) equals the CPU.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/error.h"
#include "core/random.h"
#include "core/ops.h"
#include "flow/datasets2d.h"
#include "flow/trainer.h"  // drop_labels: the host's label dropout
#include "kernels/runtime.h"
#include "test_util.h"

using namespace fm;
using namespace fm::flow;

namespace {

struct Point {
  double x, y;
};
std::vector<Point> points_of(const Tensor& t) {
  REQUIRE(t.dim() == 2);
  REQUIRE(t.size(1) == 2);
  std::vector<double> v = t.to_vector();
  std::vector<Point> p(v.size() / 2);
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = {v[2 * i], v[2 * i + 1]};
  return p;
}

}  // namespace

TEST_CASE("toy distributions return N x 2 tensors in the requested dtype, deterministic by seed", "[flow][data]") {
  for (const std::string& name : toy_distribution_names()) {
    auto dist = make_toy_distribution(name);
    Generator a(1), b(1), c(2);
    Tensor pa = dist->sample(257, a);
    INFO(name);
    REQUIRE(dist->name() == name);
    REQUIRE(pa.shape() == Shape{257, 2});
    REQUIRE(pa.dtype() == DType::Float32);
    REQUIRE(dist->sample(5, c, DType::Float64).dtype() == DType::Float64);
    REQUIRE(pa.to_vector() == dist->sample(257, b).to_vector());
    Generator d(3);
    REQUIRE(pa.to_vector() != dist->sample(257, d).to_vector());
    REQUIRE(dist->sample(0, a).shape() == Shape{0, 2});
    for (double v : pa.to_vector()) REQUIRE(std::abs(v) < 4.0);  // sized like the N(0, I) source
  }
  REQUIRE_THROWS_AS(make_toy_distribution("swissroll"), ConfigError);
  REQUIRE_THROWS_WITH(make_toy_distribution("swissroll"), Catch::Contains("moons, spiral, 8gaussians, checkerboard"));
}

TEST_CASE("noise-free moons lie exactly on the two arcs", "[flow][data]") {
  Generator gen(4);
  std::vector<Point> p = points_of(MoonsDistribution(0.0, false).sample(1000, gen, DType::Float64));
  for (std::size_t i = 0; i < p.size(); ++i) {
    INFO("point " << i);
    if (i % 2 == 0) {  // outer: (cos θ, sin θ), θ ∈ [0, π]
      REQUIRE(std::hypot(p[i].x, p[i].y) == Approx(1.0).epsilon(1e-12));
      REQUIRE(p[i].y >= 0.0);
    } else {  // inner: (1 − cos θ, 0.5 − sin θ)
      REQUIRE(std::hypot(p[i].x - 1.0, p[i].y - 0.5) == Approx(1.0).epsilon(1e-12));
      REQUIRE(p[i].y <= 0.5);
    }
  }
}

TEST_CASE("noisy normalised moons lie on the arcs within the noise", "[flow][data]") {
  const double noise = 0.05;
  Generator gen(5);
  MoonsDistribution moons(noise);
  std::vector<Point> p = points_of(moons.sample(4000, gen, DType::Float64));
  double mean_x = 0, mean_y = 0, var_x = 0, var_y = 0, radial_sq = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    // Undo the documented normalisation, back to scikit-learn's coordinates.
    const double x = p[i].x / MoonsDistribution::kScale + MoonsDistribution::kCenterX;
    const double y = p[i].y / MoonsDistribution::kScale + MoonsDistribution::kCenterY;
    const double radial = i % 2 == 0 ? std::hypot(x, y) - 1.0 : std::hypot(x - 1.0, y - 0.5) - 1.0;
    radial_sq += radial * radial;
    INFO("point " << i << " radial deviation " << radial);
    REQUIRE(std::abs(radial) < 6 * noise);  // the radial part of the noise is about N(0, noise²)
    mean_x += p[i].x, mean_y += p[i].y;
  }
  mean_x /= double(p.size()), mean_y /= double(p.size());
  for (const Point& q : p) var_x += (q.x - mean_x) * (q.x - mean_x), var_y += (q.y - mean_y) * (q.y - mean_y);
  REQUIRE(std::sqrt(radial_sq / double(p.size())) == Approx(noise).epsilon(0.1));
  // Centred, with the spread given in the header (std ≈ (1.73, 0.99) after ×2).
  REQUIRE(mean_x == Approx(0.0).margin(0.06));
  REQUIRE(mean_y == Approx(0.0).margin(0.04));
  REQUIRE(std::sqrt(var_x / double(p.size())) == Approx(1.73).epsilon(0.03));
  REQUIRE(std::sqrt(var_y / double(p.size())) == Approx(0.99).epsilon(0.03));
}

TEST_CASE("spiral points follow r = theta / 2pi within the noise", "[flow][data]") {
  Generator gen(6);
  std::vector<Point> p = points_of(SpiralDistribution(1.0).sample(5000, gen, DType::Float64));
  double mean_r = 0;
  for (const Point& q : p) {
    const double r = std::hypot(q.x, q.y);
    REQUIRE(r < 3.0 + 6 * 0.1);
    mean_r += r;
  }
  // θ ~ U[0, 6π] gives E[r] = 3/2 before noise; isotropic noise of 0.1 changes that by < 0.01.
  REQUIRE(mean_r / double(p.size()) == Approx(1.5).margin(0.03));
  // Scale stretches the whole picture.
  Generator g1(7), g2(7);
  std::vector<double> one = SpiralDistribution(1.0).sample(10, g1, DType::Float64).to_vector();
  std::vector<double> two = SpiralDistribution(2.0).sample(10, g2, DType::Float64).to_vector();
  for (std::size_t i = 0; i < one.size(); ++i) REQUIRE(two[i] == Approx(2 * one[i]).epsilon(1e-12));
}

TEST_CASE("8 gaussians put every point near one of 8 centres, all modes used", "[flow][data]") {
  EightGaussiansDistribution dist;  // radius 2, std 0.1
  Generator gen(8);
  std::vector<Point> p = points_of(dist.sample(8000, gen, DType::Float64));
  std::vector<int> count(8, 0);
  for (const Point& q : p) {
    int nearest = 0;
    double best = 1e9;
    for (int k = 0; k < 8; ++k) {
      const double d = std::hypot(q.x - 2 * std::cos(k * M_PI / 4), q.y - 2 * std::sin(k * M_PI / 4));
      if (d < best) best = d, nearest = k;
    }
    REQUIRE(best < 6 * 0.1);
    ++count[std::size_t(nearest)];
  }
  for (int c : count) REQUIRE(c == Approx(1000).margin(150));  // binomial sd ≈ 30
}

TEST_CASE("checkerboard points fill only the dark cells of the square from -2 to 2", "[flow][data]") {
  Generator gen(9);
  std::vector<Point> p = points_of(CheckerboardDistribution().sample(8000, gen, DType::Float64));
  std::vector<int> cell_count(16, 0);
  double mean_x = 0, mean_y = 0;
  for (const Point& q : p) {
    REQUIRE(q.x >= -2.0);
    REQUIRE(q.x < 2.0);
    REQUIRE(q.y >= -2.0);
    REQUIRE(q.y < 2.0);
    const int cx = int(std::floor(q.x)), cy = int(std::floor(q.y));
    REQUIRE((cx + cy) % 2 == 0);
    ++cell_count[std::size_t((cx + 2) * 4 + (cy + 2))];
    mean_x += q.x, mean_y += q.y;
  }
  int filled = 0;
  for (int c : cell_count) {
    if (c == 0) continue;
    ++filled;
    REQUIRE(c == Approx(1000).margin(150));  // 8 cells of equal area; binomial sd ≈ 30
  }
  REQUIRE(filled == 8);
  REQUIRE(mean_x / 8000 == Approx(0.0).margin(0.05));
  REQUIRE(mean_y / 8000 == Approx(0.0).margin(0.05));
}

TEST_CASE("training points are drawn by (seed, step, index), whatever the batch split", "[flow][data]") {
  for (const std::string& name : toy_distribution_names()) {
    auto dist = make_toy_distribution(name);
    INFO(name);
    const std::vector<double> whole = dist->sample(50, StepNoise{3, 8, 0}, DType::Float64).to_vector();
    // Points [11, 30) drawn alone — an odd start, so the moons' alternation follows the global index.
    const std::vector<double> part = dist->sample(19, StepNoise{3, 8, 11}, DType::Float64).to_vector();
    REQUIRE(part == std::vector<double>(whole.begin() + 22, whole.begin() + 60));
    REQUIRE(whole == dist->sample(50, StepNoise{3, 8, 0}, DType::Float64).to_vector());
    REQUIRE(whole != dist->sample(50, StepNoise{3, 9, 0}, DType::Float64).to_vector());
    REQUIRE(whole != dist->sample(50, StepNoise{4, 8, 0}, DType::Float64).to_vector());
    std::vector<double> f32 = dist->sample(50, StepNoise{3, 8, 0}).to_vector();
    for (std::size_t i = 0; i < f32.size(); ++i) REQUIRE(f32[i] == double(float(whole[i])));
  }
}

TEST_CASE("training points by step and index have each distribution's geometry", "[flow][data]") {
  // Noise-free moons on their arcs, chosen by the global index (first_sample 1: point 0 is inner).
  std::vector<Point> moons = points_of(MoonsDistribution(0.0, false).sample(400, StepNoise{1, 0, 1}, DType::Float64));
  for (std::size_t i = 0; i < moons.size(); ++i) {
    const bool outer = (i + 1) % 2 == 0;
    const double r = outer ? std::hypot(moons[i].x, moons[i].y) : std::hypot(moons[i].x - 1.0, moons[i].y - 0.5);
    REQUIRE(r == Approx(1.0).epsilon(1e-12));
  }
  // 8 gaussians: all modes used equally over 8000 points of 40 steps (the draws' below(8)).
  std::vector<int> count(8, 0);
  for (std::int64_t step = 0; step < 40; ++step)
    for (const Point& q : points_of(EightGaussiansDistribution().sample(200, StepNoise{2, step, 0}, DType::Float64))) {
      const double angle = std::atan2(q.y, q.x);
      ++count[std::size_t((int(std::lround(angle / (M_PI / 4))) + 8) % 8)];
    }
  for (int c : count) REQUIRE(c == Approx(1000).margin(150));  // binomial sd ≈ 30
  // Checkerboard: only dark cells.
  for (const Point& q : points_of(CheckerboardDistribution().sample(2000, StepNoise{5, 3, 0}, DType::Float64)))
    REQUIRE((int(std::floor(q.x)) + int(std::floor(q.y))) % 2 == 0);
}

TEST_CASE("toy points drawn by the kernel are the host draws bit for bit with their labels", "[flow][data]") {
  for (const std::string& name : toy_distribution_names()) {
    auto dist = make_toy_distribution(name);
    INFO(name);
    const StepNoise noise{3, 5, 7};  // an odd first sample: the moons alternate by the global index
    for (DType dtype : {DType::Float64, DType::Float32}) {
      const auto host = dist->sample_labelled(300, noise, dtype);  // labelled_point on PhiloxSampleDraws
      const Tensor kernel = philox_toy_points(300, dist->law(), noise.key(NoiseStream::DataPoint), 5, 7, dtype);
      REQUIRE(kernel.dtype() == dtype);
      REQUIRE(kernel.shape() == Shape{300, 2});
      REQUIRE(kernel.to_vector() == host.points.to_vector());
      REQUIRE(dist->sample(300, noise, dtype).to_vector() == host.points.to_vector());
      std::vector<std::int32_t> labels(300, -1);
      const kernels::PhiloxPlace place{3, std::uint32_t(NoiseStream::DataPoint), 5, 7};
      kernels::toy_labels_cpu(labels.data(), 300, place, dist->law(), /*dropout=*/0.0, /*null_class=*/-1, place);
      REQUIRE(labels == host.labels);
      // The points with their labels from one pass: the same points, the same labels.
      std::vector<std::int32_t> same_pass;
      REQUIRE(dist->sample(300, noise, dtype, Device::CPU, NoiseStream::DataPoint, &same_pass).to_vector() ==
              host.points.to_vector());
      REQUIRE(same_pass == host.labels);
    }
    // Refused: a negative count, a step beyond the counter, a step read from the device on the CPU.
    const PhiloxKey key{3, 3};
    REQUIRE_THROWS_AS(philox_toy_points(-1, dist->law(), key, 0, 0), ValueError);
    REQUIRE_THROWS_AS(philox_toy_points(4, dist->law(), key, std::int64_t(1) << 32, 0), ValueError);
    const std::uint32_t word = 0;
    REQUIRE_THROWS_AS(philox_toy_points(4, dist->law(), key, 0, 0, DType::Float32, Device::CPU, &word), DeviceError);
    // Labels from the same pass are the CPU's.
    std::vector<std::int32_t> labels;
    REQUIRE_THROWS_AS(philox_toy_points(4, dist->law(), key, 0, 0, DType::Float32, Device::CUDA, nullptr, &labels),
                      DeviceError);
    REQUIRE_THROWS_AS(dist->sample(4, StepNoise{3, 0, 0}, DType::Float32, Device::CUDA, NoiseStream::DataPoint, &labels),
                      DeviceError);
  }
}

TEST_CASE("toy labels made by the kernel are the host labels after the same dropout", "[flow][data]") {
  for (const std::string& name : toy_distribution_names()) {
    auto dist = make_toy_distribution(name);
    INFO(name);
    const std::int32_t classes = dist->num_classes();
    const StepNoise noise{3, 5, 7};
    const std::vector<std::int32_t> drawn = dist->sample_labelled(300, noise).labels;
    const std::vector<std::int32_t> host = drop_labels(drawn, 0.3, classes, noise);
    REQUIRE(host != drawn);  // some dropped
    REQUIRE(dist->labels(300, noise) == drawn);  // (the kernel, no dropout)
    RowIndex out(std::vector<std::int32_t>(300, 0), classes + 1, Device::CPU);
    const LabelDropout dropout{0.3, classes, noise.key(NoiseStream::LabelDropout), noise.step, noise.first_sample};
    dist->labels_into(out, noise, dropout);
    REQUIRE(out.to_vector() == host);
    // Refused: a null class among the classes, an output of other classes, a certain dropout, a step
    // read from the device on the CPU.
    LabelDropout inside = dropout;
    inside.null_class = classes - 1;
    REQUIRE_THROWS_AS(dist->labels_into(out, noise, inside), ValueError);
    RowIndex wider(std::vector<std::int32_t>(300, 0), classes + 2, Device::CPU);
    REQUIRE_THROWS_AS(dist->labels_into(wider, noise, dropout), ValueError);
    LabelDropout certain = dropout;
    certain.probability = 1;
    REQUIRE_THROWS_AS(dist->labels_into(out, noise, certain), ValueError);
    const std::uint32_t word = 0;
    StepNoise from_device = noise;
    from_device.step_on_device = &word;
    REQUIRE_THROWS_AS(dist->labels_into(out, from_device, dropout), DeviceError);
  }
}

TEST_CASE("toy points from the exact sine and cosine are within 1e-15 of the libm formulas", "[flow][data]") {
  // Noise-free, unnormalised moons and a noise-free spiral: each point against cos/sin of its angle
  // from the same uniform draw (draw 0 of its place).
  const PhiloxKey key{11, std::uint32_t(NoiseStream::DataPoint)};
  const std::vector<double> moons = MoonsDistribution(0.0, false).sample(1000, StepNoise{11, 2, 0}, DType::Float64).to_vector();
  kernels::ToyLaw spiral_law = SpiralDistribution(1.0).law();
  const std::vector<double> spiral = philox_toy_points(1000, spiral_law, key, 2, 0, DType::Float64).to_vector();
  double worst_moons = 0, worst_spiral = 0;
  for (std::int64_t i = 0; i < 1000; ++i) {
    const double u = philox_uniform_at(key, 2, i, 0), theta = M_PI * u;
    const double x = i % 2 == 0 ? std::cos(theta) : 1.0 - std::cos(theta);
    const double y = i % 2 == 0 ? std::sin(theta) : 0.5 - std::sin(theta);
    worst_moons = std::max({worst_moons, std::abs(moons[2 * i] - x), std::abs(moons[2 * i + 1] - y)});
    const double angle = 6 * M_PI * u, radius = angle / (2 * M_PI);
    // (the spiral's noise is 0.1·scale·z: compare the point minus its noise, read back from the same draws)
    const double zx = philox_normal_at(key, 2, i, 2), zy = philox_normal_at(key, 2, i, 4);
    worst_spiral = std::max({worst_spiral, std::abs(spiral[2 * i] - 0.1 * zx - radius * std::cos(angle)),
                             std::abs(spiral[2 * i + 1] - 0.1 * zy - radius * std::sin(angle))});
  }
  REQUIRE(worst_moons < 1e-15);
  REQUIRE(worst_spiral < 1e-14);  // (radius up to 3: a few ulps of the radius, plus the noise's rounding)
}

TEST_CASE("toy points drawn on CUDA are the CPU's bit for bit with the step read from the device", "[flow][data][gpu]") {
  FM_REQUIRE_GPU();
  const std::uint32_t step = 23;
  auto* word = static_cast<std::uint32_t*>(kernels::cuda_malloc(4));
  kernels::cuda_copy_to_device(word, &step, 4);
  for (const std::string& name : toy_distribution_names()) {
    auto dist = make_toy_distribution(name);
    INFO(name);
    const Tensor on_cuda = dist->sample(1000, StepNoise{3, 5, 7}, DType::Float32, Device::CUDA);
    REQUIRE(on_cuda.device() == Device::CUDA);
    REQUIRE(on_cuda.to_vector() == dist->sample(1000, StepNoise{3, 5, 7}).to_vector());
    StepNoise from_device{3, 0, 7};  // the step (0 here) ignored: 23 is read from the device word
    from_device.step_on_device = word;
    const std::vector<double> at_23 = dist->sample(1000, from_device, DType::Float32, Device::CUDA).to_vector();
    REQUIRE(at_23 == dist->sample(1000, StepNoise{3, 23, 7}).to_vector());
    REQUIRE(at_23 != dist->sample(1000, StepNoise{3, 0, 7}).to_vector());
    // The labels, dropped, with both steps read from the device word.
    const std::int32_t classes = dist->num_classes();
    RowIndex labels(std::vector<std::int32_t>(1000, 0), classes + 1, Device::CUDA);
    LabelDropout dropout{0.3, classes, PhiloxKey{3, std::uint32_t(NoiseStream::LabelDropout)}, 0, 7, word};
    dist->labels_into(labels, from_device, dropout);
    const StepNoise noise_23{3, 23, 7};
    REQUIRE(labels.to_vector() == drop_labels(dist->sample_labelled(1000, noise_23).labels, 0.3, classes, noise_23));
  }
  kernels::cuda_free(word);
}
