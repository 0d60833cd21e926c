# cmake/host_isa.cmake — how host (.cpp) code is compiled for the CPU, chosen so that no supported
# compiler/CPU pair produces wrong code (docs/results.md, "Portable builds").
#
#   FM_HOST_ISA=auto (default)  x86-64-v3 (AVX2 + FMA) when the build machine's CPU has it, else the
#                               x86-64 baseline; on other architectures the compiler's default
#   FM_HOST_ISA=native          -march=native (also FM_NATIVE=ON): every feature of this CPU, binaries
#                               that may not run on another one
#   FM_HOST_ISA=<level>         any -march value, e.g. x86-64, x86-64-v2, x86-64-v4
#
# Whatever is chosen, a known GCC 12 miscompile (cmake/host_checks/slp_struct_store_caller.cpp) is
# compiled and run with exactly those flags. If the compiler gets it wrong, the check is repeated with
# -fno-tree-slp-vectorize (the pass at fault) and that flag is added; if it is still wrong, configuring
# stops with a message saying which flags to change.
#
# Sets FM_HOST_FLAGS (a list) for the caller to add to C++ compiles, and FM_AVX512_KERNEL_FLAGS: the
# flags of the AVX-512 copies of the hottest loops (kernels/cpu/*_avx512.cpp, chosen at run time by
# kernels/cpu/cpu_isa.cpp), empty when they are not built (FM_AVX512_KERNELS=OFF, not x86-64).

option(FM_NATIVE "Tune host code for this CPU (-march=native); the default is a portable level" OFF)
set(FM_HOST_ISA "auto" CACHE STRING "Host ISA: auto, native, or a -march value such as x86-64-v3")

set(_fm_checks_dir ${CMAKE_CURRENT_LIST_DIR}/host_checks)
set(_fm_is_x86_64 OFF)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(_fm_is_x86_64 ON)
endif()

if(FM_NATIVE)
  set(_fm_isa native)
elseif(FM_HOST_ISA STREQUAL "auto")
  if(_fm_is_x86_64 AND NOT CMAKE_CROSSCOMPILING)
    try_run(_fm_level_run _fm_level_compile ${CMAKE_BINARY_DIR}/fm_host_checks/cpu_level
            ${_fm_checks_dir}/cpu_level.cpp RUN_OUTPUT_VARIABLE _fm_level)
    if(_fm_level_compile AND _fm_level_run EQUAL 0)
      set(_fm_isa ${_fm_level})
    else()
      set(_fm_isa x86-64)
    endif()
  else()
    set(_fm_isa "")
  endif()
else()
  set(_fm_isa ${FM_HOST_ISA})
endif()

set(FM_HOST_FLAGS "")
if(_fm_isa)
  list(APPEND FM_HOST_FLAGS -march=${_fm_isa})
endif()

# The miscompile check, with the optimisation flags of this build type and every host flag.
string(TOUPPER "${CMAKE_BUILD_TYPE}" _fm_build_type)
separate_arguments(_fm_opt_flags UNIX_COMMAND "${CMAKE_CXX_FLAGS} ${CMAKE_CXX_FLAGS_${_fm_build_type}}")
function(_fm_check_host_flags result_var output_var)
  set(_flags ${_fm_opt_flags} ${ARGN})
  string(MD5 _tag "${_flags}")
  try_run(_run _compile ${CMAKE_BINARY_DIR}/fm_host_checks/slp_${_tag}
          SOURCES ${_fm_checks_dir}/slp_struct_store_caller.cpp ${_fm_checks_dir}/slp_struct_store_main.cpp
          COMPILE_DEFINITIONS ${_flags}
          CMAKE_FLAGS -DINCLUDE_DIRECTORIES=${_fm_checks_dir}
          COMPILE_OUTPUT_VARIABLE _compile_out RUN_OUTPUT_VARIABLE _run_out)
  if(NOT _compile)
    message(FATAL_ERROR "flowmatch: the host-code check does not compile with '${_flags}':\n${_compile_out}")
  endif()
  if(_run EQUAL 0)
    set(${result_var} ON PARENT_SCOPE)
  else()
    set(${result_var} OFF PARENT_SCOPE)
  endif()
  set(${output_var} "${_run_out}" PARENT_SCOPE)
endfunction()

if(NOT CMAKE_CROSSCOMPILING)
  _fm_check_host_flags(_fm_flags_ok _fm_bad_values ${FM_HOST_FLAGS} -fno-trapping-math)
  if(NOT _fm_flags_ok)
    _fm_check_host_flags(_fm_flags_ok_no_slp _fm_bad_values2 ${FM_HOST_FLAGS} -fno-trapping-math -fno-tree-slp-vectorize)
    if(_fm_flags_ok_no_slp)
      message(WARNING "flowmatch: ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION} miscompiles a struct "
                      "store with '${FM_HOST_FLAGS}' (cmake/host_checks: ${_fm_bad_values}); adding "
                      "-fno-tree-slp-vectorize. The portable default (-DFM_NATIVE=OFF -DFM_HOST_ISA=auto) avoids this.")
      list(APPEND FM_HOST_FLAGS -fno-tree-slp-vectorize)
    else()
      message(FATAL_ERROR "flowmatch: ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION} miscompiles a "
                          "struct store with '${FM_HOST_FLAGS}' even without the SLP vectoriser "
                          "(cmake/host_checks: ${_fm_bad_values2}); configure with -DFM_HOST_ISA=x86-64 "
                          "or another compiler")
    endif()
  endif()
endif()
message(STATUS "flowmatch: host code flags: ${FM_HOST_FLAGS} (FM_HOST_ISA=${FM_HOST_ISA}, FM_NATIVE=${FM_NATIVE})")

# The AVX-512 copies: -march=x86-64-v4, checked against the same miscompile. Where the check cannot
# run (the build machine has no AVX-512: the check dies of an illegal instruction) or fails, the
# copies are built without the SLP vectoriser, which is always safe; the loop vectoriser, which
# does the work in them, stays on.
option(FM_AVX512_KERNELS "Also build AVX-512 copies of the hottest CPU loops, used when the CPU has AVX-512" ON)
set(FM_AVX512_KERNEL_FLAGS "")
if(FM_AVX512_KERNELS AND _fm_is_x86_64 AND NOT CMAKE_CROSSCOMPILING)
  _fm_check_host_flags(_fm_avx512_ok _fm_avx512_values -march=x86-64-v4 -fno-trapping-math)
  if(_fm_avx512_ok)
    set(FM_AVX512_KERNEL_FLAGS -march=x86-64-v4)
  else()
    set(FM_AVX512_KERNEL_FLAGS -march=x86-64-v4 -fno-tree-slp-vectorize)
  endif()
  message(STATUS "flowmatch: AVX-512 kernel copies built with ${FM_AVX512_KERNEL_FLAGS}")
endif()
