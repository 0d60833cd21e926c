// tests/test_nn_fused_optim.cpp — the flat, fused optimiser step (nn/flat_parameters.h,
// kernels/optimizer.h) against the per-parameter Tensor-op code it replaces, bit for bit.
//
// Two copies of one small network train side by side on the same batches: the reference copy runs
// clip_grad_norm, step() and EMA::update() one tensor op after another; the other copy is flattened
// and runs the fused pass. After every step the parameters, gradients, optimiser state, EMA shadows
// and gradient norms must be the same bits (memcmp, so even the sign of a zero counts) — except the
// CUDA fused norm, a two-stage double reduction checked against the float64 norm within a stated
// tolerance (its clip is then replayed bit for bit). One
// parameter receives a gradient only on some steps, so the fused pass also meets parameters without
// a gradient and Adam step counts that differ between parameters.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>

#include "core/autograd.h"
#include "core/host_allocator.h"
#include "core/io/tensor_io.h"
#include "core/ops.h"
#include "core/random.h"
#include "nn/activation.h"
#include "nn/ema.h"
#include "nn/flat_parameters.h"
#include "nn/linear.h"
#include "nn/optim.h"
#include "test_util.h"

using namespace fm;
using namespace fm::nn;

namespace {

// A three-layer MLP plus `sometimes`, a parameter that only even steps use.
class TestNet : public Module {
 public:
  explicit TestNet(std::uint64_t seed) : Module("TestNet") {
    Generator gen(seed);
    body = register_module(
        "body", std::make_shared<Sequential>(std::vector<std::shared_ptr<Layer>>{
                    std::make_shared<Linear>(4, 32, gen), std::make_shared<SiLU>(), std::make_shared<Linear>(32, 32, gen),
                    std::make_shared<SiLU>(), std::make_shared<Linear>(32, 3, gen)}));
    sometimes = randn({3}, gen);
    register_parameter("sometimes", &sometimes);
  }
  Tensor forward(const Tensor& x, bool use_sometimes) {
    Tensor out = body->forward(x);
    return use_sometimes ? out + sometimes : out;
  }
  std::shared_ptr<Sequential> body;
  Tensor sometimes;
};

// Loss and gradients of one step (the same batch for both copies).
void backward_step(TestNet& net, int step, Device device) {
  Generator gen(1000 + std::uint64_t(step));
  Tensor x = randn({16, 4}, gen).to(device);
  Tensor target = randn({16, 3}, gen).to(device);
  if (net.dtype() == DType::Float64) x = x.to(DType::Float64), target = target.to(DType::Float64);
  Tensor loss = mean(square(net.forward(x, step % 2 == 0) - target));
  loss.backward();
}

std::vector<unsigned char> bytes_of(const Tensor& t) {
  Tensor host = t.detach().to(Device::CPU).contiguous();
  std::vector<unsigned char> out(std::size_t(host.numel()) * dtype_size(host.dtype()));
  if (!out.empty()) std::memcpy(out.data(), host.raw_data(), out.size());
  return out;
}

void require_same_bits(const StateDict& actual, const StateDict& expected, const char* what) {
  REQUIRE(actual.size() == expected.size());
  for (const auto& [name, tensor] : expected) {
    INFO(what << " '" << name << "'");
    REQUIRE(actual.count(name));
    REQUIRE(actual.at(name).shape() == tensor.shape());
    REQUIRE(bytes_of(actual.at(name)) == bytes_of(tensor));
  }
}

StateDict gradients_of(const Module& module) {
  StateDict grads;
  for (const auto& [name, parameter] : module.named_parameters())
    if (parameter.grad().defined()) grads[name] = parameter.grad();
  return grads;
}

// The global gradient norm from the gradients copied to the CPU in float64: every square and sum in
// double (the exact norm of the float gradients, to double rounding).
double float64_grad_norm(const Module& module) {
  double sum = 0;
  for (const auto& [name, parameter] : module.named_parameters()) {
    if (!parameter.grad().defined()) continue;
    for (double g : parameter.grad().to(Device::CPU).to(DType::Float64).to_vector()) sum += g * g;
  }
  return std::sqrt(sum);
}

// clip_grad_norm with the norm given (the CUDA fused step's): the same scaling rule and Tensor ops.
double clip_with_norm(Module& module, double max_norm, double norm) {
  NoGradGuard no_grad;
  const double coefficient = max_norm / (norm + 1e-6);
  if (std::isfinite(norm) && coefficient < 1.0)
    for (const Tensor& parameter : module.parameters())
      if (parameter.grad().defined()) parameter.set_grad(parameter.grad() * coefficient);
  return norm;
}

// The CUDA norm: the exact squared norm rounded once to float (relative 2⁻²⁴, plus the double sums'
// n·2⁻⁵³), then √ (which halves the relative error): 2⁻²⁴ relative on the norm holds with room.
constexpr double kDeviceNormTolerance = 0x1p-24;

using MakeOptimizer = std::function<std::unique_ptr<Optimizer>(Module&)>;

enum class FusedVia { OneCall, SeparateCalls };

// Trains a reference copy and a flat copy for `steps` steps and compares them after each one.
void compare_fused_with_reference(const MakeOptimizer& make_optimizer, double max_norm, bool with_ema,
                                  FusedVia via = FusedVia::OneCall, DType dtype = DType::Float32, int steps = 6,
                                  Device device = Device::CPU) {
  TestNet reference(7), fused(7);
  for (TestNet* net : {&reference, &fused}) {
    net->to(dtype);
    net->to(device);
  }
  fused.flatten_parameters();
  REQUIRE(fused.flat_parameters() != nullptr);
  require_same_bits(fused.state_dict(), reference.state_dict(), "parameter after flattening");
  auto reference_optimizer = make_optimizer(reference), fused_optimizer = make_optimizer(fused);
  std::unique_ptr<EMA> reference_ema, fused_ema;
  if (with_ema) {
    reference_ema = std::make_unique<EMA>(reference, 0.9, /*warmup=*/true);
    fused_ema = std::make_unique<EMA>(fused, 0.9, /*warmup=*/true);
  }
  for (int step = 0; step < steps; ++step) {
    INFO("step " << step);
    const double lr = 0.01 * (1.0 + 0.1 * step);  // a changing learning rate, as a schedule sets it
    for (Optimizer* optimizer : {reference_optimizer.get(), fused_optimizer.get()}) optimizer->set_lr(lr);
    reference_optimizer->zero_grad();
    fused_optimizer->zero_grad();
    backward_step(reference, step, device);
    backward_step(fused, step, device);
    require_same_bits(gradients_of(fused), gradients_of(reference), "gradient");

    double fused_norm = 0;
    if (via == FusedVia::OneCall) {
      fused_norm = fused_optimizer->clip_step_and_update_ema(fused, max_norm, fused_ema.get());
    } else {  // the old calls on a flat model: step() and update() take their fused paths
      fused_norm = clip_grad_norm(fused, max_norm);
      fused_optimizer->step();
      if (fused_ema) fused_ema->update();
    }
    // On CUDA the fused norm is the two-stage double reduction (kernels/optimizer.h), not the bits of
    // the per-parameter float sums: it must be within float rounding of the float64 norm, and the
    // reference then clips with that norm, so the rest of the step is compared bit for bit.
    const bool device_norm = device == Device::CUDA && via == FusedVia::OneCall;
    double exact_norm = 0;
    if (device_norm) exact_norm = float64_grad_norm(reference);
    const double reference_norm =
        device_norm ? clip_with_norm(reference, max_norm, fused_norm) : clip_grad_norm(reference, max_norm);
    reference_optimizer->step();
    if (reference_ema) reference_ema->update();
    INFO("norms " << std::hexfloat << fused_norm << " " << reference_norm);
    if (device_norm)
      REQUIRE(std::abs(fused_norm - exact_norm) <= kDeviceNormTolerance * exact_norm);
    else
      REQUIRE(std::memcmp(&fused_norm, &reference_norm, sizeof(double)) == 0);
    REQUIRE(fused.flat_parameters() != nullptr);
    require_same_bits(fused.state_dict(), reference.state_dict(), "parameter");
    require_same_bits(gradients_of(fused), gradients_of(reference), "gradient after the step");
    require_same_bits(fused_optimizer->state_dict(), reference_optimizer->state_dict(), "optimiser state");
    if (with_ema) {
      require_same_bits(fused_ema->state_dict(), reference_ema->state_dict(), "EMA shadow");
      REQUIRE(fused_ema->num_updates() == reference_ema->num_updates());
    }
  }
}

MakeOptimizer adam(double weight_decay) {
  return [=](Module& m) {
    AdamOptions options;
    options.weight_decay = weight_decay;
    return std::make_unique<Adam>(m, options);
  };
}
MakeOptimizer adamw(double weight_decay) {
  return [=](Module& m) {
    AdamOptions options = AdamW::default_options();
    options.weight_decay = weight_decay;
    return std::make_unique<AdamW>(m, options);
  };
}
MakeOptimizer sgd(double momentum, double dampening, double weight_decay, bool nesterov) {
  return [=](Module& m) {
    SGDOptions options;
    options.momentum = momentum;
    options.dampening = dampening;
    options.weight_decay = weight_decay;
    options.nesterov = nesterov;
    return std::make_unique<SGD>(m, options);
  };
}

const double kClips[] = {INFINITY, 0.05};  // never clips; clips every step (the norms are ~0.1–1)

}  // namespace

TEST_CASE("fused Adam and Adam with L2 equal the per-parameter code bitwise, with and without clipping and EMA",
          "[nn][optim][fused]") {
  for (double max_norm : kClips)
    for (bool ema : {false, true})
      for (double weight_decay : {0.0, 0.01}) {
        INFO("max_norm " << max_norm << ", ema " << ema << ", weight_decay " << weight_decay);
        compare_fused_with_reference(adam(weight_decay), max_norm, ema);
      }
}

TEST_CASE("fused AdamW equals the per-parameter code bitwise", "[nn][optim][fused]") {
  for (double max_norm : kClips)
    for (bool ema : {false, true}) {
      INFO("max_norm " << max_norm << ", ema " << ema);
      compare_fused_with_reference(adamw(0.1), max_norm, ema);
    }
}

TEST_CASE("fused SGD (plain, momentum with dampening, Nesterov, weight decay) equals the per-parameter code bitwise",
          "[nn][optim][fused]") {
  for (double max_norm : kClips)
    for (bool ema : {false, true}) {
      INFO("max_norm " << max_norm << ", ema " << ema);
      compare_fused_with_reference(sgd(0, 0, 0, false), max_norm, ema);
      compare_fused_with_reference(sgd(0.9, 0.1, 0.01, false), max_norm, ema);
      compare_fused_with_reference(sgd(0.9, 0, 0.01, true), max_norm, ema);
    }
}

TEST_CASE("step() and EMA::update() on a flat model take the fused path with the same bits", "[nn][optim][fused]") {
  for (double max_norm : kClips) {
    compare_fused_with_reference(adamw(0.1), max_norm, true, FusedVia::SeparateCalls);
    compare_fused_with_reference(sgd(0.9, 0, 0.01, true), max_norm, true, FusedVia::SeparateCalls);
  }
}

TEST_CASE("the fused step in float64 equals the per-parameter code bitwise", "[nn][optim][fused]") {
  compare_fused_with_reference(adam(0.01), 0.05, true, FusedVia::OneCall, DType::Float64);
  compare_fused_with_reference(sgd(0.9, 0.1, 0.01, false), 0.05, true, FusedVia::OneCall, DType::Float64);
}

TEST_CASE("the fused step allocates no tensor memory on the CPU", "[nn][optim][fused]") {
  for (const MakeOptimizer& make : {adamw(0.1), sgd(0.9, 0, 0.01, true)}) {
    TestNet net(3);
    net.flatten_parameters();
    auto optimizer = make(net);
    EMA ema(net, 0.99);
    for (int step = 0; step < 4; ++step) {
      optimizer->zero_grad();
      backward_step(net, 2 * step, Device::CPU);  // even steps: every parameter has a gradient
      const std::size_t before = host_memory::allocation_count();
      optimizer->clip_step_and_update_ema(net, 0.05, &ema);
      const std::size_t allocations = host_memory::allocation_count() - before;
      INFO("step " << step);
      if (step >= 1) REQUIRE(allocations == 0);  // the first step builds the flat state buffers
    }
  }
}

TEST_CASE("gradients accumulate in the flat buffer with the default path's values", "[nn][optim][fused]") {
  TestNet reference(11), flat(11);
  flat.flatten_parameters();
  // Two backward passes without zero_grad: the second adds into the first.
  for (int pass = 0; pass < 2; ++pass) {
    backward_step(reference, pass, Device::CPU);
    backward_step(flat, pass, Device::CPU);
  }
  require_same_bits(gradients_of(flat), gradients_of(reference), "accumulated gradient");
  const FlatParameters& layout = *flat.flat_parameters();
  for (std::size_t k = 0; k < layout.size(); ++k) {
    INFO(layout.name(k));
    REQUIRE(layout.parameter(k).grad().impl() == layout.gradient_home(k).impl());  // in place, no new tensor
  }
  // zero_grad drops the gradients; the next backward copies into the homes again.
  flat.zero_grad();
  reference.zero_grad();
  backward_step(reference, 3, Device::CPU);
  backward_step(flat, 3, Device::CPU);
  require_same_bits(gradients_of(flat), gradients_of(reference), "gradient after zero_grad");
  REQUIRE(!flat.sometimes.grad().defined());  // odd step: no gradient reached it, as before
}

TEST_CASE("a flat model keeps its handles, state dict and placement working", "[nn][optim][fused]") {
  TestNet net(5);
  Tensor handle = net.sometimes;  // taken before flattening
  const StateDict before = net.state_dict();
  StateDict snapshot;
  for (const auto& [name, tensor] : before) snapshot[name] = tensor.clone();
  net.flatten_parameters();
  const FlatParameters* layout = net.flat_parameters();
  REQUIRE(layout != nullptr);
  REQUIRE(handle.impl() == net.sometimes.impl());  // the same tensor, now in the flat buffer
  REQUIRE(handle.storage() == layout->values().storage());
  require_same_bits(net.state_dict(), snapshot, "parameter");

  // load_state_dict writes into the flat buffer; the layout stays intact.
  TestNet other(6);
  net.load_state_dict(other.state_dict());
  REQUIRE(net.flat_parameters() == layout);
  require_same_bits(net.state_dict(), other.state_dict(), "loaded parameter");

  // to() keeps the model flat (a new layout at the new place) and the values unchanged.
  net.to(DType::Float64);
  REQUIRE(net.flat_parameters() != nullptr);
  REQUIRE(net.flat_parameters()->values().dtype() == DType::Float64);
  net.to(DType::Float32);
  REQUIRE(net.flat_parameters() != nullptr);
  require_same_bits(net.state_dict(), other.state_dict(), "parameter after a round trip through float64");

  // EMA swap writes the flat parameters in place and back.
  EMA ema(net, 0.5);
  AdamW optimizer(net);
  backward_step(net, 0, Device::CPU);
  optimizer.clip_step_and_update_ema(net, INFINITY, &ema);
  const StateDict trained = [&] {
    StateDict copy;
    for (const auto& [name, tensor] : net.state_dict()) copy[name] = tensor.clone();
    return copy;
  }();
  const StateDict shadows = ema.state_dict();  // copies
  ema.swap();
  require_same_bits(net.state_dict(), shadows, "swapped-in shadow");
  ema.swap();
  require_same_bits(net.state_dict(), trained, "swapped-back parameter");
  REQUIRE(net.flat_parameters() != nullptr);
}

TEST_CASE("fused step on CUDA: the kernel equals the CPU's, and the per-parameter CUDA code, bitwise",
          "[nn][optim][fused][gpu]") {
  FM_REQUIRE_GPU();
  // The reference on the GPU is the per-parameter code on the GPU, clipping with the fused step's
  // norm (within kDeviceNormTolerance of the float64 norm; see compare_fused_with_reference).
  for (double max_norm : kClips) {
    compare_fused_with_reference(adamw(0.1), max_norm, true, FusedVia::OneCall, DType::Float32, 5, Device::CUDA);
    compare_fused_with_reference(sgd(0.9, 0.1, 0.01, false), max_norm, true, FusedVia::OneCall, DType::Float32, 5,
                                 Device::CUDA);
  }
  // The same gradients on both devices, no clipping (the GPU's norm sums in another order): the
  // update kernels must agree to the bit.
  for (const MakeOptimizer& make : {adam(0.01), adamw(0.1), sgd(0.9, 0, 0.01, true)}) {
    TestNet cpu(9), gpu(9);
    gpu.to(Device::CUDA);
    cpu.flatten_parameters();
    gpu.flatten_parameters();
    auto cpu_optimizer = make(cpu), gpu_optimizer = make(gpu);
    EMA cpu_ema(cpu, 0.9), gpu_ema(gpu, 0.9);
    for (int step = 0; step < 5; ++step) {
      INFO("step " << step);
      cpu_optimizer->zero_grad();
      backward_step(cpu, step, Device::CPU);
      for (const auto& [name, parameter] : cpu.named_parameters()) {
        Tensor grad = parameter.grad();
        if (!grad.defined()) continue;
        for (const auto& [gpu_name, gpu_parameter] : gpu.named_parameters())
          if (gpu_name == name) gpu_parameter.set_grad(grad.to(Device::CUDA));
      }
      cpu_optimizer->clip_step_and_update_ema(cpu, INFINITY, &cpu_ema);
      gpu_optimizer->clip_step_and_update_ema(gpu, INFINITY, &gpu_ema);
      require_same_bits(gpu.state_dict(), cpu.state_dict(), "parameter");
      require_same_bits(gpu_optimizer->state_dict(), cpu_optimizer->state_dict(), "optimiser state");
      require_same_bits(gpu_ema.state_dict(), cpu_ema.state_dict(), "EMA shadow");
      for (const auto& [name, parameter] : gpu.named_parameters()) parameter.zero_grad();
    }
  }
}

TEST_CASE("a flat model's checkpoint files are byte for byte the reference's, and resume bitwise",
          "[nn][optim][fused]") {
  test::TempDir dir("fm_fused_ckpt");
  auto read_bytes = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  auto all_state = [](const Module& model, const Optimizer& optimizer, const EMA& ema) {
    io::NamedTensors state;
    for (const auto& [name, tensor] : model.state_dict()) state["model." + name] = tensor;
    for (const auto& [name, tensor] : optimizer.state_dict()) state["optimizer." + name] = tensor;
    for (const auto& [name, tensor] : ema.state_dict()) state["ema." + name] = tensor;
    return state;
  };
  TestNet reference(21), flat(21);
  flat.flatten_parameters();
  AdamW reference_optimizer(reference), flat_optimizer(flat);
  EMA reference_ema(reference, 0.9), flat_ema(flat, 0.9);
  auto train = [](TestNet& net, Optimizer& optimizer, EMA& ema, bool fused, int first, int last) {
    for (int step = first; step < last; ++step) {
      optimizer.zero_grad();
      backward_step(net, step, Device::CPU);
      if (fused) {
        optimizer.clip_step_and_update_ema(net, 0.05, &ema);
      } else {
        clip_grad_norm(net, 0.05);
        optimizer.step();
        ema.update();
      }
    }
  };
  train(reference, reference_optimizer, reference_ema, false, 0, 4);
  train(flat, flat_optimizer, flat_ema, true, 0, 4);
  const std::string reference_path = (dir.path / "reference.safetensors").string();
  const std::string flat_path = (dir.path / "flat.safetensors").string();
  io::save_safetensors(reference_path, all_state(reference, reference_optimizer, reference_ema));
  io::save_safetensors(flat_path, all_state(flat, flat_optimizer, flat_ema));
  REQUIRE(read_bytes(flat_path) == read_bytes(reference_path));

  // Resume a fresh flat model from the reference's checkpoint; both continue for three steps.
  TestNet resumed(99);
  resumed.flatten_parameters();
  AdamW resumed_optimizer(resumed);
  EMA resumed_ema(resumed, 0.9);
  io::NamedTensors loaded = io::load_safetensors(reference_path).tensors;
  StateDict model_state, optimizer_state, ema_state;
  for (const auto& [key, tensor] : loaded) {
    const std::size_t dot = key.find('.');
    const std::string part = key.substr(0, dot), name = key.substr(dot + 1);
    (part == "model" ? model_state : part == "optimizer" ? optimizer_state : ema_state)[name] = tensor;
  }
  resumed.load_state_dict(model_state);
  resumed_optimizer.load_state_dict(optimizer_state);
  resumed_ema.load_state_dict(ema_state);
  resumed_ema.set_num_updates(reference_ema.num_updates());
  REQUIRE(resumed.flat_parameters() != nullptr);
  train(reference, reference_optimizer, reference_ema, false, 4, 7);
  train(resumed, resumed_optimizer, resumed_ema, true, 4, 7);
  require_same_bits(all_state(resumed, resumed_optimizer, resumed_ema),
                    all_state(reference, reference_optimizer, reference_ema), "resumed state");
}
