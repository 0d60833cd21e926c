// kernels/cuda/nccl_comm.cpp — NCCL all-reduce on a communication stream (see kernels/nccl_comm.h).
// Built when the build has NCCL (FM_WITH_NCCL): the CUDA toolkit's, or in the emulator build with MPI
// the emulated one (kernels/cuda_emulator/nccl.h), which runs this file's stream and event logic as is.
#ifdef FM_WITH_NCCL
#include "kernels/nccl_comm.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>
#include <deque>
#include <string>

#include "kernels/cuda/cuda_check.h"
#include "kernels/runtime.h"

namespace fm::kernels {
namespace {

static_assert(sizeof(ncclUniqueId) == kNcclIdBytes, "kNcclIdBytes must match ncclUniqueId");

// One-line DeviceErrors (core/error.h), like every CUDA failure: the tools print them and exit 2.
void check(ncclResult_t result, const char* what) {
  FM_CHECK(result == ncclSuccess, DeviceError, "NCCL: ", what, " failed: ", ncclGetErrorString(result),
           result == ncclInvalidUsage ? " (two ranks on one GPU? expected one GPU per rank on each machine)" : "");
}
void check(cudaError_t result, const char* what) {
  FM_CHECK(result == cudaSuccess, DeviceError, "NCCL set-up: ", what, " failed: ", cudaGetErrorString(result));
}

struct NcclState {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;  // the communication stream
  // One "reduction done" event per started reduction, destroyed once the compute stream waits on it
  // (a few per step: cheap next to the reduction). Tickets count up.
  std::deque<cudaEvent_t> done;
  std::uint64_t first_ticket = 0;  // the ticket of done.front()
};
NcclState& state() {
  static NcclState s;
  return s;
}

}  // namespace

void nccl_unique_id(char id[kNcclIdBytes]) {
  ncclUniqueId unique;
  check(ncclGetUniqueId(&unique), "ncclGetUniqueId");
  std::memcpy(id, &unique, kNcclIdBytes);
}

void nccl_init(int rank, int world_size, const char id[kNcclIdBytes]) {
  NcclState& s = state();
  if (s.comm) return;
  cuda_stream();  // the compute stream (and the device binding) exist before the communicator
  ncclUniqueId unique;
  std::memcpy(&unique, id, kNcclIdBytes);
  check(ncclCommInitRank(&s.comm, world_size, unique, rank), "ncclCommInitRank");
  check(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
}

bool nccl_ready() { return state().comm != nullptr; }

std::uint64_t nccl_allreduce_sum_start(float* data, std::int64_t n) {
  NcclState& s = state();
  FM_CHECK(s.comm != nullptr, DeviceError, "NCCL: all-reduce before nccl_init; expected nccl_init first");
  // The communication stream starts after everything the compute stream has queued (the bucket's
  // gradients are among it).
  cudaEvent_t ready;
  check(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "cudaEventCreate");
  check(cudaEventRecord(ready, cuda_stream()), "cudaEventRecord");
  check(cudaStreamWaitEvent(s.stream, ready, 0), "cudaStreamWaitEvent");
  check(cudaEventDestroy(ready), "cudaEventDestroy");  // freed once the wait is resolved
  check(ncclAllReduce(data, data, std::size_t(n), ncclFloat32, ncclSum, s.comm, s.stream), "ncclAllReduce");
  cudaEvent_t done;
  check(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "cudaEventCreate");
  check(cudaEventRecord(done, s.stream), "cudaEventRecord");
  s.done.push_back(done);
  return s.first_ticket + s.done.size() - 1;
}

void nccl_wait(std::uint64_t ticket) {
  NcclState& s = state();
  if (ticket < s.first_ticket || ticket >= s.first_ticket + s.done.size()) return;  // already waited for
  check(cudaStreamWaitEvent(cuda_stream(), s.done[ticket - s.first_ticket], 0), "cudaStreamWaitEvent");
  // Events up to this ticket are waited for in order by the trainer; drop those from the front.
  while (!s.done.empty() && s.first_ticket <= ticket) {
    check(cudaEventDestroy(s.done.front()), "cudaEventDestroy");
    s.done.pop_front();
    ++s.first_ticket;
  }
}

void nccl_finalize() {
  NcclState& s = state();
  if (!s.comm) return;
  cudaStreamSynchronize(s.stream);
  for (cudaEvent_t e : s.done) cudaEventDestroy(e);
  s.done.clear();
  ncclCommDestroy(s.comm);
  cudaStreamDestroy(s.stream);
  s.comm = nullptr;
  s.stream = nullptr;
}

}  // namespace fm::kernels
#endif  // FM_WITH_NCCL
