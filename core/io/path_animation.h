// core/io/path_animation.h — animated GIFs of a flow's paths, the picture a still image cannot give:
// 2-D points travelling along their trajectories (curved paths that bend and cross against straight
// ones travelled at constant speed), and images changing from noise into samples beside the endpoint
// each state predicts (which stands still along a straight path and drifts along a curved one).
//
// Part of core/io/ (float buffers in, a GIF file out; no Tensor). Frames are drawn with the plot kit
// of core/io/plot_canvas.h (the scatter plot's layout, axes fixed over the whole animation) and
// encoded by core/io/gif.h.
#pragma once
#include <string>
#include <vector>

namespace fm::io {

struct PathAnimationOptions {
  std::string title;                           // each frame appends "  t = 0.40"
  std::string label_paths = "paths (x0 to x1)";
  std::string label_data = "data";
  int width = 520, height = 520;               // pixels per frame
  int max_frames = 41;                         // states shown, evenly spaced (the first and last always)
  int frame_delay_cs = 8;                      // hundredths of a second per frame...
  int last_frame_delay_cs = 200;               // ...and on the last, before the loop starts again
  float point_radius = 2.4f;                   // the moving points, pixels
};

// `states` holds state_count states of path_count points, interleaved (x, y): state k of path i is
// states[2 * (k * path_count + i)], at time t = k / (state_count − 1) (a uniform solver grid, x0 at
// t = 0). Frame j shows, over the `data` points (n_data of them, drawn faint underneath), each path's
// trail from its start to its state at that frame and a dot where it is. A path is drawn up to its
// first non-finite state. fm::ValueError for fewer than 2 states, no paths, null pointers, bad sizes
// or max_frames < 2; writing as write_gif.
void write_path_animation_gif(const std::string& path, const float* states, int state_count, int path_count,
                              const float* data, int n_data, const PathAnimationOptions& options = {});

struct ImagePathAnimationOptions {
  std::string title;                                   // each frame appends "  t = 0.40"
  std::vector<std::string> row_labels;                 // one per row of tiles (drawn left of it); may be empty
  float lo = -1.f, hi = 1.f;                           // the pixel range mapped onto black..white
  int scale = 3;                                       // each pixel as a scale x scale block (1..16)
  int frame_delay_cs = 10;                             // hundredths of a second per frame...
  int last_frame_delay_cs = 200;                       // ...and on the last, before the loop starts again
};

// `images` holds [rows, frames, count, channels, height, width] floats: frame j of the animation shows,
// row by row, the count images images[r][j][0..count), at time times[j] (frames entries). One-channel
// frames are stored with 7 bits of grey (values rounded down to even bytes), so that they, the text and
// the red of a non-finite pixel fit one exact palette; three-channel frames go through median cut.
// fm::ValueError for bad counts or sizes (channels 1 or 3, at least one frame, row and image), a null
// pointer, times of the wrong length, more row labels than rows, !(lo < hi) or a scale outside 1..16;
// writing as write_gif.
void write_image_path_animation_gif(const std::string& path, const float* images, int rows, int frames, int count,
                                    int channels, int height, int width, const std::vector<double>& times,
                                    const ImagePathAnimationOptions& options = {});

}  // namespace fm::io
