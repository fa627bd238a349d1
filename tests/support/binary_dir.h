// Where the tests find the built commands (tools/atp-sweep): $ATP_BINARY_DIR when set, else
// the build directory the tests were compiled in (ATP_TEST_BINARY_DIR, set by CMake), so a
// test binary run by hand finds them too. Header-only; thread-safe.
#pragma once

#include <cstdlib>
#include <string>

namespace atp::testing {

inline std::string BuildDirectory() {
  const char* env = std::getenv("ATP_BINARY_DIR");
  if (env != nullptr && *env != '\0') return env;
#ifdef ATP_TEST_BINARY_DIR
  return ATP_TEST_BINARY_DIR;
#else
  return "";
#endif
}

// tools/atp-sweep of the build directory ("" when there is none).
inline std::string SweepExecutable() {
  const std::string dir = BuildDirectory();
  return dir.empty() ? "" : dir + "/tools/atp-sweep";
}

}  // namespace atp::testing
