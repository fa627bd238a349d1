#include "common/flag_value.h"
#include "tests/support/status_matchers.h"

#include <gtest/gtest.h>

namespace atp {
namespace {

// Regression: `--http 99999` served on port 34463 (the value wrapped), `abc` on a random port,
// `-1` on 65535, `[::1]:PORT` did not resolve, and `--sweep abc` meant sweep 0: every flag
// now goes through these parsers.
TEST(FlagValueTest, IntegersMustBeTheWholeTextAndInRange) {
  EXPECT_EQ(*ParseIntFlag("--sweep", "12", 1), 12);
  EXPECT_EQ(*ParseIntFlag("--n", "-3", -5, 5), -3);
  for (const char* bad : {"", "abc", "12x", " 3", "+3", "3 ", "1.5", "0x10", "99999999999999999999"}) {
    Result<int64_t> parsed = ParseIntFlag("--sweep", bad, 1);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_NE(parsed.status().message().find("--sweep needs an integer from 1"), std::string::npos)
        << parsed.status().message();
  }
  EXPECT_NE(ParseIntFlag("--sweep", "0", 1).status().message().find("got 0"), std::string::npos);
  EXPECT_FALSE(ParseIntFlag("--n", "6", -5, 5).ok());
}

TEST(FlagValueTest, NumbersMustBeFiniteAndAboveTheMinimum) {
  EXPECT_DOUBLE_EQ(*ParseNumberFlag("--t", "2.5", 0, false), 2.5);
  EXPECT_DOUBLE_EQ(*ParseNumberFlag("--t", "0", 0, true), 0.0);
  for (const char* bad : {"0", "-1", "inf", "nan", "1e999", "abc", "", "2s"}) {
    EXPECT_FALSE(ParseNumberFlag("--t", bad, 0, false).ok()) << bad;
  }
  EXPECT_FALSE(ParseNumberFlag("--t", "2.5", 0, true, 2).ok());
}

TEST(FlagValueTest, HostsAndPortsIncludingIpv6Literals) {
  auto port_only = ParseHostPortFlag("--http", "8765", "127.0.0.1");
  ASSERT_OK(port_only);
  EXPECT_EQ(port_only->host, "127.0.0.1");
  EXPECT_EQ(port_only->port, 8765);
  auto v4 = ParseHostPortFlag("--http", "0.0.0.0:80", "127.0.0.1");
  ASSERT_OK(v4);
  EXPECT_EQ(v4->host, "0.0.0.0");
  EXPECT_EQ(v4->port, 80);
  auto v6 = ParseHostPortFlag("--http", "[::1]:8080", "127.0.0.1");
  ASSERT_OK(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 8080);
  EXPECT_EQ(ParseHostPortFlag("--http", "0", "h")->port, 0);  // any free port
  EXPECT_FALSE(ParseHostPortFlag("--http", "0", "h", /*allow_any_port=*/false).ok());
  for (const char* bad : {"99999", "abc", "-1", "", ":80", "host:", "::1:80", "[::1]", "[::1]80", "65536", "80x"}) {
    Result<HostPort> parsed = ParseHostPortFlag("--http", bad, "127.0.0.1");
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_NE(parsed.status().message().find("--http"), std::string::npos) << parsed.status().message();
  }
}

}  // namespace
}  // namespace atp
