// ASSERT_OK(expr) / EXPECT_OK(expr): a Status or Result<T> is ok, and when it is not, the
// failure prints the expression and the status's code and message (ASSERT_TRUE(x.ok())
// prints only "false"). The expression is evaluated once. Header-only, for every test binary.
#pragma once

#include <gtest/gtest.h>

#include "common/status.h"

namespace atp::testing {

inline ::testing::AssertionResult StatusIsOk(const char* expression, const Status& status) {
  if (status.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << expression << " is not OK: " << status.ToString();
}

template <typename T>
::testing::AssertionResult StatusIsOk(const char* expression, const Result<T>& result) {
  return StatusIsOk(expression, result.status());
}

}  // namespace atp::testing

#define EXPECT_OK(expr) EXPECT_PRED_FORMAT1(::atp::testing::StatusIsOk, expr)
#define ASSERT_OK(expr) ASSERT_PRED_FORMAT1(::atp::testing::StatusIsOk, expr)
