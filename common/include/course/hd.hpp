// COURSE_HD marks a function that runs on both sides (__host__ __device__) in a header
// that plain C++ (the test suites) includes too: there it expands to nothing.
#pragma once

#ifdef __CUDACC__
#define COURSE_HD __host__ __device__
#else
#define COURSE_HD
#endif
