// core/io/path_animation.cpp — the frames of core/io/path_animation.h, drawn and handed to the GIF
// encoder.
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
    const std::uint8_t* pixels = canvas.pixels();
    GifFrame frame;
    frame.rgb.assign(pixels, pixels + std::size_t(options.width) * std::size_t(options.height) * 3);
    frame.delay_cs = j + 1 == frames ? options.last_frame_delay_cs : options.frame_delay_cs;
    animation.frames.push_back(std::move(frame));
  }
  write_gif(path, animation);
}

}  // namespace fm::io
