// core/io/gif.h — animated GIF files: RGB frames brought down to one shared palette of at most 256
// colours, encoded by giflib (Debian's libgif-dev) and written atomically; and the way back, so a test
// or a tool can check what was written.
//
// Part of core/io/ (pixels in, files out; no Tensor). A GIF stores palette indices, not colours: every
// frame here shares one global palette. When the frames use few enough distinct colours (256 for one
// frame, 255 for more) the palette holds them exactly and the file is lossless; otherwise median cut
// chooses them (reduce_to_palette). After the first frame, each frame stores only the rectangle that
// changed, with the pixels that did not change in it as a transparent index (left as they were): a
// plot whose points move over a still background then costs a fraction of its full frames.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fm::io {

using Rgb = std::array<std::uint8_t, 3>;

struct GifFrame {
  std::vector<std::uint8_t> rgb;  // width x height x 3, rows top to bottom
  int delay_cs = 10;              // how long the frame shows, in hundredths of a second (0..65535)
};

struct GifAnimation {
  int width = 0, height = 0;
  std::vector<GifFrame> frames;
};

// The frames as indices into one palette (<= 256 entries): palette[indices[f][p]] is pixel p of frame f.
struct PalettedFrames {
  std::vector<Rgb> palette;
  std::vector<std::vector<std::uint8_t>> indices;
};

// Exact when the frames use at most max_colors (2..256) distinct colours. Otherwise median cut over the colours
// (5 bits a channel, weighted by how many pixels have them): the box with the widest channel range is
// split at its weighted median until there are max_colors; each box's weighted mean is a palette entry, and
// each pixel takes the entry nearest its colour.
PalettedFrames reduce_to_palette(const GifAnimation& animation, int max_colors = 256);

// Writes an animation that loops forever. fm::ValueError for bad sizes (1..16384 a side), no frames,
// a frame of the wrong length or a delay outside 0..65535; fm::IOError when encoding or writing fails.
void write_gif(const std::string& path, const GifAnimation& animation);

// Reads a GIF back into full RGB frames: each image drawn over the previous frame at its place (with
// its transparent index left alone), with its own or the global palette, and the delay of its
// graphics control block (0 without one). fm::IOError for a file that is missing or not a valid GIF.
GifAnimation read_gif(const std::string& path);
GifAnimation decode_gif(std::string_view file_bytes, const std::string& source);

}  // namespace fm::io
