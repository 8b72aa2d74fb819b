// Packing of variable-length batches: order, active rows, offsets, the caller's
// row of every packed row, and the batch parts the recurrent driver runs in.

#include "check.h"
#include "helpers.h"

using namespace testing;
using rnnkit::Packing;

TEST(sorted_by_decreasing_length_stably) {
  const std::int64_t lengths[] = {3, 1, 3, 2};
  Packing pk(3, 4, lengths);
  CHECK((pk.order == std::vector<Index>{0, 2, 3, 1}));
  CHECK((pk.batch == std::vector<Index>{4, 3, 2}));
  CHECK((pk.offset == std::vector<Index>{0, 4, 7, 9}));
  CHECK(pk.rows() == 9);
  CHECK(!pk.trivial);
}

TEST(no_lengths_is_the_plain_layout) {
  Packing pk(5, 2, nullptr);
  CHECK(pk.trivial);
  CHECK(pk.rows() == 10);
  for (Index t = 0; t < 5; ++t) CHECK(pk.batch[t] == 2 && pk.offset[t] == 2 * t);
  const std::int64_t full[] = {5, 5};
  CHECK(Packing(5, 2, full).trivial);
}

TEST(gather_and_user_rows_agree_and_padding_is_zeroed) {
  const std::int64_t lengths[] = {2, 3, 1};
  for (bool batch_first : {false, true}) {
    Packing pk(3, 3, lengths);
    const Index w = 2;
    std::vector<double> user(3 * 3 * w);
    for (size_t k = 0; k < user.size(); ++k) user[k] = double(k + 1);
    std::vector<double> packed(pk.rows() * w);
    pk.gather(user.data(), batch_first, w, packed.data());
    const std::vector<Index> rows = pk.user_rows(batch_first);
    for (Index t = 0; t < 3; ++t)
      for (Index j = 0; j < pk.batch[t]; ++j) {
        const Index r = pk.offset[t] + j, at = pk.user_row(t, pk.order[j], batch_first);
        CHECK(rows[r] == at);
        for (Index k = 0; k < w; ++k) CHECK(packed[r * w + k] == user[at * w + k]);
      }
    std::vector<double> padded = user;
    pk.zero_padding(padded.data(), batch_first, w);
    for (Index t = 0; t < 3; ++t)
      for (Index b = 0; b < 3; ++b)
        for (Index k = 0; k < w; ++k) {
          const Index at = pk.user_row(t, b, batch_first) * w + k;
          CHECK(padded[at] == (t < lengths[b] ? user[at] : 0.0));
        }
  }
}

// The batch parts of sequence.h: every packed row in exactly one part, each
// part a sorted batch of its own; uneven parts in boustrophedon order.
TEST(batch_parts_partition_the_packed_rows) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> len(1, 30);
  for (bool even : {false, true})
    for (Index parts : {2, 3}) {
      const Index T = 30, B = 48;
      std::vector<std::int64_t> lengths(B, T);
      if (!even)
        for (auto& l : lengths) l = len(rng);
      Packing pk(T, B, lengths.data());
      std::vector<int> seen(std::size_t(pk.rows()), 0);
      for (Index k = 0; k < parts; ++k) {
        const rnnkit::detail::PartRows part(pk, k, parts);
        CHECK(part.even == even);
        CHECK(part.pack.trivial || !even);
        for (Index i = 0; i < part.pack.B; ++i) {  // boustrophedon (uneven) or every parts-th row
          const Index q = i, want = q * parts + (even || q % 2 == 0 ? k : parts - 1 - k);
          CHECK(part.state[std::size_t(i)] == want);
        }
        for (Index t = 0; t < T; ++t)
          for (Index i = 0; i < part.pack.batch[t]; ++i) {
            const Index r = part.rows[std::size_t(part.pack.offset[t] + i)];
            CHECK(r == pk.offset[t] + part.state[std::size_t(i)] && part.state[std::size_t(i)] < pk.batch[t]);
            ++seen[std::size_t(r)];
          }
      }
      for (int n : seen) CHECK(n == 1);
    }
}

TEST(bad_lengths_throw) {
  const std::int64_t zero[] = {2, 0}, big[] = {2, 4};
  CHECK_THROWS(Packing(3, 2, zero));
  CHECK_THROWS(Packing(3, 2, big));
  CHECK_THROWS(Packing(0, 2, nullptr));
}

int main() { return check::run_all(); }
