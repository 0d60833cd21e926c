// tests/test_cuda_emulator.cpp — the CUDA emulator itself (kernels/cuda_emulator/), built only with
// cmake -DFM_CUDA_EMULATOR=ON. The emulated GPU tests are only worth something if the emulator
// catches what a GPU run would: so besides checking that it runs correct kernels correctly, each
// case here feeds it a broken kernel and requires the failure to show.
//
// Kernels are launched with the form the build rewrites `<<<...>>>` into:
//   kernel | fm_emu::Launch{grid, block, shared_bytes}(args...)
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include "kernels/runtime.h"

using fm_emu::Launch;

namespace {

// ---- kernels that are right -------------------------------------------------------------------

__global__ void write_global_index(int* out) {
  const int block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const int thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  out[block * int(blockDim.x * blockDim.y * blockDim.z) + thread] = block * 1000 + thread;
}

// Sum of each block's 256 inputs through shared memory, tree-shaped, with the barriers it needs.
__global__ void block_sum(const float* x, float* out, bool with_barriers) {
  __shared__ float partial[256];
  partial[threadIdx.x] = x[blockIdx.x * 256 + threadIdx.x];
  if (with_barriers) __syncthreads();
  for (int width = 128; width > 0; width /= 2) {
    if (int(threadIdx.x) < width) partial[threadIdx.x] += partial[threadIdx.x + width];
    if (with_barriers) __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = partial[0];
}

__global__ void shuffles(const int* x, int* xor_out, int* down_out, int* segment_out) {
  const int v = x[threadIdx.x];
  xor_out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, v, 5);
  down_out[threadIdx.x] = __shfl_down_sync(0xffffffffu, v, 3);
  segment_out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, v, 12, 8);  // 8-lane segments
}

// Reads a static __shared__ value before writing it: block 1 would see block 0's leftover 7 if the
// emulator did not poison it. (The build adds the register call after every such declaration in
// kernels/cuda/; this file is not rewritten, so it says it itself.)
__global__ void read_static_shared_then_write(float* out) {
  __shared__ float leftover;
  fm_emu::register_static_shared(&leftover, sizeof(leftover));
  if (threadIdx.x == 0) {
    out[blockIdx.x] = leftover;
    leftover = 7.f;
  }
}

__global__ void read_dynamic_shared(float* out) {
  float* shared = fm_emu::dynamic_shared<float>();
  out[threadIdx.x] = shared[threadIdx.x];  // never written: garbage on a GPU
}

// One warp: C[16×16] = A[16×8]·B[8×16] on the (emulated) tensor cores, inputs rounded to TF32 first.
// `offset` shifts every pointer by that many floats (0 is the aligned, legal use).
__global__ void wmma_tf32_tile(const float* a, const float* b, float* c, int offset, bool all_lanes) {
  using namespace nvcuda;
  if (!all_lanes && threadIdx.x >= 16) return;  // half a warp: illegal for warp-collective calls
  wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> fc;
  wmma::fill_fragment(fc, 0.f);
  wmma::load_matrix_sync(fa, a + offset, 8);
  wmma::load_matrix_sync(fb, b + offset, 16);
  for (int i = 0; i < fa.num_elements; ++i) fa.x[i] = wmma::__float_to_tf32(fa.x[i]);
  for (int i = 0; i < fb.num_elements; ++i) fb.x[i] = wmma::__float_to_tf32(fb.x[i]);
  wmma::mma_sync(fc, fa, fb, fc);
  wmma::store_matrix_sync(c + offset, fc, 16, wmma::mem_row_major);
}

// One warp: C[16×16] = A[16×16]·B[16×16] from bfloat16 tiles, A with leading dimension `lda`
// (16 is legal; 12 bfloat16 = 24 bytes is not a multiple of 16 bytes).
__global__ void wmma_bf16_tile(const __nv_bfloat16* a, const __nv_bfloat16* b, float* c, int lda) {
  using namespace nvcuda;
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> fc;
  wmma::fill_fragment(fc, 0.f);
  wmma::load_matrix_sync(fa, a, unsigned(lda));
  wmma::load_matrix_sync(fb, b, 16);
  wmma::mma_sync(fc, fa, fb, fc);
  wmma::store_matrix_sync(c, fc, 16, wmma::mem_row_major);
}

// ---- kernels that are wrong -----------------------------------------------------------------------

// Thread `stopper` of block 1 calls __trap() (a failed device-side check); the others write.
__global__ void trap_in_one_thread(int* out, int stopper) {
  if (blockIdx.x == 1 && int(threadIdx.x) == stopper) __trap();
  out[blockIdx.x * blockDim.x + threadIdx.x] = 1;
}

__global__ void shuffle_after_some_lanes_exit(float* out) {
  if (threadIdx.x >= 16) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.f, 1);  // mask names lanes 16..31, gone
}

__global__ void barrier_and_shuffle_mixed(float* out) {
  if (threadIdx.x < 16) __syncthreads();  // half the warp waits here ...
  else out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.f, 1);  // ... the other half here
}

__global__ void write_one_past_the_end(float* out, int n) {
  if (threadIdx.x == 0) out[n] = 1.f;
}

__global__ void read_far_past_the_end(const float* in, float* out, int n) {
  if (threadIdx.x == 0) out[0] = in[n + 1024];
}

// Each lane reads what the lane before it wrote to shared memory, with no barrier between: "warp-
// synchronous" code that worked on GPUs before Volta, and is a race on every GPU since (a warp's
// lanes are scheduled independently). In lane order it would always read the written value.
__global__ void read_previous_lane_without_barrier(float* out) {
  __shared__ float slots[32];
  fm_emu::register_static_shared(slots, sizeof(slots));
  slots[threadIdx.x] = float(threadIdx.x);
  out[blockIdx.x * 32 + threadIdx.x] = threadIdx.x == 0 ? 0.f : slots[threadIdx.x - 1];
}

// Block b copies what block b - 1 wrote: correct only if blocks run in index order, which no GPU
// promises. `chain` must start as block 0's value at index 0.
__global__ void read_previous_block(float* chain) {
  if (threadIdx.x == 0 && blockIdx.x > 0) chain[blockIdx.x] = chain[blockIdx.x - 1] + 1.f;
}

__global__ void write_dynamic_shared_at(float* out, int index) {
  float* shared = fm_emu::dynamic_shared<float>();
  if (threadIdx.x == 0) shared[index] = 1.f;
  out[threadIdx.x] = 0.f;
}

// Every thread adds 1 to one shared counter with no barrier or atomic: a lost-update race on a GPU.
// With `same_value`, every thread instead writes the same constant (harmless, and not reported).
__global__ void shared_counter(float* out, bool same_value) {
  float* shared = fm_emu::dynamic_shared<float>();
  if (threadIdx.x == 0) shared[0] = 0.f;
  __syncthreads();
  if (same_value) shared[0] = 1.f;
  else shared[0] += 1.f;
  __syncthreads();
  if (threadIdx.x == 0) out[0] = shared[0];
}

// The block sum with its barriers, on dynamic shared memory (which the race check watches).
__global__ void block_sum_dynamic(const float* x, float* out) {
  float* partial = fm_emu::dynamic_shared<float>();
  partial[threadIdx.x] = x[blockIdx.x * 256 + threadIdx.x];
  __syncthreads();
  for (int width = 128; width > 0; width /= 2) {
    if (int(threadIdx.x) < width) partial[threadIdx.x] += partial[threadIdx.x + width];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = partial[0];
}

__global__ void copy_first(const float* in, float* out) {
  if (threadIdx.x == 0) out[0] = in[0];
}

// A struct argument that lists its pointers, as the conv passes' Params do.
struct CopyArgs {
  const float* in;
  float* out;
  std::array<const void*, 2> device_pointers() const { return {in, out}; }
};
__global__ void copy_first_of(CopyArgs args) {
  if (threadIdx.x == 0) args.out[0] = args.in[0];
}

template <typename T>
T* device_alloc(std::size_t n) {
  return static_cast<T*>(fm::kernels::cuda_malloc(n * sizeof(T)));
}
template <typename T>
std::vector<T> to_host(const T* device, std::size_t n) {
  std::vector<T> host(n);
  fm::kernels::cuda_copy_to_host(host.data(), device, n * sizeof(T));
  return host;
}

// Forks a child process that runs body and leaves with its return value as the exit code (no
// destructors, no Catch reporting: _Exit); returns the child's pid to wait_status_of.
template <typename Body>
pid_t fork_running(Body body) {
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) std::_Exit(body());
  return child;
}

// Waits for the child to end and returns its wait status (for WIFSIGNALED, WEXITSTATUS, ...).
int wait_status_of(pid_t child) {
  int status = 0;
  waitpid(child, &status, 0);
  return status;
}

// Runs body in a child process and returns how the child ended: the signal that killed it, or 0.
template <typename Body>
int crash_signal_of(Body body) {
  const int status = wait_status_of(fork_running([&] {
    // The default actions, not Catch's handlers: the child is meant to die quietly of the signal.
    std::signal(SIGSEGV, SIG_DFL);
    std::signal(SIGABRT, SIG_DFL);
    body();
    return 0;
  }));
  return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

// Runs body (which returns `count` floats) in a child process and returns what it returned, sent back
// through a pipe (read before waiting, so a child writing more than the pipe holds cannot block).
template <typename Body>
std::vector<float> result_in_child(std::size_t count, Body body) {
  int pipe_ends[2];
  REQUIRE(pipe(pipe_ends) == 0);
  const pid_t child = fork_running([&] {
    close(pipe_ends[0]);
    const std::vector<float> result = body();
    const bool whole = result.size() == count &&
                       write(pipe_ends[1], result.data(), count * sizeof(float)) == ssize_t(count * sizeof(float));
    return whole ? 0 : 1;
  });
  close(pipe_ends[1]);
  std::vector<float> result(count);
  std::size_t got = 0;
  char* bytes = reinterpret_cast<char*>(result.data());
  while (got < count * sizeof(float)) {
    const ssize_t n = read(pipe_ends[0], bytes + got, count * sizeof(float) - got);
    if (n <= 0) break;
    got += std::size_t(n);
  }
  close(pipe_ends[0]);
  const int status = wait_status_of(child);
  REQUIRE((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  REQUIRE(got == count * sizeof(float));
  return result;
}

}  // namespace

TEST_CASE("emulator: every thread of every block runs once, with its own indices", "[emulator]") {
  const dim3 grid(3, 2, 2), block(8, 4, 2);
  const int total = 12 * 64;
  int* out = device_alloc<int>(total);
  write_global_index | Launch{grid, block}(out);
  REQUIRE(cudaGetLastError() == cudaSuccess);
  const std::vector<int> got = to_host(out, total);
  for (int b = 0; b < 12; ++b)
    for (int t = 0; t < 64; ++t) REQUIRE(got[std::size_t(b * 64 + t)] == b * 1000 + t);
  fm::kernels::cuda_free(out);
}

namespace {
// block_sum over 16 blocks of 256 inputs (i mod 7) on the device.
struct BlockSums {
  static constexpr int kBlocks = 16;
  std::vector<float> x = std::vector<float>(kBlocks * 256);
  float* x_dev = device_alloc<float>(x.size());
  float* out = device_alloc<float>(kBlocks);
  BlockSums() {
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(i % 7);
    fm::kernels::cuda_copy_to_device(x_dev, x.data(), x.size() * sizeof(float));
  }
  ~BlockSums() {
    fm::kernels::cuda_free(x_dev);
    fm::kernels::cuda_free(out);
  }
  std::vector<float> run(bool with_barriers) {
    block_sum | Launch{kBlocks, 256}(x_dev, out, with_barriers);
    return to_host(out, kBlocks);
  }
};
}  // namespace

TEST_CASE("emulator: barriers order shared memory, and a missing barrier shows", "[emulator]") {
  BlockSums sums;
  const std::vector<float> got = sums.run(true);
  for (int b = 0; b < BlockSums::kBlocks; ++b) {
    float expected = 0.f;
    for (int i = 0; i < 256; ++i) expected += sums.x[std::size_t(b * 256 + i)];
    REQUIRE(got[std::size_t(b)] == expected);
  }
  // Without barriers the threads run in a shuffled order between (absent) barriers, so partial sums
  // are read before they are written in at least one block, as they would be on a GPU.
  REQUIRE(sums.run(false) != got);
}

TEST_CASE("emulator: lanes of a warp run in a shuffled order, so warp-synchronous reads show", "[emulator]") {
  const int blocks = 8;
  float* out = device_alloc<float>(blocks * 32);
  read_previous_lane_without_barrier | Launch{blocks, 32}(out);
  REQUIRE(cudaGetLastError() == cudaSuccess);
  // A lane that ran before the one it reads from sees the poison (NaN; zeros in the first block to
  // run, the one that registers the array), not the previous lane's number.
  const std::vector<float> got = to_host(out, blocks * 32);
  int stale = 0;
  for (int b = 0; b < blocks; ++b)
    for (int lane = 1; lane < 32; ++lane) stale += !(got[std::size_t(b * 32 + lane)] == float(lane - 1));
  REQUIRE(stale > 0);
  fm::kernels::cuda_free(out);
}

TEST_CASE("emulator: blocks run in a shuffled order", "[emulator]") {
  const int blocks = 64;
  float* chain = device_alloc<float>(blocks);
  fm::kernels::cuda_memset_zero(chain, sizeof(float));  // chain[0] = 0; the rest poisoned (NaN)
  read_previous_block | Launch{blocks, 32}(chain);
  const std::vector<float> got = to_host(chain, blocks);
  // In index order the chain would read 0, 1, 2, ...; a block that ran before its predecessor copies
  // NaN instead.
  int broken = 0;
  for (int b = 1; b < blocks; ++b) broken += got[std::size_t(b)] != float(b);
  REQUIRE(broken > 0);  // (that every block still runs exactly once: the first case of this file)
  fm::kernels::cuda_free(chain);
}

TEST_CASE("emulator: FM_EMU_SEED picks other interleavings, and the same seed repeats them", "[emulator]") {
  BlockSums sums;
  // The racy sum (no barriers), each run in a child process forked from this one, so that every run
  // starts from the same launch count and the same memory: only the seed differs.
  auto racy_sum_under = [&](std::uint64_t seed) {
    return result_in_child(BlockSums::kBlocks, [&] {
      fm_emu::set_schedule_seed(seed);
      return sums.run(false);
    });
  };
  const std::vector<float> seed1 = racy_sum_under(1), seed1_again = racy_sum_under(1), seed2 = racy_sum_under(2);
  REQUIRE(seed1 == seed1_again);
  REQUIRE(seed1 != seed2);
  // A correct kernel gives the same answer under any seed.
  const std::vector<float> right = sums.run(true);
  const std::uint64_t seed_before = fm_emu::set_schedule_seed(2);
  REQUIRE(sums.run(true) == right);
  fm_emu::set_schedule_seed(seed_before);
}

TEST_CASE("emulator: the race check names two threads writing one shared word between barriers", "[emulator]") {
  const bool was_on = fm_emu::set_race_check(true);
  float* out = device_alloc<float>(16);
  REQUIRE_THROWS_WITH((shared_counter | Launch{1, 64, sizeof(float)}(out, false)),
                      Catch::Contains("shared memory race") && Catch::Contains("of a 4-byte shared array"));
  shared_counter | Launch{1, 64, sizeof(float)}(out, true);  // the same value from every thread: no race
  REQUIRE(to_host(out, 1)[0] == 1.f);
  BlockSums sums;  // a correct kernel with many writers per stretch, each to its own words
  block_sum_dynamic | Launch{BlockSums::kBlocks, 256, 256 * sizeof(float)}(sums.x_dev, sums.out);
  fm_emu::set_race_check(false);
  REQUIRE(to_host(sums.out, BlockSums::kBlocks) == sums.run(true));
  // Off, the racy counter runs (threads one at a time, so here it even counts right).
  shared_counter | Launch{1, 64, sizeof(float)}(out, false);
  REQUIRE(to_host(out, 1)[0] == 64.f);
  fm_emu::set_race_check(was_on);
  fm::kernels::cuda_free(out);
}

TEST_CASE("emulator: warp shuffles follow CUDA's lane rules", "[emulator]") {
  std::vector<int> x(32);
  for (int i = 0; i < 32; ++i) x[std::size_t(i)] = 100 + i;
  int* x_dev = device_alloc<int>(32);
  int *xor_dev = device_alloc<int>(32), *down_dev = device_alloc<int>(32),
      *segment_dev = device_alloc<int>(32);
  fm::kernels::cuda_copy_to_device(x_dev, x.data(), 32 * sizeof(int));
  shuffles | Launch{1, 32}(x_dev, xor_dev, down_dev, segment_dev);
  const auto got_xor = to_host(xor_dev, 32), got_down = to_host(down_dev, 32),
             got_segment = to_host(segment_dev, 32);
  for (int lane = 0; lane < 32; ++lane) {
    INFO("lane " << lane);
    REQUIRE(got_xor[std::size_t(lane)] == 100 + (lane ^ 5));
    // shfl_down past the warp's end returns the caller's own value.
    REQUIRE(got_down[std::size_t(lane)] == 100 + (lane + 3 < 32 ? lane + 3 : lane));
    // With width 8, lane ^ 12 leaves the 8-lane segment whenever bit 3 flips: own value then.
    const int partner = lane ^ 12;
    REQUIRE(got_segment[std::size_t(lane)] == 100 + (partner / 8 == lane / 8 ? partner : lane));
  }
  for (int* p : {x_dev, xor_dev, down_dev, segment_dev}) fm::kernels::cuda_free(p);
}

TEST_CASE("emulator: misused shuffles and mixed barriers are reported, not run", "[emulator]") {
  float* out = device_alloc<float>(32);
  REQUIRE_THROWS_WITH((shuffle_after_some_lanes_exit | Launch{1, 32}(out)),
                      Catch::Contains("shuffle mask names lane 16, which has already exited"));
  REQUIRE_THROWS_WITH((barrier_and_shuffle_mixed | Launch{1, 32}(out)),
                      Catch::Contains("waits at __syncthreads() instead (deadlock)"));
  fm::kernels::cuda_free(out);
}

TEST_CASE("emulator: a __trap() stops the kernel and names the thread", "[emulator]") {
  int* out = device_alloc<int>(64);
  REQUIRE_THROWS_WITH((trap_in_one_thread | Launch{2, 32}(out, 5)),
                      Catch::Contains("block (1,0,0) thread (5,0,0)") && Catch::Contains("__trap()"));
  REQUIRE(to_host(out, 64)[32 + 5] != 1);  // the trapping thread stopped before its write
  trap_in_one_thread | Launch{2, 32}(out, 32);  // no thread 32: nobody traps, and the emulator runs on
  // (thread 5's fiber, stopped in mid-body by the trap, is made afresh: it writes its 1 only now)
  for (int v : to_host(out, 64)) REQUIRE(v == 1);
  fm::kernels::cuda_free(out);
}

TEST_CASE("emulator: launches the GPU would refuse fail with cudaErrorInvalidConfiguration",
          "[emulator]") {
  int* out = device_alloc<int>(4096);
  write_global_index | Launch{1, 2048}(out);
  REQUIRE(cudaGetLastError() == cudaErrorInvalidConfiguration);
  write_global_index | Launch{dim3(1, 70000), 32}(out);
  REQUIRE(cudaGetLastError() == cudaErrorInvalidConfiguration);
  float* f = device_alloc<float>(64);
  read_dynamic_shared | Launch{1, 64, 64 * 1024}(f);  // > 48 KiB without cudaFuncSetAttribute
  REQUIRE(cudaGetLastError() == cudaErrorInvalidConfiguration);
  REQUIRE(cudaFuncSetAttribute(read_dynamic_shared, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               64 * 1024) == cudaSuccess);
  read_dynamic_shared | Launch{1, 64, 64 * 1024}(f);
  REQUIRE(cudaGetLastError() == cudaSuccess);
  REQUIRE(cudaGetLastError() == cudaSuccess);  // the error was cleared by reading it
  fm::kernels::cuda_free(out);
  fm::kernels::cuda_free(f);
}

TEST_CASE("emulator: unwritten device and shared memory reads as NaN", "[emulator]") {
  float* fresh = device_alloc<float>(64);
  for (float v : to_host(fresh, 64)) REQUIRE(std::isnan(v));
  fm::kernels::cuda_memset_zero(fresh, 64 * sizeof(float));
  for (float v : to_host(fresh, 64)) REQUIRE(v == 0.f);
  read_dynamic_shared | Launch{1, 64, 64 * sizeof(float)}(fresh);  // copies shared memory out
  for (float v : to_host(fresh, 64)) REQUIRE(std::isnan(v));
  // Static shared memory: from the second block of a kernel on (the first to run, whichever block
  // the shuffled order starts with, is the one that tells the emulator where the variable is), every
  // block starts with it poisoned: none reads the 7 another block left.
  read_static_shared_then_write | Launch{4, 32}(fresh);
  const std::vector<float> leftovers = to_host(fresh, 4);
  int poisoned = 0;
  for (float v : leftovers) {
    REQUIRE(v != 7.f);
    poisoned += std::isnan(v);
  }
  REQUIRE(poisoned == 3);
  fm::kernels::cuda_free(fresh);
}

TEST_CASE("emulator: out-of-bounds device accesses stop the program", "[emulator]") {
  // Direct allocation gives each buffer its own guard page (the caching allocator would hand out
  // a larger block); each access runs in a child process, since it is meant to kill it.
  void* raw = nullptr;
  REQUIRE(cudaMalloc(&raw, 100 * sizeof(float)) == cudaSuccess);
  float* buffer = static_cast<float*>(raw);
  // Past the end, inside the 256-byte alignment slack: caught when the buffer is freed.
  REQUIRE(crash_signal_of([&] {
            write_one_past_the_end | Launch{1, 32}(buffer, 100);
            cudaFree(buffer);
          }) == SIGABRT);
  // Further out: the guard page faults at the access itself.
  REQUIRE(crash_signal_of([&] { read_far_past_the_end | Launch{1, 32}(buffer, buffer, 100); }) ==
          SIGSEGV);
  // And a kernel that stays inside its buffer does neither.
  REQUIRE(crash_signal_of([&] {
            write_one_past_the_end | Launch{1, 32}(buffer, 99);
            cudaFree(buffer);
          }) == 0);
  REQUIRE(cudaFree(buffer) == cudaSuccess);
}

TEST_CASE("emulator: dynamic shared memory ends at a guard page", "[emulator]") {
  float* out = device_alloc<float>(32);
  const std::size_t bytes = 64 * sizeof(float);  // a multiple of 128: the guard page follows at once
  REQUIRE(crash_signal_of([&] { write_dynamic_shared_at | Launch{1, 32, bytes}(out, 63); }) == 0);
  REQUIRE(crash_signal_of([&] { write_dynamic_shared_at | Launch{1, 32, bytes}(out, 64); }) == SIGSEGV);
  // 40 floats = 160 bytes, so 96 bytes of slack before the guard page: a write there is caught
  // after the block, naming the byte.
  write_dynamic_shared_at | Launch{1, 32, 40 * sizeof(float)}(out, 39);
  REQUIRE_THROWS_WITH((write_dynamic_shared_at | Launch{1, 32, 40 * sizeof(float)}(out, 41)),
                      Catch::Contains("wrote byte 5 past the end of its 160 bytes of dynamic shared memory"));
  fm::kernels::cuda_free(out);
}

TEST_CASE("emulator: a host pointer passed to a kernel is refused", "[emulator]") {
  float* device = device_alloc<float>(4);
  std::vector<float> host(4, 1.f);
  fm::kernels::cuda_memset_zero(device, 4 * sizeof(float));
  REQUIRE_THROWS_WITH((copy_first | Launch{1, 32}(host.data(), device)),
                      Catch::Contains("kernel argument 1 is a pointer outside every device buffer"));
  REQUIRE_THROWS_WITH((copy_first | Launch{1, 32}(device, host.data())), Catch::Contains("kernel argument 2"));
  // Device pointers, null ones and a buffer's one-past-the-end are fine.
  copy_first | Launch{1, 32}(device + 1, device);
  REQUIRE(cudaGetLastError() == cudaSuccess);
  read_far_past_the_end | Launch{1, 0}(device + 4, nullptr, 0);  // refused for its empty block, not its pointers
  REQUIRE(cudaGetLastError() == cudaErrorInvalidConfiguration);
  // Inside a struct argument that lists its pointers (device_pointers()): the same check, naming
  // the pointer's place in the list.
  REQUIRE_THROWS_WITH((copy_first_of | Launch{1, 32}(CopyArgs{device, host.data()})),
                      Catch::Contains("kernel argument 1 (a struct), its pointer 2 in device_pointers(), is a "
                                      "pointer outside every device buffer"));
  REQUIRE_THROWS_WITH((copy_first_of | Launch{1, 32}(CopyArgs{host.data(), device})),
                      Catch::Contains("its pointer 1 in device_pointers()"));
  const std::vector<float> values{5.f, 7.f, 9.f, 11.f};
  fm::kernels::cuda_copy_to_device(device, values.data(), values.size() * sizeof(float));
  copy_first_of | Launch{1, 32}(CopyArgs{device + 1, device});
  REQUIRE(cudaGetLastError() == cudaSuccess);
  REQUIRE(to_host(device, 1)[0] == 7.f);
  fm::kernels::cuda_free(device);
}

// TF32 of a float as the hardware's cvt.rna.tf32.f32 makes it: round to nearest at mantissa bit 13,
// ties away from zero (written out here independently of the emulator's mma.h).
static float tf32_rna(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, 4);
  bits = (bits + 0x1000u) & 0xffffe000u;
  std::memcpy(&value, &bits, 4);
  return value;
}

TEST_CASE("emulator: WMMA TF32 tiles multiply exactly in TF32, and misuse is reported", "[emulator]") {
  // Inputs with low mantissa bits set, so that TF32 rounding changes them: 1 + 2^-12 rounds to 1
  // and 1 + 3·2^-12 rounds up to 1 + 2^-10 (nearest), so FP32 and TF32 products differ.
  std::vector<float> a(16 * 8), b(8 * 16);
  for (int i = 0; i < 16 * 8; ++i) a[i] = (i % 3 == 0 ? 1.f + 0x1p-12f : 1.f + 3 * 0x1p-12f) * float(1 + i % 5);
  for (int i = 0; i < 8 * 16; ++i) b[i] = (i % 2 == 0 ? -0.5f : 0.25f) * float(1 + i % 7) + 0x1p-14f;
  // Exact TF32 products (11-bit × 11-bit mantissas fit in a float), summed in k order in float: what
  // the emulator promises (a GPU may sum in another order, so GPU tests bound the error instead).
  std::vector<float> expected(16 * 16);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) {
      float sum = 0.f;
      for (int k = 0; k < 8; ++k) sum += tf32_rna(a[i * 8 + k]) * tf32_rna(b[k * 16 + j]);
      expected[i * 16 + j] = sum;
    }
  float* a_dev = device_alloc<float>(16 * 8 + 8);
  float* b_dev = device_alloc<float>(8 * 16 + 8);
  float* c_dev = device_alloc<float>(16 * 16 + 8);
  fm::kernels::cuda_copy_to_device(a_dev, a.data(), a.size() * 4);
  fm::kernels::cuda_copy_to_device(b_dev, b.data(), b.size() * 4);
  wmma_tf32_tile | Launch{1, 32}(a_dev, b_dev, c_dev, 0, true);
  REQUIRE(cudaGetLastError() == cudaSuccess);
  const std::vector<float> c = to_host(c_dev, 16 * 16);
  for (int i = 0; i < 16 * 16; ++i) REQUIRE(c[i] == expected[i]);
  // The FP32 product differs (the rounding is real, not skipped).
  float fp32 = 0.f;
  for (int k = 0; k < 8; ++k) fp32 += a[k] * b[k * 16];
  REQUIRE(fp32 != expected[0]);

  REQUIRE_THROWS_WITH((wmma_tf32_tile | Launch{1, 32}(a_dev, b_dev, c_dev, 4, true)),
                      Catch::Contains("load_matrix_sync: pointer not 32-byte aligned"));
  REQUIRE_THROWS((wmma_tf32_tile | Launch{1, 32}(a_dev, b_dev, c_dev, 0, false)));  // half a warp
  for (float* p : {a_dev, b_dev, c_dev}) fm::kernels::cuda_free(p);
}

namespace {
float bits_to_float(std::uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}
float bf16_round_trip(float value) { return __bfloat162float(__float2bfloat16(value)); }
}  // namespace

TEST_CASE("emulator: bfloat16 conversions round to nearest, ties to even", "[emulator]") {
  // bfloat16 keeps 7 mantissa bits: its spacing just above 1 is 2^-7.
  REQUIRE(bf16_round_trip(1.f + 0x1p-9f) == 1.f);                 // a quarter step: down
  REQUIRE(bf16_round_trip(1.f + 3 * 0x1p-9f) == 1.f + 0x1p-7f);   // three quarters: up
  REQUIRE(bf16_round_trip(1.f + 0x1p-8f) == 1.f);                 // a tie, to the even neighbour (down)
  REQUIRE(bf16_round_trip(1.f + 3 * 0x1p-8f) == 1.f + 0x1p-6f);   // a tie from an odd one: up, to even
  REQUIRE(bf16_round_trip(2.f - 0x1p-9f) == 2.f);                 // the carry moves into the exponent
  REQUIRE(bf16_round_trip(-3.14159f) == -3.140625f);
  REQUIRE(bf16_round_trip(0x1p-130f) == 0x1p-130f);               // subnormals keep their top bits
  REQUIRE(std::isinf(bf16_round_trip(3.4e38f)));                  // past the largest bfloat16: infinity
  REQUIRE(std::isinf(bf16_round_trip(-INFINITY)));
  REQUIRE(std::isnan(bf16_round_trip(NAN)));
  REQUIRE(std::isnan(bf16_round_trip(bits_to_float(0x7f800001u))));  // a NaN whose payload rounding would clear
}

TEST_CASE("emulator: WMMA bfloat16 tiles multiply exactly, and a misaligned ldm is reported", "[emulator]") {
  std::vector<__nv_bfloat16> a(16 * 16), b(16 * 16);
  std::vector<float> a_values(a.size()), b_values(b.size());
  for (int i = 0; i < 16 * 16; ++i) {
    a_values[i] = bf16_round_trip((1.f + float(i % 13) * 0x1p-5f) * float(1 + i % 5));
    b_values[i] = bf16_round_trip((i % 2 == 0 ? -0.5f : 0.25f) * float(1 + i % 7) + 0x1p-6f);
    a[i] = __float2bfloat16(a_values[i]);
    b[i] = __float2bfloat16(b_values[i]);
  }
  // bfloat16 products are exact in float (8 × 8 significant bits); summed in k order in float.
  std::vector<float> expected(16 * 16);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) {
      float sum = 0.f;
      for (int k = 0; k < 16; ++k) sum += a_values[i * 16 + k] * b_values[k * 16 + j];
      expected[i * 16 + j] = sum;
    }
  auto* a_dev = static_cast<__nv_bfloat16*>(fm::kernels::cuda_malloc(a.size() * 2));
  auto* b_dev = static_cast<__nv_bfloat16*>(fm::kernels::cuda_malloc(b.size() * 2));
  float* c_dev = device_alloc<float>(16 * 16);
  fm::kernels::cuda_copy_to_device(a_dev, a.data(), a.size() * 2);
  fm::kernels::cuda_copy_to_device(b_dev, b.data(), b.size() * 2);
  wmma_bf16_tile | Launch{1, 32}(a_dev, b_dev, c_dev, 16);
  REQUIRE(cudaGetLastError() == cudaSuccess);
  const std::vector<float> c = to_host(c_dev, 16 * 16);
  for (int i = 0; i < 16 * 16; ++i) REQUIRE(c[i] == expected[i]);

  REQUIRE_THROWS_WITH((wmma_bf16_tile | Launch{1, 32}(a_dev, b_dev, c_dev, 12)),
                      Catch::Contains("ldm not a multiple of 16 bytes"));
  fm::kernels::cuda_free(a_dev), fm::kernels::cuda_free(b_dev), fm::kernels::cuda_free(c_dev);
}

TEST_CASE("emulator: events exist from create to destroy and are refused while capturing", "[emulator]") {
  // kernels/cuda/nccl_comm.cpp orders its communication stream with events. Work runs when issued, so
  // an event is always complete; what can be wrong is the event itself: never made, or destroyed.
  cudaStream_t stream = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess);
  cudaEvent_t event = nullptr;
  REQUIRE(cudaEventCreateWithFlags(&event, cudaEventDisableTiming) == cudaSuccess);
  REQUIRE(event != nullptr);
  REQUIRE(cudaEventRecord(event, stream) == cudaSuccess);
  REQUIRE(cudaStreamWaitEvent(stream, event, 0) == cudaSuccess);
  REQUIRE(cudaEventDestroy(event) == cudaSuccess);
  REQUIRE(cudaEventRecord(event, stream) == cudaErrorInvalidValue);  // destroyed
  REQUIRE(cudaStreamWaitEvent(stream, event, 0) == cudaErrorInvalidValue);
  REQUIRE(cudaEventDestroy(event) == cudaErrorInvalidValue);
  REQUIRE(cudaEventCreateWithFlags(nullptr, 0) == cudaErrorInvalidValue);
  // While the stream captures a graph: refused (and the capture is invalidated), as the emulator does
  // with every call it cannot record.
  cudaEvent_t before = nullptr;
  REQUIRE(cudaEventCreateWithFlags(&before, 0) == cudaSuccess);
  REQUIRE(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal) == cudaSuccess);
  REQUIRE(cudaEventRecord(before, stream) == cudaErrorStreamCaptureUnsupported);
  cudaGraph_t graph = nullptr;
  REQUIRE(cudaStreamEndCapture(stream, &graph) == cudaErrorStreamCaptureInvalidated);
  REQUIRE(cudaEventDestroy(before) == cudaSuccess);
}
