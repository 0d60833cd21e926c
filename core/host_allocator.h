// core/host_allocator.h — host (CPU) memory for tensor storage, through a cache of freed blocks.
//
// A training step allocates and frees the same few dozen buffers every step. Straight from malloc,
// large ones come from fresh mmap'd pages each time (a page fault and a zero-fill per 4 KiB page, the
// kernel's work before ours even starts) and small ones cost malloc's bookkeeping; the profile showed
// both (docs/results.md). Like the CUDA caching allocator (kernels/runtime.h), freed blocks are kept
// in free lists by size and handed out again, so from the second step on a step allocates nothing
// from the system.
//
// Blocks are 64-byte aligned (whole cache lines, aligned vector loads). Sizes are rounded up to 64
// bytes, so a block is reused exactly by requests of its size class: the shapes of a training loop
// repeat exactly. At most kMaxCachedBytes are kept; a block freed beyond that goes back to the system.
// FM_CPU_ALLOCATOR=direct, and any AddressSanitizer build, bypass the cache: every tensor then gets
// its own allocation, so a use after free or an overrun is reported.
#pragma once
#include <cstddef>

namespace fm::host_memory {

constexpr std::size_t kMaxCachedBytes = std::size_t(1) << 30;

// At least `bytes` (at least 1), 64-byte aligned; throws fm::Error when the system has no memory.
void* allocate(std::size_t bytes);
// Gives back a block from allocate(); `bytes` is the size it was asked for.
void release(void* ptr, std::size_t bytes);
// Bytes held in the free lists now (for tests and reports).
std::size_t cached_bytes();
// Whether the cache is bypassed (FM_CPU_ALLOCATOR=direct or a sanitizer build).
bool direct();
// How many times allocate() has been called since the program started (cache hits included): a test
// reads it before and after some work to show that the work allocates no tensor storage.
std::size_t allocation_count();

}  // namespace fm::host_memory
