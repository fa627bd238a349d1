// Runs Python scripts that import torch, for tests that check atp against PyTorch itself
// (schedulers, torch.load). Finds an interpreter with torch once ($ATP_PYTHON, python3, then
// /usr/bin/python3, since a python3 earlier on PATH may lack torch); tests skip without one.
// Thread-compatible: the interpreter is looked up once, on first use.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/support/shell.h"

namespace atp::testing {

using PythonRun = ShellRun;

// The interpreter to use, or "" with the reason in *why.
inline std::string PythonWithTorch(std::string* why) {
  static std::string found;
  static std::string reason;
  static bool tried = false;
  if (!tried) {
    tried = true;
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("ATP_PYTHON")) candidates.push_back(env);
    candidates.push_back("python3");
    candidates.push_back("/usr/bin/python3");
    for (const auto& python : candidates) {
      PythonRun probe = RunShell(python + " -c 'import torch'");
      if (probe.exit_code == 0) {
        found = python;
        break;
      }
      reason += "\n  " + python + " -c 'import torch': " + probe.output.substr(0, 200);
    }
    if (found.empty()) {
      reason = "no Python interpreter with torch (install python3-torch or set ATP_PYTHON):" + reason;
    }
  }
  *why = reason;
  return found;
}

// Writes `script` to a temporary file and runs it with `args` (already shell-quoted).
inline PythonRun RunPython(const std::string& python, const std::string& script, const std::string& args = "") {
  std::string path = (std::filesystem::temp_directory_path() / "atp_python_XXXXXX").string();
  const int fd = mkstemp(path.data());
  if (fd < 0) return {};
  close(fd);
  std::ofstream(path) << script;
  PythonRun run = RunShell(python + " " + path + " " + args);
  std::filesystem::remove(path);
  return run;
}

}  // namespace atp::testing
