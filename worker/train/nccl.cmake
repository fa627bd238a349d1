# NCCL gradient averaging (NcclGradientSync), included by worker/train/CMakeLists.txt after
# atp_train is defined. ATP_WITH_NCCL (top-level cache variable): auto builds it when a CUDA
# libtorch and NCCL are both found, on insists (and says why it cannot), off never builds it.
# Either way it writes generated/worker/train/nccl_config.h with ATP_HAVE_NCCL 0 or 1.
string(TOLOWER "${ATP_WITH_NCCL}" ATP_NCCL_MODE)
if(NOT ATP_NCCL_MODE MATCHES "^(auto|on|off)$")
  message(FATAL_ERROR "ATP_WITH_NCCL is '${ATP_WITH_NCCL}'; use auto, on or off")
endif()

set(ATP_HAVE_NCCL 0)
if(NOT ATP_NCCL_MODE STREQUAL "off")
  # A CUDA libtorch (the PyTorch wheel's) defines torch_cuda or sets TORCH_CUDA_LIBRARIES /
  # CUDA_FOUND in TorchConfig; Debian's CPU build sets none of them.
  if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES OR CUDA_FOUND)
    set(ATP_TORCH_HAS_CUDA TRUE)
  else()
    set(ATP_TORCH_HAS_CUDA FALSE)
  endif()

  # NCCL: NCCL_ROOT, the wheel's own copy (site-packages/nvidia/nccl next to torch), the
  # CUDA toolkit the torch config found, every /usr/local/cuda*, then the system.
  set(ATP_NCCL_HINTS "")
  if(DEFINED ENV{NCCL_ROOT})
    list(APPEND ATP_NCCL_HINTS "$ENV{NCCL_ROOT}")
  endif()
  if(NCCL_ROOT)
    list(APPEND ATP_NCCL_HINTS "${NCCL_ROOT}")
  endif()
  if(Torch_DIR)
    get_filename_component(ATP_TORCH_SITE_PACKAGES "${Torch_DIR}/../../../.." ABSOLUTE)
    list(APPEND ATP_NCCL_HINTS "${ATP_TORCH_SITE_PACKAGES}/nvidia/nccl")
  endif()
  if(CUDA_TOOLKIT_ROOT_DIR)
    list(APPEND ATP_NCCL_HINTS "${CUDA_TOOLKIT_ROOT_DIR}")
  endif()
  if(CUDAToolkit_LIBRARY_ROOT)
    list(APPEND ATP_NCCL_HINTS "${CUDAToolkit_LIBRARY_ROOT}")
  endif()
  file(GLOB ATP_CUDA_DIRS LIST_DIRECTORIES true /usr/local/cuda /usr/local/cuda-*)
  list(APPEND ATP_NCCL_HINTS ${ATP_CUDA_DIRS})
  find_path(ATP_NCCL_INCLUDE_DIR nccl.h HINTS ${ATP_NCCL_HINTS} PATH_SUFFIXES include PATHS /usr/include)
  find_library(ATP_NCCL_LIBRARY NAMES nccl libnccl.so.2 HINTS ${ATP_NCCL_HINTS}
               PATH_SUFFIXES lib lib64 lib/x86_64-linux-gnu PATHS /usr/lib/x86_64-linux-gnu)

  if(ATP_TORCH_HAS_CUDA AND ATP_NCCL_INCLUDE_DIR AND ATP_NCCL_LIBRARY)
    set(ATP_HAVE_NCCL 1)
    target_sources(atp_train PRIVATE ${CMAKE_CURRENT_LIST_DIR}/nccl_gradient_sync.cc)
    target_include_directories(atp_train PRIVATE ${ATP_NCCL_INCLUDE_DIR})
    target_link_libraries(atp_train PRIVATE ${ATP_NCCL_LIBRARY})
    message(STATUS "NCCL gradient sync: on (${ATP_NCCL_LIBRARY})")
  else()
    if(NOT ATP_TORCH_HAS_CUDA)
      string(CONCAT ATP_NCCL_WHY "libtorch has no CUDA (no torch_cuda target, TORCH_CUDA_LIBRARIES or CUDA_FOUND); "
             "point CMAKE_PREFIX_PATH at a CUDA build of libtorch")
    else()
      string(CONCAT ATP_NCCL_WHY "nccl.h or libnccl not found (include: ${ATP_NCCL_INCLUDE_DIR}, "
             "library: ${ATP_NCCL_LIBRARY}); set NCCL_ROOT to the NCCL install")
    endif()
    if(ATP_NCCL_MODE STREQUAL "on")
      message(FATAL_ERROR "ATP_WITH_NCCL=on, but NCCL gradient sync cannot be built: ${ATP_NCCL_WHY}")
    endif()
    message(STATUS "NCCL gradient sync: off (${ATP_NCCL_WHY})")
  endif()
else()
  message(STATUS "NCCL gradient sync: off (ATP_WITH_NCCL=off)")
endif()

configure_file(${CMAKE_CURRENT_LIST_DIR}/nccl_config.h.in ${CMAKE_BINARY_DIR}/generated/worker/train/nccl_config.h)
