# Which GPUs to build for, chosen before project() enables CUDA.
#
# The user's choice always wins: -DCMAKE_CUDA_ARCHITECTURES=... or the CUDAARCHS
# environment variable. Otherwise build for the GPUs that nvidia-smi sees, and when
# it sees none (a build machine, CI, a container without the driver) for an explicit
# list rather than `native`, which without a GPU silently builds sm_75 only.
#   75: Turing (T4, Colab's free GPU)   80: Ampere, also runs on 8.6 / 8.9
#   90: Hopper, plus PTX so newer GPUs can JIT it
set(COURSE_FALLBACK_CUDA_ARCHITECTURES "75;80;90" CACHE STRING
    "GPU architectures to build for when no GPU is visible at configure time")

function(course_default_cuda_architectures)
  if(DEFINED CMAKE_CUDA_ARCHITECTURES OR DEFINED ENV{CUDAARCHS})
    return()
  endif()
  find_program(NVIDIA_SMI nvidia-smi)
  set(archs "")
  if(NVIDIA_SMI)
    execute_process(COMMAND ${NVIDIA_SMI} --query-gpu=compute_cap --format=csv,noheader
                    OUTPUT_VARIABLE caps RESULT_VARIABLE rc ERROR_QUIET
                    OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(rc EQUAL 0)
      string(REPLACE "\n" ";" caps "${caps}")
      foreach(cap IN LISTS caps)
        string(REPLACE "." "" cap "${cap}")
        string(STRIP "${cap}" cap)
        if(cap MATCHES "^[0-9]+$")
          list(APPEND archs ${cap})
        endif()
      endforeach()
      list(REMOVE_DUPLICATES archs)
    endif()
  endif()
  if(archs)
    message(STATUS "CUDA architectures: ${archs} (the GPUs nvidia-smi sees)")
  else()
    set(archs ${COURSE_FALLBACK_CUDA_ARCHITECTURES})
    message(STATUS "CUDA architectures: ${archs} (no GPU visible; set CMAKE_CUDA_ARCHITECTURES to choose)")
  endif()
  set(CMAKE_CUDA_ARCHITECTURES "${archs}" CACHE STRING "GPU architectures to build for")
endfunction()
