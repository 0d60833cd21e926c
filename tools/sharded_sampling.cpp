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
  FM_CHECK(chunk >= 1, ValueError, "rank_share: chunks of ", chunk, " items; expected chunk >= 1");
  if (!whole_chunks) {
    const dist::Share items = dist::even_share(n, rank, ranks);
    return {items.first, items.end};
  }
  const dist::Share chunks = dist::even_share((n + chunk - 1) / chunk, rank, ranks);
  return {std::min(n, chunk * chunks.first), std::min(n, chunk * chunks.end)};
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
