// bench/bench_attention.cu — the core of the U-Net's multi-head self-attention, per (batch, head):
// O = softmax(Q·Kᵀ·scale)·V with the row log-sum-exp saved, and its backward (dQ, dK, dV).
// Formulas and layout ([B, H, L, D] contiguous): kernels/attention.h.
//
// Run:  fmbench attention [--shapes small] [--repeats N] [--csv FILE]     (fmbench --list attention)
//
// Everything but the timing comes from attention's case table (cases/attention.h): the shapes (its
// kBench cases — the default U-Net's three attention layers at batch 256, 4 heads; kBenchSmall under
// --shapes small), the FLOPs and fewest bytes of each pass (compute-bound on paper: "% peak" is
// against the FP32 SGEMM rate), the tolerances, and the versions — the table's GPU implementations
// (flash, unfused cuBLAS as the baseline, and both with TF32 and bfloat16 products on the tensor cores,
// checked against attention_tensor_core_tolerance). A new version is one entry there. Beside them,
// "flash bf16-act": the flash kernels on bfloat16 activations (q, k, v, O and the gradients at 2 bytes,
// as a U-Net with model.activations = "bfloat16" runs them) on the same inputs rounded, held to the
// bfloat16 tensor-core tolerance (64·2^-8 of the scale: a smoke bound that covers the one rounding of
// each output, and in the backward the O and lse of its own forward, which it reads instead of the
// reference's: O rounded once moves each D_i by about 2^-9 relative).
//
// CPU reference: attention_{forward,backward}_cpu<double> (the tests' reference); the backward
// reference takes the float O and lse the engine's GPU forward (flash) saved, as every float GPU
// backward does.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "bench/harness.h"
#include "cases/attention.h"
#include "kernels/attention.h"
#include "kernels/runtime.h"

namespace fm::bench {
namespace {

namespace fk = fm::kernels;
namespace fc = fm::cases;

// The table's GPU implementations, in its order: the rows of each case.
std::vector<const fc::AttentionImpl*> gpu_implementations() {
  std::vector<const fc::AttentionImpl*> list;
  for (const fc::AttentionImpl& impl : fc::attention_implementations())
    if (fc::impl_on_gpu(impl.kind)) list.push_back(&impl);
  return list;
}
std::string baseline_name() {
  for (const fc::AttentionImpl& impl : fc::attention_implementations())
    if (impl.lab_baseline) return impl.name;
  return "";
}
// The GPU version the engine trains with: its forward saves the O and lse every backward reads.
const fc::AttentionImpl& engine_gpu_implementation() {
  for (const fc::AttentionImpl* impl : gpu_implementations())
    if (impl->engine) return *impl;
  return *gpu_implementations().front();
}

void bench_shape(const fc::AttentionCase& s, const Options& options) {
  const int B = s.B, H = s.H, L = s.L, D = s.D;
  const std::size_t n = s.elements(), rows = s.rows();
  const float scale = fc::attention_scale(s);
  const std::string shape = fc::shape_name(s);
  if (!options.selects(shape)) return;
  std::printf("   # %s: %s\n", shape.c_str(), s.where);
  const std::vector<const fc::AttentionImpl*> impls = gpu_implementations();

  DeviceArray q = random_array(n, options, -fc::kAttentionQkRange, fc::kAttentionQkRange),
              k = random_array(n, options, -fc::kAttentionQkRange, fc::kAttentionQkRange),
              v = random_array(n, options), dout = random_array(n, options);
  DeviceArray o(n), lse(rows), dq(n), dk(n), dv(n);
  DeviceBf16Array q16(q.to_host()), k16(k.to_host()), v16(v.to_host()), dout16(dout.to_host()), o16(n), dq16(n),
      dk16(n), dv16(n);
  DeviceArray lse16(rows);  // the bfloat16 forward's log-sum-exp (float)
  constexpr const char* kBf16Version = "flash bf16-act";
  constexpr double kBf16Rounding = 0x1p-8;
  const std::vector<double> q_host = to_double(q.to_host()), k_host = to_double(k.to_host()),
                            v_host = to_double(v.to_host());

  // ---- forward
  {
    std::vector<double> o_ref(n), lse_ref(rows);
    fk::attention_forward_cpu<double>(q_host.data(), k_host.data(), v_host.data(), o_ref.data(), lse_ref.data(), B, H,
                                      L, D, double(scale));
    BenchCase c;
    c.op = "attention";
    c.shape = shape;
    c.pass = "fwd";
    c.bound = Bound::Compute;
    c.flops = fc::attention_forward_flops(s);
    c.bytes = fc::attention_forward_bytes(s);
    c.baseline = baseline_name();
    for (const fc::AttentionImpl* impl : impls) {
      c.versions.push_back(
          {impl->name, [&, impl] { impl->forward(q.get(), k.get(), v.get(), o.get(), lse.get(), B, H, L, D, scale); }});
      if (impl->input_rounding != 0)
        c.versions.back().check = [&, impl] {
          Check check;
          check.compare("O", o.to_host(), o_ref, fc::attention_tensor_core_tolerance(o_ref, impl->input_rounding));
          check.compare("lse", lse.to_host(), lse_ref,
                        fc::attention_tensor_core_tolerance(lse_ref, impl->input_rounding));
          return check;
        };
    }
    c.versions.push_back({kBf16Version, [&] {
                            fk::attention_forward_cuda_flash(q16.get(), k16.get(), v16.get(), o16.get(), lse16.get(),
                                                             B, H, L, D, scale);
                          }});
    c.versions.back().check = [&] {
      Check check;
      check.compare("O", o16.to_host(), o_ref, fc::attention_tensor_core_tolerance(o_ref, kBf16Rounding));
      check.compare("lse", lse16.to_host(), lse_ref, fc::attention_tensor_core_tolerance(lse_ref, kBf16Rounding));
      return check;
    };
    c.poison_outputs = [&] {
      o.poison();
      lse.poison();
      o16.poison();
      lse16.poison();
    };
    c.check_outputs = [&] {
      Check check;
      check.compare("O", o.to_host(), o_ref, fc::attention_output_tolerance(o_ref));
      check.compare("lse", lse.to_host(), lse_ref, fc::attention_lse_tolerance(lse_ref));
      return check;
    };
    run_case(c, options);
  }

  // ---- backward: O and lse saved by the engine's forward (as in training), on both sides
  engine_gpu_implementation().forward(q.get(), k.get(), v.get(), o.get(), lse.get(), B, H, L, D, scale);
  kernels::cuda_synchronize();
  // The bfloat16 row's own forward. It needs the bfloat16 tensor cores (sm_80+): where it throws, the
  // row is left out of the backward with the reason, and the other rows still run.
  bool bf16_forward_ran = true;
  try {
    fk::attention_forward_cuda_flash(q16.get(), k16.get(), v16.get(), o16.get(), lse16.get(), B, H, L, D, scale);
    kernels::cuda_synchronize();
  } catch (const std::exception& e) {
    bf16_forward_ran = false;
    std::printf("   # %s bwd: %s left out, its forward failed: %s\n", shape.c_str(), kBf16Version, e.what());
  }
  {
    const std::vector<double> o_saved = to_double(o.to_host()), lse_saved = to_double(lse.to_host()),
                              dout_host = to_double(dout.to_host());
    std::vector<double> dq_ref(n), dk_ref(n), dv_ref(n);
    fk::attention_backward_cpu<double>(q_host.data(), k_host.data(), v_host.data(), o_saved.data(), dout_host.data(),
                                       lse_saved.data(), dq_ref.data(), dk_ref.data(), dv_ref.data(), B, H, L, D,
                                       double(scale));
    BenchCase c;
    c.op = "attention";
    c.shape = shape;
    c.pass = "bwd";
    c.bound = Bound::Compute;
    c.flops = fc::attention_backward_flops(s);
    c.bytes = fc::attention_backward_bytes(s);
    c.baseline = baseline_name();
    for (const fc::AttentionImpl* impl : impls) {
      c.versions.push_back({impl->name, [&, impl] {
                              impl->backward(q.get(), k.get(), v.get(), o.get(), dout.get(), lse.get(), dq.get(),
                                             dk.get(), dv.get(), B, H, L, D, scale);
                            }});
      if (impl->input_rounding != 0)
        c.versions.back().check = [&, impl] {
          const double u = impl->input_rounding;
          Check check;
          check.compare("dQ", dq.to_host(), dq_ref, fc::attention_tensor_core_tolerance(dq_ref, u));
          check.compare("dK", dk.to_host(), dk_ref, fc::attention_tensor_core_tolerance(dk_ref, u));
          check.compare("dV", dv.to_host(), dv_ref, fc::attention_tensor_core_tolerance(dv_ref, u));
          return check;
        };
    }
    if (bf16_forward_ran) {
      c.versions.push_back({kBf16Version, [&] {
                              fk::attention_backward_cuda_flash(q16.get(), k16.get(), v16.get(), o16.get(),
                                                                dout16.get(), lse16.get(), dq16.get(), dk16.get(),
                                                                dv16.get(), B, H, L, D, scale);
                            }});
      c.versions.back().check = [&] {
        Check check;
        check.compare("dQ", dq16.to_host(), dq_ref, fc::attention_tensor_core_tolerance(dq_ref, kBf16Rounding));
        check.compare("dK", dk16.to_host(), dk_ref, fc::attention_tensor_core_tolerance(dk_ref, kBf16Rounding));
        check.compare("dV", dv16.to_host(), dv_ref, fc::attention_tensor_core_tolerance(dv_ref, kBf16Rounding));
        return check;
      };
    }
    c.poison_outputs = [&] {
      dq.poison();
      dk.poison();
      dv.poison();
      dq16.poison();
      dk16.poison();
      dv16.poison();
    };
    c.check_outputs = [&] {
      Check check;
      check.compare("dQ", dq.to_host(), dq_ref, fc::attention_gradient_tolerance(dq_ref));
      check.compare("dK", dk.to_host(), dk_ref, fc::attention_gradient_tolerance(dk_ref));
      check.compare("dV", dv.to_host(), dv_ref, fc::attention_gradient_tolerance(dv_ref));
      return check;
    };
    run_case(c, options);
  }
}

}  // namespace

void run_attention(const Options& options) {
  measured_peaks(options);
  print_table_header("attention: softmax(Q K^T / sqrt(D)) V per head, FP32 tensors; TF32/bf16 rows: tensor-core products "
                     "(compute-bound: % of SGEMM FP32 peak)",
                     "x base = unfused cuBLAS median / version median; FLOPs 4*B*H*L^2*D fwd, 8*B*H*L^2*D bwd");
  const unsigned wanted = options.small_shapes ? fc::kBenchSmall : fc::kBench;
  for (const fc::AttentionCase& s : fc::attention_cases())
    if (s.uses & wanted) bench_shape(s, options);
}

}  // namespace fm::bench
