// tests/child_process.h — running a built tool (fmtrain, fmsample, fmeval) as a child process, for
// the suites that test the real binaries: test_bad_inputs (how each refusal looks from outside) and
// test_tools_fmtrain_kill (killed at random moments, then resumed).
//
// POSIX fork + exec: the child redirects stdout and stderr to files, optionally changes folder,
// limits its file size or arms a timeout, then execs the binary; the parent waits for it or polls it.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace fm::test {

// The path of a tool built next to the running test: every binary goes to the build's bin/ folder.
std::filesystem::path tool_path(const std::string& name);

struct SpawnOptions {
  std::filesystem::path cwd;               // the child's working folder; empty: the test's own
  std::string stdout_path = "/dev/null";   // created or truncated
  std::string stderr_path = "/dev/null";   // created or truncated
  unsigned timeout_seconds = 0;            // > 0: an alarm that survives exec, so a hung tool dies of SIGALRM
  std::uint64_t file_size_limit = 0;       // > 0: RLIMIT_FSIZE in bytes (a bigger write fails as on a full disk)
  bool one_omp_thread = false;             // OMP_NUM_THREADS=1 in the child
};

class ChildProcess {
 public:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  pid_t pid() const { return pid_; }
  // Waits for the child; returns its exit code, or -signal when a signal ended it.
  int wait();
  // Non-blocking: true (and the code, as wait() gives it, in *code) when the child has ended.
  bool poll_exit(int* code);
  // Sends `signal` to the child (SIGKILL to kill it at a chosen moment).
  void send(int signal) const;

 private:
  pid_t pid_;
};

// Starts `binary` with `args` (argv[0] is the binary's path). A child that cannot set itself up exits
// with 126, one whose exec fails with 127. Throws std::runtime_error when fork fails.
ChildProcess spawn(const std::string& binary, const std::vector<std::string>& args, const SpawnOptions& options = {});

}  // namespace fm::test
