#include "tools/sweep_command.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <variant>

#include "common/flag_value.h"
#include "common/in_process_communicator.h"
#include "common/messages.h"
#include "common/mpi_communicator.h"
#include "coordinator/coordinator.h"
#include "coordinator/status_server.h"
#include "coordinator/store/store.h"
#include "coordinator/store/store_reader.h"
#include "coordinator/sweep/sweep.h"
#include "tools/command_line.h"
#include "tools/provenance.h"
#include "tools/status_command.h"
#include "worker/worker.h"

namespace atp {
namespace {

std::atomic<bool> g_stop_requested{false};
std::atomic<int> g_signals{0};

void OnStopSignal(int sig) {
  // First signal: checkpoint and stop cleanly. A second Ctrl-C: leave now (job processes die
  // with their worker; the next run recovers their attempts).
  if (g_signals.fetch_add(1) >= 1 && sig == SIGINT) _exit(130);
  g_stop_requested.store(true);
}

void InstallSignalHandlers() {
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  // mpirun treats a SIGTERM sent to it as its own abort (it kills the ranks and exits 1), but
  // forwards SIGUSR1/SIGUSR2 to every rank: these are the stop request under mpirun.
  sigaction(SIGUSR1, &action, nullptr);
  sigaction(SIGUSR2, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

// `atp sweep` and `atp-sweep` are the same command; each names itself as it was called.
std::string Usage(const std::string& program) {
  return program + " SWEEP.toml --db RESULTS.db [options]\nmpirun -np N " + program +
         " SWEEP.toml --db RESULTS.db [options]";
}

const char* kDescription =
    "Expands the sweep into jobs, records them in the results database and runs what is missing.\n"
    "Rank 0 coordinates; every other rank is a worker. Without mpirun (or with one rank) the jobs\n"
    "run on this machine through one local worker. Relaunching the same command resumes.";

const char* kNotes =
    "stopping: SIGTERM, SIGINT, SIGUSR1 or SIGUSR2 checkpoints the running jobs and exits 3; under\n"
    "mpirun send SIGUSR1 to mpirun (it forwards it to every rank; a SIGTERM to mpirun kills the ranks)\n"
    "\n"
    "exit codes: 0 all jobs done, 1 some failed or blocked, 2 bad input, 3 interrupted (relaunch to resume)";

struct Options {
  std::string sweep_path;
  std::string db_path;
  std::string jobs_dir;
  std::string log_mode;
  std::string http;
  bool dry_run = false;
  bool retry_failed = false;
  double progress_interval = 30;
  double heartbeat_timeout = CoordinatorOptions{}.heartbeat_timeout_s;
  double heartbeat_interval = WorkerOptions{}.heartbeat_interval_s;
};

std::string FormatSeconds(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", seconds);
  return text;
}

// The options, or the exit code when the command ends here (--help, a usage error).
std::variant<Options, int> ParseOptions(int argc, char** argv) {
  Options o;
  const std::string program = argc > 0 && std::string(argv[0]) == "sweep" ? "atp sweep" : "atp-sweep";
  auto app = MakeCommand(program, Usage(program), kDescription);
  app->footer(kNotes);
  app->add_option("SWEEP.toml", o.sweep_path, "the sweep file")->required();
  app->add_option("--db", o.db_path, "results database (SQLite; keep it on a local disk of rank 0's node)")
      ->type_name("PATH");
  app->add_flag("--dry-run", o.dry_run, "print the expanded jobs and the counts per stage, run nothing");
  app->add_option("--jobs-dir", o.jobs_dir, "job working directories (default: <db>.jobs/ beside the database)")
      ->type_name("DIR");
  app->add_option("--log", o.log_mode, "progress display (default: tty on a terminal, plain otherwise)")
      ->type_name("tty|plain|quiet|jsonl");
  AddNumberFlag(app.get(), "--progress-interval", "S",
                "seconds between plain/jsonl status lines (default " + FormatSeconds(o.progress_interval) + ")",
                &o.progress_interval, 0, /*minimum_allowed=*/false);
  AddHostPortFlag(app.get(), "--http",
                  "serve status JSON and an HTML page (read-only; HOST defaults to 127.0.0.1)", &o.http, "127.0.0.1");
  AddNumberFlag(app.get(), "--heartbeat-timeout", "S",
                "a worker rank silent this long is lost (default " + FormatSeconds(o.heartbeat_timeout) + ")",
                &o.heartbeat_timeout, 0, /*minimum_allowed=*/false);
  AddNumberFlag(app.get(), "--heartbeat-interval", "S",
                "how often workers report (default " + FormatSeconds(o.heartbeat_interval) + ")",
                &o.heartbeat_interval, 0, /*minimum_allowed=*/false);
  app->add_flag("--retry-failed", o.retry_failed, "give failed and blocked jobs of this sweep a new set of attempts");
  if (auto code = ParseCommandLine(app.get(), argc, argv)) return *code;
  if (!o.dry_run && o.db_path.empty()) return ReportUsageError(*app, "--db RESULTS.db is required (or use --dry-run)");
  if (o.jobs_dir.empty() && !o.db_path.empty()) o.jobs_dir = o.db_path + ".jobs";
  return o;
}

// This process's rank among the ranks of its node, as the launcher numbers them (mpirun, or
// srun): the GPU slot of the jobs of this worker. 0 when started alone.
int NodeLocalRank() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"}) {
    const char* value = std::getenv(name);
    if (!value) continue;
    Result<int64_t> rank = ParseIntFlag(name, value, 0, 1 << 20);
    if (rank.ok()) return static_cast<int>(*rank);
  }
  return 0;
}

std::string SelfExecutable() {
  char buffer[4096];
  ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof(buffer) - 1);
  return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string("atp-sweep");
}

// Rank 0 when the sweep cannot start: release the workers before reporting the error.
void ReleaseWorkers(Communicator* comm) {
  std::string bytes = EncodeMessage(ShutdownMessage{});
  for (int rank = 1; rank < comm->size(); ++rank) (void)comm->Send(rank, kProtocolTag, bytes);
}

int RunCoordinator(const Options& options, Communicator* comm, int argc, char** argv, int world_size) {
  auto fail = [&](const Status& status) {
    ReleaseWorkers(comm);
    std::fprintf(stderr, "atp-sweep: %s\n", status.message().c_str());
    return 2;
  };
  auto sweep = LoadSweepFile(options.sweep_path);
  if (!sweep.ok()) return fail(sweep.status());
  auto store = Store::OpenWriter(options.db_path);
  if (!store.ok()) return fail(store.status());

  std::string log_mode = options.log_mode.empty() ? (isatty(STDERR_FILENO) ? "tty" : "plain") : options.log_mode;
  auto mode = ParseProgressMode(log_mode);
  if (!mode.ok()) return fail(mode.status());
  ProgressReporter reporter(*mode, *mode == ProgressMode::kJsonLines ? stdout : stderr, RealClock(),
                            options.progress_interval);

  std::unique_ptr<StatusServer> server;
  if (!options.http.empty()) {
    auto endpoint = ParseHostPortFlag("--http", options.http, "127.0.0.1");
    if (!endpoint.ok()) return fail(endpoint.status());
    StatusServerOptions server_options;
    server_options.host = endpoint->host;
    server_options.port = endpoint->port;
    server = std::make_unique<StatusServer>(server_options, MakeDatabaseStatusHandler(options.db_path));
    Status started = server->Start();
    if (!started.ok()) return fail(started);
    reporter.Message("status page: " + server->url());
  }

  CoordinatorOptions coordinator_options;
  coordinator_options.jobs_dir = options.jobs_dir;
  coordinator_options.heartbeat_timeout_s = options.heartbeat_timeout;
  coordinator_options.retry_failed = options.retry_failed;
  coordinator_options.provenance = CollectProvenance(argc, argv, world_size);
  Coordinator coordinator(comm, store->get(), &reporter, coordinator_options, RealClock(), &g_stop_requested);
  auto summary = coordinator.Run(*sweep);
  if (server) server->Stop();
  if (!summary.ok()) {
    ReleaseWorkers(comm);
    std::fprintf(stderr, "atp-sweep: %s\n", summary.status().ToString().c_str());
    return 2;
  }
  int code = summary->interrupted ? 3 : ((summary->failed + summary->blocked) > 0 ? 1 : 0);
  if (summary->lost_ranks > 0 && MpiScope::LaunchedByMpi() && world_size > 1) {
    // A lost rank cannot take part in MPI_Finalize, which would hang: everything is recorded,
    // so end the MPI job here.
    std::fprintf(stderr, "atp-sweep: %d rank(s) were lost; ending the MPI job with MPI_Abort(%d)\n",
                 summary->lost_ranks, code);
    std::fflush(nullptr);
    MpiScope::Abort(code);
  }
  return code;
}

}  // namespace

int RunSweepCommand(int argc, char** argv) {
  auto parsed = ParseOptions(argc, argv);
  if (auto* code = std::get_if<int>(&parsed)) return *code;
  Options* options = &std::get<Options>(parsed);
  if (options->dry_run) {
    // Under mpirun only the first rank prints.
    const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
    if (rank && std::string(rank) != "0") return 0;
    auto sweep = LoadSweepFile(options->sweep_path);
    if (!sweep.ok()) {
      std::fprintf(stderr, "atp-sweep: %s\n", sweep.status().message().c_str());
      return 2;
    }
    std::fputs(FormatDryRun(*sweep).c_str(), stdout);
    return 0;
  }
  InstallSignalHandlers();

  WorkerOptions worker_options;
  worker_options.executor_binary = SelfExecutable();
  worker_options.heartbeat_interval_s = options->heartbeat_interval;
  worker_options.device_slot = NodeLocalRank();

  std::unique_ptr<MpiScope> mpi;
  std::unique_ptr<Communicator> world;
  if (MpiScope::LaunchedByMpi()) {
    auto scope = MpiScope::Init(&argc, &argv);
    if (!scope.ok()) {
      std::fprintf(stderr, "atp-sweep: %s\n", scope.status().ToString().c_str());
      return 2;
    }
    mpi = std::move(scope).value();
    world = MakeMpiWorldCommunicator();
  }

  if (world && world->size() > 1) {
    if (world->rank() != 0) {
      Worker worker(world.get(), worker_options, RealClock(), &g_stop_requested);
      Status status = worker.Run();
      if (!status.ok()) {
        std::fprintf(stderr, "atp-sweep rank %d: %s\n", world->rank(), status.ToString().c_str());
        return 2;
      }
      return 0;
    }
    int code = RunCoordinator(*options, world.get(), argc, argv, world->size());
    return code;
  }

  // One process: the coordinator and one local worker thread over an in-process hub.
  char host[256] = "localhost";
  ::gethostname(host, sizeof(host) - 1);
  const std::string node = world ? world->node_name() : std::string(host);
  InProcessHub hub(2, {node, node});
  auto coordinator_comm = hub.Connect(0);
  auto worker_comm = hub.Connect(1);
  Status worker_status;
  std::thread worker_thread([&] {
    Worker worker(worker_comm.get(), worker_options, RealClock(), &g_stop_requested);
    worker_status = worker.Run();
  });
  int code = RunCoordinator(*options, coordinator_comm.get(), argc, argv, 1);
  worker_thread.join();
  if (!worker_status.ok()) std::fprintf(stderr, "atp-sweep worker: %s\n", worker_status.ToString().c_str());
  return code;
}

}  // namespace atp
