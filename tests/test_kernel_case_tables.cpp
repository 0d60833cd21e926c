// tests/test_kernel_case_tables.cpp — the case tables of cases/ as a whole (what `fmbench --list`
// prints): every op has test cases, implementations and stated tolerances; the ops the kernel lab
// times have cases for both of its runs; the listing names every op.
#include <catch2/catch.hpp>

#include <cstdio>
#include <set>
#include <string>

#include "cases/case_table.h"

namespace fc = fm::cases;

TEST_CASE("every op's case table has test cases, implementations and tolerances", "[cases]") {
  const auto listings = fc::all_op_listings();
  std::set<std::string> names;
  for (const fc::OpListing& op : listings) {
    INFO(op.op);
    CHECK(names.insert(op.op).second);  // one table per op
    CHECK(!op.implementations.empty());
    CHECK(!op.tolerances.empty());
    unsigned uses = 0;
    for (const fc::ListedCase& c : op.cases) {
      CHECK(c.uses != 0);
      CHECK(!c.shape.empty());
      uses |= c.uses;
    }
    CHECK((uses & fc::kTest) != 0);
    CHECK((uses & fc::kGradcheck) != 0);
  }
  // The ops the lab has a subcommand for, each with shapes for its default and its small run.
  for (const char* timed : {"silu", "group_norm", "group_norm_silu", "conv2d", "conv_transpose2d", "attention"}) {
    INFO(timed);
    REQUIRE(names.count(timed) == 1);
    for (const fc::OpListing& op : listings)
      if (op.op == timed) {
        unsigned uses = 0;
        for (const fc::ListedCase& c : op.cases) uses |= c.uses;
        CHECK((uses & fc::kBench) != 0);
        CHECK((uses & fc::kBenchSmall) != 0);
      }
  }
  CHECK(names.count("embedding") == 1);
}

TEST_CASE("print_listing names every op, or just the one asked for", "[cases]") {
  const auto listings = fc::all_op_listings();
  auto printed = [&](const std::string& only) {
    std::FILE* file = std::tmpfile();
    REQUIRE(file != nullptr);
    fc::print_listing(file, listings, only);
    std::string text(std::size_t(std::ftell(file)), '\0');
    std::rewind(file);
    const std::size_t read = std::fread(text.data(), 1, text.size(), file);
    std::fclose(file);
    text.resize(read);
    return text;
  };
  const std::string all = printed("");
  for (const fc::OpListing& op : listings) CHECK(all.find("== " + op.op + ":") != std::string::npos);
  const std::string one = printed("conv2d");
  CHECK(one.find("== conv2d:") != std::string::npos);
  CHECK(one.find("== silu:") == std::string::npos);
  CHECK(one.find("implementations:") != std::string::npos);
}
