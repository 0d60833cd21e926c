// tests/test_nn_gradient_sync.cpp — the pieces of data-parallel training that one process can check:
// the backward observer (core/autograd.h) reports each parameter exactly once, when its gradient is
// final; gradient buckets (nn/gradient_sync.h) tile the flat buffer in whole parameters from the
// end; and on one rank the synchronised backward leaves the gradients bitwise as a plain backward.
// The collectives themselves run under mpirun in tests/test_data_parallel.cpp; NCCL's all-reduce is
// checked here on one GPU when a machine has one.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "core/autograd.h"
#include "core/distributed.h"
#include "core/ops.h"
#include "core/random.h"
#include "kernels/nccl_comm.h"
#include "nn/activation.h"
#include "nn/flat_parameters.h"
#include "nn/gradient_sync.h"
#include "nn/linear.h"
#include "test_util.h"

using namespace fm;
using namespace fm::nn;

namespace {

// Three linear layers; the input is used twice (a skip), so gradients reach some tensors along two paths.
class SkipNet : public Module {
 public:
  explicit SkipNet(std::uint64_t seed) : Module("SkipNet") {
    Generator gen(seed);
    first = register_module("first", std::make_shared<Linear>(6, 32, gen));
    second = register_module("second", std::make_shared<Linear>(32, 32, gen));
    last = register_module("last", std::make_shared<Linear>(32, 6, gen));
  }
  Tensor forward(const Tensor& x) {
    Tensor h = silu(first->forward(x));
    Tensor g = silu(second->forward(h)) + h;
    return last->forward(g) + x;
  }
  std::shared_ptr<Linear> first, second, last;
};

Tensor loss_of(SkipNet& net, std::uint64_t seed) {
  Generator gen(seed);
  Tensor x = randn({16, 6}, gen);
  Tensor y = net.forward(x);
  return mean(y * y);
}

std::vector<float> values_of(const Tensor& t) {
  Tensor host = t.contiguous().to(Device::CPU);
  return std::vector<float>(host.data<float>(), host.data<float>() + host.numel());
}

}  // namespace

TEST_CASE("backward observer: every parameter reported once, with its final gradient") {
  SkipNet net(3);
  std::map<const TensorImpl*, std::string> names;
  for (auto& [name, p] : net.named_parameters()) names[p.impl()] = name;
  std::map<std::string, int> reports;
  std::map<std::string, std::vector<float>> gradient_when_reported;
  std::int64_t calls = 0;
  {
    BackwardObserverGuard watch([&](const std::vector<TensorImpl*>& leaves) {
      ++calls;
      for (TensorImpl* leaf : leaves) {
        auto found = names.find(leaf);
        if (found == names.end()) continue;
        ++reports[found->second];
        gradient_when_reported[found->second] = values_of(leaf->grad);
      }
    });
    loss_of(net, 11).backward();
  }
  CHECK(calls > std::int64_t(names.size()));  // called after every node, not only those finishing leaves
  for (auto& [name, p] : net.named_parameters()) {
    INFO(name);
    CHECK(reports[name] == 1);
    CHECK(gradient_when_reported[name] == values_of(p.grad()));  // nothing was added after the report
  }
  // Outside the guard the observer is gone.
  reports.clear();
  for (auto& [name, p] : net.named_parameters()) p.zero_grad();
  loss_of(net, 11).backward();
  CHECK(reports.empty());
}

TEST_CASE("gradient buckets tile the flat buffer in whole parameters, last parameters first") {
  SkipNet net(4);
  net.flatten_parameters();
  const FlatParameters& layout = *net.flat_parameters();
  for (std::int64_t bucket_bytes : {std::int64_t(1), std::int64_t(1000), std::int64_t(4096), std::int64_t(1) << 30}) {
    INFO("bucket_bytes " << bucket_bytes);
    const std::vector<GradientBucket> buckets = make_gradient_buckets(layout, bucket_bytes);
    REQUIRE_FALSE(buckets.empty());
    std::int64_t expected_end = layout.total();
    std::size_t expected_parameter = layout.size();
    for (std::size_t b = 0; b < buckets.size(); ++b) {
      const GradientBucket& bucket = buckets[b];
      CHECK(bucket.end == expected_end);  // contiguous, from the end of the buffer down
      for (std::size_t k : bucket.parameters) CHECK(k == --expected_parameter);
      CHECK(bucket.begin == layout.offset(bucket.parameters.back()));
      // Every bucket but the last reached bucket_bytes (a new one starts only then).
      if (b + 1 < buckets.size()) CHECK((bucket.end - bucket.begin) * 4 >= bucket_bytes);
      expected_end = bucket.begin;
    }
    CHECK(expected_end == 0);
    CHECK(expected_parameter == 0);
    if (bucket_bytes == 1) CHECK(buckets.size() == layout.size());  // one parameter each
    if (bucket_bytes == (std::int64_t(1) << 30)) CHECK(buckets.size() == 1);
  }
  CHECK_THROWS_AS(make_gradient_buckets(layout, 0), ValueError);
}

TEST_CASE("one rank: a synchronised backward starts every bucket during backward and changes no gradient bit") {
  REQUIRE_FALSE(dist::active());  // a plain test process is one rank of one
  SkipNet plain(5), synced(5);
  plain.flatten_parameters();
  synced.flatten_parameters();
  loss_of(plain, 21).backward();
  GradientSync sync(*synced.flat_parameters(), /*bucket_bytes=*/2048);
  REQUIRE(sync.buckets().size() > 1);
  for (int pass = 0; pass < 2; ++pass) {  // twice: the per-pass counts are reset
    for (auto& [name, p] : synced.named_parameters()) p.zero_grad();
    {
      BackwardObserverGuard watch = sync.watch_backward();
      loss_of(synced, 21).backward();
    }
    sync.finish();
  }
  CHECK(sync.buckets_started_in_backward() == 2 * std::int64_t(sync.buckets().size()));
  CHECK(sync.buckets_started_after_backward() == 0);
  const std::vector<float> a = values_of(plain.flat_parameters()->grads()), b = values_of(synced.flat_parameters()->grads());
  REQUIRE(a.size() == b.size());
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

TEST_CASE("a parameter without a gradient is refused by name when its bucket starts") {
  SkipNet net(6);
  net.flatten_parameters();
  GradientSync sync(*net.flat_parameters(), /*bucket_bytes=*/1);
  {
    BackwardObserverGuard watch = sync.watch_backward();
    // Only `last` takes part: the buckets of first/second never become ready during backward.
    Generator gen(1);
    Tensor h = randn({4, 32}, gen);
    mean(net.last->forward(h)).backward();
  }
  CHECK_THROWS_WITH(sync.finish(), Catch::Contains("got no gradient") && Catch::Contains("second."));
}

// The NCCL path on the one GPU a lent machine has: a communicator of one rank, an all-reduce queued
// right behind a kernel that writes the buffer. The sum over one rank is the buffer itself, so any
// other result means the communication stream did not wait for the compute stream (or NCCL failed).
// Multi-GPU correctness and scaling need a machine with several GPUs (docs/11_training_on_many_gpus.md).
TEST_CASE("NCCL all-reduce on one GPU: waits for the compute stream and returns the buffer", "[gpu]") {
  FM_REQUIRE_GPU();
  if (!dist::built_with_nccl()) {  // a CUDA build without NCCL, or the emulator build without MPI
    fm::test::report_skipped(Catch::getResultCapture().getCurrentTestName().c_str(), "this build has no NCCL");
    return;
  }
#ifdef FM_WITH_NCCL
  char id[kernels::kNcclIdBytes];
  kernels::nccl_unique_id(id);
  kernels::nccl_init(0, 1, id);
  Generator gen(7);
  const Tensor x = randn({std::int64_t(1) << 22}, gen);
  Tensor doubled = (x.to(Device::CUDA) * 2.0).contiguous();  // queued on the compute stream
  const std::uint64_t ticket = kernels::nccl_allreduce_sum_start(doubled.data<float>(), doubled.numel());
  kernels::nccl_wait(ticket);
  Tensor after = (doubled + 1.0).to(Device::CPU);  // queued after the wait
  const std::vector<float> expected = values_of(x * 2.0 + 1.0), got = values_of(after);
  CHECK(std::memcmp(expected.data(), got.data(), got.size() * sizeof(float)) == 0);
  kernels::nccl_finalize();
#endif
}
