// WriteFileAtomically: replaces a file so that readers (other processes, a crash) see the old
// contents or the new ones, never a partial file.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace atp {

// Writes `bytes` to a temporary file beside `path` (unique per process), flushes it to disk
// and renames it over `path`. On failure the temporary file is removed and `path` is
// untouched; the error names the file and the reason.
Status WriteFileAtomically(const std::string& path, std::string_view bytes);

}  // namespace atp
