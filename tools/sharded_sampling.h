// tools/sharded_sampling.h — sampling and per-example evaluation split over the ranks of an mpirun
// job (core/distributed.h), with the same results as one process.
//
// The tools work in chunks along a fixed grid (sample_in_chunks: 512 samples a chunk; `fmeval nll`:
// --batch examples). Sharded, rank r of N takes a contiguous share of the n items and works the
// pieces of the grid's chunks inside it; every rank then receives the whole result in order
// (allgather), so the code after the sampling (metrics, files on rank 0) runs as it would on one
// process. Bitwise the same as one process because
//   - the source noise is still drawn chunk by chunk from the one Generator stream: a rank draws the
//     chunks before its share (and after it) and throws them away, so its samples start from the
//     draws a single process gives them (a Generator cannot jump ahead by a count of normals; the
//     draws cost little next to the integration);
//   - a fixed-step solver integrates each sample on its own (every op is row by row), so a chunk cut
//     in two at a rank boundary gives the same rows; dopri5 picks its steps from the whole chunk's
//     error, so under dopri5 the shares are whole chunks (rank r: chunks [C·r/N, C·(r+1)/N)).
//
// Sharding is switched on for a scope (ShardOverRanks) by fmsample and fmeval when started under
// mpirun; without it (fmtrain's pictures, which only rank 0 draws; the tests) nothing changes.
//
// Layer: tools/ (on core/distributed.h).
#pragma once
#include <cstdint>
#include <vector>

namespace fm::tools {

// While one is alive on this process, sample_in_chunks and evaluate_nll split their work over the
// ranks of the job (a no-op on one rank). Every rank must then make the same calls in the same order.
class ShardOverRanks {
 public:
  ShardOverRanks();
  ~ShardOverRanks();
  ShardOverRanks(const ShardOverRanks&) = delete;
  ShardOverRanks& operator=(const ShardOverRanks&) = delete;

 private:
  bool was_on_;
};
// True inside a ShardOverRanks scope of a job with more than one rank.
bool sharding_over_ranks();

// The items [begin, end) of this rank's share of n items worked in chunks of `chunk`: n·r/N … n·(r+1)/N,
// or with whole_chunks the chunks C·r/N … C·(r+1)/N (C = ⌈n / chunk⌉). Without sharding: [0, n).
struct ItemRange {
  std::int64_t begin = 0, end = 0;
  std::int64_t count() const { return end - begin; }
};
ItemRange rank_share(std::int64_t n, std::int64_t chunk, bool whole_chunks, int rank, int ranks);
ItemRange my_share(std::int64_t n, std::int64_t chunk, bool whole_chunks);  // this rank's (all when not sharding)

// Every rank's part in rank order, whole on every rank (the concatenation of contiguous shares).
// Without sharding: the part itself.
std::vector<float> gather_over_ranks(const std::vector<float>& part);
std::vector<double> gather_over_ranks(const std::vector<double>& part);
double sum_over_ranks(double value);
double max_over_ranks(double value);

}  // namespace fm::tools
