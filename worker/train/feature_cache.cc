#include "worker/train/feature_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <vector>

#include <ATen/ATen.h>

#include "common/atomic_file.h"
#include "common/hash.h"
#include "common/json.h"

namespace atp::train {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the feature-cache file format is little-endian and written with memcpy");

namespace {

// Entry file layout (all integers little-endian); see docs/feature_cache.md.
//   0  char[8]   magic "ATPFEAT\0"
//   8  u32       file format version (kFileVersion)
//  12  u32       dtype code (1 = float32)
//  16  u32       ndim (1..kMaxDims)
//  20  u32       reserved (0)
//  24  char[64]  the key's digest (hex), so a file moved to the wrong name is not served
//  88  i64[ndim] shape
//   .  u64       payload bytes
//   .  u8[32]    SHA-256 of every header byte before this field, then of the payload
//   .  payload   row-major float32 values
constexpr char kMagic[8] = {'A', 'T', 'P', 'F', 'E', 'A', 'T', '\0'};
constexpr uint32_t kFileVersion = 1;
constexpr uint32_t kDtypeFloat32 = 1;
constexpr uint32_t kMaxDims = 8;
constexpr size_t kFixedHeader = 88;
constexpr size_t kDigestBytes = 32;
constexpr const char* kEntrySuffix = ".feat";
constexpr const char* kDescriptionSuffix = ".json";
// A temp file this old belongs to a writer that died; a live writer of even a very large
// entry finishes in minutes.
constexpr int64_t kStaleTempSeconds = 3600;

std::string ErrnoText(int err) { return std::strerror(err); }

// Streaming SHA-256 (common/hash.h hashes one buffer; entries and checkpoints are streamed).
class Sha256Stream {
 public:
  Sha256Stream() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
      throw std::runtime_error("SHA-256 through libcrypto failed");
    }
  }
  ~Sha256Stream() { EVP_MD_CTX_free(ctx_); }
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;

  void Update(const void* data, size_t size) {
    if (size > 0 && EVP_DigestUpdate(ctx_, data, size) != 1) {
      throw std::runtime_error("SHA-256 through libcrypto failed");
    }
  }
  std::array<unsigned char, kDigestBytes> Final() {
    std::array<unsigned char, kDigestBytes> out{};
    unsigned int length = 0;
    if (EVP_DigestFinal_ex(ctx_, out.data(), &length) != 1 || length != kDigestBytes) {
      throw std::runtime_error("SHA-256 through libcrypto failed");
    }
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

std::string Hex(const unsigned char* bytes, size_t n) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[bytes[i] >> 4]);
    out.push_back(kHex[bytes[i] & 15]);
  }
  return out;
}

// Owns a file descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Closes now and reports the error close() gives (NFS reports write-back failures here).
  int Close() {
    int rc = fd_ >= 0 ? ::close(fd_) : 0;
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

// Reads exactly n bytes; false on EOF before n (a truncated file). Throws nothing.
bool ReadFull(int fd, void* data, size_t n, int* err) {
  auto* p = static_cast<char*>(data);
  while (n > 0) {
    ssize_t got = ::read(fd, p, n);
    if (got < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      return false;
    }
    if (got == 0) {
      *err = 0;
      return false;
    }
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0777) == 0 || errno == EEXIST) return Status::Ok();
  return IoError("cannot create directory " + path + ": " + ErrnoText(errno));
}

Status MakeDirs(const std::string& path) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos == path.size() || path[pos] == '/') {
      ATP_RETURN_IF_ERROR(MakeDir(path.substr(0, pos)));
    }
  }
  return Status::Ok();
}

bool IsHexDirName(const char* name) {
  return std::strlen(name) == 2 && std::isxdigit(static_cast<unsigned char>(name[0])) &&
         std::isxdigit(static_cast<unsigned char>(name[1]));
}

bool EndsWith(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

int64_t NanosOf(const timespec& t) { return static_cast<int64_t>(t.tv_sec) * 1000000000LL + t.tv_nsec; }

Json KeyJson(const FeatureKey& key) {
  Json j;
  j["backbone"] = key.backbone;
  j["dataset"] = key.dataset;
  j["items"] = key.items;
  j["num_items"] = key.num_items;
  j["preprocessing"] = key.preprocessing;
  j["kind"] = key.kind;
  j["version"] = key.version;
  return j;
}

// One entry found by a scan of the cache directory.
struct ScannedEntry {
  std::string entry_path;        // "" for a description without an entry
  std::string description_path;  // "" when absent
  int64_t bytes = 0;             // entry + description
  int64_t mtime_ns = 0;          // the entry's (its LRU age), else the description's
};

// Lists entries under dir/xx/ and removes temp files of dead writers. Files that vanish
// during the scan (a concurrent eviction) are skipped.
Result<std::vector<ScannedEntry>> ScanEntries(const std::string& dir) {
  std::vector<ScannedEntry> out;
  DIR* top = ::opendir(dir.c_str());
  if (!top) {
    if (errno == ENOENT) return out;
    return IoError("cannot list " + dir + ": " + ErrnoText(errno));
  }
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  std::vector<std::string> fans;
  while (dirent* d = ::readdir(top)) {
    if (IsHexDirName(d->d_name)) fans.push_back(dir + "/" + d->d_name);
  }
  ::closedir(top);
  for (const std::string& fan : fans) {
    DIR* sub = ::opendir(fan.c_str());
    if (!sub) continue;  // evicted or not a directory
    std::map<std::string, ScannedEntry> by_stem;
    while (dirent* d = ::readdir(sub)) {
      const std::string name = d->d_name;
      if (name == "." || name == "..") continue;
      const std::string path = fan + "/" + name;
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      if (IsAtomicWriteTemp(name)) {
        if (now.tv_sec - st.st_mtim.tv_sec > kStaleTempSeconds) ::unlink(path.c_str());
        continue;
      }
      const bool is_entry = EndsWith(name, kEntrySuffix);
      const bool is_description = EndsWith(name, kDescriptionSuffix);
      if (!is_entry && !is_description) continue;
      const std::string stem = name.substr(0, name.size() - (is_entry ? std::strlen(kEntrySuffix)
                                                                      : std::strlen(kDescriptionSuffix)));
      ScannedEntry& e = by_stem[stem];
      e.bytes += st.st_size;
      if (is_entry) {
        e.entry_path = path;
        e.mtime_ns = NanosOf(st.st_mtim);
      } else {
        e.description_path = path;
        if (e.entry_path.empty()) e.mtime_ns = NanosOf(st.st_mtim);
      }
    }
    ::closedir(sub);
    for (auto& [stem, e] : by_stem) {
      // A description whose entry is missing is young (its Put is under way) or an orphan
      // of a dead writer; only the latter is worth counting and evicting.
      if (e.entry_path.empty() && now.tv_sec - e.mtime_ns / 1000000000LL <= kStaleTempSeconds) continue;
      out.push_back(std::move(e));
    }
  }
  return out;
}

// Deletes `path` if it still names the file open as `fd`: a writer may have just renamed a
// good entry over the corrupt one, and that one must survive.
void UnlinkIfSameFile(const std::string& path, int fd) {
  struct stat open_st {}, path_st {};
  if (::fstat(fd, &open_st) != 0 || ::stat(path.c_str(), &path_st) != 0) return;
  if (open_st.st_ino == path_st.st_ino && open_st.st_dev == path_st.st_dev) ::unlink(path.c_str());
}

}  // namespace

std::string FeatureKey::Digest() const { return Sha256Hex(KeyJson(*this).dump()); }

std::string FeatureKey::Describe() const { return KeyJson(*this).dump(2); }

FeatureCache::FeatureCache(std::string dir, int64_t max_bytes) : dir_(std::move(dir)), max_bytes_(max_bytes) {}

std::string FeatureCache::EntryPath(const FeatureKey& key) const {
  const std::string d = key.Digest();
  return dir_ + "/" + d.substr(0, 2) + "/" + d.substr(2) + kEntrySuffix;
}

std::string FeatureCache::DescriptionPath(const FeatureKey& key) const {
  const std::string d = key.Digest();
  return dir_ + "/" + d.substr(0, 2) + "/" + d.substr(2) + kDescriptionSuffix;
}

Result<std::optional<at::Tensor>> FeatureCache::Get(const FeatureKey& key) {
  const std::string digest = key.Digest();
  const std::string path = EntryPath(key);
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    // ESTALE: on NFS the file was replaced or evicted under us; same as not there.
    if (errno == ENOENT || errno == ENOTDIR || errno == ESTALE) {
      ++misses_;
      return std::optional<at::Tensor>();
    }
    ++misses_;
    return IoError("cannot open feature-cache entry " + path + ": " + ErrnoText(errno));
  }
  // From here on, anything wrong with the bytes is a miss: the entry is deleted (if it is
  // still the file we read) and the caller recomputes.
  auto corrupt = [&](const std::string& why) -> Result<std::optional<at::Tensor>> {
    ++misses_;
    ++corrupt_;
    {
      std::lock_guard<std::mutex> lock(error_mu_);
      last_error_ = "deleted corrupt feature-cache entry " + path + " (" + why + ")";
    }
    UnlinkIfSameFile(path, fd.get());
    return std::optional<at::Tensor>();
  };
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return corrupt("fstat failed");
  const int64_t file_size = st.st_size;

  char fixed[kFixedHeader];
  int err = 0;
  // ESTALE: on NFS another node evicted or replaced the entry while it was read. The file
  // was fine, so this is a plain miss.
  auto stale = [&]() -> Result<std::optional<at::Tensor>> {
    ++misses_;
    return std::optional<at::Tensor>();
  };
  if (!ReadFull(fd.get(), fixed, sizeof(fixed), &err)) return err == ESTALE ? stale() : corrupt("short header");
  uint32_t version = 0, dtype = 0, ndim = 0;
  std::memcpy(&version, fixed + 8, 4);
  std::memcpy(&dtype, fixed + 12, 4);
  std::memcpy(&ndim, fixed + 16, 4);
  if (std::memcmp(fixed, kMagic, sizeof(kMagic)) != 0 || version != kFileVersion || dtype != kDtypeFloat32 ||
      ndim < 1 || ndim > kMaxDims || std::string(fixed + 24, 64) != digest) {
    return corrupt("bad header");
  }
  std::vector<char> rest(ndim * 8 + 8 + kDigestBytes);
  if (!ReadFull(fd.get(), rest.data(), rest.size(), &err)) return err == ESTALE ? stale() : corrupt("short header");
  std::vector<int64_t> shape(ndim);
  std::memcpy(shape.data(), rest.data(), ndim * 8);
  uint64_t payload_bytes = 0;
  std::memcpy(&payload_bytes, rest.data() + ndim * 8, 8);
  const int64_t header_bytes = static_cast<int64_t>(kFixedHeader + rest.size());
  // The shape must account for exactly the bytes the file holds (no overflow, no giant
  // allocation from a damaged header).
  uint64_t elements = 1;
  for (int64_t d : shape) {
    if (d < 0 || (d > 0 && elements > static_cast<uint64_t>(INT64_MAX) / 4 / static_cast<uint64_t>(d))) {
      return corrupt("bad shape");
    }
    elements *= static_cast<uint64_t>(d);
  }
  if (elements * 4 != payload_bytes || static_cast<int64_t>(payload_bytes) != file_size - header_bytes) {
    return corrupt("size mismatch");
  }
  at::Tensor values = at::empty(shape, at::kFloat);
  if (!ReadFull(fd.get(), values.data_ptr<float>(), payload_bytes, &err)) {
    return err == ESTALE ? stale() : corrupt("short payload");
  }
  Sha256Stream sha;
  sha.Update(fixed, sizeof(fixed));
  sha.Update(rest.data(), rest.size() - kDigestBytes);
  sha.Update(values.data_ptr<float>(), payload_bytes);
  if (std::memcmp(sha.Final().data(), rest.data() + rest.size() - kDigestBytes, kDigestBytes) != 0) {
    return corrupt("checksum mismatch");
  }
  // LRU age: a hit makes the entry young. Failing (a file of another user) only makes the
  // entry look older than it is.
  ::futimens(fd.get(), nullptr);
  ++hits_;
  bytes_read_ += file_size;
  return std::optional<at::Tensor>(std::move(values));
}

Status FeatureCache::Put(const FeatureKey& key, const at::Tensor& features) {
  if (!features.defined()) return InvalidArgument("FeatureCache::Put: undefined tensor for " + key.Describe());
  if (features.scalar_type() != at::kFloat) {
    return InvalidArgument(std::string("FeatureCache::Put: only float32 is stored bit-exactly, got ") +
                           c10::toString(features.scalar_type()));
  }
  if (features.dim() < 1 || features.dim() > static_cast<int64_t>(kMaxDims)) {
    return InvalidArgument("FeatureCache::Put: tensors of 1 to 8 dimensions, got " +
                           std::to_string(features.dim()));
  }
  const at::Tensor values = features.to(at::kCPU).contiguous();
  const std::string digest = key.Digest();
  const std::string fan = dir_ + "/" + digest.substr(0, 2);
  ATP_RETURN_IF_ERROR(MakeDirs(fan));

  const uint32_t ndim = static_cast<uint32_t>(values.dim());
  const uint64_t payload_bytes = static_cast<uint64_t>(values.numel()) * 4;
  std::vector<char> header(kFixedHeader + ndim * 8 + 8 + kDigestBytes, 0);
  std::memcpy(header.data(), kMagic, sizeof(kMagic));
  std::memcpy(header.data() + 8, &kFileVersion, 4);
  std::memcpy(header.data() + 12, &kDtypeFloat32, 4);
  std::memcpy(header.data() + 16, &ndim, 4);
  std::memcpy(header.data() + 24, digest.data(), 64);
  for (uint32_t i = 0; i < ndim; ++i) {
    const int64_t d = values.size(i);
    std::memcpy(header.data() + kFixedHeader + i * 8, &d, 8);
  }
  std::memcpy(header.data() + kFixedHeader + ndim * 8, &payload_bytes, 8);
  Sha256Stream sha;
  sha.Update(header.data(), header.size() - kDigestBytes);
  sha.Update(values.data_ptr<float>(), payload_bytes);
  const auto checksum = sha.Final();
  std::memcpy(header.data() + header.size() - kDigestBytes, checksum.data(), kDigestBytes);

  // The description first, so that a published entry always has one for `ls`-style reading.
  Json description = KeyJson(key);
  description["digest"] = digest;
  description["shape"] = values.sizes().vec();
  description["dtype"] = "float32";
  const std::string description_text = description.dump(2) + "\n";
  ATP_RETURN_IF_ERROR(WriteFileAtomically(DescriptionPath(key), description_text));
  const std::string path = EntryPath(key);
  ATP_RETURN_IF_ERROR(WriteFileAtomically(
      path, {std::string_view(header.data(), header.size()),
             std::string_view(reinterpret_cast<const char*>(values.data_ptr<float>()),
                              static_cast<size_t>(payload_bytes))}));
  ++puts_;
  bytes_written_ += static_cast<int64_t>(header.size() + payload_bytes);
  if (max_bytes_ > 0) return EvictOverBound(path);
  return Status::Ok();
}

Status FeatureCache::EvictOverBound(const std::string& keep_path) {
  ATP_ASSIGN_OR_RETURN(std::vector<ScannedEntry> entries, ScanEntries(dir_));
  int64_t total = 0;
  for (const auto& e : entries) total += e.bytes;
  if (total <= max_bytes_) return Status::Ok();
  // Oldest first; the path breaks ties so that concurrent evictors agree on the order.
  std::sort(entries.begin(), entries.end(), [](const ScannedEntry& a, const ScannedEntry& b) {
    if (a.mtime_ns != b.mtime_ns) return a.mtime_ns < b.mtime_ns;
    return a.entry_path + a.description_path < b.entry_path + b.description_path;
  });
  for (const auto& e : entries) {
    if (total <= max_bytes_) break;
    if (e.entry_path == keep_path) continue;
    // A reader that already opened the entry keeps its inode until it closes it; one that
    // opens it after this unlink gets ENOENT, a miss.
    bool removed = false;
    if (!e.entry_path.empty() && ::unlink(e.entry_path.c_str()) == 0) removed = true;
    if (!e.description_path.empty() && ::unlink(e.description_path.c_str()) == 0 && e.entry_path.empty()) {
      removed = true;
    }
    if (removed) ++evictions_;
    // Counted as gone even when another process got there first.
    total -= e.bytes;
  }
  return Status::Ok();
}

Result<int64_t> FeatureCache::TotalBytes() const {
  ATP_ASSIGN_OR_RETURN(std::vector<ScannedEntry> entries, ScanEntries(dir_));
  int64_t total = 0;
  for (const auto& e : entries) total += e.bytes;
  return total;
}

void FeatureCache::RecordError(const Status& status) {
  ++errors_;
  std::lock_guard<std::mutex> lock(error_mu_);
  last_error_ = status.ToString();
}

Result<at::Tensor> FeatureCache::GetOrCompute(const FeatureKey& key,
                                              const std::function<Result<at::Tensor>()>& compute) {
  auto cached = Get(key);
  if (!cached.ok()) {
    RecordError(cached.status());
  } else if (cached->has_value()) {
    return std::move(**cached);
  }
  ATP_ASSIGN_OR_RETURN(at::Tensor computed, compute());
  if (!computed.defined() || computed.scalar_type() != at::kFloat) {
    return InvalidArgument("feature computation for " + key.Describe() + " did not return a float32 tensor");
  }
  // What goes to disk is exactly what the caller gets, so that a later hit is identical.
  at::Tensor stored = computed.to(at::kCPU).contiguous();
  Status put = Put(key, stored);
  if (!put.ok()) RecordError(put);
  return stored;
}

FeatureCache::Stats FeatureCache::stats() const {
  Stats s;
  s.hits = hits_.load();
  s.misses = misses_.load();
  s.corrupt = corrupt_.load();
  s.puts = puts_.load();
  s.evictions = evictions_.load();
  s.bytes_read = bytes_read_.load();
  s.bytes_written = bytes_written_.load();
  s.errors = errors_.load();
  std::lock_guard<std::mutex> lock(error_mu_);
  s.last_error = last_error_;
  return s;
}

namespace {

struct FileIdentity {
  int64_t size = 0, mtime_ns = 0, ctime_ns = 0;
  uint64_t inode = 0;
  bool operator==(const FileIdentity& o) const {
    return size == o.size && mtime_ns == o.mtime_ns && ctime_ns == o.ctime_ns && inode == o.inode;
  }
};

FileIdentity IdentityOf(const struct stat& st) {
  return {static_cast<int64_t>(st.st_size), NanosOf(st.st_mtim), NanosOf(st.st_ctim),
          static_cast<uint64_t>(st.st_ino)};
}

Result<std::string> HashFile(const std::string& path, FileIdentity* identity) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return IoError("cannot open " + path + " to hash it: " + ErrnoText(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return IoError("cannot stat " + path + ": " + ErrnoText(errno));
  *identity = IdentityOf(st);
  Sha256Stream sha;
  std::vector<char> buffer(4 << 20);
  while (true) {
    ssize_t got = ::read(fd.get(), buffer.data(), buffer.size());
    if (got < 0) {
      if (errno == EINTR) continue;
      return IoError("cannot read " + path + ": " + ErrnoText(errno));
    }
    if (got == 0) break;
    sha.Update(buffer.data(), static_cast<size_t>(got));
  }
  const auto digest = sha.Final();
  return Hex(digest.data(), digest.size());
}

}  // namespace

Result<std::string> FileDigest(const std::string& path, const std::string& cache_dir) {
  char resolved[PATH_MAX];
  if (!::realpath(path.c_str(), resolved)) {
    return NotFound("cannot resolve " + path + " to hash it: " + ErrnoText(errno));
  }
  const std::string absolute = resolved;
  struct stat st {};
  if (::stat(absolute.c_str(), &st) != 0) return IoError("cannot stat " + absolute + ": " + ErrnoText(errno));
  const FileIdentity now = IdentityOf(st);

  const std::string memo_dir = cache_dir.empty() ? "" : cache_dir + "/file_digests";
  const std::string memo_path = memo_dir.empty() ? "" : memo_dir + "/" + Sha256Hex(absolute) + ".json";
  if (!memo_path.empty()) {
    std::string text;
    Fd fd(::open(memo_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() >= 0) {
      char buf[4096];
      ssize_t got;
      while ((got = ::read(fd.get(), buf, sizeof(buf))) > 0) text.append(buf, static_cast<size_t>(got));
      Json memo = Json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (memo.is_object() && memo.value("path", "") == absolute && memo.value("size", int64_t{-1}) == now.size &&
          memo.value("mtime_ns", int64_t{-1}) == now.mtime_ns && memo.value("ctime_ns", int64_t{-1}) == now.ctime_ns &&
          memo.value("inode", uint64_t{0}) == now.inode) {
        std::string sha = memo.value("sha256", "");
        if (sha.size() == 64) return sha;
      }
    }
  }

  // A file rewritten while it is read would give a digest of neither version.
  for (int attempt = 0; attempt < 3; ++attempt) {
    FileIdentity before;
    ATP_ASSIGN_OR_RETURN(std::string digest, HashFile(absolute, &before));
    struct stat after_st {};
    if (::stat(absolute.c_str(), &after_st) != 0) return IoError("cannot stat " + absolute + ": " + ErrnoText(errno));
    if (!(IdentityOf(after_st) == before)) continue;
    if (!memo_path.empty() && MakeDirs(memo_dir).ok()) {
      Json memo;
      memo["path"] = absolute;
      memo["size"] = before.size;
      memo["mtime_ns"] = before.mtime_ns;
      memo["ctime_ns"] = before.ctime_ns;
      memo["inode"] = before.inode;
      memo["sha256"] = digest;
      const std::string text = memo.dump(2) + "\n";
      (void)WriteFileAtomically(memo_path, text);
    }
    return digest;
  }
  return FailedPrecondition(absolute + " kept changing while it was hashed; wait for the copy to finish and retry");
}

std::string DefaultFeatureCacheDir() {
  if (const char* env = std::getenv("ATP_FEATURE_CACHE"); env && *env) return env;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return std::string(xdg) + "/atp/features";
  if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.cache/atp/features";
  return "/tmp/atp/features";  // no home at all (a bare batch environment)
}

}  // namespace atp::train
