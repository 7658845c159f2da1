# Deliberately wrong kernels for chapter 03: the solution with one bug each. The suite
# must catch every one (ctest -L known-bad, solutions track, on a GPU).
course_known_bad(no_rescale
  WHY "merge adds the two sums without rescaling them to the common max"
  REPLACE "return {m, a.l * expf(a.m - m) + b.l * expf(b.m - m)};" "return {m, a.l + b.l};")
course_known_bad(empty_merge_nan
  WHY "merge has no answer for two empty parts: exp(-inf - (-inf)) gives NaN"
  REPLACE "  if (m == -INFINITY) return {-INFINITY, 0.0f};\n  return {m, a.l" "  return {m, a.l")
course_known_bad(shuffle_max_only
  WHY "shfl_xor(MaxSum) exchanges m but keeps this lane's own l"
  REPLACE "__shfl_xor_sync(0xffffffffu, s.l, lane_mask)}" "s.l}")
course_known_bad(one_read_unnormalised
  WHY "the one-read kernel writes exp(x - m) without dividing by l"
  REPLACE "out[j] = exp_shifted(out[j], row.m) * inv_l;" "out[j] = exp_shifted(out[j], row.m);")
course_known_bad(one_read_thread_max
  WHY "the one-read kernel rescales with the thread's max, not the row's"
  REPLACE "state = course::block_reduce(state, Merge{}, scratch);\n  state = course::cluster_merge"
          "state = course::cluster_merge")
course_known_bad(online_second_read_skips_tail
  WHY "the two-read kernel's normalising pass stops at the first block of the row"
  REPLACE "  const float inv_l = 1.0f / state.l;\n  for (int c = threadIdx.x; c < cols; c += blockDim.x)"
          "  const float inv_l = 1.0f / state.l;\n  for (int c = threadIdx.x; c < cols && c < blockDim.x; c += blockDim.x)")
