// Strict parsing of the numbers, ports and addresses users type: command-line flags of every
// `atp` command and the status server's query strings. The whole text must be the value
// ("12x", "", " 3", "1e999" and out-of-range numbers are refused), and every error names the
// flag and what was given. Free functions; thread-safe.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include "common/status.h"

namespace atp {

// An integer in [minimum, maximum], in decimal.
Result<int64_t> ParseIntFlag(const std::string& flag, const std::string& text, int64_t minimum = 0,
                             int64_t maximum = std::numeric_limits<int64_t>::max());

// A finite number above `minimum` (or at it when `minimum_allowed`) and at most `maximum`.
Result<double> ParseNumberFlag(const std::string& flag, const std::string& text, double minimum,
                               bool minimum_allowed = true,
                               double maximum = std::numeric_limits<double>::max());

struct HostPort {
  std::string host;  // as given, without the brackets of an IPv6 literal
  uint16_t port = 0;
};

// "PORT", "HOST:PORT" or "[IPV6]:PORT" (e.g. "8765", "0.0.0.0:8765", "[::1]:8765"); the port
// is from 1 to 65535, or 0 (any free port) when `allow_any_port`.
Result<HostPort> ParseHostPortFlag(const std::string& flag, const std::string& text, const std::string& default_host,
                                   bool allow_any_port = true);

}  // namespace atp
