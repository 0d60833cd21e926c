// core/io/gif.cpp — the palette reduction and the giflib calls behind core/io/gif.h.
//
// giflib writes through a callback into a string here, and write_file_atomically puts the result on
// disk, so a failed encode leaves no half-written file.
#include "core/io/gif.h"

#include <gif_lib.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "core/error.h"
#include "core/io/atomic_file.h"

namespace fm::io {

namespace {

constexpr int kMaxSide = 16384;

std::uint32_t pack(const std::uint8_t* p) { return std::uint32_t(p[0]) << 16 | std::uint32_t(p[1]) << 8 | p[2]; }
Rgb unpack(std::uint32_t c) { return {std::uint8_t(c >> 16), std::uint8_t(c >> 8), std::uint8_t(c)}; }

void check_animation(const char* what, const std::string& path, const GifAnimation& a) {
  if (a.width < 1 || a.height < 1 || a.width > kMaxSide || a.height > kMaxSide)
    throw ValueError(cat(what, ": ", path, ": frames of ", a.width, "x", a.height, ", expected 1..", kMaxSide, " a side"));
  if (a.frames.empty()) throw ValueError(cat(what, ": ", path, ": no frames, expected at least one"));
  const std::size_t bytes = std::size_t(a.width) * std::size_t(a.height) * 3;
  for (std::size_t f = 0; f < a.frames.size(); ++f) {
    if (a.frames[f].rgb.size() != bytes)
      throw ValueError(cat(what, ": ", path, ": frame ", f, " has ", a.frames[f].rgb.size(), " bytes, expected ", bytes,
                           " (", a.width, "x", a.height, " RGB)"));
    if (a.frames[f].delay_cs < 0 || a.frames[f].delay_cs > 65535)
      throw ValueError(cat(what, ": ", path, ": frame ", f, " delay ", a.frames[f].delay_cs, " cs, expected 0..65535"));
  }
}

// ---- median cut over 5-bit colours --------------------------------------------------------------------

// A colour at 5 bits a channel (a "cell"), with how many pixels fall in it and their exact sums.
struct Cell {
  std::uint8_t c[3];  // 0..31 per channel
  std::uint64_t count = 0;
  std::uint64_t sum[3] = {0, 0, 0};
};

struct Box {
  std::size_t begin, end;  // cells [begin, end) of the cell array
  int widest = 0;          // the channel with the largest range
  int range = -1;          // that range, in cells (0: one colour; cannot be split)
};

void measure(const std::vector<Cell>& cells, Box& box) {
  int lo[3] = {31, 31, 31}, hi[3] = {0, 0, 0};
  for (std::size_t i = box.begin; i < box.end; ++i)
    for (int ch = 0; ch < 3; ++ch) lo[ch] = std::min<int>(lo[ch], cells[i].c[ch]), hi[ch] = std::max<int>(hi[ch], cells[i].c[ch]);
  box.range = -1;
  for (int ch = 0; ch < 3; ++ch)
    if (hi[ch] - lo[ch] > box.range) box.range = hi[ch] - lo[ch], box.widest = ch;
}

std::vector<Rgb> median_cut(std::vector<Cell>& cells, int max_colors) {
  std::vector<Box> boxes{{0, cells.size()}};
  measure(cells, boxes[0]);
  while (int(boxes.size()) < max_colors) {
    // The box spanning the most cells along one channel is split next (ties: the first).
    auto widest = std::max_element(boxes.begin(), boxes.end(), [](const Box& a, const Box& b) { return a.range < b.range; });
    if (widest->range <= 0) break;  // every box holds one cell
    Box box = *widest;
    const int ch = box.widest;
    std::sort(cells.begin() + std::ptrdiff_t(box.begin), cells.begin() + std::ptrdiff_t(box.end),
              [ch](const Cell& a, const Cell& b) { return a.c[ch] < b.c[ch]; });
    // The weighted median: the first cell at which half the box's pixels are passed, kept inside
    // (begin, end) so both halves hold at least one cell.
    std::uint64_t total = 0, passed = 0;
    for (std::size_t i = box.begin; i < box.end; ++i) total += cells[i].count;
    std::size_t split = box.begin + 1;
    for (std::size_t i = box.begin; i + 1 < box.end; ++i) {
      passed += cells[i].count;
      split = i + 1;
      if (2 * passed >= total) break;
    }
    Box low{box.begin, split}, high{split, box.end};
    measure(cells, low);
    measure(cells, high);
    *widest = low;
    boxes.push_back(high);
  }
  std::vector<Rgb> palette;
  for (const Box& box : boxes) {
    std::uint64_t count = 0, sum[3] = {0, 0, 0};
    for (std::size_t i = box.begin; i < box.end; ++i) {
      count += cells[i].count;
      for (int ch = 0; ch < 3; ++ch) sum[ch] += cells[i].sum[ch];
    }
    Rgb mean;
    for (int ch = 0; ch < 3; ++ch) mean[ch] = std::uint8_t((sum[ch] + count / 2) / count);
    palette.push_back(mean);
  }
  return palette;
}

int cell_of(const std::uint8_t* p) { return (p[0] >> 3) << 10 | (p[1] >> 3) << 5 | (p[2] >> 3); }

std::uint8_t nearest(const std::vector<Rgb>& palette, const std::uint8_t* p) {
  int best = 0, best_distance = 1 << 30;
  for (std::size_t k = 0; k < palette.size(); ++k) {
    int d = 0;
    for (int ch = 0; ch < 3; ++ch) d += (int(p[ch]) - palette[k][ch]) * (int(p[ch]) - palette[k][ch]);
    if (d < best_distance) best_distance = d, best = int(k);
  }
  return std::uint8_t(best);
}

// ---- giflib's callbacks -----------------------------------------------------------------------------

int append_output(GifFileType* gif, const GifByteType* bytes, int length) {
  static_cast<std::string*>(gif->UserData)->append(reinterpret_cast<const char*>(bytes), std::size_t(length));
  return length;
}

struct InputCursor {
  std::string_view bytes;
  std::size_t at = 0;
};

int read_input(GifFileType* gif, GifByteType* into, int length) {
  auto* cursor = static_cast<InputCursor*>(gif->UserData);
  const std::size_t n = std::min(std::size_t(length), cursor->bytes.size() - cursor->at);
  std::memcpy(into, cursor->bytes.data() + cursor->at, n);
  cursor->at += n;
  return int(n);
}

// Closes the encoder on every path out of write_gif (giflib frees its own state in EGifCloseFile).
struct EncoderCloser {
  GifFileType* gif;
  ~EncoderCloser() {
    int error = 0;
    if (gif) EGifCloseFile(gif, &error);
  }
};

// reduce_to_palette for an animation already checked (write_gif checks it once, with the file named).
PalettedFrames palette_of_checked(const GifAnimation& animation, int max_colors) {
  const std::size_t pixels = std::size_t(animation.width) * std::size_t(animation.height);
  PalettedFrames out;
  // First try: the exact colours, if there are few enough.
  std::unordered_map<std::uint32_t, std::uint8_t> exact;
  bool fits = true;
  for (const GifFrame& frame : animation.frames) {
    for (std::size_t p = 0; p < pixels && fits; ++p) {
      const std::uint32_t c = pack(&frame.rgb[3 * p]);
      if (exact.count(c)) continue;
      if (int(exact.size()) == max_colors) fits = false;
      else exact.emplace(c, std::uint8_t(exact.size()));
    }
    if (!fits) break;
  }
  if (fits) {
    out.palette.resize(exact.size());
    for (const auto& [c, index] : exact) out.palette[index] = unpack(c);
    for (const GifFrame& frame : animation.frames) {
      std::vector<std::uint8_t> indices(pixels);
      for (std::size_t p = 0; p < pixels; ++p) indices[p] = exact.at(pack(&frame.rgb[3 * p]));
      out.indices.push_back(std::move(indices));
    }
    return out;
  }
  // Too many: median cut over the 5-bit cells, then each cell's pixels take their nearest entry
  // (looked up per exact colour, cached: plots repeat a few thousand colours many times).
  std::vector<Cell> by_cell(1 << 15);
  for (const GifFrame& frame : animation.frames)
    for (std::size_t p = 0; p < pixels; ++p) {
      const std::uint8_t* rgb = &frame.rgb[3 * p];
      Cell& cell = by_cell[std::size_t(cell_of(rgb))];
      ++cell.count;
      for (int ch = 0; ch < 3; ++ch) cell.sum[ch] += rgb[ch], cell.c[ch] = std::uint8_t(rgb[ch] >> 3);
    }
  std::vector<Cell> cells;
  for (const Cell& cell : by_cell)
    if (cell.count) cells.push_back(cell);
  out.palette = median_cut(cells, max_colors);
  std::unordered_map<std::uint32_t, std::uint8_t> chosen;
  for (const GifFrame& frame : animation.frames) {
    std::vector<std::uint8_t> indices(pixels);
    for (std::size_t p = 0; p < pixels; ++p) {
      const std::uint8_t* rgb = &frame.rgb[3 * p];
      auto [it, inserted] = chosen.emplace(pack(rgb), 0);
      if (inserted) it->second = nearest(out.palette, rgb);
      indices[p] = it->second;
    }
    out.indices.push_back(std::move(indices));
  }
  return out;
}

}  // namespace

PalettedFrames reduce_to_palette(const GifAnimation& animation, int max_colors) {
  check_animation("reduce_to_palette", "(in memory)", animation);
  if (max_colors < 2 || max_colors > 256)
    throw ValueError(cat("reduce_to_palette: ", max_colors, " colours, expected 2..256"));
  return palette_of_checked(animation, max_colors);
}

namespace {

// The rectangle a frame stores: where its indices differ from the previous frame's (the whole frame
// for the first; one pixel when nothing changed, since a GIF image cannot be empty).
struct ChangedRect {
  int left = 0, top = 0, width = 0, height = 0;
};

ChangedRect changed_rect(const std::vector<std::uint8_t>* previous, const std::vector<std::uint8_t>& now, int width,
                         int height) {
  if (!previous) return {0, 0, width, height};
  int x0 = width, y0 = height, x1 = -1, y1 = -1;
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const std::size_t p = std::size_t(y) * std::size_t(width) + std::size_t(x);
      if ((*previous)[p] == now[p]) continue;
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  if (x1 < 0) return {0, 0, 1, 1};
  return {x0, y0, x1 - x0 + 1, y1 - y0 + 1};
}

}  // namespace

void write_gif(const std::string& path, const GifAnimation& animation) {
  check_animation("write_gif", path, animation);
  // With more than one frame, one index is kept for "unchanged" (transparent) pixels.
  const bool animated = animation.frames.size() > 1;
  const PalettedFrames paletted = palette_of_checked(animation, animated ? 255 : 256);
  const int transparent = animated ? int(paletted.palette.size()) : NO_TRANSPARENT_COLOR;
  auto fail = [&path](const char* step, int error) {
    return IOError(cat(path, ": GIF encoding failed at ", step, " (", GifErrorString(error), ")"));
  };

  std::string encoded;
  int error = 0;
  EncoderCloser closer{EGifOpen(&encoded, append_output, &error)};
  if (!closer.gif) throw fail("open", error);
  EGifSetGifVersion(closer.gif, true);  // GIF89a: the loop, delay and transparency extensions need it

  // The palette's size must be a power of two (at least 2); the entries past the colours (the
  // transparent one among them) are black.
  const int used = int(paletted.palette.size()) + (animated ? 1 : 0);
  int size = 2;
  while (size < used) size *= 2;
  std::vector<GifColorType> colors(std::size_t(size), GifColorType{0, 0, 0});
  for (std::size_t k = 0; k < paletted.palette.size(); ++k)
    colors[k] = {paletted.palette[k][0], paletted.palette[k][1], paletted.palette[k][2]};
  ColorMapObject* map = GifMakeMapObject(size, colors.data());
  if (!map) throw IOError(cat(path, ": GIF encoding failed: no memory for the palette"));
  const int screen = EGifPutScreenDesc(closer.gif, animation.width, animation.height, 8, 0, map);  // copies the map
  GifFreeMapObject(map);
  if (screen == GIF_ERROR) throw fail("the screen descriptor", closer.gif->Error);

  // NETSCAPE2.0 application block: loop count 0 = forever.
  const GifByteType loop[3] = {1, 0, 0};
  if (EGifPutExtensionLeader(closer.gif, APPLICATION_EXT_FUNC_CODE) == GIF_ERROR ||
      EGifPutExtensionBlock(closer.gif, 11, "NETSCAPE2.0") == GIF_ERROR ||
      EGifPutExtensionBlock(closer.gif, 3, loop) == GIF_ERROR || EGifPutExtensionTrailer(closer.gif) == GIF_ERROR)
    throw fail("the loop extension", closer.gif->Error);

  for (std::size_t f = 0; f < animation.frames.size(); ++f) {
    const std::vector<std::uint8_t>& now = paletted.indices[f];
    const std::vector<std::uint8_t>* previous = f > 0 ? &paletted.indices[f - 1] : nullptr;
    const ChangedRect rect = changed_rect(previous, now, animation.width, animation.height);
    GraphicsControlBlock control{};
    control.DisposalMode = DISPOSE_DO_NOT;  // the next frame is drawn over this one
    control.UserInputFlag = false;
    control.DelayTime = animation.frames[f].delay_cs;
    control.TransparentColor = transparent;
    GifByteType extension[4];
    const std::size_t length = EGifGCBToExtension(&control, extension);
    if (EGifPutExtension(closer.gif, GRAPHICS_EXT_FUNC_CODE, int(length), extension) == GIF_ERROR)
      throw fail("a graphics control block", closer.gif->Error);
    if (EGifPutImageDesc(closer.gif, rect.left, rect.top, rect.width, rect.height, false, nullptr) == GIF_ERROR)
      throw fail("an image descriptor", closer.gif->Error);
    std::vector<GifPixelType> row(std::size_t(rect.width));
    for (int y = rect.top; y < rect.top + rect.height; ++y) {
      for (int x = 0; x < rect.width; ++x) {
        const std::size_t p = std::size_t(y) * std::size_t(animation.width) + std::size_t(rect.left + x);
        // Unchanged pixels inside the rectangle: transparent, so the previous frame shows through
        // (long runs of one index, which LZW codes in a few bits).
        row[std::size_t(x)] = previous && (*previous)[p] == now[p] ? GifPixelType(transparent) : now[p];
      }
      if (EGifPutLine(closer.gif, row.data(), rect.width) == GIF_ERROR) throw fail("a pixel row", closer.gif->Error);
    }
  }
  GifFileType* gif = closer.gif;
  closer.gif = nullptr;
  if (EGifCloseFile(gif, &error) == GIF_ERROR) throw fail("the trailer", error);
  write_file_atomically(path, encoded);
}

GifAnimation read_gif(const std::string& path) { return decode_gif(read_file_bytes(path), path); }

GifAnimation decode_gif(std::string_view file_bytes, const std::string& source) {
  InputCursor cursor{file_bytes};
  int error = 0;
  GifFileType* gif = DGifOpen(&cursor, read_input, &error);
  if (!gif) throw IOError(cat(source, ": not a GIF file (", GifErrorString(error), ")"));
  struct DecoderCloser {
    GifFileType* gif;
    ~DecoderCloser() {
      int ignored = 0;
      DGifCloseFile(gif, &ignored);
    }
  } closer{gif};
  if (DGifSlurp(gif) == GIF_ERROR) throw IOError(cat(source, ": a damaged GIF file (", GifErrorString(gif->Error), ")"));
  GifAnimation out;
  out.width = gif->SWidth, out.height = gif->SHeight;
  if (out.width < 1 || out.height < 1 || out.width > kMaxSide || out.height > kMaxSide)
    throw IOError(cat(source, ": GIF screen of ", out.width, "x", out.height, ", expected 1..", kMaxSide, " a side"));
  if (gif->ImageCount < 1) throw IOError(cat(source, ": a GIF file with no image"));
  std::vector<std::uint8_t> screen(std::size_t(out.width) * std::size_t(out.height) * 3, 0);
  for (int i = 0; i < gif->ImageCount; ++i) {
    const SavedImage& image = gif->SavedImages[i];
    const GifImageDesc& d = image.ImageDesc;
    const ColorMapObject* map = d.ColorMap ? d.ColorMap : gif->SColorMap;
    if (!map) throw IOError(cat(source, ": GIF image ", i, " has no palette"));
    if (d.Left < 0 || d.Top < 0 || d.Width < 0 || d.Height < 0 || d.Left + d.Width > out.width ||
        d.Top + d.Height > out.height)
      throw IOError(cat(source, ": GIF image ", i, " at ", d.Left, ",", d.Top, " size ", d.Width, "x", d.Height,
                        " lies outside the ", out.width, "x", out.height, " screen"));
    GraphicsControlBlock control{};
    control.TransparentColor = NO_TRANSPARENT_COLOR;
    const bool has_control = DGifSavedExtensionToGCB(gif, i, &control) == GIF_OK;
    for (int y = 0; y < d.Height; ++y)
      for (int x = 0; x < d.Width; ++x) {
        const int index = image.RasterBits[std::size_t(y) * std::size_t(d.Width) + std::size_t(x)];
        if (index == control.TransparentColor) continue;
        if (index >= map->ColorCount)
          throw IOError(cat(source, ": GIF image ", i, " uses colour ", index, " of a ", map->ColorCount, "-colour palette"));
        std::uint8_t* p = &screen[(std::size_t(d.Top + y) * std::size_t(out.width) + std::size_t(d.Left + x)) * 3];
        p[0] = map->Colors[index].Red, p[1] = map->Colors[index].Green, p[2] = map->Colors[index].Blue;
      }
    out.frames.push_back({screen, has_control ? control.DelayTime : 0});
  }
  return out;
}

}  // namespace fm::io
