#include "tools/train_command.h"

#include <toml++/toml.h>

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/atomic_file.h"
#include "common/job_spec.h"
#include "common/method_catalog.h"
#include "common/toml_json.h"
#include "tools/command_line.h"
#include "worker/job_context.h"
#include "worker/method_registry.h"
#include "worker/run_method.h"
#include "worker/prompt/prompt_methods.h"

namespace atp {
namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

const char* kTrainUsage = "atp train JOB.toml [--set KEY=VALUE ...] [--workdir DIR] [--out METRICS.json] [--fresh]";
const char* kEvalUsage =
    "atp eval JOB.toml [--checkpoint FILE] [--set KEY=VALUE ...] [--workdir DIR] [--out METRICS.json]";

const char* kTrainDescription =
    "Runs one job of a prompt method on this machine. JOB.toml names the method and its\n"
    "parameters, the same ones a sweep takes (`atp-sweep --help`, docs/methods.md):\n"
    "\n"
    "    method = \"coop\"\n"
    "    [params]\n"
    "    dataset = \"fashion_mnist\"\n"
    "    atprompt = true\n"
    "    backbone = \"runs/tiny_clip/tiny_clip.pt\"";

// KEY=VALUE with VALUE parsed as a TOML value; a bare word is a string.
Result<std::pair<std::string, Json>> ParseSetting(const std::string& text) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) return InvalidArgument("--set needs KEY=VALUE, got '" + text + "'");
  std::string key = text.substr(0, eq), value = text.substr(eq + 1);
  try {
    toml::table parsed = toml::parse("v = " + value);
    ATP_ASSIGN_OR_RETURN(Json json, TomlToJson(*parsed.get("v"), "", "--set " + key));
    return std::make_pair(key, std::move(json));
  } catch (const toml::parse_error&) {
    return std::make_pair(key, Json(value));  // a bare word
  }
}

struct JobFile {
  std::string method;
  Json params = Json::object();
};

Result<JobFile> ReadJobFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return InvalidArgument(path + ": no such file");
  if (std::filesystem::is_directory(path, ec)) return InvalidArgument(path + " is a directory, not a job file");
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& error) {
    return InvalidArgument(path + ":" + std::to_string(error.source().begin.line) + ": " +
                           std::string(error.description()));
  }
  JobFile job;
  for (auto&& [key, node] : table) {
    const std::string name(key.str());
    if (name == "method") {
      if (!node.is_string()) return InvalidArgument(path + ": 'method' must be a string");
      job.method = *node.value<std::string>();
    } else if (name == "params") {
      if (!node.is_table()) return InvalidArgument(path + ": [params] must be a table");
      ATP_ASSIGN_OR_RETURN(job.params, TomlToJson(node, path, "params"));
    } else {
      return InvalidArgument(path + ":" + std::to_string(key.source().begin.line) + ": unknown key '" + name +
                             "'; a job file has `method` and a [params] table");
    }
  }
  if (job.method.empty()) return InvalidArgument(path + ": no `method` (one of: " + MethodNamesList() + ")");
  return job;
}

// The job directory: created if missing; an existing file of that name is refused.
Status PrepareWorkdir(const std::string& workdir) {
  std::error_code ec;
  std::filesystem::create_directories(workdir, ec);
  if (ec || !std::filesystem::is_directory(workdir)) {
    return InvalidArgument("--workdir " + workdir + ": cannot be used as the job directory (" +
                           (ec ? ec.message() : std::string("it is not a directory")) + ")");
  }
  return Status::Ok();
}

// Checked before the job runs, so that its metrics are never computed only to be lost: the
// file's folder must exist and be writable, and the name must not be a folder.
Status CheckOutPath(const std::string& out_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(out_path, ec)) return InvalidArgument("--out " + out_path + " is a directory; give a file name");
  const fs::path parent = fs::path(out_path).has_parent_path() ? fs::path(out_path).parent_path() : fs::path(".");
  if (!fs::is_directory(parent, ec)) {
    return InvalidArgument("--out " + out_path + ": the folder " + parent.string() + " does not exist");
  }
  if (::access(parent.c_str(), W_OK) != 0) {
    return InvalidArgument("--out " + out_path + ": the folder " + parent.string() + " is not writable (" +
                           std::strerror(errno) + ")");
  }
  return Status::Ok();
}

int Run(int argc, char** argv, bool eval) {
  std::string job_path, workdir, out_path, checkpoint;
  bool fresh = false;
  std::vector<std::pair<std::string, Json>> settings;
  auto app = MakeCommand(eval ? "atp eval" : "atp train", eval ? kEvalUsage : kTrainUsage,
                         std::string(eval ? "Evaluates a trained prompt checkpoint (--checkpoint) with the job's method.\n"
                                          : "") +
                             kTrainDescription);
  app->add_option("JOB.toml", job_path, "the job file")->required();
  AddRepeatableFlag(app.get(), "--set", "KEY=VALUE",
                    "override a parameter (VALUE as in TOML: 2, 0.5, true, \"text\", [\"a\", \"b\"]; repeatable)",
                    [&settings](const std::string& text) {
                      auto setting = ParseSetting(text);
                      if (!setting.ok()) throw CLI::ValidationError(setting.status().message());
                      settings.push_back(*setting);
                    });
  app->add_option("--workdir", workdir, "job directory: checkpoints, metrics (default runs/jobs/<method>-<key>)")
      ->type_name("DIR");
  app->add_option("--out", out_path, "where the metrics JSON goes (default <workdir>/metrics.json)")
      ->type_name("FILE");
  if (eval) {
    app->add_option("--checkpoint", checkpoint,
                    "the prompt checkpoint to evaluate: atp's checkpoint.pth or a\npublished model.pth.tar-N")
        ->type_name("FILE");
  }
  app->add_flag("--fresh", fresh, "ignore a checkpoint left in the job directory (default: resume from it)");
  if (auto code = ParseCommandLine(app.get(), argc, argv)) return *code;

  auto job = ReadJobFile(job_path);
  if (!job.ok()) {
    std::fprintf(stderr, "atp %s: %s\n", argv[0], job.status().message().c_str());
    return 2;
  }
  for (auto& [key, value] : settings) job->params[key] = value;
  if (eval) {
    job->params["eval_only"] = true;
    if (!checkpoint.empty()) job->params["checkpoint"] = checkpoint;
  }
  const MethodInfo* info = FindMethod(job->method);
  if (!info) {
    std::fprintf(stderr, "atp %s: %s: unknown method '%s'; valid methods: %s\n", argv[0], job_path.c_str(),
                 job->method.c_str(), MethodNamesList().c_str());
    return 2;
  }
  auto params = ResolveMethodParams(*info, job->params);
  if (params.ok()) {
    // A job file has no upstream: +ATPrompt without attributes takes the paper's.
    if (Status attributes = ResolvePaperAttributes(&*params, false); !attributes.ok()) params = attributes;
  }
  if (!params.ok()) {
    std::fprintf(stderr, "atp %s: %s: %s\n", argv[0], job_path.c_str(), params.status().message().c_str());
    return 2;
  }
  prompt::RegisterPromptMethods();
  const MethodFunction* method = FindMethodFunction(job->method);
  if (!method) {
    std::fprintf(stderr, "atp %s: method '%s' is not built into this atp\n", argv[0], job->method.c_str());
    return 2;
  }

  JobSpec spec;
  spec.stage = eval ? "eval" : "train";
  spec.method = job->method;
  spec.params = *params;
  const std::string key = spec.Key();
  if (workdir.empty()) workdir = "runs/jobs/" + job->method + "-" + key.substr(0, 12);
  if (out_path.empty()) out_path = workdir + "/metrics.json";
  for (const Status& checked : {PrepareWorkdir(workdir), CheckOutPath(out_path)}) {
    if (!checked.ok()) {
      std::fprintf(stderr, "atp %s: %s\n", argv[0], checked.message().c_str());
      return 2;
    }
  }
  std::string resume;
  const std::string previous = workdir + "/checkpoint.pth";
  if (!eval && !fresh && std::filesystem::exists(previous)) {
    resume = previous;
    std::fprintf(stderr, "atp %s: resuming from %s (--fresh starts over)\n", argv[0], previous.c_str());
  }

  JobContext::Channel channel;  // one rank: progress goes to the terminal through the job's log lines
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  JobContext context(spec, 1, Json::array(), workdir, resume, 0, 1, channel, &g_stop);
  std::fprintf(stderr, "atp %s: %s job %s in %s\n", argv[0], job->method.c_str(), key.substr(0, 12).c_str(),
               workdir.c_str());
  Json report = {{"job", key}, {"method", job->method}, {"params", spec.params}};
  // Exceptions become the outcome exactly as they do for a sweep's jobs (worker/run_method.h).
  const FinishedMessage outcome = RunMethodCatching(method, job->method, context);
  report["ok"] = outcome.ok;
  int code = 0;
  if (outcome.ok) {
    report["metrics"] = outcome.metrics;
    report["outputs"] = outcome.outputs;
  } else {
    report["failure_class"] = FailureClassName(outcome.failure_class);
    report["message"] = outcome.message;
    code = outcome.failure_class == FailureClass::kPreempted  ? 3
           : outcome.failure_class == FailureClass::kUserError ? 2
                                                                : 1;
  }
  Status written = WriteFileAtomically(out_path, report.dump(2) + "\n");
  if (!written.ok()) {
    // Checked before the run, but the disk may have filled since: keep the result on stdout.
    std::fprintf(stderr, "atp %s: %s; the report follows on stdout\n", argv[0], written.message().c_str());
    std::printf("%s\n", report.dump(2).c_str());
    return code != 0 ? code : 1;
  }
  if (code != 0) {
    std::fprintf(stderr, "atp %s: %s: %s\n", argv[0], report.value("failure_class", "error").c_str(),
                 report.value("message", "").c_str());
    return code;
  }
  for (auto& [name, value] : report["metrics"].items()) {
    if (name.find("accuracy") != std::string::npos) std::printf("%s %.2f\n", name.c_str(), value.get<double>());
  }
  std::fprintf(stderr, "atp %s: metrics written to %s\n", argv[0], out_path.c_str());
  return 0;
}

}  // namespace

int RunTrainCommand(int argc, char** argv) { return Run(argc, argv, false); }
int RunEvalCommand(int argc, char** argv) { return Run(argc, argv, true); }

}  // namespace atp
