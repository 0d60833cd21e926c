// kernels/nccl_comm.h — NCCL, the CUDA collectives library, as core/distributed.h uses it.
//
// One communicator per process over all ranks, made from a unique id that rank 0 creates and MPI
// sends to the others (core/distributed.cpp). An all-reduce runs on a communication stream of its
// own: the stream first waits for everything queued so far on the compute stream
// (kernels/runtime.h, cuda_stream()), so a gradient bucket can be reduced while the backward pass
// goes on computing the next one; nccl_wait(ticket) makes the compute stream wait for it again.
//
// Declared in every build; defined only when the build has NCCL (FM_WITH_NCCL: the CUDA build with the
// toolkit's NCCL, or the emulator build with MPI, over kernels/cuda_emulator/nccl.h), and
// core/distributed.cpp calls it only then.
#pragma once
#include <cstdint>

namespace fm::kernels {

constexpr int kNcclIdBytes = 128;  // sizeof(ncclUniqueId)

void nccl_unique_id(char id[kNcclIdBytes]);           // rank 0 only
void nccl_init(int rank, int world_size, const char id[kNcclIdBytes]);
bool nccl_ready();
// Starts data[0 … n) += (the same buffer on every other rank), float32, on the communication stream.
std::uint64_t nccl_allreduce_sum_start(float* data, std::int64_t n);
// The compute stream waits for that reduction (no host wait).
void nccl_wait(std::uint64_t ticket);
void nccl_finalize();

}  // namespace fm::kernels
