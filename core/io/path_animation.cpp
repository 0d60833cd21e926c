// core/io/path_animation.cpp — the frames of core/io/path_animation.h (points on a plot, or rows of
// image tiles), drawn with the plot kit and handed to the GIF encoder.
#include "core/io/path_animation.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "core/error.h"
#include "core/io/gif.h"
#include "core/io/plot_canvas.h"

namespace fm::io {

using namespace plot;

namespace {

// A drawn canvas as one frame of the animation, shown for delay_cs hundredths of a second.
GifFrame frame_of(const Canvas& canvas, int delay_cs) {
  const std::uint8_t* pixels = canvas.pixels();
  GifFrame frame;
  frame.rgb.assign(pixels, pixels + std::size_t(canvas.width()) * std::size_t(canvas.height()) * 3);
  frame.delay_cs = delay_cs;
  return frame;
}

}  // namespace

void write_path_animation_gif(const std::string& path, const float* states, int state_count, int path_count,
                              const float* data, int n_data, const PathAnimationOptions& options) {
  check_plot_size("write_path_animation_gif", options.width, options.height);
  if (state_count < 2 || path_count < 1 || !states || n_data < 0 || (n_data > 0 && !data))
    throw ValueError(cat("write_path_animation_gif: ", path, ": ", state_count, " states of ", path_count,
                         " paths and ", n_data, " data points, expected at least 2 states of at least one path "
                         "(with non-null pointers)"));
  if (options.max_frames < 2)
    throw ValueError(cat("write_path_animation_gif: ", path, ": max_frames ", options.max_frames, ", expected >= 2"));
  auto at = [&](int k, int i) { return &states[2 * (std::size_t(k) * std::size_t(path_count) + std::size_t(i))]; };

  // The axes stay put over the whole animation: they hold every state and the data.
  PointBounds bounds;
  bounds.add(states, std::size_t(state_count) * std::size_t(path_count));
  if (n_data > 0) bounds.add(data, std::size_t(n_data));
  PlotFrame f;
  f.left = 72, f.right = options.width - 24, f.top = 74, f.bottom = options.height - 58;
  set_point_axes(f, bounds, true);

  // Where each path stops: its first non-finite state (a diverged path is drawn up to there).
  std::vector<int> finite_until(std::size_t(path_count), state_count);
  for (int i = 0; i < path_count; ++i)
    for (int k = 0; k < state_count; ++k)
      if (!std::isfinite(at(k, i)[0]) || !std::isfinite(at(k, i)[1])) {
        finite_until[std::size_t(i)] = k;
        break;
      }

  const Color path_color = kPalette[1], data_color = kPalette[0];
  const int frames = std::min(options.max_frames, state_count);
  GifAnimation animation;
  animation.width = options.width, animation.height = options.height;
  for (int j = 0; j < frames; ++j) {
    const int k = int(std::lround(double(j) * (state_count - 1) / (frames - 1)));  // the state this frame shows
    Canvas canvas(options.width, options.height, kWhite);
    draw_grid(canvas, f);
    canvas.set_clip({float(f.left), float(f.top), float(f.right), float(f.bottom)});
    for (int p = 0; p < n_data; ++p) draw_point(canvas, f, data[2 * p], data[2 * p + 1], 1.3f, data_color, 0.3f);
    for (int i = 0; i < path_count; ++i) {
      const int last = std::min(k, finite_until[std::size_t(i)] - 1);
      if (last < 0) continue;
      std::vector<Point> trail;
      for (int s = 0; s <= last; ++s) trail.push_back({f.x.to_pixel(at(s, i)[0]), f.y.to_pixel(at(s, i)[1])});
      if (trail.size() >= 2) canvas.stroke_polyline(trail, path_color, 1.f, 0.35f);
      draw_point(canvas, f, at(last, i)[0], at(last, i)[1], options.point_radius, path_color, 0.9f);
    }
    char time[32];
    std::snprintf(time, sizeof time, "t = %.2f", double(k) / (state_count - 1));
    draw_axes(canvas, f, options.title.empty() ? time : cat(options.title, "  ", time), "", "");
    draw_legend_row(canvas, (f.left + f.right) / 2.f, 50.f,
                    {{data_color, cat(options.label_data, " (n=", n_data, ")"), false},
                     {path_color, cat(options.label_paths, " (n=", path_count, ")"), false}});
    animation.frames.push_back(frame_of(canvas, j + 1 == frames ? options.last_frame_delay_cs : options.frame_delay_cs));
  }
  write_gif(path, animation);
}

void write_image_path_animation_gif(const std::string& path, const float* images, int rows, int frames, int count,
                                    int channels, int height, int width, const std::vector<double>& times,
                                    const ImagePathAnimationOptions& options) {
  if (!images || rows < 1 || frames < 1 || count < 1 || (channels != 1 && channels != 3) || height < 1 || width < 1)
    throw ValueError(cat("write_image_path_animation_gif: ", path, ": ", rows, " rows of ", frames, " frames of ",
                         count, " images of ", channels, "x", height, "x", width,
                         ", expected at least one of each with 1 or 3 channels (and a non-null pointer)"));
  if (times.size() != std::size_t(frames) || options.row_labels.size() > std::size_t(rows))
    throw ValueError(cat("write_image_path_animation_gif: ", path, ": ", times.size(), " times and ",
                         options.row_labels.size(), " row labels for ", frames, " frames of ", rows,
                         " rows, expected one time per frame and at most one label per row"));
  if (!(options.lo < options.hi) || !std::isfinite(options.lo) || !std::isfinite(options.hi) || options.scale < 1 ||
      options.scale > 16)
    throw ValueError(cat("write_image_path_animation_gif: ", path, ": range [", options.lo, ", ", options.hi,
                         "] and scale ", options.scale, ", expected finite lo < hi and a scale of 1..16"));

  // Layout: the title band on top, the row labels on the left, tiles with a 2-pixel grey border.
  const int border = 2, title_band = 36;
  float label_width = 0;
  for (const std::string& label : options.row_labels) label_width = std::max(label_width, text_width(label, kLabelScale));
  const int left = label_width > 0 ? int(std::ceil(label_width)) + 20 : 0;
  const int tile_width = width * options.scale + border, tile_height = height * options.scale + border;
  const std::int64_t canvas_width = std::max<std::int64_t>(left + std::int64_t(count) * tile_width + border, 320);
  const std::int64_t canvas_height = title_band + std::int64_t(rows) * tile_height + border + 8;
  if (canvas_width > 16384 || canvas_height > 16384)
    throw ValueError(cat("write_image_path_animation_gif: ", path, ": frames would be ", canvas_width, "x",
                         canvas_height, " pixels, expected at most 16384 a side (fewer images or a smaller scale)"));

  const std::size_t image_size = std::size_t(channels) * std::size_t(height) * std::size_t(width);
  GifAnimation animation;
  animation.width = int(canvas_width), animation.height = int(canvas_height);
  for (int j = 0; j < frames; ++j) {
    Canvas canvas(animation.width, animation.height, kWhite);
    char time[32];
    std::snprintf(time, sizeof time, "t = %.2f", times[std::size_t(j)]);
    draw_label(canvas, canvas_width / 2.f, 12 + kCapHeight * kTitleScale / 2,
               options.title.empty() ? time : cat(options.title, "  ", time), kText, kTitleScale, Align::Center);
    for (int r = 0; r < rows; ++r) {
      const int top = title_band + r * tile_height;
      canvas.fill_rect({float(left), float(top), float(left + count * tile_width + border), float(top + tile_height + border)},
                       kGridBorder, 1.f);
      if (std::size_t(r) < options.row_labels.size())
        draw_label(canvas, float(left - 10), top + tile_height / 2.f, options.row_labels[std::size_t(r)], kText,
                   kLabelScale, Align::Right);
      for (int i = 0; i < count; ++i) {
        const float* image = images + ((std::size_t(r) * frames + std::size_t(j)) * count + std::size_t(i)) * image_size;
        draw_image_tile(canvas, left + border + i * tile_width, top + border, image, channels, height, width,
                        options.lo, options.hi, options.scale);
      }
    }
    GifFrame frame = frame_of(canvas, j + 1 == frames ? options.last_frame_delay_cs : options.frame_delay_cs);
    // 256 greys, the text's blends (grey too) and red are one colour too many for an exact shared
    // palette (255 entries with the transparent one); 128 greys and red always fit.
    if (channels == 1)
      for (std::size_t p = 0; p < frame.rgb.size(); p += 3)
        if (frame.rgb[p] == frame.rgb[p + 1] && frame.rgb[p] == frame.rgb[p + 2])
          for (int c = 0; c < 3; ++c) frame.rgb[p + std::size_t(c)] &= 0xFE;
    animation.frames.push_back(std::move(frame));
  }
  write_gif(path, animation);
}

}  // namespace fm::io
