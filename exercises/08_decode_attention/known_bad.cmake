# Deliberately wrong kernels for chapter 08: the solution with one bug each. The suite
# must catch every one (ctest -L known-bad, solutions track, on a GPU).
course_known_bad(no_output_rescale
  WHY "the output accumulator is not rescaled when a tile raises the running max"
  REPLACE "for (int e = 0; e < kPerLane; ++e) acc[g][e] *= rescale;" "")
course_known_bad(combine_without_factors
  WHY "the combine adds the splits' outputs without bringing them to the common max"
  REPLACE "sum += acc[std::size_t(s) * D + column] * factors[warp][s];" "sum += acc[std::size_t(s) * D + column];")
course_known_bad(reads_past_length
  WHY "a chunk ends at max_len, not at the sequence's length: positions past it are read"
  REPLACE "const int end = min(begin + chunk, length);" "const int end = min(begin + chunk, max_len);")
course_known_bad(first_group_queries
  WHY "every kv head scores the queries of the sequence's first group, not its own"
  REPLACE "const T* q_group = q + (std::size_t(batch) * heads + first_head) * D;" "const T* q_group = q + (std::size_t(batch) * heads) * D;")
course_known_bad(fp8_key_scale_ignored
  WHY "the FP8 key rows' scales are never applied to the scores"
  REPLACE "s[g] = valid ? s[g] * k_scale : -INFINITY;" "s[g] = valid ? s[g] : -INFINITY;")
course_known_bad(empty_sequence_nan
  WHY "the combine forms 2^(-inf - (-inf)) for a sequence of length 0"
  REPLACE "const float factor = m == -INFINITY ? 0.0f : course::exp2_approx(state[s].m - m);" "const float factor = course::exp2_approx(state[s].m - m);")
course_known_bad(wrong_kv_head
  WHY "the group's first query head is kv, not kv * group: groups overlap and some query heads are never computed"
  REPLACE "const int first_head = (kv_head % kv_heads) * G;" "const int first_head = (kv_head % kv_heads);")
