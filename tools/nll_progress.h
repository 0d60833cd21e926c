// tools/nll_progress.h — the progress of a long `fmeval nll`, kept beside its CSV, so a run that stops
// (a crash, a killed job, a machine taken back) goes on where it was when started again.
//
// A likelihood on the whole Fashion-MNIST test set takes well over an hour on a CPU. With --csv FILE,
// fmeval nll keeps FILE.partial.json: the settings the values depend on, and every example finished so
// far (written atomically after each batch). Started again with the same settings, it takes those
// examples from the file and evaluates only the rest; the numbers it prints and writes are the ones an
// uninterrupted run gives, to the bit, because each example's value depends only on the settings and
// its index (flow/likelihood.h: the probes and the dequantisation noise are keyed by the index, and
// dopri5's batches, whose step sizes depend on the whole batch, are the same batches). The file is
// removed once the CSV is written.
//
// Under mpirun rank 0 alone reads and writes the file (nll_eval.cpp hands its contents to the others).
//
// Layer: tools/ (reads and writes a JSON file; nll_eval.cpp drives it).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tools/config.h"

namespace fm::tools {

struct NllProgress {
  Json settings;               // what every value depends on (evaluate_nll fills it)
  std::vector<double> values;  // per example, in index order; NaN where not finished
  std::int64_t nfe = 0;        // the most NFE any finished batch needed
  double seconds = 0;          // evaluation time spent so far, over all runs
  std::int64_t finished() const;
  bool finished(std::int64_t begin, std::int64_t end) const;  // every example of [begin, end)
};

// Where the progress of a run writing `csv` is kept: csv + ".partial.json".
std::string nll_progress_path(const std::string& csv);

// Reads `path` into `progress` (whose settings and size, values.size(), are this run's) if the file
// exists, and returns whether it did. ConfigError when the file was made with other settings (naming
// the first that differs, or one only the file has, and the file to delete to start over);
// FormatError when it is not a progress file or its values do not fit (an index out of range, a value
// that is not a finite number).
bool load_nll_progress(const std::string& path, NllProgress& progress);
// The same for a file's text (`path` names it in messages): what load_nll_progress does once the file
// is read, and what fuzz/fuzz_nll_progress.cpp feeds outside bytes to.
void decode_nll_progress(const std::string& text, const std::string& path, NllProgress& progress);

// Writes every finished example of `progress` to `path`, atomically (the old file or the new one,
// never half of one).
void save_nll_progress(const std::string& path, const NllProgress& progress);

}  // namespace fm::tools
