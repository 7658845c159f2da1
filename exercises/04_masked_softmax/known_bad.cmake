# Deliberately wrong kernels for chapter 04: the solution with one bug each. The suite
# must catch every one (ctest -L known-bad, solutions track, on a GPU).
course_known_bad(causal_off_by_one
  WHY "visible_end stops one key early: query i misses key i + (n_k - n_q)"
  REPLACE "end = last_seen + 1 < end ? last_seen + 1 : end;" "end = last_seen < end ? last_seen : end;")
course_known_bad(top_left_causal
  WHY "visible_end aligns the causal mask top-left (j <= i), wrong whenever n_q != n_k"
  REPLACE "const int last_seen = query + (n_k - n_q);  // bottom-right" "const int last_seen = query;  // bottom-right")
course_known_bad(fully_masked_nan
  WHY "the store has no case for a row that sees nothing: exp(-inf - (-inf)) is NaN"
  REPLACE "const bool zeros = whole_row.m == -INFINITY || own.m == -INFINITY;" "const bool zeros = false;")
course_known_bad(reads_past_prefix
  WHY "the load reads whole vectors up to n_k, not up to the visible end"
  REPLACE "raw[i] = col + V <= row.end ? *reinterpret_cast" "raw[i] = col + V <= row.n_k ? *reinterpret_cast")
course_known_bad(scale_twice
  WHY "keep_exponentials applies the 1/sqrt(d) scale to the score twice when it forms p"
  REPLACE "const float slope = row.scale * kLog2e;" "const float slope = row.scale * row.scale * kLog2e;")
course_known_bad(staged_part_register_factor
  WHY "the staged kernel corrects the staged vectors with the register part's state, not their own"
  REPLACE "staged_view(view, s), whole_row, staged_part);" "staged_view(view, s), whole_row, register_part);")
course_known_bad(padding_ignored
  WHY "visible_end ignores the key lengths: padded keys count in the softmax"
  REPLACE "int end = key_length < n_k ? key_length : n_k;" "int end = n_k;")
course_known_bad(explicit_mask_ignored
  WHY "the warp kernel never applies the explicit boolean mask"
  REPLACE "  if (view.keep != nullptr) drop_explicitly_masked<T, N, kWhole>(raw, view);\n" "")
course_known_bad(store_past_row_end
  WHY "store_share writes every vector of the thread's share, also those past the row's last key (no col < n_k check)"
  REPLACE "      if (col < row.n_k) course::store_vec(y_row + col, out);" "      course::store_vec(y_row + col, out);")
