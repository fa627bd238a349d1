# Precompiled libtorch headers. <torch/torch.h> is ~10 s of parsing in every translation unit
# that includes it; precompiled once into atp_torch_pch (a one-file object library) and reused
# by every libtorch target, each of those units loads it instead. Reuse needs the same compile
# flags; a unit whose flags differ gets a -Winvalid-pch warning and parses the header itself.
# ccache caches precompiled headers and their users only with sloppiness pch_defines and
# time_macros, and its preprocessor mode needs -fpch-preprocess (ccache manual, "Precompiled
# headers"); the launcher sets the first, atp_precompile_torch the second.
option(ATP_PRECOMPILED_HEADERS "Precompile libtorch's headers once for every libtorch target" ON)
# Unity build: loading the precompiled header alone costs a unit about 3.5 CPU-seconds (a
# 10-line unit took 3.8), so a libtorch target compiles its sources four at a time, as one
# unit each. The five worker libraries took 268 CPU-seconds that way against 434 one by one.
# Units of one target then share their anonymous namespaces: a helper two of them define
# belongs in a header (clip_model.h's ShapeString).
option(ATP_UNITY_BUILD "Compile a libtorch target's sources four at a time, as one unit each" ON)

function(atp_precompile_torch target)
  if(NOT ATP_PRECOMPILED_HEADERS OR NOT ATP_HAVE_TORCH)
    return()
  endif()
  if(NOT TARGET atp_torch_pch)
    file(WRITE ${CMAKE_BINARY_DIR}/generated/torch_pch.cc "// The unit atp_torch_pch compiles its header with.\n")
    add_library(atp_torch_pch OBJECT ${CMAKE_BINARY_DIR}/generated/torch_pch.cc)
    target_link_libraries(atp_torch_pch PRIVATE ${TORCH_LIBRARIES})
    target_precompile_headers(atp_torch_pch PRIVATE <torch/torch.h>)
    target_compile_options(atp_torch_pch PRIVATE -fpch-preprocess -Winvalid-pch)
  endif()
  target_precompile_headers(${target} REUSE_FROM atp_torch_pch)
  target_compile_options(${target} PRIVATE -fpch-preprocess -Winvalid-pch)
  if(ATP_UNITY_BUILD)
    set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE 4)
  endif()
endfunction()
