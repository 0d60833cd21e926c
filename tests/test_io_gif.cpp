// tests/test_io_gif.cpp — animated GIFs (core/io/gif.h) and the path animation drawn into them
// (core/io/path_animation.h): lossless round trips when the frames use at most 256 colours, median
// cut's palette against a brute-force nearest search when they use more, the loop and delay
// extensions, refusal of bad input and of damaged files, and the frames of a path animation (2-D points)
// and of an image path animation (rows of tiles).
//
// Environment: FM_IO_SAMPLE_DIR, as in tests/test_io.cpp: the animations are written there too, to look at.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/io/atomic_file.h"
#include "core/io/gif.h"
#include "core/io/path_animation.h"
#include "core/io/plot_canvas.h"
#include "png_test_util.h"
#include "test_util.h"

using fm::io::GifAnimation;
using fm::io::GifFrame;
using fm::io::Rgb;
using fm::test::sample_path;

namespace {

struct TempDir : fm::test::TempDir {
  TempDir() : fm::test::TempDir("fm_test_io_gif") {}
};

Rgb pixel(const GifFrame& frame, int width, int x, int y) {
  const std::uint8_t* p = &frame.rgb[(std::size_t(y) * std::size_t(width) + std::size_t(x)) * 3];
  return {p[0], p[1], p[2]};
}

int squared_distance(const Rgb& a, const std::uint8_t* b) {
  int d = 0;
  for (int ch = 0; ch < 3; ++ch) d += (int(a[ch]) - b[ch]) * (int(a[ch]) - b[ch]);
  return d;
}

// Three frames of 37x23 with `colors` distinct colours in all (colours from a fixed random draw).
GifAnimation random_animation(int colors, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<Rgb> pool(static_cast<std::size_t>(colors));
  for (Rgb& c : pool) c = {std::uint8_t(rng()), std::uint8_t(rng()), std::uint8_t(rng())};
  GifAnimation a;
  a.width = 37, a.height = 23;
  for (int f = 0; f < 3; ++f) {
    GifFrame frame;
    frame.delay_cs = 5 + 7 * f;
    for (int p = 0; p < a.width * a.height; ++p) {
      // Every colour used at least once (the first pixels walk through the pool), the rest at random.
      const Rgb& c = pool[std::size_t(f == 0 && p < colors ? p : int(rng() % std::uint32_t(colors)))];
      frame.rgb.insert(frame.rgb.end(), c.begin(), c.end());
    }
    a.frames.push_back(std::move(frame));
  }
  return a;
}

}  // namespace

TEST_CASE("a GIF of at most 255 colours reads back bitwise with its delays", "[io][gif]") {
  // 255: an animation keeps one index for the pixels a frame leaves unchanged. A single frame may use 256.
  TempDir dir;
  for (int colors : {1, 2, 3, 200, 255, 256}) {
    INFO("colours: " << colors);
    GifAnimation written = random_animation(colors, 11);
    if (colors == 256) written.frames.resize(1);
    const std::string path = dir.file("exact.gif");
    fm::io::write_gif(path, written);
    const GifAnimation read = fm::io::read_gif(path);
    REQUIRE(read.width == written.width);
    REQUIRE(read.height == written.height);
    REQUIRE(read.frames.size() == written.frames.size());
    for (std::size_t f = 0; f < read.frames.size(); ++f) {
      REQUIRE(read.frames[f].rgb == written.frames[f].rgb);
      REQUIRE(read.frames[f].delay_cs == written.frames[f].delay_cs);
    }
    REQUIRE(dir.entries() == std::vector<std::string>{"exact.gif"});  // no temp file left
  }
}

TEST_CASE("the file is GIF89a and loops forever", "[io][gif]") {
  TempDir dir;
  const std::string path = dir.file("loop.gif");
  fm::io::write_gif(path, random_animation(4, 3));
  const std::string bytes = fm::io::read_file_bytes(path);
  REQUIRE(bytes.substr(0, 6) == "GIF89a");
  // The NETSCAPE2.0 application block with loop count 0.
  const std::size_t at = bytes.find("NETSCAPE2.0");
  REQUIRE(at != std::string::npos);
  REQUIRE(bytes.substr(at + 11, 4) == std::string("\x03\x01\x00\x00", 4));
  REQUIRE(bytes.back() == ';');  // the trailer
}

TEST_CASE("frames store only what changed, and read back whole", "[io][gif]") {
  // A still background with one small square moving, then a frame identical to the one before.
  GifAnimation a;
  a.width = 200, a.height = 120;
  for (int f = 0; f < 5; ++f) {
    GifFrame frame;
    const int at = f < 4 ? 10 + 30 * f : 100;
    for (int y = 0; y < a.height; ++y)
      for (int x = 0; x < a.width; ++x) {
        const bool square = x >= at && x < at + 8 && y >= 50 && y < 58;
        const std::uint8_t grid = (x % 20 == 0 || y % 20 == 0) ? 200 : 250;
        frame.rgb.insert(frame.rgb.end(), {square ? std::uint8_t(255) : grid, square ? std::uint8_t(127) : grid,
                                           square ? std::uint8_t(14) : grid});
      }
    a.frames.push_back(std::move(frame));
  }
  TempDir dir;
  fm::io::write_gif(dir.file("moving.gif"), a);
  const GifAnimation read = fm::io::read_gif(dir.file("moving.gif"));
  REQUIRE(read.frames.size() == 5);
  for (std::size_t f = 0; f < 5; ++f) REQUIRE(read.frames[f].rgb == a.frames[f].rgb);
  // Far smaller than five whole frames: the first frame, then 4 small rectangles.
  const std::size_t one_frame = fm::io::read_file_bytes(dir.file("moving.gif")).size();
  GifAnimation first = a;
  first.frames.resize(1);
  fm::io::write_gif(dir.file("first.gif"), first);
  const std::size_t first_size = fm::io::read_file_bytes(dir.file("first.gif")).size();
  INFO("five frames: " << one_frame << " bytes, the first alone: " << first_size);
  REQUIRE(one_frame < first_size + 4 * 200);
}

TEST_CASE("over 256 colours: median cut gives each pixel its nearest palette entry", "[io][gif]") {
  // A smooth gradient (every 4th level of red against green, blue varying per frame): 4096 colours.
  GifAnimation a;
  a.width = 64, a.height = 64;
  for (int f = 0; f < 2; ++f) {
    GifFrame frame;
    for (int y = 0; y < 64; ++y)
      for (int x = 0; x < 64; ++x)
        frame.rgb.insert(frame.rgb.end(), {std::uint8_t(4 * x), std::uint8_t(4 * y), std::uint8_t(100 + 60 * f)});
    a.frames.push_back(std::move(frame));
  }
  // 255 colours, as write_gif takes for an animation (one index is kept for unchanged pixels).
  const fm::io::PalettedFrames paletted = fm::io::reduce_to_palette(a, 255);
  REQUIRE(paletted.palette.size() == 255);
  REQUIRE(fm::io::reduce_to_palette(a).palette.size() == 256);
  REQUIRE_THROWS_WITH(fm::io::reduce_to_palette(a, 1), Catch::Contains("1 colours, expected 2..256"));
  REQUIRE(paletted.indices.size() == 2);
  int worst = 0;
  for (std::size_t f = 0; f < 2; ++f)
    for (std::size_t p = 0; p < 64 * 64; ++p) {
      const std::uint8_t* rgb = &a.frames[f].rgb[3 * p];
      const int chosen = squared_distance(paletted.palette[paletted.indices[f][p]], rgb);
      // The chosen entry is the nearest of all (brute force), and never far off: 255 entries over
      // 8192 colours that span 252 levels of red and green leave cells of about 16 levels a side.
      int best = 1 << 30;
      for (const Rgb& entry : paletted.palette) best = std::min(best, squared_distance(entry, rgb));
      REQUIRE(chosen == best);
      worst = std::max(worst, chosen);
    }
  REQUIRE(worst <= 3 * 16 * 16);
  // Through a file: the decoded pixels are the palette's colours.
  TempDir dir;
  fm::io::write_gif(dir.file("gradient.gif"), a);
  const GifAnimation read = fm::io::read_gif(dir.file("gradient.gif"));
  for (std::size_t f = 0; f < 2; ++f)
    for (std::size_t p = 0; p < 64 * 64; ++p) {
      const Rgb& entry = paletted.palette[paletted.indices[f][p]];
      REQUIRE(std::equal(entry.begin(), entry.end(), &read.frames[f].rgb[3 * p]));
    }
}

TEST_CASE("bad animations are refused before any file is written", "[io][gif]") {
  TempDir dir;
  const std::string path = dir.file("bad.gif");
  GifAnimation a = random_animation(3, 5);
  GifAnimation no_frames = a;
  no_frames.frames.clear();
  REQUIRE_THROWS_WITH(fm::io::write_gif(path, no_frames), Catch::Contains("no frames, expected at least one"));
  GifAnimation short_frame = a;
  short_frame.frames[1].rgb.pop_back();
  REQUIRE_THROWS_WITH(fm::io::write_gif(path, short_frame), Catch::Contains("frame 1 has 2552 bytes, expected 2553"));
  GifAnimation bad_delay = a;
  bad_delay.frames[2].delay_cs = -1;
  REQUIRE_THROWS_WITH(fm::io::write_gif(path, bad_delay), Catch::Contains("frame 2 delay -1 cs, expected 0..65535"));
  GifAnimation zero = a;
  zero.width = 0;
  REQUIRE_THROWS_WITH(fm::io::write_gif(path, zero), Catch::Contains("frames of 0x23, expected 1..16384 a side"));
  REQUIRE(dir.entries().empty());
  // A folder that does not exist: an IOError naming the file.
  const std::string missing = dir.file("no/such/folder.gif");
  REQUIRE_THROWS_AS(fm::io::write_gif(missing, a), fm::IOError);
}

TEST_CASE("damaged GIF files are refused with the file named", "[io][gif]") {
  TempDir dir;
  const std::string good = dir.file("good.gif");
  fm::io::write_gif(good, random_animation(50, 9));
  const std::string bytes = fm::io::read_file_bytes(good);
  const std::string not_gif = dir.write("not.gif", "PNG, not a GIF at all");
  REQUIRE_THROWS_WITH(fm::io::read_gif(not_gif), Catch::Contains(not_gif + ": not a GIF file"));
  const std::string truncated = dir.write("truncated.gif", bytes.substr(0, bytes.size() / 2));
  REQUIRE_THROWS_WITH(fm::io::read_gif(truncated), Catch::Contains(truncated + ": a damaged GIF file"));
  REQUIRE_THROWS_AS(fm::io::read_gif(dir.file("missing.gif")), fm::IOError);
}

TEST_CASE("a path animation shows each path's point moving from x0 to x1", "[io][gif][png]") {
  // Four paths on straight lines from the corners of a square towards its centre, 11 states.
  const int states = 11, paths = 4;
  const float corners[4][2] = {{-2, -2}, {2, -2}, {2, 2}, {-2, 2}};
  std::vector<float> trajectory;
  for (int k = 0; k < states; ++k)
    for (const auto& c : corners) {
      const float s = 1.f - 0.8f * float(k) / (states - 1);
      trajectory.push_back(c[0] * s), trajectory.push_back(c[1] * s);
    }
  const std::vector<float> data = {0.f, 0.f, 0.1f, -0.1f};
  TempDir dir;
  fm::io::PathAnimationOptions options;
  options.title = "four straight paths";
  options.max_frames = 6;  // states 0, 2, 4, 6, 8, 10
  const std::string path = sample_path(dir, "paths.gif");
  fm::io::write_path_animation_gif(path, trajectory.data(), states, paths, data.data(), 2, options);
  const GifAnimation read = fm::io::read_gif(path);
  REQUIRE(read.width == options.width);
  REQUIRE(read.height == options.height);
  REQUIRE(read.frames.size() == 6);
  for (std::size_t j = 0; j + 1 < read.frames.size(); ++j) REQUIRE(read.frames[j].delay_cs == options.frame_delay_cs);
  REQUIRE(read.frames.back().delay_cs == options.last_frame_delay_cs);
  REQUIRE(pixel(read.frames[0], read.width, 2, 2) == Rgb{255, 255, 255});
  // The frames differ (the points move), and the first frame's moving point sits at a corner: the
  // path's colour (orange) there in frame 0, background there in the last frame. The plot's axes
  // are equal-aspect over [-2.2, 2.2]; the corner (-2, -2) maps to the lower left of the plot area.
  REQUIRE(read.frames.front().rgb != read.frames.back().rgb);
  const int left = 72, right = options.width - 24, top = 74, bottom = options.height - 58;
  const double units_per_pixel = std::max(4.4 / (right - left), 4.4 / (bottom - top));
  const int corner_x = int(std::lround((left + right) / 2.0 - 2.0 / units_per_pixel));
  const int corner_y = int(std::lround((top + bottom) / 2.0 + 2.0 / units_per_pixel));
  const Rgb at_start = pixel(read.frames.front(), read.width, corner_x, corner_y);
  const Rgb at_end = pixel(read.frames.back(), read.width, corner_x, corner_y);
  INFO("start " << int(at_start[0]) << "," << int(at_start[1]) << "," << int(at_start[2]) << "  end " << int(at_end[0])
                << "," << int(at_end[1]) << "," << int(at_end[2]));
  REQUIRE(at_start[0] > 200);  // orange: (255, 127, 14) at 90% over white
  REQUIRE(at_start[2] < 80);
  REQUIRE(at_end[2] > 130);  // the point has left; only its faint trail (35% orange) is under it

  // A path that diverges is drawn up to its last finite state; bad arguments are refused.
  trajectory[2 * (5 * paths + 1)] = std::nanf("");
  fm::io::write_path_animation_gif(dir.file("nan.gif"), trajectory.data(), states, paths, nullptr, 0, options);
  REQUIRE(fm::io::read_gif(dir.file("nan.gif")).frames.size() == 6);
  REQUIRE_THROWS_WITH(fm::io::write_path_animation_gif(dir.file("x.gif"), trajectory.data(), 1, paths, nullptr, 0),
                      Catch::Contains("expected at least 2 states"));
  options.max_frames = 1;
  REQUIRE_THROWS_WITH(fm::io::write_path_animation_gif(dir.file("x.gif"), trajectory.data(), states, paths, nullptr, 0,
                                                       options),
                      Catch::Contains("max_frames 1, expected >= 2"));
}

TEST_CASE("an image path animation shows each frame's tiles in 7-bit grey, exactly", "[io][gif][png]") {
  // Two rows of three 4x5 images over five frames; pixel (x, y) of image i in row r at frame j has the
  // value v = -1 + 2 * ((r * 5 + j) * 3 + i + 1) / 31 + (x + 4 y) / 1000 (within [-1, 1]), except one NaN.
  const int rows = 2, frames = 5, count = 3, height = 4, width = 5;
  std::vector<float> images;
  auto value = [&](int r, int j, int i, int x, int y) {
    return -1.f + 2.f * float((r * frames + j) * count + i + 1) / 31.f + float(x + 4 * y) / 1000.f;
  };
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < frames; ++j)
      for (int i = 0; i < count; ++i)
        for (int y = 0; y < height; ++y)
          for (int x = 0; x < width; ++x) images.push_back(value(r, j, i, x, y));
  auto index = [&](int r, int j, int i, int x, int y) {
    return std::size_t((((r * frames + j) * count + i) * height + y) * width + x);
  };
  images[index(1, 4, 2, 3, 1)] = std::nanf("");
  const std::vector<double> times = {0, 0.25, 0.5, 0.75, 1};
  fm::io::ImagePathAnimationOptions options;
  options.title = "tiles";
  options.row_labels = {"x_t", "predicted"};
  TempDir dir;
  const std::string path = sample_path(dir, "image_paths.gif");
  fm::io::write_image_path_animation_gif(path, images.data(), rows, frames, count, 1, height, width, times, options);
  const GifAnimation read = fm::io::read_gif(path);
  REQUIRE(read.frames.size() == std::size_t(frames));
  REQUIRE(read.frames.back().delay_cs == options.last_frame_delay_cs);
  REQUIRE(read.frames.front().delay_cs == options.frame_delay_cs);

  // Where the tiles are: right of the widest label (+ 20), under the 36-pixel title band, 2-pixel borders.
  const int left = int(std::ceil(fm::io::plot::text_width("predicted", fm::io::plot::kLabelScale))) + 20;
  const int tile_width = width * options.scale + 2, tile_height = height * options.scale + 2;
  int checked = 0;
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < frames; ++j)
      for (int i = 0; i < count; ++i)
        for (int y = 0; y < height; ++y)
          for (int x = 0; x < width; ++x) {
            // The middle of the pixel's scale x scale block.
            const int px = left + 2 + i * tile_width + x * options.scale + 1;
            const int py = 36 + r * tile_height + 2 + y * options.scale + 1;
            const Rgb got = pixel(read.frames[std::size_t(j)], read.width, px, py);
            const float v = images[index(r, j, i, x, y)];
            if (std::isnan(v)) {
              REQUIRE(got == Rgb{255, 0, 0});
              continue;
            }
            const int grey = int(std::lround(std::clamp((v + 1.f) * 127.5f, 0.f, 255.f))) & 0xFE;
            INFO("row " << r << " frame " << j << " image " << i << " at " << x << "," << y);
            REQUIRE(got == Rgb{std::uint8_t(grey), std::uint8_t(grey), std::uint8_t(grey)});
            ++checked;
          }
  REQUIRE(checked == rows * frames * count * height * width - 1);
  // Between the tiles: the grid's grey border (128, even already).
  REQUIRE(pixel(read.frames[0], read.width, left + 1, 36 + 5) == Rgb{128, 128, 128});

  // Bad arguments are refused before any file is written.
  REQUIRE_THROWS_WITH(fm::io::write_image_path_animation_gif(dir.file("x.gif"), images.data(), rows, frames, count, 2,
                                                             height, width, times, options),
                      Catch::Contains("expected at least one of each with 1 or 3 channels"));
  REQUIRE_THROWS_WITH(fm::io::write_image_path_animation_gif(dir.file("x.gif"), images.data(), rows, frames, count, 1,
                                                             height, width, {0, 1}, options),
                      Catch::Contains("2 times and 2 row labels for 5 frames"));
  options.scale = 0;
  REQUIRE_THROWS_WITH(fm::io::write_image_path_animation_gif(dir.file("x.gif"), images.data(), rows, frames, count, 1,
                                                             height, width, times, options),
                      Catch::Contains("scale 0"));
  REQUIRE_FALSE(std::filesystem::exists(dir.file("x.gif")));
}
