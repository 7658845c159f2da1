// What every chapter suite uses on top of doctest.
//
//   TEST_CASE("gpu: dot: lengths around the block size") {
//     COURSE_SKIP_WITHOUT_GPU();      // no GPU: prints "[course] SKIPPED: ...", ctest says Skipped
//     COURSE_SEEDED_RNG(rng);         // fresh data; the seed is printed with any failure
//     ...
//     COURSE_CHECK_CLOSE(course::compare(got, ref, course::tolerance::fp32, shape, "dot n=33"));
//   }
//
// Test names say where they run and whose code they check: "gpu: ..." and "cpu: ..."
// check code the learner writes (and must fail against the stubs); "gpu (given): ..."
// and "cpu (given): ..." check code the exercise ships complete. The build labels the
// cases gpu or cpu from these prefixes.
#pragma once

#include "course/compare.hpp"
#include "course/cuda_check.hpp"
#include "course/device_buffer.hpp"
#include "course/gpu.hpp"
#include "course/random.hpp"
#include "course/reference.hpp"

#include <doctest/doctest.h>

namespace course::testing {

// True when a GPU of at least sm_<min_major><min_minor> is there; otherwise prints
// "[course] SKIPPED: <reason>" (ctest's skip pattern) and returns false.
bool gpu_ready(int min_major = 7, int min_minor = 5);

}  // namespace course::testing

// COURSE_SKIP_WITHOUT_GPU() or, for a chapter that needs a newer GPU,
// COURSE_SKIP_WITHOUT_GPU(major, minor): the arguments of gpu_ready.
#define COURSE_SKIP_WITHOUT_GPU(...)                       \
  do {                                                     \
    if (!::course::testing::gpu_ready(__VA_ARGS__)) return; \
  } while (0)

#define COURSE_SEEDED_RNG(name)                          \
  ::course::Rng name(::course::pick_seed());             \
  INFO("random seed ", name.seed(), " (replay with COURSE_SEED=", name.seed(), ")")

#define COURSE_CHECK_CLOSE(report_expr)                 \
  do {                                                  \
    const ::course::CompareReport course_report_ = (report_expr); \
    CHECK_MESSAGE(course_report_.ok, course_report_.message);     \
  } while (0)
