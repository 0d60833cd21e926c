// cases/case_table.h — what every op's case table is made of.
//
// One table per op (cases/<op>.h): the shapes it is checked and timed on, including the awkward
// ones; the tolerance of a float result against the float64 reference, with the reason for its size;
// the FLOPs and the fewest bytes of each pass; and the list of the op's implementations (CPU
// reference, CPU fast path, CUDA naive, CUDA custom versions, cuDNN/cuBLAS). The tests
// (tests/test_kernel_<op>.cpp) iterate cases × implementations for the forward, every backward and
// the gradcheck; the kernel lab (bench/bench_<op>.cu) iterates the same table for speed; `fmbench
// --list` prints it. A new kernel version is one entry in its op's implementation list: it is then
// tested and benchmarked with no further code.
//
// Layer: beside tests/ and bench/ (it lists kernels/ functions; no Tensor, no CUDA types, so both
// the C++20 tests and the nvcc-compiled lab include it).
#pragma once
#include <cstdio>
#include <string>
#include <vector>

namespace fm::cases {

// Where a case is used, as bit flags: the tests (every implementation against the float64
// reference), the float64 central-difference gradcheck of the CPU reference (small shapes only: it
// runs the forward twice per input element), the lab's default run (the seed U-Net at batch 256),
// the lab's `--shapes small` run.
enum CaseUse : unsigned { kTest = 1u << 0, kGradcheck = 1u << 1, kBench = 1u << 2, kBenchSmall = 1u << 3 };

// The kinds of implementation an op lists, from the slowest and plainest to the library.
enum class ImplKind { CpuReference, CpuFast, CudaNaive, CudaCustom, Library };
const char* impl_kind_name(ImplKind kind);  // "cpu reference", ..., "library"
bool impl_on_gpu(ImplKind kind);            // CudaNaive, CudaCustom, Library

// A float result r is accepted against the float64 reference e when, per element,
//   |r − e| <= atol + rtol·|e|     (NaN never passes)
struct Tolerance {
  double atol = 0, rtol = 0;
};

// The two rules the ops use, in one place:
//
// float_sum_tolerance(K): an output that is a sum of K products of values in [-1, 1], compared with
// a reference summed in another order (or in double). Each partial sum is a random walk of size
// ~√i/3 and each float addition rounds it by up to FLT_EPSILON/2, so the error of the whole sum is
// typically ~FLT_EPSILON·K/8; atol = 1e-6 + 4·FLT_EPSILON·K is ~30× that (no flaky failures over
// hundreds of thousands of elements) and still far below one wrong, missing or doubled tap
// (|x·w| ~ 0.25 on average); rtol = 1e-5 allows a few ulps of the element's own size.
Tolerance float_sum_tolerance(long terms);
//
// scaled_tolerance(ref, scale_rel, elem_rel): atol = scale_rel·max(max|ref|, 1), rtol = elem_rel.
// Entries that cancel to ~0 are judged by the size of the whole output, since they carry the
// rounding of the O(max) terms they came from; the floor of 1 is the scale of the test inputs (an
// output that is exactly 0 in exact arithmetic still carries rounding of O(1) terms).
Tolerance scaled_tolerance(const std::vector<double>& reference, double scale_rel, double elem_rel);

// ---- the listing (`fmbench --list`, and the tests' INFO lines) --------------------------------
struct ListedCase {
  std::string shape;   // as the lab prints it: "256x64x28x28 -> 64 k3s1p1"
  std::string where;   // which U-Net layer, or why the shape is awkward
  unsigned uses = 0;   // CaseUse bits
  double flops = 0;    // of the forward pass (0: not counted; memory-bound ops)
  double bytes = 0;    // fewest bytes the forward must move through device memory
};
struct ListedImpl {
  std::string name;    // as the lab's "version" column and the tests' INFO name it
  ImplKind kind = ImplKind::CudaCustom;
  std::string passes;  // "fwd, bwd-data, bwd-weight"
};
struct OpListing {
  std::string op;                        // "conv2d"
  std::vector<ListedCase> cases;
  std::vector<ListedImpl> implementations;
  std::vector<std::string> tolerances;   // "fwd: float_sum_tolerance(C_in·kh·kw): ..."
};

// Every op's listing, in the lab's order (cases/all_ops.cpp).
std::vector<OpListing> all_op_listings();
// The listing as text: per op, its cases (uses, shape, where, GFLOP, MB), implementations and
// tolerances. `only` empty: every op; else the op of that name.
void print_listing(std::FILE* out, const std::vector<OpListing>& listings, const std::string& only = "");
std::string uses_string(unsigned uses);  // "test gradcheck bench small"

}  // namespace fm::cases
