// kernels/cuda_emulator/launch_log.cpp — FM_EMU_LAUNCH_LOG: which kernels the emulated tests launch,
// and with how many threads and how much dynamic shared memory.
//
// The emulator checks each launch against the GPU's fixed limits (scheduler.cpp), but whether a
// kernel fits also depends on what nvcc made of it: its registers per thread, its static shared
// memory, the block size its __launch_bounds__ allow. Only ptxas knows those, and only the CUDA build
// runs ptxas. So the emulator writes down each distinct launch it runs, and
// tools/kernel_preflight.py sets them against ptxas's report on the same kernels: a launch that would
// fail on a GPU for lack of registers or shared memory fails there, before any GPU time is spent,
// and a kernel that no test launches is named.
//
// The file (FM_EMU_LAUNCH_LOG=path; unset or empty: no log) gets one tab-separated line per distinct
// (kernel, block size, dynamic shared bytes) a process runs:
//   <executable or shared object>  <kernel address, hex>  <its load base, hex, or - if unknown>  <threads per block>
//   <dynamic shared bytes>  <the dynamic shared bytes cudaFuncSetAttribute allowed it, or - if never>
// The tool turns the address into a symbol with nm (less the base where the file is position
// independent). Each line is one write() to a file opened
// with O_APPEND, so the processes of a parallel CTest run can share one file.
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>

#include "emulator_state.h"

namespace fm_emu {
namespace {

struct LaunchLog {
  int fd = -1;  // -1: no log
  std::set<std::tuple<const void*, unsigned, std::size_t>> written;
};

// Opened at the first launch (like FM_EMU_SEED, so a bad path is an error a test reports).
LaunchLog& launch_log() {
  static LaunchLog log = [] {
    LaunchLog opened;
    const char* path = std::getenv("FM_EMU_LAUNCH_LOG");
    if (!path || !*path) return opened;
    opened.fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (opened.fd < 0)
      throw std::invalid_argument(std::string("CUDA emulator: FM_EMU_LAUNCH_LOG=") + path +
                                  " cannot be opened for appending: " + std::strerror(errno));
    return opened;
  }();
  return log;
}

// The path of the file mapped at `code` (/proc/self/maps): the executable or a shared object. (dladdr
// names the main program by its argv[0], which may be relative.)
std::string object_file_of(const void* code) {
  const auto address = reinterpret_cast<std::uintptr_t>(code);
  std::FILE* maps = std::fopen("/proc/self/maps", "r");
  if (!maps) return "";
  std::string path;
  char line[PATH_MAX + 256];
  while (path.empty() && std::fgets(line, sizeof(line), maps)) {
    unsigned long long start = 0, end = 0;
    int name_at = 0;
    if (std::sscanf(line, "%llx-%llx %*s %*s %*s %*s %n", &start, &end, &name_at) < 2 || name_at == 0) continue;
    if (address < start || address >= end) continue;
    path = line + name_at;
    while (!path.empty() && (path.back() == '\n' || path.back() == ' ')) path.pop_back();
  }
  std::fclose(maps);
  return path;
}

}  // namespace

void log_launch(const void* kernel, const LaunchConfig& config) {
  LaunchLog& log = launch_log();
  if (log.fd < 0) return;
  const unsigned threads = config.block.x * config.block.y * config.block.z;
  {
    static std::mutex mutex;  // host threads could launch side by side
    std::lock_guard<std::mutex> lock(mutex);
    if (!log.written.emplace(kernel, threads, config.shared_bytes).second) return;
  }
  // No load base (dladdr found no object): "-", which the tool counts as a line it cannot name.
  Dl_info info{};
  char base_hex[32] = "-";
  if (dladdr(kernel, &info) && info.dli_fbase)
    std::snprintf(base_hex, sizeof(base_hex), "%llx",
                  static_cast<unsigned long long>(reinterpret_cast<std::uintptr_t>(info.dli_fbase)));
  const int opt_in = dynamic_shared_opt_in(kernel);
  char line[PATH_MAX + 128];
  const int n = std::snprintf(line, sizeof(line), "%s\t%llx\t%s\t%u\t%zu\t%s\n", object_file_of(kernel).c_str(),
                              static_cast<unsigned long long>(reinterpret_cast<std::uintptr_t>(kernel)), base_hex,
                              threads, config.shared_bytes, opt_in < 0 ? "-" : std::to_string(opt_in).c_str());
  if (n <= 0 || std::size_t(n) >= sizeof(line))
    throw std::runtime_error("CUDA emulator: an FM_EMU_LAUNCH_LOG line does not fit its buffer");
  if (write(log.fd, line, std::size_t(n)) != n)
    throw std::runtime_error(std::string("CUDA emulator: writing FM_EMU_LAUNCH_LOG failed: ") + std::strerror(errno));
}

}  // namespace fm_emu
