#include "tools/pretrain_command.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/pretrain/pretrain_test_util.h"
#include "tests/support/status_matchers.h"
#include "worker/clip/clip_checkpoint.h"
#include "worker/pretrain/tiny_clip_report.h"

namespace atp {
namespace {

using pretrain::testing::SmallFashionMnistRoot;
using pretrain::testing::TempDir;

struct CommandResult {
  int code = 0;
  std::string out, err;
};

CommandResult RunCommand(std::vector<std::string> args) {
  args.insert(args.begin(), "pretrain");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  CommandResult r;
  r.code = RunPretrainCommand(static_cast<int>(argv.size()), argv.data());
  r.out = ::testing::internal::GetCapturedStdout();
  r.err = ::testing::internal::GetCapturedStderr();
  return r;
}

TEST(PretrainCommandTest, HelpDescribesTheCommand) {
  CommandResult r = RunCommand({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--data-root"), std::string::npos);
  EXPECT_NE(r.out.find("tiny_clip_vocab.txt.gz"), std::string::npos);
}

TEST(PretrainCommandTest, UsageErrorsNameTheProblem) {
  EXPECT_EQ(RunCommand({"--out", "x"}).code, 2);
  CommandResult r = RunCommand({"--data-root", "d", "--out", "o", "--epochs", "zero"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--epochs"), std::string::npos) << r.err;
  EXPECT_EQ(RunCommand({"--data-root", "d", "--out", "o", "--bogus"}).code, 2);
}

TEST(PretrainCommandTest, MissingDataRootGivesTheImportCommand) {
  TempDir out;
  CommandResult r = RunCommand({"--data-root", "/nonexistent/root", "--out", out.path()});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("atp data import-fashion-mnist --out /nonexistent/root"), std::string::npos) << r.err;
}

TEST(PretrainCommandTest, TrainsOnceThenReusesMatchingOutputsUnlessForced) {
  std::string why;
  const std::string root = SmallFashionMnistRoot(&why);
  if (root.empty()) GTEST_SKIP() << "Fashion-MNIST not available, skipping: " << why;
  TempDir out;
  const std::vector<std::string> args = {"--data-root", root, "--out", out.path(), "--epochs", "1",
                                         "--max-train-per-class", "10", "--max-test-per-class", "5"};
  CommandResult first = RunCommand(args);
  ASSERT_EQ(first.code, 0) << first.out << first.err;
  EXPECT_NE(first.out.find("epoch 1/1: loss"), std::string::npos) << first.out;
  EXPECT_NE(first.out.find("zero-shot accuracy"), std::string::npos) << first.out;
  const pretrain::TinyClipPaths paths = pretrain::TinyClipPathsIn(out.path());
  ASSERT_OK(clip::LoadClip(paths.checkpoint));
  auto report = pretrain::ReadTinyClipReport(paths.report);
  ASSERT_OK(report);
  EXPECT_EQ(report->options.epochs, 1);
  EXPECT_EQ(report->train_images, 100);

  CommandResult again = RunCommand(args);
  EXPECT_EQ(again.code, 0);
  EXPECT_NE(again.out.find("up to date"), std::string::npos) << again.out;
  EXPECT_EQ(again.out.find("epoch 1/1"), std::string::npos) << again.out;

  std::vector<std::string> forced = args;
  forced.push_back("--force");
  CommandResult retrained = RunCommand(forced);
  EXPECT_EQ(retrained.code, 0);
  EXPECT_NE(retrained.out.find("epoch 1/1"), std::string::npos) << retrained.out;

  // A run made from other captions is not reused.
  auto stale = pretrain::ReadTinyClipReport(paths.report);
  ASSERT_OK(stale);
  stale->corpus_sha256 = "0000";
  ASSERT_OK(pretrain::WriteTinyClipReport(*stale, paths.report));
  CommandResult recaptioned = RunCommand(args);
  EXPECT_EQ(recaptioned.code, 0);
  EXPECT_NE(recaptioned.out.find("made from other captions"), std::string::npos) << recaptioned.out;
  EXPECT_NE(recaptioned.out.find("epoch 1/1"), std::string::npos) << recaptioned.out;

  std::vector<std::string> other = args;
  other[7] = "12";  // --max-train-per-class
  CommandResult changed = RunCommand(other);
  EXPECT_EQ(changed.code, 0);
  EXPECT_NE(changed.out.find("other options (max_train_per_class 10 -> 12)"), std::string::npos) << changed.out;
}

}  // namespace
}  // namespace atp
