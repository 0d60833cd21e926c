// tests/png_test_util.h — PNG helpers for the suites that draw pictures (test_io, test_bench_plot):
// decoding a written PNG back to RGB pixels, and where a case keeps its pictures for a human to look at.
//
// Header-only, for tests that link fm_core: the stb_image decoder is compiled into libstb, which
// fm_core links.
#pragma once
#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/io/atomic_file.h"
#include "test_util.h"

extern "C" {
unsigned char* stbi_load_from_memory(const unsigned char* buffer, int len, int* x, int* y, int* channels_in_file,
                                     int desired_channels);
void stbi_image_free(void* retval_from_stbi_load);
}

namespace fm::test {

struct DecodedPng {
  int width = 0, height = 0;
  std::vector<std::uint8_t> rgb;
  std::array<std::uint8_t, 3> at(int x, int y) const {
    const std::uint8_t* p = &rgb[(std::size_t(y) * width + x) * 3];
    return {p[0], p[1], p[2]};
  }
};

// Reads a PNG file (which must start with the PNG signature) as RGB.
inline DecodedPng decode_png(const std::string& path) {
  std::string bytes = fm::io::read_file_bytes(path);
  REQUIRE(bytes.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
  DecodedPng png;
  int channels = 0;
  unsigned char* pixels = stbi_load_from_memory(reinterpret_cast<const unsigned char*>(bytes.data()), int(bytes.size()),
                                                &png.width, &png.height, &channels, 3);
  REQUIRE(pixels != nullptr);
  png.rgb.assign(pixels, pixels + std::size_t(png.width) * png.height * 3);
  stbi_image_free(pixels);
  return png;
}

// Where the PNG cases put their pictures: FM_IO_SAMPLE_DIR when set, else the case's temp folder.
inline std::string sample_path(const TempDir& dir, const std::string& name) {
  if (const char* keep = std::getenv("FM_IO_SAMPLE_DIR")) {
    std::filesystem::create_directories(keep);
    return (std::filesystem::path(keep) / name).string();
  }
  return dir.file(name);
}

}  // namespace fm::test
