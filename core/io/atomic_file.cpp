// core/io/atomic_file.cpp — temp file + fsync + rename + folder fsync (see atomic_file.h).
//
// std::ofstream cannot fsync, so the temp file is written through a small std::streambuf over a POSIX
// file descriptor; writers still see an ordinary std::ostream.
#include "core/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <streambuf>
#include <vector>

#include "core/error.h"

namespace fm::io {
namespace {

std::string system_reason(int error_number) { return std::strerror(error_number); }

// Writes all of [data, data + size) to fd, retrying short writes and EINTR. Returns 0 or an errno.
int write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    ssize_t written = ::write(fd, data, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += written;
    size -= static_cast<std::size_t>(written);
  }
  return 0;
}

// A buffered output streambuf over a file descriptor. It remembers the first write error (errno) so
// the caller can report the system's reason instead of a bare "stream failed".
class FdOutputBuffer : public std::streambuf {
 public:
  explicit FdOutputBuffer(int fd) : fd_(fd), buffer_(1 << 16) {
    setp(buffer_.data(), buffer_.data() + buffer_.size());
  }
  int first_error() const { return first_error_; }

 protected:
  int_type overflow(int_type ch) override {
    if (flush_buffer() != 0) return traits_type::eof();
    if (!traits_type::eq_int_type(ch, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(ch);
      pbump(1);
    }
    return traits_type::not_eof(ch);
  }
  std::streamsize xsputn(const char* data, std::streamsize count) override {
    // Large blocks (tensor data) go straight to the descriptor instead of through the buffer.
    if (count >= static_cast<std::streamsize>(buffer_.size())) {
      if (flush_buffer() != 0) return 0;
      if (int err = write_all(fd_, data, static_cast<std::size_t>(count))) {
        remember(err);
        return 0;
      }
      return count;
    }
    return std::streambuf::xsputn(data, count);
  }
  int sync() override { return flush_buffer() == 0 ? 0 : -1; }

 private:
  int flush_buffer() {
    std::size_t pending = static_cast<std::size_t>(pptr() - pbase());
    if (pending > 0) {
      if (int err = write_all(fd_, pbase(), pending)) {
        remember(err);
        return -1;
      }
    }
    setp(buffer_.data(), buffer_.data() + buffer_.size());
    return first_error_ == 0 ? 0 : -1;
  }
  void remember(int err) {
    if (first_error_ == 0) first_error_ = err;
  }

  int fd_;
  std::vector<char> buffer_;
  int first_error_ = 0;
};

// A temp name next to the target: hidden, and unique per process and call, so two writers of the same
// target (or a stale temp left by a killed process) never collide.
std::string temp_name_for(const std::filesystem::path& target, int attempt) {
  static std::atomic<unsigned> counter{0};
  static const unsigned long process_salt = std::random_device{}();
  std::filesystem::path dir = target.parent_path();
  std::string name = cat(".", target.filename().string(), ".tmp.", ::getpid(), ".", process_salt % 100000, ".",
                         counter++, ".", attempt);
  return (dir / name).string();
}

// fsync on the folder makes the rename durable. Some file systems refuse fsync on a directory
// (EINVAL); there is nothing more we can do there, so that case is not an error.
void sync_directory(const std::string& dir, const std::string& target) {
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0)
    throw IOError(cat(target, ": written, but cannot open its folder '", dir,
                      "' to sync the rename: ", system_reason(errno)));
  int result = ::fsync(dir_fd);
  int err = errno;
  ::close(dir_fd);
  if (result != 0 && err != EINVAL && err != ENOTSUP)
    throw IOError(cat(target, ": written, but syncing its folder '", dir, "' failed: ", system_reason(err)));
}

}  // namespace

void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& writer) {
  if (path.empty()) throw IOError("write_file_atomically: empty file name");
  std::filesystem::path target(path);
  if (target.filename().empty())
    throw IOError(cat(path, ": cannot write, the name ends in a folder separator (expected a file name)"));
  std::string dir = target.parent_path().empty() ? std::string(".") : target.parent_path().string();

  // 0666 before the umask: the same permissions a plain ofstream would give (mkstemp's 0600 would
  // make checkpoints unreadable to the rest of a group).
  std::string temp_path;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    temp_path = temp_name_for(target, attempt);
    fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST)
      throw IOError(cat(path, ": cannot create temp file '", temp_path, "' in its folder: ",
                        system_reason(errno)));
  }
  if (fd < 0) throw IOError(cat(path, ": cannot create a temp file in its folder (100 names taken)"));

  auto discard_temp = [&] {
    if (fd >= 0) ::close(fd);
    fd = -1;
    ::unlink(temp_path.c_str());
  };

  try {
    FdOutputBuffer buffer(fd);
    std::ostream stream(&buffer);
    writer(stream);
    stream.flush();
    if (buffer.first_error() != 0)
      throw IOError(cat(path, ": writing failed: ", system_reason(buffer.first_error())));
    if (!stream) throw IOError(cat(path, ": writing failed (the output stream reported an error)"));
    if (::fsync(fd) != 0) throw IOError(cat(path, ": fsync of the temp file failed: ", system_reason(errno)));
    int close_result = ::close(fd);
    fd = -1;
    if (close_result != 0) throw IOError(cat(path, ": closing the temp file failed: ", system_reason(errno)));
    if (::rename(temp_path.c_str(), path.c_str()) != 0)
      throw IOError(cat(path, ": cannot rename the temp file over it: ", system_reason(errno)));
  } catch (...) {
    discard_temp();
    throw;
  }
  sync_directory(dir, path);
}

bool is_atomic_write_temp_name(const std::string& name) {
  // The shape temp_name_for gives: a leading dot, then ".tmp." followed by digits and dots only.
  std::size_t tmp = name.rfind(".tmp.");
  if (name.size() < 2 || name[0] != '.' || tmp == std::string::npos || tmp == 0) return false;
  return name.find_first_not_of("0123456789.", tmp + 5) == std::string::npos;
}

namespace {
// The temp files in `dir` whose names start with `prefix` ("" for all of them), removed.
std::int64_t remove_temp_files(const std::filesystem::path& dir, const std::string& prefix) {
  std::int64_t removed = 0;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || !is_atomic_write_temp_name(name)) continue;
    if (!entry.is_regular_file(error)) continue;
    if (std::filesystem::remove(entry.path(), error)) ++removed;
  }
  return removed;
}
}  // namespace

std::int64_t remove_stale_temp_files(const std::string& dir) { return remove_temp_files(dir, ""); }

std::int64_t remove_stale_temp_files_of(const std::string& path) {
  const std::filesystem::path target(path);
  const std::filesystem::path dir = target.parent_path().empty() ? std::filesystem::path(".") : target.parent_path();
  return remove_temp_files(dir, "." + target.filename().string() + ".tmp.");
}

void write_file_atomically(const std::string& path, std::string_view contents) {
  write_file_atomically(path, [&](std::ostream& out) {
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  });
}

std::string read_file_bytes(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IOError(cat(path, ": cannot open for reading: ", system_reason(errno)));
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    int err = errno;
    ::close(fd);
    throw IOError(cat(path, ": cannot stat: ", system_reason(err)));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    throw IOError(cat(path, ": not a regular file (expected a file, found a folder or device)"));
  }
  std::string contents(static_cast<std::size_t>(info.st_size), '\0');
  std::size_t filled = 0;
  while (filled < contents.size()) {
    ssize_t got = ::read(fd, contents.data() + filled, contents.size() - filled);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      int err = errno;
      ::close(fd);
      throw IOError(cat(path, ": read failed after ", filled, " bytes: ", system_reason(err)));
    }
    if (got == 0) {
      ::close(fd);
      throw IOError(cat(path, ": file shrank while reading (", filled, " of ", contents.size(), " bytes)"));
    }
    filled += static_cast<std::size_t>(got);
  }
  ::close(fd);
  return contents;
}

}  // namespace fm::io
