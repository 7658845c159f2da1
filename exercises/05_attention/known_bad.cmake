# Deliberately wrong kernels for chapter 05: the solution with one bug each. The suite
# must catch every one (ctest -L known-bad, solutions track, on a GPU).
course_known_bad(pv_last_tile_dropped
  WHY "the loop over the keys stops before the last, partial tile: n_k not a multiple of 32 loses keys"
  REPLACE "for (int j0 = 0; j0 < n_k; j0 += T) {" "for (int j0 = 0; j0 + T <= n_k; j0 += T) {")
course_known_bad(pv_no_key_guard_on_v
  WHY "the V tile is loaded without the key bound: the last, partial tile reads past the last key"
  REPLACE "(j0 + ty < n_k && col < d) ?" "(col < d) ?")
course_known_bad(pv_missing_barrier
  WHY "no barrier after the tiles are loaded: threads read shared memory other warps have not written yet"
  REPLACE "    __syncthreads();  // both tiles complete before any thread reads them\n" "")
course_known_bad(pv_same_head
  WHY "every head uses head 0's values"
  REPLACE "  V += head * n_k * d;\n" "")
course_known_bad(scores_one_head
  WHY "step 1 computes the scores of the first head only"
  REPLACE "for (std::size_t h = 0; h < shape.heads_total(); ++h)" "for (std::size_t h = 0; h < 1; ++h)")
