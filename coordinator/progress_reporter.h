// ProgressReporter: what the coordinator prints while a sweep runs.
//   tty:   one status line rewritten in place (done/running/failed/pending, rate, ETA), with
//          failures printed above it as they happen;
//   plain: the same status as a new line every `interval` seconds (batch logs, SLURM output);
//   quiet: only failures and the final summary;
//   jsonl: one JSON object per event and per status tick, for machines.
// Not thread-safe: used by the coordinator loop.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "common/clock.h"
#include "common/json.h"
#include "common/progress_bar.h"
#include "common/status.h"

namespace atp {

enum class ProgressMode { kTty, kPlain, kQuiet, kJsonLines };
Result<ProgressMode> ParseProgressMode(const std::string& name);  // "tty", "plain", "quiet", "jsonl"

struct ProgressSnapshot {
  int64_t total = 0, done = 0, running = 0, failed = 0, pending = 0, blocked = 0;
  int64_t done_this_run = 0;
  int live_ranks = 0, busy_ranks = 0;
  double elapsed_s = 0;
  double rate_per_s = 0;  // jobs finished per second, recent
  double eta_s = -1;      // -1: unknown
};

std::string FormatStatusLine(const ProgressSnapshot& s);

class ProgressReporter {
 public:
  ProgressReporter(ProgressMode mode, std::FILE* out, Clock* clock, double interval_s);
  // Called often; prints at most once per interval (tty: 4 times a second).
  void Update(const ProgressSnapshot& snapshot);
  // A job event worth a line: "failed", "retry", "blocked", "lost", "done" (done only in jsonl).
  void Event(const std::string& kind, const Json& details);
  void Message(const std::string& text);   // a line for the user (start-up, preemption, ...)
  void Finish(const ProgressSnapshot& snapshot, const std::string& outcome);

 private:
  void ClearLine();
  ProgressMode mode_;
  std::FILE* out_;
  Clock* clock_;
  double interval_s_;
  double last_print_ = -1e18;
  bool line_shown_ = false;
};

}  // namespace atp
