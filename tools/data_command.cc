#include "tools/data_command.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "common/flag_value.h"
#include "common/progress_bar.h"
#include "worker/data/data_check.h"
#include "worker/data/dataset.h"
#include "worker/data/fashion_mnist.h"
#include "worker/data/fewshot.h"

namespace atp {
namespace {

constexpr const char* kUsage =
    "usage:\n"
    "  atp data check --root R --dataset D [--threads N] [--no-decode]\n"
    "      validate a dataset: list every missing or undecodable image, split entry outside\n"
    "      the root and class-count mismatch; exit 1 when anything is wrong\n"
    "  atp data split --root R --dataset D --shots K --seed S [--classes base|new|all]\n"
    "                 [--allow-fewer-shots]\n"
    "      print the few-shot train and val images the official code draws for this seed,\n"
    "      one per line: split<TAB>path relative to R<TAB>label<TAB>class name\n"
    "  atp data import-fashion-mnist --out R [--source DIR] [--max-per-class N]\n"
    "      write Debian's Fashion-MNIST (package dataset-fashion-mnist) into R/fashion_mnist\n";

// --flag value pairs and bare switches; unknown flags are usage errors.
struct Flags {
  std::map<std::string, std::string> values;
  std::map<std::string, bool> switches;
};

bool ParseFlags(int argc, char** argv, const std::vector<std::string>& valued,
                const std::vector<std::string>& bare, Flags* flags, std::string* error) {
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    bool matched = false;
    for (const auto& v : valued) {
      if (arg == v) {
        if (i + 1 >= argc) {
          *error = "option " + arg + " needs a value";
          return false;
        }
        flags->values[v] = argv[++i];
        matched = true;
      }
    }
    for (const auto& b : bare) {
      if (arg == b) {
        flags->switches[b] = true;
        matched = true;
      }
    }
    if (!matched) {
      *error = "unknown option '" + arg + "'";
      return false;
    }
  }
  return true;
}

bool ParseInt(const std::string& text, int64_t* out) {
  Result<int64_t> v = ParseIntFlag("", text, std::numeric_limits<int64_t>::min());
  if (!v.ok()) return false;
  *out = *v;
  return true;
}

int UsageError(const std::string& message) {
  std::fprintf(stderr, "atp data: %s\n%s", message.c_str(), kUsage);
  return 2;
}

int Fail(const Status& status) {
  std::fprintf(stderr, "atp data: %s\n", status.message().c_str());
  return 1;
}

int RunCheck(int argc, char** argv) {
  Flags f;
  std::string err;
  if (!ParseFlags(argc, argv, {"--root", "--dataset", "--threads"}, {"--no-decode"}, &f, &err)) {
    return UsageError(err);
  }
  if (!f.values.count("--root") || !f.values.count("--dataset")) {
    return UsageError("check needs --root and --dataset");
  }
  data::CheckOptions o;
  o.root = f.values["--root"];
  o.dataset = f.values["--dataset"];
  o.decode = !f.switches.count("--no-decode");
  if (f.values.count("--threads")) {
    int64_t t;
    if (!ParseInt(f.values["--threads"], &t) || t < 0) return UsageError("--threads must be >= 0");
    o.threads = static_cast<int>(t);
  }
  auto report = data::CheckDataset(o);
  if (!report.ok()) return Fail(report.status());
  for (const auto& p : report->problems) std::printf("PROBLEM %s\n", p.c_str());
  std::printf("%s: %lld train, %lld val, %lld test items, %d classes, %lld image files %s; %zu problem%s\n",
              o.dataset.c_str(), static_cast<long long>(report->train),
              static_cast<long long>(report->val), static_cast<long long>(report->test),
              report->classes, static_cast<long long>(report->images_checked),
              o.decode ? "decoded" : "found", report->problems.size(),
              report->problems.size() == 1 ? "" : "s");
  return report->ok() ? 0 : 1;
}

int RunSplit(int argc, char** argv) {
  Flags f;
  std::string err;
  if (!ParseFlags(argc, argv, {"--root", "--dataset", "--shots", "--seed", "--classes"},
                  {"--allow-fewer-shots"}, &f, &err)) {
    return UsageError(err);
  }
  for (const char* need : {"--root", "--dataset", "--shots", "--seed"}) {
    if (!f.values.count(need)) return UsageError(std::string("split needs ") + need);
  }
  data::ProtocolOptions o;
  int64_t shots;
  if (!ParseInt(f.values["--shots"], &shots) || shots < 1 || shots > 1000000) {
    return UsageError("--shots must be a positive integer");
  }
  o.shots = static_cast<int>(shots);
  if (!ParseInt(f.values["--seed"], &o.seed)) return UsageError("--seed must be an integer");
  if (o.seed < 0) {
    return UsageError("--seed must be >= 0 (the official code does not seed Python's RNG for "
                      "negative seeds, so its draw cannot be reproduced)");
  }
  if (f.values.count("--classes")) {
    auto subset = data::ParseClassSubset(f.values["--classes"]);
    if (!subset.ok()) return UsageError(subset.status().message());
    o.subset = *subset;
  }
  o.allow_fewer_shots = f.switches.count("--allow-fewer-shots") > 0;
  auto full = data::ReadDataset(f.values["--root"], f.values["--dataset"]);
  if (!full.ok()) return Fail(full.status());
  auto result = data::ApplyProtocol(std::move(full).value(), o);
  if (!result.ok()) return Fail(result.status());
  for (const auto& n : result->notes) std::fprintf(stderr, "note: %s\n", n.c_str());
  const auto& s = result->splits;
  // ImageNet's val list is its test split and the variants have none: nothing was drawn.
  const data::DatasetLayout* layout = data::FindLayout(s.name);
  const bool val_drawn = !layout->test_only && layout->source != data::SplitSource::kImageNet;
  if (!val_drawn) {
    std::fprintf(stderr, "note: %s has no drawn val list (%s); printing train only\n",
                 s.name.c_str(), layout->test_only ? "evaluation-only dataset" : "val is the test split");
  }
  static const std::vector<data::Datum> kNone;
  for (const auto& [name, list] : {std::make_pair("train", &s.train),
                                   std::make_pair("val", val_drawn ? &s.val : &kNone)}) {
    for (const auto& d : *list) {
      std::printf("%s\t%s\t%d\t%s\n", name, d.path.c_str(), d.label, d.classname.c_str());
    }
  }
  return 0;
}

int RunImport(int argc, char** argv) {
  Flags f;
  std::string err;
  if (!ParseFlags(argc, argv, {"--out", "--source", "--max-per-class"}, {}, &f, &err)) {
    return UsageError(err);
  }
  if (!f.values.count("--out")) return UsageError("import-fashion-mnist needs --out");
  data::FashionMnistImportOptions o;
  o.out_root = f.values["--out"];
  if (f.values.count("--source")) o.source_dir = f.values["--source"];
  if (f.values.count("--max-per-class")) {
    int64_t m;
    if (!ParseInt(f.values["--max-per-class"], &m) || m < 0) {
      return UsageError("--max-per-class must be >= 0");
    }
    o.max_per_class = static_cast<int>(m);
  }
  ProgressBarOptions bar_options;
  bar_options.label = "import";
  bar_options.unit = "images";
  bar_options.terminal = IsTerminal(stdout);
  ProgressBar bar(bar_options, stdout);
  o.progress = [&bar](int64_t done, int64_t total) {
    bar.SetTotal(total);
    bar.Update(done);
  };
  auto summary = data::ImportFashionMnist(o);
  bar.Finish();
  if (!summary.ok()) return Fail(summary.status());
  std::printf("fashion_mnist: %lld train, %lld val, %lld test images; split file %s\n",
              static_cast<long long>(summary->train), static_cast<long long>(summary->val),
              static_cast<long long>(summary->test), summary->split_file.c_str());
  return 0;
}

}  // namespace

int RunDataCommand(int argc, char** argv) {
  if (argc < 2) return UsageError("missing subcommand");
  const std::string sub = argv[1];
  if (sub == "--help" || sub == "-h" || sub == "help") {
    std::printf("%s", kUsage);
    return 0;
  }
  if (sub == "check") return RunCheck(argc, argv);
  if (sub == "split") return RunSplit(argc, argv);
  if (sub == "import-fashion-mnist") return RunImport(argc, argv);
  return UsageError("unknown subcommand '" + sub + "'");
}

}  // namespace atp
