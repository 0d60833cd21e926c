// cases/all_ops.cpp — every op's case table, in the kernel lab's order (what `fmbench --list` shows).
#include "cases/attention.h"
#include "cases/bias_silu.h"
#include "cases/case_table.h"
#include "cases/conv2d.h"
#include "cases/conv_transpose2d.h"
#include "cases/embedding.h"
#include "cases/group_norm.h"
#include "cases/silu.h"

namespace fm::cases {

std::vector<OpListing> all_op_listings() {
  std::vector<OpListing> listings;
  // Each op's cases/<op>.cpp adds its listing here, in the lab's order.
  listings.push_back(silu_listing());
  listings.push_back(bias_silu_listing());  // not in the lab: tests only
  listings.push_back(group_norm_listing());
  listings.push_back(group_norm_silu_listing());
  listings.push_back(conv2d_listing());
  listings.push_back(conv_transpose2d_listing());
  listings.push_back(attention_listing());
  listings.push_back(embedding_listing());  // not in the lab: tests only
  return listings;
}

}  // namespace fm::cases
