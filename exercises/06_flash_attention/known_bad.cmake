# Deliberately wrong kernels for chapter 06: the solution with one bug each. The suite
# must catch every one (ctest -L known-bad, solutions track, on a GPU).
course_known_bad(no_output_rescale
  WHY "the output accumulator is not rescaled when the running max grows (l is)"
  REPLACE "for (int e = 0; e < 4 * kGroups; ++e) acc[r][e] *= rescale;" "")
course_known_bad(no_sum_rescale
  WHY "the running sum l is not rescaled when the running max grows (the output is)"
  REPLACE "      l[r] *= rescale;\n" "")
course_known_bad(missing_barrier_after_load
  WHY "no barrier between loading the K and V tiles and reading them"
  REPLACE "    __syncthreads();  // the tiles (and, the first time, q) are complete\n" "")
course_known_bad(missing_barrier_before_next_tile
  WHY "no barrier at the end of a tile: fast warps overwrite K, V and P while slow ones still read them (a race: racecheck reports it; the results are seldom wrong)"
  TOOL racecheck CASES "gpu: flash_attention: sequence lengths*"
  REPLACE "    __syncthreads();  // everyone is done with k, v and p before the next tile overwrites them\n" "")
course_known_bad(no_bounds_guard
  WHY "the tile loads have no bounds check: the last, partial tile reads past the last key"
  REPLACE "if (first + row < n_rows) value =" "value =")
course_known_bad(no_mask
  WHY "the mask is ignored: every key below n_k takes part"
  REPLACE "s[r][c] = k0 + tx + 16 * c < visible[r] ?" "s[r][c] = k0 + tx + 16 * c < n_k ?")
course_known_bad(fully_masked_nan
  WHY "a row that has seen no key shifts by m = -inf: 2^(-inf + inf) is NaN"
  REPLACE "const float shift = m_new == -INFINITY ? 0.0f : m_new;" "const float shift = m_new;")
course_known_bad(walk_ends_early
  WHY "the walk stops where the block's first query stops seeing keys (causal): later queries lose keys"
  REPLACE "const int walk_end = course::visible_keys(last_row," "const int walk_end = course::visible_keys(q0,")
course_known_bad(lse_log2
  WHY "lse is left in log2 units: m + log2 l, not (m + log2 l) ln 2"
  REPLACE "(m[r] + log2f(l_row)) * kLn2" "(m[r] + log2f(l_row))")
