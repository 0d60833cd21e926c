// tests/test_core_philox.cpp — the counter-based generator (kernels/philox.h, core/random.h's philox_*):
// Random123's known answers, the IEEE-exact log and sincos against the C library, the statistics of
// the uniforms and normals, independence from how a tensor is split, and CPU/CUDA bitwise parity.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numbers>
#include <vector>

#include "core/random.h"
#include "kernels/philox.h"
#include "kernels/time_law.h"
#include "test_util.h"

using namespace fm;
namespace philox = fm::kernels::philox;

namespace {

// Distance in units in the last place between two doubles of the same sign.
double ulps_apart(double a, double b) {
  if (a == b) return 0;
  const double ulp = std::nextafter(std::max(std::abs(a), std::abs(b)), INFINITY) - std::max(std::abs(a), std::abs(b));
  return std::abs(a - b) / ulp;
}

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::numbers::sqrt2); }

// Kolmogorov–Smirnov distance between the sample and a continuous CDF.
template <typename Cdf>
double ks_distance(std::vector<double> v, Cdf cdf) {
  std::sort(v.begin(), v.end());
  const double n = double(v.size());
  double d = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const double f = cdf(v[i]);
    d = std::max({d, f - double(i) / n, double(i + 1) / n - f});
  }
  return d;
}

struct Moments {
  double mean = 0, variance = 0;
};
Moments moments(const std::vector<double>& v) {
  Moments m;
  for (double x : v) m.mean += x;
  m.mean /= double(v.size());
  for (double x : v) m.variance += (x - m.mean) * (x - m.mean);
  m.variance /= double(v.size() - 1);
  return m;
}

}  // namespace

TEST_CASE("Philox4x32-10 reproduces the Random123 known-answer vectors", "[core][random][philox]") {
  // kat_vectors of the Random123 distribution (philox4x32 10 rounds).
  auto run = [](philox::Words counter, std::uint32_t k0, std::uint32_t k1) {
    philox::Words out = philox::philox4x32_10(counter, k0, k1);
    return std::vector<std::uint32_t>(out.w, out.w + 4);
  };
  REQUIRE(run({{0, 0, 0, 0}}, 0, 0) == std::vector<std::uint32_t>{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8});
  REQUIRE(run({{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}}, 0xffffffff, 0xffffffff) ==
          std::vector<std::uint32_t>{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd});
  REQUIRE(run({{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}}, 0xa4093822, 0x299f31d0) ==
          std::vector<std::uint32_t>{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1});
}

TEST_CASE("the exact-arithmetic log is within 3 ulp of the C library's on the unit interval", "[core][random][philox]") {
  double worst = 0;
  auto check = [&](double u) {
    const double mine = philox::log_unit_interval(u), libm = std::log(u);
    if (u == 1.0) REQUIRE(mine == 0.0);
    worst = std::max(worst, ulps_apart(mine, libm));
  };
  // Every place Box–Muller can ask for: u = (k + 1)·2^-53; random k over the whole range, the
  // smallest and largest values, and values around the √2 switch and around 1 (where log u → 0).
  Generator gen(11);
  for (int i = 0; i < 1000000; ++i) check(double((gen.next_u64() >> 11) + 1) * 0x1p-53);
  for (std::uint64_t k = 0; k < 1000; ++k) check(double(k + 1) * 0x1p-53);
  for (std::uint64_t k = 0; k < 1000; ++k) check(1.0 - double(k) * 0x1p-53);
  for (int e = 1; e < 53; ++e)
    for (double f : {std::numbers::sqrt2 / 2, 0.7071067811865475, 0.7071067811865476, 0.75, 0.999999, 0.5000001})
      check(std::ldexp(f, 1 - e));
  INFO("worst: " << worst << " ulp");
  REQUIRE(worst <= 3.0);  // 2 ulp is the worst seen over 4·10⁶ random points; a float needs 2^29 ulp
}

TEST_CASE("the exact-arithmetic exp is within 2 ulp of the C library's, with its overflow and underflow",
          "[core][random][philox]") {
  double worst = 0;
  auto check = [&](double x) {
    const double mine = philox::exp_exact(x), libm = std::exp(x);
    INFO("x = " << x);
    if (libm == 0 || std::isinf(libm)) {
      REQUIRE(mine == libm);
      return;
    }
    worst = std::max(worst, ulps_apart(mine, libm));
  };
  Generator gen(12);
  for (int i = 0; i < 1000000; ++i) check(-745.0 + 1454.7 * gen.uniform());  // the whole finite range
  for (int i = 0; i < 100000; ++i) check(-40.0 + 80.0 * gen.uniform());       // what logit-normal times ask
  for (double x : {0.0, -0.0, 1e-300, -1e-300, 0.5 * std::log(2.0), -0.5 * std::log(2.0), 1.0, -1.0, 709.78,
                   709.7827128933, -708.39, -708.4, -740.0, -745.1, -745.3, 710.0, 1e10, -1e10})
    check(x);
  REQUIRE(philox::exp_exact(0.0) == 1.0);
  REQUIRE(std::isnan(philox::exp_exact(std::nan(""))));
  INFO("worst: " << worst << " ulp");
  REQUIRE(worst <= 2.0);  // subnormal results included (rounded once)
}

TEST_CASE("the exact-arithmetic sincos of 2πk/2^53 is within 2^-52 of the long-double reference",
          "[core][random][philox]") {
  double worst = 0;
  auto check = [&](std::uint64_t k) {
    double s, c;
    philox::sincos_turns(k, s, c);
    const long double angle = 2.0L * std::numbers::pi_v<long double> * (long double)k * 0x1p-53L;
    worst = std::max({worst, double(std::abs((long double)s - sinl(angle))),
                      double(std::abs((long double)c - cosl(angle)))});
    REQUIRE(s * s + c * c == Approx(1.0).margin(1e-15));
  };
  Generator gen(12);
  for (int i = 0; i < 1000000; ++i) check(gen.next_u64() >> 11);
  // The quadrant boundaries and the reduction's rounding point (±½ quarter turn), and k = 0.
  for (std::uint64_t q = 0; q <= 4; ++q)
    for (std::int64_t d = -3; d <= 3; ++d) {
      const std::int64_t at_boundary = std::int64_t(q << 51) + d, at_half = std::int64_t(q << 51) + (1ll << 50) + d;
      for (std::int64_t k : {at_boundary, at_half})
        if (k >= 0 && k < (1ll << 53)) check(std::uint64_t(k));
    }
  INFO("worst absolute error: " << worst);
  REQUIRE(worst <= 0x1p-52);
}

TEST_CASE("philox normals match Box–Muller with the C library's log, sin and cos", "[core][random][philox]") {
  // The same transform written with libm: double results within a few 1e-16 relative, and the float
  // rounding equal except where the libm value sits within that distance of a float tie.
  int float_mismatches = 0;
  const int n = 200000;
  for (int i = 0; i < n / 2; ++i) {
    const philox::Words block = philox::block_at(5, 1, 7, std::uint32_t(i), 0);
    double first, second;
    philox::normal_pair(block, first, second);
    const double u = double((philox::join(block.w[0], block.w[1]) >> 11) + 1) * 0x1p-53;
    const long double angle =
        2.0L * std::numbers::pi_v<long double> * (long double)(philox::join(block.w[2], block.w[3]) >> 11) * 0x1p-53L;
    const long double radius = std::sqrt(-2.0L * std::log((long double)u));
    const long double ref_first = radius * cosl(angle), ref_second = radius * sinl(angle);
    REQUIRE(double(std::abs(first - ref_first)) <= 4e-16 * std::max(1.0L, radius));
    REQUIRE(double(std::abs(second - ref_second)) <= 4e-16 * std::max(1.0L, radius));
    float_mismatches += float(first) != float(double(ref_first));
    float_mismatches += float(second) != float(double(ref_second));
  }
  INFO(float_mismatches << " of " << n << " float normals differ from the rounded reference");
  REQUIRE(float_mismatches <= n / 10000);
}

TEST_CASE("philox uniforms and normals have the right moments and distribution", "[core][random][philox]") {
  const std::int64_t n = 1000000;
  const double ks_critical = 1.95 / std::sqrt(double(n));  // KS at the 0.1% level
  for (DType dtype : {DType::Float32, DType::Float64}) {
    INFO(dtype_name(dtype));
    std::vector<double> u = philox_uniform({n / 100, 100}, {42, 3}, 9, 0, dtype).to_vector();
    for (double x : u) REQUIRE((x >= 0.0 && x < 1.0));
    Moments mu = moments(u);
    // Standard errors: mean 0.29/√n ≈ 2.9e-4, variance ≈ 0.075/√n ≈ 7.5e-5; allow five of them.
    REQUIRE(std::abs(mu.mean - 0.5) < 1.5e-3);
    REQUIRE(std::abs(mu.variance - 1.0 / 12) < 4e-4);
    REQUIRE(ks_distance(u, [](double x) { return x; }) < ks_critical);

    std::vector<double> z = philox_normal({n / 1000, 10, 100}, {42, 4}, 9, 0, dtype).to_vector();
    Moments mz = moments(z);
    // Standard errors: mean 1/√n = 1e-3, variance √(2/n) ≈ 1.4e-3; allow five.
    REQUIRE(std::abs(mz.mean) < 5e-3);
    REQUIRE(std::abs(mz.variance - 1.0) < 7e-3);
    REQUIRE(ks_distance(z, normal_cdf) < ks_critical);
    // Pairs from one block (elements 2j, 2j + 1) are independent: their correlation is ~0.
    double cross = 0;
    for (std::size_t j = 0; j + 1 < z.size(); j += 2) cross += z[j] * z[j + 1];
    REQUIRE(std::abs(cross / double(z.size() / 2)) < 5 * std::sqrt(2.0 / double(n)));
  }
}

TEST_CASE("philox tensors depend only on (seed, stream, step, sample, element), not on the split",
          "[core][random][philox]") {
  const PhiloxKey key{2024, 7};
  for (DType dtype : {DType::Float32, DType::Float64}) {
    for (Shape shape : {Shape{13, 7}, Shape{13, 2, 3}, Shape{13}}) {
      for (bool normal : {false, true}) {
        INFO(dtype_name(dtype) << " " << shape_str(shape) << (normal ? " normal" : " uniform"));
        auto draw = [&](Shape s, std::int64_t first) {
          return (normal ? philox_normal(s, key, 31, first, dtype) : philox_uniform(s, key, 31, first, dtype))
              .to_vector();
        };
        const std::vector<double> whole = draw(shape, 100);
        const std::int64_t row = shape_numel(shape) / shape[0];
        // Rows [a, b) drawn alone, for a few splits, equal the same rows of the whole draw.
        for (auto [a, b] : {std::pair<std::int64_t, std::int64_t>{0, 13}, {0, 1}, {3, 8}, {12, 13}, {5, 5}}) {
          Shape part = shape;
          part[0] = b - a;
          const std::vector<double> slice = draw(part, 100 + a);
          REQUIRE(slice == std::vector<double>(whole.begin() + a * row, whole.begin() + b * row));
        }
        // Each element is the single value at its place.
        for (std::int64_t i = 0; i < shape[0]; ++i)
          for (std::int64_t j = 0; j < row; ++j) {
            const double at = normal ? philox_normal_at(key, 31, 100 + i, j) : philox_uniform_at(key, 31, 100 + i, j);
            const double expected = dtype == DType::Float64 ? at
                                    : normal               ? double(float(at))
                                                           : double(float(std::ldexp(std::floor(std::ldexp(at, 24)), -24)));
            REQUIRE(whole[std::size_t(i * row + j)] == expected);
          }
        // Another step, stream, seed or sample gives other numbers.
        REQUIRE(draw(shape, 101) != whole);
        REQUIRE((normal ? philox_normal(shape, key, 32, 100, dtype) : philox_uniform(shape, key, 32, 100, dtype))
                    .to_vector() != whole);
        REQUIRE((normal ? philox_normal(shape, {2024, 8}, 31, 100, dtype) : philox_uniform(shape, {2024, 8}, 31, 100, dtype))
                    .to_vector() != whole);
        REQUIRE((normal ? philox_normal(shape, {2025, 7}, 31, 100, dtype) : philox_uniform(shape, {2025, 7}, 31, 100, dtype))
                    .to_vector() != whole);
      }
    }
  }
  // A rank-0 shape is one sample; empty shapes give empty tensors.
  REQUIRE(philox_normal({}, key, 0, 4, DType::Float64).item() == philox_normal_at(key, 0, 4, 0));
  REQUIRE(philox_uniform({0, 5}, key, 0).numel() == 0);
}

TEST_CASE("philox places outside the counter's range are refused", "[core][random][philox]") {
  const PhiloxKey key{1, 1};
  REQUIRE_THROWS_AS(philox_normal({4}, key, std::int64_t(1) << 32), ValueError);
  REQUIRE_THROWS_AS(philox_uniform({4}, key, -1), ValueError);
  REQUIRE_THROWS_AS(philox_uniform({4}, key, 0, (std::int64_t(1) << 32) - 3), ValueError);
  REQUIRE_NOTHROW(philox_uniform({4}, key, 0, (std::int64_t(1) << 32) - 4));
  REQUIRE_THROWS_AS(philox_normal_at(key, 0, -1, 0), ValueError);
}

TEST_CASE("per-sample philox draws take one block each and never share bits", "[core][random][philox]") {
  const PhiloxKey key{77, 2};
  PhiloxSampleDraws draws(key, 5, 9);
  REQUIRE(draws.uniform() == philox_uniform_at(key, 5, 9, 0));
  REQUIRE(draws.normal() == philox_normal_at(key, 5, 9, 2));
  const std::uint64_t word = philox_word_at(key, 5, 9, 4);
  REQUIRE(draws.below(8) == word >> 61);  // a power of two: the top bits, exactly uniform
  REQUIRE(draws.uniform() == philox_uniform_at(key, 5, 9, 6));
  std::vector<int> counts(6, 0);
  for (int i = 0; i < 60000; ++i) {
    PhiloxSampleDraws d(key, 0, i);
    ++counts[std::size_t(d.below(6))];
  }
  for (int c : counts) REQUIRE(std::abs(c - 10000) < 500);  // ~5 standard errors (√(10⁴·5/6) ≈ 91)
}

TEST_CASE("philox tensors on CUDA equal the CPU ones bit for bit", "[core][random][philox][gpu]") {
  FM_REQUIRE_GPU();
  const PhiloxKey key{123456789012345ull, 1};
  for (Shape shape : {Shape{1}, Shape{5, 7}, Shape{64, 3, 8, 8}, Shape{1000, 2}, Shape{0, 4}}) {
    INFO(shape_str(shape));
    for (std::int64_t first : {0, 17}) {
      std::vector<double> cpu_n = philox_normal(shape, key, 12, first).to_vector();
      std::vector<double> gpu_n = philox_normal(shape, key, 12, first, DType::Float32, Device::CUDA).to_vector();
      REQUIRE(gpu_n == cpu_n);
      std::vector<double> cpu_u = philox_uniform(shape, key, 12, first).to_vector();
      std::vector<double> gpu_u = philox_uniform(shape, key, 12, first, DType::Float32, Device::CUDA).to_vector();
      REQUIRE(gpu_u == cpu_u);
    }
  }
}

TEST_CASE("philox training times on CUDA equal the CPU ones bit for bit, for every law", "[core][random][philox][gpu]") {
  FM_REQUIRE_GPU();
  const PhiloxKey key{987654321ull, 2};
  std::vector<TimeLaw> laws(6);
  laws[1].kind = TimeLawKind::LogitNormal;
  laws[2].kind = TimeLawKind::LogitNormal, laws[2].mean = -0.5, laws[2].std = 3.0;
  laws[3].kind = TimeLawKind::Warp, laws[3].slope = 0.5;
  laws[4].kind = TimeLawKind::Grid, laws[4].points = 7;
  laws[5].kind = TimeLawKind::Grid, laws[5].points = 1;
  for (std::size_t k = 0; k < laws.size(); ++k) {
    INFO("law " << k);
    for (std::int64_t n : {1, 255, 2000}) {
      const std::vector<double> cpu = philox_times(n, key, 9, 40, laws[k]).to_vector();
      const Tensor gpu = philox_times(n, key, 9, 40, laws[k], DType::Float32, Device::CUDA);
      REQUIRE(gpu.device() == Device::CUDA);
      REQUIRE(gpu.to_vector() == cpu);
    }
  }
}
