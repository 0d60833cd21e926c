// kernels/cuda_emulator/nccl.h — the part of NCCL that kernels/cuda/nccl_comm.cpp calls, for the CUDA
// emulator build, so the data-parallel path of CUDA tensors (core/distributed.cpp's NCCL branch, the
// bucketed gradient all-reduce, the communication stream and its events) runs and is tested without
// a GPU. It shadows the toolkit's header, as cuda_runtime.h does.
//
// The ranks are the processes of an mpirun job; an emulated device buffer is host memory, so the
// collective is MPI's: ncclAllReduce is a sum reduced to rank 0 and broadcast back (every rank gets
// the same bits, as from NCCL), done when called (emulated streams run their work when it is issued).
// ncclCommInitRank checks that the job is the one the id and sizes describe; a process started
// without mpirun gets a communicator of one rank (the sum is the buffer), as NCCL gives one. Built when the build
// has MPI (nccl_emulated.cpp); only the calls and constants nccl_comm.cpp uses are here.
#pragma once
#include <cstddef>

#include "cuda_runtime.h"

typedef struct {
  char internal[128];
} ncclUniqueId;
struct ncclComm;
typedef struct ncclComm* ncclComm_t;

typedef enum {
  ncclSuccess = 0,
  ncclUnhandledCudaError = 1,
  ncclSystemError = 2,
  ncclInternalError = 3,
  ncclInvalidArgument = 4,
  ncclInvalidUsage = 5,
} ncclResult_t;
typedef enum { ncclFloat32 = 7, ncclFloat = 7 } ncclDataType_t;  // NCCL's values
typedef enum { ncclSum = 0 } ncclRedOp_t;

const char* ncclGetErrorString(ncclResult_t result);
ncclResult_t ncclGetUniqueId(ncclUniqueId* id);
ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank);
ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, std::size_t count, ncclDataType_t datatype,
                           ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream);
ncclResult_t ncclCommDestroy(ncclComm_t comm);
