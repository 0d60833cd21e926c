// core/io/jsonl.h — the metrics log: one JSON object per line (metrics.jsonl).
//
// Part of core/io/. The trainer appends a line per logging step; a resumed run first cuts the log back
// to its checkpoint's step (truncate_jsonl_after_step) so the lines it writes again are not doubled.
// A crash can tear the last line; the reader drops it and says so instead of failing the resume.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fm::io {

// Appends objects to a .jsonl file, one line each. Every line reaches the OS with a single write()
// as soon as it is logged, so `tail -f` and a crash both see whole lines; it is not fsynced per line
// (that would cost a disk round trip per step). Call sync() where durability matters (checkpoints).
// On resume, open it after truncate_jsonl_after_step: the truncation replaces the file, and a writer
// opened before it would go on appending to the replaced one.
class JsonlWriter {
 public:
  // Opens `path` for appending (creating it when missing); truncate_existing = true starts empty.
  explicit JsonlWriter(const std::string& path, bool truncate_existing = false);
  ~JsonlWriter();
  JsonlWriter(const JsonlWriter&) = delete;
  JsonlWriter& operator=(const JsonlWriter&) = delete;
  JsonlWriter(JsonlWriter&& other) noexcept;
  JsonlWriter& operator=(JsonlWriter&& other) noexcept;

  // Writes `record` (must be a JSON object) as one compact line. Throws fm::ValueError for a
  // non-object and fm::IOError when the write fails.
  void append(const nlohmann::json& record);
  // fsync: every line appended so far is on disk when this returns.
  void sync();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

struct JsonlLine {
  nlohmann::json record;  // the parsed object
  std::string text;       // the line exactly as stored, without its '\n' (rewritten byte for byte)
  std::int64_t line_number = 0;  // 1-based
};

struct JsonlContents {
  std::vector<JsonlLine> lines;  // complete records, in file order (blank lines skipped)
  bool torn_last_line = false;   // the file ended in a partial line (a crash mid-write); it was dropped
  std::string torn_line_note;    // what was dropped, for a log message ("" when nothing was)
};

// Reads every record. A last line without its '\n' is the trace of an interrupted write: it is
// dropped and reported in torn_last_line / torn_line_note, not thrown. Any other line that is not a
// JSON object is corruption: fm::FormatError naming the file and the line. A missing file throws
// fm::IOError.
JsonlContents read_jsonl(const std::string& path);

struct JsonlTruncation {
  std::int64_t kept = 0;     // lines kept
  std::int64_t dropped = 0;  // lines with step > max_step removed
  bool torn_last_line = false;  // a torn last line was removed too
};

// Rewrites `path` (atomically) keeping only the records whose `step_key` is <= max_step, and those
// without the key (run headers, notes). Kept lines are copied byte for byte. A record whose step is
// not an integer throws fm::FormatError. A missing file is not an error: nothing to cut, all zeros.
// When `event_key` is not empty, records holding that key at exactly max_step are dropped too: events
// logged after the checkpoint of that step (a run's final evaluation), which a resumed run writes again.
JsonlTruncation truncate_jsonl_after_step(const std::string& path, std::int64_t max_step,
                                          const std::string& step_key = "step", const std::string& event_key = "");

}  // namespace fm::io
