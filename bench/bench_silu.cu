// bench/bench_silu.cu — SiLU, forward and backward: y = x·σ(x), dx = dy·σ(x)·(1 + x·(1 − σ(x))).
//
// Run:  fmbench silu [--shapes small] [--repeats N] [--csv FILE]     (fmbench --list silu: the table)
//
// Everything but the timing comes from SiLU's case table (cases/silu.h): the shapes (its kBench
// cases; kBenchSmall under --shapes small), the fewest bytes of each pass (memory-bound: "% peak" is
// achieved bandwidth over the measured device-to-device copy bandwidth), the tolerance, and the
// versions — the table's GPU implementations (v1 naive, v2 float4, elementwise = the engine's
// generic map, cudnn = CUDNN_ACTIVATION_SWISH as the baseline). A new version is one entry there.
//
// CPU reference: silu_forward_cpu<double> / silu_backward_cpu<double> (the tests' reference) on the
// same inputs converted to double.
#include <string>
#include <vector>

#include "bench/harness.h"
#include "cases/silu.h"
#include "kernels/activation.h"
#include "kernels/runtime.h"

namespace fm::bench {
namespace {

namespace fk = fm::kernels;
namespace fc = fm::cases;

// The table's implementations that run on this GPU, in its order: the rows of each case.
std::vector<const fc::SiluImpl*> gpu_implementations() {
  std::vector<const fc::SiluImpl*> list;
  for (const fc::SiluImpl& impl : fc::silu_implementations())
    if (fc::impl_on_gpu(impl.kind) && fc::silu_impl_available(impl)) list.push_back(&impl);
  return list;
}
std::string baseline_name() {
  for (const fc::SiluImpl& impl : fc::silu_implementations())
    if (impl.lab_baseline) return impl.name;
  return "";
}

// ---- one shape: forward case, then backward case -------------------------------------------------
void bench_shape(const fc::SiluCase& sc, const Options& options) {
  const std::int64_t n = sc.elements();
  const std::string shape = fc::shape_name(sc);
  if (!options.selects(shape)) return;
  const std::vector<const fc::SiluImpl*> impls = gpu_implementations();
  // Inputs over [-6, 6] cover both tails of σ and its steep middle.
  DeviceArray x = random_array(std::size_t(n), options, -6.f, 6.f), dy = random_array(std::size_t(n), options);
  DeviceArray y(static_cast<std::size_t>(n)), dx(static_cast<std::size_t>(n)),
      y_for_backward(static_cast<std::size_t>(n));

  std::vector<double> x_host = to_double(x.to_host());

  // Forward.
  {
    std::vector<double> y_ref(static_cast<std::size_t>(n));
    fk::silu_forward_cpu<double>(x_host.data(), y_ref.data(), n);
    const Tolerance tolerance = fc::silu_tolerance(y_ref);
    BenchCase c;
    c.op = "silu";
    c.shape = shape;
    c.pass = "fwd";
    c.bound = Bound::Memory;
    c.bytes = fc::silu_forward_bytes(sc);
    c.baseline = baseline_name();
    for (const fc::SiluImpl* impl : impls)
      c.versions.push_back({impl->name, [&, impl] { impl->forward(x.get(), y.get(), sc.dims); }});
    c.poison_outputs = [&] { y.poison(); };
    c.check_outputs = [&] {
      Check check;
      check.compare("y", y.to_host(), y_ref, tolerance);
      return check;
    };
    run_case(c, options);
  }

  // Backward (cuDNN's also needs the forward output y, computed once here and not timed).
  {
    fk::silu_forward_cuda(x.get(), y_for_backward.get(), n);
    std::vector<double> dx_ref(static_cast<std::size_t>(n));
    {
      const std::vector<double> dy_host = to_double(dy.to_host());
      fk::silu_backward_cpu<double>(x_host.data(), dy_host.data(), dx_ref.data(), n);
    }
    x_host = std::vector<double>();  // release host memory before the next shape
    const Tolerance tolerance = fc::silu_tolerance(dx_ref);
    BenchCase c;
    c.op = "silu";
    c.shape = shape;
    c.pass = "bwd";
    c.bound = Bound::Memory;
    c.bytes = fc::silu_backward_bytes(sc);
    c.baseline = baseline_name();
    for (const fc::SiluImpl* impl : impls)
      c.versions.push_back(
          {impl->name, [&, impl] { impl->backward(x.get(), y_for_backward.get(), dy.get(), dx.get(), sc.dims); }});
    c.poison_outputs = [&] { dx.poison(); };
    c.check_outputs = [&] {
      Check check;
      check.compare("dx", dx.to_host(), dx_ref, tolerance);
      return check;
    };
    run_case(c, options);
  }
}

}  // namespace

void run_silu(const Options& options) {
  measured_peaks(options);
  print_table_header("silu: y = x*sigmoid(x) and its backward (memory-bound: % of copy bandwidth)",
                     "x base = cudnn (CUDNN_ACTIVATION_SWISH) median / version median; GB/s counts 8 B/elt fwd, "
                     "12 B/elt bwd for every version");
  const unsigned wanted = options.small_shapes ? fc::kBenchSmall : fc::kBench;
  for (const fc::SiluCase& c : fc::silu_cases())
    if (c.uses & wanted) bench_shape(c, options);
}

}  // namespace fm::bench
