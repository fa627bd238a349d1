#include "worker/train/feature_cache.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>
#include <thread>
#include <vector>

#include "common/hash.h"
#include "common/json.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"

namespace atp::train {
namespace {

namespace fs = std::filesystem;

using ::atp::testing::TempDir;

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

FeatureKey Key(const std::string& name) {
  FeatureKey key;
  key.backbone = Sha256Hex("backbone");
  key.dataset = "dtd";
  key.items = Sha256Hex(name);
  key.num_items = 4;
  key.preprocessing = "train R=224 seed=1 epoch=3";
  return key;
}

// Deterministic contents per (tag, shape) built with raw writes only: the fork tests call it
// in children, where libtorch's thread pools must not be used.
at::Tensor Pattern(int64_t rows, int64_t cols, uint32_t tag) {
  at::Tensor t = at::empty({rows, cols}, at::kFloat);
  float* p = t.data_ptr<float>();
  uint32_t h = tag * 2654435761u + 1;
  for (int64_t i = 0; i < rows * cols; ++i) {
    h ^= h << 13;
    h ^= h >> 17;
    h ^= h << 5;
    p[i] = static_cast<float>(h) / 4294967296.0f - 0.5f;
  }
  return t;
}

bool BitEqual(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes() || a.scalar_type() != b.scalar_type()) return false;
  at::Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.numel() * ca.element_size()) == 0;
}

void AgeFile(const std::string& path, int seconds_ago) {
  timespec times[2];
  clock_gettime(CLOCK_REALTIME, &times[0]);
  times[0].tv_sec -= seconds_ago;
  times[1] = times[0];
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

class FeatureCacheTest : public ::testing::Test {
 protected:
  TempDir tmp_;
  std::string dir_ = tmp_ / "cache";
};

TEST_F(FeatureCacheTest, PutThenGetIsBitExact) {
  FeatureCache cache(dir_, 0);
  at::Tensor t = Pattern(5, 7, 1);
  float* p = t.data_ptr<float>();
  p[0] = -0.0f;
  p[1] = std::numeric_limits<float>::quiet_NaN();
  p[2] = std::numeric_limits<float>::infinity();
  p[3] = std::numeric_limits<float>::denorm_min();
  p[4] = std::nextafter(1.0f, 2.0f);
  ASSERT_OK(cache.Put(Key("a"), t));
  auto got = cache.Get(Key("a"));
  ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_TRUE(BitEqual(**got, t));
  EXPECT_EQ(cache.stats().hits, 1);
  EXPECT_GT(cache.stats().bytes_read, 5 * 7 * 4);
  EXPECT_EQ(cache.stats().bytes_read, cache.stats().bytes_written);
}

TEST_F(FeatureCacheTest, NonContiguousInputIsStoredByValue) {
  FeatureCache cache(dir_, 0);
  at::Tensor t = Pattern(6, 4, 2).t();
  ASSERT_OK(cache.Put(Key("t"), t));
  auto got = cache.Get(Key("t"));
  ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_TRUE(BitEqual(**got, t));
}

TEST_F(FeatureCacheTest, AbsentKeyIsAMiss) {
  FeatureCache cache(dir_, 0);
  auto got = cache.Get(Key("nothing"));
  ASSERT_OK(got);
  EXPECT_FALSE(got->has_value());
  EXPECT_EQ(cache.stats().misses, 1);
}

TEST_F(FeatureCacheTest, EveryKeyFieldChangesTheDigest) {
  const FeatureKey base = Key("x");
  std::vector<FeatureKey> variants(7, base);
  variants[0].backbone = Sha256Hex("other");
  variants[1].dataset = "eurosat";
  variants[2].items = Sha256Hex("y");
  variants[3].num_items = 5;
  variants[4].preprocessing = "train R=224 seed=1 epoch=4";
  variants[5].kind = "other";
  variants[6].version = base.version + 1;
  for (const auto& v : variants) EXPECT_NE(v.Digest(), base.Digest()) << v.Describe();
  EXPECT_EQ(base.Digest().size(), 64u);
  EXPECT_EQ(Key("x").Digest(), base.Digest());
}

TEST_F(FeatureCacheTest, EntryLivesUnderTwoLevelFanOutWithADescription) {
  FeatureCache cache(dir_, 0);
  const FeatureKey key = Key("layout");
  ASSERT_OK(cache.Put(key, Pattern(2, 3, 3)));
  const std::string d = key.Digest();
  EXPECT_EQ(cache.EntryPath(key), dir_ + "/" + d.substr(0, 2) + "/" + d.substr(2) + ".feat");
  EXPECT_TRUE(fs::exists(cache.EntryPath(key)));
  Json description = Json::parse(ReadBytes(cache.DescriptionPath(key)));
  EXPECT_EQ(description["dataset"], "dtd");
  EXPECT_EQ(description["preprocessing"], "train R=224 seed=1 epoch=3");
  EXPECT_EQ(description["digest"], d);
  EXPECT_EQ(description["shape"], Json::array({2, 3}));
  // No temp files are left behind.
  for (const auto& e : fs::recursive_directory_iterator(dir_)) {
    EXPECT_EQ(e.path().filename().string().rfind(".tmp-", 0), std::string::npos) << e.path();
  }
}

TEST_F(FeatureCacheTest, TruncatedEntryIsAMissThatIsDeletedAndRecomputed) {
  const at::Tensor t = Pattern(8, 16, 4);
  const FeatureKey key = Key("trunc");
  FeatureCache writer(dir_, 0);
  ASSERT_OK(writer.Put(key, t));
  const std::string whole = ReadBytes(writer.EntryPath(key));
  for (size_t keep : {size_t{0}, size_t{10}, size_t{90}, whole.size() / 2, whole.size() - 1}) {
    WriteBytes(writer.EntryPath(key), whole.substr(0, keep));
    FeatureCache cache(dir_, 0);
    auto got = cache.Get(key);
    ASSERT_OK(got);
    EXPECT_FALSE(got->has_value()) << "kept " << keep << " bytes";
    EXPECT_EQ(cache.stats().corrupt, 1);
    EXPECT_FALSE(fs::exists(cache.EntryPath(key))) << "corrupt entry not deleted";
    int calls = 0;
    auto value = cache.GetOrCompute(key, [&]() -> Result<at::Tensor> {
      ++calls;
      return t.clone();
    });
    ASSERT_OK(value);
    EXPECT_EQ(calls, 1);
    EXPECT_TRUE(BitEqual(*value, t));
    EXPECT_EQ(ReadBytes(cache.EntryPath(key)), whole);
  }
}

TEST_F(FeatureCacheTest, FlippedByteAnywhereIsAMiss) {
  const FeatureKey key = Key("flip");
  FeatureCache cache(dir_, 0);
  ASSERT_OK(cache.Put(key, Pattern(4, 4, 5)));
  const std::string whole = ReadBytes(cache.EntryPath(key));
  // Every byte of the header (magic, version, dtype, ndim, key digest, shape, sizes,
  // checksum) and a few of the payload.
  std::vector<size_t> positions;
  for (size_t i = 0; i < whole.size() - 64; ++i) positions.push_back(i);
  positions.push_back(whole.size() - 1);
  int misses = 0;
  for (size_t pos : positions) {
    std::string bad = whole;
    bad[pos] ^= 0x40;
    WriteBytes(cache.EntryPath(key), bad);
    auto got = cache.Get(key);
    ASSERT_OK(got);
    EXPECT_FALSE(got->has_value()) << "byte " << pos << " flipped and still served";
    ++misses;
  }
  EXPECT_EQ(cache.stats().corrupt, misses);
}

TEST_F(FeatureCacheTest, SwappedShapeWithTheSameByteCountIsAMiss) {
  const FeatureKey key = Key("shape");
  FeatureCache cache(dir_, 0);
  ASSERT_OK(cache.Put(key, Pattern(2, 8, 6)));
  std::string bytes = ReadBytes(cache.EntryPath(key));
  const int64_t swapped[2] = {8, 2};
  std::memcpy(bytes.data() + 88, swapped, sizeof(swapped));
  WriteBytes(cache.EntryPath(key), bytes);
  auto got = cache.Get(key);
  ASSERT_OK(got);
  EXPECT_FALSE(got->has_value());
}

TEST_F(FeatureCacheTest, EntryCopiedToAnotherKeysNameIsAMiss) {
  FeatureCache cache(dir_, 0);
  ASSERT_OK(cache.Put(Key("a"), Pattern(2, 2, 7)));
  fs::create_directories(fs::path(cache.EntryPath(Key("b"))).parent_path());
  fs::copy_file(cache.EntryPath(Key("a")), cache.EntryPath(Key("b")));
  auto got = cache.Get(Key("b"));
  ASSERT_OK(got);
  EXPECT_FALSE(got->has_value());
}

TEST_F(FeatureCacheTest, PutRejectsWhatCannotBeStoredBitExactly) {
  FeatureCache cache(dir_, 0);
  EXPECT_EQ(cache.Put(Key("d"), at::zeros({2, 2}, at::kDouble)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(cache.Put(Key("h"), at::zeros({2, 2}, at::kHalf)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(cache.Put(Key("u"), at::Tensor()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(cache.Put(Key("s"), at::zeros({}, at::kFloat)).code(), StatusCode::kInvalidArgument);
}

TEST_F(FeatureCacheTest, EmptyTensorRoundTrips) {
  FeatureCache cache(dir_, 0);
  ASSERT_OK(cache.Put(Key("empty"), at::empty({0, 32}, at::kFloat)));
  auto got = cache.Get(Key("empty"));
  ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->sizes().vec(), (std::vector<int64_t>{0, 32}));
}

TEST_F(FeatureCacheTest, GetOrComputeComputesOnceAndColdEqualsWarm) {
  FeatureCache cache(dir_, 0);
  int calls = 0;
  auto compute = [&]() -> Result<at::Tensor> {
    ++calls;
    return Pattern(3, 5, 8);
  };
  auto cold = cache.GetOrCompute(Key("goc"), compute);
  auto warm = cache.GetOrCompute(Key("goc"), compute);
  ASSERT_OK(cold);
  ASSERT_OK(warm);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(BitEqual(*cold, *warm));
  EXPECT_EQ(cache.stats().hits, 1);
  EXPECT_EQ(cache.stats().misses, 1);
  EXPECT_EQ(cache.stats().puts, 1);
}

TEST_F(FeatureCacheTest, ComputeErrorIsReturnedAndNothingIsStored) {
  FeatureCache cache(dir_, 0);
  auto got = cache.GetOrCompute(Key("err"), []() -> Result<at::Tensor> { return IoError("image x.jpg unreadable"); });
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().message(), "image x.jpg unreadable");
  EXPECT_FALSE(fs::exists(cache.EntryPath(Key("err"))));
}

TEST_F(FeatureCacheTest, UnwritableCacheStillReturnsComputedFeatures) {
  WriteBytes(tmp_ / "file", "not a directory");
  FeatureCache cache(tmp_ / "file/cache", 0);
  auto got = cache.GetOrCompute(Key("w"), []() -> Result<at::Tensor> { return Pattern(2, 2, 9); });
  ASSERT_OK(got);
  EXPECT_TRUE(BitEqual(*got, Pattern(2, 2, 9)));
  EXPECT_EQ(cache.stats().errors, 1);
  EXPECT_NE(cache.stats().last_error.find("file/cache"), std::string::npos) << cache.stats().last_error;
}

TEST_F(FeatureCacheTest, EvictionKeepsTotalUnderBoundAndEvictsLeastRecentlyUsedFirst) {
  const at::Tensor t = Pattern(64, 64, 10);  // 16 KiB payload
  int64_t one = 0;
  {
    FeatureCache probe(tmp_ / "probe", 0);
    ASSERT_OK(probe.Put(Key("p"), t));
    one = *probe.TotalBytes();
  }
  FeatureCache cache(dir_, 3 * one + one / 2);
  ASSERT_OK(cache.Put(Key("A"), t));
  ASSERT_OK(cache.Put(Key("B"), t));
  ASSERT_OK(cache.Put(Key("C"), t));
  // Explicit ages: A oldest, then B, then C; then a Get makes A the youngest.
  AgeFile(cache.EntryPath(Key("A")), 300);
  AgeFile(cache.EntryPath(Key("B")), 200);
  AgeFile(cache.EntryPath(Key("C")), 100);
  auto hit = cache.Get(Key("A"));
  ASSERT_OK(hit);
  ASSERT_TRUE(hit->has_value());
  ASSERT_OK(cache.Put(Key("D"), t));
  EXPECT_TRUE(fs::exists(cache.EntryPath(Key("A"))));
  EXPECT_FALSE(fs::exists(cache.EntryPath(Key("B"))));
  EXPECT_FALSE(fs::exists(cache.DescriptionPath(Key("B"))));
  EXPECT_TRUE(fs::exists(cache.EntryPath(Key("C"))));
  EXPECT_TRUE(fs::exists(cache.EntryPath(Key("D"))));
  EXPECT_LE(*cache.TotalBytes(), cache.max_bytes());
  EXPECT_EQ(cache.stats().evictions, 1);

  // Many more: the bound holds after every Put and the newest survive.
  for (int i = 0; i < 10; ++i) {
    ASSERT_OK(cache.Put(Key("E" + std::to_string(i)), t));
    EXPECT_LE(*cache.TotalBytes(), cache.max_bytes());
  }
  EXPECT_TRUE(fs::exists(cache.EntryPath(Key("E9"))));
  int entries = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir_)) entries += e.path().extension() == ".feat";
  EXPECT_EQ(entries, 3);
}

TEST_F(FeatureCacheTest, EntryLargerThanTheBoundSurvivesItsOwnPut) {
  FeatureCache cache(dir_, 100);
  ASSERT_OK(cache.Put(Key("big"), Pattern(32, 32, 11)));
  auto got = cache.Get(Key("big"));
  ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  ASSERT_OK(cache.Put(Key("big2"), Pattern(32, 32, 12)));
  EXPECT_FALSE(fs::exists(cache.EntryPath(Key("big"))));
  EXPECT_TRUE(fs::exists(cache.EntryPath(Key("big2"))));
}

TEST_F(FeatureCacheTest, StaleTempFilesOfDeadWritersAreRemoved) {
  FeatureCache cache(dir_, 1 << 30);
  ASSERT_OK(cache.Put(Key("a"), Pattern(2, 2, 13)));
  const std::string fan = fs::path(cache.EntryPath(Key("a"))).parent_path();
  WriteBytes(fan + "/.tmp-dead", std::string(1000, 'x'));
  WriteBytes(fan + "/.tmp-live", std::string(1000, 'x'));
  AgeFile(fan + "/.tmp-dead", 2 * 3600);
  ASSERT_OK(cache.Put(Key("b"), Pattern(2, 2, 14)));
  EXPECT_FALSE(fs::exists(fan + "/.tmp-dead"));
  EXPECT_TRUE(fs::exists(fan + "/.tmp-live"));  // may belong to a writer still at work
}

// Writers of the same and of different keys racing readers: a reader gets the exact value
// of its key or a miss, never a mix. A small bound makes evictions race the readers too.
constexpr int kRaceKeys = 4;
constexpr int64_t kRaceRows = 128, kRaceCols = 512;  // 256 KiB per entry

// Returns the number of bad reads.
int RaceLoop(const std::string& dir, int64_t max_bytes, int worker, int iterations, int* hits) {
  FeatureCache cache(dir, max_bytes);
  std::vector<at::Tensor> expected;
  for (int k = 0; k < kRaceKeys; ++k) expected.push_back(Pattern(kRaceRows, kRaceCols, 100 + k));
  int bad = 0;
  for (int i = 0; i < iterations; ++i) {
    const int k = (i * 7 + worker * 3) % kRaceKeys;
    const FeatureKey key = Key("race" + std::to_string(k));
    if ((i + worker) % 3 == 0) {
      if (!cache.Put(key, expected[k]).ok()) ++bad;
    } else {
      auto got = cache.Get(key);
      if (!got.ok()) {
        ++bad;
      } else if (got->has_value()) {
        ++*hits;
        if (!BitEqual(**got, expected[k])) ++bad;
      }
    }
  }
  if (cache.stats().corrupt != 0) bad += 1000;  // a reader saw a partial file
  return bad;
}

TEST_F(FeatureCacheTest, ConcurrentThreadsNeverSeePartialEntries) {
  for (int64_t bound : {int64_t{0}, int64_t{2} * kRaceRows * kRaceCols * 4 + 4096}) {
    std::vector<std::thread> threads;
    std::atomic<int> bad{0}, hits{0};
    for (int w = 0; w < 6; ++w) {
      threads.emplace_back([&, w] {
        int h = 0;
        bad += RaceLoop(dir_, bound, w, 60, &h);
        hits += h;
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(bad.load(), 0) << "bound " << bound;
    EXPECT_GT(hits.load(), 0);
    if (bound > 0) {
      auto total = FeatureCache(dir_, bound).TotalBytes();
      ASSERT_OK(total);
      EXPECT_LE(*total, bound);
    }
  }
}

TEST_F(FeatureCacheTest, ConcurrentProcessesNeverSeePartialEntries) {
  for (int64_t bound : {int64_t{0}, int64_t{2} * kRaceRows * kRaceCols * 4 + 4096}) {
    std::vector<pid_t> children;
    for (int w = 0; w < 4; ++w) {
      pid_t pid = fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        int hits = 0;
        int bad = RaceLoop(dir_, bound, w, 60, &hits);
        _exit(bad == 0 && hits > 0 ? 0 : 1);
      }
      children.push_back(pid);
    }
    for (pid_t pid : children) {
      int status = 0;
      ASSERT_EQ(waitpid(pid, &status, 0), pid);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a child saw a bad entry; bound " << bound;
    }
  }
}

TEST_F(FeatureCacheTest, FileDigestIsTheSha256OfTheFileAndIsMemoised) {
  const std::string file = tmp_ / "weights.pt";
  WriteBytes(file, "first weights");
  auto first = FileDigest(file, dir_);
  ASSERT_OK(first);
  EXPECT_EQ(*first, Sha256Hex("first weights"));
  // The memo is what answers the second time: doctor it and the doctored digest comes back.
  const std::string memo_dir = dir_ + "/file_digests";
  ASSERT_TRUE(fs::exists(memo_dir));
  std::string memo_path;
  for (const auto& e : fs::directory_iterator(memo_dir)) memo_path = e.path().string();
  Json memo = Json::parse(ReadBytes(memo_path));
  EXPECT_EQ(memo["path"], fs::canonical(file).string());
  memo["sha256"] = std::string(64, 'f');
  WriteBytes(memo_path, memo.dump());
  EXPECT_EQ(*FileDigest(file, dir_), std::string(64, 'f'));
  // A relative spelling of the same file uses the same memo.
  const fs::path cwd = fs::current_path();
  fs::current_path(tmp_.path());
  EXPECT_EQ(*FileDigest("./weights.pt", dir_), std::string(64, 'f'));
  fs::current_path(cwd);

  // Rewriting the file (same size, then another size) invalidates the memo.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  WriteBytes(file, "other weights");
  EXPECT_EQ(*FileDigest(file, dir_), Sha256Hex("other weights"));
  WriteBytes(file, "longer other weights");
  EXPECT_EQ(*FileDigest(file, dir_), Sha256Hex("longer other weights"));
  // Without a cache directory there is no memo.
  EXPECT_EQ(*FileDigest(file, ""), Sha256Hex("longer other weights"));
  EXPECT_EQ(FileDigest(tmp_ / "missing.pt", dir_).status().code(), StatusCode::kNotFound);
}

TEST_F(FeatureCacheTest, FileDigestStreamsFilesLargerThanItsBuffer) {
  const std::string file = tmp_ / "big.bin";
  std::string bytes(9 << 20, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 31 + (i >> 12));
  WriteBytes(file, bytes);
  EXPECT_EQ(*FileDigest(file, dir_), Sha256Hex(bytes));
}

TEST(DefaultFeatureCacheDirTest, FollowsEnvironmentOrder) {
  auto keep = [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    return v ? std::optional<std::string>(v) : std::nullopt;
  };
  const auto atp = keep("ATP_FEATURE_CACHE"), xdg = keep("XDG_CACHE_HOME"), home = keep("HOME");
  setenv("ATP_FEATURE_CACHE", "/shared/features", 1);
  setenv("XDG_CACHE_HOME", "/xdg", 1);
  setenv("HOME", "/home/u", 1);
  EXPECT_EQ(DefaultFeatureCacheDir(), "/shared/features");
  unsetenv("ATP_FEATURE_CACHE");
  EXPECT_EQ(DefaultFeatureCacheDir(), "/xdg/atp/features");
  setenv("XDG_CACHE_HOME", "", 1);
  EXPECT_EQ(DefaultFeatureCacheDir(), "/home/u/.cache/atp/features");
  auto restore = [](const char* name, const std::optional<std::string>& v) {
    if (v) setenv(name, v->c_str(), 1);
    else unsetenv(name);
  };
  restore("ATP_FEATURE_CACHE", atp);
  restore("XDG_CACHE_HOME", xdg);
  restore("HOME", home);
}

// Not a benchmark, a sanity figure: an ImageNet-16-shot-sized entry (16,000 x 512 float32,
// 31 MiB) through Put (with fsync) and Get (with checksum).
TEST_F(FeatureCacheTest, LargeEntryRoundTripThroughput) {
  FeatureCache cache(dir_, 0);
  const at::Tensor t = Pattern(16000, 512, 15);
  const double mib = t.numel() * 4.0 / (1 << 20);
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_OK(cache.Put(Key("large"), t));
  auto t1 = std::chrono::steady_clock::now();
  auto got = cache.Get(Key("large"));
  auto t2 = std::chrono::steady_clock::now();
  ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_TRUE(BitEqual(**got, t));
  const double put_s = std::chrono::duration<double>(t1 - t0).count();
  const double get_s = std::chrono::duration<double>(t2 - t1).count();
  std::cout << "[ figures  ] " << mib << " MiB entry: Put " << mib / put_s << " MiB/s, Get " << mib / get_s
            << " MiB/s\n";
}

}  // namespace
}  // namespace atp::train
