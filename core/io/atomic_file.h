// core/io/atomic_file.h — whole-file writes that are atomic, and whole-file reads with clear errors.
//
// Sits at the bottom of core/io/: every writer in this folder (safetensors, npy, PNG, the truncated
// metrics log) goes through write_file_atomically, so a crash or a full disk never leaves a half-written
// checkpoint or image under its real name. Works on raw bytes only; no Tensor here.
#pragma once
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <string_view>

namespace fm::io {

// Writes a file so that `path` holds either its old contents or the complete new ones, never a mix:
//   1. create a temp file in the same folder (rename is only atomic within one file system),
//   2. let `writer` stream the contents into it,
//   3. flush and fsync the temp file (its data is on disk before its name is),
//   4. rename it over `path`, then fsync the folder (so the rename itself survives a power cut).
// On any failure the temp file is removed and `path` is untouched. I/O failures throw fm::IOError
// naming the file and the system's reason; an exception thrown by `writer` itself is passed on
// unchanged (it already says what was wrong).
void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& writer);

// The same for contents already in memory.
void write_file_atomically(const std::string& path, std::string_view contents);

// True when `file_name` (a name, not a path) is one of write_file_atomically's temp files:
// ".<name>.tmp.<pid>.<salt>.<n>.<attempt>", digits and dots after ".tmp.".
bool is_atomic_write_temp_name(const std::string& file_name);

// Removes the temp files that write_file_atomically leaves when its process is killed mid-write
// (the names is_atomic_write_temp_name accepts, in `dir`). Call it only on a folder no other process
// is writing to (fmtrain --resume on its run directory). Returns how many it removed.
std::int64_t remove_stale_temp_files(const std::string& dir);
// The same for the temp files of one target `path` only (those write_file_atomically(path, ...) makes
// beside it), safe in a folder other processes write to. Returns how many it removed.
std::int64_t remove_stale_temp_files_of(const std::string& path);

// Reads a whole regular file. Throws fm::IOError naming the file when it is missing, unreadable,
// a directory, or shrinks while being read.
std::string read_file_bytes(const std::string& path);

}  // namespace fm::io
