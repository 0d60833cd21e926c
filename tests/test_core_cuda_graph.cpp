// tests/test_core_cuda_graph.cpp — captured work (kernels::CudaGraph, kernels/runtime.h):
//   * a forward and backward pass captured once and replayed on new inputs gives, bit for bit, what
//     running it eagerly gives, and a replay launches nothing from the host but the graph;
//   * the memory a capture used stays the graph's: tensors made after the capture never get it, and
//     replays leave them alone; destroying the graph hands it back to the cache; a buffer made
//     before the capture and freed during it is not reused by the capture (replays repeat); a block
//     two graphs use stays theirs until both are gone; a graph may be destroyed during another's
//     capture;
//   * a wait for the device or a copy from the host inside a capture throws and abandons the capture,
//     and the stream then works as before; captures do not nest; nothing captured, nothing to replay.
#include <catch2/catch.hpp>

#include <memory>
#include <set>
#include <vector>

#include "core/ops.h"
#include "core/random.h"
#include "kernels/runtime.h"
#include "test_util.h"

#ifdef FM_CUDA_EMULATOR
#include <cuda_runtime.h>  // the emulator's: fm_emu::grids_run()
#endif

using namespace fm;
using kernels::CudaGraph;

namespace {

Tensor on_cuda(const Shape& shape, std::uint64_t seed) {
  Generator gen(seed);
  return randn(shape, gen).to(Device::CUDA);
}

// The pass under test: a small layer, its loss, and the gradients of both parameters.
Tensor loss_and_gradients(const Tensor& x, const Tensor& w, const Tensor& b) {
  Tensor y = silu(matmul(x, w) + b);
  Tensor loss = sum(y * y);
  loss.backward();
  return loss;
}

}  // namespace

TEST_CASE("a captured forward and backward, replayed on new inputs, is bitwise the eager pass", "[gpu]") {
  FM_REQUIRE_GPU();
  Tensor x = on_cuda({8, 16}, 1);
  Tensor w = on_cuda({16, 4}, 2).set_requires_grad();
  Tensor b = on_cuda({4}, 3).set_requires_grad();
  Tensor loss_out = Tensor::zeros({}, DType::Float32, Device::CUDA);  // made before: outlives the graph
  loss_and_gradients(x, w, b);  // warms the allocator's cache, as a training step's first steps do
  w.zero_grad();
  b.zero_grad();

  CudaGraph graph;
  const kernels::RuntimeCounters before_capture = kernels::runtime_counters();
  graph.begin_capture();
  REQUIRE(graph.capturing());
  loss_out.copy_(loss_and_gradients(x, w, b));
  graph.end_capture();
  const kernels::RuntimeCounters captured = kernels::runtime_counters() - before_capture;
  REQUIRE(graph.captured());
  REQUIRE_FALSE(graph.capturing());
  REQUIRE(captured.kernel_launches > 0);
  REQUIRE(graph.operations() >= captured.kernel_launches);  // + the copy, any library calls
  REQUIRE(captured.host_to_device_copies == 0);
  REQUIRE(captured.synchronizations == 0);

  for (std::uint64_t seed : {10u, 11u, 12u}) {
    x.copy_(on_cuda({8, 16}, seed));  // new input, into the buffer the graph reads
#ifdef FM_CUDA_EMULATOR
    const std::uint64_t grids_before = fm_emu::grids_run();
#endif
    const kernels::RuntimeCounters before = kernels::runtime_counters();
    graph.replay();
    const kernels::RuntimeCounters replay = kernels::runtime_counters() - before;
    REQUIRE(replay.graph_replays == 1);
    REQUIRE(replay.kernel_launches == 0);
    REQUIRE(replay.allocator_requests == 0);
    REQUIRE(replay.host_to_device_copies == 0);
    REQUIRE(replay.synchronizations == 0);
#ifdef FM_CUDA_EMULATOR
    REQUIRE(fm_emu::grids_run() - grids_before == captured.kernel_launches);  // every recorded grid ran
#endif
    // The same pass run eagerly on copies of the parameters.
    Tensor w_eager = w.detach().clone().set_requires_grad();
    Tensor b_eager = b.detach().clone().set_requires_grad();
    Tensor loss_eager = loss_and_gradients(x, w_eager, b_eager);
    REQUIRE(loss_out.to_vector() == loss_eager.to_vector());
    REQUIRE(w.grad().to_vector() == w_eager.grad().to_vector());
    REQUIRE(b.grad().to_vector() == b_eager.grad().to_vector());
    graph.replay();  // again on the same input: the same bits
    REQUIRE(loss_out.to_vector() == loss_eager.to_vector());
    REQUIRE(w.grad().to_vector() == w_eager.grad().to_vector());
  }
}

TEST_CASE("the memory a capture used stays the graph's until the graph is destroyed", "[gpu]") {
  FM_REQUIRE_GPU();
  Tensor x = on_cuda({64}, 4);
  Tensor out = Tensor::zeros({64}, DType::Float32, Device::CUDA);
  std::set<const void*> graph_buffers;
  auto pass = [&] {
    Tensor doubled = x * x;  // temporaries, freed inside the capture
    Tensor shifted = doubled + 1.0;
    graph_buffers.insert(doubled.raw_data());
    graph_buffers.insert(shifted.raw_data());
    out.copy_(shifted);
  };
  pass();  // eager: the cache now holds blocks of this size
  graph_buffers.clear();
  {
    CudaGraph graph;
    graph.begin_capture();
    pass();
    graph.end_capture();
    REQUIRE(graph_buffers.size() >= 1);

    // Tensors made now are not given the graph's blocks, and replays do not write into them.
    std::vector<Tensor> later;
    for (int i = 0; i < 4; ++i) {
      later.push_back(Tensor::full({64}, 7.0 + i, DType::Float32, Device::CUDA));
      REQUIRE(graph_buffers.count(later.back().raw_data()) == 0);
    }
    graph.replay();
    graph.replay();
    for (int i = 0; i < 4; ++i) REQUIRE(later[std::size_t(i)].to_vector() == std::vector<double>(64, 7.0 + i));
    REQUIRE(out.to_vector() == (x * x + 1.0).to_vector());  // the same kernels, run eagerly
  }
  if (!kernels::cuda_allocator_direct()) {
    // Destroyed: its blocks are back in the cache, so the same pass allocates nothing new.
    const kernels::RuntimeCounters before = kernels::runtime_counters();
    pass();
    REQUIRE((kernels::runtime_counters() - before).device_allocations == 0);
  }
}

TEST_CASE("a buffer made before a capture and freed during it is not reused by the capture", "[gpu]") {
  FM_REQUIRE_GPU();
  Tensor x = on_cuda({64}, 6);
  Tensor dropped = on_cuda({64}, 7);  // read by the recording, then let go inside it
  Tensor out = Tensor::zeros({64}, DType::Float32, Device::CUDA);
  const std::vector<double> expected = (dropped * 2.0 + (x + 1.0)).to_vector();
  CudaGraph graph;
  graph.begin_capture();
  {
    Tensor doubled = dropped * 2.0;
    const void* dropped_block = dropped.raw_data();
    dropped = Tensor();              // freed during the capture
    Tensor shifted = x + 1.0;        // same size: must not be given dropped's block
    REQUIRE(shifted.raw_data() != dropped_block);
    out.copy_(doubled + shifted);
  }
  graph.end_capture();
  for (int replay = 0; replay < 3; ++replay) {
    graph.replay();
    REQUIRE(out.to_vector() == expected);
  }
}

TEST_CASE("a block two graphs use stays theirs until both are gone", "[gpu]") {
  FM_REQUIRE_GPU();
  Tensor x = on_cuda({64}, 8);
  Tensor out = Tensor::zeros({64}, DType::Float32, Device::CUDA);
  auto first = std::make_unique<CudaGraph>();
  first->begin_capture();
  Tensor shared = x * 2.0;  // made by the first graph
  first->end_capture();
  const void* shared_block = shared.raw_data();
  CudaGraph second;
  second.begin_capture();
  shared.copy_(x + 5.0);    // the second graph writes it too, then lets it go
  out.copy_(shared);
  shared = Tensor();
  second.end_capture();
  first.reset();            // the first owner is gone; the second still replays into the block
  std::vector<Tensor> later;
  for (int i = 0; i < 8; ++i) {
    later.push_back(Tensor::full({64}, 7.0, DType::Float32, Device::CUDA));
    REQUIRE(later.back().raw_data() != shared_block);
  }
  second.replay();
  REQUIRE(out.to_vector() == (x + 5.0).to_vector());
  for (const Tensor& t : later) REQUIRE(t.to_vector() == std::vector<double>(64, 7.0));
}

TEST_CASE("a graph destroyed while another is being captured leaves that capture intact", "[gpu]") {
  FM_REQUIRE_GPU();
  Tensor x = on_cuda({64}, 9);
  auto old_graph = std::make_unique<CudaGraph>();
  old_graph->begin_capture();
  { Tensor temporary = x * 2.0; }  // the old graph's block, given back when it is destroyed
  old_graph->end_capture();
  CudaGraph graph;
  graph.begin_capture();
  Tensor tripled = x * 3.0;
  old_graph.reset();  // with the direct allocator its block is freed only after this capture ends
  graph.end_capture();
  graph.replay();
  REQUIRE(tripled.to_vector() == (x * 3.0).to_vector());
}

TEST_CASE("a wait or a host copy inside a capture throws and abandons it, and captures do not nest", "[gpu]") {
  FM_REQUIRE_GPU();
  Tensor x = on_cuda({32}, 5);
  CudaGraph graph;
  REQUIRE_THROWS_AS(graph.replay(), DeviceError);  // nothing captured yet
  REQUIRE_THROWS_AS(graph.end_capture(), DeviceError);

  graph.begin_capture();
  Tensor doubled = x * 2.0;
  REQUIRE_THROWS_WITH(doubled.to_vector(), Catch::Contains("a copy to the host inside a CUDA graph capture"));
  REQUIRE_FALSE(graph.capturing());
  REQUIRE_THROWS_AS(graph.end_capture(), DeviceError);
  REQUIRE_FALSE(graph.captured());

  graph.begin_capture();
  Tensor from_host = Tensor::zeros({32});
  REQUIRE_THROWS_WITH(x.copy_(from_host), Catch::Contains("a copy from the host inside a CUDA graph capture"));
  REQUIRE_FALSE(graph.capturing());
  graph.begin_capture();
  REQUIRE_THROWS_WITH(kernels::cuda_synchronize(), Catch::Contains("cuda_synchronize inside a CUDA graph capture"));

  // Afterwards the stream runs work as before.
  REQUIRE((x * 2.0).to_vector() == (x.to(Device::CPU) * 2.0).to_vector());

  CudaGraph outer, inner;
  outer.begin_capture();
  REQUIRE_THROWS_WITH(inner.begin_capture(), Catch::Contains("captures do not nest"));
  Tensor tripled = x * 3.0;
  outer.end_capture();
  outer.replay();
  REQUIRE(tripled.to_vector() == (x * 3.0).to_vector());
}
