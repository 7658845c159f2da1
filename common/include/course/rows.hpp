// Host-side helpers of the row-wise softmax launches (chapters 02 and 03).
#pragma once

#include <stdexcept>
#include <string>

namespace course {

// Throws std::invalid_argument naming `what` unless rows >= 1 and cols >= 1.
inline void require_rows_cols(int rows, int cols, const char* what) {
  if (rows < 1 || cols < 1) throw std::invalid_argument(std::string(what) + ": rows and cols must be at least 1");
}

// Threads of a block that loops over a row of `cols` values: a small block for short rows
// (threads would idle), the largest for long ones.
inline int row_block_threads(int cols) { return cols <= 1024 ? 128 : cols <= 8192 ? 256 : 1024; }

}  // namespace course
