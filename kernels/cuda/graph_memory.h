// kernels/cuda/graph_memory.h — what the caching allocator (kernels/cuda/runtime.cpp) does for a
// graph being captured (kernels/cuda/graph.cpp); internal to those two files.
//
// A captured graph replays into the buffers it used while it was captured, so those buffers must not
// be handed to anyone else while the graph lives. Every block allocated or freed during the capture
// is owned by the graph (a block may have several owners) and goes back to the cache only when its
// last owner is released. A temporary of the capture (allocated and freed in it) is reused by the
// same capture's later allocations, in the stream's order, exactly as every replay will use it.
#pragma once

namespace fm::kernels::graph_memory {

struct Pool;
Pool* create_pool();
// From now until end_capture, allocations and frees go through `pool`. end_capture comes after the
// stream's capture has ended: it may free blocks, which waits for the device.
void begin_capture(Pool* pool);
void end_capture();
// The pool being captured into, or nullptr.
Pool* capturing();
// The graph is gone: the pool's free blocks return to the cache, blocks still held by tensors
// become ordinary ones (returned to the cache when freed), and the pool is deleted.
void release(Pool* pool);
// Ends the stream's capture (the partial graph is dropped) and throws DeviceError naming `what`,
// which may not happen inside a capture.
[[noreturn]] void refuse_during_capture(const char* what);

}  // namespace fm::kernels::graph_memory
