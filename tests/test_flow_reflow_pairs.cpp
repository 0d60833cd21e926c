// tests/test_flow_reflow_pairs.cpp — reflow pairs files (flow/reflow_pairs.h): the pairs are the
// teacher's solves of the source's draws (on Gaussians: the known straight coupling), an interrupted
// generation resumes to bitwise the same file, a file made with another recipe is refused, and a
// corrupt or inconsistent file is a FormatError.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "core/io/atomic_file.h"
#include "core/io/tensor_io.h"
#include "core/ops.h"
#include "core/random.h"
#include "flow/reflow_pairs.h"
#include "flow/straightness.h"
#include "flow/training_data.h"
#include "test_util.h"

using namespace fm;
using namespace fm::flow;

namespace {

// x0 of pair i: a fixed function of i (as the Philox source is), so resumes can be compared.
Tensor source_rows(std::int64_t first, std::int64_t count) {
  std::vector<double> values;
  for (std::int64_t i = first; i < first + count; ++i) values.insert(values.end(), {double(i), -0.5 * double(i)});
  return Tensor::from_vector(values, {count, 2});
}

PairsRecipe recipe_of(std::int64_t count, std::int64_t chunk) {
  PairsRecipe recipe;
  recipe.solver = "euler";
  recipe.steps = 4;
  recipe.count = count;
  recipe.chunk = chunk;
  recipe.seed = 3;
  recipe.provenance["teacher"] = "analytic shift";
  return recipe;
}

}  // namespace

TEST_CASE("pairs are (x0, teacher's solve of x0), joined from chunks, parts removed", "[flow][reflow]") {
  fm::test::TempDir dir("fm_test_pairs");
  const std::string path = dir.file("pairs.safetensors");
  // v = (1, 2) everywhere: the solve is x0 + (1, 2) whatever the solver.
  VelocityField shift = [](const Tensor& x, double) { return x * 0.0 + Tensor::from_vector({1.0, 2.0}, {2}); };
  std::vector<std::int64_t> seen;
  generate_pairs(shift, source_rows, recipe_of(10, 4), path,
                 [&](std::int64_t done, std::int64_t total) {
                   REQUIRE(total == 10);
                   seen.push_back(done);
                 });
  REQUIRE(seen == std::vector<std::int64_t>{4, 8, 10});
  REQUIRE(dir.entries() == std::vector<std::string>{"pairs.safetensors"});
  ReflowPairs pairs = load_pairs(path);
  REQUIRE(pairs.x0.shape() == Shape{10, 2});
  REQUIRE(pairs.x0.to_vector() == source_rows(0, 10).to_vector());
  std::vector<double> x1 = pairs.x1.to_vector();
  for (int i = 0; i < 10; ++i) {
    REQUIRE(x1[2 * i] == Approx(i + 1.0));
    REQUIRE(x1[2 * i + 1] == Approx(-0.5 * i + 2.0));
  }
  REQUIRE(pairs.metadata.at("pairs.solver") == "euler");
  REQUIRE(pairs.metadata.at("teacher") == "analytic shift");
  // Asking again for the same pairs keeps the file; another recipe is refused by name.
  generate_pairs(shift, source_rows, recipe_of(10, 4), path);
  PairsRecipe other = recipe_of(10, 4);
  other.seed = 4;
  REQUIRE_THROWS_WITH(generate_pairs(shift, source_rows, other, path),
                      Catch::Contains("pairs.seed is \"3\", expected \"4\""));
}

TEST_CASE("an interrupted generation resumes at the first missing part, to the same file", "[flow][reflow]") {
  fm::test::TempDir dir("fm_test_pairs_resume");
  VelocityField rotate = [](const Tensor& x, double t) {
    return concat({x.narrow(1, 1, 1) * -1.0, x.narrow(1, 0, 1) * (1.0 + t)}, 1);
  };
  const std::string whole = dir.file("whole.safetensors"), resumed = dir.file("resumed.safetensors");
  generate_pairs(rotate, source_rows, recipe_of(11, 3), whole);

  int evaluations = 0;
  VelocityField dies_in_third_chunk = [&](const Tensor& x, double t) {
    if (++evaluations > 2 * 4) throw std::runtime_error("killed");  // chunks 0 and 1 finish (4 steps each)
    return rotate(x, t);
  };
  REQUIRE_THROWS_WITH(generate_pairs(dies_in_third_chunk, source_rows, recipe_of(11, 3), resumed), "killed");
  REQUIRE(std::filesystem::exists(pairs_part_path(resumed, 0)));
  REQUIRE(std::filesystem::exists(pairs_part_path(resumed, 1)));
  REQUIRE(!std::filesystem::exists(resumed));

  int resumed_evaluations = 0;
  VelocityField counting = [&](const Tensor& x, double t) { return ++resumed_evaluations, rotate(x, t); };
  generate_pairs(counting, source_rows, recipe_of(11, 3), resumed);
  REQUIRE(resumed_evaluations == 2 * 4);  // chunks 2 and 3 only
  REQUIRE(load_pairs(resumed).x1.to_vector() == load_pairs(whole).x1.to_vector());
  REQUIRE(!std::filesystem::exists(pairs_part_path(resumed, 0)));
}

TEST_CASE("load_pairs refuses corrupt and inconsistent files by name", "[flow][reflow]") {
  fm::test::TempDir dir("fm_test_pairs_bad");
  Tensor a = Tensor::zeros({3, 2}), b = Tensor::ones({3, 2});
  auto write = [&](const std::string& name, const io::NamedTensors& tensors, const std::string& count) {
    io::save_safetensors(dir.file(name), tensors, {{"pairs.count", count}});
    return dir.file(name);
  };
  REQUIRE(load_pairs(write("good.safetensors", {{"x0", a}, {"x1", b}}, "3")).x1.shape() == Shape{3, 2});
  REQUIRE_THROWS_WITH(load_pairs(write("no_x1.safetensors", {{"x0", a}}, "3")), Catch::Contains("no tensor 'x1'"));
  REQUIRE_THROWS_WITH(load_pairs(write("count.safetensors", {{"x0", a}, {"x1", b}}, "4")),
                      Catch::Contains("holds 3 pairs but its metadata says pairs.count = 4"));
  REQUIRE_THROWS_WITH(load_pairs(write("shape.safetensors", {{"x0", a}, {"x1", Tensor::zeros({3, 3})}}, "3")),
                      Catch::Contains("must have the same shape"));
  REQUIRE_THROWS_WITH(load_pairs(write("f64.safetensors", {{"x0", a.to(DType::Float64)}, {"x1", b}}, "3")),
                      Catch::Contains("expected float32"));
  Tensor with_nan = Tensor::from_vector({0, 1, std::nan(""), 3, 4, 5}, {3, 2});
  REQUIRE_THROWS_WITH(load_pairs(write("nan.safetensors", {{"x0", a}, {"x1", with_nan}}, "3")),
                      Catch::Contains("x1 has a non-finite value"));
  const std::string good = dir.file("good.safetensors");
  std::string bytes = io::read_file_bytes(good);
  const std::string truncated = dir.write("truncated.safetensors", bytes.substr(0, bytes.size() - 5));
  REQUIRE_THROWS_AS(load_pairs(truncated), FormatError);
}

TEST_CASE("PairEpochs serves x1 rows with their own x0 rows, in resumable shuffled epochs", "[flow][reflow]") {
  fm::test::TempDir dir("fm_test_pair_epochs");
  const std::string path = dir.file("pairs.safetensors");
  // x1 = x0 + (100, 200): each served row can be checked against its partner.
  VelocityField shift = [](const Tensor& x, double) { return x * 0.0 + Tensor::from_vector({100.0, 200.0}, {2}); };
  generate_pairs(shift, source_rows, recipe_of(10, 4), path);
  PairEpochs data(path);
  REQUIRE(data.size() == 10);
  REQUIRE(data.example_shape() == Shape{2});
  std::vector<double> first_epoch_x0;
  for (int step = 0; step < 3; ++step) {  // batches of 3: epoch 0 serves 9 of the 10 pairs
    std::vector<double> x1 = data.next_batch(3, StepNoise{7, step, 0}).to_vector();
    std::vector<double> x0 = data.paired_source().to_vector();
    REQUIRE(x0.size() == 6);
    for (int i = 0; i < 6; ++i) REQUIRE(x1[i] == Approx(x0[i] + (i % 2 ? 200.0 : 100.0)));
    first_epoch_x0.insert(first_epoch_x0.end(), x0.begin(), x0.end());
  }
  std::vector<double> rows;
  for (std::size_t i = 0; i < first_epoch_x0.size(); i += 2) rows.push_back(first_epoch_x0[i]);
  std::sort(rows.begin(), rows.end());
  REQUIRE(std::adjacent_find(rows.begin(), rows.end()) == rows.end());  // no pair twice in an epoch
  REQUIRE(data.epoch() == 0);
  // A copy restored from the state continues with exactly the same batches.
  PairEpochs resumed(path);
  resumed.load_state(data.state());
  for (int step = 3; step < 6; ++step) {
    REQUIRE(resumed.next_batch(3, StepNoise{7, step, 0}).to_vector() == data.next_batch(3, StepNoise{7, step, 0}).to_vector());
    REQUIRE(resumed.paired_source().to_vector() == data.paired_source().to_vector());
  }
  REQUIRE(data.epoch() == 1);
  REQUIRE_THROWS_WITH(data.next_batch(11, StepNoise{7, 9, 0}), Catch::Contains("larger than the 10 pairs in"));
}

// Reflow on a case solved on paper. From x0 ~ N(0, 1) to data N(mu, s²) (per coordinate) with the
// CondOT path, the marginal velocity is v(x, t) = mu + (x − t·mu)·(t·s² − (1 − t)) / ((1 − t)² + t²·s²),
// and its flow carries x0 to mu + s·x0: the straight (optimal) coupling, reached although the teacher's
// own paths are curved (S > 0 for s ≠ 1). The pairs must be that coupling, and the field a student
// learns from them, v(x, t) = mu + (s − 1)·(x − t·mu)/(1 − t + t·s), has S = 0.
TEST_CASE("reflow on Gaussians: the pairs are the straight coupling and their field has S = 0", "[flow][reflow]") {
  const double mu = 2.0, s = 0.5;
  VelocityField teacher = [&](const Tensor& x, double t) {
    const double variance = (1 - t) * (1 - t) + t * t * s * s;
    return (x - t * mu) * ((t * s * s - (1 - t)) / variance) + mu;
  };
  fm::test::TempDir dir("fm_test_pairs_gaussian");
  PairsRecipe recipe;
  recipe.count = 200;
  recipe.chunk = 64;
  recipe.steps = 20;  // RK4
  auto normals = [](std::int64_t first, std::int64_t count) {
    return philox_normal({count, 2}, PhiloxKey{9, 1}, 0, first, DType::Float64);
  };
  // The pairs file stores float32: the straight map holds to float32 rounding plus RK4's error.
  generate_pairs(teacher, [&](std::int64_t first, std::int64_t count) { return normals(first, count).to(DType::Float32); },
                 recipe, dir.file("pairs.safetensors"));
  ReflowPairs pairs = load_pairs(dir.file("pairs.safetensors"));
  std::vector<double> x0 = pairs.x0.to_vector(), x1 = pairs.x1.to_vector();
  for (std::size_t i = 0; i < x0.size(); ++i) REQUIRE(x1[i] == Approx(mu + s * x0[i]).margin(2e-5));

  Tensor start = normals(0, 500);
  const double teacher_s = measure_straightness(teacher, start, 100).straightness;
  VelocityField student = [&](const Tensor& x, double t) { return (x - t * mu) * ((s - 1) / (1 - t + t * s)) + mu; };
  const Straightness straight = measure_straightness(student, start, 100);
  REQUIRE(teacher_s > 0.01);
  REQUIRE(straight.straightness == Approx(0).margin(1e-9));
  // And its one Euler step lands where the teacher's hundred do.
  std::vector<double> one_step = (start + student(start, 0.0)).to_vector(), end = straight.end.to_vector();
  for (std::size_t i = 0; i < end.size(); ++i) REQUIRE(one_step[i] == Approx(end[i]).margin(1e-9));
}
