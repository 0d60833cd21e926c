// core/io/safetensors.cpp — the safetensors writer and the validating reader (see safetensors.h).
#include "core/io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/io/atomic_file.h"

namespace fm::io {

// The format stores little-endian numbers; the engine writes its memory as it is.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

constexpr const char* kMetadataKey = "__metadata__";
// Python's safetensors refuses headers above 100 MB; so do we, so a corrupt length cannot make us
// allocate gigabytes before the JSON parser even starts.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
constexpr int kMaxHeaderDepth = 64;  // JSON nesting; a valid header needs 3

// Where one tensor sits in the data section, as the header says.
struct TensorLayout {
  std::string name;
  std::string dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0, end = 0;
};

struct ParsedHeader {
  std::vector<TensorLayout> layouts;  // sorted by (begin, end)
  std::map<std::string, std::string> metadata;
};

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

void put_u64_le(std::ostream& out, std::uint64_t value) {
  char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  out.write(bytes, 8);
}

std::uint64_t get_u64_le(const unsigned char* bytes) {
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

// ---- writing ------------------------------------------------------------------------------------

// Checks the entries and builds the padded JSON header. Returns the header text.
std::string build_header(const std::vector<SafetensorsTensorView>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  nlohmann::ordered_json meta = nlohmann::ordered_json::object();
  for (const auto& [key, value] : metadata) {
    if (key == "format" && value != "pt")
      throw ValueError(cat("write_safetensors: metadata \"format\" is \"", value,
                           "\", expected \"pt\" (PyTorch loaders check it)"));
    meta[key] = value;
  }
  if (!meta.contains("format")) meta["format"] = "pt";
  header[kMetadataKey] = std::move(meta);

  std::set<std::string> seen;
  std::uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (t.name.empty()) throw ValueError("write_safetensors: a tensor has an empty name");
    if (t.name == kMetadataKey)
      throw ValueError("write_safetensors: a tensor cannot be called \"__metadata__\" (reserved)");
    if (!seen.insert(t.name).second)
      throw ValueError(cat("write_safetensors: tensor name '", t.name, "' appears twice"));
    std::size_t element_size = safetensors_dtype_size(t.dtype);
    if (element_size == 0)
      throw ValueError(cat("write_safetensors: tensor '", t.name, "' has unknown dtype \"", t.dtype,
                           "\" (expected F32, F64, I64, U8, ...)"));
    std::uint64_t expected_bytes = element_size;
    for (std::int64_t dim : t.shape) {
      if (dim < 0)
        throw ValueError(cat("write_safetensors: tensor '", t.name, "' has shape ", shape_text(t.shape),
                             " with a negative dim"));
      if (__builtin_mul_overflow(expected_bytes, static_cast<std::uint64_t>(dim), &expected_bytes))
        throw ValueError(cat("write_safetensors: tensor '", t.name, "' shape ", shape_text(t.shape),
                             " overflows 64 bits"));
    }
    if (expected_bytes != t.byte_size)
      throw ValueError(cat("write_safetensors: tensor '", t.name, "' has ", t.byte_size, " bytes, expected ",
                           expected_bytes, " for ", t.dtype, " ", shape_text(t.shape)));
    if (t.byte_size > 0 && t.data == nullptr)
      throw ValueError(cat("write_safetensors: tensor '", t.name, "' has ", t.byte_size,
                           " bytes but a null data pointer"));
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.byte_size}}};
    offset += t.byte_size;
  }

  std::string text = header.dump();  // compact, keys in insertion order: __metadata__ first
  // Spaces up to a multiple of 8: the data section then starts 8-byte aligned, so a reader that maps
  // the file can view F64/I64 tensors in place.
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

void write_encoded(std::ostream& out, const std::vector<SafetensorsTensorView>& tensors,
                   const std::string& header) {
  put_u64_le(out, header.size());
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  for (const auto& t : tensors)
    if (t.byte_size > 0) out.write(static_cast<const char*>(t.data), static_cast<std::streamsize>(t.byte_size));
}

// ---- reading ------------------------------------------------------------------------------------

// Parses the JSON header, rejecting a repeated key at any level (nlohmann keeps the last silently,
// which would let a second "weight" entry hide the first).
nlohmann::json parse_json_rejecting_duplicates(std::string_view text, const std::string& source) {
  std::vector<std::set<std::string>> keys_per_open_object;
  std::string duplicate;
  auto watch_keys = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    // A valid header is 3 deep ({name: {shape: [...]}}). nlohmann parses iteratively but dumps (in our
    // error messages) recursively, so a shape nested 100,000 deep would overflow the stack.
    if ((event == Event::object_start || event == Event::array_start) && depth >= kMaxHeaderDepth)
      throw FormatError(cat(source, ": safetensors header is nested more than ", kMaxHeaderDepth,
                            " levels deep, expected {name: {dtype, shape, data_offsets}}"));
    if (event == Event::object_start) keys_per_open_object.emplace_back();
    else if (event == Event::object_end && !keys_per_open_object.empty()) keys_per_open_object.pop_back();
    else if (event == Event::key && !keys_per_open_object.empty() && parsed.is_string()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!keys_per_open_object.back().insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text.begin(), text.end(), watch_keys);
  } catch (const nlohmann::json::exception& e) {
    std::string reason = e.what();
    // Drop nlohmann's "[json.exception.parse_error.101] " tag: the rest says where and what.
    if (auto close = reason.find("] "); reason.rfind("[json.exception", 0) == 0 && close != std::string::npos)
      reason = reason.substr(close + 2);
    throw FormatError(cat(source, ": safetensors header is not valid JSON: ", reason));
  }
  if (!duplicate.empty())
    throw FormatError(cat(source, ": safetensors header has the key '", duplicate,
                          "' twice (names must be unique)"));
  return header;
}

std::uint64_t read_offset(const nlohmann::json& value, const std::string& source, const std::string& name) {
  if (!value.is_number_unsigned())
    throw FormatError(cat(source, ": tensor '", name, "': data_offsets holds ", value.dump(),
                          ", expected a non-negative integer"));
  return value.get<std::uint64_t>();
}

TensorLayout parse_entry(const std::string& name, const nlohmann::json& entry, const std::string& source) {
  if (name.empty()) throw FormatError(cat(source, ": a tensor has an empty name"));
  if (!entry.is_object())
    throw FormatError(cat(source, ": tensor '", name, "' is ", entry.type_name(),
                          ", expected an object with dtype, shape, data_offsets"));
  for (const auto& [key, value] : entry.items()) {
    (void)value;
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      throw FormatError(cat(source, ": tensor '", name, "' has unknown field '", key,
                            "' (expected only dtype, shape, data_offsets)"));
  }
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(field))
      throw FormatError(cat(source, ": tensor '", name, "' has no '", field, "' field"));

  TensorLayout layout;
  layout.name = name;
  const auto& dtype = entry["dtype"];
  if (!dtype.is_string())
    throw FormatError(cat(source, ": tensor '", name, "': dtype is ", dtype.dump(), ", expected a string"));
  layout.dtype = dtype.get<std::string>();
  std::size_t element_size = safetensors_dtype_size(layout.dtype);
  if (element_size == 0)
    throw FormatError(cat(source, ": tensor '", name, "' has unknown dtype \"", layout.dtype,
                          "\" (expected one of BOOL U8 I8 F8_E4M3 F8_E5M2 U16 I16 F16 BF16 U32 I32 F32 "
                          "U64 I64 F64)"));

  const auto& shape = entry["shape"];
  if (!shape.is_array())
    throw FormatError(cat(source, ": tensor '", name, "': shape is ", shape.dump(), ", expected an array"));
  std::uint64_t expected_bytes = element_size;
  std::int64_t elements = 1;  // the running product element_count() forms, which must not overflow either
  for (const auto& dim : shape) {
    if (!dim.is_number_unsigned())
      throw FormatError(cat(source, ": tensor '", name, "': shape ", shape.dump(),
                            " holds ", dim.dump(), ", expected non-negative integers"));
    std::uint64_t d = dim.get<std::uint64_t>();
    // A later 0 dim makes the byte count 0 again, so checking the bytes alone would let
    // [2^32, 2^31 + 1, 0] through and element_count() overflow on its way to 0.
    if (d > static_cast<std::uint64_t>(INT64_MAX) || __builtin_mul_overflow(expected_bytes, d, &expected_bytes) ||
        __builtin_mul_overflow(elements, static_cast<std::int64_t>(d), &elements))
      throw FormatError(cat(source, ": tensor '", name, "': shape ", shape.dump(), " overflows 64 bits"));
    layout.shape.push_back(static_cast<std::int64_t>(d));
  }

  const auto& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    throw FormatError(cat(source, ": tensor '", name, "': data_offsets is ", offsets.dump(),
                          ", expected [begin, end]"));
  layout.begin = read_offset(offsets[0], source, name);
  layout.end = read_offset(offsets[1], source, name);
  if (layout.end < layout.begin)
    throw FormatError(cat(source, ": tensor '", name, "': data_offsets [", layout.begin, ", ", layout.end,
                          "] end before they begin"));
  if (layout.end - layout.begin != expected_bytes)
    throw FormatError(cat(source, ": tensor '", name, "': data_offsets [", layout.begin, ", ", layout.end,
                          "] span ", layout.end - layout.begin, " bytes, expected ", expected_bytes, " for ",
                          layout.dtype, " ", shape.dump()));
  return layout;
}

// Validates the header against a data section of `data_size` bytes.
ParsedHeader parse_header(std::string_view text, std::uint64_t data_size, const std::string& source) {
  // The reference implementation insists on '{' first; a header of spaces or garbage is not a file.
  if (text.empty() || text.front() != '{')
    throw FormatError(cat(source, ": safetensors header does not start with '{' (not a safetensors file?)"));
  nlohmann::json header = parse_json_rejecting_duplicates(text, source);
  if (!header.is_object())
    throw FormatError(cat(source, ": safetensors header is ", header.type_name(), ", expected a JSON object"));

  ParsedHeader parsed;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      if (!value.is_object())
        throw FormatError(cat(source, ": __metadata__ is ", value.type_name(),
                              ", expected an object of strings"));
      for (const auto& [meta_key, meta_value] : value.items()) {
        if (!meta_value.is_string())
          throw FormatError(cat(source, ": __metadata__ '", meta_key, "' is ", meta_value.dump(),
                                ", expected a string"));
        parsed.metadata[meta_key] = meta_value.get<std::string>();
      }
      continue;
    }
    parsed.layouts.push_back(parse_entry(key, value, source));
  }

  // The tensors must tile [0, data_size) exactly: sorted by offset, each begins where the last ended.
  std::sort(parsed.layouts.begin(), parsed.layouts.end(), [](const TensorLayout& a, const TensorLayout& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::uint64_t expected_begin = 0;
  const TensorLayout* previous = nullptr;
  for (const auto& layout : parsed.layouts) {
    if (layout.end > data_size)
      throw FormatError(cat(source, ": tensor '", layout.name, "': data_offsets [", layout.begin, ", ",
                            layout.end, "] run past the data section (", data_size, " bytes)"));
    if (layout.begin < expected_begin)
      throw FormatError(cat(source, ": tensor '", layout.name, "': data_offsets [", layout.begin, ", ",
                            layout.end, "] overlap tensor '", previous->name, "' [", previous->begin, ", ",
                            previous->end, "]"));
    if (layout.begin > expected_begin)
      throw FormatError(cat(source, ": tensor '", layout.name, "' begins at byte ", layout.begin,
                            " of the data section, expected ", expected_begin,
                            previous ? cat(" (end of tensor '", previous->name, "')") : std::string(),
                            ": a gap of ", layout.begin - expected_begin, " bytes"));
    expected_begin = layout.end;
    previous = &layout;
  }
  if (expected_begin != data_size)
    throw FormatError(cat(source, ": ", data_size - expected_begin, " trailing bytes after the last tensor "
                          "(data section is ", data_size, " bytes, tensors cover ", expected_begin, ")"));
  return parsed;
}

// Checks the 8-byte length against the file size; returns the header length.
std::uint64_t check_header_length(const unsigned char* prefix, std::uint64_t file_size, const std::string& source) {
  std::uint64_t header_size = get_u64_le(prefix);
  if (header_size > kMaxHeaderBytes)
    throw FormatError(cat(source, ": safetensors header length ", header_size, " exceeds the ",
                          kMaxHeaderBytes, "-byte limit (corrupt length or not a safetensors file)"));
  if (header_size > file_size - 8)
    throw FormatError(cat(source, ": safetensors header length ", header_size,
                          " runs past the end of the file (", file_size - 8, " bytes follow the length)"));
  if (header_size < 2)
    throw FormatError(cat(source, ": safetensors header length is ", header_size, ", expected at least 2 ('{}')"));
  return header_size;
}

void check_has_length_prefix(std::uint64_t file_size, const std::string& source) {
  if (file_size < 8)
    throw FormatError(cat(source, ": file has ", file_size,
                          " bytes, too short for a safetensors file (expected an 8-byte header length first)"));
}

SafetensorsFile assemble(const ParsedHeader& parsed, const std::string& source) {
  SafetensorsFile file;
  file.source = source;
  file.metadata = parsed.metadata;
  for (const auto& layout : parsed.layouts) {
    SafetensorsTensor& tensor = file.tensors[layout.name];
    tensor.dtype = layout.dtype;
    tensor.shape = layout.shape;
    tensor.bytes.resize(layout.end - layout.begin);
    file.names_in_file_order.push_back(layout.name);
  }
  return file;
}

}  // namespace

std::size_t safetensors_dtype_size(std::string_view dtype) {
  static const std::map<std::string_view, std::size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1},
      {"U16", 2},  {"I16", 2}, {"F16", 2}, {"BF16", 2},    {"U32", 4},
      {"I32", 4},  {"F32", 4}, {"U64", 8}, {"I64", 8},     {"F64", 8},
  };
  auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

std::int64_t SafetensorsTensor::element_count() const {
  std::int64_t count = 1;
  for (std::int64_t dim : shape) count *= dim;
  return count;
}

const SafetensorsTensor& SafetensorsFile::at(const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end())
    throw FormatError(cat(source, ": no tensor '", name, "' (the file has ", tensors.size(), " tensors)"));
  return it->second;
}

std::string encode_safetensors(const std::vector<SafetensorsTensorView>& tensors,
                               const std::map<std::string, std::string>& metadata) {
  std::string header = build_header(tensors, metadata);
  std::ostringstream out;
  write_encoded(out, tensors, header);
  return out.str();
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsTensorView>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Validate before creating anything on disk.
  std::string header = build_header(tensors, metadata);
  write_file_atomically(path, [&](std::ostream& out) { write_encoded(out, tensors, header); });
}

SafetensorsFile decode_safetensors(std::string_view file_bytes, const std::string& source) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(file_bytes.data());
  check_has_length_prefix(file_bytes.size(), source);
  std::uint64_t header_size = check_header_length(bytes, file_bytes.size(), source);
  std::string_view header_text = file_bytes.substr(8, header_size);
  std::uint64_t data_size = file_bytes.size() - 8 - header_size;
  ParsedHeader parsed = parse_header(header_text, data_size, source);
  SafetensorsFile file = assemble(parsed, source);
  const unsigned char* data = bytes + 8 + header_size;
  for (const auto& layout : parsed.layouts) {
    auto& destination = file.tensors[layout.name].bytes;
    if (!destination.empty()) std::memcpy(destination.data(), data + layout.begin, destination.size());
  }
  return file;
}

SafetensorsFile read_safetensors(const std::string& path) {
  // Read piecewise rather than through read_file_bytes: each tensor's bytes go straight into their
  // own buffer, so a checkpoint is held in memory once, not twice.
  std::error_code error;
  if (std::filesystem::is_directory(path, error))
    throw IOError(cat(path, ": is a folder, expected a safetensors file"));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IOError(cat(path, ": cannot open for reading: ", std::strerror(errno)));
  in.seekg(0, std::ios::end);
  auto end_position = in.tellg();
  if (end_position < 0) throw IOError(cat(path, ": cannot determine the file size"));
  std::uint64_t file_size = static_cast<std::uint64_t>(end_position);
  in.seekg(0);

  check_has_length_prefix(file_size, path);
  unsigned char prefix[8];
  in.read(reinterpret_cast<char*>(prefix), 8);
  std::uint64_t header_size = check_header_length(prefix, file_size, path);
  std::string header_text(header_size, '\0');
  in.read(header_text.data(), static_cast<std::streamsize>(header_size));
  if (!in) throw IOError(cat(path, ": read failed inside the header"));

  std::uint64_t data_start = 8 + header_size;
  ParsedHeader parsed = parse_header(header_text, file_size - data_start, path);
  SafetensorsFile file = assemble(parsed, path);
  for (const auto& layout : parsed.layouts) {  // in offset order: one forward pass over the file
    auto& destination = file.tensors[layout.name].bytes;
    if (destination.empty()) continue;
    in.seekg(static_cast<std::streamoff>(data_start + layout.begin));
    in.read(reinterpret_cast<char*>(destination.data()), static_cast<std::streamsize>(destination.size()));
    if (!in) throw IOError(cat(path, ": read failed inside tensor '", layout.name, "'"));
  }
  return file;
}

}  // namespace fm::io
