#include "common/flag_value.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace atp {
namespace {

std::string Quoted(const std::string& text) { return "'" + text + "'"; }

}  // namespace

Result<int64_t> ParseIntFlag(const std::string& flag, const std::string& text, int64_t minimum, int64_t maximum) {
  const std::string range = "an integer from " + std::to_string(minimum) +
                            (maximum == std::numeric_limits<int64_t>::max() ? " up" : " to " + std::to_string(maximum));
  // strtoll skips leading blanks and accepts a '+'; neither is a number a user meant.
  const bool starts_well = !text.empty() && (text[0] == '-' || (text[0] >= '0' && text[0] <= '9'));
  char* end = nullptr;
  errno = 0;
  const long long value = starts_well ? std::strtoll(text.c_str(), &end, 10) : 0;
  if (!starts_well || end == text.c_str() || *end != '\0') {
    return InvalidArgument(flag + " needs " + range + ", got " + Quoted(text));
  }
  if (errno == ERANGE || value < minimum || value > maximum) {
    return InvalidArgument(flag + " needs " + range + ", got " + text);
  }
  return static_cast<int64_t>(value);
}

Result<double> ParseNumberFlag(const std::string& flag, const std::string& text, double minimum, bool minimum_allowed,
                               double maximum) {
  char bound[32];
  std::snprintf(bound, sizeof bound, "%g", minimum);
  const std::string range = std::string("a number ") + (minimum_allowed ? ">= " : "> ") + bound;
  const bool starts_well = !text.empty() && (text[0] == '-' || text[0] == '.' || (text[0] >= '0' && text[0] <= '9'));
  char* end = nullptr;
  errno = 0;
  const double value = starts_well ? std::strtod(text.c_str(), &end) : 0;
  if (!starts_well || end == text.c_str() || *end != '\0' || !std::isfinite(value) || errno == ERANGE) {
    return InvalidArgument(flag + " needs " + range + ", got " + Quoted(text));
  }
  const bool above = minimum_allowed ? value >= minimum : value > minimum;
  if (!above || value > maximum) return InvalidArgument(flag + " needs " + range + ", got " + text);
  return value;
}

Result<HostPort> ParseHostPortFlag(const std::string& flag, const std::string& text, const std::string& default_host,
                                   bool allow_any_port) {
  HostPort out;
  out.host = default_host;
  std::string port = text;
  if (!text.empty() && text[0] == '[') {  // [IPv6]:PORT
    const size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return InvalidArgument(flag + " needs [HOST:]PORT (an IPv6 host in brackets: [::1]:8765), got " + Quoted(text));
    }
    out.host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else if (const size_t colon = text.rfind(':'); colon != std::string::npos) {
    if (text.find(':') != colon) {
      return InvalidArgument(flag + " needs [HOST:]PORT; write an IPv6 host in brackets ([::1]:8765), got " +
                             Quoted(text));
    }
    out.host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (out.host.empty()) return InvalidArgument(flag + " needs [HOST:]PORT with a host before ':', got " + Quoted(text));
  Result<int64_t> number = ParseIntFlag(flag + " port", port, allow_any_port ? 0 : 1, 65535);
  if (!number.ok()) {
    return InvalidArgument(flag + " needs [HOST:]PORT with a port from " + std::string(allow_any_port ? "0" : "1") +
                           " to 65535, got " + Quoted(text));
  }
  out.port = static_cast<uint16_t>(*number);
  return out;
}

}  // namespace atp
