# Deliberately wrong kernels for chapter 01: the solution with one bug each. The suite
# must catch every one (ctest -L known-bad, solutions track, on a GPU).
course_known_bad(grid_single_pass
  WHY "dot: each thread adds one product instead of looping over the grid stride"
  REPLACE "       i += stride)\n    sum += a[i] * b[i];" "       i += stride)\n    { sum += a[i] * b[i]; break; }")
course_known_bad(warp_reduce_three_steps
  WHY "warp_reduce_sum stops after 3 of its 5 shuffle steps"
  REPLACE "for (int offset = 16; offset > 0; offset /= 2)" "for (int offset = 16; offset > 2; offset /= 2)")
course_known_bad(block_reduce_first_warp_only
  WHY "block_reduce_sum keeps warp 0's partial only"
  REPLACE "v = warp_reduce_sum(lane < n_warps ? warp_sums[lane] : 0.0f);" "v = warp_reduce_sum(lane < 1 ? warp_sums[lane] : 0.0f);")
course_known_bad(query_scores_first_32_dims
  WHY "query_scores: each lane reads one element of the key, so d > 32 is cut short"
  REPLACE "for (int k = lane; k < d; k += 32) partial" "for (int k = lane; k < d && k < 32; k += 32) partial")
course_known_bad(score_tile_no_d_guard
  WHY "score_matrix: the last, partial slice of d is read past each row (no k < d guard)"
  REPLACE "q_tile[ty][tx] = (row < n_q && k < d) ? Q[std::size_t(row) * d + k] : 0.0f;"
          "q_tile[ty][tx] = (row < n_q) ? Q[std::size_t(row) * d + k] : 0.0f;"
          "k_tile[ty][tx] = (k_row_loaded < n_k && k < d) ? K[std::size_t(k_row_loaded) * d + k] : 0.0f;"
          "k_tile[ty][tx] = (k_row_loaded < n_k) ? K[std::size_t(k_row_loaded) * d + k] : 0.0f;")
course_known_bad(score_missing_scale
  WHY "score_matrix forgets the 1/sqrt(d) scale"
  REPLACE "if (row < n_q && col < n_k) S[std::size_t(row) * n_k + col] = scale * sum;"
          "if (row < n_q && col < n_k) S[std::size_t(row) * n_k + col] = sum;")
course_known_bad(score_no_store_guard
  WHY "score_matrix writes the whole tile, past the last row and column"
  REPLACE "if (row < n_q && col < n_k) S[std::size_t(row) * n_k + col] = scale * sum;"
          "S[std::size_t(row) * n_k + col] = scale * sum;")
course_known_bad(block_reduce_no_barrier
  WHY "block_reduce_sum has no barrier between the warps writing their partials and warp 0 reading them"
  REPLACE "  __syncthreads();  // every warp's partial is written before warp 0 reads them\n" "")
course_known_bad(score_no_barrier_after_load
  WHY "score_matrix reads the shared tiles without a barrier after loading them: other warps' rows may not be there yet"
  REPLACE "    __syncthreads();  // the tiles are complete before any thread reads them\n" "")
course_known_bad(score_no_barrier_before_next_slice
  WHY "score_matrix loads the next slice of d while other warps still read the current one (a race: racecheck reports it every time; the results are wrong only when a warp runs a slice ahead)"
  TOOL racecheck CASES "gpu: score_matrix: *"
  REPLACE "    __syncthreads();  // every thread is done reading before the next slice overwrites them\n" "")
