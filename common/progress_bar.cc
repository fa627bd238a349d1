#include "common/progress_bar.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <utility>

namespace atp {

std::string FormatDuration(double seconds) {
  if (seconds < 0 || !std::isfinite(seconds)) return "?";
  const long s = std::lround(seconds);
  char buffer[32];
  if (s >= 3600) {
    std::snprintf(buffer, sizeof buffer, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
  } else if (s >= 60) {
    std::snprintf(buffer, sizeof buffer, "%ldm%02lds", s / 60, s % 60);
  } else {
    std::snprintf(buffer, sizeof buffer, "%lds", s);
  }
  return buffer;
}

bool IsTerminal(std::FILE* out) { return out != nullptr && ::isatty(::fileno(out)) == 1; }

namespace {

// Three significant figures at most, without exponent: 0.0312, 2.14, 531, 12034.
std::string FormatRate(double rate) {
  char buffer[32];
  if (rate >= 100 || rate <= 0) {
    std::snprintf(buffer, sizeof buffer, "%.0f", std::max(0.0, rate));
  } else if (rate >= 10) {
    std::snprintf(buffer, sizeof buffer, "%.1f", rate);
  } else if (rate >= 1) {
    std::snprintf(buffer, sizeof buffer, "%.2f", rate);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.3g", rate);
  }
  return buffer;
}

}  // namespace

std::string FormatProgressLine(const ProgressBarOptions& options, int64_t done, double elapsed_s, double rate_per_s,
                               const std::string& detail, bool with_bar) {
  std::string line = options.label;
  const bool known = options.total > 0;
  const double fraction = known ? std::clamp(static_cast<double>(done) / static_cast<double>(options.total), 0.0, 1.0) : 0;
  char buffer[96];
  if (known && with_bar) {
    const int width = std::max(1, options.bar_width);
    const int filled = static_cast<int>(std::floor(fraction * width));
    line += " [" + std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(width - filled), '-') + "]";
  }
  if (known) {
    std::snprintf(buffer, sizeof buffer, " %3.0f%% %lld/%lld %s", std::floor(100.0 * fraction),
                  static_cast<long long>(done), static_cast<long long>(options.total), options.unit.c_str());
  } else {
    std::snprintf(buffer, sizeof buffer, " %lld %s", static_cast<long long>(done), options.unit.c_str());
  }
  line += buffer;
  line += " | " + FormatRate(rate_per_s) + " " + options.unit + "/s";
  if (known) {
    const double eta = done >= options.total ? 0.0 : rate_per_s > 0 ? static_cast<double>(options.total - done) / rate_per_s : -1;
    line += done >= options.total ? " | took " + FormatDuration(elapsed_s) : " | ETA " + FormatDuration(eta);
  } else {
    line += " | " + FormatDuration(elapsed_s);
  }
  if (!detail.empty()) line += " | " + detail;
  return line;
}

ProgressBar::ProgressBar(ProgressBarOptions options, std::FILE* out, const Clock* clock)
    : options_(std::move(options)), out_(out), clock_(clock), start_(clock->Now()), last_print_(start_) {}

ProgressBar::~ProgressBar() {
  if (line_shown_) {
    std::fputs(options_.transient ? "\r\033[2K" : "\n", out_);
    std::fflush(out_);
  }
}

double ProgressBar::rate_per_s() const {
  // From the first Update on: what came before it (loading, decoding) is not this work's pace.
  const double elapsed = clock_->Now() - first_update_time_;
  return started_ && elapsed > 0 ? static_cast<double>(done_ - first_update_done_) / elapsed : 0.0;
}

void ProgressBar::Update(int64_t done, const std::string& detail) {
  if (finished_) return;
  if (!started_) {
    started_ = true;
    first_update_time_ = clock_->Now();
    first_update_done_ = done;
  }
  done_ = done;
  detail_ = detail;
  const double now = clock_->Now();
  const bool complete = options_.total > 0 && done >= options_.total;
  if (options_.terminal) {
    // Drawn at once, then at most 4 times a second; the completed state always.
    if (line_shown_ && now - last_print_ < 0.25 && !(complete && printed_done_ != done)) return;
  } else {
    // A line per interval; the completed state only after earlier lines (Finish prints it
    // otherwise).
    if (now - last_print_ < options_.plain_interval_s && !(complete && printed_done_ >= 0 && printed_done_ != done)) {
      return;
    }
  }
  last_print_ = now;
  Print(/*final_line=*/false);
}

void ProgressBar::Print(bool final_line) {
  const std::string line =
      FormatProgressLine(options_, done_, clock_->Now() - start_, rate_per_s(), detail_, options_.terminal);
  if (options_.terminal) {
    // Carriage return, erase the line, draw: the cursor stays on the bar's line.
    std::fprintf(out_, "\r\033[2K%s", line.c_str());
    line_shown_ = true;
    if (final_line) {
      std::fputc('\n', out_);
      line_shown_ = false;
    }
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  printed_done_ = done_;
  std::fflush(out_);
}

void ProgressBar::Message(const std::string& text) {
  if (line_shown_) std::fputs("\r\033[2K", out_);
  std::fprintf(out_, "%s\n", text.c_str());
  if (line_shown_) {
    // Redraw the bar below the message at once.
    line_shown_ = false;
    Print(/*final_line=*/false);
  }
  std::fflush(out_);
}

void ProgressBar::Finish(const std::string& summary) {
  if (finished_) return;
  finished_ = true;
  if (started_) {
    if (options_.terminal && options_.transient) {
      if (line_shown_) std::fputs("\r\033[2K", out_);
      line_shown_ = false;
    } else if (options_.terminal) {
      Print(/*final_line=*/true);
    } else if (printed_done_ != done_ && (!options_.transient || printed_done_ >= 0)) {
      Print(/*final_line=*/true);
    }
  }
  if (!summary.empty()) std::fprintf(out_, "%s\n", summary.c_str());
  std::fflush(out_);
}

}  // namespace atp
