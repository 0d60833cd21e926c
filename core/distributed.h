// core/distributed.h — the processes of a data-parallel job and the collectives between them.
//
// `mpirun -np N fmtrain config.json` starts N copies of a program; this file tells each copy who it
// is (its rank among N, and among the ranks on its own machine) and gives the few collective
// operations data-parallel training and sharded sampling need. It is a thin layer over two existing
// engines, as llm.c and PyTorch DDP do it: MPI (Open MPI) starts the ranks and carries host buffers;
// NCCL (kernels/nccl_comm.h) carries the gradients of CUDA tensors, its unique id sent from rank 0
// to the others over MPI. No home-made transport.
//
// A program that was not started by mpirun (or srun) is one rank of one: every collective is then a
// no-op that returns its input, and nothing of MPI is touched, so single-process runs are exactly
// what they were. A build without MPI (no libopenmpi-dev at configure time) refuses a launch with
// more than one rank in one line.
//
// Every rank must call the collectives in the same order with the same sizes (MPI's rule): callers
// make sure of it by doing the same work on every rank (flow/trainer.h, tools/train_run.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace fm::dist {

// Sets up the process group from the launcher's environment: MPI_Init when an MPI launcher started
// this process (Open MPI's OMPI_COMM_WORLD_SIZE, or PMI_SIZE / PMIX_RANK), else one rank of one.
// Idempotent. Call it first thing in main(); finalize() (or abort_job) at the end.
void init_from_environment(int* argc, char*** argv);
void finalize();

int rank();            // 0 … world_size() − 1
int world_size();      // 1 without a launcher
int local_rank();      // rank among the ranks on this machine (binds the GPU)
int local_size();      // how many ranks share this machine
bool is_root();        // rank() == 0: the one that writes files and prints progress
bool active();         // world_size() > 1
bool built_with_mpi();
bool built_with_nccl();
// Items [first, end) of rank `rank` when n items are shared out among `ranks` in rank order:
// ⌊n·rank/ranks⌋ … ⌊n·(rank+1)/ranks⌋, sizes differing by at most one (10 on 4 ranks: 2, 3, 2, 3).
// The one formula behind the training batch's slices and the samplers' shares.
struct Share {
  std::int64_t first = 0, end = 0;
  std::int64_t count() const { return end - first; }
};
Share even_share(std::int64_t n, int rank, int ranks);

// "rank 2/4" when active(), else "" — for error messages and logs.
std::string rank_tag();

// Ends every rank of the job now with exit_code (MPI_Abort), so that no rank waits forever in a
// collective for one that failed. On one rank: std::exit(exit_code).
[[noreturn]] void abort_job(int exit_code);

// ---- host collectives (all ranks call them in the same order; one rank: no-ops) ----------------
void barrier();
void allreduce_sum(double* values, std::int64_t n);
void allreduce_sum(float* values, std::int64_t n);
std::uint64_t allreduce_min(std::uint64_t value);
std::uint64_t allreduce_max(std::uint64_t value);
bool any_rank(bool flag);  // true when flag is true on some rank
void broadcast(void* data, std::int64_t bytes, int root = 0);
// Concatenates every rank's `values` in rank order (sizes may differ); every rank gets the whole.
std::vector<float> allgather(const std::vector<float>& values);
std::vector<double> allgather(const std::vector<double>& values);
std::vector<std::int32_t> allgather(const std::vector<std::int32_t>& values);

// ---- tensor all-reduce, started now and waited for later (gradient buckets) --------------------
// Sums `buffer` (contiguous float32, CPU or CUDA) over all ranks in place. CPU tensors go through
// MPI_Iallreduce; CUDA tensors through NCCL on a communication stream that first waits for the
// compute stream, so the reduction overlaps the rest of the backward pass; wait() makes the
// compute stream (or the host, for CPU tensors) wait for the result.
class PendingAllreduce {
 public:
  PendingAllreduce() = default;
  PendingAllreduce(PendingAllreduce&& other) noexcept;
  PendingAllreduce& operator=(PendingAllreduce&& other) noexcept;
  PendingAllreduce(const PendingAllreduce&) = delete;
  PendingAllreduce& operator=(const PendingAllreduce&) = delete;
  ~PendingAllreduce();  // waits if still pending (never leaves MPI writing into freed memory)
  void wait();
  bool pending() const { return kind_ != Kind::None; }

 private:
  friend PendingAllreduce start_allreduce_sum(const Tensor& buffer);
  enum class Kind { None, Mpi, Nccl };
  Kind kind_ = Kind::None;
  std::uint64_t handle_ = 0;  // the MPI request or the NCCL ticket
  Tensor buffer_;             // kept alive until the reduction is done
};
PendingAllreduce start_allreduce_sum(const Tensor& buffer);
// Lets pending MPI reductions progress (MPI moves data only inside MPI calls): called between
// backward nodes, it is what makes CPU reductions overlap the computation.
void make_progress();

// A checksum of a tensor's bits (FNV-1a style over its 8-byte words, after a copy to the host): equal
// bits, equal checksum; different bits almost surely a different one. Used to check that every rank
// holds the same parameters (flow/trainer.h, check_ranks_agree).
std::uint64_t bit_checksum(const Tensor& tensor);

}  // namespace fm::dist
