// bench_data: images decoded and transformed per second by the DataLoader with 1 thread and
// with all cores, and the ratio. By default on synthetic 500x375 JPEGs (the typical size of
// the paper's datasets) written to a temporary folder; --root/--dataset measure a real one.
// Images per CPU-second are printed too: on a machine shared with other work the wall-clock
// ratio understates scaling, while the CPU cost per image does not depend on the load.
//   atp_bench_data [--images N] [--resolution R] [--root R --dataset D] [--threads T]
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "worker/data/augment_random.h"
#include "worker/data/dataset.h"
#include "worker/data/image.h"
#include "worker/data/loader.h"

namespace {

using atp::data::Datum;

// A photo-like image: smooth gradients plus noise, so the JPEG has realistic entropy.
atp::data::Image SyntheticPhoto(int w, int h, uint64_t seed) {
  atp::data::Image im;
  im.width = w;
  im.height = h;
  im.rgb.resize(static_cast<size_t>(w) * h * 3);
  atp::data::CounterRandom rng(seed, atp::data::RandomDomain::kAugment, 99, 0);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < 3; ++c) {
        const int v = (x * (c + 1) + y * (3 - c)) / 4 + static_cast<int>(rng.Below(48));
        im.rgb[(static_cast<size_t>(y) * w + x) * 3 + c] = static_cast<uint8_t>(v & 255);
      }
    }
  }
  return im;
}

double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

struct Rate {
  double wall;  // images per wall-clock second
  double cpu;   // images per CPU second of the whole process (all threads)
};

Rate ImagesPerSecond(const std::string& root, const std::vector<Datum>& items, bool train,
                     int threads, int resolution) {
  atp::data::LoaderOptions o;
  o.train = train;
  o.threads = threads;
  o.batch_size = 32;
  o.resolution = resolution;
  o.prefetch_batches = 2 * threads + 2;
  atp::data::DataLoader loader(root, items, o);
  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = CpuSeconds();
  loader.StartEpoch(0);
  atp::data::Batch batch;
  int64_t n = 0;
  while (true) {
    auto more = loader.Next(&batch);
    if (!more.ok()) {
      std::fprintf(stderr, "bench_data: %s\n", more.status().ToString().c_str());
      std::exit(1);
    }
    if (!*more) break;
    n += batch.images.size(0);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return Rate{n / s, n / (CpuSeconds() - cpu_start)};
}

}  // namespace

int main(int argc, char** argv) {
  int images = 256, resolution = 224;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::string root, dataset;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool v = i + 1 < argc;
    if (a == "--images" && v) images = std::atoi(argv[++i]);
    else if (a == "--resolution" && v) resolution = std::atoi(argv[++i]);
    else if (a == "--threads" && v) threads = std::atoi(argv[++i]);
    else if (a == "--root" && v) root = argv[++i];
    else if (a == "--dataset" && v) dataset = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--images N] [--resolution R] [--threads T] [--root R --dataset D]\n", argv[0]);
      return 2;
    }
  }
  std::vector<Datum> items;
  std::string temp;
  if (!root.empty()) {
    auto s = atp::data::ReadDataset(root, dataset);
    if (!s.ok()) {
      std::fprintf(stderr, "bench_data: %s\n", s.status().ToString().c_str());
      return 1;
    }
    items = s->test;
    if (static_cast<int>(items.size()) > images) items.resize(static_cast<size_t>(images));
  } else {
    char tmpl[] = "/tmp/atp_bench_data_XXXXXX";
    temp = mkdtemp(tmpl);
    root = temp;
    for (int i = 0; i < images; ++i) {
      // Distinct files of a few variants, so the page cache holds them like a warm dataset.
      const std::string rel = "img" + std::to_string(i) + ".jpg";
      if (i < 8) {
        atp::Status st = atp::data::WriteJpegFile(root + "/" + rel, SyntheticPhoto(500, 375, i), 90);
        if (!st.ok()) {
          std::fprintf(stderr, "bench_data: %s\n", st.ToString().c_str());
          return 1;
        }
      } else {
        std::filesystem::copy_file(root + "/img" + std::to_string(i % 8) + ".jpg", root + "/" + rel);
      }
      items.push_back(Datum{rel, i % 10, "c"});
    }
  }
  std::printf("bench_data: %zu images (%s), output %dx%d, batch 32\n", items.size(),
              temp.empty() ? (dataset + " test split").c_str() : "synthetic 500x375 JPEG q90",
              resolution, resolution);
  for (bool train : {false, true}) {
    ImagesPerSecond(root, items, train, 1, resolution);  // warm the page cache and allocator
    const Rate one = ImagesPerSecond(root, items, train, 1, resolution);
    const Rate all = ImagesPerSecond(root, items, train, threads, resolution);
    std::printf("%-5s transform: %8.1f images/s with 1 thread, %8.1f images/s with %d threads, "
                "ratio %.2f (%.1f images per CPU-second)\n",
                train ? "train" : "test", one.wall, all.wall, threads, all.wall / one.wall, one.cpu);
  }
  if (!temp.empty()) std::filesystem::remove_all(temp);
  return 0;
}
