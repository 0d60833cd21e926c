// tools/output_files.h — the files a command will write, checked before it starts its work.
//
// fmsample, fmeval and fmreflow write their files after minutes or hours of sampling. A path that
// cannot be written found only then costs the work, and one output written before another fails is a
// half-finished result; a path that names the checkpoint being read (or another output) silently
// destroys it. So each command lists its outputs and inputs up front, and this refuses, in one line
// naming the flag:
//   - an empty name, or one that ends in a folder separator (a folder, not a file);
//   - an existing folder, or a folder that does not exist or takes no new file (a file is created
//     there and removed again, so a read-only or virtual file system is found now);
//   - an output that is one of the inputs, or two outputs that are the same file (the same path
//     after resolving ".." and links);
//   - a picture (written as PNG) whose name does not end in ".png" (any case): "grid.jpg" holding PNG bytes
//     would mislead every program that trusts the ending.
//
// Layer: tools/.
#pragma once
#include <string>
#include <vector>

namespace fm::tools {

struct NamedFile {
  std::string flag;  // "--out", or how the file came about ("--npy (from --out)")
  std::string path;
  bool png = false;  // a picture: written as PNG, so the name must end in ".png"
};

// ConfigError for a name or a clash, IOError for a folder; nothing is left behind. Empty paths among
// `inputs` are skipped (an input not given).
void check_output_files(const std::vector<NamedFile>& outputs, const std::vector<NamedFile>& inputs = {});

}  // namespace fm::tools
