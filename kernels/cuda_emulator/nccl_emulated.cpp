// kernels/cuda_emulator/nccl_emulated.cpp — the emulated NCCL of nccl.h, on MPI (see there).
#include "nccl.h"

#include <mpi.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>
#include <vector>

#include "emulator_state.h"

struct ncclComm {
  MPI_Comm mpi = MPI_COMM_NULL;  // a duplicate of MPI_COMM_WORLD: its messages never meet the engine's
};

namespace {
constexpr char kMagic[] = "fm-emulated-nccl";  // the id's first bytes, then rank 0's pid
}  // namespace

const char* ncclGetErrorString(ncclResult_t result) {
  switch (result) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error";
    case ncclSystemError: return "unhandled system error (emulated NCCL: an MPI call failed)";
    case ncclInternalError: return "internal error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
  }
  return "unknown result";
}

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  if (!id) return ncclInvalidArgument;
  std::memset(id->internal, 0, sizeof id->internal);
  std::snprintf(id->internal, sizeof id->internal, "%s %ld", kMagic, long(::getpid()));
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
  // (ncclInvalidUsage is kept for what NCCL means by it: nccl_comm.cpp's message then suggests two
  // ranks on one GPU, which cannot happen here.)
  int initialized = 0, size = 0, me = -1;
  if (MPI_Initialized(&initialized) != MPI_SUCCESS) return ncclSystemError;
  if (!initialized) {
    // A process outside mpirun: a communicator of itself alone, as NCCL makes one for one rank.
    if (!comm || nranks != 1 || rank != 0 || std::strncmp(id.internal, kMagic, sizeof kMagic - 1) != 0)
      return ncclInvalidArgument;
    *comm = new ncclComm;  // mpi stays MPI_COMM_NULL: the sum over one rank is the buffer itself
    return ncclSuccess;
  }
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  // Every rank joins the broadcast of rank 0's id and the vote below before any of them gives up,
  // so a check that fails on one rank alone fails on all of them instead of leaving the others
  // waiting in a collective.
  std::vector<char> root_id(id.internal, id.internal + sizeof id.internal);
  if (MPI_Bcast(root_id.data(), int(root_id.size()), MPI_CHAR, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
    return ncclSystemError;
  const int fits = comm && std::strncmp(id.internal, kMagic, sizeof kMagic - 1) == 0 && size == nranks &&
                   me == rank && std::memcmp(root_id.data(), id.internal, sizeof id.internal) == 0;
  int all_fit = 0;
  if (MPI_Allreduce(&fits, &all_fit, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD) != MPI_SUCCESS) return ncclSystemError;
  if (!all_fit) return ncclInvalidArgument;  // not the job, or not the id, the caller describes
  auto* made = new ncclComm;
  if (MPI_Comm_dup(MPI_COMM_WORLD, &made->mpi) != MPI_SUCCESS) {
    delete made;
    return ncclSystemError;
  }
  *comm = made;
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, std::size_t count, ncclDataType_t datatype,
                           ncclRedOp_t op, ncclComm_t comm, cudaStream_t) {
  if (!comm || datatype != ncclFloat32 || op != ncclSum || count > std::size_t(INT_MAX) || (count && !recvbuff))
    return ncclInvalidArgument;
  // A collective cannot be recorded into an emulated graph (the real one could): refused, visibly.
  if (fm_emu::refuse_while_capturing()) return ncclInvalidArgument;
  if (count == 0) return ncclSuccess;
  if (comm->mpi == MPI_COMM_NULL) {  // one rank, no MPI job
    if (sendbuff != recvbuff) std::memmove(recvbuff, sendbuff, count * sizeof(float));
    return ncclSuccess;
  }
  int me = 0;
  MPI_Comm_rank(comm->mpi, &me);
  // Reduced on rank 0 in MPI's order, then rank 0's bits sent to all: every rank holds the same sum.
  std::vector<float> sum(me == 0 ? count : 0);
  if (MPI_Reduce(sendbuff, me == 0 ? sum.data() : nullptr, int(count), MPI_FLOAT, MPI_SUM, 0, comm->mpi) !=
      MPI_SUCCESS)
    return ncclSystemError;
  if (me == 0) std::memcpy(recvbuff, sum.data(), count * sizeof(float));
  if (MPI_Bcast(recvbuff, int(count), MPI_FLOAT, 0, comm->mpi) != MPI_SUCCESS) return ncclSystemError;
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (!comm) return ncclInvalidArgument;
  if (comm->mpi != MPI_COMM_NULL) MPI_Comm_free(&comm->mpi);
  delete comm;
  return ncclSuccess;
}
