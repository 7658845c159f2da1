# doctest: the system's package first (Debian/Ubuntu: doctest-dev), else fetched.
find_package(doctest 2.4 QUIET)
if(doctest_FOUND)
  message(STATUS "doctest: ${doctest_VERSION} (system)")
  include(doctest)   # doctest_discover_tests(), shipped with the package
else()
  message(STATUS "doctest: not installed, fetching v2.4.11 (needs network; or install doctest-dev)")
  include(FetchContent)
  FetchContent_Declare(doctest
    GIT_REPOSITORY https://github.com/doctest/doctest.git
    GIT_TAG        v2.4.11
    GIT_SHALLOW    TRUE)
  set(DOCTEST_NO_INSTALL ON CACHE BOOL "" FORCE)
  FetchContent_MakeAvailable(doctest)
  include(${doctest_SOURCE_DIR}/scripts/cmake/doctest.cmake)
endif()
