// Content hashing (SHA-256 through OpenSSL's libcrypto). Thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace atp {

// Lower-case hexadecimal SHA-256 of `bytes` (64 characters).
std::string Sha256Hex(std::string_view bytes);

}  // namespace atp
