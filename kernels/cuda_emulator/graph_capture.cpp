// kernels/cuda_emulator/graph_capture.cpp — stream capture and graphs (cudaStreamBeginCapture …
// cudaGraphLaunch) for the emulator's one stream.
//
// On a GPU, work issued to a capturing stream is not run: it becomes the nodes of a graph, which is
// instantiated once and launched as many times as wanted, each launch running the same kernels with
// the same arguments on the same buffers. Here a recorded node is a closure that issues the work again
// (a grid through run_grid, a copy, a memset, a cuBLAS call), kept in the order it was issued: the
// graph of one stream is a chain. What the emulator checks, as the GPU does: a synchronising call
// while capturing invalidates the capture (cudaStreamEndCapture then fails), capture cannot nest,
// and a launch with a bad configuration fails when it is captured, not at replay.
#include <mutex>
#include <vector>

#include "cuda_runtime.h"
#include "emulator_state.h"

struct CUgraph_st {
  std::vector<std::function<void()>> nodes;
};
struct CUgraphExec_st {
  std::vector<std::function<void()>> nodes;  // a copy: the graph may be destroyed after instantiation
};

namespace fm_emu {
namespace {

struct CaptureState {
  std::mutex mutex;
  bool active = false;
  bool invalidated = false;           // a forbidden call was made while capturing
  CUgraph_st* graph = nullptr;        // being built
};
CaptureState& capture() {
  static CaptureState c;
  return c;
}

}  // namespace

bool stream_capturing() {
  CaptureState& c = capture();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.active;
}

void run_or_record(std::function<void()> work) {
  {
    CaptureState& c = capture();
    std::lock_guard<std::mutex> lock(c.mutex);
    if (c.active) {
      if (!c.invalidated) c.graph->nodes.push_back(std::move(work));
      return;
    }
  }
  work();
}

// A call that would wait for the device while the stream captures: on a GPU it returns
// cudaErrorStreamCaptureUnsupported and the capture is invalidated. Returns true when that happened.
bool refuse_while_capturing() {
  CaptureState& c = capture();
  std::lock_guard<std::mutex> lock(c.mutex);
  if (!c.active) return false;
  c.invalidated = true;
  return true;
}

}  // namespace fm_emu

using fm_emu::capture;

cudaError_t cudaStreamBeginCapture(cudaStream_t, cudaStreamCaptureMode) {
  auto& c = capture();
  std::lock_guard<std::mutex> lock(c.mutex);
  if (c.active) return cudaErrorIllegalState;  // no nested capture on one stream
  c.active = true;
  c.invalidated = false;
  c.graph = new CUgraph_st;
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t* graph) {
  auto& c = capture();
  std::lock_guard<std::mutex> lock(c.mutex);
  *graph = nullptr;
  if (!c.active) return cudaErrorIllegalState;
  c.active = false;
  if (c.invalidated) {
    delete c.graph;
    c.graph = nullptr;
    return cudaErrorStreamCaptureInvalidated;
  }
  *graph = c.graph;
  c.graph = nullptr;
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t, cudaStreamCaptureStatus* status) {
  auto& c = capture();
  std::lock_guard<std::mutex> lock(c.mutex);
  *status = !c.active ? cudaStreamCaptureStatusNone
                      : c.invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, std::size_t* count) {
  if (!graph || !count || nodes) return cudaErrorInvalidValue;  // only the count is emulated
  *count = graph->nodes.size();
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (!graph || !exec) return cudaErrorInvalidValue;
  *exec = new CUgraphExec_st{graph->nodes};
  return cudaSuccess;
}

// Runs the nodes in order and returns the first failure of any of them (a bad copy, a kernel fault),
// which a GPU would report at the next synchronisation.
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t) {
  if (!exec) return cudaErrorInvalidValue;
  if (fm_emu::stream_capturing()) return cudaErrorStreamCaptureUnsupported;  // not emulated
  cudaError_t first = cudaSuccess;
  for (const auto& node : exec->nodes) {
    node();
    const cudaError_t e = cudaGetLastError();
    if (first == cudaSuccess) first = e;
  }
  return first;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}
