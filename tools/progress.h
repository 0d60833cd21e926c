// tools/progress.h — a progress line on stderr: step, loss, rate, ETA.
//
// On a terminal the line redraws in place (carriage return); when stderr is a file or pipe it
// prints a fresh line at most every few seconds so logs stay readable.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace fm::tools {

std::string format_duration(double seconds);  // "1h02m", "3m05s", "12s"

class ProgressLine {
 public:
  // quiet: track the rate but print nothing.
  ProgressLine(std::int64_t total_steps, std::int64_t start_step, const std::string& unit = "steps",
               bool quiet = false);
  // Called after each step; redraws when due. `extra` is appended (e.g. "loss 0.1234").
  void update(std::int64_t step, const std::string& extra);
  // Ends the line (newline on a terminal) and prints a closing message.
  void finish(const std::string& message);
  double elapsed_seconds() const;
  double steps_per_second() const;

 private:
  std::int64_t total_, start_, last_step_ = 0;
  std::string unit_;
  bool tty_, quiet_;
  std::chrono::steady_clock::time_point begin_, last_draw_;
};

}  // namespace fm::tools
