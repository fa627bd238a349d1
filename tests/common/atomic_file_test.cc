#include "common/atomic_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"

namespace atp {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> Names(const std::string& folder) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(folder)) names.push_back(entry.path().filename().string());
  return names;
}

// The system calls, recorded: each step of a write as "<call> <path or fd's path>", and an
// optional failure injected into one of them.
struct Recorder {
  std::vector<std::string> steps;
  std::map<int, std::string> fd_paths;
  std::string fail_call;    // e.g. "fsync"
  std::string fail_target;  // the path (of a file or folder) whose call fails; kAnyTemp: the temp file
  int fail_errno = EIO;
};
Recorder* g_recorder = nullptr;
constexpr const char* kAnyTemp = "<temp>";

bool ShouldFail(const std::string& call, const std::string& target) {
  if (g_recorder->fail_call != call) return false;
  const bool is_temp = IsAtomicWriteTemp(fs::path(target).filename().string());
  if (g_recorder->fail_target != target && !(g_recorder->fail_target == kAnyTemp && is_temp)) return false;
  errno = g_recorder->fail_errno;
  return true;
}

int RecordedOpen(const char* path, int flags, mode_t mode) {
  g_recorder->steps.push_back(std::string((flags & O_DIRECTORY) ? "open-folder " : "open ") + path);
  if (ShouldFail("open", path)) return -1;
  const int fd = ::open(path, flags, mode);
  if (fd >= 0) g_recorder->fd_paths[fd] = path;
  return fd;
}
ssize_t RecordedWrite(int fd, const void* data, size_t size) {
  g_recorder->steps.push_back("write " + g_recorder->fd_paths[fd]);
  if (ShouldFail("write", g_recorder->fd_paths[fd])) return -1;
  return ::write(fd, data, size);
}
int RecordedFsync(int fd) {
  g_recorder->steps.push_back("fsync " + g_recorder->fd_paths[fd]);
  if (ShouldFail("fsync", g_recorder->fd_paths[fd])) return -1;
  return ::fsync(fd);
}
int RecordedClose(int fd) {
  g_recorder->steps.push_back("close " + g_recorder->fd_paths[fd]);
  return ::close(fd);
}
int RecordedRename(const char* from, const char* to) {
  g_recorder->steps.push_back(std::string("rename ") + from + " -> " + to);
  if (ShouldFail("rename", to)) return -1;
  return ::rename(from, to);
}
int RecordedUnlink(const char* path) {
  g_recorder->steps.push_back(std::string("unlink ") + path);
  return ::unlink(path);
}

class AtomicFileTest : public ::testing::Test {
 protected:
  void SetUp() override { g_recorder = &recorder_; }
  void TearDown() override { g_recorder = nullptr; }

  Status Write(const std::string& path, const std::vector<std::string_view>& parts) {
    static const FileCalls calls{RecordedOpen, RecordedWrite, RecordedFsync, RecordedClose, RecordedRename,
                                 RecordedUnlink};
    return WriteFileAtomically(path, parts, calls);
  }
  // The temporary file the write used: the path its first "open" step names.
  std::string TempOfFirstWrite() const {
    for (const std::string& step : recorder_.steps) {
      if (step.rfind("open ", 0) == 0) return step.substr(5);
    }
    return "";
  }

  TempDir dir_;
  Recorder recorder_;
};

TEST_F(AtomicFileTest, ReplacesTheFileAndLeavesNoTemporaryFile) {
  const std::string path = dir_ / "report.json";
  dir_.Write("report.json", "old");
  ASSERT_OK(WriteFileAtomically(path, "new contents\n"));
  EXPECT_EQ(ReadFile(path), "new contents\n");
  EXPECT_EQ(Names(dir_.path()), std::vector<std::string>{"report.json"});
}

TEST_F(AtomicFileTest, WritesPartsOneAfterAnother) {
  const std::string path = dir_ / "entry.bin";
  ASSERT_OK(WriteFileAtomically(path, {"head|", "", "payload"}));
  EXPECT_EQ(ReadFile(path), "head|payload");
}

TEST_F(AtomicFileTest, FollowsTheDurabilityRuleStepByStep) {
  const std::string path = dir_ / "checkpoint.json";
  ASSERT_OK(Write(path, {"{}"}));
  const std::string temp = TempOfFirstWrite();
  EXPECT_EQ(fs::path(temp).parent_path(), fs::path(dir_.path())) << "the temporary file must be beside the target";
  EXPECT_TRUE(IsAtomicWriteTemp(fs::path(temp).filename().string())) << temp;
  const std::vector<std::string> want = {
      "open " + temp,          "write " + temp,          "fsync " + temp,        "close " + temp,
      "rename " + temp + " -> " + path, "open-folder " + dir_.path(), "fsync " + dir_.path(), "close " + dir_.path(),
  };
  EXPECT_EQ(recorder_.steps, want);
  EXPECT_EQ(ReadFile(path), "{}");
}

TEST_F(AtomicFileTest, AFolderThatCannotBeFlushedIsAnErrorNamingIt) {
  recorder_.fail_call = "fsync";
  recorder_.fail_target = dir_.path();
  const Status written = Write(dir_ / "a.txt", {"x"});
  ASSERT_FALSE(written.ok());
  EXPECT_EQ(written.code(), StatusCode::kIoError);
  EXPECT_NE(written.message().find("'" + dir_.path() + "'"), std::string::npos) << written.message();
  EXPECT_NE(written.message().find("Input/output error"), std::string::npos) << written.message();
  EXPECT_EQ(ReadFile(dir_ / "a.txt"), "x");  // the rename itself had happened
}

TEST_F(AtomicFileTest, AFolderThatCannotBeOpenedIsAnErrorNamingIt) {
  recorder_.fail_call = "open";
  recorder_.fail_target = dir_.path();
  recorder_.fail_errno = EACCES;
  const Status written = Write(dir_ / "a.txt", {"x"});
  ASSERT_FALSE(written.ok());
  EXPECT_NE(written.message().find("'" + dir_.path() + "'"), std::string::npos) << written.message();
}

TEST_F(AtomicFileTest, AFilesystemWithoutFolderFlushesIsAccepted) {
  recorder_.fail_call = "fsync";
  recorder_.fail_target = dir_.path();
  recorder_.fail_errno = EINVAL;
  EXPECT_OK(Write(dir_ / "a.txt", {"x"}));
  EXPECT_EQ(ReadFile(dir_ / "a.txt"), "x");
}

TEST_F(AtomicFileTest, AFailingRenameNamesBothFilesAndKeepsTheTarget) {
  // A non-empty folder in the target's place: rename(2) refuses it (EISDIR), no injection.
  const std::string path = dir_ / "out";
  dir_.Write("out/keep.txt", "kept");
  const Status written = WriteFileAtomically(path, "new");
  ASSERT_FALSE(written.ok());
  EXPECT_EQ(written.code(), StatusCode::kIoError);
  EXPECT_NE(written.message().find("cannot rename"), std::string::npos) << written.message();
  EXPECT_NE(written.message().find("'" + path + "'"), std::string::npos) << written.message();
  EXPECT_EQ(ReadFile(dir_ / "out/keep.txt"), "kept");
  EXPECT_EQ(Names(dir_.path()), std::vector<std::string>{"out"}) << "the temporary file is removed";
}

TEST_F(AtomicFileTest, AFailingFlushRemovesTheTemporaryFileAndKeepsTheOldContents) {
  const std::string path = dir_ / "a.txt";
  dir_.Write("a.txt", "old");
  recorder_.fail_call = "fsync";
  recorder_.fail_target = kAnyTemp;
  const Status written = Write(path, {"new"});
  ASSERT_FALSE(written.ok());
  EXPECT_NE(written.message().find("cannot flush"), std::string::npos) << written.message();
  EXPECT_NE(written.message().find("'" + path + "'"), std::string::npos) << written.message();
  EXPECT_EQ(ReadFile(path), "old");
  for (const std::string& name : Names(dir_.path())) EXPECT_FALSE(IsAtomicWriteTemp(name)) << name;
}

TEST_F(AtomicFileTest, AMissingFolderIsAnErrorNamingTheFile) {
  const Status written = WriteFileAtomically(dir_ / "no/such/folder/a.txt", "x");
  ASSERT_FALSE(written.ok());
  EXPECT_EQ(written.code(), StatusCode::kIoError);
  EXPECT_NE(written.message().find("no/such/folder/"), std::string::npos) << written.message();
  EXPECT_NE(written.message().find("No such file or directory"), std::string::npos) << written.message();
}

TEST(AtomicWriteTempPathTest, IsHiddenBesideTheTargetAndDistinctPerWrite) {
  const std::string first = AtomicWriteTempPath("/data/cache/ab/entry.feat", 41, 0);
  const std::string second = AtomicWriteTempPath("/data/cache/ab/entry.feat", 41, 1);
  const std::string other_pid = AtomicWriteTempPath("/data/cache/ab/entry.feat", 42, 0);
  EXPECT_EQ(fs::path(first).parent_path(), "/data/cache/ab");
  EXPECT_EQ(fs::path(first).filename().string().rfind(".tmp-entry.feat.", 0), 0u) << first;
  EXPECT_NE(first, second);
  EXPECT_NE(first, other_pid);
  EXPECT_TRUE(IsAtomicWriteTemp(fs::path(first).filename().string()));
  EXPECT_FALSE(IsAtomicWriteTemp("entry.feat"));
  EXPECT_EQ(fs::path(AtomicWriteTempPath("plain.txt", 1, 0)).parent_path(), "");
}

}  // namespace
}  // namespace atp
