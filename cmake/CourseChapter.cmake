# course_chapter(NN_name KERNELS a.cu ... TESTS test_x.cpp ... [USES MM_other ...] [SM90A])
#
# Defines one chapter, laid out as
#   chapters/NN_name/   the lesson, the chapter's header (its host-side API) and main.cu
#   exercises/NN_name/  the learner's kernels (KERNELS), the doctest suite (TESTS), hints
#   solutions/NN_name/  the kept kernels, same file names as the exercises
# and creates
#   chNN_exercises, chNN_solutions   the kernels of each track, as static libraries
#   chNN_name                        the chapter executable (bin/), linking COURSE_TRACK's kernels
# Chapters named in USES are ones this chapter builds on or compares with: both tracks'
# kernel libraries link COURSE_TRACK's kernels of those chapters. SM90A: the kernels use
# Hopper's arch-specific instructions (wgmma); see course_sm90a.
#   test_chNN                        the suite, linking COURSE_TRACK's kernels
#   test_chNN_stubs                  (solutions track) the same suite linking the exercise stubs
# and registers in ctest, one test per doctest case, with labels:
#   NN + cpu|gpu     the suite        NN.gpu: ... / NN.cpu: ...
#   NN + stubs       every case of the learner's code run against the stubs, which must
#                    FAIL (WILL_FAIL); "... (given): ..." cases check shipped code instead
#   NN + sanitize    the suite's GPU cases under compute-sanitizer, one test per tool; cases
#                    whose name ends in "(long)" are left out (too slow under instrumentation)
#   NN + tour        the chapter executable
#   NN + known-bad   (solutions track) the suite against each deliberately wrong kernel of
#                    exercises/NN_name/known_bad.cmake, which it must catch (WILL_FAIL)
# A GPU case that finds no usable GPU prints "[course] SKIPPED: <reason>", which ctest
# reports as skipped (SKIP_REGULAR_EXPRESSION), never as passed.

# (No backslashes: the pattern is written into generated ctest files; a lone ']' is literal.)
set(COURSE_SKIP_REGEX "course] SKIPPED")

find_program(COURSE_COMPUTE_SANITIZER compute-sanitizer
  HINTS ${CUDAToolkit_BIN_DIR} ${CUDAToolkit_BIN_DIR}/../compute-sanitizer
  DOC "compute-sanitizer, for the `sanitize` test label")

function(course_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra>
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra --extended-lambda -lineinfo>)
endfunction()

# Writes a ctest include file that labels the tests doctest_discover_tests found for
# `target` (ctest reads it after the discovered list; doctest's own PROPERTIES cannot
# carry a list of labels).
function(_course_label_tests target chapter list_var extra_labels)
  set(file ${CMAKE_CURRENT_BINARY_DIR}/${target}_labels.cmake)
  file(WRITE ${file} "
foreach(t IN LISTS ${list_var})
  if(t MATCHES \"gpu\")
    set_tests_properties(\"\${t}\" PROPERTIES LABELS \"${chapter};gpu${extra_labels}\"
      RESOURCE_LOCK gpu TIMEOUT 600 SKIP_REGULAR_EXPRESSION \"${COURSE_SKIP_REGEX}\"${ARGN})
  else()
    set_tests_properties(\"\${t}\" PROPERTIES LABELS \"${chapter};cpu${extra_labels}\" TIMEOUT 120${ARGN})
  endif()
endforeach()
")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${file})
endfunction()

file(WRITE ${CMAKE_BINARY_DIR}/known_bad.txt "")  # what each known-bad kernel models

# `progress` (exercises track): where the learner stands, chapter by chapter.
if(COURSE_TRACK STREQUAL "exercises")
  add_custom_target(progress
    COMMAND ${CMAKE_COMMAND} -DBUILD=${CMAKE_BINARY_DIR} -DSOURCE=${PROJECT_SOURCE_DIR}
            "-DCHAPTERS=$<JOIN:$<TARGET_PROPERTY:progress,COURSE_CHAPTERS>,,>" -P ${CMAKE_CURRENT_LIST_DIR}/progress.cmake
    USES_TERMINAL
    COMMENT "Your progress, chapter by chapter")
endif()

# Arch-specific features (wgmma, sm_90a) run only on compute capability 9.0 and need code
# built for "90a", which newer GPUs cannot run. A build that names 90 (90, 90-real or 90a;
# not 90-virtual alone: the H100, H200) gives the kernels of chapters marked SM90A sm_90a
# machine code instead of sm_90's, plus sm_90's PTX for newer GPUs to compile, and defines
# COURSE_SM90A in them: the chapter then offers what needs it.
if("${CMAKE_CUDA_ARCHITECTURES}" MATCHES "(^|;)90a?(-real)?(;|$)")
  set(COURSE_BUILDS_SM90 TRUE)
else()
  set(COURSE_BUILDS_SM90 FALSE)
endif()

function(course_sm90a target)
  set(archs "")
  foreach(arch IN LISTS CMAKE_CUDA_ARCHITECTURES)
    if(arch MATCHES "^90a?(-real)?$")
      list(APPEND archs 90a-real)
      if(NOT arch MATCHES "-real$")
        list(APPEND archs 90-virtual)
      endif()
    else()
      list(APPEND archs ${arch})
    endif()
  endforeach()
  set_property(TARGET ${target} PROPERTY CUDA_ARCHITECTURES ${archs})
  target_compile_definitions(${target} PRIVATE COURSE_SM90A)
endfunction()

function(course_chapter dir)
  cmake_parse_arguments(PARSE_ARGV 1 arg "SM90A" "" "KERNELS;TESTS;USES")
  string(SUBSTRING "${dir}" 0 2 num)
  # This chapter's kernels carry sm_90a code (also read by its known_bad.cmake).
  set(COURSE_SM90A_BUILD FALSE)
  if(arg_SM90A AND COURSE_BUILDS_SM90)
    set(COURSE_SM90A_BUILD TRUE)
  endif()
  if(TARGET progress)
    set_property(TARGET progress APPEND PROPERTY COURSE_CHAPTERS ${dir})
  endif()
  set(chapter_dir  ${PROJECT_SOURCE_DIR}/chapters/${dir})
  set(exercise_dir ${PROJECT_SOURCE_DIR}/exercises/${dir})
  set(solution_dir ${PROJECT_SOURCE_DIR}/solutions/${dir})

  # The kernels behind the chapter's header, one library per track. The stubs are
  # built in both tracks: they are the learner's workspace, and the solutions track
  # checks that the suite rejects them.
  set(tracks exercises)
  if(COURSE_TRACK STREQUAL "solutions")
    list(APPEND tracks solutions)
  endif()
  foreach(track IN LISTS tracks)
    set(lib ch${num}_${track})
    list(TRANSFORM arg_KERNELS PREPEND ${PROJECT_SOURCE_DIR}/${track}/${dir}/ OUTPUT_VARIABLE srcs)
    add_library(${lib} STATIC ${srcs})
    target_include_directories(${lib} PUBLIC ${chapter_dir})
    target_link_libraries(${lib} PUBLIC course::common)
    # A chapter built on earlier ones calls their kernels: the learner's own in the
    # exercises track, the kept ones in the solutions track (so the stubs of this
    # chapter are checked on top of working earlier chapters).
    foreach(used IN LISTS arg_USES)
      string(SUBSTRING "${used}" 0 2 used_num)
      target_link_libraries(${lib} PUBLIC ch${used_num}_${COURSE_TRACK})
    endforeach()
    course_warnings(${lib})
    if(COURSE_SM90A_BUILD)
      course_sm90a(${lib})
    endif()
    if(track STREQUAL "exercises")
      # A stub declares the names its TODO will use (the index math, the shared tiles)
      # and leaves them unused until the learner writes the kernel: no noise about that.
      target_compile_options(${lib} PRIVATE
        $<$<COMPILE_LANGUAGE:CXX>:-Wno-unused-parameter>
        $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wno-unused-parameter,-Wno-unused-variable
                                   -diag-suppress=177>)
    endif()
  endforeach()
  set(kernels ch${num}_${COURSE_TRACK})

  # The chapter executable: shows, checks and times what the chapter teaches.
  set(exe ch${dir})
  add_executable(${exe} ${chapter_dir}/main.cu)
  target_link_libraries(${exe} PRIVATE ${kernels} course::common)
  course_warnings(${exe})
  add_test(NAME ${num}.tour COMMAND ${exe})
  set_tests_properties(${num}.tour PROPERTIES LABELS "tour;${num}" RESOURCE_LOCK gpu
    SKIP_REGULAR_EXPRESSION "${COURSE_SKIP_REGEX}" TIMEOUT 900)

  # The suite's cases, compiled once and linked against each set of kernels below.
  list(TRANSFORM arg_TESTS PREPEND ${exercise_dir}/ OUTPUT_VARIABLE tests)
  set(cases test_ch${num}_cases)
  add_library(${cases} OBJECT ${tests})
  target_include_directories(${cases} PRIVATE ${chapter_dir})
  target_link_libraries(${cases} PRIVATE course::testing)
  course_warnings(${cases})

  # The suite, against this track's kernels.
  set(suite test_ch${num})
  add_executable(${suite})
  target_link_libraries(${suite} PRIVATE ${cases} ${kernels} course::testing)
  if(TARGET progress)
    add_dependencies(progress ${suite})
  endif()
  doctest_discover_tests(${suite} TEST_PREFIX "${num}." TEST_LIST ${suite}_list)
  _course_label_tests(${suite} ${num} ${suite}_list "")

  # The same suite against the shipped stubs: every case that checks the learner's
  # code ("gpu: ..." and "cpu: ...", not "... (given): ...") must fail, or the suite is vacuous.
  if(COURSE_TRACK STREQUAL "solutions")
    set(stubs test_ch${num}_stubs)
    add_executable(${stubs})
    target_link_libraries(${stubs} PRIVATE ${cases} ch${num}_exercises course::testing)
    doctest_discover_tests(${stubs} TEST_SPEC "gpu:*,cpu:*" TEST_PREFIX "${num}.stubs."
                           TEST_LIST ${stubs}_list)
    _course_label_tests(${stubs} ${num} ${stubs}_list ";stubs" " WILL_FAIL TRUE")

    # Deliberately wrong kernels, which the suite must catch.
    if(EXISTS ${exercise_dir}/known_bad.cmake)
      set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${exercise_dir}/known_bad.cmake)
      include(${exercise_dir}/known_bad.cmake)
    endif()
  endif()

  # The suite's GPU cases under each compute-sanitizer tool.
  foreach(tool memcheck racecheck synccheck initcheck)
    set(name ${num}.sanitize.${tool})
    if(COURSE_COMPUTE_SANITIZER)
      add_test(NAME ${name} COMMAND ${COURSE_COMPUTE_SANITIZER} --tool ${tool}
               --error-exitcode 1 $<TARGET_FILE:${suite}> --test-case=gpu* "--test-case-exclude=*(long)")
    else()
      add_test(NAME ${name} COMMAND ${CMAKE_COMMAND} -E echo
               "[course] SKIPPED: compute-sanitizer not found")
    endif()
    # No RESOURCE_LOCK: nothing is timed under a sanitizer, so the tools may share the GPU.
    set_tests_properties(${name} PROPERTIES LABELS "sanitize;${num}"
      TIMEOUT 1800 SKIP_REGULAR_EXPRESSION "${COURSE_SKIP_REGEX}")
  endforeach()
endfunction()

# course_known_bad(NAME WHY "what the bug models" REPLACE "exact text" "replacement" [REPLACE ...])
#
# Called from exercises/NN_name/known_bad.cmake, inside course_chapter(): a deliberately
# wrong version of the chapter's kernels, made from the solution by exact text
# replacements (a mutation, not a copy: it follows the solution as it changes, and
# configuring fails if a replaced text is no longer there). The chapter's suite, run
# against it, must fail: ctest test NN.known-bad.NAME, labels known-bad and NN, WILL_FAIL.
# course_known_bad(NAME WHY "what the bug models" REPLACE "from" "to" ... [TOOL racecheck CASES "pattern"])
# The solution with each "from" replaced by "to"; the suite must fail on it. A bug that
# only sometimes changes the result (a race) is given TOOL and CASES: the cases matching
# CASES then run under that compute-sanitizer tool, which must report it.
function(course_known_bad name)
  cmake_parse_arguments(PARSE_ARGV 1 bad "" "WHY;TOOL;CASES" "REPLACE")
  list(LENGTH bad_REPLACE n_args)
  math(EXPR n_pairs "${n_args} / 2")
  math(EXPR last "${n_pairs} - 1")
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/known_bad/${dir}/${name})
  set(applied "")
  set(srcs "")
  foreach(kernel IN LISTS arg_KERNELS)
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${solution_dir}/${kernel})
    file(READ ${solution_dir}/${kernel} text)
    foreach(i RANGE ${last})
      math(EXPR from_index "2 * ${i}")
      math(EXPR to_index "2 * ${i} + 1")
      list(GET bad_REPLACE ${from_index} from)
      list(GET bad_REPLACE ${to_index} to)
      string(FIND "${text}" "${from}" at)
      if(NOT at EQUAL -1)
        string(REPLACE "${from}" "${to}" text "${text}")
        list(APPEND applied ${i})
      endif()
    endforeach()
    file(CONFIGURE OUTPUT ${out_dir}/${kernel} CONTENT "${text}" @ONLY)
    list(APPEND srcs ${out_dir}/${kernel})
  endforeach()
  foreach(i RANGE ${last})
    if(NOT i IN_LIST applied)
      math(EXPR from_index "2 * ${i}")
      list(GET bad_REPLACE ${from_index} from)
      message(FATAL_ERROR "known-bad kernel '${name}' of chapter ${dir}: the text\n${from}\n"
              "is not in solutions/${dir}; update exercises/${dir}/known_bad.cmake")
    endif()
  endforeach()

  set(lib ch${num}_bad_${name})
  add_library(${lib} STATIC ${srcs})
  target_include_directories(${lib} PUBLIC ${chapter_dir})
  target_link_libraries(${lib} PUBLIC course::common)
  foreach(used IN LISTS arg_USES)
    string(SUBSTRING "${used}" 0 2 used_num)
    target_link_libraries(${lib} PUBLIC ch${used_num}_solutions)
  endforeach()
  target_compile_options(${lib} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-w>)  # a mutant may leave names unused
  if(COURSE_SM90A_BUILD)
    course_sm90a(${lib})
  endif()
  set(exe test_ch${num}_bad_${name})
  add_executable(${exe})
  target_link_libraries(${exe} PRIVATE test_ch${num}_cases ${lib} course::testing)
  # Only the cases that check the learner's code: shipped code is not mutated.
  if(bad_TOOL AND COURSE_COMPUTE_SANITIZER)
    add_test(NAME ${num}.known-bad.${name} COMMAND ${COURSE_COMPUTE_SANITIZER} --tool ${bad_TOOL}
             --error-exitcode 1 $<TARGET_FILE:${exe}> "--test-case=${bad_CASES}")
  elseif(bad_TOOL)
    add_test(NAME ${num}.known-bad.${name} COMMAND ${CMAKE_COMMAND} -E echo
             "[course] SKIPPED: compute-sanitizer not found (needed to catch ${name})")
  else()
    add_test(NAME ${num}.known-bad.${name} COMMAND ${exe} --test-case=gpu:*,cpu:*)
  endif()
  set_tests_properties(${num}.known-bad.${name} PROPERTIES LABELS "known-bad;${num}" WILL_FAIL TRUE
    RESOURCE_LOCK gpu TIMEOUT 600 SKIP_REGULAR_EXPRESSION "${COURSE_SKIP_REGEX}")
  file(APPEND ${CMAKE_BINARY_DIR}/known_bad.txt "${num}.known-bad.${name}: ${bad_WHY}\n")
endfunction()
