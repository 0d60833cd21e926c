// tests/test_io.cpp — the file formats in core/io/: atomic writes, safetensors, .npy, IDX, PNG plots and
// the metrics log. Round trips for each format, byte-exact headers, and malformed inputs that must each
// be refused with a one-line error naming the file and what was wrong.
//
// Environment:
//   FM_INTEROP_DIR   the "[interop]" case also writes interop.* files there for tests/python_interop.py,
//                    and checks the from_python.* files the script left there.
//   FM_IO_SAMPLE_DIR the PNG cases also write their pictures there, to look at.
#include <catch2/catch.hpp>

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/io/atomic_file.h"
#include "core/io/idx.h"
#include "core/io/jsonl.h"
#include "core/io/npy.h"
#include "core/io/png.h"
#include "core/io/safetensors.h"

#include "fashion_mnist_fixtures.h"
#include "png_test_util.h"
#include "test_util.h"

namespace fs = std::filesystem;
using fm::io::SafetensorsTensorView;
using fm::test::decode_png;
using fm::test::sample_path;

namespace {

// A fresh folder per test case, removed afterwards.
struct TempDir : fm::test::TempDir {
  TempDir() : fm::test::TempDir("fm_test_io") {}
};

void write_raw(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string read_raw(const std::string& path) { return fm::io::read_file_bytes(path); }

// Runs `action`, which must throw ErrType with a one-line message containing every fragment.
template <typename ErrType>
void require_error(const std::function<void()>& action, const std::vector<std::string>& fragments) {
  try {
    action();
  } catch (const ErrType& e) {
    std::string message = e.what();
    INFO("message: " << message);
    CHECK(message.find('\n') == std::string::npos);
    for (const auto& fragment : fragments) CHECK_THAT(message, Catch::Contains(fragment));
    return;
  } catch (const std::exception& e) {
    FAIL("threw the wrong exception type: " << e.what());
  }
  FAIL("no exception thrown; expected one mentioning '" << (fragments.empty() ? "" : fragments[0]) << "'");
}

std::string u64_le(std::uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char((v >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file from a header text and a data section (the header is padded like the writer does).
std::string safetensors_bytes(std::string header, const std::string& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return u64_le(header.size()) + header + data;
}

template <typename T>
std::vector<T> values_of(const fm::io::SafetensorsTensor& t) {
  REQUIRE(t.bytes.size() % sizeof(T) == 0);
  std::vector<T> out(t.bytes.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), t.bytes.data(), t.bytes.size());
  return out;
}

// IDX helpers: big-endian header + payload, optionally gzip-compressed.
std::string be32(std::uint32_t v) {
  return {char(v >> 24), char((v >> 16) & 0xff), char((v >> 8) & 0xff), char(v & 0xff)};
}
std::string idx_images_bytes(std::uint32_t count, std::uint32_t rows, std::uint32_t cols) {
  std::string bytes = be32(0x803) + be32(count) + be32(rows) + be32(cols);
  for (std::uint32_t i = 0; i < count * rows * cols; ++i) bytes.push_back(char(i * 7 % 256));
  return bytes;
}
std::string idx_labels_bytes(std::uint32_t count) {
  std::string bytes = be32(0x801) + be32(count);
  for (std::uint32_t i = 0; i < count; ++i) bytes.push_back(char(i % 10));
  return bytes;
}
void write_gzip(const std::string& path, const std::string& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  REQUIRE(file != nullptr);
  REQUIRE(gzwrite(file, bytes.data(), unsigned(bytes.size())) == int(bytes.size()));
  REQUIRE(gzclose(file) == Z_OK);
}

}  // namespace

// ======================================= atomic writes ==========================================

TEST_CASE("write_file_atomically creates and replaces a file, leaving no temp file", "[io][atomic]") {
  TempDir dir;
  std::string path = dir.file("out.bin");
  fm::io::write_file_atomically(path, std::string_view("first"));
  REQUIRE(read_raw(path) == "first");
  fm::io::write_file_atomically(path, [](std::ostream& out) {
    std::string big(1 << 20, 'x');  // larger than the stream buffer: takes the direct-write path
    out << "second:";
    out.write(big.data(), std::streamsize(big.size()));
  });
  std::string contents = read_raw(path);
  REQUIRE(contents.size() == 7 + (1u << 20));
  REQUIRE(contents.substr(0, 7) == "second:");
  REQUIRE(dir.entries() == std::vector<std::string>{"out.bin"});
}

TEST_CASE("a writer that throws leaves the target unchanged and no temp file behind", "[io][atomic]") {
  TempDir dir;
  std::string path = dir.file("checkpoint.safetensors");
  fm::io::write_file_atomically(path, std::string_view("old contents"));
  struct WriterFailed : std::runtime_error {
    using std::runtime_error::runtime_error;
  };
  REQUIRE_THROWS_AS(fm::io::write_file_atomically(path,
                                                  [](std::ostream& out) {
                                                    out << std::string(200000, 'n');  // some of it reaches the disk
                                                    throw WriterFailed("simulated failure mid-write");
                                                  }),
                    WriterFailed);
  REQUIRE(read_raw(path) == "old contents");
  REQUIRE(dir.entries() == std::vector<std::string>{"checkpoint.safetensors"});

  // The same for a target that did not exist yet: nothing appears.
  std::string fresh = dir.file("new.npy");
  REQUIRE_THROWS(fm::io::write_file_atomically(fresh, [](std::ostream&) { throw WriterFailed("no"); }));
  REQUIRE_FALSE(fs::exists(fresh));
  REQUIRE(dir.entries() == std::vector<std::string>{"checkpoint.safetensors"});
}

TEST_CASE("the temp names of atomic writes are recognised, and only those are removed as stale", "[io][atomic]") {
  using fm::io::is_atomic_write_temp_name;
  CHECK(is_atomic_write_temp_name(".checkpoint.safetensors.tmp.1234.56789.0.0"));
  CHECK(is_atomic_write_temp_name(".metrics.jsonl.tmp.7.1.2.3"));
  CHECK_FALSE(is_atomic_write_temp_name("checkpoint.safetensors.tmp.1.2.3.4"));  // not hidden
  CHECK_FALSE(is_atomic_write_temp_name(".notes.tmp.draft"));                    // not digits and dots
  CHECK_FALSE(is_atomic_write_temp_name(".tmp.1.2"));                            // no target name
  CHECK_FALSE(is_atomic_write_temp_name("checkpoint.safetensors"));
  TempDir dir;
  dir.write(".checkpoint.safetensors.tmp.1234.56789.0.0", "half a checkpoint");
  dir.write(".notes.tmp.draft", "a user's file");
  dir.write("checkpoint.safetensors", "the checkpoint");
  REQUIRE(fm::io::remove_stale_temp_files(dir.path.string()) == 1);
  REQUIRE(dir.entries() == std::vector<std::string>{".notes.tmp.draft", "checkpoint.safetensors"});
}

TEST_CASE("atomic write and read report missing folders and files clearly", "[io][atomic]") {
  TempDir dir;
  std::string in_missing_folder = dir.file("no_such_folder/out.bin");
  require_error<fm::IOError>([&] { fm::io::write_file_atomically(in_missing_folder, std::string_view("x")); },
                             {in_missing_folder, "cannot create temp file", "No such file"});
  std::string missing = dir.file("missing.bin");
  require_error<fm::IOError>([&] { fm::io::read_file_bytes(missing); }, {missing, "cannot open for reading"});
  require_error<fm::IOError>([&] { fm::io::read_file_bytes(dir.path.string()); }, {"not a regular file"});
}

// ======================================= safetensors ============================================

TEST_CASE("safetensors round trip keeps dtypes, shapes, bytes, order and metadata", "[io][safetensors]") {
  TempDir dir;
  std::vector<float> weight = {0.5f, -1.25f, 3.f, 1e-30f, -0.f, 7.75f};
  std::vector<double> bias = {1e-300, -2.5, 1.0 / 3.0};
  std::vector<std::int64_t> step = {-9007199254740993LL};
  std::vector<std::uint8_t> mask = {0, 1, 254, 255, 7};
  std::vector<SafetensorsTensorView> views = {
      {"net.weight", "F32", {2, 3}, weight.data(), weight.size() * 4},
      {"net.bias", "F64", {3}, bias.data(), bias.size() * 8},
      {"step", "I64", {}, step.data(), 8},  // a scalar: shape []
      {"mask", "U8", {5}, mask.data(), mask.size()},
      {"empty", "F32", {0, 4}, nullptr, 0},
  };
  std::string path = dir.file("model.safetensors");
  fm::io::write_safetensors(path, views, {{"step", "1200"}, {"config", "{\"lr\": 0.001}"}});

  auto file = fm::io::read_safetensors(path);
  REQUIRE(file.names_in_file_order ==
          std::vector<std::string>{"net.weight", "net.bias", "step", "mask", "empty"});
  REQUIRE(file.metadata == std::map<std::string, std::string>{
                               {"format", "pt"}, {"step", "1200"}, {"config", "{\"lr\": 0.001}"}});
  REQUIRE(file.at("net.weight").dtype == "F32");
  REQUIRE(file.at("net.weight").shape == std::vector<std::int64_t>{2, 3});
  REQUIRE(values_of<float>(file.at("net.weight")) == weight);
  REQUIRE(std::signbit(values_of<float>(file.at("net.weight"))[4]));  // bytes, not values: -0 stays -0
  REQUIRE(values_of<double>(file.at("net.bias")) == bias);
  REQUIRE(file.at("step").shape.empty());
  REQUIRE(file.at("step").element_count() == 1);
  REQUIRE(values_of<std::int64_t>(file.at("step")) == step);
  REQUIRE(values_of<std::uint8_t>(file.at("mask")) == mask);
  REQUIRE(file.at("empty").bytes.empty());
  REQUIRE(file.at("empty").shape == std::vector<std::int64_t>{0, 4});
  require_error<fm::FormatError>([&] { file.at("net.missing"); }, {path, "no tensor 'net.missing'"});

  // The in-memory decoder agrees with the file reader.
  auto decoded = fm::io::decode_safetensors(read_raw(path), "copy");
  REQUIRE(decoded.names_in_file_order == file.names_in_file_order);
  REQUIRE(decoded.at("net.bias").bytes == file.at("net.bias").bytes);
}

TEST_CASE("safetensors header is byte-exact: LE length, compact JSON, space padding to 8, format pt",
          "[io][safetensors]") {
  TempDir dir;
  std::vector<float> values = {1.f, 2.f};
  std::string path = dir.file("small.safetensors");
  fm::io::write_safetensors(path, {{"a", "F32", {2}, values.data(), 8}});
  std::string bytes = read_raw(path);

  const std::string json = R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string padded = json + std::string((8 - json.size() % 8) % 8, ' ');
  REQUIRE(padded.size() % 8 == 0);
  REQUIRE(padded.size() > json.size());  // this header does need padding: the test covers it
  std::string expected = u64_le(padded.size()) + padded + std::string(reinterpret_cast<const char*>(values.data()), 8);
  REQUIRE(bytes.size() == expected.size());
  REQUIRE(bytes.substr(0, 8) == expected.substr(0, 8));  // the length, little-endian
  REQUIRE(bytes.substr(8, padded.size()) == padded);
  REQUIRE(bytes == expected);
  REQUIRE(fm::io::encode_safetensors({{"a", "F32", {2}, values.data(), 8}}) == expected);
}

TEST_CASE("safetensors writer refuses entries that do not describe their bytes", "[io][safetensors]") {
  TempDir dir;
  std::string path = dir.file("never.safetensors");
  std::vector<float> v(6);
  require_error<fm::ValueError>([&] { fm::io::write_safetensors(path, {{"w", "F32", {2, 3}, v.data(), 20}}); },
                                {"'w'", "20 bytes", "expected 24"});
  require_error<fm::ValueError>(
      [&] { fm::io::write_safetensors(path, {{"w", "F32", {2}, v.data(), 8}, {"w", "F32", {2}, v.data(), 8}}); },
      {"'w'", "twice"});
  require_error<fm::ValueError>([&] { fm::io::write_safetensors(path, {{"w", "F31", {2}, v.data(), 8}}); },
                                {"unknown dtype", "F31"});
  require_error<fm::ValueError>([&] { fm::io::write_safetensors(path, {{"", "F32", {2}, v.data(), 8}}); },
                                {"empty name"});
  require_error<fm::ValueError>([&] { fm::io::write_safetensors(path, {{"w", "F32", {-2}, v.data(), 8}}); },
                                {"negative"});
  require_error<fm::ValueError>([&] { fm::io::write_safetensors(path, {}, {{"format", "np"}}); }, {"\"pt\""});
  REQUIRE_FALSE(fs::exists(path));
}

TEST_CASE("safetensors reader refuses malformed files with an error naming the file and the entry",
          "[io][safetensors]") {
  TempDir dir;
  std::string path = dir.file("bad.safetensors");
  const std::string eight(8, '\x01'), sixteen(16, '\x02');
  auto read_bytes = [&](const std::string& bytes) {
    return [bytes, path] {
      write_raw(path, bytes);
      fm::io::read_safetensors(path);
    };
  };
  auto entry = [](const std::string& name, const std::string& dtype, const std::string& shape, int begin, int end) {
    return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
           std::to_string(begin) + "," + std::to_string(end) + "]}";
  };

  SECTION("file shorter than the 8-byte length") {
    require_error<fm::FormatError>(read_bytes(std::string("\x10\x00\x00", 3)), {path, "3 bytes", "8-byte header length"});
  }
  SECTION("empty file") { require_error<fm::FormatError>(read_bytes(""), {path, "0 bytes"}); }
  SECTION("header length past the end of the file") {
    require_error<fm::FormatError>(read_bytes(u64_le(64) + "{}      "), {path, "header length 64", "past the end"});
  }
  SECTION("absurd header length") {
    require_error<fm::FormatError>(read_bytes(u64_le(std::uint64_t(-1)) + "{}      "), {path, "exceeds"});
  }
  SECTION("header cut short inside the JSON") {
    std::string header = "{" + entry("a", "F32", "[2]", 0, 8) + "}";
    std::string bytes = u64_le(20) + header.substr(0, 20);
    require_error<fm::FormatError>(read_bytes(bytes), {path, "not valid JSON"});
  }
  SECTION("bad JSON") {
    require_error<fm::FormatError>(read_bytes(safetensors_bytes("{\"a\": {\"dtype\": F32}}", "")),
                                   {path, "not valid JSON"});
  }
  SECTION("header is not an object") {
    require_error<fm::FormatError>(read_bytes(safetensors_bytes("[1, 2]", "")), {path, "start with '{'"});
  }
  SECTION("offsets past the data section") {
    require_error<fm::FormatError>(read_bytes(safetensors_bytes("{" + entry("w", "F32", "[4]", 0, 16) + "}", eight)),
                                   {path, "'w'", "run past the data section (8 bytes)"});
  }
  SECTION("overlapping tensors") {
    std::string header = "{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 4, 12) + "}";
    require_error<fm::FormatError>(read_bytes(safetensors_bytes(header, eight + "1234")), {path, "'b'", "overlap", "'a'"});
  }
  SECTION("a gap between tensors") {
    std::string header = "{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 12, 20) + "}";
    require_error<fm::FormatError>(read_bytes(safetensors_bytes(header, eight + "1234" + eight)),
                                   {path, "'b'", "begins at byte 12", "expected 8", "gap of 4"});
  }
  SECTION("first tensor not at offset 0") {
    std::string header = "{" + entry("a", "F32", "[2]", 8, 16) + "}";
    require_error<fm::FormatError>(read_bytes(safetensors_bytes(header, sixteen)), {path, "'a'", "begins at byte 8"});
  }
  SECTION("duplicate names") {
    std::string header = "{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("a", "F32", "[2]", 8, 16) + "}";
    require_error<fm::FormatError>(read_bytes(safetensors_bytes(header, sixteen)), {path, "'a' twice"});
  }
  SECTION("duplicate field inside an entry") {
    std::string header = R"({"a":{"dtype":"F32","dtype":"F64","shape":[2],"data_offsets":[0,8]}})";
    require_error<fm::FormatError>(read_bytes(safetensors_bytes(header, eight)), {path, "'dtype' twice"});
  }
  SECTION("trailing bytes after the last tensor") {
    std::string header = "{" + entry("a", "F32", "[2]", 0, 8) + "}";
    require_error<fm::FormatError>(read_bytes(safetensors_bytes(header, eight + "xyz")), {path, "3 trailing bytes"});
  }
  SECTION("unknown dtype") {
    require_error<fm::FormatError>(read_bytes(safetensors_bytes("{" + entry("a", "F33", "[2]", 0, 8) + "}", eight)),
                                   {path, "'a'", "unknown dtype \"F33\""});
  }
  SECTION("byte count does not match shape times dtype size") {
    require_error<fm::FormatError>(read_bytes(safetensors_bytes("{" + entry("a", "F64", "[2]", 0, 8) + "}", eight)),
                                   {path, "'a'", "span 8 bytes", "expected 16"});
  }
  SECTION("offsets that end before they begin") {
    require_error<fm::FormatError>(read_bytes(safetensors_bytes("{" + entry("a", "U8", "[0]", 8, 0) + "}", eight)),
                                   {path, "'a'", "end before they begin"});
  }
  SECTION("negative dim") {
    require_error<fm::FormatError>(read_bytes(safetensors_bytes("{" + entry("a", "F32", "[-2]", 0, 8) + "}", eight)),
                                   {path, "'a'", "non-negative integers"});
  }
  SECTION("shape whose byte count overflows 64 bits") {
    std::string shape = "[4294967296,4294967296]";
    require_error<fm::FormatError>(read_bytes(safetensors_bytes("{" + entry("a", "F32", shape, 0, 8) + "}", eight)),
                                   {path, "'a'", "overflows"});
  }
  SECTION("metadata value that is not a string") {
    std::string header = R"({"__metadata__":{"format":"pt","step":12},)" + entry("a", "F32", "[2]", 0, 8) + "}";
    require_error<fm::FormatError>(read_bytes(safetensors_bytes(header, eight)), {path, "__metadata__ 'step'", "string"});
  }
  SECTION("missing field") {
    require_error<fm::FormatError>(read_bytes(safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2]}})", eight)),
                                   {path, "'a'", "no 'data_offsets'"});
  }
  SECTION("unknown field") {
    std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"strides":[1]}})";
    require_error<fm::FormatError>(read_bytes(safetensors_bytes(header, eight)), {path, "'a'", "unknown field 'strides'"});
  }
  SECTION("data_offsets with three numbers") {
    std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}})";
    require_error<fm::FormatError>(read_bytes(safetensors_bytes(header, eight)), {path, "'a'", "[begin, end]"});
  }
  SECTION("a missing file is an I/O error, not a format error") {
    require_error<fm::IOError>([&] { fm::io::read_safetensors(dir.file("nope.safetensors")); },
                               {"nope.safetensors", "cannot open"});
  }
}

TEST_CASE("a file with no tensors and no metadata is valid", "[io][safetensors]") {
  auto file = fm::io::decode_safetensors(safetensors_bytes("{}", ""), "empty.safetensors");
  REQUIRE(file.tensors.empty());
  REQUIRE(file.metadata.empty());
}

// ========================================== .npy ================================================

TEST_CASE("npy round trip for float32 and float64 with the v1.0 header numpy writes", "[io][npy]") {
  TempDir dir;
  std::vector<float> f32 = {1.5f, -2.f, 3.25f, 0.f, 1e-20f, 6.f};
  std::string path32 = dir.file("a.npy");
  fm::io::write_npy(path32, f32.data(), {2, 3});
  std::string bytes = read_raw(path32);
  REQUIRE(bytes.substr(0, 8) == std::string("\x93NUMPY\x01\x00", 8));
  std::size_t header_length = std::uint8_t(bytes[8]) | (std::size_t(std::uint8_t(bytes[9])) << 8);
  REQUIRE((10 + header_length) % 64 == 0);
  std::string header = bytes.substr(10, header_length);
  REQUIRE(header.rfind("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 0) == 0);
  REQUIRE(header.back() == '\n');
  REQUIRE(bytes.size() == 10 + header_length + 24);

  auto a = fm::io::read_npy(path32);
  REQUIRE(a.dtype == fm::io::NpyDType::Float32);
  REQUIRE(a.shape == std::vector<std::int64_t>{2, 3});
  REQUIRE(std::vector<float>(a.float32_data(), a.float32_data() + 6) == f32);
  REQUIRE_THROWS_AS(a.float64_data(), fm::DTypeError);
  REQUIRE(a.to_float64()[0] == 1.5);

  std::vector<double> f64 = {1e-300, -0.1, 2.0 / 3.0, 4.0};
  std::string path64 = dir.file("b.npy");
  fm::io::write_npy(path64, f64.data(), {4});
  REQUIRE(read_raw(path64).find("'shape': (4,), }") != std::string::npos);  // 1-d keeps its comma
  auto b = fm::io::read_npy(path64);
  REQUIRE(b.dtype == fm::io::NpyDType::Float64);
  REQUIRE(b.shape == std::vector<std::int64_t>{4});
  REQUIRE(b.to_float64() == f64);

  double scalar = 42.5;
  fm::io::write_npy(dir.file("c.npy"), &scalar, {});
  auto c = fm::io::read_npy(dir.file("c.npy"));
  REQUIRE(c.shape.empty());
  REQUIRE(c.element_count() == 1);
  REQUIRE(c.float64_data()[0] == 42.5);

  fm::io::write_npy(dir.file("d.npy"), static_cast<const float*>(nullptr), {0, 5});
  auto d = fm::io::read_npy(dir.file("d.npy"));
  REQUIRE(d.shape == std::vector<std::int64_t>{0, 5});
  REQUIRE(d.bytes.empty());
}

TEST_CASE("npy reader accepts a version 2.0 header", "[io][npy]") {
  std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }";
  std::size_t padded = ((12 + dict.size() + 1 + 63) / 64) * 64 - 12;
  dict.append(padded - dict.size() - 1, ' ');
  dict.push_back('\n');
  double values[2] = {3.5, -1.0};
  std::string bytes = std::string("\x93NUMPY\x02\x00", 8);
  for (int i = 0; i < 4; ++i) bytes.push_back(char((dict.size() >> (8 * i)) & 0xff));
  bytes += dict + std::string(reinterpret_cast<const char*>(values), 16);
  auto array = fm::io::decode_npy(bytes, "v2.npy");
  REQUIRE(array.to_float64() == std::vector<double>{3.5, -1.0});
}

TEST_CASE("npy reader refuses malformed files naming the file", "[io][npy]") {
  // A valid float32 (3,) file to corrupt.
  float three[3] = {1, 2, 3};
  const std::string good = fm::io::encode_npy(fm::io::NpyDType::Float32, three, {3});
  const std::size_t header_end = 10 + (std::uint8_t(good[8]) | (std::size_t(std::uint8_t(good[9])) << 8));
  auto with_dict = [&](const std::string& dict_text, std::size_t data_bytes = 12) {
    std::string dict = dict_text;
    dict.append((64 - (10 + dict.size() + 1) % 64) % 64, ' ');
    dict.push_back('\n');
    std::string bytes = std::string("\x93NUMPY\x01\x00", 8);
    bytes.push_back(char(dict.size() & 0xff));
    bytes.push_back(char(dict.size() >> 8));
    return bytes + dict + std::string(data_bytes, '\0');
  };
  auto decode = [](std::string bytes) { return [bytes] { fm::io::decode_npy(bytes, "bad.npy"); }; };

  require_error<fm::FormatError>(decode("PK\x03\x04 not numpy at all"), {"bad.npy", "magic"});
  require_error<fm::FormatError>(decode(""), {"bad.npy", "magic"});
  std::string version3 = good;
  version3[6] = 3;
  require_error<fm::FormatError>(decode(version3), {"bad.npy", "version 3.0", "expected 1.0 or 2.0"});
  require_error<fm::FormatError>(decode(with_dict("{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }")),
                                 {"bad.npy", "'<i4'", "expected '<f4' or '<f8'"});
  require_error<fm::FormatError>(decode(with_dict("{'descr': '>f4', 'fortran_order': False, 'shape': (3,), }")),
                                 {"bad.npy", "'>f4'"});
  require_error<fm::FormatError>(decode(with_dict("{'descr': '<f4', 'fortran_order': True, 'shape': (3,), }")),
                                 {"bad.npy", "Fortran order", "expected C order"});
  require_error<fm::FormatError>(decode(with_dict("{'descr': '<f4', 'shape': (3,), }")),
                                 {"bad.npy", "lacks 'fortran_order'"});
  require_error<fm::FormatError>(decode(with_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}")),
                                 {"bad.npy", "unknown key 'x'"});
  require_error<fm::FormatError>(decode(with_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (3, -1), }")),
                                 {"bad.npy", "non-negative integer"});
  require_error<fm::FormatError>(decode(with_dict("{'descr': '<f4' 'fortran_order': False}")), {"bad.npy", "expected ','"});
  require_error<fm::FormatError>(decode(good.substr(0, good.size() - 4)), {"bad.npy", "8 bytes, expected 12", "truncated"});
  require_error<fm::FormatError>(decode(good + "xx"), {"bad.npy", "14 bytes, expected 12", "trailing"});
  require_error<fm::FormatError>(decode(good.substr(0, header_end - 10)), {"bad.npy", "runs past the end"});
}

// ========================================== IDX =================================================

TEST_CASE("IDX images and labels read the same from plain and gzip files", "[io][idx]") {
  TempDir dir;
  write_raw(dir.file("images-idx3-ubyte"), idx_images_bytes(5, 3, 4));
  write_gzip(dir.file("images-idx3-ubyte.gz"), idx_images_bytes(5, 3, 4));
  write_gzip(dir.file("labels-idx1-ubyte.gz"), idx_labels_bytes(5));
  for (const char* name : {"images-idx3-ubyte", "images-idx3-ubyte.gz"}) {
    auto images = fm::io::read_idx_images(dir.file(name));
    REQUIRE(images.count == 5);
    REQUIRE(images.rows == 3);
    REQUIRE(images.cols == 4);
    REQUIRE(images.pixels.size() == 60);
    for (std::size_t i = 0; i < 60; ++i) REQUIRE(images.pixels[i] == std::uint8_t(i * 7 % 256));
  }
  auto pair = fm::io::read_idx_labelled_images(dir.file("images-idx3-ubyte.gz"), dir.file("labels-idx1-ubyte.gz"));
  REQUIRE(pair.labels.count == 5);
  REQUIRE(pair.labels.labels == std::vector<std::uint8_t>{0, 1, 2, 3, 4});
}

TEST_CASE("IDX reader refuses wrong magic, truncation, empty files and count mismatches", "[io][idx]") {
  TempDir dir;
  std::string path = dir.file("bad-idx3-ubyte");
  auto images_from = [&](const std::string& bytes) {
    return [&, bytes] {
      write_raw(path, bytes);
      fm::io::read_idx_images(path);
    };
  };
  require_error<fm::FormatError>(images_from(idx_labels_bytes(4)), {path, "wrong magic 0x00000801", "label file",
                                                                    "expected 0x00000803"});
  require_error<fm::FormatError>(images_from("PK\x03\x04 a zip, not IDX"), {path, "wrong magic 0x504b0304"});
  require_error<fm::FormatError>(images_from("\x1f\x8b\x08 a broken gzip stream"), {path, "cannot decompress"});
  require_error<fm::FormatError>(images_from(""), {path, "empty"});
  require_error<fm::FormatError>(images_from(idx_images_bytes(2, 3, 3).substr(0, 10)), {path, "header truncated"});
  std::string full = idx_images_bytes(4, 5, 5);
  require_error<fm::FormatError>(images_from(full.substr(0, full.size() - 1)),
                                 {path, "truncated", "99 bytes", "expected 100"});
  require_error<fm::FormatError>(images_from(full + "zz"), {path, "2 trailing bytes"});
  require_error<fm::FormatError>(images_from(idx_images_bytes(0, 5, 5)), {path, "0 images"});
  require_error<fm::FormatError>(images_from(idx_images_bytes(2, 0, 5)), {path, "non-zero rows and cols"});

  // A .gz cut in the middle of its deflate stream.
  std::string gz_path = dir.file("cut-idx3-ubyte.gz");
  write_gzip(gz_path, idx_images_bytes(50, 28, 28));
  std::string compressed = read_raw(gz_path);
  write_raw(gz_path, compressed.substr(0, compressed.size() / 2));
  require_error<fm::FormatError>([&] { fm::io::read_idx_images(gz_path); }, {gz_path});

  // Labels that do not match the images.
  write_raw(dir.file("images"), idx_images_bytes(3, 2, 2));
  write_raw(dir.file("labels"), idx_labels_bytes(4));
  require_error<fm::FormatError>([&] { fm::io::read_idx_labelled_images(dir.file("images"), dir.file("labels")); },
                                 {dir.file("labels"), "4 labels", "3 images"});
  write_raw(dir.file("labels"), idx_images_bytes(1, 1, 1));
  require_error<fm::FormatError>([&] { fm::io::read_idx_labels(dir.file("labels")); },
                                 {"wrong magic 0x00000803", "expected 0x00000801"});
  require_error<fm::IOError>([&] { fm::io::read_idx_images(dir.file("absent.gz")); }, {"absent.gz", "cannot open"});
}

TEST_CASE("the real Fashion-MNIST test set reads as 10000 images of 28x28", "[io][idx][data]") {
  if (fm::test::fashion_mnist_missing({"t10k"})) return;
  auto data = fm::io::read_idx_labelled_images(fm::tools::fashion_mnist_images_path(fm::tools::kFashionMnistDir, "t10k"),
                                               fm::tools::fashion_mnist_labels_path(fm::tools::kFashionMnistDir, "t10k"));
  REQUIRE(data.images.count == 10000);
  REQUIRE(data.images.rows == 28);
  REQUIRE(data.images.cols == 28);
  REQUIRE(data.images.pixels.size() == 10000u * 28 * 28);
  std::vector<int> per_class(10, 0);
  for (auto label : data.labels.labels) {
    REQUIRE(label < 10);
    ++per_class[label];
  }
  for (int count : per_class) REQUIRE(count == 1000);  // the test set is balanced
  double mean = 0;
  for (auto p : data.images.pixels) mean += p;
  mean /= double(data.images.pixels.size());
  CHECK(mean > 60);  // about 73 for Fashion-MNIST: the pixels are real images, not zeros
  CHECK(mean < 90);
}

// ========================================== PNG =================================================

TEST_CASE("image grid maps [lo, hi] to 0..255 with 2px borders, upscaling and red for NaN", "[io][png]") {
  TempDir dir;
  // Three 1-channel 2x3 images: a ramp, all -1, and one with a NaN.
  const int count = 3, h = 2, w = 3;
  std::vector<float> images(count * h * w);
  for (int i = 0; i < h * w; ++i) images[i] = -1.f + 2.f * i / (h * w - 1);
  for (int i = 0; i < h * w; ++i) images[h * w + i] = -1.f;
  for (int i = 0; i < h * w; ++i) images[2 * h * w + i] = 1.f;
  images[2 * h * w + 4] = std::nanf("");
  std::string path = dir.file("grid.png");
  fm::io::write_image_grid_png(path, images.data(), count, 1, h, w, /*grid_cols=*/2, -1.f, 1.f, /*scale=*/2);
  auto png = decode_png(path);
  // 2 columns, 2 rows of (3*2 + 2) x (2*2 + 2) tiles plus the outer border.
  REQUIRE(png.width == 2 * 8 + 2);
  REQUIRE(png.height == 2 * 6 + 2);
  REQUIRE(png.at(0, 0) == std::array<std::uint8_t, 3>{128, 128, 128});   // border
  REQUIRE(png.at(2, 2) == std::array<std::uint8_t, 3>{0, 0, 0});         // ramp starts at -1
  REQUIRE(png.at(3, 3) == std::array<std::uint8_t, 3>{0, 0, 0});         // upscaled: same pixel
  REQUIRE(png.at(2 + 5, 2 + 3) == std::array<std::uint8_t, 3>{255, 255, 255});  // ramp ends at +1
  REQUIRE(png.at(2 + 2, 2)[0] == 51);                                    // -0.6 -> 0.2 * 255
  REQUIRE(png.at(8 + 2, 2) == std::array<std::uint8_t, 3>{0, 0, 0});     // second image
  REQUIRE(png.at(2 + 2, 8 + 2) == std::array<std::uint8_t, 3>{255, 0, 0}); // the NaN (row 1, col 1)
  REQUIRE(png.at(8 + 2, 8 + 2) == std::array<std::uint8_t, 3>{128, 128, 128});  // empty grid cell

  // RGB images with values outside the range clamp.
  std::vector<float> rgb = {2.f, -3.f, 0.5f};  // one 1x1 image, channels r, g, b
  fm::io::write_image_grid_png(path, rgb.data(), 1, 3, 1, 1, 0, 0.f, 1.f, 1);
  auto one = decode_png(path);
  REQUIRE(one.at(2, 2) == std::array<std::uint8_t, 3>{255, 0, 128});

  require_error<fm::ValueError>([&] { fm::io::write_image_grid_png(path, rgb.data(), 1, 2, 1, 1, 0, 0.f, 1.f, 1); },
                                {"1 or 3 channels"});
  require_error<fm::ValueError>([&] { fm::io::write_image_grid_png(path, rgb.data(), 1, 3, 1, 1, 0, 1.f, 1.f, 1); },
                                {"lo < hi"});
}

TEST_CASE("Fashion-MNIST sample grid (a picture to look at)", "[io][png][data]") {
  TempDir dir;
  if (fm::test::fashion_mnist_missing({"t10k"}, fm::test::FashionMnistFiles::ImagesOnly)) return;
  const std::string images_path = fm::tools::fashion_mnist_images_path(fm::tools::kFashionMnistDir, "t10k");
  auto images = fm::io::read_idx_images(images_path);
  const int count = 64;
  std::vector<float> scaled(std::size_t(count) * 28 * 28);
  for (std::size_t i = 0; i < scaled.size(); ++i) scaled[i] = images.pixels[i] / 127.5f - 1.f;
  std::string path = sample_path(dir, "fashion_mnist_grid.png");
  fm::io::write_image_grid_png(path, scaled.data(), count, 1, 28, 28, 8, -1.f, 1.f, 2);
  auto png = decode_png(path);
  REQUIRE(png.width == 8 * (56 + 2) + 2);
  REQUIRE(png.height == 8 * (56 + 2) + 2);
}

TEST_CASE("scatter plot of generated points over data points", "[io][png]") {
  TempDir dir;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 1.f);
  // Reference: two moons-ish rings; generated: the same with extra noise and a few NaNs.
  std::vector<float> data, generated;
  for (int i = 0; i < 3000; ++i) {
    float angle = 3.14159265f * (i % 1500) / 1500.f;
    bool upper = i < 1500;
    float x = upper ? std::cos(angle) : 1.f - std::cos(angle), y = upper ? std::sin(angle) : 0.5f - std::sin(angle);
    data.push_back(x + 0.05f * normal(rng)), data.push_back(y + 0.05f * normal(rng));
    generated.push_back(x + 0.12f * normal(rng)), generated.push_back(y + 0.12f * normal(rng));
  }
  generated.push_back(std::nanf("")), generated.push_back(0.f);
  fm::io::ScatterOptions options;
  options.title = "two moons: step 20000";
  std::string path = sample_path(dir, "scatter.png");
  fm::io::write_scatter_png(path, generated.data(), int(generated.size() / 2), data.data(), int(data.size() / 2), options);
  auto png = decode_png(path);
  REQUIRE(png.width == 640);
  REQUIRE(png.height == 640);
  REQUIRE(png.at(2, 2) == std::array<std::uint8_t, 3>{255, 255, 255});

  // Fixed range, no points at all: still a valid, empty plot.
  options.fixed_range = true;
  options.x_min = -4, options.x_max = 4, options.y_min = -3, options.y_max = 3;
  fm::io::write_scatter_png(dir.file("empty.png"), nullptr, 0, nullptr, 0, options);
  REQUIRE(decode_png(dir.file("empty.png")).width == 640);
  // Points far outside a fixed range are clipped, not drawn at overflowing pixel coordinates.
  std::vector<float> far = {1e30f, -1e30f, 0.f, 0.f, -3e38f, 5.f};
  fm::io::write_scatter_png(dir.file("far.png"), far.data(), 3, nullptr, 0, options);
  REQUIRE(decode_png(dir.file("far.png")).width == 640);
  options.x_max = -5;
  require_error<fm::ValueError>([&] { fm::io::write_scatter_png(dir.file("x.png"), nullptr, 0, nullptr, 0, options); },
                                {"expected min < max"});
}

TEST_CASE("loss curve plot: linear and log axes, moving average, gaps", "[io][png]") {
  TempDir dir;
  std::mt19937 rng(3);
  std::normal_distribution<double> normal(0.0, 1.0);
  fm::io::LineSeries train{{}, {}, "train loss"}, eval{{}, {}, "eval loss (EMA)"};
  for (int step = 1; step <= 20000; step += 10) {
    double trend = 0.08 + 1.2 * std::exp(-step / 2500.0);
    train.x.push_back(step), train.y.push_back(trend * std::exp(0.25 * normal(rng)));
    if (step % 1000 == 1) eval.x.push_back(step), eval.y.push_back(trend * 0.95);
  }
  train.y[700] = std::nan("");  // a gap in the line, not a crash
  fm::io::LinePlotOptions options;
  options.title = "fashion_mnist: training loss";
  options.log_y = true;
  options.moving_average_window = 50;
  std::string path = sample_path(dir, "loss_log.png");
  fm::io::write_line_plot_png(path, {train, eval}, options);
  auto png = decode_png(path);
  REQUIRE(png.width == 900);
  REQUIRE(png.height == 540);

  options.log_y = false;
  options.moving_average_window = 0;
  options.title = "linear axis, no smoothing";
  fm::io::write_line_plot_png(sample_path(dir, "loss_linear.png"), {train}, options);
  // Degenerate inputs still make a picture: one point, a flat line, nothing at all.
  fm::io::write_line_plot_png(dir.file("one.png"), {{{5}, {0.3}, "one point"}}, options);
  fm::io::write_line_plot_png(dir.file("flat.png"), {{{1, 2, 3}, {2, 2, 2}, "flat"}}, options);
  fm::io::write_line_plot_png(dir.file("none.png"), {}, options);
  fm::io::write_line_plot_png(dir.file("huge.png"), {{{0, 1, 2}, {1e308, -1e308, 1e308}, "overflowing range"}}, options);
  options.log_y = true;
  fm::io::write_line_plot_png(dir.file("nonpositive.png"), {{{1, 2}, {0, -1}, "no positive values"}}, options);
  REQUIRE(decode_png(dir.file("none.png")).width == 900);

  require_error<fm::ValueError>(
      [&] { fm::io::write_line_plot_png(dir.file("bad.png"), {{{1, 2, 3}, {1, 2}, "short"}}, options); },
      {"'short'", "3 x values and 2 y values"});
}

// ========================================== metrics.jsonl =======================================

TEST_CASE("metrics.jsonl: append, read back, torn last line, truncate to a checkpoint step", "[io][jsonl]") {
  TempDir dir;
  std::string path = dir.file("metrics.jsonl");
  {
    fm::io::JsonlWriter writer(path);
    writer.append({{"run", "demo"}});  // a header record without a step
    for (int step = 1; step <= 5; ++step) writer.append({{"step", step}, {"loss", 1.0 / step}});
    writer.sync();
    // Lines are in the file as soon as they are appended, before the writer is closed.
    REQUIRE(fm::io::read_jsonl(path).lines.size() == 6);
  }
  auto contents = fm::io::read_jsonl(path);
  REQUIRE_FALSE(contents.torn_last_line);
  REQUIRE(contents.lines[0].record["run"] == "demo");
  REQUIRE(contents.lines[3].record["step"] == 3);
  REQUIRE(contents.lines[3].record["loss"].get<double>() == 1.0 / 3);  // doubles survive the text round trip
  REQUIRE(contents.lines[3].line_number == 4);

  // A crash mid-write leaves a partial line: dropped and reported, not fatal.
  {
    std::ofstream out(path, std::ios::app | std::ios::binary);
    out << R"({"step": 6, "lo)";
  }
  contents = fm::io::read_jsonl(path);
  REQUIRE(contents.torn_last_line);
  REQUIRE(contents.lines.size() == 6);
  REQUIRE_THAT(contents.torn_line_note, Catch::Contains("line 7") && Catch::Contains("dropped"));

  // Resume from the step-3 checkpoint: steps 4.. and the torn line go; the rest is kept byte for byte.
  std::string before = read_raw(path);
  auto cut = fm::io::truncate_jsonl_after_step(path, 3);
  REQUIRE(cut.kept == 4);
  REQUIRE(cut.dropped == 2);
  REQUIRE(cut.torn_last_line);
  std::string after = read_raw(path);
  REQUIRE(before.rfind(after, 0) == 0);  // a prefix of the old file
  REQUIRE(fm::io::read_jsonl(path).lines.back().record["step"] == 3);
  {
    fm::io::JsonlWriter writer(path);
    writer.append({{"step", 4}, {"loss", 0.2}});
  }
  REQUIRE(fm::io::read_jsonl(path).lines.size() == 5);
  REQUIRE(fm::io::truncate_jsonl_after_step(dir.file("absent.jsonl"), 3).kept == 0);
  REQUIRE_FALSE(fs::exists(dir.file("absent.jsonl")));
}

TEST_CASE("metrics.jsonl: corruption before the last line is an error naming the line", "[io][jsonl]") {
  TempDir dir;
  std::string path = dir.file("metrics.jsonl");
  write_raw(path, "{\"step\": 1}\n{\"step\": 2, oops}\n{\"step\": 3}\n");
  require_error<fm::FormatError>([&] { fm::io::read_jsonl(path); }, {path, "line 2", "not valid JSON"});
  write_raw(path, "{\"step\": 1}\n[1, 2]\n");
  require_error<fm::FormatError>([&] { fm::io::read_jsonl(path); }, {path, "line 2", "expected a JSON object"});
  write_raw(path, "{\"step\": 1}\n\n{\"step\": \"two\"}\n");
  REQUIRE(fm::io::read_jsonl(path).lines.size() == 2);  // blank lines are skipped
  require_error<fm::FormatError>([&] { fm::io::truncate_jsonl_after_step(path, 1); },
                                 {path, "line 3", "expected an integer"});
  fm::io::JsonlWriter writer(path);
  require_error<fm::ValueError>([&] { writer.append(nlohmann::json::array({1, 2})); }, {"JSON object"});
}

// ========================================== Python interop ======================================

// Known contents shared with tests/python_interop.py (keep the two in step).
TEST_CASE("interop files for tests/python_interop.py", "[io][interop]") {
  TempDir scratch;
  const char* interop_dir = std::getenv("FM_INTEROP_DIR");
  std::string out_dir = interop_dir ? std::string(interop_dir) : scratch.path.string();

  std::vector<float> weight(6);
  for (int i = 0; i < 6; ++i) weight[i] = 0.5f * i - 1.f;  // [[-1, -0.5, 0], [0.5, 1, 1.5]]
  std::vector<double> bias = {1.5, -2.25, 1e-300};
  std::int64_t step = 12345;
  std::vector<std::uint8_t> mask = {0, 1, 254, 255};
  std::string st_path = out_dir + "/interop.safetensors";
  fm::io::write_safetensors(st_path,
                            {{"layer.weight", "F32", {2, 3}, weight.data(), 24},
                             {"layer.bias", "F64", {3}, bias.data(), 24},
                             {"step", "I64", {}, &step, 8},
                             {"mask", "U8", {4}, mask.data(), 4},
                             {"empty", "F32", {0, 2}, nullptr, 0}},
                            {{"epoch", "3"}, {"note", "na\xc3\xafve \xe2\x9c\x93"}});

  std::vector<float> cube(24);
  for (int i = 0; i < 24; ++i) cube[i] = 0.25f * i - 1.f;
  fm::io::write_npy(out_dir + "/interop.npy", cube.data(), {2, 3, 4});
  std::vector<double> line = {0.1, 0.2, 1e-310, -7.0, 3.141592653589793};
  fm::io::write_npy(out_dir + "/interop_f64.npy", line.data(), {5});

  // Our own reader agrees with what we wrote.
  auto back = fm::io::read_safetensors(st_path);
  REQUIRE(values_of<float>(back.at("layer.weight")) == weight);
  REQUIRE(back.metadata.at("format") == "pt");
  REQUIRE(fm::io::read_npy(out_dir + "/interop.npy").to_float32() == cube);

  // Files the Python script wrote with numpy and safetensors, when it ran first.
  std::string from_python = out_dir + "/from_python.safetensors";
  if (fs::exists(from_python)) {
    auto file = fm::io::read_safetensors(from_python);
    REQUIRE(file.at("alpha").dtype == "F32");
    REQUIRE(file.at("alpha").shape == std::vector<std::int64_t>{2, 3});
    REQUIRE(values_of<float>(file.at("alpha")) == std::vector<float>{0.f, 0.25f, 0.5f, 0.75f, 1.f, 1.25f});
    REQUIRE(file.at("beta").dtype == "I64");
    REQUIRE(values_of<std::int64_t>(file.at("beta")) == std::vector<std::int64_t>{7, -8, 9});
    REQUIRE(file.at("gamma").dtype == "F64");
    REQUIRE(file.at("gamma").shape == std::vector<std::int64_t>{2, 2});
    REQUIRE(values_of<double>(file.at("gamma")) == std::vector<double>{1e-300, 2.0, 3.0, -4.0});
    REQUIRE(file.metadata.at("source") == "python");
    auto npy = fm::io::read_npy(out_dir + "/from_python.npy");
    REQUIRE(npy.dtype == fm::io::NpyDType::Float64);
    REQUIRE(npy.shape == std::vector<std::int64_t>{3, 2});
    REQUIRE(npy.to_float64() == std::vector<double>{0.0, 0.5, 1.0, 1.5, 2.0, 2.5});
    auto npy32 = fm::io::read_npy(out_dir + "/from_python_f32.npy");
    REQUIRE(npy32.dtype == fm::io::NpyDType::Float32);
    REQUIRE(npy32.shape == std::vector<std::int64_t>{4});
    REQUIRE(npy32.to_float32() == std::vector<float>{-1.f, 0.f, 1.f, 2.f});
  } else if (interop_dir) {
    WARN("no from_python.safetensors in " << out_dir << "; only the C++ -> Python direction was written");
  }
}
