#include "coordinator/progress_reporter.h"

#include <cmath>

namespace atp {

Result<ProgressMode> ParseProgressMode(const std::string& name) {
  if (name == "tty") return ProgressMode::kTty;
  if (name == "plain") return ProgressMode::kPlain;
  if (name == "quiet") return ProgressMode::kQuiet;
  if (name == "jsonl") return ProgressMode::kJsonLines;
  return InvalidArgument("--log must be one of tty, plain, quiet, jsonl (got '" + name + "')");
}

std::string FormatStatusLine(const ProgressSnapshot& s) {
  char buffer[256];
  double percent = s.total > 0 ? 100.0 * static_cast<double>(s.done) / static_cast<double>(s.total) : 100.0;
  std::string rate = s.rate_per_s >= 1 ? std::to_string(std::lround(s.rate_per_s)) + "/s"
                                       : std::to_string(std::lround(s.rate_per_s * 60)) + "/min";
  std::snprintf(buffer, sizeof buffer,
                "[%s] %lld/%lld done (%.0f%%) | %lld running on %d/%d ranks | %lld failed | %lld pending%s | %s | ETA %s",
                FormatDuration(s.elapsed_s).c_str(), static_cast<long long>(s.done), static_cast<long long>(s.total),
                percent, static_cast<long long>(s.running), s.busy_ranks, s.live_ranks,
                static_cast<long long>(s.failed), static_cast<long long>(s.pending),
                s.blocked ? (" | " + std::to_string(s.blocked) + " blocked").c_str() : "", rate.c_str(),
                FormatDuration(s.eta_s).c_str());
  return buffer;
}

namespace {
Json SnapshotJson(const ProgressSnapshot& s) {
  return Json{{"total", s.total},     {"done", s.done},       {"running", s.running},  {"failed", s.failed},
              {"pending", s.pending}, {"blocked", s.blocked}, {"live_ranks", s.live_ranks},
              {"busy_ranks", s.busy_ranks}, {"elapsed_s", s.elapsed_s}, {"rate_per_s", s.rate_per_s},
              {"eta_s", s.eta_s < 0 ? Json(nullptr) : Json(s.eta_s)}};
}
}  // namespace

ProgressReporter::ProgressReporter(ProgressMode mode, std::FILE* out, Clock* clock, double interval_s)
    : mode_(mode), out_(out), clock_(clock), interval_s_(interval_s) {}

void ProgressReporter::ClearLine() {
  if (line_shown_) {
    std::fputs("\r\033[2K", out_);
    line_shown_ = false;
  }
}

void ProgressReporter::Update(const ProgressSnapshot& snapshot) {
  double now = clock_->Now();
  double interval = mode_ == ProgressMode::kTty ? 0.25 : interval_s_;
  if (mode_ == ProgressMode::kQuiet || now - last_print_ < interval) return;
  last_print_ = now;
  switch (mode_) {
    case ProgressMode::kTty:
      std::fputs("\r\033[2K", out_);
      std::fputs(FormatStatusLine(snapshot).c_str(), out_);
      line_shown_ = true;
      break;
    case ProgressMode::kPlain:
      std::fprintf(out_, "%s\n", FormatStatusLine(snapshot).c_str());
      break;
    case ProgressMode::kJsonLines: {
      Json line = SnapshotJson(snapshot);
      line["event"] = "progress";
      std::fprintf(out_, "%s\n", line.dump().c_str());
      break;
    }
    case ProgressMode::kQuiet:
      break;
  }
  std::fflush(out_);
}

void ProgressReporter::Event(const std::string& kind, const Json& details) {
  if (mode_ == ProgressMode::kJsonLines) {
    Json line = details;
    line["event"] = kind;
    std::fprintf(out_, "%s\n", line.dump().c_str());
    std::fflush(out_);
    return;
  }
  if (kind == "done" || kind == "started") return;
  ClearLine();
  std::string text = kind + ": " + details.value("job", std::string("?")) + " " + details.value("stage", "") + "/" +
                     details.value("method", "");
  if (details.contains("class")) text += " [" + details["class"].get<std::string>() + "]";
  if (details.contains("message")) text += " " + details["message"].get<std::string>();
  std::fprintf(out_, "%s\n", text.c_str());
  std::fflush(out_);
  last_print_ = -1e18;  // redraw the status line right away
}

void ProgressReporter::Message(const std::string& text) {
  if (mode_ == ProgressMode::kJsonLines) {
    std::fprintf(out_, "%s\n", Json{{"event", "message"}, {"text", text}}.dump().c_str());
  } else {
    ClearLine();
    std::fprintf(out_, "%s\n", text.c_str());
  }
  std::fflush(out_);
}

void ProgressReporter::Finish(const ProgressSnapshot& snapshot, const std::string& outcome) {
  if (mode_ == ProgressMode::kJsonLines) {
    Json line = SnapshotJson(snapshot);
    line["event"] = "finished";
    line["outcome"] = outcome;
    std::fprintf(out_, "%s\n", line.dump().c_str());
  } else {
    ClearLine();
    std::fprintf(out_, "%s\n%s\n", FormatStatusLine(snapshot).c_str(), outcome.c_str());
  }
  std::fflush(out_);
}

}  // namespace atp
