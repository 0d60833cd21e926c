// core/io/npy.cpp — .npy writer and validating reader (see npy.h).
#include "core/io/npy.h"

#include <bit>
#include <cctype>
#include <cstring>
#include <optional>
#include <sstream>

#include "core/error.h"
#include "core/io/atomic_file.h"

namespace fm::io {

static_assert(std::endian::native == std::endian::little, ".npy I/O writes '<' (little-endian) data as it is");

namespace {

constexpr char kMagic[] = "\x93NUMPY";  // 6 bytes
constexpr std::size_t kMagicSize = 6;

std::size_t element_size(NpyDType dtype) { return dtype == NpyDType::Float32 ? 4 : 8; }

std::uint64_t checked_element_count(const std::vector<std::int64_t>& shape, const char* what) {
  std::uint64_t count = 1;
  for (std::int64_t dim : shape) {
    if (dim < 0) throw ValueError(cat(what, ": shape has a negative dim ", dim));
    if (__builtin_mul_overflow(count, static_cast<std::uint64_t>(dim), &count))
      throw ValueError(cat(what, ": shape overflows 64 bits"));
  }
  return count;
}

// The header dict exactly as numpy writes it: a 1-d shape keeps its trailing comma, "(3,)".
std::string header_dict(NpyDType dtype, const std::vector<std::int64_t>& shape) {
  std::ostringstream os;
  os << "{'descr': '" << npy_descr(dtype) << "', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  if (shape.size() == 1) os << ',';
  os << "), }";
  return os.str();
}

// ---- a reader for the one Python literal numpy writes --------------------------------------------

class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& source) : text_(text), source_(source) {}

  void parse(std::optional<std::string>& descr, std::optional<bool>& fortran_order,
             std::optional<std::vector<std::int64_t>>& shape) {
    skip_space();
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      std::string key = parse_string();
      skip_space();
      expect(':');
      skip_space();
      if (key == "descr") descr = parse_string();
      else if (key == "fortran_order") fortran_order = parse_bool();
      else if (key == "shape") shape = parse_shape();
      else fail(cat("unknown key '", key, "' (expected descr, fortran_order, shape)"));
      skip_space();
      if (peek() == ',') ++pos_;
      else if (peek() != '}') fail("expected ',' or '}' after a value");
    }
    ++pos_;  // '}'
    skip_space();
    if (pos_ != text_.size()) fail("unexpected text after the closing '}'");
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    // Quote the header without its padding and final newline, so the message stays on one line.
    std::string_view shown = text_.substr(0, 120);
    while (!shown.empty() && std::isspace(static_cast<unsigned char>(shown.back()))) shown.remove_suffix(1);
    std::string one_line(shown);
    for (char& c : one_line)
      if (c == '\n' || c == '\r') c = ' ';
    throw FormatError(cat(source_, ": .npy header dict at character ", pos_, ": ", what, "; header is \"", one_line,
                          "\""));
  }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  void expect(char c) {
    if (peek() != c) fail(cat("expected '", c, "'"));
    ++pos_;
  }
  std::string parse_string() {
    char quote = peek();
    if (quote != '\'' && quote != '"') fail("expected a quoted string");
    ++pos_;
    std::size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] != quote) ++pos_;
    if (pos_ >= text_.size()) fail("unterminated string");
    return std::string(text_.substr(start, pos_++ - start));
  }
  bool parse_bool() {
    if (text_.substr(pos_, 4) == "True") return pos_ += 4, true;
    if (text_.substr(pos_, 5) == "False") return pos_ += 5, false;
    fail("expected True or False");
  }
  std::vector<std::int64_t> parse_shape() {
    expect('(');
    std::vector<std::int64_t> dims;
    while (true) {
      skip_space();
      if (peek() == ')') break;
      if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("expected a non-negative integer in the shape");
      std::int64_t dim = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        if (__builtin_mul_overflow(dim, 10, &dim) || __builtin_add_overflow(dim, peek() - '0', &dim))
          fail("shape dim overflows 64 bits");
        ++pos_;
      }
      dims.push_back(dim);
      skip_space();
      if (peek() == ',') ++pos_;
      else if (peek() != ')') fail("expected ',' or ')' in the shape");
    }
    ++pos_;  // ')'
    return dims;
  }

  std::string_view text_;
  const std::string& source_;
  std::size_t pos_ = 0;
};

}  // namespace

const char* npy_descr(NpyDType dtype) { return dtype == NpyDType::Float32 ? "<f4" : "<f8"; }

std::string encode_npy(NpyDType dtype, const void* data, const std::vector<std::int64_t>& shape) {
  std::uint64_t count = checked_element_count(shape, "write_npy");
  std::uint64_t data_bytes = count * element_size(dtype);
  if (count > 0 && data == nullptr) throw ValueError("write_npy: null data pointer for a non-empty array");

  std::string dict = header_dict(dtype, shape);
  // Preamble (magic 6 + version 2 + length 2) + dict + padding + '\n' must be a multiple of 64, so the
  // data is aligned for any reader that maps the file.
  std::size_t unpadded = kMagicSize + 2 + 2 + dict.size() + 1;
  std::size_t padding = (64 - unpadded % 64) % 64;
  std::size_t header_length = dict.size() + padding + 1;
  if (header_length > 0xffff) throw ValueError("write_npy: shape too long for a version 1.0 header");

  std::string out;
  out.reserve(kMagicSize + 4 + header_length + data_bytes);
  out.append(kMagic, kMagicSize);
  out.push_back('\x01');  // version 1.0
  out.push_back('\x00');
  out.push_back(static_cast<char>(header_length & 0xff));
  out.push_back(static_cast<char>(header_length >> 8));
  out += dict;
  out.append(padding, ' ');
  out.push_back('\n');
  if (data_bytes > 0) out.append(static_cast<const char*>(data), data_bytes);
  return out;
}

void write_npy(const std::string& path, const float* data, const std::vector<std::int64_t>& shape) {
  write_file_atomically(path, encode_npy(NpyDType::Float32, data, shape));
}
void write_npy(const std::string& path, const double* data, const std::vector<std::int64_t>& shape) {
  write_file_atomically(path, encode_npy(NpyDType::Float64, data, shape));
}

std::int64_t NpyArray::element_count() const {
  std::int64_t count = 1;
  for (std::int64_t dim : shape) count *= dim;
  return count;
}

const float* NpyArray::float32_data() const {
  if (dtype != NpyDType::Float32) throw DTypeError("NpyArray: holds float64 ('<f8'), float32 data requested");
  return reinterpret_cast<const float*>(bytes.data());
}
const double* NpyArray::float64_data() const {
  if (dtype != NpyDType::Float64) throw DTypeError("NpyArray: holds float32 ('<f4'), float64 data requested");
  return reinterpret_cast<const double*>(bytes.data());
}

std::vector<float> NpyArray::to_float32() const {
  std::size_t n = static_cast<std::size_t>(element_count());
  if (dtype == NpyDType::Float32) return std::vector<float>(float32_data(), float32_data() + n);
  const double* source = float64_data();
  return std::vector<float>(source, source + n);
}
std::vector<double> NpyArray::to_float64() const {
  std::size_t n = static_cast<std::size_t>(element_count());
  if (dtype == NpyDType::Float64) return std::vector<double>(float64_data(), float64_data() + n);
  const float* source = float32_data();
  return std::vector<double>(source, source + n);
}

NpyArray decode_npy(std::string_view file, const std::string& source) {
  if (file.size() < kMagicSize + 4 || file.substr(0, kMagicSize) != std::string_view(kMagic, kMagicSize))
    throw FormatError(cat(source, ": not a .npy file (expected the magic \"\\x93NUMPY\" at the start)"));
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(file[i]); };
  unsigned major = byte(6), minor = byte(7);
  std::size_t header_length = 0, preamble = 0;
  if (major == 1 && minor == 0) {
    header_length = byte(8) | (std::size_t(byte(9)) << 8);
    preamble = 10;
  } else if (major == 2 && minor == 0) {
    if (file.size() < 12) throw FormatError(cat(source, ": .npy v2.0 preamble truncated"));
    header_length = byte(8) | (std::size_t(byte(9)) << 8) | (std::size_t(byte(10)) << 16) |
                    (std::size_t(byte(11)) << 24);
    preamble = 12;
  } else {
    throw FormatError(cat(source, ": .npy version ", major, ".", minor, ", expected 1.0 or 2.0"));
  }
  if (header_length > file.size() - preamble)
    throw FormatError(cat(source, ": .npy header length ", header_length, " runs past the end of the file (",
                          file.size() - preamble, " bytes follow)"));

  std::optional<std::string> descr;
  std::optional<bool> fortran_order;
  std::optional<std::vector<std::int64_t>> shape;
  HeaderParser(file.substr(preamble, header_length), source).parse(descr, fortran_order, shape);
  if (!descr || !fortran_order || !shape)
    throw FormatError(cat(source, ": .npy header lacks ", !descr ? "'descr'" : !fortran_order ? "'fortran_order'" : "'shape'"));

  NpyArray array;
  if (*descr == "<f4") array.dtype = NpyDType::Float32;
  else if (*descr == "<f8") array.dtype = NpyDType::Float64;
  else
    throw FormatError(cat(source, ": .npy dtype '", *descr, "' is not supported, expected '<f4' or '<f8' "
                          "(little-endian float32/float64)"));
  if (*fortran_order)
    throw FormatError(cat(source, ": .npy array is in Fortran order, expected C order "
                          "(save with numpy.ascontiguousarray)"));
  array.shape = *shape;

  // The running product in int64, as element_count() forms it: with a later 0 dim the total is 0,
  // but (4294967296, 2147483649, 0) would still overflow on the way there.
  std::int64_t signed_count = 1;
  for (std::int64_t dim : array.shape)
    if (__builtin_mul_overflow(signed_count, dim, &signed_count))
      throw FormatError(cat(source, ": .npy shape overflows 64 bits"));
  std::uint64_t count = static_cast<std::uint64_t>(signed_count);
  std::uint64_t expected_bytes = 0;
  if (__builtin_mul_overflow(count, element_size(array.dtype), &expected_bytes))
    throw FormatError(cat(source, ": .npy shape overflows 64 bits"));
  std::size_t data_start = preamble + header_length;
  std::uint64_t present = file.size() - data_start;
  if (present != expected_bytes)
    throw FormatError(cat(source, ": .npy data is ", present, " bytes, expected ", expected_bytes, " (", count,
                          " elements of ", *descr, ")", present < expected_bytes ? ": file truncated" : ": trailing bytes"));
  array.bytes.assign(file.begin() + data_start, file.end());
  return array;
}

NpyArray read_npy(const std::string& path) { return decode_npy(read_file_bytes(path), path); }

}  // namespace fm::io
