// Packing of variable-length batches: order, active rows, offsets, and the
// gather/scatter pair between the caller's layout and the packed one.

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

TEST(gather_then_scatter_round_trips_and_zeroes_padding) {
  const std::int64_t lengths[] = {2, 3, 1};
  for (bool batch_first : {false, true}) {
    Packing pk(3, 3, lengths);
    const Index w = 2;
    std::vector<double> user(3 * 3 * w);
    for (size_t k = 0; k < user.size(); ++k) user[k] = double(k + 1);
    std::vector<double> packed(pk.rows() * w), back(user.size(), -1.0);
    pk.gather(user.data(), batch_first, w, packed.data());
    pk.scatter(packed.data(), batch_first, w, back.data());
    for (Index t = 0; t < 3; ++t)
      for (Index b = 0; b < 3; ++b)
        for (Index k = 0; k < w; ++k) {
          const Index at = pk.user_row(t, b, batch_first) * w + k;
          CHECK(back[at] == (t < lengths[b] ? user[at] : 0.0));
        }
  }
}

TEST(bad_lengths_throw) {
  const std::int64_t zero[] = {2, 0}, big[] = {2, 4};
  CHECK_THROWS(Packing(3, 2, zero));
  CHECK_THROWS(Packing(3, 2, big));
  CHECK_THROWS(Packing(0, 2, nullptr));
}

int main() { return check::run_all(); }
