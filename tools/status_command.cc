#include "tools/status_command.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "common/flag_value.h"
#include "coordinator/status_server.h"
#include "coordinator/store/store_reader.h"
#include "tools/command_line.h"
#include "tools/reporting/paper_tables.h"

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

void AddDatabaseFlag(CLI::App* app, CommonFlags* f) {
  app->add_option("--db", f->db, "the results database (read-only)")->type_name("RESULTS.db")->required();
}

}  // namespace

StatusHandler MakeDatabaseStatusHandler(const std::string& db_path) {
  auto reader = std::make_shared<std::unique_ptr<StoreReader>>();
  return [reader, db_path](const std::string& path, const std::map<std::string, std::string>& query) -> Result<Json> {
    if (!*reader) {
      ATP_ASSIGN_OR_RETURN(*reader, StoreReader::Open(db_path));
    }
    // Query numbers are parsed as strictly as flags: "?sweep=abc" is a 400, not sweep 0.
    auto number = [&query](const char* key, int64_t fallback, int64_t minimum) -> Result<int64_t> {
      auto it = query.find(key);
      if (it == query.end()) return fallback;
      return ParseIntFlag(std::string("?") + key, it->second, minimum);
    };
    std::optional<int64_t> sweep;
    if (query.count("sweep")) {
      ATP_ASSIGN_OR_RETURN(sweep, number("sweep", 0, 1));
    }
    if (path == "/summary") return (*reader)->Summary(sweep);
    if (path == "/sweeps") return (*reader)->Sweeps();
    if (path == "/jobs") {
      JobQuery q;
      q.sweep_id = sweep;
      if (auto it = query.find("state"); it != query.end()) q.state = it->second;
      if (auto it = query.find("stage"); it != query.end()) q.stage = it->second;
      ATP_ASSIGN_OR_RETURN(q.limit, number("limit", q.limit, 0));
      ATP_ASSIGN_OR_RETURN(q.offset, number("offset", q.offset, 0));
      return (*reader)->Jobs(q);
    }
    if (path == "/metrics") {
      ATP_ASSIGN_OR_RETURN(const int64_t limit, number("limit", 1000, 0));
      ATP_ASSIGN_OR_RETURN(const int64_t offset, number("offset", 0, 0));
      return (*reader)->Metrics(sweep, limit, offset);
    }
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
  CommonFlags flags_value;
  CommonFlags* flags = &flags_value;
  auto app = MakeCommand("atp status", "atp status --db RESULTS.db [--sweep ID] [--json]",
                         "Summarises a sweep in a results database: jobs per state, failures, progress.");
  AddDatabaseFlag(app.get(), flags);
  AddSweepIdFlag(app.get(), &flags->sweep, "the latest");
  app->add_flag("--json", flags->json, "print the summary as JSON");
  if (auto code = ParseCommandLine(app.get(), argc, argv)) return *code;
  auto reader = StoreReader::Open(flags->db);
  if (!reader.ok()) {
    std::fprintf(stderr, "atp status: %s\n", reader.status().message().c_str());
    return 2;
  }
  if (flags->sweep == kLatestSweepId) flags->sweep.reset();  // the summary's own default
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
  CommonFlags flags_value;
  CommonFlags* flags = &flags_value;
  auto app = MakeCommand("atp serve", "atp serve --db RESULTS.db [--http [HOST:]PORT]",
                         "Serves a results database's status page and JSON API, read-only.");
  AddDatabaseFlag(app.get(), flags);
  AddHostPortFlag(app.get(), "--http", "where to listen (default " + flags->http + "; HOST defaults to 127.0.0.1)",
                  &flags->http, "127.0.0.1");
  if (auto code = ParseCommandLine(app.get(), argc, argv)) return *code;
  StatusServerOptions options;
  auto endpoint = ParseHostPortFlag("--http", flags->http, "127.0.0.1");  // checked when parsed
  options.host = endpoint->host;
  options.port = endpoint->port;
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
