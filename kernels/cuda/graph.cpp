// kernels/cuda/graph.cpp — CudaGraph (kernels/runtime.h): capture the work issued on the one stream,
// then replay it as a single graph launch.
//
// Why: a training step of the U-Net issues a few hundred small kernels, each costing the host a few
// microseconds to launch; replaying a captured graph costs one launch for all of them. The capture
// runs in CUDA's "relaxed" mode, so the caching allocator may still call cudaMalloc while it records
// (a cold cache); the allocator keeps every block the capture touches for the graph
// (kernels/cuda/graph_memory.h), and waits or host copies during a capture throw instead of
// silently recording something the replay could not redo.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/graph_memory.h"
#include "kernels/cuda/library_handles.h"
#include "kernels/runtime.h"
#include "kernels/runtime_counters.h"

namespace fm::kernels {

struct CudaGraph::Impl {
  cudaGraphExec_t exec = nullptr;
  graph_memory::Pool* pool = nullptr;  // the blocks the replays write into
  bool capturing = false;
  std::size_t operations = 0;

  // Drops the instantiated graph and hands its memory back to the cache.
  void drop() {
    if (exec) cudaGraphExecDestroy(exec);
    exec = nullptr;
    graph_memory::release(pool);
    pool = nullptr;
    operations = 0;
  }
};

CudaGraph::CudaGraph() : impl_(std::make_unique<Impl>()) {}

// Also what the destructor does when an exception unwound past a capture in progress.
void CudaGraph::abandon() {
  if (impl_->capturing && graph_memory::capturing() == impl_->pool) {
    cudaGraph_t partial = nullptr;
    cudaStreamEndCapture(cuda_stream(), &partial);
    if (partial) cudaGraphDestroy(partial);
    cudaGetLastError();
    graph_memory::end_capture();
  }
  impl_->capturing = false;
  if (!impl_->exec) impl_->drop();  // an abandoned capture's memory goes back; a finished graph stays
}

CudaGraph::~CudaGraph() {
  abandon();
  impl_->drop();
}

void CudaGraph::begin_capture() {
  FM_CHECK(!graph_memory::capturing(), DeviceError,
           "CudaGraph::begin_capture: another graph is being captured (captures do not nest)");
  impl_->drop();
  impl_->capturing = false;
  cudaStream_t stream = cuda_stream();
  // cuBLAS's handle (and its fixed workspace) made now: creating it inside the capture would
  // allocate and wait there.
  cublas_handle();
  impl_->pool = graph_memory::create_pool();
  graph_memory::begin_capture(impl_->pool);
  const cudaError_t err = cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed);
  if (err != cudaSuccess) {
    graph_memory::end_capture();
    cudaGetLastError();
    throw DeviceError(cat("CudaGraph::begin_capture: cudaStreamBeginCapture failed (", cudaGetErrorString(err), ")"));
  }
  impl_->capturing = true;
}

void CudaGraph::end_capture() {
  FM_CHECK(impl_->capturing, DeviceError, "CudaGraph::end_capture: no capture was begun");
  impl_->capturing = false;
  // A wait or host copy during the capture already ended it (and threw); nothing left to end.
  FM_CHECK(graph_memory::capturing() == impl_->pool, DeviceError,
           "CudaGraph::end_capture: the capture was abandoned (something waited for the device or copied "
           "from the host while it was being recorded)");
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(cuda_stream(), &graph);
  graph_memory::end_capture();
  FM_CUDA_CHECK(ended);
  std::size_t nodes = 0;
  cudaError_t err = cudaGraphGetNodes(graph, nullptr, &nodes);
  if (err == cudaSuccess) err = cudaGraphInstantiate(&impl_->exec, graph, 0);
  cudaGraphDestroy(graph);  // the instantiated graph stands on its own
  if (err != cudaSuccess) {
    cudaGetLastError();
    throw DeviceError(cat("CudaGraph::end_capture: cannot instantiate the captured graph (", cudaGetErrorString(err), ")"));
  }
  impl_->operations = nodes;
}

void CudaGraph::replay() {
  FM_CHECK(impl_->exec, DeviceError, "CudaGraph::replay: nothing captured (call begin_capture, then end_capture)");
  FM_CUDA_CHECK(cudaGraphLaunch(impl_->exec, cuda_stream()));
  FM_CUDA_CHECK(cudaGetLastError());  // a node that failed to launch (the emulator reports it here too)
  counters::add(counters::cells.graph_replays);
}

bool CudaGraph::captured() const { return impl_->exec != nullptr; }
bool CudaGraph::capturing() const { return impl_->capturing && graph_memory::capturing() == impl_->pool; }
std::size_t CudaGraph::operations() const { return impl_->operations; }

}  // namespace fm::kernels
