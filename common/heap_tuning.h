// How a computing process's allocator treats the large blocks tensors live in. glibc's malloc
// serves every block over its mmap threshold (at most 32 MiB) with a fresh mmap() and unmaps
// it on free(): each such tensor faults in and zeroes all of its pages again. A ViT-B/16
// image tower over 32 images allocates and frees a 77 MiB MLP activation four times per
// layer; on a 2-core AMD EPYC the batch took 8.44 s so, and 7.0-7.4 s with those blocks kept
// in the heap (docs/compute.md). libtorch's CPU allocator is plain posix_memalign, so the
// setting applies to every tensor.
#pragma once

#include <string>

namespace atp {

// Serves large blocks from the heap (M_MMAP_MAX = 0) and returns freed memory at the heap's
// top to the system only beyond 2 GiB (M_TRIM_THRESHOLD), so the next tensor of the same
// size reuses pages already mapped. Left alone, and said so, when the user tunes malloc
// (GLIBC_TUNABLES naming glibc.malloc, MALLOC_MMAP_MAX_, MALLOC_TRIM_THRESHOLD_ or
// MALLOC_MMAP_THRESHOLD_) or sets ATP_MALLOC=system. Returns a description for the run's
// provenance: "large blocks kept in the heap (trim above 2 GiB)" or why it was left alone.
std::string TuneHeapForTensors();

// What TuneHeapForTensors decided in this process ("" before it ran).
std::string HeapTuning();

}  // namespace atp
