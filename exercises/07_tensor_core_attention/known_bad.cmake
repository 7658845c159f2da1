# Deliberately wrong kernels for chapter 07: the solution with one bug each. The suite
# must catch every one (ctest -L known-bad, solutions track, on a GPU).
course_known_bad(no_output_rescale
  WHY "the output accumulator is not rescaled when the running max grows (l is)"
  REPLACE "        o[r][db][2 * h] *= rescale[r][h];\n        o[r][db][2 * h + 1] *= rescale[r][h];\n" "")
course_known_bad(no_sum_rescale
  WHY "the running sum l is not rescaled when the running max grows (the output is)"
  REPLACE "l[r][h] = l[r][h] * rescale[r][h] + sum;" "l[r][h] = l[r][h] + sum;")
course_known_bad(no_zero_fill
  WHY "the tile loads have no bounds check: rows past the last key are read, not zero-filled (NaN x 0 = NaN)"
  REPLACE "const bool inside = first + row < n_rows;" "const bool inside = true;")
course_known_bad(no_mask
  WHY "the scores are never masked: keys past a row's visible end (and past n_k, zero-filled) take part"
  REPLACE "if (!St::kTuned || k0 + kKeyTile > all_see) mask_scores(s, visible, k0, lane);" "")
course_known_bad(mask_skipped_too_often
  WHY "rung 5 skips the mask on every tile the block's last query sees whole, not its first: earlier causal rows see future keys"
  REPLACE "k0 + kKeyTile > all_see" "k0 + kKeyTile > walk_end")
course_known_bad(fully_masked_nan
  WHY "a row that has seen no key shifts by m = -inf: 2^(-inf + inf) is NaN"
  REPLACE "shift[r][h] = m_new == -INFINITY ? 0.0f : m_new;" "shift[r][h] = m_new;")
course_known_bad(walk_ends_early
  WHY "the walk stops where the block's first query stops seeing keys (causal): later queries lose keys"
  REPLACE "course::visible_keys(last_query, n_q" "course::visible_keys(q0, n_q")
course_known_bad(lse_log2
  WHY "lse is left in log2 units: m + log2 l, not (m + log2 l) ln 2"
  REPLACE "(m[r][h] + log2f(row_l)) * kLn2" "(m[r][h] + log2f(row_l))")
course_known_bad(swizzle_on_read_only
  WHY "the copies store the tile plain while ldmatrix reads it swizzled (rungs 2-4) or padded (rung 5)"
  REPLACE "course::copy16_async(tile + chunk_slot<D, L>(row, chunk)" "course::copy16_async(tile + row * (D / 8) + chunk")
course_known_bad(v_not_transposed
  WHY "V's fragments are loaded with ldmatrix, not ldmatrix.trans: each lane gets V's row where the mma wants its column"
  REPLACE "course::ldmatrix_x4_trans(b," "course::ldmatrix_x4(b,")
course_known_bad(p_fragment_order
  WHY "P's A fragment in the wrong order: registers 1 and 2 swapped (row g + 8 of keys 2t, 2t+1 is not register 2)"
  REPLACE "  a[1] = course::pack2<T>(p[2 * ks][2], p[2 * ks][3]);          // row g + 8\n  a[2] = course::pack2<T>(p[2 * ks + 1][0], p[2 * ks + 1][1]);"
          "  a[2] = course::pack2<T>(p[2 * ks][2], p[2 * ks][3]);          // row g + 8\n  a[1] = course::pack2<T>(p[2 * ks + 1][0], p[2 * ks + 1][1]);")
course_known_bad(prefetch_into_current_stage
  WHY "rung 3 prefetches the next keys into the stage being scored, not the other one"
  REPLACE "load_tile<kKeyTile, D, St::kLayout, St::kThreads>(k_tiles + next * kKeyTile * kChunks" "load_tile<kKeyTile, D, St::kLayout, St::kThreads>(k_tiles + stage * kKeyTile * kChunks")
course_known_bad(missing_barrier_after_wait
  WHY "no barrier between waiting for this tile's keys and reading them: a warp's wait covers only its own copies"
  REPLACE "    course::wait_copies<1>();  // q and this tile's keys are here (its values may not be)\n    if (St::kWgmma) course::fence_async_shared();  // ... and visible to the tensor cores\n    __syncthreads();\n"
          "    course::wait_copies<1>();  // q and this tile's keys are here (its values may not be)\n")
course_known_bad(rescale_skipped_for_all
  WHY "rung 5 skips the output's rescale when any lane kept all its rows' maxima, not only when every row of the warp did"
  REPLACE "if (tuned && !__any_sync(kFullWarp, max_moved)) return;" "if (tuned && __any_sync(kFullWarp, !max_moved)) return;")
course_known_bad(fragment_overwritten_ahead
  WHY "rung 5 loads the next step's K fragments into the buffer this step's mma read, not the other one"
  REPLACE "load_k_fragments<D, L>(b[next % 2], k_tile" "load_k_fragments<D, L>(b[step % 2], k_tile")
# Rung 6 runs only on compute capability 9.0 from a build for sm_90a: its mutant is caught
# there, and registered only for such builds (course_chapter's COURSE_SM90A_BUILD).
if(COURSE_SM90A_BUILD)
  course_known_bad(wgmma_first_group_queries
    WHY "rung 6's second warpgroup scores the first warpgroup's queries (the A descriptor's rows not offset by 64 per group)"
    REPLACE "score_tile_wgmma<T, D>(s, q_tile, k_tile, 64 * (warp / 4));" "score_tile_wgmma<T, D>(s, q_tile, k_tile, 0);")
endif()
