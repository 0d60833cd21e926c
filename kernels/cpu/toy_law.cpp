// kernels/cpu/toy_law.cpp — 2-D toy data points and their labels from their Philox places, on the CPU
// (see kernels/toy_law.h): the formulas of toy_point, one point per iteration, the points shared
// between threads (each is a function of its place alone, so the bits do not depend on the split).
#include "kernels/toy_law.h"

#include "kernels/cpu/parallel_for.h"

namespace fm::kernels {
namespace {
// A point costs a few hundred nanoseconds (ten Philox rounds per draw, Box–Muller's log and sincos),
// so a team of threads pays from about this many points.
constexpr std::int64_t kPointsWorthThreads = 128;
}  // namespace

template <typename T>
void toy_points_cpu(T* out, std::int32_t* labels, std::int64_t n, const PhiloxPlace& place, const ToyLaw& law) {
  parallel_for(n, n >= kPointsWorthThreads, [&](std::int64_t i) {
    const std::uint32_t sample = std::uint32_t(place.first_sample + i);
    PhiloxPlaceDraws draws{place.seed, place.stream, place.step, sample};
    const ToyPoint p = toy_point(law, std::int64_t(sample), draws);
    out[2 * i] = T(p.x), out[2 * i + 1] = T(p.y);
    if (labels) labels[i] = p.label;
  });
}

void toy_labels_cpu(std::int32_t* labels, std::int64_t n, const PhiloxPlace& place, const ToyLaw& law, double dropout,
                    std::int32_t null_class, const PhiloxPlace& dropout_place) {
  parallel_for(n, n >= kPointsWorthThreads, [&](std::int64_t i) {
    const std::uint32_t sample = std::uint32_t(place.first_sample + i);
    PhiloxPlaceDraws draws{place.seed, place.stream, place.step, sample};
    const bool dropped = dropout > 0 && label_dropped(dropout_place.seed, dropout_place.stream, dropout_place.step,
                                       std::uint32_t(dropout_place.first_sample + i), dropout);
    labels[i] = dropped ? null_class : toy_point(law, std::int64_t(sample), draws).label;
  });
}

template void toy_points_cpu<float>(float*, std::int32_t*, std::int64_t, const PhiloxPlace&, const ToyLaw&);
template void toy_points_cpu<double>(double*, std::int32_t*, std::int64_t, const PhiloxPlace&, const ToyLaw&);

}  // namespace fm::kernels
