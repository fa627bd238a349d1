#include "common/hash.h"

#include <openssl/evp.h>

#include <array>
#include <stdexcept>

namespace atp {

namespace {
// One digest context per thread, reused: expanding a large sweep hashes every job, and
// creating a context per call costs more than hashing a job's few hundred bytes.
struct DigestContext {
  DigestContext() : ctx(EVP_MD_CTX_new()) {}
  ~DigestContext() { EVP_MD_CTX_free(ctx); }
  EVP_MD_CTX* ctx;
};
}  // namespace

std::string Sha256Hex(std::string_view bytes) {
  thread_local DigestContext context;
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (!context.ctx || EVP_DigestInit_ex(context.ctx, EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(context.ctx, bytes.data(), bytes.size()) != 1 ||
      EVP_DigestFinal_ex(context.ctx, digest.data(), &length) != 1) {
    throw std::runtime_error("SHA-256 through libcrypto failed");  // only on a broken libcrypto
  }
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

}  // namespace atp
