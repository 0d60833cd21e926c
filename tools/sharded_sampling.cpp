// tools/sharded_sampling.cpp — work split over ranks (see sharded_sampling.h).
#include "tools/sharded_sampling.h"

#include <algorithm>

#include "core/distributed.h"
#include "core/error.h"

namespace fm::tools {

namespace {
bool sharding_on = false;  // set by ShardOverRanks (the tools are single-threaded at this level)
}  // namespace

ShardOverRanks::ShardOverRanks() : was_on_(sharding_on) { sharding_on = true; }
ShardOverRanks::~ShardOverRanks() { sharding_on = was_on_; }

bool sharding_over_ranks() { return sharding_on && dist::active(); }

ItemRange rank_share(std::int64_t n, std::int64_t chunk, bool whole_chunks, int rank, int ranks) {
  FM_CHECK(ranks >= 1 && rank >= 0 && rank < ranks && chunk >= 1 && n >= 0, ValueError, "rank_share: rank ", rank,
           " of ", ranks, ", ", n, " items in chunks of ", chunk, ", expected 0 <= rank < ranks and chunk >= 1");
  if (!whole_chunks) return {n * rank / ranks, n * (rank + 1) / ranks};
  const std::int64_t chunks = (n + chunk - 1) / chunk;
  return {std::min(n, chunk * (chunks * rank / ranks)), std::min(n, chunk * (chunks * (rank + 1) / ranks))};
}

ItemRange my_share(std::int64_t n, std::int64_t chunk, bool whole_chunks) {
  if (!sharding_over_ranks()) return {0, n};
  return rank_share(n, chunk, whole_chunks, dist::rank(), dist::world_size());
}

std::vector<float> gather_over_ranks(const std::vector<float>& part) {
  return sharding_over_ranks() ? dist::allgather(part) : part;
}

std::vector<double> gather_over_ranks(const std::vector<double>& part) {
  return sharding_over_ranks() ? dist::allgather(part) : part;
}

double sum_over_ranks(double value) {
  if (sharding_over_ranks()) dist::allreduce_sum(&value, 1);
  return value;
}

double max_over_ranks(double value) {
  if (!sharding_over_ranks()) return value;
  const std::vector<double> all = dist::allgather(std::vector<double>{value});
  return *std::max_element(all.begin(), all.end());
}

}  // namespace fm::tools
