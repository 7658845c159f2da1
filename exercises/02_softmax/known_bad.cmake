# Deliberately wrong kernels for chapter 02: the solution with one bug each. The suite
# must catch every one (ctest -L known-bad, solutions track, on a GPU).
course_known_bad(first_block_of_row_only
  WHY "safe softmax covers only the first blockDim.x values of each row (no loop)"
  REPLACE "for (int c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf" "for (int c = threadIdx.x; c < cols && c < blockDim.x; c += blockDim.x) m = fmaxf"
          "for (int c = threadIdx.x; c < cols; c += blockDim.x) l += expf" "for (int c = threadIdx.x; c < cols && c < blockDim.x; c += blockDim.x) l += expf"
          "for (int c = threadIdx.x; c < cols; c += blockDim.x)\n    y_row[c]" "for (int c = threadIdx.x; c < cols && c < blockDim.x; c += blockDim.x)\n    y_row[c]")
course_known_bad(no_max_subtraction
  WHY "the max is computed but not subtracted: exp overflows on large logits"
  REPLACE "l += expf(to_float(x_row[c]) - m);" "l += expf(to_float(x_row[c]));"
          "y_row[c] = course::from_float<T>(expf(to_float(x_row[c]) - m) * inv_l);" "y_row[c] = course::from_float<T>(expf(to_float(x_row[c])) * inv_l);")
course_known_bad(max_of_first_value
  WHY "the row max starts from 0 instead of -inf (rows of negative logits get a wrong max)"
  REPLACE "float m = -INFINITY;  // pass 1" "float m = 0.0f;  // pass 1")
