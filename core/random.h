// core/random.h — the engine's two sources of random numbers.
//
// 1. Generator: a stateful stream, xoshiro256** (Blackman & Vigna) seeded through splitmix64, with
//    Box–Muller normals, drawn on the host and copied to the device. For what happens once or in a
//    fixed order: model initialisation, evaluation subsets, the sampling noise of tools/.
// 2. Philox (counter-based, kernels/philox.h): for the training noise. A number is a pure function of
//    its place — (seed, stream, step, sample index, element) — not of what was drawn before, so a
//    resumed run needs only (seed, step), a batch split across threads or ranks draws the very same
//    numbers per sample, and the CPU and CUDA kernels produce the same bits (the normals use an
//    IEEE-exact log and sincos, not libm's). Tensors are made on their own device.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "kernels/time_law.h"
#include "kernels/toy_law.h"

namespace fm {

class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0) { seed_with(seed); }
  void seed_with(std::uint64_t seed);

  std::uint64_t next_u64();
  double uniform();  // [0, 1), 53 random bits
  double normal();   // standard normal
  std::uint64_t below(std::uint64_t n);  // uniform integer in [0, n), unbiased

  struct State {
    std::array<std::uint64_t, 4> words{};
    bool has_spare_normal = false;
    double spare_normal = 0;
  };
  State state() const { return state_; }
  void set_state(const State& state) { state_ = state; }

 private:
  State state_;
};

// The generator's state as six 64-bit words (the four state words, whether a spare normal is cached,
// the spare normal's bits), the form a checkpoint stores (flow/checkpoint_format.h).
std::vector<std::uint64_t> generator_words(const Generator& gen);
// Restores a state saved by generator_words; throws fm::FormatError unless there are six words.
void set_generator_words(Generator& gen, const std::vector<std::uint64_t>& words);

// Tensors of independent draws. Values are generated in float64 and rounded to dtype.
Tensor rand_uniform(const Shape& shape, Generator& gen, double low = 0.0, double high = 1.0,
                    DType dtype = DType::Float32, Device device = Device::CPU);
Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::Float32,
             Device device = Device::CPU);

// ---- counter-based (Philox4x32-10) --------------------------------------------------------------
// Which stream of a run: the key is the seed, the stream id is part of the counter, so streams of one
// seed never overlap. (Stream ids in use: flow/step_noise.h.)
struct PhiloxKey {
  std::uint64_t seed = 0;
  std::uint32_t stream = 0;
};

// shape = [n, ...]: row i holds the values of sample first_sample + i at `step` (element j of the row
// is the sample's j-th value), so drawing rows [a, b) alone equals rows a … b − 1 of the whole draw.
// uniform: [0, 1); normal: standard normal. CPU: float32/float64; CUDA: float32. A float32 uniform is
// the float64 one truncated to 24 bits; a float32 normal is the float64 one rounded.
// step and first_sample + n must be below 2^32 (ValueError otherwise); a rank-0 shape is one sample.
Tensor philox_uniform(const Shape& shape, PhiloxKey key, std::int64_t step, std::int64_t first_sample = 0,
                      DType dtype = DType::Float32, Device device = Device::CPU);
// step_on_device (CUDA only; philox_normal and philox_times): the step is read from that device word
// when the kernel runs instead (a recorded training step: flow/trainer.cpp); `step` is still checked.
Tensor philox_normal(const Shape& shape, PhiloxKey key, std::int64_t step, std::int64_t first_sample = 0,
                     DType dtype = DType::Float32, Device device = Device::CPU,
                     const std::uint32_t* step_on_device = nullptr);

// Training times: element i is sample (first_sample + i)'s time under `law` (uniform, logit-normal,
// polynomial warp or grid; kernels/time_law.h) from its place in stream key.stream at `step`, clamped
// below 1 in dtype, made on `device` (CPU: float32/float64; CUDA: float32) with the same bits on both.
using TimeLaw = kernels::TimeLaw;
using TimeLawKind = kernels::TimeLawKind;
Tensor philox_times(std::int64_t n, PhiloxKey key, std::int64_t step, std::int64_t first_sample, const TimeLaw& law,
                    DType dtype = DType::Float32, Device device = Device::CPU,
                    const std::uint32_t* step_on_device = nullptr);

// 2-D toy data points [n, 2]: row i is point (first_sample + i) of a toy distribution (moons, spiral,
// 8 gaussians, checkerboard; kernels/toy_law.h) from its place in stream key.stream at `step`, made on
// `device` (CPU: float32/float64; CUDA: float32) with the same bits on both, and the same bits as
// toy_point on PhiloxSampleDraws (flow/datasets2d.h's host draws). step_on_device as philox_normal.
// labels (the CPU only; null: not wanted): resized to n and filled with each point's label, from the
// same pass over the draws.
using ToyLaw = kernels::ToyLaw;
using ToyLawKind = kernels::ToyLawKind;
Tensor philox_toy_points(std::int64_t n, const ToyLaw& law, PhiloxKey key, std::int64_t step, std::int64_t first_sample,
                         DType dtype = DType::Float32, Device device = Device::CPU,
                         const std::uint32_t* step_on_device = nullptr, std::vector<std::int32_t>* labels = nullptr);

// Single values at a place, on the host: equal to element `element` of that sample's row in the
// float64 tensors above; the word is the 64 bits the uniform is taken from.
double philox_uniform_at(PhiloxKey key, std::int64_t step, std::int64_t sample, std::int64_t element);
double philox_normal_at(PhiloxKey key, std::int64_t step, std::int64_t sample, std::int64_t element);
std::uint64_t philox_word_at(PhiloxKey key, std::int64_t step, std::int64_t sample, std::int64_t element);

// A few draws in a row, for transforms that need several numbers per sample (a toy data point, a
// training time): the same code runs on a Generator (sequential) or on one sample's Philox place.
class RandomDraws {
 public:
  virtual ~RandomDraws() = default;
  virtual double uniform() = 0;                       // [0, 1)
  virtual double normal() = 0;                        // standard normal
  virtual std::uint64_t below(std::uint64_t n) = 0;   // integer in [0, n)
};

class GeneratorDraws final : public RandomDraws {
 public:
  explicit GeneratorDraws(Generator& gen) : gen_(gen) {}
  double uniform() override { return gen_.uniform(); }
  double normal() override { return gen_.normal(); }
  std::uint64_t below(std::uint64_t n) override { return gen_.below(n); }

 private:
  Generator& gen_;
};

// Draw d (counting uniforms, normals and integers together) of one sample is taken from Philox block d
// of that sample (element 2d), so draws never share bits. below(n) = ⌊word·n / 2^64⌋ (Lemire): exact
// for powers of two, otherwise biased by at most n/2^64.
class PhiloxSampleDraws final : public RandomDraws {
 public:
  PhiloxSampleDraws(PhiloxKey key, std::int64_t step, std::int64_t sample) : key_(key), step_(step), sample_(sample) {}
  double uniform() override { return philox_uniform_at(key_, step_, sample_, 2 * next_++); }
  double normal() override { return philox_normal_at(key_, step_, sample_, 2 * next_++); }
  std::uint64_t below(std::uint64_t n) override;

 private:
  PhiloxKey key_;
  std::int64_t step_, sample_;
  std::int64_t next_ = 0;
};

}  // namespace fm
