// core/random.h — the seeded random number generator behind every random tensor.
//
// xoshiro256** (Blackman & Vigna) seeded through splitmix64, with Box–Muller normals. Numbers are
// always drawn on the host and copied to the device, so the same seed gives bitwise the same
// tensors on every run and on both devices. The state is four words plus the cached second normal
// of a Box–Muller pair; it is saved in checkpoints so a resumed run continues the same stream.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "core/tensor.h"

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

}  // namespace fm
