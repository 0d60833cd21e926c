# cmake/cuda_emulator.cmake — compile kernels/cuda/ for the host CPU (cmake -DFM_CUDA_EMULATOR=ON).
#
# g++ cannot read two pieces of CUDA syntax, so each kernels/cuda/*.cu is copied into the build tree
# with them rewritten, and every static __shared__ declaration (one name each) followed by a call that
# lets the scheduler poison it per block; line for line (#line keeps errors pointing at the real file):
#   kernel<<<grid, block, shared, stream>>>(args)   ->  kernel | ::fm_emu::Launch{grid, block, shared, stream}(args)
#   extern __shared__ float name[];                 ->  float* name = ::fm_emu::dynamic_shared<float>();
#   __shared__ float tile[16][17];                  ->  the same, then ::fm_emu::register_static_shared(&tile, sizeof(tile));
# Everything else the kernels use comes from kernels/cuda_emulator/cuda_runtime.h, which shadows the
# toolkit's header. cuBLAS's GEMM is a reference loop; cuDNN is absent.
function(fm_add_cuda_emulator target)
  file(GLOB cu_sources CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/kernels/cuda/*.cu)
  set(out_dir ${CMAKE_BINARY_DIR}/cuda_emulated)
  set(translated)
  foreach(src ${cu_sources})
    get_filename_component(name ${src} NAME_WE)
    file(READ ${src} text)
    string(REPLACE "<<<" " | ::fm_emu::Launch{" text "${text}")
    string(REPLACE ">>>" "}" text "${text}")
    string(REGEX REPLACE "extern __shared__ ([A-Za-z0-9_]+) ([A-Za-z0-9_]+)\\[\\];"
                         "\\1* \\2 = ::fm_emu::dynamic_shared<\\1>();" text "${text}")
    # One name per static __shared__ declaration (`__shared__ float a[4][8];`): register it for poisoning.
    string(REGEX REPLACE "__shared__ ([^;,=]*[ >])([A-Za-z_][A-Za-z0-9_]*)((\\[[^];]*\\])*);"
                         "__shared__ \\1\\2\\3; ::fm_emu::register_static_shared(&\\2, sizeof(\\2));"
                         text "${text}")
    # Written only when changed, so reconfiguring does not rebuild everything.
    file(CONFIGURE OUTPUT ${out_dir}/${name}.cpp CONTENT "#line 1 \"${src}\"\n${text}" @ONLY)
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${src})
    list(APPEND translated ${out_dir}/${name}.cpp)
  endforeach()
  # `#pragma unroll` is nvcc's; the kernels' host-side helpers are not all used by every file.
  # UBSan stands in for part of compute-sanitizer: indexing a fixed-size array (a __shared__ tile)
  # out of bounds, a float4 access through a pointer that is not 16-byte aligned (a GPU faults on
  # it), integer overflow in index arithmetic. Any finding stops the program with file and line.
  set(sanitize -fsanitize=undefined -fno-sanitize-recover=undefined)
  set_source_files_properties(${translated} PROPERTIES COMPILE_OPTIONS
                              "-Wno-unknown-pragmas;-Wno-unused-function;${sanitize}")
  target_link_options(${target} PUBLIC -fsanitize=undefined)
  set(emu ${CMAKE_SOURCE_DIR}/kernels/cuda_emulator)
  target_sources(${target} PRIVATE ${translated}
                 ${CMAKE_SOURCE_DIR}/kernels/cuda/runtime.cpp
                 ${CMAKE_SOURCE_DIR}/kernels/cuda/gemm_cublas.cpp
                 ${CMAKE_SOURCE_DIR}/kernels/cuda/graph.cpp
                 ${emu}/scheduler.cpp ${emu}/runtime_api.cpp ${emu}/graph_capture.cpp ${emu}/launch_log.cpp
                 ${emu}/cublas_reference.cpp
                 ${emu}/cudnn_unavailable.cpp)
  target_include_directories(${target} BEFORE PUBLIC ${emu})
  target_compile_definitions(${target} PUBLIC FM_WITH_CUDA=1 FM_CUDA_EMULATOR=1)
endfunction()
