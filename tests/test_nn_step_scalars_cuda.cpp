// tests/test_nn_step_scalars_cuda.cpp — the optimiser's bookkeeping for a recorded training step
// (flow/trainer.cpp replays it as one CUDA graph): step_scalars_ahead says when one row of scalars
// serves the fused pass and gives that row, and count_replayed_update advances Adam's step counts and
// the EMA's update count as running the pass would. Both find each parameter's state by its place in
// the flat layout, remembered from the last fused pass (nn/flat_parameters.h, EntriesByPosition), so
// the cases below replace that state (a loaded optimiser or EMA state) between the calls.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "nn/ema.h"
#include "nn/optim.h"
#include "optimizer_fixtures.h"
#include "test_util.h"

using namespace fm;
using fm::test::fill_gradients;

namespace {

// Adam's row at step count t (1: the first step), as the per-parameter code's double arithmetic
// gives it, converted to float as the launch arguments are.
void require_adam_row(const StepScalars& row, std::int64_t t, double lr) {
  INFO("step count " << t);
  REQUIRE(row.lr == float(lr));
  REQUIRE(row.neg_step_size == float(-lr / (1.0 - std::pow(0.9, double(t)))));
  REQUIRE(row.inverse_sqrt_bias2 == float(1.0 / std::sqrt(1.0 - std::pow(0.999, double(t)))));
}

// Every parameter's Adam step count in the optimiser's state dict.
std::vector<double> adam_steps(const nn::Adam& optimizer) {
  std::vector<double> steps;
  for (const auto& [key, tensor] : optimizer.state_dict())
    if (key.size() > 5 && key.compare(key.size() - 5, 5, ".step") == 0) steps.push_back(tensor.item());
  return steps;
}

}  // namespace

TEST_CASE("Adam's step-scalar row on CUDA follows its step counts through replays and a loaded state",
          "[nn][optim][replay][gpu]") {
  FM_REQUIRE_GPU();
  fm::test::FlatCudaMlp made(3);
  nn::VelocityMLP& model = made.model;
  nn::Adam optimizer(model);
  nn::EMA ema(model, 0.99, /*warmup=*/true);
  const double lr = 1e-3;
  const std::size_t tensors = model.parameters().size();
  StepScalars row;

  // Before any fused pass the moments are not in their flat buffers: no row.
  fill_gradients(model, 1);
  REQUIRE_FALSE(optimizer.step_scalars_ahead(model, &ema, 0, lr, row));
  optimizer.clip_step_and_update_ema_async(model, 1.0, &ema);
  REQUIRE(optimizer.step_scalars_ahead(model, &ema, 0, lr, row));
  require_adam_row(row, 2, lr);
  REQUIRE(row.ema_decay == float(ema.decay_at(1)));
  REQUIRE(row.ema_one_minus_decay == float(1.0 - ema.decay_at(1)));
  REQUIRE(optimizer.step_scalars_ahead(model, &ema, 3, lr, row));
  require_adam_row(row, 5, lr);
  REQUIRE(row.ema_decay == float(ema.decay_at(4)));

  // Two replays: the counts advance as two passes would, and the next row follows them.
  optimizer.count_replayed_update(&ema);
  optimizer.count_replayed_update(&ema);
  REQUIRE(adam_steps(optimizer) == std::vector<double>(tensors, 3.0));
  REQUIRE(ema.num_updates() == 3);
  REQUIRE(optimizer.step_scalars_ahead(model, &ema, 0, lr, row));
  require_adam_row(row, 4, lr);

  // A loaded state (other counts) replaces every entry: its moments are copies, not views of the flat
  // buffers, so no row until a fused pass puts them back; the counts then go on from the loaded ones.
  nn::StateDict state = optimizer.state_dict();
  for (auto& [key, tensor] : state)
    if (key.size() > 5 && key.compare(key.size() - 5, 5, ".step") == 0) tensor = Tensor::scalar(7.0, DType::Float64);
  optimizer.load_state_dict(state);
  REQUIRE_FALSE(optimizer.step_scalars_ahead(model, &ema, 0, lr, row));
  optimizer.count_replayed_update(&ema);  // the loaded entries advance, not the replaced ones
  REQUIRE(adam_steps(optimizer) == std::vector<double>(tensors, 8.0));
  optimizer.uncount_recorded_update(&ema);
  REQUIRE(adam_steps(optimizer) == std::vector<double>(tensors, 7.0));
  optimizer.clip_step_and_update_ema_async(model, 1.0, &ema);
  REQUIRE(adam_steps(optimizer) == std::vector<double>(tensors, 8.0));
  REQUIRE(optimizer.step_scalars_ahead(model, &ema, 0, lr, row));
  require_adam_row(row, 9, lr);

  // A new layout (the model flattened again, as Module::to does): no row until a fused pass binds the
  // state to it, the states then found at their places in the new layout; the counts go on.
  model.flatten_parameters();
  fill_gradients(model, 5);
  REQUIRE_FALSE(optimizer.step_scalars_ahead(model, &ema, 0, lr, row));
  optimizer.clip_step_and_update_ema_async(model, 1.0, &ema);
  REQUIRE(adam_steps(optimizer) == std::vector<double>(tensors, 9.0));
  REQUIRE(optimizer.step_scalars_ahead(model, &ema, 0, lr, row));
  require_adam_row(row, 10, lr);
  optimizer.count_replayed_update(&ema);
  REQUIRE(adam_steps(optimizer) == std::vector<double>(tensors, 10.0));

  // A parameter at another count (a second loaded state) splits the pass in two groups: no row.
  state = optimizer.state_dict();
  state.at(state.begin()->first.substr(0, state.begin()->first.rfind('.')) + ".step") =
      Tensor::scalar(2.0, DType::Float64);
  optimizer.load_state_dict(state);
  optimizer.clip_step_and_update_ema_async(model, 1.0, &ema);
  REQUIRE_FALSE(optimizer.step_scalars_ahead(model, &ema, 0, lr, row));
}

TEST_CASE("the step-scalar row on CUDA needs the EMA's shadows in their flat buffer",
          "[nn][optim][ema][replay][gpu]") {
  FM_REQUIRE_GPU();
  fm::test::FlatCudaMlp made(4);
  nn::VelocityMLP& model = made.model;
  nn::Adam optimizer(model);
  nn::EMA ema(model, 0.99);
  StepScalars row;
  fill_gradients(model, 2);
  optimizer.clip_step_and_update_ema_async(model, 1.0, &ema);
  REQUIRE(optimizer.step_scalars_ahead(model, &ema, 0, 1e-3, row));
  // A loaded EMA state makes each shadow a new tensor: the next pass copies them back in first.
  ema.load_state_dict(ema.state_dict());
  REQUIRE_FALSE(optimizer.step_scalars_ahead(model, &ema, 0, 1e-3, row));
  REQUIRE(optimizer.step_scalars_ahead(model, nullptr, 0, 1e-3, row));  // without the EMA it serves
  optimizer.clip_step_and_update_ema_async(model, 1.0, &ema);
  REQUIRE(optimizer.step_scalars_ahead(model, &ema, 0, 1e-3, row));
  REQUIRE(row.ema_decay == 0.99f);
}

TEST_CASE("SGD's step-scalar row on CUDA: none at a first momentum step or after a loaded state",
          "[nn][optim][replay][gpu]") {
  FM_REQUIRE_GPU();
  fm::test::FlatCudaMlp made(5);
  nn::VelocityMLP& model = made.model;
  nn::SGDOptions options;
  options.lr = 0.05;
  options.momentum = 0.9;
  nn::SGD optimizer(model, options);
  StepScalars row;
  fill_gradients(model, 3);
  REQUIRE_FALSE(optimizer.step_scalars_ahead(model, nullptr, 0, 0.05, row));  // no momentum buffers yet
  optimizer.clip_step_and_update_ema_async(model, 1.0, nullptr);
  REQUIRE(optimizer.step_scalars_ahead(model, nullptr, 0, 0.05, row));
  REQUIRE(row.lr == 0.05f);
  optimizer.load_state_dict(optimizer.state_dict());  // the buffers become copies
  REQUIRE_FALSE(optimizer.step_scalars_ahead(model, nullptr, 0, 0.05, row));
  optimizer.clip_step_and_update_ema_async(model, 1.0, nullptr);
  REQUIRE(optimizer.step_scalars_ahead(model, nullptr, 0, 0.05, row));
}
