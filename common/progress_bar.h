// ProgressBar: shows that one long step (an import, pretraining, training, feature
// extraction) is alive. On a terminal it keeps one line redrawn in place, at most 4 times a
// second: label, bar, percentage, count, rate and ETA; elsewhere (a log file, a pipe, a job's
// log) it prints the same figures as a plain line once every `plain_interval_s` seconds (the
// first after one interval, so a short step prints only its final line), as atp-sweep's
// status does. Owns nothing but its text; not thread-safe (one thread updates it).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "common/clock.h"

namespace atp {

// "1h02m", "3m05s", "42s"; "?" for a negative or infinite duration.
std::string FormatDuration(double seconds);

// Whether `out` is a terminal (where a line can be redrawn in place).
bool IsTerminal(std::FILE* out);

struct ProgressBarOptions {
  std::string label;             // "pretrain", "import", ...: starts every line
  std::string unit = "items";    // what is counted, plural: "images", "steps"
  int64_t total = 0;             // 0 or less: unknown (no bar, no ETA)
  bool terminal = false;         // redraw in place (true) or print plain lines (false)
  double plain_interval_s = 10;  // plain lines: at most one per interval
  int bar_width = 24;            // characters between the brackets
  // A phase inside a larger step (features of one epoch): on a terminal its line is erased
  // when it finishes; in a log it leaves a final line only if it printed one before.
  bool transient = false;
};

// What one line says. Pure, for the bar and for tests:
//   "pretrain [##########--------------]  42% 157/374 steps | 2.1 steps/s | ETA 1m43s | loss 3.4"
// (`detail` appended when not empty; no bar on plain lines).
std::string FormatProgressLine(const ProgressBarOptions& options, int64_t done, double elapsed_s, double rate_per_s,
                               const std::string& detail, bool with_bar);

class ProgressBar {
 public:
  // `out` and `clock` must outlive the bar; nothing is printed until the first Update.
  ProgressBar(ProgressBarOptions options, std::FILE* out, const Clock* clock = RealClock());
  ~ProgressBar();  // ends a drawn terminal line (erases it when transient)
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // `done` of total so far; `detail` is shown after the ETA (e.g. "loss 3.41"). Prints when
  // the interval has passed; on a terminal also when done reaches the total.
  void Update(int64_t done, const std::string& detail = "");
  // For a total known only once the work has started (0 or less: unknown).
  void SetTotal(int64_t total) { options_.total = total; }
  // A line of its own (an epoch's summary, a note), printed above a drawn bar.
  void Message(const std::string& text);
  // The last state as a final line unless it is already the last line printed (nothing
  // before the first Update; see `transient`), then `summary` when not empty. Further
  // Updates are ignored.
  void Finish(const std::string& summary = "");

  double rate_per_s() const;  // units per second between the first Update and now

 private:
  void Print(bool final_line);

  ProgressBarOptions options_;
  std::FILE* out_;
  const Clock* clock_;
  double start_ = 0;
  double last_print_ = 0;  // plain lines: the start, then each line's time
  bool started_ = false, line_shown_ = false, finished_ = false;
  int64_t done_ = 0, printed_done_ = -1;
  double first_update_time_ = 0;
  int64_t first_update_done_ = 0;
  std::string detail_;
};

}  // namespace atp
