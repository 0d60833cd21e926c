// core/io/jsonl.cpp — metrics log writer, tolerant reader and step truncation (see jsonl.h).
#include "core/io/jsonl.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/io/atomic_file.h"

namespace fm::io {

JsonlWriter::JsonlWriter(const std::string& path, bool truncate_existing) : path_(path) {
  int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate_existing ? O_TRUNC : 0);
  fd_ = ::open(path.c_str(), flags, 0666);
  if (fd_ < 0) throw IOError(cat(path, ": cannot open for appending: ", std::strerror(errno)));
}

JsonlWriter::~JsonlWriter() {
  if (fd_ >= 0) ::close(fd_);
}

JsonlWriter::JsonlWriter(JsonlWriter&& other) noexcept : path_(std::move(other.path_)), fd_(other.fd_) {
  other.fd_ = -1;
}

JsonlWriter& JsonlWriter::operator=(JsonlWriter&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

void JsonlWriter::append(const nlohmann::json& record) {
  if (fd_ < 0) throw IOError(cat(path_, ": writer is closed (moved from)"));
  if (!record.is_object())
    throw ValueError(cat(path_, ": a metrics record must be a JSON object, got ", record.type_name()));
  // dump() escapes control characters, so the line cannot contain a '\n' of its own. With O_APPEND
  // and one write() the line lands whole after whatever is already in the file.
  std::string line = record.dump() + "\n";
  const char* data = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    ssize_t written = ::write(fd_, data, left);
    if (written < 0 && errno == EINTR) continue;
    if (written < 0) throw IOError(cat(path_, ": appending a metrics line failed: ", std::strerror(errno)));
    data += written;
    left -= static_cast<std::size_t>(written);
  }
}

void JsonlWriter::sync() {
  if (fd_ >= 0 && ::fsync(fd_) != 0) throw IOError(cat(path_, ": fsync failed: ", std::strerror(errno)));
}

JsonlContents read_jsonl(const std::string& path) {
  std::string bytes = read_file_bytes(path);
  JsonlContents contents;
  std::size_t start = 0;
  std::int64_t line_number = 0;
  while (start < bytes.size()) {
    ++line_number;
    std::size_t end = bytes.find('\n', start);
    bool complete = end != std::string::npos;
    std::string text = bytes.substr(start, complete ? end - start : std::string::npos);
    start = complete ? end + 1 : bytes.size();
    if (!complete) {
      // The writer puts a line and its '\n' down in one write(): no '\n' means it never finished.
      contents.torn_last_line = true;
      contents.torn_line_note = cat(path, ": line ", line_number, " has no line end (", text.size(),
                                    " bytes, interrupted write?); dropped it");
      break;
    }
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t") == std::string::npos) continue;  // blank line
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(cat(path, ": line ", line_number, " is not valid JSON (", e.what(), ")"));
    }
    if (!record.is_object())
      throw FormatError(cat(path, ": line ", line_number, " is ", record.type_name(), ", expected a JSON object"));
    contents.lines.push_back({std::move(record), std::move(text), line_number});
  }
  return contents;
}

JsonlTruncation truncate_jsonl_after_step(const std::string& path, std::int64_t max_step, const std::string& step_key,
                                          const std::string& event_key) {
  JsonlTruncation result;
  std::error_code error;
  if (!std::filesystem::exists(path, error)) return result;
  JsonlContents contents = read_jsonl(path);
  result.torn_last_line = contents.torn_last_line;
  std::string kept_text;
  for (const auto& line : contents.lines) {
    auto step = line.record.find(step_key);
    if (step != line.record.end()) {
      if (!step->is_number_integer())
        throw FormatError(cat(path, ": line ", line.line_number, ": \"", step_key, "\" is ", step->dump(),
                              ", expected an integer"));
      const std::int64_t step_value = step->get<std::int64_t>();
      const bool event_after_checkpoint = !event_key.empty() && step_value == max_step && line.record.contains(event_key);
      if (step_value > max_step || event_after_checkpoint) {
        ++result.dropped;
        continue;
      }
    }
    ++result.kept;
    kept_text += line.text;
    kept_text += '\n';
  }
  write_file_atomically(path, kept_text);
  return result;
}

}  // namespace fm::io
