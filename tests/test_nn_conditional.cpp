// tests/test_nn_conditional.cpp — class-conditional velocity models (nn/class_embedding.h, the
// num_classes key of nn/mlp.h and nn/unet.h): the unconditional models are unchanged, the two-argument
// forward is the null class, a sample's output depends on its own label only, the fused no-grad MLP
// path agrees with the graph path, labels held in a RowIndex (a recorded step's) give the host labels'
// numbers, the config round-trips, and bad labels are refused.
// (The float64 gradchecks through the embedding are in test_nn_gradcheck.cpp.)
#include <catch2/catch.hpp>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"
#include "nn/mlp.h"
#include "nn/model_factory.h"
#include "nn/unet.h"
#include "test_util.h"

using namespace fm;
using namespace fm::nn;

namespace {

std::vector<double> row(const Tensor& y, std::int64_t i) {
  const std::vector<double> all = y.to_vector();
  const std::size_t width = std::size_t(y.numel() / y.size(0));
  return {all.begin() + std::ptrdiff_t(std::size_t(i) * width), all.begin() + std::ptrdiff_t(std::size_t(i + 1) * width)};
}

// The conditional model's parameters other than the table equal the unconditional model's (the
// table is drawn last), so conditioning adds a table and changes nothing else.
void require_same_parameters_but_table(const Module& unconditional, const Module& conditional) {
  auto a = unconditional.state_dict();
  auto b = conditional.state_dict();
  REQUIRE(b.count("class_embedding") == 1);
  REQUIRE(b.size() == a.size() + 1);
  for (const auto& [name, tensor] : a) {
    INFO(name);
    REQUIRE(b.count(name) == 1);
    REQUIRE(b.at(name).to_vector() == tensor.to_vector());
  }
}

}  // namespace

TEST_CASE("the U-Net with num_classes draws its other parameters as the unconditional one", "[nn][conditional]") {
  UNetConfig config = UNetConfig::tiny();
  Generator a(5), b(5);
  UNet unconditional(config, a);
  config.num_classes = 10;
  UNet conditional(config, b);
  require_same_parameters_but_table(unconditional, conditional);
  REQUIRE(conditional.class_embedding.shape() == Shape{11, config.time_emb_dim});
  REQUIRE(conditional.num_classes() == 10);
  REQUIRE(conditional.null_class() == 10);
  REQUIRE(unconditional.num_classes() == 0);
  REQUIRE(unconditional.state_dict().count("class_embedding") == 0);
}

TEST_CASE("conditional models: two-argument forward is the null class and labels act per sample", "[nn][conditional]") {
  Generator gen(6);
  MLPConfig mlp_config;
  mlp_config.num_classes = 4;
  mlp_config.class_embedding_dim = 5;
  UNetConfig unet_config = UNetConfig::tiny();
  unet_config.num_classes = 4;
  std::vector<std::shared_ptr<VelocityModel>> models{std::make_shared<VelocityMLP>(mlp_config, gen),
                                                     std::make_shared<UNet>(unet_config, gen)};
  for (auto& model : models) {
    INFO(model->type_name());
    const bool image = model->type_name() == "UNet";
    const Shape shape = image ? Shape{3, 1, 8, 8} : Shape{3, 2};
    Tensor x = randn(shape, gen);
    Tensor t = Tensor::from_vector({0.1, 0.5, 0.9}, {3});
    NoGradGuard no_grad;
    const Tensor plain = model->forward(x, t);
    REQUIRE(plain.to_vector() == model->forward(x, t, {4, 4, 4}).to_vector());
    REQUIRE(plain.to_vector() == model->forward(x, t, std::vector<std::int32_t>{}).to_vector());
    const Tensor a = model->forward(x, t, {0, 1, 2});
    const Tensor b = model->forward(x, t, {0, 3, 2});
    REQUIRE(row(a, 0) == row(b, 0));  // the same label gives the same output, whatever the others get
    REQUIRE(row(a, 2) == row(b, 2));
    REQUIRE(row(a, 1) != row(b, 1));  // a different label changes that sample's velocity
    REQUIRE(row(a, 0) != row(plain, 0));
    // Bad labels: one per sample, each in [0, num_classes].
    REQUIRE_THROWS_AS(model->forward(x, t, {0, 1}), ShapeError);
    REQUIRE_THROWS_AS(model->forward(x, t, {0, 5, 1}), ValueError);
    REQUIRE_THROWS_AS(model->forward(x, t, {0, -1, 1}), ValueError);
    REQUIRE_THROWS_WITH(model->forward(x, t, {0, 5, 1}), Catch::Contains("class label 5"));
  }
}

TEST_CASE("the conditional MLP's fused no-grad path gives the graph path's numbers", "[nn][conditional]") {
  Generator gen(7);
  MLPConfig config;
  config.num_classes = 8;
  config.time_input = "sinusoidal";
  VelocityMLP mlp(config, gen);
  Tensor x = randn({64, 2}, gen);
  Tensor t = rand_uniform({64}, gen);
  std::vector<std::int32_t> labels(64);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = std::int32_t(i % 9);
  const Tensor graph = mlp.forward(x, t, labels);
  NoGradGuard no_grad;
  const Tensor fused = mlp.forward(x, t, labels);
  REQUIRE(fused.to_vector() == graph.to_vector());  // mlp.h: the fused pass is bitwise the Sequential
}

TEST_CASE("num_classes round-trips through the config and the unconditional JSON is unchanged", "[nn][conditional]") {
  Generator gen(8);
  const nlohmann::json mlp_json = {{"type", "mlp"}, {"num_classes", 8}, {"class_embedding_dim", 6}};
  auto mlp = make_velocity_model(mlp_json, gen);
  REQUIRE(mlp->num_classes() == 8);
  REQUIRE(mlp->config_json().at("num_classes") == 8);
  REQUIRE(mlp->config_json().at("class_embedding_dim") == 6);
  auto rebuilt = make_velocity_model(mlp->config_json(), gen);
  REQUIRE(rebuilt->config_json() == mlp->config_json());
  rebuilt->load_state_dict(mlp->state_dict());  // same parameter names and shapes

  nlohmann::json unet_json = UNetConfig::tiny().to_json();
  unet_json["num_classes"] = 10;
  auto unet = make_velocity_model(unet_json, gen);
  REQUIRE(unet->num_classes() == 10);
  REQUIRE(unet->config_json() == unet_json);

  // Unconditional: no new keys (checkpoints and run folders store this JSON), no table.
  REQUIRE_FALSE(MLPConfig{}.to_json().contains("num_classes"));
  REQUIRE_FALSE(MLPConfig{}.to_json().contains("class_embedding_dim"));
  REQUIRE_FALSE(UNetConfig{}.to_json().contains("num_classes"));
  REQUIRE(make_velocity_model({{"type", "mlp"}, {"num_classes", 0}}, gen)->num_classes() == 0);

  REQUIRE_THROWS_WITH(make_velocity_model({{"type", "mlp"}, {"num_classes", -1}}, gen),
                      Catch::Contains("model.num_classes"));
  REQUIRE_THROWS_WITH(make_velocity_model({{"type", "mlp"}, {"class_embedding_dim", 0}}, gen),
                      Catch::Contains("model.class_embedding_dim"));
  REQUIRE_THROWS_WITH(make_velocity_model({{"type", "unet"}, {"num_classes", 2.5}}, gen),
                      Catch::Contains("model.num_classes"));
}

TEST_CASE("labels held in a RowIndex give the host labels' outputs and gradients", "[nn][conditional]") {
  // A recorded training step reads its labels from a buffer on the device (core/ops.h's RowIndex);
  // here the same path on the CPU: forward and the table's gradient are the host labels' bits.
  Generator gen(13);
  MLPConfig mlp_config{2, 16, 2};
  mlp_config.num_classes = 4;
  UNetConfig unet_config = UNetConfig::tiny();
  unet_config.num_classes = 4;
  std::vector<std::shared_ptr<VelocityModel>> models{std::make_shared<VelocityMLP>(mlp_config, gen),
                                                     std::make_shared<UNet>(unet_config, gen)};
  const std::vector<std::int32_t> labels{3, 0, 4};  // 4: the null class
  for (auto& model : models) {
    INFO(model->type_name());
    const Shape shape = model->type_name() == "UNet" ? Shape{3, 1, 8, 8} : Shape{3, 2};
    Tensor x = randn(shape, gen);
    Tensor t = Tensor::from_vector({0.2, 0.6, 0.7}, {3});
    auto table_gradient = [&](const Tensor& out) {
      for (const auto& [name, p] : model->named_parameters()) p.zero_grad();
      sum(out).backward();
      for (const auto& [name, p] : model->named_parameters())
        if (name == "class_embedding") return p.grad().to_vector();
      FAIL("no class_embedding parameter");
      return std::vector<double>{};
    };
    const Tensor from_host = model->forward(x, t, labels);
    const std::vector<double> host_gradient = table_gradient(from_host);
    const Tensor from_index = model->forward(x, t, RowIndex(labels, 5, Device::CPU));
    REQUIRE(from_index.to_vector() == from_host.to_vector());
    REQUIRE(table_gradient(from_index) == host_gradient);
    // One label per sample, checked against at most the table's rows (classes + the null class).
    REQUIRE_THROWS_AS(model->forward(x, t, RowIndex({0, 1}, 5, Device::CPU)), ShapeError);
    REQUIRE_THROWS_WITH(model->forward(x, t, RowIndex({0, 1, 2}, 6, Device::CPU)),
                        Catch::Contains("checked against 6 classes"));
  }
}

TEST_CASE("an unconditional model refuses labels", "[nn][conditional]") {
  Generator gen(9);
  VelocityMLP mlp(MLPConfig{}, gen);
  Tensor x = randn({2, 2}, gen);
  Tensor t = Tensor::from_vector({0.5, 0.5}, {2});
  REQUIRE_THROWS_AS(mlp.forward(x, t, {0, 1}), ConfigError);
  REQUIRE_THROWS_AS(mlp.forward(x, t, RowIndex({0, 1}, 2, Device::CPU)), ConfigError);
  REQUIRE(mlp.forward(x, t, std::vector<std::int32_t>{}).to_vector() == mlp.forward(x, t).to_vector());
}

TEST_CASE("conditional models on CUDA: forward and the class embedding's gradient track the CPU", "[nn][conditional][gpu]") {
  FM_REQUIRE_GPU();
  // The labels travel with the embedding op's call; the table lives on the device with the model.
  const std::vector<std::int32_t> labels{2, 0, 4, 2};  // repeats (the gradient scatter-adds), null = 4
  Generator data(31);
  Tensor t = rand_uniform({4}, data);
  MLPConfig mlp_config;
  mlp_config.num_classes = 4;
  UNetConfig unet_config = UNetConfig::tiny();
  unet_config.num_classes = 4;
  for (int which = 0; which < 2; ++which) {
    Generator init_cpu(30), init_gpu(30);
    std::shared_ptr<VelocityModel> cpu, gpu;
    Tensor x;
    if (which == 0) {
      cpu = std::make_shared<VelocityMLP>(mlp_config, init_cpu);
      gpu = std::make_shared<VelocityMLP>(mlp_config, init_gpu);
      x = randn({4, 2}, data);
    } else {
      cpu = std::make_shared<UNet>(unet_config, init_cpu);
      gpu = std::make_shared<UNet>(unet_config, init_gpu);
      x = randn({4, 1, 8, 8}, data);
    }
    INFO(cpu->type_name());
    gpu->to(Device::CUDA);
    {
      // Without labels the null row is broadcast on the device: bitwise the lookup of the null class.
      NoGradGuard no_grad;
      const Tensor xg = x.to(Device::CUDA), tg = t.to(Device::CUDA);
      REQUIRE(gpu->forward(xg, tg).to_vector() == gpu->forward(xg, tg, {4, 4, 4, 4}).to_vector());
      REQUIRE(gpu->forward(xg.narrow(0, 0, 1), tg.narrow(0, 0, 1)).to_vector() ==
              gpu->forward(xg.narrow(0, 0, 1), tg.narrow(0, 0, 1), {4}).to_vector());
    }
    Tensor y_cpu = cpu->forward(x, t, labels), y_gpu = gpu->forward(x.to(Device::CUDA), t.to(Device::CUDA), labels);
    // float32 in a different summation order (cuBLAS, the GPU's fused multiply-adds): |a − b| <=
    // 1e-4 + 1e-4·|b|, the U-Net CUDA test's 1e-4 for outputs of size O(1); a wrong row of the table
    // (N(0, 1) entries) would be off by O(1).
    const std::vector<double> out_cpu = y_cpu.to_vector(), out_gpu = y_gpu.to(Device::CPU).to_vector();
    FM_REQUIRE_CLOSE(out_gpu.data(), out_cpu.data(), out_cpu.size(), 1e-4, 1e-4);
    sum(mul(y_cpu, y_cpu)).backward();
    sum(mul(y_gpu, y_gpu)).backward();
    Tensor g_cpu, g_gpu;
    for (const auto& [name, p] : cpu->named_parameters()) if (name == "class_embedding") g_cpu = p.grad();
    for (const auto& [name, p] : gpu->named_parameters()) if (name == "class_embedding") g_gpu = p.grad();
    REQUIRE(g_cpu.defined());
    REQUIRE(g_gpu.defined());
    const std::vector<double> grad_cpu = g_cpu.to_vector(), grad_gpu = g_gpu.to(Device::CPU).to_vector();
    FM_REQUIRE_CLOSE(grad_gpu.data(), grad_cpu.data(), grad_cpu.size(), 1e-4, 1e-3);
  }
}
