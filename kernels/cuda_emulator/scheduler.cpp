// kernels/cuda_emulator/scheduler.cpp — how the emulator runs a grid: blocks one after another in a
// shuffled order, and the threads of a block as fibers that each run until they exit or wait at a
// barrier.
//
// A GPU runs a block's threads concurrently; all a correct kernel may rely on is what the barriers
// promise. So each thread here runs on its own small stack (a ucontext fiber) until it reaches
// __syncthreads() or a warp shuffle, where it hands control back to the scheduler. When every live
// thread of the block waits at __syncthreads(), or every lane a shuffle names has arrived, they are
// released together. Between barriers the threads run in a fresh pseudo-random order each time,
// lanes of one warp included (since Volta a warp's lanes are scheduled independently too), so a
// kernel that reads shared memory before the barrier that should order it sees stale data in some
// runs, as it would on a GPU, instead of happening to work in thread order. Blocks run in a
// shuffled order for the same reason: a GPU promises no order between the blocks of a grid.
// The orders are seeded from FM_EMU_SEED, the number of launches the process has made before and
// the block, so a failure repeats when the same launches run again in the same order (one test case
// per process, as CTest runs them) with the same standard library (std::shuffle is not portable).
//
// With FM_EMU_RACECHECK=1 it also watches shared memory: two threads of a block changing the same
// byte between two barriers stop the launch (record_shared_writes below).
//
// Misuse that a GPU answers with undefined results or a hang is reported here as an exception naming
// the block and thread: a shuffle whose mask names a lane that has exited or is not in the block, a
// shuffle read from a lane outside the mask, lanes of one warp shuffling with different masks, or
// threads waiting at different barriers forever (deadlock).

// Fortified builds turn _longjmp into __longjmp_chk, which refuses a jump to another stack: exactly
// what switching to a fiber is (switch_to_thread below).
#undef _FORTIFY_SOURCE
#include <setjmp.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda_runtime.h"
#include "emulator_state.h"

namespace fm_emu {
namespace {

enum class ThreadState { Ready, AtBlockBarrier, AtWarpBarrier, Exited };

struct EmulatedThread {
  ucontext_t context;        // where its fiber starts (makecontext), or where it paused (sanitizer builds)
  jmp_buf resume_point;      // where it paused (switch_to_scheduler)
  bool started = false;      // its fiber has run since makecontext
  bool between_blocks = false;  // its fiber finished a block's body and waits for the next one
  ThreadState state = ThreadState::Ready;
  uint3 index{0, 0, 0};
  unsigned warp_mask = 0;    // the mask of the shuffle it waits in
  std::uint64_t slot = 0;    // the value it offers in that shuffle
};

// 64 KiB per thread is far more than any kernel's locals (a few hundred registers' worth).
constexpr std::size_t kStackBytes = 64 * 1024;
constexpr int kWarp = 32;
constexpr std::size_t kMaxThreadsPerBlock = 1024;  // check_configuration refuses more

// Dynamic shared memory starts 128-byte aligned (a kernel may declare its extern __shared__ array
// with an alignment above 16 bytes, the WMMA kernels ask 32, which nvcc honours on a GPU) and ends
// at an inaccessible guard page, so an access past it faults where it happens, as device buffers do
// (runtime_api.cpp). The up to 127 bytes between the launch's size and the guard page are checked
// after each block. A launch with none points right at the guard page: any access faults.
constexpr std::size_t kSharedAlignment = 128;

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

struct GuardedShared {
  char* mapping = nullptr;
  std::size_t usable = 0;  // bytes before the guard page
  unsigned char* start = nullptr;  // what dynamic_shared_memory() returns
  std::size_t bytes = 0, slack = 0;

  // Places `bytes` (rounded up to the alignment) right before the guard page, growing the mapping
  // when it is too small.
  void prepare(std::size_t launch_bytes) {
    const std::size_t rounded = round_up(launch_bytes, kSharedAlignment);
    if (!mapping || usable < rounded) {
      release();
      const std::size_t wanted = round_up(std::max<std::size_t>(rounded, 1), page_size());
      void* m = mmap(nullptr, wanted + page_size(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (m == MAP_FAILED) throw std::runtime_error("CUDA emulator: cannot map dynamic shared memory");
      if (mprotect(static_cast<char*>(m) + wanted, page_size(), PROT_NONE) != 0) {
        munmap(m, wanted + page_size());
        throw std::runtime_error("CUDA emulator: cannot protect the guard page of dynamic shared memory");
      }
      mapping = static_cast<char*>(m);
      usable = wanted;
    }
    start = reinterpret_cast<unsigned char*>(mapping + usable - rounded);
    bytes = launch_bytes;
    slack = rounded - launch_bytes;
  }
  void release() {
    if (mapping) munmap(mapping, usable + page_size());
    mapping = nullptr, usable = 0, start = nullptr;
  }
  // Shared memory starts as garbage on a GPU; NaN bytes make a read before write visible.
  void poison() { std::memset(start, kPoison, bytes + slack); }
  // Which byte past the end (1 = the first) a kernel wrote first in the slack, or 0 for none.
  std::size_t written_slack() const {
    for (std::size_t i = 0; i < slack; ++i)
      if (start[bytes + i] != kPoison) return i + 1;
    return 0;
  }
};

// FM_EMU_SEED (a non-negative integer, default 0) picks another family of thread and block orders:
// running the emulated tests under several seeds tries more interleavings. Read at the first launch,
// so that a bad value is an error a test reports rather than a crash before main().
std::uint64_t schedule_seed_from_environment() {
  const char* text = std::getenv("FM_EMU_SEED");
  if (!text || !*text) return 0;  // unset or empty: the default
  char* end = nullptr;
  errno = 0;
  const unsigned long long value = std::strtoull(text, &end, 10);
  if (*text < '0' || *text > '9' || *end != '\0' || errno == ERANGE)
    throw std::invalid_argument(std::string("CUDA emulator: FM_EMU_SEED=") + text +
                                ", expected a non-negative integer below 2^64");
  return value;
}
std::optional<std::uint64_t> g_schedule_seed;  // FM_EMU_SEED's until set_schedule_seed()

std::uint64_t schedule_seed() {
  if (!g_schedule_seed) g_schedule_seed = schedule_seed_from_environment();
  return *g_schedule_seed;
}

// A 64-bit mix (splitmix64's finaliser): nearby launch and block numbers give unrelated seeds.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The race check (FM_EMU_RACECHECK=1, or set_race_check): within one stretch between two
// __syncthreads(), no two threads may change the same byte of shared memory. A thread runs from one
// pause to the next without interruption, and only threads write shared memory, so what a thread
// changed is what differs from a snapshot of the region as the previous thread left it. The snapshot
// is taken once per block and then brought up to date with each thread's changes (no copy per
// resume: most resumes write nothing, and the comparison alone is the check's cost). Each changed byte
// remembers the first thread that changed it until the block next meets at a barrier. Writing the
// value a byte already holds is not seen (and is harmless). Reads are not tracked: a read racing with
// a write shows only through the shuffled orders.
struct SharedRegion {
  unsigned char* address;
  std::size_t bytes;
  std::vector<unsigned char> snapshot;  // the region as the last thread to run left it
  std::vector<int> writer;              // per byte: the thread that changed it in this stretch, or -1
};

// FM_EMU_RACECHECK: unset, empty or 0 (off), 1 (on); read at the first launch, like FM_EMU_SEED.
bool race_check_from_environment() {
  const char* text = std::getenv("FM_EMU_RACECHECK");
  if (!text || std::string(text).empty() || std::string(text) == "0") return false;
  if (std::string(text) == "1") return true;
  throw std::invalid_argument(std::string("CUDA emulator: FM_EMU_RACECHECK=") + text + ", expected 0 or 1");
}
std::optional<bool> g_race_check;  // FM_EMU_RACECHECK's until set_race_check()

bool race_check() {
  if (!g_race_check) g_race_check = race_check_from_environment();
  return *g_race_check;
}

struct Block {
  std::vector<EmulatedThread> threads;
  std::vector<std::unique_ptr<char[]>> stacks;  // kept across blocks and launches
  ucontext_t scheduler_context;  // the scheduler's place while a thread runs (sanitizer builds)
  jmp_buf scheduler_resume_point;  // the same in other builds
  int current = -1;
  void (*body)(void*) = nullptr;
  void* body_context = nullptr;
  std::string fault;
  GuardedShared dynamic_shared;
  std::vector<SharedRegion> race_regions;  // filled per block while the race check is on
};

Block& block() {
  static Block b;
  return b;
}

std::string describe_thread(int linear) {
  const EmulatedThread& t = block().threads[std::size_t(linear)];
  std::ostringstream os;
  os << "block (" << blockIdx.x << "," << blockIdx.y << "," << blockIdx.z << ") thread ("
     << t.index.x << "," << t.index.y << "," << t.index.z << ")";
  return os.str();
}

// ---- switching between the scheduler and a thread's fiber ----
// A fiber is made (makecontext) and started (setcontext) once, and then serves its thread slot in
// every block of every launch (thread_main); every later switch is a _setjmp/_longjmp pair.
// swapcontext would do, but it saves and restores the signal mask with a system call on every
// switch, and threads switch at every barrier and twice per shuffle: that was about 70% of an
// emulated WMMA conv test's time (perf, 2026-12-06). A switch happens at a function
// call, so the registers a call preserves, which _setjmp keeps, are all there is to keep (nothing
// here changes the signal mask or the floating-point environment on a fiber). AddressSanitizer
// understands swapcontext but not a _longjmp to another stack, so sanitizer builds keep swapcontext.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSwitchWithUcontext = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSwitchWithUcontext = true;
#else
constexpr bool kSwitchWithUcontext = false;
#endif
#else
constexpr bool kSwitchWithUcontext = false;
#endif

// On the scheduler: runs thread th until it pauses or exits.
void switch_to_thread(Block& b, EmulatedThread& th) {
  if constexpr (kSwitchWithUcontext) {
    swapcontext(&b.scheduler_context, &th.context);
  } else {
    if (_setjmp(b.scheduler_resume_point) != 0) return;  // th paused or exited
    if (!th.started) {
      th.started = true;
      setcontext(&th.context);
    }
    _longjmp(th.resume_point, 1);
  }
}

// On a thread's fiber: hands control back to the scheduler; returns when the scheduler resumes it.
void switch_to_scheduler(Block& b, EmulatedThread& me) {
  if constexpr (kSwitchWithUcontext) {
    swapcontext(&me.context, &b.scheduler_context);
  } else {
    if (_setjmp(me.resume_point) == 0) _longjmp(b.scheduler_resume_point, 1);
  }
}

// Called on a thread's fiber: record the fault and never come back (the scheduler throws).
[[noreturn]] void thread_fault(const std::string& what) {
  Block& b = block();
  if (b.fault.empty()) b.fault = describe_thread(b.current) + ": " + what;
  EmulatedThread& me = b.threads[std::size_t(b.current)];
  me.state = ThreadState::Exited;
  switch_to_scheduler(b, me);
  std::abort();  // unreachable: a faulted fiber is never resumed
}

void pause_current(ThreadState state) {
  Block& b = block();
  EmulatedThread& me = b.threads[std::size_t(b.current)];
  me.state = state;
  switch_to_scheduler(b, me);
}

// A fiber's life: the kernel body for one block, then a wait for the next block (the scheduler
// resumes it there, with b.current set to its slot again), so that it is made once, not once per
// block: getcontext and setcontext each make a system call. A fiber stopped in mid-body (a fault, or
// a launch that threw) is made afresh at its next use (run_block).
void thread_main() {
  Block& b = block();
  for (;;) {
    b.body(b.body_context);
    EmulatedThread& me = b.threads[std::size_t(b.current)];
    me.state = ThreadState::Exited;
    me.between_blocks = true;
    switch_to_scheduler(b, me);
  }
}

// Releases the lanes of one warp that wait in a shuffle, once all lanes of their mask are there.
// Returns true when it released them; records a fault when they can never be released.
bool release_warp(int warp, int thread_count) {
  Block& b = block();
  const int first = warp * kWarp, end = std::min(first + kWarp, thread_count);
  unsigned mask = 0, waiting = 0;
  for (int t = first; t < end; ++t) {
    const EmulatedThread& th = b.threads[std::size_t(t)];
    if (th.state != ThreadState::AtWarpBarrier) continue;
    if (waiting && th.warp_mask != mask) {
      b.fault = describe_thread(t) + ": lanes of one warp shuffle with different masks";
      return false;
    }
    mask = th.warp_mask;
    waiting |= 1u << (t - first);
  }
  if (!waiting) return false;
  for (int lane = 0; lane < kWarp; ++lane) {
    if (!(mask >> lane & 1u) || (waiting >> lane & 1u)) continue;
    const int t = first + lane;
    std::string why = t >= end ? "is not part of the block"
                      : b.threads[std::size_t(t)].state == ThreadState::Exited
                          ? "has already exited"
                          : "waits at __syncthreads() instead (deadlock)";
    b.fault = describe_thread(first + __builtin_ctz(waiting)) + ": shuffle mask names lane " +
              std::to_string(lane) + ", which " + why;
    return false;
  }
  for (int t = first; t < end; ++t)
    if (waiting >> (t - first) & 1u) b.threads[std::size_t(t)].state = ThreadState::Ready;
  return true;
}

std::uint64_t g_launch_count = 0;

// The static __shared__ variables each kernel has declared so far (its threads register them as they
// pass the declaration), so that later blocks of that kernel can start with them poisoned.
std::map<const void*, std::vector<std::pair<void*, std::size_t>>> g_static_shared;
const void* g_running_kernel = nullptr;

void poison_static_shared(const void* kernel) {
  for (const auto& [address, bytes] : g_static_shared[kernel]) std::memset(address, 0xff, bytes);
}

// Thread t changed byte i of region (to the value now in memory): claims it, or throws when another
// thread of the block changed it since the last barrier.
void claim_shared_byte(SharedRegion& region, std::size_t i, int t) {
  int& writer = region.writer[i];
  if (writer < 0 || writer == t) {
    writer = t;
    region.snapshot[i] = region.address[i];
    return;
  }
  const EmulatedThread& other = block().threads[std::size_t(writer)];
  throw std::logic_error("CUDA emulator: shared memory race: " + describe_thread(t) + " and thread (" +
                         std::to_string(other.index.x) + "," + std::to_string(other.index.y) + "," +
                         std::to_string(other.index.z) + ") both wrote byte " + std::to_string(i) + " of a " +
                         std::to_string(region.bytes) + "-byte shared array with no __syncthreads() between");
}

// After thread t's stretch: claims the bytes it changed (see claim_shared_byte), which also brings
// the snapshot up to date for the next thread. Compared eight bytes at a time, byte by byte only
// inside a word that changed.
void record_shared_writes(int t) {
  for (SharedRegion& region : block().race_regions) {
    const unsigned char* now = region.address;
    const unsigned char* was = region.snapshot.data();
    if (std::memcmp(was, now, region.bytes) == 0) continue;
    const std::size_t whole_words = region.bytes / 8 * 8;
    for (std::size_t w = 0; w < whole_words; w += 8) {
      std::uint64_t a, b;
      std::memcpy(&a, now + w, 8);
      std::memcpy(&b, was + w, 8);
      if (a == b) continue;
      for (std::size_t i = w; i < w + 8; ++i)
        if (now[i] != was[i]) claim_shared_byte(region, i, t);
    }
    for (std::size_t i = whole_words; i < region.bytes; ++i)
      if (now[i] != was[i]) claim_shared_byte(region, i, t);
  }
}

// The shared memory the race check watches in this block: the dynamic buffer and the static arrays
// the kernel has registered so far (those a first block registers as it runs are watched from the
// next block on).
void watch_shared(const void* kernel) {
  Block& b = block();
  b.race_regions.clear();
  if (!race_check()) return;
  auto watch = [&](void* address, std::size_t bytes) {
    if (bytes == 0) return;
    unsigned char* start = static_cast<unsigned char*>(address);
    b.race_regions.push_back(
        SharedRegion{start, bytes, std::vector<unsigned char>(start, start + bytes), std::vector<int>(bytes, -1)});
  };
  watch(b.dynamic_shared.start, b.dynamic_shared.bytes);
  for (const auto& [address, bytes] : g_static_shared[kernel]) watch(address, bytes);
}

void run_block(int thread_count, const dim3& block_dim, std::uint64_t seed) {
  Block& b = block();
  for (int t = 0; t < thread_count; ++t) {
    EmulatedThread& th = b.threads[std::size_t(t)];
    th.state = ThreadState::Ready;
    th.index = uint3{unsigned(t) % block_dim.x, unsigned(t) / block_dim.x % block_dim.y,
                     unsigned(t) / (block_dim.x * block_dim.y)};
    if (!th.between_blocks) {  // never made, or stopped in mid-body: a fresh fiber
      getcontext(&th.context);
      th.context.uc_stack.ss_sp = b.stacks[std::size_t(t)].get();
      th.context.uc_stack.ss_size = kStackBytes;
      th.context.uc_link = nullptr;  // thread_main never returns
      makecontext(&th.context, thread_main, 0);
      th.started = false;
    }
    th.between_blocks = false;  // until this block's body is done
  }
  const int warps = (thread_count + kWarp - 1) / kWarp;
  std::vector<int> thread_order(std::size_t(thread_count), 0);
  for (int t = 0; t < thread_count; ++t) thread_order[std::size_t(t)] = t;
  std::mt19937_64 order_rng(seed);

  for (;;) {
    std::shuffle(thread_order.begin(), thread_order.end(), order_rng);
    for (int t : thread_order) {
      EmulatedThread& th = b.threads[std::size_t(t)];
      if (th.state != ThreadState::Ready) continue;
      b.current = t;
      threadIdx = th.index;
      switch_to_thread(b, th);
      if (!b.fault.empty()) throw std::logic_error("CUDA emulator: " + b.fault);
      record_shared_writes(t);
    }
    // Every thread now waits somewhere or has exited. Shuffles first: a warp mid-shuffle must
    // finish it before the block can meet at __syncthreads().
    bool released = false;
    for (int w = 0; w < warps; ++w) released |= release_warp(w, thread_count);
    if (!b.fault.empty()) throw std::logic_error("CUDA emulator: " + b.fault);
    if (released) continue;
    int at_block_barrier = 0, exited = 0;
    for (int t = 0; t < thread_count; ++t) {
      const ThreadState s = b.threads[std::size_t(t)].state;
      at_block_barrier += s == ThreadState::AtBlockBarrier;
      exited += s == ThreadState::Exited;
    }
    if (exited == thread_count) return;
    if (at_block_barrier + exited == thread_count) {
      for (SharedRegion& region : b.race_regions) std::fill(region.writer.begin(), region.writer.end(), -1);
      for (int t = 0; t < thread_count; ++t)
        if (b.threads[std::size_t(t)].state == ThreadState::AtBlockBarrier)
          b.threads[std::size_t(t)].state = ThreadState::Ready;
      continue;
    }
    throw std::logic_error("CUDA emulator: block (" + std::to_string(blockIdx.x) + "," +
                           std::to_string(blockIdx.y) + "," + std::to_string(blockIdx.z) +
                           ") deadlocks: some threads wait at __syncthreads() while others wait "
                           "in a warp shuffle");
  }
}

// The H100's launch limits (CUDA C Programming Guide, "Technical Specifications per Compute
// Capability", 9.0). Returns "" when the configuration would launch.
std::string check_configuration(const LaunchConfig& c, const void* kernel) {
  std::ostringstream os;
  const std::uint64_t threads = std::uint64_t(c.block.x) * c.block.y * c.block.z;
  if (!c.grid.x || !c.grid.y || !c.grid.z) os << "grid has a zero dimension";
  else if (!threads) os << "block has a zero dimension";
  else if (threads > 1024 || c.block.x > 1024 || c.block.y > 1024 || c.block.z > 64)
    os << "block of " << c.block.x << "x" << c.block.y << "x" << c.block.z
       << " threads exceeds 1024 (or 1024/1024/64 per dimension)";
  else if (c.grid.x > 2147483647u || c.grid.y > 65535 || c.grid.z > 65535)
    os << "grid " << c.grid.x << "x" << c.grid.y << "x" << c.grid.z
       << " exceeds 2^31-1 x 65535 x 65535";
  else if (c.shared_bytes > 48 * 1024 && int(c.shared_bytes) > max_dynamic_shared(kernel))
    os << c.shared_bytes << " bytes of dynamic shared memory need cudaFuncSetAttribute first"
       << " (the default limit is 48 KiB)";
  else if (c.shared_bytes > 227 * 1024)
    os << c.shared_bytes << " bytes of dynamic shared memory exceed the H100's 227 KiB";
  return os.str();
}

}  // namespace

void block_barrier() { pause_current(ThreadState::AtBlockBarrier); }

void device_fault(const char* what) { thread_fault(what); }

int lane_id() { return block().current % kWarp; }

std::uint64_t warp_exchange(unsigned mask, std::uint64_t value, int source_lane) {
  Block& b = block();
  const int lane = lane_id();
  if (!(mask >> lane & 1u)) thread_fault("calls a shuffle whose mask does not name its own lane");
  if (!(mask >> source_lane & 1u))
    thread_fault("reads lane " + std::to_string(source_lane) + ", which the shuffle mask leaves out");
  EmulatedThread& me = b.threads[std::size_t(b.current)];
  me.slot = value;
  me.warp_mask = mask;
  pause_current(ThreadState::AtWarpBarrier);  // everyone has written a slot
  const int warp_first = b.current - lane;
  const std::uint64_t result = b.threads[std::size_t(warp_first + source_lane)].slot;
  pause_current(ThreadState::AtWarpBarrier);  // everyone has read before any slot is reused
  return result;
}

void* dynamic_shared_memory() { return block().dynamic_shared.start; }

bool set_race_check(bool on) {
  const bool before = race_check();
  g_race_check = on;
  return before;
}

std::uint64_t set_schedule_seed(std::uint64_t seed) {
  const std::uint64_t before = schedule_seed();
  g_schedule_seed = seed;
  return before;
}

void register_static_shared(void* address, std::size_t bytes) {
  auto& known = g_static_shared[g_running_kernel];
  for (const auto& [a, b] : known)
    if (a == address) return;
  known.emplace_back(address, bytes);
}

void run_grid(const LaunchConfig& config, const void* kernel, void (*thread_body)(void*),
              void* context) {
  const std::string bad = check_configuration(config, kernel);
  if (!bad.empty()) {
    record_launch_error(cudaErrorInvalidConfiguration, bad);
    return;
  }
  log_launch(kernel, config);
  Block& b = block();
  const int thread_count = int(config.block.x * config.block.y * config.block.z);
  // Every slot a block may use, once: a fiber's saved context must not move (a ucontext_t points
  // into itself), so the vector is never reallocated.
  if (b.threads.empty()) b.threads.resize(kMaxThreadsPerBlock);
  while (b.stacks.size() < std::size_t(thread_count))
    b.stacks.push_back(std::make_unique<char[]>(kStackBytes));
  b.dynamic_shared.prepare(config.shared_bytes);
  b.body = thread_body;
  b.body_context = context;
  b.fault.clear();
  blockDim = config.block;
  gridDim = config.grid;
  ++g_launch_count;
  g_running_kernel = kernel;
  // The blocks in a shuffled order: the i-th block run is number (a·i + c) mod n, with a coprime
  // to n, which visits every block once (an affine permutation: no table, whatever the grid size).
  const std::uint64_t blocks = std::uint64_t(config.grid.x) * config.grid.y * config.grid.z;
  // Only a few of the n! orders are reachable (neighbouring blocks always run a fixed number of
  // steps apart), but none keeps every block after its predecessor: the stride is never 1 (a mere
  // rotation of index order) past two blocks, and two blocks run in reverse.
  const std::uint64_t launch_seed = mix(schedule_seed() ^ mix(g_launch_count));
  std::uint64_t stride = blocks > 2 ? 2 + launch_seed % (blocks - 2) : 1;
  while (std::gcd(stride, blocks) != 1) ++stride;  // stops by blocks - 1, which is coprime
  const std::uint64_t offset = blocks > 2 ? mix(launch_seed) % blocks : blocks == 2 ? 1 : 0;
  for (std::uint64_t i = 0; i < blocks; ++i) {
    const auto block_number = std::uint64_t((unsigned __int128)stride * i % blocks + offset) % blocks;
    blockIdx = uint3{unsigned(block_number % config.grid.x), unsigned(block_number / config.grid.x % config.grid.y),
                     unsigned(block_number / (std::uint64_t(config.grid.x) * config.grid.y))};
    b.dynamic_shared.poison();
    poison_static_shared(kernel);
    watch_shared(kernel);
    run_block(thread_count, config.block, mix(launch_seed ^ block_number));
    if (const std::size_t past = b.dynamic_shared.written_slack(); past > 0)
      throw std::logic_error("CUDA emulator: block (" + std::to_string(blockIdx.x) + "," + std::to_string(blockIdx.y) +
                             "," + std::to_string(blockIdx.z) + ") wrote byte " + std::to_string(past) +
                             " past the end of its " + std::to_string(config.shared_bytes) +
                             " bytes of dynamic shared memory");
  }
}

void record_grid(const LaunchConfig& config, const void* kernel, std::function<void()> run) {
  const std::string bad = check_configuration(config, kernel);
  if (!bad.empty()) {
    record_launch_error(cudaErrorInvalidConfiguration, bad);
    return;
  }
  run_or_record(std::move(run));
}

std::uint64_t grids_run() { return g_launch_count; }

}  // namespace fm_emu
