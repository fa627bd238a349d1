#include "common/progress_bar.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace atp {
namespace {

// Captures what a bar writes through an in-memory FILE*.
class ProgressBarTest : public ::testing::Test {
 protected:
  ProgressBarTest() : out_(open_memstream(&buffer_, &size_)) {}
  ~ProgressBarTest() override {
    std::fclose(out_);
    std::free(buffer_);
  }
  std::string Written() {
    std::fflush(out_);
    return std::string(buffer_, size_);
  }
  static int Count(const std::string& text, const std::string& what) {
    int n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
    return n;
  }

  char* buffer_ = nullptr;
  size_t size_ = 0;
  std::FILE* out_;
  FakeClock clock_;
};

TEST_F(ProgressBarTest, LineShowsBarPercentCountRateAndEta) {
  ProgressBarOptions o;
  o.label = "pretrain";
  o.unit = "steps";
  o.total = 400;
  o.bar_width = 10;
  EXPECT_EQ(FormatProgressLine(o, 100, 50, 2.0, "loss 3.41", /*with_bar=*/true),
            "pretrain [##--------]  25% 100/400 steps | 2.00 steps/s | ETA 2m30s | loss 3.41");
  EXPECT_EQ(FormatProgressLine(o, 100, 50, 2.0, "", /*with_bar=*/false),
            "pretrain  25% 100/400 steps | 2.00 steps/s | ETA 2m30s");
  // Done: the ETA becomes the time taken.
  EXPECT_EQ(FormatProgressLine(o, 400, 200, 2.0, "", /*with_bar=*/true),
            "pretrain [##########] 100% 400/400 steps | 2.00 steps/s | took 3m20s");
  // Nothing done yet: no rate, so no ETA.
  EXPECT_EQ(FormatProgressLine(o, 0, 0, 0, "", /*with_bar=*/false), "pretrain   0% 0/400 steps | 0 steps/s | ETA ?");
  // Unknown total: a count and the elapsed time.
  o.total = 0;
  EXPECT_EQ(FormatProgressLine(o, 1234, 3, 411.3, "", /*with_bar=*/true), "pretrain 1234 steps | 411 steps/s | 3s");
}

TEST_F(ProgressBarTest, TerminalRedrawsOneLineAtMostFourTimesASecond) {
  ProgressBarOptions o;
  o.label = "import";
  o.unit = "images";
  o.total = 1000;
  o.terminal = true;
  {
    ProgressBar bar(o, out_, &clock_);
    for (int i = 1; i <= 100; ++i) {
      clock_.Advance(0.01);  // 1 s in all: at most 4 redraws, plus the first
      bar.Update(i);
    }
    const std::string text = Written();
    EXPECT_EQ(text.find('\n'), std::string::npos) << "a terminal bar never starts a new line while running";
    EXPECT_GE(Count(text, "\r\033[2K"), 2);
    EXPECT_LE(Count(text, "\r\033[2K"), 5);
    EXPECT_NE(text.find("79/1000 images | 100 images/s | ETA 9s"), std::string::npos) << text;
    bar.Finish("import done");
  }
  const std::string text = Written();
  EXPECT_EQ(Count(text, "\n"), 2) << "the final bar line, then the summary: " << text;
  EXPECT_NE(text.find("100/1000 images | 100 images/s | ETA 9s\nimport done\n"), std::string::npos) << text;
}

TEST_F(ProgressBarTest, PlainOutputPrintsALineEveryIntervalAndTheLast) {
  ProgressBarOptions o;
  o.label = "train";
  o.unit = "steps";
  o.total = 300;
  o.plain_interval_s = 10;
  ProgressBar bar(o, out_, &clock_);
  for (int i = 1; i <= 300; ++i) {
    clock_.Advance(0.125);  // 37.5 s in all (a binary fraction: no rounding in the sums)
    bar.Update(i, "epoch 1/1");
  }
  bar.Finish();
  const std::string text = Written();
  EXPECT_EQ(text.find('\r'), std::string::npos) << "no terminal codes in a log";
  EXPECT_EQ(text.find('#'), std::string::npos) << "no bar in a log";
  // Lines at 10 s, 20 s, 30 s and the completed 300/300 (printed once although Finish follows).
  EXPECT_EQ(Count(text, "\n"), 4) << text;
  EXPECT_EQ(text.find("train  26% 80/300 steps | 8.00 steps/s | ETA 28s | epoch 1/1\n"), 0u) << text;
  EXPECT_NE(text.find("train 100% 300/300 steps | 8.00 steps/s | took 38s | epoch 1/1\n"), std::string::npos) << text;
}

TEST_F(ProgressBarTest, MessageGoesAboveTheBarWhichIsRedrawn) {
  ProgressBarOptions o;
  o.label = "pretrain";
  o.unit = "steps";
  o.total = 10;
  o.terminal = true;
  ProgressBar bar(o, out_, &clock_);
  clock_.Advance(1);
  bar.Update(5);
  bar.Message("epoch 1/2: loss 3.9");
  const std::string text = Written();
  const size_t message = text.find("\r\033[2Kepoch 1/2: loss 3.9\n");
  ASSERT_NE(message, std::string::npos) << text;
  EXPECT_NE(text.find("5/10 steps", message), std::string::npos) << "the bar comes back under the message: " << text;
}

TEST_F(ProgressBarTest, NothingIsPrintedBeforeTheFirstUpdate) {
  ProgressBarOptions o;
  o.label = "features";
  o.total = 4;
  o.terminal = true;
  {
    ProgressBar bar(o, out_, &clock_);
    EXPECT_EQ(Written(), "");
    bar.Finish();  // e.g. the step failed before doing anything
  }
  EXPECT_EQ(Written(), "") << "an unused bar prints nothing, finished or destroyed";
  ProgressBar bar(o, out_, &clock_);
  bar.Update(4);
  bar.Finish();
  bar.Update(5);
  EXPECT_EQ(Written(), "\r\033[2Kfeatures [########################] 100% 4/4 items | 0 items/s | took 0s"
                       "\r\033[2Kfeatures [########################] 100% 4/4 items | 0 items/s | took 0s\n")
      << "drawn when complete, the final line ends it, and an Update after Finish prints nothing";
}

TEST_F(ProgressBarTest, ShortPlainStepPrintsOnlyItsFinalLine) {
  ProgressBarOptions o;
  o.label = "pretrain";
  o.unit = "steps";
  o.total = 20;
  ProgressBar bar(o, out_, &clock_);
  for (int i = 1; i <= 20; ++i) {
    clock_.Advance(0.25);
    bar.Update(i);
  }
  EXPECT_EQ(Written(), "") << "under one interval: no periodic line";
  bar.Finish();
  EXPECT_EQ(Written(), "pretrain 100% 20/20 steps | 4.00 steps/s | took 5s\n");
}

TEST_F(ProgressBarTest, TransientPhaseLeavesNothingBehindWhenShort) {
  ProgressBarOptions o;
  o.label = "features";
  o.unit = "images";
  o.total = 80;
  o.transient = true;
  {
    ProgressBar plain(o, out_, &clock_);
    clock_.Advance(1);
    plain.Update(80);
    plain.Finish();
  }
  EXPECT_EQ(Written(), "") << "a short phase in a log";
  o.terminal = true;
  ProgressBar bar(o, out_, &clock_);
  clock_.Advance(1);
  bar.Update(40);
  bar.Finish();
  const std::string text = Written();
  EXPECT_EQ(text.find('\n'), std::string::npos) << text;
  EXPECT_EQ(text.substr(text.size() - 5), "\r\033[2K") << "the line is erased: " << text;
}

TEST(FormatDurationTest, ScalesWithTheDuration) {
  EXPECT_EQ(FormatDuration(42.4), "42s");
  EXPECT_EQ(FormatDuration(185), "3m05s");
  EXPECT_EQ(FormatDuration(3720), "1h02m");
  EXPECT_EQ(FormatDuration(-1), "?");
}

}  // namespace
}  // namespace atp
