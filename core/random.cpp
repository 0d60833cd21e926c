// core/random.cpp — xoshiro256** with splitmix64 seeding and Box–Muller normals, and the single
// Philox values and per-sample draws (see random.h; the Philox tensors are core/ops_random.cpp).
#include "core/random.h"

#include <bit>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "kernels/philox.h"

namespace fm {
namespace {
std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace

void Generator::seed_with(std::uint64_t seed) {
  std::uint64_t x = seed;
  for (auto& w : state_.words) w = splitmix64(x);
  state_.has_spare_normal = false;
  state_.spare_normal = 0;
}

std::uint64_t Generator::next_u64() {
  auto& s = state_.words;
  std::uint64_t result = rotl(s[1] * 5, 7) * 9;
  std::uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double Generator::uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }

double Generator::normal() {
  if (state_.has_spare_normal) {
    state_.has_spare_normal = false;
    return state_.spare_normal;
  }
  // Box–Muller: two uniforms give two independent normals; 1 − u keeps the log argument in (0, 1].
  double u1 = 1.0 - uniform(), u2 = uniform();
  double radius = std::sqrt(-2.0 * std::log(u1));
  double angle = 2.0 * M_PI * u2;
  state_.spare_normal = radius * std::sin(angle);
  state_.has_spare_normal = true;
  return radius * std::cos(angle);
}

std::uint64_t Generator::below(std::uint64_t n) {
  if (n <= 1) return 0;
  // Rejection sampling removes the modulo bias.
  std::uint64_t limit = ~std::uint64_t(0) - (~std::uint64_t(0) % n);
  std::uint64_t x;
  do x = next_u64();
  while (x >= limit);
  return x % n;
}

std::vector<std::uint64_t> generator_words(const Generator& gen) {
  Generator::State s = gen.state();
  return {s.words[0], s.words[1], s.words[2], s.words[3], s.has_spare_normal ? 1u : 0u,
          std::bit_cast<std::uint64_t>(s.spare_normal)};
}

void set_generator_words(Generator& gen, const std::vector<std::uint64_t>& w) {
  FM_CHECK(w.size() == 6, FormatError, "checkpoint: generator state has ", w.size(), " words, expected 6");
  Generator::State s;
  for (int i = 0; i < 4; ++i) s.words[std::size_t(i)] = w[std::size_t(i)];
  s.has_spare_normal = w[4] != 0;
  s.spare_normal = std::bit_cast<double>(w[5]);
  gen.set_state(s);
}

Tensor rand_uniform(const Shape& shape, Generator& gen, double low, double high, DType dtype,
                    Device device) {
  std::vector<double> values(std::size_t(shape_numel(shape)));
  for (double& v : values) v = low + (high - low) * gen.uniform();
  return Tensor::from_vector(values, shape, dtype, device);
}

Tensor randn(const Shape& shape, Generator& gen, DType dtype, Device device) {
  std::vector<double> values(std::size_t(shape_numel(shape)));
  for (double& v : values) v = gen.normal();
  return Tensor::from_vector(values, shape, dtype, device);
}

namespace {
// The counter's 32-bit fields (kernels/philox.h): step and sample must fit.
void check_place(std::int64_t step, std::int64_t sample, std::int64_t element) {
  FM_CHECK(step >= 0 && step < (std::int64_t(1) << 32) && sample >= 0 && sample < (std::int64_t(1) << 32) &&
               element >= 0 && element < (std::int64_t(1) << 33),
           ValueError, "philox: step ", step, ", sample ", sample, ", element ", element,
           " outside the counter's range (step and sample below 2^32, element below 2^33)");
}
}  // namespace

double philox_uniform_at(PhiloxKey key, std::int64_t step, std::int64_t sample, std::int64_t element) {
  return kernels::philox::uniform_double(philox_word_at(key, step, sample, element));
}

double philox_normal_at(PhiloxKey key, std::int64_t step, std::int64_t sample, std::int64_t element) {
  check_place(step, sample, element);
  return kernels::philox::normal_at(key.seed, key.stream, std::uint32_t(step), std::uint32_t(sample),
                                    std::uint64_t(element));
}

std::uint64_t philox_word_at(PhiloxKey key, std::int64_t step, std::int64_t sample, std::int64_t element) {
  check_place(step, sample, element);
  return kernels::philox::word_at(key.seed, key.stream, std::uint32_t(step), std::uint32_t(sample),
                                  std::uint64_t(element));
}

std::uint64_t PhiloxSampleDraws::below(std::uint64_t n) {
  const std::uint64_t word = philox_word_at(key_, step_, sample_, 2 * next_++);
  return kernels::philox::mul_high_64(word, n);
}

}  // namespace fm
