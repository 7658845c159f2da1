# Deliberately wrong kernels for chapter 08: the solution with one bug each. The suite
# must catch every one (ctest -L known-bad, solutions track, on a GPU).
course_known_bad(no_output_rescale
  WHY "the output accumulator is not rescaled when a tile raises the running max"
  REPLACE "for (int n = 0; n < D / 8; ++n) acc[n][0] *= acc_rescale, acc[n][1] *= acc_rescale;" "")
course_known_bad(combine_without_factors
  WHY "the combine adds the splits' outputs without bringing them to the common max"
  REPLACE "acc[e] += values[e] * factor;" "acc[e] += values[e];")
course_known_bad(reads_past_length
  WHY "a chunk ends at max_len, not at the sequence's length: positions past it are read"
  REPLACE "const int end = min(begin + chunk, length);" "const int end = min(begin + chunk, max_len);")
course_known_bad(first_group_queries
  WHY "every kv head scores the queries of the sequence's first group, not its own"
  REPLACE "const T* q_row = q + (std::size_t(batch) * heads + first_head + g) * D;" "const T* q_row = q + (std::size_t(batch) * heads + g) * D;")
course_known_bad(fp8_key_scale_ignored
  WHY "the FP8 key rows' scales are never applied to the scores"
  REPLACE "const float k_scale = kFp8 ? mine.k_scale[at] : 1.0f;" "const float k_scale = 1.0f;")
course_known_bad(empty_sequence_nan
  WHY "the combine divides by l = 0 for a sequence of length 0 (0 / 0 = NaN)"
  REPLACE "O[pair * D + column] = course::from_float<T>(l_sum > 0.0f ? sum / l_sum : 0.0f);" "O[pair * D + column] = course::from_float<T>(sum / l_sum);")
course_known_bad(wrong_kv_head
  WHY "the group's first query head is kv, not kv * group: groups overlap and some query heads are never computed"
  REPLACE "const int first_head = (kv_head % kv_heads) * G;" "const int first_head = (kv_head % kv_heads);")
course_known_bad(fp8_value_units_dropped
  WHY "the FP8 accumulator is kept in units of the tile's largest value scale, and the split's output forgets to multiply them back"
  REPLACE "acc[n][e] * top;" "acc[n][e];")
course_known_bad(no_sum_rescale
  WHY "the running sum l is not rescaled when a tile raises the running max"
  REPLACE "l = l * rescale + p_sum;" "l = l + p_sum;")
course_known_bad(lse_log2
  WHY "lse is left in log2 units (m + log2 l), not converted to the natural log"
  REPLACE "(m_block + log2f(l_block)) * kLn2" "(m_block + log2f(l_block))"
          "(m + log2f(l_sum)) * kLn2" "(m + log2f(l_sum))")
