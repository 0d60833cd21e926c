// core/distributed.cpp — the process group over MPI, and NCCL for CUDA tensors (see distributed.h).
#include "core/distributed.h"

#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "core/error.h"
#include "kernels/nccl_comm.h"
#include "kernels/runtime.h"

#ifdef FM_WITH_MPI
#include <mpi.h>
#endif

namespace fm::dist {
namespace {

struct Group {
  bool initialised = false;
  bool mpi = false;  // MPI_Init was called by us
  int rank = 0, size = 1, local_rank = 0, local_size = 1;
};
Group& group() {
  static Group g;
  return g;
}

// An environment variable as an integer, or `fallback`.
int env_int(const char* name, int fallback) {
  const char* value = std::getenv(name);
  if (!value || !*value) return fallback;
  return std::atoi(value);
}

// Started by an MPI launcher (mpirun / mpiexec / srun with PMI)?
bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK", "PMIX_NAMESPACE"})
    if (std::getenv(name)) return true;
  return false;
}

#ifdef FM_WITH_MPI
void mpi_check(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw DeviceError(cat("MPI: ", what, " failed on ", rank_tag(), ": ", std::string(text, std::size_t(length))));
}
#endif

}  // namespace

void init_from_environment(int* argc, char*** argv) {
  Group& g = group();
  if (g.initialised) return;
  g.initialised = true;
  const bool launched = launched_by_mpi();
#ifdef FM_WITH_MPI
  if (launched) {
    int provided = 0;
    // One thread talks to MPI (the main thread); OpenMP threads never do.
    mpi_check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    g.mpi = true;
    // Errors come back as codes (mpi_check turns them into exceptions with the rank named) instead
    // of MPI's default of aborting without saying where.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g.size);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g.rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &g.local_rank);
    MPI_Comm_size(local, &g.local_size);
    MPI_Comm_free(&local);
  }
#else
  (void)argc;
  (void)argv;
  // A launcher that says how many ranks it started, or only that it started this one (PMIx): either
  // way N copies would each train alone and write the same run directory.
  const int ranks = env_int("OMPI_COMM_WORLD_SIZE", env_int("PMI_SIZE", 0));
  if (launched && ranks != 1) {
    std::fprintf(stderr,
                 "started by an MPI launcher (%s ranks), but this build has no MPI (install libopenmpi-dev and "
                 "rebuild: cmake finds it); expected a single process\n",
                 ranks > 0 ? std::to_string(ranks).c_str() : "some");
    std::exit(2);
  }
#endif
  (void)env_int;
}

void finalize() {
  Group& g = group();
#ifdef FM_WITH_NCCL
  if (kernels::nccl_ready()) kernels::nccl_finalize();
#endif
#ifdef FM_WITH_MPI
  if (g.mpi) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
#endif
  g.mpi = false;
}

int rank() { return group().rank; }
int world_size() { return group().size; }
int local_rank() { return group().local_rank; }
int local_size() { return group().local_size; }
bool is_root() { return group().rank == 0; }
bool active() { return group().size > 1; }
bool built_with_mpi() {
#ifdef FM_WITH_MPI
  return true;
#else
  return false;
#endif
}
bool built_with_nccl() {
#ifdef FM_WITH_NCCL
  return true;
#else
  return false;
#endif
}

Share even_share(std::int64_t n, int rank, int ranks) {
  FM_CHECK(ranks >= 1 && rank >= 0 && rank < ranks && n >= 0, ValueError, "even_share: rank ", rank, " of ", ranks,
           " over ", n, " items; expected 0 <= rank < ranks and n >= 0");
  return {n * rank / ranks, n * (rank + 1) / ranks};
}

std::string rank_tag() { return active() ? cat("rank ", rank(), "/", world_size()) : std::string(); }

void abort_job(int exit_code) {
  std::fflush(stdout);
  std::fflush(stderr);
#ifdef FM_WITH_MPI
  if (group().mpi) MPI_Abort(MPI_COMM_WORLD, exit_code);
#endif
  std::exit(exit_code);
}

// ---- host collectives --------------------------------------------------------------------------

void barrier() {
#ifdef FM_WITH_MPI
  if (active()) mpi_check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
#endif
}

void allreduce_sum(double* values, std::int64_t n) {
#ifdef FM_WITH_MPI
  if (active()) mpi_check(MPI_Allreduce(MPI_IN_PLACE, values, int(n), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
#else
  (void)values, (void)n;
#endif
}

void allreduce_sum(float* values, std::int64_t n) {
#ifdef FM_WITH_MPI
  if (active()) mpi_check(MPI_Allreduce(MPI_IN_PLACE, values, int(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
#else
  (void)values, (void)n;
#endif
}

std::uint64_t allreduce_min(std::uint64_t value) {
#ifdef FM_WITH_MPI
  if (active())
    mpi_check(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce");
#endif
  return value;
}

std::uint64_t allreduce_max(std::uint64_t value) {
#ifdef FM_WITH_MPI
  if (active())
    mpi_check(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
#endif
  return value;
}

bool any_rank(bool flag) { return allreduce_max(flag ? 1 : 0) != 0; }

void broadcast(void* data, std::int64_t bytes, int root) {
#ifdef FM_WITH_MPI
  if (active()) mpi_check(MPI_Bcast(data, int(bytes), MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
#else
  (void)data, (void)bytes, (void)root;
#endif
}

namespace {
template <typename T>
std::vector<T> allgather_values(const std::vector<T>& values) {
  if (!active()) return values;
  std::vector<T> all;
#ifdef FM_WITH_MPI
  const int n = world_size();
  int mine = int(values.size());
  std::vector<int> counts(std::size_t(n), 0), offsets(std::size_t(n), 0);
  mpi_check(MPI_Allgather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD), "MPI_Allgather");
  std::int64_t total = 0;
  for (int r = 0; r < n; ++r) {
    offsets[std::size_t(r)] = int(total);
    total += counts[std::size_t(r)];
    // MPI counts and displacements are ints.
    FM_CHECK(total <= INT32_MAX, ValueError, "allgather: ", total, " values over the ranks; expected at most ",
             INT32_MAX, " in one gather (gather fewer samples at a time)");
  }
  all.resize(std::size_t(total));
  const MPI_Datatype type = std::is_same_v<T, float> ? MPI_FLOAT : std::is_same_v<T, double> ? MPI_DOUBLE : MPI_INT32_T;
  mpi_check(MPI_Allgatherv(values.data(), mine, type, all.data(), counts.data(), offsets.data(), type, MPI_COMM_WORLD),
            "MPI_Allgatherv");
#endif
  return all;
}
}  // namespace

std::vector<float> allgather(const std::vector<float>& values) { return allgather_values(values); }
std::vector<double> allgather(const std::vector<double>& values) { return allgather_values(values); }
std::vector<std::int32_t> allgather(const std::vector<std::int32_t>& values) { return allgather_values(values); }

// ---- tensor all-reduce -----------------------------------------------------------------------------

PendingAllreduce::PendingAllreduce(PendingAllreduce&& other) noexcept
    : kind_(std::exchange(other.kind_, Kind::None)), handle_(other.handle_), buffer_(std::move(other.buffer_)) {}

PendingAllreduce& PendingAllreduce::operator=(PendingAllreduce&& other) noexcept {
  if (this != &other) {
    if (pending()) {
      try {
        wait();
      } catch (...) {
      }
    }
    kind_ = std::exchange(other.kind_, Kind::None);
    handle_ = other.handle_;
    buffer_ = std::move(other.buffer_);
  }
  return *this;
}

PendingAllreduce::~PendingAllreduce() {
  if (!pending()) return;
  try {
    wait();
  } catch (...) {
    // A failed reduction in a destructor: the job is going down anyway (the caller's error).
  }
}

void PendingAllreduce::wait() {
  const Kind kind = std::exchange(kind_, Kind::None);
  if (kind == Kind::Mpi) {
#ifdef FM_WITH_MPI
    MPI_Request request;
    std::memcpy(&request, &handle_, sizeof request);
    mpi_check(MPI_Wait(&request, MPI_STATUS_IGNORE), "MPI_Wait (gradient all-reduce)");
#endif
  } else if (kind == Kind::Nccl) {
#ifdef FM_WITH_NCCL
    kernels::nccl_wait(handle_);
#endif
  }
  buffer_ = Tensor();
}

PendingAllreduce start_allreduce_sum(const Tensor& buffer) {
  FM_CHECK(buffer.dtype() == DType::Float32 && buffer.is_contiguous(), ValueError,
           "start_allreduce_sum: expected a contiguous float32 tensor, got ", dtype_name(buffer.dtype()),
           buffer.is_contiguous() ? "" : " (not contiguous)");
  PendingAllreduce pending;
  if (!active()) return pending;
  pending.buffer_ = buffer;
  if (buffer.device() == Device::CUDA) {
#ifdef FM_WITH_NCCL
    if (!kernels::nccl_ready()) {
      char id[kernels::kNcclIdBytes] = {};
      if (is_root()) kernels::nccl_unique_id(id);
      broadcast(id, kernels::kNcclIdBytes);
      kernels::nccl_init(rank(), world_size(), id);
    }
    pending.kind_ = PendingAllreduce::Kind::Nccl;
    pending.handle_ = kernels::nccl_allreduce_sum_start(buffer.data<float>(), buffer.numel());
    return pending;
#else
    FM_CHECK(false, DeviceError, "data-parallel training of CUDA tensors needs NCCL; this build has none "
                          "(configure with NCCL beside the CUDA toolkit, or train data-parallel on the CPU)");
#endif
  }
#ifdef FM_WITH_MPI
  MPI_Request request;
  mpi_check(MPI_Iallreduce(MPI_IN_PLACE, buffer.data<float>(), int(buffer.numel()), MPI_FLOAT, MPI_SUM,
                           MPI_COMM_WORLD, &request),
            "MPI_Iallreduce");
  static_assert(sizeof(MPI_Request) <= sizeof(std::uint64_t), "an MPI_Request must fit the handle");
  std::uint64_t handle = 0;
  std::memcpy(&handle, &request, sizeof request);
  pending.kind_ = PendingAllreduce::Kind::Mpi;
  pending.handle_ = handle;
#endif
  return pending;
}

void make_progress() {
#ifdef FM_WITH_MPI
  if (!active()) return;
  int flag = 0;
  // MPI_Iprobe drives Open MPI's progress engine without needing the requests at hand.
  MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
#endif
}

std::uint64_t bit_checksum(const Tensor& tensor) {
  const Tensor host = tensor.contiguous().to(Device::CPU);
  const unsigned char* bytes = static_cast<const unsigned char*>(host.raw_data());
  const std::size_t count = std::size_t(host.numel()) * dtype_size(host.dtype());
  // FNV-1a over 8-byte words (a byte at a time costs ~16 ms on 9 MB; this is ~8× less), the tail
  // bytes one by one. Any changed bit changes the word it is in, and so the hash.
  std::uint64_t hash = 1469598103934665603ull;
  std::size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    std::uint64_t word;
    std::memcpy(&word, bytes + i, 8);
    hash = (hash ^ word) * 1099511628211ull;
    hash ^= hash >> 29;  // folds the high bits down, so a change in any byte reaches every later bit
  }
  for (; i < count; ++i) hash = (hash ^ bytes[i]) * 1099511628211ull;
  return hash;
}

}  // namespace fm::dist
