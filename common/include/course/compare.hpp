// Comparing a kernel's output with the float64 reference, element by element:
//     ok  <=>  |got - ref| <= atol + rtol * |ref|   for every element
// NaN and Inf are looked for first and never pass (a max over differences silently
// drops NaN). The report says where the first wrong element is, as (row, col) of the
// shape you pass, and names the likely bug when the pattern of errors is recognisable.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstddef>
#include <string>
#include <vector>

namespace course {

struct Tolerance {
  double atol;
  double rtol;
  const char* name;
};

// The tolerances, per output dtype. Math is float32 throughout the course; what differs
// is the rounding of the stored output and how many float32 roundings a result carries.
namespace tolerance {
// float32 output of a short computation (a scale, an exp, a division): a few roundings
// of 2^-24 relative each, so 1e-5 relative leaves room and still rejects any wrong value.
inline constexpr Tolerance fp32{1e-6, 1e-5, "fp32"};
// float16 output: storing it alone rounds by up to 2^-11 ~ 4.9e-4 relative.
inline constexpr Tolerance fp16{1e-5, 2e-3, "fp16"};
// bfloat16 output: 8 bits of mantissa, storing rounds by up to 2^-8 ~ 3.9e-3 relative.
inline constexpr Tolerance bf16{1e-5, 1e-2, "bf16"};
// Probabilities (softmax outputs) go down to 1/cols and far below, so the absolute slack
// is only the dtype's resolution near 0: float32 flushes below ~1e-38 (1e-30 covers it);
// float16 has subnormal steps of 2^-24 ~ 6e-8. The relative part is as above, plus the
// float32 sum of up to 256k exponentials (~1e-6 typical).
inline constexpr Tolerance prob_fp32{1e-30, 1e-5, "fp32 probabilities"};
inline constexpr Tolerance prob_fp16{6e-8, 2e-3, "fp16 probabilities"};
inline constexpr Tolerance prob_bf16{1e-30, 1e-2, "bf16 probabilities"};
// Attention's output in float32 (chapters 05-06): each element is an average of up to n_k
// values weighted through a d-term dot product, an exp and the running rescales, each a
// few 2^-24 roundings; 2e-5 absolute still rejects a kernel that drops one key of 4096
// (a change of about 1/4096 ~ 2.4e-4 in the output).
inline constexpr Tolerance attention_fp32{2e-5, 2e-4, "fp32 attention output"};
// The same stored in fp16 or bf16 (chapter 08): the fp32 bound plus the output's rounding,
// 2^-11 (fp16) or 2^-8 (bf16) relative.
inline constexpr Tolerance attention_fp16{3e-5, 2e-3, "fp16 attention output"};
inline constexpr Tolerance attention_bf16{3e-5, 1e-2, "bf16 attention output"};
// On tensor cores (chapter 07) the probabilities are also rounded to the input type before
// P V, by up to 2^-11 (fp16) or 2^-8 (bf16) each. The output's error is then bounded by that
// fraction of sum_j p_j |v_j| / l <= max |v| (~4 for normal values): reached only when the
// weight sits on a few keys whose values cancel, since the roundings of many keys average
// out. Hence atol about half the bound, rtol the output's rounding plus the same fraction.
inline constexpr Tolerance attention_fp16_mma{1e-3, 4e-3, "fp16 attention output, P rounded to fp16"};
inline constexpr Tolerance attention_bf16_mma{8e-3, 2e-2, "bf16 attention output, P rounded to bf16"};
// The row's log-sum-exp, m + ln l: its error is l's relative error (~1e-6) plus the
// largest score's rounding, which grows with the score (hence the relative part).
inline constexpr Tolerance lse_fp32{1e-5, 1e-5, "fp32 log-sum-exp"};
// The same from scores summed on tensor cores: their fp32 accumulation does not round each
// addition to nearest, so a score can be a few units in the last place further off.
inline constexpr Tolerance lse_mma{5e-5, 2e-5, "fp32 log-sum-exp, scores from mma"};
}  // namespace tolerance

// What the course needs to know of each storage type on the host: its name, its
// tolerances, and rounding a float to it (to build inputs as the GPU will see them).
template <class T> struct DType;
template <> struct DType<float> {
  static constexpr const char* name = "fp32";
  static constexpr Tolerance value = tolerance::fp32, prob = tolerance::prob_fp32;
  static float narrow(float v) { return v; }
};
template <> struct DType<__half> {
  static constexpr const char* name = "fp16";
  static constexpr Tolerance value = tolerance::fp16, prob = tolerance::prob_fp16;
  static __half narrow(float v) { return __float2half_rn(v); }
};
template <> struct DType<__nv_bfloat16> {
  static constexpr const char* name = "bf16";
  static constexpr Tolerance value = tolerance::bf16, prob = tolerance::prob_bf16;
  static __nv_bfloat16 narrow(float v) { return __float2bfloat16_rn(v); }
};

struct Shape2D {
  std::size_t rows;
  std::size_t cols;
};

struct CompareReport {
  bool ok = false;
  std::string message;  // empty when ok
};

// `what` names the check in the message ("score_matrix n_q=33 n_k=65 d=64");
// `hint` is added to the likely causes when the errors have no recognisable pattern.
CompareReport compare(const std::vector<double>& got, const std::vector<double>& ref,
                      Tolerance tol, Shape2D shape, const std::string& what,
                      const std::string& hint = "");

// Widening what came back from the GPU, for compare().
// The poison DeviceBuffer::poison() writes (every byte 0xFF), after widening: a NaN with the
// sign bit set, in every float type. A NaN that GPU arithmetic computes is the canonical one,
// sign bit clear, so an element never written is told from one computed as NaN.
bool is_poison(double v);
// How many of v[from, to) are no longer the poison: the elements a kernel wrote there. An
// output followed by poisoned elements, checked with it, shows a store past its end.
std::size_t count_written(const std::vector<double>& v, std::size_t from, std::size_t to);

std::vector<double> widen(const std::vector<float>& v);
std::vector<double> widen(const std::vector<__half>& v);
std::vector<double> widen(const std::vector<__nv_bfloat16>& v);

// Floats rounded to storage type T, as a kernel's inputs are built on the host.
template <class T>
std::vector<T> narrow(const std::vector<float>& v) {
  std::vector<T> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = DType<T>::narrow(v[i]);
  return out;
}

// Stored values as float, for the float references: exact for every storage type.
template <class T>
std::vector<float> as_float(const std::vector<T>& v) {
  const std::vector<double> wide = widen(v);
  return std::vector<float>(wide.begin(), wide.end());
}

template <class T>
CompareReport compare(const std::vector<T>& got, const std::vector<double>& ref, Tolerance tol,
                      Shape2D shape, const std::string& what, const std::string& hint = "") {
  return compare(widen(got), ref, tol, shape, what, hint);
}

// For checking a sample of a large output: `count` row indices spread evenly over
// [0, rows), the first and the last included (see DeviceBuffer::download_rows).
std::vector<std::size_t> sample_rows(std::size_t rows, std::size_t count);

}  // namespace course
