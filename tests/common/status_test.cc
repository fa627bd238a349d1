#include "common/status.h"
#include "tests/support/status_matchers.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace atp {
namespace {

TEST(StatusTest, DefaultIsOkWithEmptyMessage) {
  Status status;
  EXPECT_OK(status);
  EXPECT_EQ(status.code(), StatusCode::kOk);
  EXPECT_EQ(status.message(), "");
  EXPECT_EQ(status.ToString(), "OK");
  EXPECT_OK(Status::Ok());
}

TEST(StatusTest, HelpersCarryCodeAndMessage) {
  struct Case {
    Status status;
    StatusCode code;
    const char* name;
  };
  const std::vector<Case> cases = {
      {InvalidArgument("m"), StatusCode::kInvalidArgument, "InvalidArgument"},
      {NotFound("m"), StatusCode::kNotFound, "NotFound"},
      {FailedPrecondition("m"), StatusCode::kFailedPrecondition, "FailedPrecondition"},
      {IoError("m"), StatusCode::kIoError, "IoError"},
      {Internal("m"), StatusCode::kInternal, "Internal"},
      {Unavailable("m"), StatusCode::kUnavailable, "Unavailable"},
      {Cancelled("m"), StatusCode::kCancelled, "Cancelled"},
  };
  for (const auto& c : cases) {
    EXPECT_FALSE(c.status.ok()) << c.name;
    EXPECT_EQ(c.status.code(), c.code) << c.name;
    EXPECT_EQ(c.status.message(), "m") << c.name;
    EXPECT_STREQ(StatusCodeName(c.code), c.name);
    // The code name leads the text, so a log line says what kind of failure it was.
    EXPECT_EQ(c.status.ToString(), std::string(c.name) + ": m");
  }
}

TEST(StatusTest, WithContextPrefixesErrorsAndLeavesOkAlone) {
  Status error = NotFound("no such file").WithContext("while loading sweep.toml");
  EXPECT_EQ(error.code(), StatusCode::kNotFound);
  EXPECT_EQ(error.message(), "while loading sweep.toml: no such file");
  Status ok = Status::Ok().WithContext("while loading sweep.toml");
  EXPECT_OK(ok);
  EXPECT_EQ(ok.message(), "");
}

TEST(ResultTest, HoldsValue) {
  Result<std::string> result(std::string("value"));
  ASSERT_OK(result);
  EXPECT_OK(result.status());
  EXPECT_EQ(result.value(), "value");
  EXPECT_EQ(*result, "value");
  EXPECT_EQ(result->size(), 5u);
}

TEST(ResultTest, HoldsError) {
  Result<int> result(InvalidArgument("bad seed"));
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(), "bad seed");
}

TEST(ResultTest, BuiltFromAnOkStatusIsNotOk) {
  // `return Status::Ok();` in a function returning Result<T> compiles; the result must not
  // then claim to hold a value it does not have (reading it would be undefined).
  Result<int> result{Status::Ok()};
  EXPECT_FALSE(result.ok());
  EXPECT_NE(result.status().code(), StatusCode::kOk);
}

TEST(ResultTest, MovesOutMoveOnlyValues) {
  Result<std::unique_ptr<int>> result(std::make_unique<int>(7));
  ASSERT_OK(result);
  std::unique_ptr<int> taken = std::move(result).value();
  ASSERT_NE(taken, nullptr);
  EXPECT_EQ(*taken, 7);
}

// --- the macros ---

int g_steps_after_check = 0;

Status CheckThenCount(Status check) {
  ATP_RETURN_IF_ERROR(check);
  g_steps_after_check += 1;
  return Status::Ok();
}

TEST(StatusMacrosTest, ReturnIfErrorReturnsTheErrorAndStopsThere) {
  g_steps_after_check = 0;
  Status failed = CheckThenCount(IoError("disk full"));
  EXPECT_EQ(failed.code(), StatusCode::kIoError);
  EXPECT_EQ(failed.message(), "disk full");
  EXPECT_EQ(g_steps_after_check, 0);

  EXPECT_OK(CheckThenCount(Status::Ok()));
  EXPECT_EQ(g_steps_after_check, 1);
}

Result<int> ParseSmall(int value) {
  if (value < 0) return InvalidArgument("negative: " + std::to_string(value));
  return value;
}

Status ParseNegativeInto(Result<int>* out) {
  ATP_RETURN_IF_ERROR(ParseSmall(-1).status());
  *out = 1;
  return Status::Ok();
}

TEST(StatusMacrosTest, ReturnIfErrorAcceptsAResultsStatus) {
  Result<int> out(0);
  Status status = ParseNegativeInto(&out);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(*out, 0);
}

// Two ATP_ASSIGN_OR_RETURN in one scope must not collide on their temporaries' names.
Result<int> SumOfTwo(int a, int b) {
  ATP_ASSIGN_OR_RETURN(int x, ParseSmall(a));
  ATP_ASSIGN_OR_RETURN(int y, ParseSmall(b));
  return x + y;
}

TEST(StatusMacrosTest, AssignOrReturnBindsValuesTwiceInOneFunction) {
  Result<int> sum = SumOfTwo(2, 3);
  ASSERT_OK(sum);
  EXPECT_EQ(*sum, 5);
}

TEST(StatusMacrosTest, AssignOrReturnReturnsTheFirstError) {
  Result<int> first = SumOfTwo(-4, 3);
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.status().message(), "negative: -4");
  Result<int> second = SumOfTwo(4, -3);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().message(), "negative: -3");
}

Status AssignToExisting(int* out) {
  int value = 0;
  ATP_ASSIGN_OR_RETURN(value, ParseSmall(9));
  *out = value;
  return Status::Ok();
}

TEST(StatusMacrosTest, AssignOrReturnAssignsToAnExistingVariable) {
  int out = 0;
  ASSERT_OK(AssignToExisting(&out));
  EXPECT_EQ(out, 9);
}

Result<std::unique_ptr<int>> MakeBox(bool ok) {
  if (!ok) return Unavailable("no box");
  return std::make_unique<int>(11);
}

Result<int> OpenBox(bool ok) {
  ATP_ASSIGN_OR_RETURN(std::unique_ptr<int> box, MakeBox(ok));
  return *box;
}

TEST(StatusMacrosTest, AssignOrReturnMovesMoveOnlyValues) {
  Result<int> opened = OpenBox(true);
  ASSERT_OK(opened);
  EXPECT_EQ(*opened, 11);
  Result<int> failed = OpenBox(false);
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace atp
