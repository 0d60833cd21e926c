// tests/child_process.cpp — fork + exec of a built tool, and waiting for it (see child_process.h).
#include "child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <stdexcept>

namespace fm::test {
namespace {

int exit_code_of(int status) { return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status); }

}  // namespace

std::filesystem::path tool_path(const std::string& name) {
  return std::filesystem::read_symlink("/proc/self/exe").parent_path() / name;
}

int ChildProcess::wait() {
  int status = 0;
  pid_t done;
  while ((done = ::waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
  }
  if (done != pid_) throw std::runtime_error("waitpid failed for child " + std::to_string(pid_));
  pid_ = -1;
  return exit_code_of(status);
}

bool ChildProcess::poll_exit(int* code) {
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
  pid_ = -1;
  *code = exit_code_of(status);
  return true;
}

void ChildProcess::send(int signal) const { ::kill(pid_, signal); }

ChildProcess spawn(const std::string& binary, const std::vector<std::string>& args, const SpawnOptions& options) {
  // Everything that allocates happens before fork: the child makes only async-signal-safe calls
  // until exec (setenv aside, which no other thread of this process runs at that moment).
  std::vector<std::string> all = {binary};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string cwd = options.cwd.string();

  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int out = ::open(options.stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = ::open(options.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0 || err < 0 || (!cwd.empty() && ::chdir(cwd.c_str()) != 0) || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0)
      ::_exit(126);
    if (options.file_size_limit) {
      rlimit limit{rlim_t(options.file_size_limit), rlim_t(options.file_size_limit)};
      ::setrlimit(RLIMIT_FSIZE, &limit);
    }
    if (options.one_omp_thread) ::setenv("OMP_NUM_THREADS", "1", 1);
    if (options.timeout_seconds) ::alarm(options.timeout_seconds);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  return ChildProcess(pid);
}

}  // namespace fm::test
