// core/host_allocator.cpp — the host block cache (see core/host_allocator.h).
#include "core/host_allocator.h"

#include <algorithm>
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
  std::unordered_map<std::size_t, std::vector<void*>> free_blocks;  // size class -> blocks
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

}  // namespace

bool direct() { return cache().direct; }

void* allocate(std::size_t bytes) {
  const std::size_t rounded = size_class(bytes);
  BlockCache& c = cache();
  if (!c.direct) {
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.free_blocks.find(rounded);
    if (it != c.free_blocks.end() && !it->second.empty()) {
      void* block = it->second.back();
      it->second.pop_back();
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
      c.free_blocks[rounded].push_back(ptr);
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
