#include "tools/status_command.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "coordinator/paper_tables.h"
#include "coordinator/status_server.h"
#include "coordinator/store_reader.h"

namespace atp {
namespace {

std::atomic<bool> g_serve_stop{false};
void OnServeSignal(int) { g_serve_stop = true; }

struct CommonFlags {
  std::string db;
  std::optional<int64_t> sweep;
  bool json = false;
  std::string http = "127.0.0.1:8765";
};

Result<CommonFlags> ParseFlags(int argc, char** argv, const char* usage) {
  CommonFlags f;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    bool has_value = i + 1 < argc;
    if (arg == "--db" && has_value) f.db = argv[++i];
    else if (arg == "--sweep" && has_value) f.sweep = std::atoll(argv[++i]);
    else if (arg == "--http" && has_value) f.http = argv[++i];
    else if (arg == "--json") f.json = true;
    else return InvalidArgument("unknown or incomplete option '" + arg + "'\n" + usage);
  }
  if (f.db.empty()) return InvalidArgument(std::string("--db RESULTS.db is required\n") + usage);
  return f;
}

}  // namespace

StatusHandler MakeDatabaseStatusHandler(const std::string& db_path) {
  auto reader = std::make_shared<std::unique_ptr<StoreReader>>();
  return [reader, db_path](const std::string& path, const std::map<std::string, std::string>& query) -> Result<Json> {
    if (!*reader) {
      ATP_ASSIGN_OR_RETURN(*reader, StoreReader::Open(db_path));
    }
    auto number = [&query](const char* key, int64_t fallback) {
      auto it = query.find(key);
      return it == query.end() ? fallback : std::atoll(it->second.c_str());
    };
    std::optional<int64_t> sweep;
    if (query.count("sweep")) sweep = number("sweep", 0);
    if (path == "/summary") return (*reader)->Summary(sweep);
    if (path == "/sweeps") return (*reader)->Sweeps();
    if (path == "/jobs") {
      JobQuery q;
      q.sweep_id = sweep;
      if (auto it = query.find("state"); it != query.end()) q.state = it->second;
      if (auto it = query.find("stage"); it != query.end()) q.stage = it->second;
      q.limit = number("limit", q.limit);
      q.offset = number("offset", q.offset);
      return (*reader)->Jobs(q);
    }
    if (path == "/metrics") return (*reader)->Metrics(sweep, number("limit", 1000), number("offset", 0));
    if (path == "/tables") {
      TableOptions options;
      options.sweep_id = sweep;
      auto it = query.find("table");
      if (it == query.end()) return InvalidArgument("/api/tables needs ?table=NAME");
      options.name = it->second;
      ATP_ASSIGN_OR_RETURN(PaperTable table, BuildPaperTable((*reader)->handle(), options));
      return table.ToJson();
    }
    return NotFound("no API endpoint " + path +
                    " (try /api/summary, /api/jobs, /api/metrics, /api/sweeps, /api/tables?table=base2novel)");
  };
}

int RunStatusCommand(int argc, char** argv) {
  const char* usage = "usage: atp status --db RESULTS.db [--sweep ID] [--json]";
  auto flags = ParseFlags(argc, argv, usage);
  if (!flags.ok()) {
    std::fprintf(stderr, "atp status: %s\n", flags.status().message().c_str());
    return 2;
  }
  auto reader = StoreReader::Open(flags->db);
  if (!reader.ok()) {
    std::fprintf(stderr, "atp status: %s\n", reader.status().message().c_str());
    return 2;
  }
  auto summary = (*reader)->Summary(flags->sweep);
  if (!summary.ok()) {
    std::fprintf(stderr, "atp status: %s\n", summary.status().message().c_str());
    return 2;
  }
  if (flags->json) {
    std::printf("%s\n", summary->dump(2).c_str());
  } else {
    std::fputs(StoreReader::FormatSummary(*summary).c_str(), stdout);
  }
  return 0;
}

int RunServeCommand(int argc, char** argv) {
  const char* usage = "usage: atp serve --db RESULTS.db [--http [HOST:]PORT]   (default 127.0.0.1:8765)";
  auto flags = ParseFlags(argc, argv, usage);
  if (!flags.ok()) {
    std::fprintf(stderr, "atp serve: %s\n", flags.status().message().c_str());
    return 2;
  }
  StatusServerOptions options;
  std::string port = flags->http;
  if (auto colon = flags->http.rfind(':'); colon != std::string::npos) {
    options.host = flags->http.substr(0, colon);
    port = flags->http.substr(colon + 1);
  }
  options.port = static_cast<uint16_t>(std::atoi(port.c_str()));
  auto check = StoreReader::Open(flags->db);
  if (!check.ok()) {
    std::fprintf(stderr, "atp serve: %s\n", check.status().message().c_str());
    return 2;
  }
  StatusServer server(options, MakeDatabaseStatusHandler(flags->db));
  Status started = server.Start();
  if (!started.ok()) {
    std::fprintf(stderr, "atp serve: %s\n", started.message().c_str());
    return 2;
  }
  std::printf("serving %s read-only at %s (Ctrl-C to stop)\n", flags->db.c_str(), server.url().c_str());
  std::fflush(stdout);
  signal(SIGINT, OnServeSignal);
  signal(SIGTERM, OnServeSignal);
  while (!g_serve_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  server.Stop();
  return 0;
}

}  // namespace atp
