// tools/output_files.cpp — check_output_files (see output_files.h).
#include "tools/output_files.h"

#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace fm::tools {

namespace {

namespace fs = std::filesystem;

// The file a path names, for comparing: absolute, with "." and ".." resolved and, for the part that
// exists, links followed (so "run/../run/c.safetensors" and a link to it are the same file).
fs::path resolved(const std::string& path) {
  std::error_code ignored;
  const fs::path canonical = fs::weakly_canonical(fs::absolute(path), ignored);
  return canonical.empty() ? fs::absolute(path).lexically_normal() : canonical;
}

// The folder takes a new file: one is created there and removed again.
void require_writable_folder(const NamedFile& output, const fs::path& folder) {
  std::string probe = ((folder.empty() ? fs::path(".") : folder) / ".fm_output_probe.XXXXXX").string();
  const int fd = ::mkstemp(probe.data());
  FM_CHECK(fd >= 0, IOError, output.flag, ": cannot create a file in folder ",
           folder.empty() ? std::string(".") : folder.string(), " (", std::strerror(errno), ")");
  ::close(fd);
  ::unlink(probe.c_str());
}

}  // namespace

void check_output_files(const std::vector<NamedFile>& outputs, const std::vector<NamedFile>& inputs) {
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const NamedFile& output = outputs[i];
    FM_CHECK(!output.path.empty(), ConfigError, output.flag, ": an empty file name; expected a file path");
    const char last = output.path.back();
    FM_CHECK(last != '/' && fs::path(output.path).filename() != "." && fs::path(output.path).filename() != "..",
             ConfigError, output.flag, ": \"", output.path, "\" names a folder; expected a file path");
    FM_CHECK(!fs::is_directory(output.path), ConfigError, output.flag, ": ", output.path,
             " is a folder; expected a file path");
    const fs::path folder = fs::path(output.path).parent_path();
    FM_CHECK(folder.empty() || fs::is_directory(folder), IOError, output.flag, ": folder ", folder.string(),
             " does not exist");
    const fs::path file = resolved(output.path);
    for (const NamedFile& input : inputs)
      FM_CHECK(input.path.empty() || resolved(input.path) != file, ConfigError, output.flag, ": ", output.path,
               " is also ", input.flag, ", which this command reads; choose another output file");
    for (std::size_t j = 0; j < i; ++j)
      FM_CHECK(resolved(outputs[j].path) != file, ConfigError, outputs[j].flag, " and ", output.flag, ": both name ",
               output.path, "; give each its own file");
    std::string ending = fs::path(output.path).extension().string();
    for (char& c : ending) c = char(std::tolower(static_cast<unsigned char>(c)));
    FM_CHECK(!output.png || ending == ".png", ConfigError, output.flag, ": ", output.path,
             ": pictures are written as PNG; expected a name ending in .png");
    require_writable_folder(output, folder);
  }
}

}  // namespace fm::tools
