// Runs a shell command and captures what it prints, for tests that check atp's commands or
// other programs as a person would run them. Free functions; thread-compatible.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace atp::testing {

struct ShellRun {
  int exit_code = -1;  // -1 when the command could not be started or did not exit normally
  std::string output;  // stdout and stderr together
};

// Runs `command` through the shell, capturing both streams.
inline ShellRun RunShell(const std::string& command) {
  ShellRun run;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return run;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) run.output.append(buffer, n);
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

}  // namespace atp::testing
