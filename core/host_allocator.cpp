// core/host_allocator.cpp — the host block cache (see core/host_allocator.h).
#include "core/host_allocator.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace fm::host_memory {
namespace {

// AddressSanitizer only sees malloc and free: a cached block would hide a use after free.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitizerBuild = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitizerBuild = true;
#else
constexpr bool kSanitizerBuild = false;
#endif
#else
constexpr bool kSanitizerBuild = false;
#endif

std::size_t size_class(std::size_t bytes) { return (std::max<std::size_t>(bytes, 1) + 63) / 64 * 64; }

struct BlockCache {
  std::mutex mutex;  // tensors may be freed on any thread
  // Size class -> its free blocks. The classes up to 64 KiB (every small tensor of every op) are an
  // array indexed by class, the larger ones a map: a tiny op's allocation costs no hash and no division.
  static constexpr std::size_t kIndexedClasses = 1024;  // 64 B, 128 B, ..., 64 KiB
  std::vector<void*> indexed_blocks[kIndexedClasses];
  std::unordered_map<std::size_t, std::vector<void*>> large_blocks;
  std::vector<void*>& blocks_of(std::size_t rounded) {
    const std::size_t index = rounded / 64 - 1;
    return index < kIndexedClasses ? indexed_blocks[index] : large_blocks[rounded];
  }
  std::size_t cached = 0;
  bool direct = false;
  BlockCache() {
    const char* env = std::getenv("FM_CPU_ALLOCATOR");
    direct = kSanitizerBuild || (env && std::strcmp(env, "direct") == 0);
  }
  // Never destroyed: tensors in static objects may be freed after main returns.
};
BlockCache& cache() {
  static BlockCache* instance = new BlockCache();
  return *instance;
}

std::atomic<std::size_t> g_allocation_count{0};

}  // namespace

bool direct() { return cache().direct; }
std::size_t allocation_count() { return g_allocation_count.load(std::memory_order_relaxed); }

void* allocate(std::size_t bytes) {
  g_allocation_count.fetch_add(1, std::memory_order_relaxed);
  const std::size_t rounded = size_class(bytes);
  BlockCache& c = cache();
  if (!c.direct) {
    std::lock_guard<std::mutex> lock(c.mutex);
    std::vector<void*>& blocks = c.blocks_of(rounded);
    if (!blocks.empty()) {
      void* block = blocks.back();
      blocks.pop_back();
      c.cached -= rounded;
      return block;
    }
  }
  void* block = std::aligned_alloc(64, rounded);
  if (!block) throw Error(cat("out of host memory allocating ", bytes, " bytes"));
  return block;
}

void release(void* ptr, std::size_t bytes) {
  if (!ptr) return;
  const std::size_t rounded = size_class(bytes);
  BlockCache& c = cache();
  if (!c.direct) {
    std::lock_guard<std::mutex> lock(c.mutex);
    if (c.cached + rounded <= kMaxCachedBytes) {
      c.blocks_of(rounded).push_back(ptr);
      c.cached += rounded;
      return;
    }
  }
  std::free(ptr);
}

std::size_t cached_bytes() {
  BlockCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.cached;
}

}  // namespace fm::host_memory
