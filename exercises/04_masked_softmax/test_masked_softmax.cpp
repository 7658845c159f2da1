// Chapter 04's suite. visible_end's arithmetic on the CPU (bottom-right causal alignment,
// key lengths, rows that see nothing); the fused kernel on the GPU for every combination
// of masks, fully masked rows, n_q above and below n_k, key lengths 0, 1 and n_k, rows of
// 1 to 65536 keys and past what fits on chip, misaligned rows, NaN in every score it must
// not read; chapter 02's unmasked cases; and the unfused pipeline (given) on the same.
//
// Every check: fresh random scores followed by NaN, outputs poisoned with NaN before the
// launch (past their end too, where they must stay poison), the float64 reference
// (course::reference::masked_softmax), masked outputs exactly 0.
//
// Run: ctest --preset exercises -L 04   (or build/exercises/bin/test_ch04)
#include "masked_softmax.hpp"

#include "course/softmax_testing.hpp"
#include "course/testing.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

using ch04::ScoreShape;

namespace {

// One problem: scores and masks on the host.
struct MaskedCase {
  std::string name;
  ScoreShape shape;
  float scale = 0.125f;  // 1/sqrt(64)
  bool causal = false;
  std::vector<int> key_lengths;   // [batch], or empty: no padding mask
  std::vector<std::uint8_t> keep;  // [n_q, n_k], or empty: no explicit mask
  std::vector<float> S;            // [batch * heads * n_q, n_k]
  bool nan_where_masked = false;   // NaN in every score a mask drops
};

std::size_t rows_of(const ScoreShape& s) { return std::size_t(s.batch) * s.heads * s.n_q; }

// Is (row, j) kept? Stated key by key, as the definition: the suite's own statement of the
// conventions, independent of the kernels' visible_end.
bool kept(const MaskedCase& c, std::size_t row, int j) {
  const int i = int(row % c.shape.n_q);                               // the row's query
  const int b = int(row / (std::size_t(c.shape.n_q) * c.shape.heads));  // the row's batch
  if (c.causal && j - i > c.shape.n_k - c.shape.n_q) return false;     // bottom-right aligned
  if (!c.key_lengths.empty() && j >= c.key_lengths[b]) return false;
  return c.keep.empty() || c.keep[std::size_t(i) * c.shape.n_k + j] != 0;
}

std::string describe(const MaskedCase& c) {
  std::string masks;
  if (c.causal) masks += " causal";
  if (!c.key_lengths.empty()) masks += " key-lengths";
  if (!c.keep.empty()) masks += " explicit";
  if (masks.empty()) masks = " none";
  return c.name + ", [" + std::to_string(c.shape.batch) + "*" + std::to_string(c.shape.heads) + ", " +
         std::to_string(c.shape.n_q) + ", " + std::to_string(c.shape.n_k) + "], masks:" + masks +
         (c.nan_where_masked ? ", NaN where masked" : "");
}

struct Masks {
  bool causal = false, lengths = false, keep = false;
};

// Random scores with outliers (x20), so softmax is neither flat nor one-hot after the 1/8
// scale; random key lengths in [0, n_k] with 0, 1 and n_k among them; an explicit mask
// keeping ~80% of keys, one query's row dropped entirely.
MaskedCase make_case(course::Rng& rng, std::string name, ScoreShape shape, Masks masks) {
  MaskedCase c;
  c.name = std::move(name);
  c.shape = shape;
  c.causal = masks.causal;
  c.S = rng.logits(rows_of(shape) * shape.n_k, 8.0f);
  if (masks.lengths) {
    for (int b = 0; b < shape.batch; ++b) c.key_lengths.push_back(rng.uniform_int(0, shape.n_k));
    const int named[] = {shape.n_k, 1, 0};
    for (int b = 0; b < std::min(shape.batch, 3); ++b) c.key_lengths[b] = named[b];
  }
  if (masks.keep) {
    c.keep.resize(std::size_t(shape.n_q) * shape.n_k);
    for (auto& k : c.keep) k = rng.uniform_int(0, 4) != 0;
    if (shape.n_q > 1) std::fill_n(c.keep.begin() + std::size_t(shape.n_q / 2) * shape.n_k, shape.n_k, 0);
  }
  return c;
}

// A way to run the chapter's softmax: the fused kernel, or the unfused pipeline.
template <class T>
using Runner = void (*)(const T* S, T* y, ScoreShape shape, float scale, ch04::Mask mask, cudaStream_t stream);

template <class T>
void fused(const T* S, T* y, ScoreShape shape, float scale, ch04::Mask mask, cudaStream_t stream) {
  ch04::masked_softmax(S, y, shape, scale, mask, stream);
}

template <class T>
void unfused(const T* S, T* y, ScoreShape shape, float scale, ch04::Mask mask, cudaStream_t stream) {
  course::DeviceBuffer<float> scaled(rows_of(shape) * shape.n_k), row_max(rows_of(shape));
  ch04::masked_softmax_unfused(S, y, shape, scale, mask, scaled.data(), row_max.data(), stream);
  COURSE_CUDA_CHECK(cudaStreamSynchronize(stream));  // before the workspace is freed
}

// Runs `run` on case c with T storage and checks y: no NaN in a fully masked row, exactly 0
// at every masked key, the float64 reference everywhere within T's probability tolerance.
// misalign: S, y and the explicit mask start that many elements into their allocations.
// S is followed by NaN, y by the poison (kTail elements each), and the misaligned start of y
// is poisoned too: a kernel that reads past the last row meets NaN, one that writes outside
// y leaves the poison changed.
constexpr std::size_t kTail = 1024;
template <class T>
course::CompareReport check_masked(Runner<T> run, const MaskedCase& c, const std::string& kernel,
                                   int misalign = 0) {
  const ScoreShape& s = c.shape;
  const std::size_t rows = rows_of(s), n = rows * s.n_k;
  REQUIRE(c.S.size() == n);
  std::vector<T> S(n + misalign + kTail, course::DType<T>::narrow(std::nanf("")));
  std::transform(c.S.begin(), c.S.end(), S.begin() + misalign, course::DType<T>::narrow);
  if (c.nan_where_masked)
    for (std::size_t r = 0; r < rows; ++r)
      for (int j = 0; j < s.n_k; ++j)
        if (!kept(c, r, j)) S[misalign + r * s.n_k + j] = course::DType<T>::narrow(std::nanf(""));
  const std::vector<double> x = course::widen(std::vector<T>(S.begin() + misalign, S.begin() + misalign + n));
  const std::vector<double> ref = course::reference::masked_softmax(x, s.batch, s.heads, s.n_q, s.n_k, c.scale,
                                                                    c.causal, c.key_lengths, c.keep);
  REQUIRE_MESSAGE(std::none_of(ref.begin(), ref.end(), [](double v) { return std::isnan(v); }),
                  "the reference read a masked score (a bug in the suite, not in your kernel)");

  std::vector<std::uint8_t> keep(c.keep.empty() ? 0 : c.keep.size() + misalign);
  std::copy(c.keep.begin(), c.keep.end(), keep.begin() + (keep.empty() ? 0 : misalign));
  course::DeviceBuffer<T> d_S(S), d_y(misalign + n + kTail);
  course::DeviceBuffer<int> d_lengths(c.key_lengths);  // empty: nullptr, no padding mask
  course::DeviceBuffer<std::uint8_t> d_keep(keep);
  d_y.poison();
  const ch04::Mask mask{c.causal, d_lengths.data(), keep.empty() ? nullptr : d_keep.data() + misalign};
  run(d_S.data() + misalign, d_y.data() + misalign, s, c.scale, mask, nullptr);
  COURSE_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<double> y_all = course::widen(d_y.download());
  const std::vector<double> got(y_all.begin() + misalign, y_all.begin() + misalign + n);

  const std::string what = kernel + " " + course::DType<T>::name + ", " + describe(c) +
                           (misalign ? ", S and y at +" + std::to_string(misalign) : "");
  const course::Shape2D shape2d{rows, std::size_t(s.n_k)};
  const std::size_t before = course::count_written(y_all, 0, misalign);
  const std::size_t after = course::count_written(y_all, misalign + n, y_all.size());
  if (before + after > 0)
    return {false, what + ": wrote outside y (" + std::to_string(before) + " elements before its start and " +
                       std::to_string(after) + " of the " + std::to_string(kTail) +
                       " after its end changed): a store without the check col < n_k"};
  const bool nothing_written = std::all_of(got.begin(), got.end(), course::is_poison);
  for (std::size_t r = 0; r < rows && !nothing_written; ++r) {
    bool sees_something = false;
    for (int j = 0; j < s.n_k && !sees_something; ++j) sees_something = kept(c, r, j);
    const std::string where = "(row " + std::to_string(r) + ", query " + std::to_string(r % s.n_q) + " of batch " +
                              std::to_string(r / (std::size_t(s.n_q) * s.heads)) + ")";
    for (int j = 0; j < s.n_k; ++j) {
      const double g = got[r * s.n_k + j];
      if (g == 0.0 || kept(c, r, j)) continue;
      const std::string at = what + ": col " + std::to_string(j) + " of " + where + " is masked but holds " +
                             (course::is_poison(g) ? std::string("the NaN poison") : std::to_string(g)) + ". ";
      if (course::is_poison(g))
        return {false, at + "Never written: every column < n_k is written, 0 at every masked key and past the "
                            "visible prefix" + (sees_something ? "" : ", and a row that sees no key is all zeros")};
      if (std::isnan(g) && !sees_something)
        return {false, at + "Fully masked row has NaN: decide from m == -inf, not from l (with every logit -inf "
                            "the max is -inf, and x - max is NaN before any sum-is-zero check runs)"};
      if (std::isnan(g))
        return {false, at + "A computed NaN: a masked score was read and used (its max or exp taken) instead of "
                            "being replaced by -inf with a select, or -inf - (-inf) was formed"};
      return {false, at + "Masked position not zero: a masked key's probability is exactly 0 (-inf before the max "
                          "and the sum; 0 written past visible_end)"};
    }
  }
  return course::compare(got, ref, course::DType<T>::prob, shape2d, what,
                         "the max and the sum must cover exactly the kept keys of the row: visible_end "
                         "(bottom-right causal: j <= i + n_k - n_q; the batch's key length, b = row / (heads * "
                         "n_q)), the explicit mask's row i, and scale applied once");
}

template <class T>
void check_all(Runner<T> run, const char* kernel, const std::vector<MaskedCase>& cases) {
  for (const auto& c : cases) {
    const course::CompareReport report = check_masked<T>(run, c, kernel);
    CHECK_MESSAGE(report.ok, report.message);
    if (!report.ok) break;  // the first failure says the most; the rest would repeat it
  }
}

// The fused kernel on `cases` with float32 storage, then with `Half` (__half or __nv_bfloat16).
template <class Half>
void check_fused(const std::vector<MaskedCase>& cases) {
  check_all<float>(fused<float>, "masked_softmax", cases);
  check_all<Half>(fused<Half>, "masked_softmax", cases);
}

const Masks kEveryCombination[] = {{false, false, false}, {true, false, false}, {false, true, false},
                                   {false, false, true},  {true, true, false},  {true, false, true},
                                   {false, true, true},   {true, true, true}};

// Every mask combination on shapes that take every path: a warp or a half-warp per row
// (short rows; an odd number of rows leaves the grid's last half-warp without one), a
// block, a cluster of blocks; n_q = n_k, n_q < n_k and n_q > n_k; rows of whole 16-byte
// vectors and rows that are not.
std::vector<MaskedCase> combination_cases(course::Rng& rng) {
  const ScoreShape shapes[] = {{2, 3, 37, 37},  {3, 2, 50, 136},  {3, 2, 130, 48}, {3, 1, 16, 2048},
                               {3, 1, 6, 5000}, {3, 1, 4, 40000}, {1, 3, 5, 77},   {3, 1, 3, 512}};
  std::vector<MaskedCase> cases;
  for (const ScoreShape& shape : shapes)
    for (const Masks& m : kEveryCombination) cases.push_back(make_case(rng, "mask combination", shape, m));
  return cases;
}

// Row lengths around every boundary of the fused kernel: the 16-byte vector, the warp (its
// 32 threads hold 4 KiB of a row), the 512-thread block (64 KiB), clusters, and one past the
// longest row kept on chip (two reads then); plus 1023/1024/1025 and non-powers of two.
// Each without masks, and causal with key lengths and NaN in every masked score.
std::vector<MaskedCase> length_cases(course::Rng& rng, int value_bytes) {
  const int warp = 4096 / value_bytes, block = 65536 / value_bytes, longest = ch04::fused_max_cols(value_bytes);
  std::vector<int> lengths = {1,     2,         3,         7,         8,         9,         31,    32,
                              33,    255,       256,       257,       1000,      1023,      1024,  1025,
                              2047,  2048,      2049,      4095,      4097,      8191,      16383, 16384,
                              16385, 32767,     32768,     32769,     65535,     65536,     100003};
  for (int n : {warp - 1, warp + 1, block - 1, block + 1, longest - 1, longest, longest + 1}) lengths.push_back(n);
  lengths.push_back(block + 16 / value_bytes);  // one whole vector past 512 threads' registers
  std::vector<MaskedCase> cases;
  for (int n_k : lengths) {
    const int n_q = std::clamp(400'000 / n_k, 1, 9);
    const ScoreShape shape{2, 1, n_q, n_k};
    cases.push_back(make_case(rng, "row length " + std::to_string(n_k), shape, {}));
    MaskedCase masked = make_case(rng, "row length " + std::to_string(n_k), shape, {true, true, false});
    masked.key_lengths = {n_k, rng.uniform_int(0, n_k)};
    masked.nan_where_masked = true;
    cases.push_back(masked);
  }
  return cases;
}

}  // namespace

TEST_CASE("cpu: visible_end: bottom-right causal alignment, key lengths, rows that see nothing") {
  // Named cases: (query, n_q, n_k, causal, key_length) -> visible_end.
  struct Named {
    int query, n_q, n_k;
    bool causal;
    int key_length, want;
    const char* why;
  };
  const Named named[] = {
      {0, 8, 8, true, 8, 1, "n_q = n_k, causal: query 0 sees key 0 only"},
      {5, 8, 8, true, 8, 6, "n_q = n_k, causal: query i sees keys 0..i"},
      {7, 8, 8, true, 8, 8, "the last query sees every key"},
      {0, 1, 100, true, 100, 100, "decoding: one query after 99 cached keys sees all 100 (bottom-right)"},
      {0, 4, 100, true, 100, 97, "4 new queries over 100 keys: the first sees keys 0..96"},
      {0, 6, 4, true, 4, 0, "n_q > n_k: query 0 of 6 over 4 keys sees nothing"},
      {1, 6, 4, true, 4, 0, "n_q > n_k: the first n_q - n_k queries see nothing"},
      {2, 6, 4, true, 4, 1, "n_q > n_k: query n_q - n_k sees key 0"},
      {3, 8, 8, false, 5, 5, "padding alone: keys from key_length on are hidden"},
      {3, 8, 8, false, 0, 0, "key length 0: nothing visible"},
      {3, 8, 8, true, 2, 2, "causal and padding: the smaller end wins"},
      {3, 8, 8, true, 6, 4, "causal and padding: the smaller end wins"},
      {3, 8, 8, false, 8, 8, "no mask: the whole row"},
      {0, 3, 5, false, 9, 5, "a key length past n_k is clamped to n_k"},
  };
  for (const Named& c : named) {
    const int got = ch04::visible_end(c.query, c.n_q, c.n_k, c.causal, c.key_length);
    CHECK_MESSAGE(got == c.want, "visible_end(query ", c.query, ", n_q ", c.n_q, ", n_k ", c.n_k, ", causal ",
                  c.causal, ", key_length ", c.key_length, ") = ", got, ", expected ", c.want, ": ",
                  std::string(c.why));
  }
  // Random cases against the definition, key by key: the visible prefix is the count of keys
  // j with (not causal or j <= i + n_k - n_q) and j < key_length.
  COURSE_SEEDED_RNG(rng);
  for (int trial = 0; trial < 2000; ++trial) {
    const int n_q = rng.uniform_int(1, 40), n_k = rng.uniform_int(1, 40);
    const int query = rng.uniform_int(0, n_q - 1), key_length = rng.uniform_int(0, n_k);
    const bool causal = trial % 2 == 0;
    int want = 0;
    for (int j = 0; j < n_k; ++j) want += (!causal || j - query <= n_k - n_q) && j < key_length;
    const int got = ch04::visible_end(query, n_q, n_k, causal, key_length);
    CHECK_MESSAGE(got == want, "visible_end(query ", query, ", n_q ", n_q, ", n_k ", n_k, ", causal ", causal,
                  ", key_length ", key_length, ") = ", got, ", expected ", want);
    if (got != want) break;
  }
}

TEST_CASE("gpu: masked_softmax: every mask combination (none, causal, key lengths, explicit, all three), fp32") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  check_all<float>(fused<float>, "masked_softmax", combination_cases(rng));
}

TEST_CASE("gpu: masked_softmax: every mask combination, fp16 and bf16") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  const auto cases = combination_cases(rng);
  check_all<__half>(fused<__half>, "masked_softmax", cases);
  check_all<__nv_bfloat16>(fused<__nv_bfloat16>, "masked_softmax", cases);
}

TEST_CASE("gpu: masked_softmax: the explicit mask alone, with NaN in the keys it drops") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  std::vector<MaskedCase> cases;
  for (const ScoreShape& shape : {ScoreShape{2, 3, 9, 64}, ScoreShape{1, 2, 7, 333}, ScoreShape{2, 1, 5, 3000},
                                  ScoreShape{1, 1, 3, 50000}}) {
    MaskedCase c = make_case(rng, "explicit mask alone", shape, {false, false, true});
    std::fill_n(c.keep.begin(), shape.n_k, 1);  // query 0 keeps every key; query n_q / 2 none
    cases.push_back(c);
    c.nan_where_masked = true;
    cases.push_back(c);
  }
  check_fused<__half>(cases);
}

TEST_CASE("gpu: masked_softmax: fully masked rows give zeros, not NaN") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  std::vector<MaskedCase> cases;
  for (int n_k : {5, 64, 1000, 3000, 50000, ch04::fused_max_cols(4) + 1}) {
    MaskedCase c = make_case(rng, "key length 0 in batches 0 and 2", {3, 2, 2, n_k}, {false, true, false});
    c.key_lengths = {0, n_k / 2, 0};
    cases.push_back(c);
  }
  cases.push_back(make_case(rng, "n_q > n_k, causal: the first n_q - n_k rows see nothing", {2, 2, 40, 16},
                            {true, false, false}));
  MaskedCase zeros = make_case(rng, "an explicit mask of zeros", {2, 2, 3, 700}, {false, false, true});
  std::fill(zeros.keep.begin(), zeros.keep.end(), 0);
  cases.push_back(zeros);
  MaskedCase all_minus_inf = make_case(rng, "kept scores all -inf", {1, 1, 3, 100}, {});
  std::fill(all_minus_inf.S.begin(), all_minus_inf.S.end(), -std::numeric_limits<float>::infinity());
  cases.push_back(all_minus_inf);
  check_fused<__nv_bfloat16>(cases);
}

TEST_CASE("gpu: masked_softmax: n_q < n_k and n_q > n_k, and decoding (n_q = 1, 100 cached keys)") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  std::vector<MaskedCase> cases;
  for (const Masks& m : {Masks{true, false, false}, Masks{true, true, false}, Masks{true, true, true}}) {
    cases.push_back(make_case(rng, "decoding one token over 100 cached keys", {4, 3, 1, 100}, m));
    cases.push_back(make_case(rng, "4 new queries over 100 keys", {2, 3, 4, 100}, m));
    cases.push_back(make_case(rng, "100 queries over 1 key", {2, 1, 100, 1}, m));
    cases.push_back(make_case(rng, "7 queries over 1000 keys", {2, 2, 7, 1000}, m));
    cases.push_back(make_case(rng, "1000 queries over 7 keys", {2, 1, 1000, 7}, m));
    cases.push_back(make_case(rng, "3 queries over 65536 keys", {2, 1, 3, 65536}, m));
  }
  check_fused<__half>(cases);
}

TEST_CASE("gpu: masked_softmax: key lengths 0, 1 and n_k") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  std::vector<MaskedCase> cases;
  for (int n_k : {1, 7, 1024, 5000, 40000}) {
    MaskedCase c = make_case(rng, "key lengths 0, 1, n_k, n_k - 1", {4, 2, 3, n_k}, {false, true, false});
    c.key_lengths = {0, 1, n_k, std::max(n_k - 1, 0)};
    cases.push_back(c);
    c.causal = true;
    cases.push_back(c);
  }
  check_fused<__half>(cases);
}

TEST_CASE("gpu: masked_softmax: row lengths 1 to 65536 and past the on-chip limit, fp32") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  check_all<float>(fused<float>, "masked_softmax", length_cases(rng, 4));
}

TEST_CASE("gpu: masked_softmax: row lengths 1 to 65536 and past the on-chip limit, fp16 and bf16") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  const auto cases = length_cases(rng, 2);
  check_all<__half>(fused<__half>, "masked_softmax", cases);
  check_all<__nv_bfloat16>(fused<__nv_bfloat16>, "masked_softmax", cases);
}

TEST_CASE("gpu: masked_softmax: never reads past the visible prefix (NaN scores there)") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  // Every score a causal or padding mask hides is NaN: a kernel that reads it and takes a
  // max or an exp of it, or multiplies it by 0, returns NaN somewhere.
  std::vector<MaskedCase> cases;
  for (const ScoreShape& shape : {ScoreShape{3, 2, 33, 33}, ScoreShape{3, 1, 5, 1500}, ScoreShape{3, 1, 3, 4096},
                                  ScoreShape{3, 1, 2, 70000}, ScoreShape{2, 1, 2, ch04::fused_max_cols(2) + 3}}) {
    for (const Masks& m : {Masks{true, false, false}, Masks{false, true, false}, Masks{true, true, true}}) {
      MaskedCase c = make_case(rng, "NaN past the visible prefix", shape, m);
      c.nan_where_masked = true;
      cases.push_back(c);
    }
  }
  check_fused<__half>(cases);
}

TEST_CASE("gpu: masked_softmax: rows that are not 16-byte aligned") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  for (int n_k : {64, 1000, 4096, 20000}) {
    MaskedCase c = make_case(rng, "misaligned", {2, 1, 3, n_k}, {true, true, true});
    c.nan_where_masked = true;
    auto f32 = check_masked<float>(fused<float>, c, "masked_softmax", 1);
    CHECK_MESSAGE(f32.ok, f32.message, "\n  (16-byte vector accesses need 16-byte aligned addresses)");
    auto f16 = check_masked<__half>(fused<__half>, c, "masked_softmax", 3);
    CHECK_MESSAGE(f16.ok, f16.message, "\n  (16-byte vector accesses need 16-byte aligned addresses)");
  }
}

namespace {

// Chapter 02's softmax through the chapter's kernel: one batch, one head, no mask, scale 1.
template <class T>
void unmasked(const T* x, T* y, int rows, int cols, cudaStream_t stream) {
  ch04::masked_softmax(x, y, ScoreShape{1, 1, rows, cols}, 1.0f, ch04::Mask{}, stream);
}

template <class T>
void check_chapter02_cases(course::Rng& rng) {
  for (const auto& cases : {course::testing::softmax_edge_cases(rng), course::testing::softmax_length_cases(rng)})
    for (const auto& c : cases) {
      const course::CompareReport report = course::testing::check_softmax<T>(unmasked<T>, c, "masked_softmax, no mask");
      CHECK_MESSAGE(report.ok, report.message);
      if (!report.ok) return;
    }
}

}  // namespace

TEST_CASE("gpu: masked_softmax without a mask: chapter 02's edge cases and lengths, fp32, fp16 and bf16") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  check_chapter02_cases<float>(rng);
  check_chapter02_cases<__half>(rng);
  check_chapter02_cases<__nv_bfloat16>(rng);
}

TEST_CASE("gpu (given): masked_softmax_unfused: mask combinations, fully masked rows, NaN where masked") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  std::vector<MaskedCase> cases = combination_cases(rng);
  for (int n_k : {1, 1023, 1025, 70000}) {
    MaskedCase c = make_case(rng, "NaN where masked", {3, 1, 3, n_k}, {true, true, true});
    c.nan_where_masked = true;
    cases.push_back(c);
  }
  cases.push_back(make_case(rng, "n_q > n_k, causal", {2, 2, 40, 16}, {true, false, false}));
  check_all<float>(unfused<float>, "masked_softmax_unfused", cases);
  check_all<__half>(unfused<__half>, "masked_softmax_unfused", cases);
  check_all<__nv_bfloat16>(unfused<__nv_bfloat16>, "masked_softmax_unfused", cases);
}

TEST_CASE("cpu (given): the launch functions reject bad shapes, scales and a missing workspace") {
  const float* none = nullptr;
  float* out = nullptr;
  CHECK_THROWS_AS(ch04::masked_softmax(none, out, {0, 1, 1, 8}, 0.125f, {}, nullptr), std::invalid_argument);
  CHECK_THROWS_AS(ch04::masked_softmax(none, out, {1, 1, 8, 0}, 0.125f, {}, nullptr), std::invalid_argument);
  CHECK_THROWS_AS(ch04::masked_softmax(none, out, {1 << 16, 1 << 8, 1 << 8, 8}, 0.125f, {}, nullptr),
                  std::invalid_argument);
  CHECK_THROWS_AS(ch04::masked_softmax(none, out, {1, 1, 8, 8}, 0.0f, {}, nullptr), std::invalid_argument);
  CHECK_THROWS_AS(ch04::masked_softmax(none, out, {1, 1, 8, 8}, -1.0f, {}, nullptr), std::invalid_argument);
  CHECK_THROWS_AS(ch04::masked_softmax(none, out, {1, 1, 8, 8}, std::nanf(""), {}, nullptr), std::invalid_argument);
  CHECK_THROWS_AS(ch04::masked_softmax_unfused(none, out, {1, 1, 8, 8}, 0.125f, {}, nullptr, nullptr, nullptr),
                  std::invalid_argument);
}
