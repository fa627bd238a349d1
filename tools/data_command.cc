#include "tools/data_command.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "common/flag_value.h"
#include "common/progress_bar.h"
#include "tools/command_line.h"
#include "worker/data/data_check.h"
#include "worker/data/dataset.h"
#include "worker/data/fashion_mnist.h"
#include "worker/data/fewshot.h"

namespace atp {
namespace {

int Fail(const Status& status) {
  std::fprintf(stderr, "atp data: %s\n", status.message().c_str());
  return 1;
}

int RunCheck(const data::CheckOptions& o) {
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

struct SplitFlags {
  std::string root, dataset, classes;
  data::ProtocolOptions protocol;
};

int RunSplit(const CLI::App& command, SplitFlags& f) {
  data::ProtocolOptions& o = f.protocol;
  if (!f.classes.empty()) {
    auto subset = data::ParseClassSubset(f.classes);
    if (!subset.ok()) return ReportUsageError(command, subset.status().message());
    o.subset = *subset;
  }
  auto full = data::ReadDataset(f.root, f.dataset);
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

int RunImport(data::FashionMnistImportOptions& o) {
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
  auto app = MakeCommand("atp data", "atp data COMMAND [options]",
                         "Checks data roots, prints the official few-shot splits, imports Fashion-MNIST.");
  app->require_subcommand(1);
  const std::string root_help = "the data root (one folder per dataset)";
  const std::string dataset_help = "the dataset's name (e.g. dtd, eurosat, imagenet)";

  data::CheckOptions check_options;
  bool no_decode = false;
  CLI::App* check = AddSubcommand(
      app.get(), "check", "validate a dataset under a data root",
      "atp data check --root R --dataset D [--threads N] [--no-decode]",
      "Validates a dataset: lists every missing or undecodable image, split entry outside\n"
      "the root and class-count mismatch; exits 1 when anything is wrong.");
  check->add_option("--root", check_options.root, root_help)->type_name("R")->required();
  check->add_option("--dataset", check_options.dataset, dataset_help)->type_name("D")->required();
  AddIntFlag(check, "--threads", "N", "decoding threads (default 0: every core)", &check_options.threads, 0,
             std::numeric_limits<int>::max());
  check->add_flag("--no-decode", no_decode, "only check that the image files exist");

  SplitFlags split_flags;
  CLI::App* split = AddSubcommand(
      app.get(), "split", "print the few-shot images the official code draws for a seed",
      "atp data split --root R --dataset D --shots K --seed S [--classes base|new|all]\n"
      "               [--allow-fewer-shots]",
      "Prints the few-shot train and val images the official code draws for this seed,\n"
      "one per line: split<TAB>path relative to R<TAB>label<TAB>class name.");
  split->add_option("--root", split_flags.root, root_help)->type_name("R")->required();
  split->add_option("--dataset", split_flags.dataset, dataset_help)->type_name("D")->required();
  AddIntFlag(split, "--shots", "K", "images per class", &split_flags.protocol.shots, 1, 1000000)->required();
  // Negative seeds are refused: the official code does not seed Python's RNG for them, so its
  // draw cannot be reproduced.
  AddIntFlag(split, "--seed", "S", "the seed of the draw (>= 0)", &split_flags.protocol.seed, 0)->required();
  split->add_option("--classes", split_flags.classes, "which classes (default all)")->type_name("base|new|all");
  split->add_flag("--allow-fewer-shots", split_flags.protocol.allow_fewer_shots,
                  "draw what there is from classes with fewer images than asked");

  data::FashionMnistImportOptions import_options;
  CLI::App* import = AddSubcommand(
      app.get(), "import-fashion-mnist", "write Debian's Fashion-MNIST into a data root",
      "atp data import-fashion-mnist --out R [--source DIR] [--max-per-class N]",
      "Writes Debian's Fashion-MNIST (package dataset-fashion-mnist) into R/fashion_mnist.");
  import->add_option("--out", import_options.out_root, "the data root to write into")->type_name("R")->required();
  import->add_option("--source", import_options.source_dir, "where the IDX files are (default: Debian's package)")
      ->type_name("DIR");
  AddIntFlag(import, "--max-per-class", "N", "import only the first N images of each class (default all)",
             &import_options.max_per_class, 0, std::numeric_limits<int>::max());
  if (auto code = ParseCommandLine(app.get(), argc, argv)) return *code;
  if (check->parsed()) {
    check_options.decode = !no_decode;
    return RunCheck(check_options);
  }
  if (split->parsed()) return RunSplit(*split, split_flags);
  return RunImport(import_options);
}

}  // namespace atp
