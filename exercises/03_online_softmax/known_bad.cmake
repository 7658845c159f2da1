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
  WHY "the one-read kernels write exp(x - m) without dividing by l"
  REPLACE "exp_shifted(own.m, row.m), row.l * kKeptScale<T>)" "exp_shifted(own.m, row.m), kKeptScale<T>)")
course_known_bad(one_read_thread_max
  WHY "the one-read kernels leave each thread's exponentials in units of its own max, not the row's"
  REPLACE "__fdividef(exp_shifted(own.m, row.m), " "__fdividef(1.0f, ")
course_known_bad(one_read_empty_thread_nan
  WHY "keep_exponentials shifts by the thread's max even when it is -inf: a thread that holds only -inf computes exp(-inf - (-inf)) = NaN"
  REPLACE "const float shift = m == -INFINITY ? 0.0f : m;" "const float shift = m;")
course_known_bad(online_second_read_skips_tail
  WHY "the two-read kernel's normalising pass stops at the first block of the row"
  REPLACE "  const float inv_l = 1.0f / state.l;\n  for (int c = threadIdx.x; c < cols; c += blockDim.x)"
          "  const float inv_l = 1.0f / state.l;\n  for (int c = threadIdx.x; c < cols && c < blockDim.x; c += blockDim.x)")
course_known_bad(staged_part_register_factor
  WHY "the cluster kernel corrects the staged vectors with the register part's max: each part's p is in units of its own max"
  REPLACE "staged_share(share, s), staged_part, whole_row);" "staged_share(share, s), register_part, whole_row);")
course_known_bad(store_past_row_end
  WHY "store_share writes every vector of the thread's share, also those past the row's end (no share.holds check)"
  REPLACE "    if (!share.holds(i)) continue;\n    const int col = share.col(i);\n    float out[V];"
          "    const int col = share.col(i);\n    float out[V];")
