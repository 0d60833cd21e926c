// tests/test_core_tensor.cpp — Tensor basics: storage, strides, views that share storage,
// contiguous copies, broadcasting, the seeded generator, and error messages for misuse.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>

#include "core/autograd.h"
#include "core/host_allocator.h"
#include "core/ops.h"
#include "core/random.h"
#include "test_util.h"

using namespace fm;

TEST_CASE("contiguous strides and element layout", "[tensor]") {
  Tensor t = Tensor::arange(24, DType::Float64).view({2, 3, 4});
  REQUIRE(t.strides() == Shape{12, 4, 1});
  REQUIRE(t.is_contiguous());
  REQUIRE(t.numel() == 24);
  REQUIRE(t.describe() == "float64 cpu [2, 3, 4]");
}

TEST_CASE("views share storage and contiguous() copies", "[tensor]") {
  Tensor t = Tensor::arange(6, DType::Float64).view({2, 3});
  Tensor tt = t.transpose(0, 1);
  REQUIRE(tt.shape() == Shape{3, 2});
  REQUIRE(tt.strides() == Shape{1, 3});
  REQUIRE_FALSE(tt.is_contiguous());
  REQUIRE(tt.storage() == t.storage());
  REQUIRE(tt.to_vector() == std::vector<double>{0, 3, 1, 4, 2, 5});
  Tensor c = tt.contiguous();
  REQUIRE(c.storage() != t.storage());
  REQUIRE(c.to_vector() == std::vector<double>{0, 3, 1, 4, 2, 5});

  Tensor row = t.narrow(0, 1, 1);
  REQUIRE(row.offset() == 3);
  REQUIRE(row.to_vector() == std::vector<double>{3, 4, 5});
  row.fill_(7);  // writes through to t
  REQUIRE(t.to_vector() == std::vector<double>{0, 1, 2, 7, 7, 7});

  Tensor col = t.narrow(1, 2, 1);
  REQUIRE(col.to_vector() == std::vector<double>{2, 7});
  Tensor e = Tensor::from_vector({1, 2, 3}, {3}, DType::Float64).expand({2, 3});
  REQUIRE(e.strides() == Shape{0, 1});
  REQUIRE(e.to_vector() == std::vector<double>{1, 2, 3, 1, 2, 3});
  REQUIRE(e.permute({1, 0}).reshape({6}).to_vector() == std::vector<double>{1, 1, 2, 2, 3, 3});
}

TEST_CASE("view of a non-contiguous tensor is refused and reshape copies", "[tensor]") {
  Tensor t = Tensor::zeros({2, 3}).transpose(0, 1);
  REQUIRE_THROWS_WITH(t.view({6}), Catch::Contains("not contiguous"));
  REQUIRE(t.reshape({6}).shape() == Shape{6});
  REQUIRE_THROWS_WITH(Tensor::zeros({2, 3}).view({4, 2}), Catch::Contains("cannot view"));
  REQUIRE(Tensor::zeros({2, 3}).view({-1}).shape() == Shape{6});
}

TEST_CASE("broadcasting follows NumPy rules", "[tensor]") {
  Tensor a = Tensor::from_vector({1, 2, 3}, {3, 1}, DType::Float64);
  Tensor b = Tensor::from_vector({10, 20}, {2}, DType::Float64);
  Tensor c = a + b;
  REQUIRE(c.shape() == Shape{3, 2});
  REQUIRE(c.to_vector() == std::vector<double>{11, 21, 12, 22, 13, 23});
  REQUIRE_THROWS_WITH(Tensor::zeros({3}) + Tensor::zeros({4}),
                      Catch::Contains("add: shapes [3] and [4] do not broadcast"));
}

TEST_CASE("ops on non-contiguous inputs match ops on their contiguous copies", "[tensor]") {
  Generator gen(5);
  Tensor x = randn({4, 5, 6}, gen, DType::Float64);
  Tensor v = x.permute({2, 0, 1}).narrow(1, 1, 2);
  REQUIRE(exp(v).to_vector() == exp(v.contiguous()).to_vector());
  Tensor w = randn({6, 2, 5}, gen, DType::Float64);
  REQUIRE((v * w).to_vector() == (v.contiguous() * w).to_vector());
  REQUIRE(sum(v, {0, 2}).to_vector() == sum(v.contiguous(), {0, 2}).to_vector());
}

// The CPU's strided loops merge dimensions that walk as one and step rows like an odometer, one
// chunk of rows per thread (kernels/cpu/elementwise_loops.h). Checked element by element against
// index arithmetic written out here, on sizes large enough to be split across threads (over 2^17
// elements): the attention's head split (rows of 8 contiguous floats), a transpose, a narrowed
// view whose dims cannot merge, and a [N, C, 1, 1] broadcast add.
TEST_CASE("strided copies and broadcasts match index-by-index loops at threaded sizes", "[tensor]") {
  Generator gen(11);
  const std::int64_t B = 16, L = 196, H = 4, D = 8;
  Tensor qkv = randn({B, L, 3, H, D}, gen);
  const std::vector<double> q = qkv.to_vector();
  const std::vector<double> heads = qkv.permute({2, 0, 3, 1, 4}).contiguous().to_vector();
  std::size_t mismatches = 0, i = 0;
  for (std::int64_t part = 0; part < 3; ++part)
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t h = 0; h < H; ++h)
        for (std::int64_t l = 0; l < L; ++l)
          for (std::int64_t d = 0; d < D; ++d, ++i)
            mismatches += heads[i] != q[std::size_t((((b * L + l) * 3 + part) * H + h) * D + d)];
  REQUIRE(i == heads.size());
  REQUIRE(mismatches == 0);

  const std::int64_t C = 96;  // [B, C, L] -> [B, L, C]
  Tensor x = randn({B, C, L}, gen);
  const std::vector<double> xv = x.to_vector();
  const std::vector<double> xt = x.transpose(1, 2).contiguous().to_vector();
  mismatches = 0;
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t l = 0; l < L; ++l)
      for (std::int64_t c = 0; c < C; ++c)
        mismatches += xt[std::size_t((b * L + l) * C + c)] != xv[std::size_t((b * C + c) * L + l)];
  REQUIRE(mismatches == 0);

  // Columns 3 .. L − 2 of every row: the row stride no longer equals the row length, so no merge.
  const std::vector<double> cut = x.narrow(2, 3, L - 5).contiguous().to_vector();
  mismatches = 0;
  i = 0;
  for (std::int64_t row = 0; row < B * C; ++row)
    for (std::int64_t l = 3; l < L - 2; ++l, ++i) mismatches += cut[i] != xv[std::size_t(row * L + l)];
  REQUIRE(i == cut.size());
  REQUIRE(mismatches == 0);

  Tensor image = randn({B, C, 14, 14}, gen), bias = randn({B, C, 1, 1}, gen);
  const std::vector<double> iv = image.to_vector(), bv = bias.to_vector();
  const std::vector<double> sum_v = (image + bias).to_vector();
  mismatches = 0;
  for (std::size_t e = 0; e < iv.size(); ++e)
    mismatches += sum_v[e] != double(float(iv[e]) + float(bv[e / (14 * 14)]));
  REQUIRE(mismatches == 0);
}

TEST_CASE("dtype and device mismatches are refused with the op's name", "[tensor]") {
  Tensor a = Tensor::zeros({2}, DType::Float32), b = Tensor::zeros({2}, DType::Float64);
  REQUIRE_THROWS_WITH(a + b, Catch::Contains("add: inputs of different dtypes"));
  REQUIRE_THROWS_WITH(matmul(Tensor::zeros({2, 3}), Tensor::zeros({4, 2})),
                      Catch::Contains("matmul: inner sizes differ"));
  REQUIRE_THROWS_WITH(Tensor::zeros({2, 2}).item(), Catch::Contains("expected 1"));
}

TEST_CASE("generator: same seed gives the same numbers and the state round-trips", "[random]") {
  Generator g1(42), g2(42), g3(43);
  auto a = randn({100}, g1, DType::Float64).to_vector();
  auto b = randn({100}, g2, DType::Float64).to_vector();
  auto c = randn({100}, g3, DType::Float64).to_vector();
  REQUIRE(a == b);
  REQUIRE(a != c);
  Generator::State saved = g1.state();
  double next = g1.normal();
  g1.set_state(saved);
  REQUIRE(g1.normal() == next);
  // Moments of 10^5 normals: mean within 5 standard errors of 0, variance near 1.
  Generator g(7);
  double s = 0, s2 = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    double z = g.normal();
    s += z;
    s2 += z * z;
  }
  REQUIRE(std::abs(s / n) < 5.0 / std::sqrt(double(n)));
  REQUIRE(std::abs(s2 / n - 1.0) < 0.02);
  for (int i = 0; i < 1000; ++i) REQUIRE(g.below(7) < 7);
}

TEST_CASE("dtype conversion round trip", "[tensor]") {
  Tensor x = Tensor::from_vector({0.5, -1.25, 3.0}, {3}, DType::Float64);
  Tensor f = x.to(DType::Float32);
  REQUIRE(f.dtype() == DType::Float32);
  REQUIRE(f.to(DType::Float64).to_vector() == x.to_vector());
}

TEST_CASE("the host block cache hands a freed block to the next request of its size", "[tensor][allocator]") {
  using namespace fm::host_memory;
  void* first = allocate(1000);
  REQUIRE(reinterpret_cast<std::uintptr_t>(first) % 64 == 0);
  std::memset(first, 0x5a, 1000);  // the whole request is writable
  const std::size_t cached_before = cached_bytes();
  release(first, 1000);
  if (direct()) {
    // FM_CPU_ALLOCATOR=direct or a sanitizer build: nothing is kept.
    CHECK(cached_bytes() == cached_before);
    return;
  }
  CHECK(cached_bytes() == cached_before + 1024);  // 1000 rounded up to whole cache lines
  void* same_class = allocate(1020);              // same 64-byte class as 1000
  CHECK(same_class == first);
  CHECK(cached_bytes() == cached_before);
  void* other_class = allocate(1100);
  CHECK(other_class != first);
  release(same_class, 1020);
  release(other_class, 1100);
  // Tensors go through it: a freed tensor's storage is reused by the next one of its size.
  void* storage = nullptr;
  { storage = Tensor::empty({250}, DType::Float32).raw_data(); }
  CHECK(Tensor::empty({250}, DType::Float32).raw_data() == storage);
}
