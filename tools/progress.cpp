// tools/progress.cpp — the stderr progress line (see progress.h).
#include "tools/progress.h"

#include <unistd.h>

#include <cstdio>

namespace fm::tools {

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e8) return "?";
  long s = long(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s / 60) % 60);
  else if (s >= 60)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%lds", s);
  return buf;
}

ProgressLine::ProgressLine(std::int64_t total_steps, std::int64_t start_step, const std::string& unit, bool quiet)
    : total_(total_steps), start_(start_step), last_step_(start_step), unit_(unit), tty_(isatty(2)), quiet_(quiet),
      begin_(std::chrono::steady_clock::now()), last_draw_(begin_) {}

double ProgressLine::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - begin_).count();
}

double ProgressLine::steps_per_second() const {
  double t = elapsed_seconds();
  return t > 0 ? double(last_step_ - start_) / t : 0.0;
}

void ProgressLine::update(std::int64_t step, const std::string& extra) {
  last_step_ = step;
  if (quiet_) return;
  auto now = std::chrono::steady_clock::now();
  double since_draw = std::chrono::duration<double>(now - last_draw_).count();
  bool last = step >= total_;
  if (!last && since_draw < (tty_ ? 0.2 : 5.0)) return;
  last_draw_ = now;
  double rate = steps_per_second();
  double eta = rate > 0 ? double(total_ - step) / rate : -1;
  int width = 24;
  int filled = total_ > 0 ? int(double(step) / double(total_) * width) : width;
  std::string bar(std::size_t(filled), '#');
  bar.resize(std::size_t(width), '.');
  std::fprintf(stderr, "%s[%s] %lld/%lld %s | %.1f %s/s | ETA %s%s%s", tty_ ? "\r" : "", bar.c_str(),
               (long long)step, (long long)total_, extra.c_str(), rate, unit_.c_str(),
               format_duration(eta).c_str(), tty_ ? "\033[K" : "", tty_ ? "" : "\n");
  std::fflush(stderr);
}

void ProgressLine::finish(const std::string& message) {
  if (quiet_) return;
  if (tty_) std::fprintf(stderr, "\n");
  if (!message.empty()) std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
}

}  // namespace fm::tools
