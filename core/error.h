// core/error.h — the project's one exception hierarchy.
//
// Every layer throws these; the command-line tools catch fm::Error, print its one-line message and
// exit with code 2. Messages name the op (or file, or config key), what was expected and what came:
//   "conv2d: weight has 3 dims, expected 4 (out, in, kh, kw)".
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace fm {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct ShapeError : Error { using Error::Error; };     // wrong rank, sizes, broadcast failure
struct DTypeError : Error { using Error::Error; };     // dtype mismatch or unsupported dtype
struct DeviceError : Error { using Error::Error; };    // device mismatch, no GPU, CUDA failure
struct ValueError : Error { using Error::Error; };     // bad argument value (stride 0, eps < 0, ...)
struct AutogradError : Error { using Error::Error; };  // backward of a non-scalar, no graph, ...
struct ConfigError : Error { using Error::Error; };    // bad config key/type/range, bad CLI flag
struct FormatError : Error { using Error::Error; };    // malformed file (safetensors, IDX, npy, ...)
struct IOError : Error { using Error::Error; };        // cannot open/read/write a file
struct NumericError : Error { using Error::Error; };   // NaN/Inf where finite numbers were needed (anomaly mode, divergence)

// Builds a message from any streamable pieces: fm::cat("conv2d: got ", n, " dims").
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}

}  // namespace fm

// Throws ErrType with a message built from the remaining arguments when cond is false.
#define FM_CHECK(cond, ErrType, ...)                       \
  do {                                                     \
    if (!(cond)) throw ErrType(::fm::cat(__VA_ARGS__));    \
  } while (0)
