#include "coordinator/store/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <unordered_map>
#include <utility>

#include "common/clock.h"
#include "common/hash.h"
#include "coordinator/store/sqlite_util.h"

namespace atp {
namespace {

// Schema migrations: kMigrations[v] turns a version-v database into version v+1, so a
// database is brought up to date by running the scripts after its stored schema_version,
// all inside one transaction. Add a script to change the schema; never edit a released one.
// Every table, column and view is documented in docs/schema.md.
constexpr const char* kMigrations[] = {
    // 0 -> 1: the initial schema.
    R"sql(
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE sweeps (
  id           INTEGER PRIMARY KEY,
  name         TEXT NOT NULL,
  source_path  TEXT NOT NULL,
  source_text  TEXT NOT NULL,
  source_hash  TEXT NOT NULL,
  jobs_hash    TEXT NOT NULL,
  code_version TEXT NOT NULL,
  job_count    INTEGER NOT NULL,
  created_at   REAL NOT NULL,
  submitted_at REAL NOT NULL,
  UNIQUE (name, source_hash, jobs_hash)
);

CREATE TABLE runs (
  id               INTEGER PRIMARY KEY,
  started_at       REAL NOT NULL,
  heartbeat_at     REAL NOT NULL,
  ended_at         REAL,
  status           TEXT NOT NULL,
  atp_version      TEXT NOT NULL,
  git_commit       TEXT NOT NULL,
  libtorch_version TEXT NOT NULL,
  cuda_version     TEXT NOT NULL,
  nccl_version     TEXT NOT NULL,
  mpi_version      TEXT NOT NULL,
  command_line     TEXT NOT NULL,
  hosts_json       TEXT NOT NULL,
  world_size       INTEGER NOT NULL,
  pid              INTEGER NOT NULL,
  hostname         TEXT NOT NULL
);

CREATE TABLE jobs (
  id              INTEGER PRIMARY KEY,
  job_key         TEXT NOT NULL UNIQUE,
  stage           TEXT NOT NULL,
  method          TEXT NOT NULL,
  dataset         TEXT NOT NULL,
  seed            INTEGER,
  ranks           INTEGER NOT NULL,
  spec_json       TEXT NOT NULL,
  state           TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed', 'blocked')),
  attempts        INTEGER NOT NULL DEFAULT 0,
  lost_attempts   INTEGER NOT NULL DEFAULT 0,
  failure_class   TEXT,
  error           TEXT,
  checkpoint_path TEXT,
  outputs_json    TEXT,
  created_at      REAL NOT NULL,
  started_at      REAL,
  ended_at        REAL,
  duration_s      REAL,
  host            TEXT,
  ranks_used      TEXT
);
-- Durations of finished jobs by kind, for estimates, without reading the wide job rows.
CREATE INDEX jobs_done_durations ON jobs (stage, method, dataset, duration_s) WHERE state = 'done';

CREATE TABLE sweep_jobs (
  sweep_id INTEGER NOT NULL REFERENCES sweeps (id),
  job_id   INTEGER NOT NULL REFERENCES jobs (id),
  position INTEGER NOT NULL,
  PRIMARY KEY (sweep_id, job_id)
) WITHOUT ROWID;
CREATE INDEX sweep_jobs_by_job ON sweep_jobs (job_id);
CREATE UNIQUE INDEX sweep_jobs_by_position ON sweep_jobs (sweep_id, position);

CREATE TABLE job_deps (
  job_id          INTEGER NOT NULL REFERENCES jobs (id),
  upstream_job_id INTEGER NOT NULL REFERENCES jobs (id),
  PRIMARY KEY (job_id, upstream_job_id)
) WITHOUT ROWID;
CREATE INDEX job_deps_by_upstream ON job_deps (upstream_job_id);

CREATE TABLE attempts (
  id             INTEGER PRIMARY KEY,
  job_id         INTEGER NOT NULL REFERENCES jobs (id),
  number         INTEGER NOT NULL,
  epoch          INTEGER NOT NULL,
  state          TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed', 'lost')),
  host           TEXT NOT NULL,
  ranks          TEXT NOT NULL,
  started_at     REAL NOT NULL,
  ended_at       REAL,
  failure_class  TEXT,
  error          TEXT,
  progress_step  INTEGER,
  progress_total INTEGER,
  progress_at    REAL,
  UNIQUE (job_id, number)
);
CREATE INDEX attempts_running ON attempts (epoch) WHERE state = 'running';
CREATE INDEX attempts_failed ON attempts (job_id) WHERE state IN ('failed', 'lost');

CREATE TABLE events (
  id         INTEGER PRIMARY KEY,
  time       REAL NOT NULL,
  epoch      INTEGER,
  job_id     INTEGER REFERENCES jobs (id),
  attempt_id INTEGER REFERENCES attempts (id),
  kind       TEXT NOT NULL,
  job_state  TEXT,
  detail     TEXT NOT NULL
);
CREATE INDEX events_by_job ON events (job_id, id);

CREATE TABLE metrics (
  job_id INTEGER NOT NULL REFERENCES jobs (id),
  name   TEXT NOT NULL,
  value  REAL,
  PRIMARY KEY (job_id, name)
) WITHOUT ROWID;

CREATE TABLE artifacts (
  id         INTEGER PRIMARY KEY,
  job_id     INTEGER NOT NULL REFERENCES jobs (id),
  attempt_id INTEGER REFERENCES attempts (id),
  kind       TEXT NOT NULL,
  path       TEXT NOT NULL,
  created_at REAL NOT NULL
);
CREATE INDEX artifacts_by_job ON artifacts (job_id);

CREATE VIEW v_results AS
SELECT sj.sweep_id, s.name AS sweep, j.id AS job_id, j.job_key, j.stage, j.method, j.dataset, j.seed,
       json_extract(j.spec_json, '$.params') AS params,
       json_extract(j.spec_json, '$.code_version') AS code_version,
       m.name AS metric, m.value
FROM sweep_jobs sj
JOIN sweeps s ON s.id = sj.sweep_id
JOIN jobs j ON j.id = sj.job_id
JOIN metrics m ON m.job_id = j.id
WHERE j.state = 'done';

CREATE VIEW v_job_status AS
SELECT sj.sweep_id, s.name AS sweep, sj.position, j.id AS job_id, j.job_key,
       substr(j.job_key, 1, 12) AS short_key, j.stage, j.method, j.dataset, j.seed, j.state,
       j.attempts, j.lost_attempts,
       (SELECT count(*) FROM attempts a WHERE a.job_id = j.id) AS total_attempts,
       j.failure_class, j.error, j.host, j.ranks, j.ranks_used,
       r.id AS attempt_id, r.progress_step, r.progress_total, r.progress_at,
       j.started_at, j.ended_at, j.duration_s, j.checkpoint_path
FROM sweep_jobs sj
JOIN sweeps s ON s.id = sj.sweep_id
JOIN jobs j ON j.id = sj.job_id
LEFT JOIN attempts r ON r.job_id = j.id AND r.state = 'running';

CREATE VIEW v_stage_progress AS
SELECT sj.sweep_id, s.name AS sweep, j.stage, min(sj.position) AS stage_order,
       sum(j.state = 'pending') AS pending, sum(j.state = 'running') AS running,
       sum(j.state = 'done') AS done, sum(j.state = 'failed') AS failed,
       sum(j.state = 'blocked') AS blocked, count(*) AS total
FROM sweep_jobs sj
JOIN sweeps s ON s.id = sj.sweep_id
JOIN jobs j ON j.id = sj.job_id
GROUP BY sj.sweep_id, j.stage;

-- SQLite takes the bare column a.error from the row that holds max(a.ended_at), so
-- last_error is the message of the most recent failure of the class.
CREATE VIEW v_failures AS
SELECT sj.sweep_id, s.name AS sweep, a.failure_class AS class, count(*) AS attempts,
       count(DISTINCT a.job_id) AS jobs, max(a.ended_at) AS last_at, a.error AS last_error
FROM attempts a
JOIN sweep_jobs sj ON sj.job_id = a.job_id
JOIN sweeps s ON s.id = sj.sweep_id
WHERE a.state IN ('failed', 'lost')
GROUP BY sj.sweep_id, a.failure_class;
)sql",
    // 1 -> 2: the compute environment of a run (BLAS, its kernel, threads per job).
    R"sql(
ALTER TABLE runs ADD COLUMN compute_json TEXT NOT NULL DEFAULT '{}';
)sql",
};
constexpr int kMigrationCount = sizeof(kMigrations) / sizeof(kMigrations[0]);
static_assert(kMigrationCount == kStoreSchemaVersion, "one migration script per schema version");

constexpr int kBusyTimeoutMs = 10000;
// Error messages can be whole tracebacks or logs; the full text belongs in the job's log
// artifact, the database keeps enough to recognise the failure.
constexpr size_t kMaxErrorBytes = 16 * 1024;

// JSON text that never throws: bytes that are not UTF-8 (a job's stderr can hold anything)
// become U+FFFD instead of aborting the transition.
std::string DumpJson(const Json& json) { return json.dump(-1, ' ', false, Json::error_handler_t::replace); }

// `message` as valid UTF-8 of at most `max_bytes` (plus a marker when cut), so that it can
// always be stored, put into JSON and shown.
std::string Truncated(const std::string& message, size_t max_bytes = kMaxErrorBytes) {
  std::string valid = Json::parse(DumpJson(Json(message))).get<std::string>();
  if (valid.size() <= max_bytes) return valid;
  size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(valid[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 char
  return valid.substr(0, cut) + "... [truncated]";
}

std::string RanksJson(const std::vector<int>& ranks) { return DumpJson(Json(ranks)); }

std::string HostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "unknown";
  return name;
}

std::optional<int64_t> OptionalId(int64_t id) {
  if (id <= 0) return std::nullopt;
  return id;
}

// Serialises a sweep's jobs for SubmitSweep: each job's key and spec_json (the text of
// JobSpec::ToJson()) from one serialisation of its identity. Calling Key() and ToJson() per
// job would cost as much CPU as all the SQL of a submission, mostly to rebuild the
// "execution" part, which is the same for thousands of jobs of a sweep; so that part is
// built once per distinct execution setting.
class SpecSerializer {
 public:
  struct Serialized {
    std::string key;
    std::string spec_json;
  };

  Serialized Serialize(const JobSpec& job) {
    Serialized out;
    const std::string identity = DumpJson(job.IdentityJson());
    out.key = Sha256Hex(identity);  // what JobSpec::Key() computes
    // The identity's first member is code_version and "execution" sorts right after it
    // (Json keeps keys sorted), so the full spec is the identity with execution spliced in.
    const std::string prefix = "{\"code_version\":" + DumpJson(Json(job.code_version)) + ",";
    if (identity.compare(0, prefix.size(), prefix) != 0) {
      out.spec_json = DumpJson(job.ToJson());  // an unexpected layout: take the slow, certain path
      return out;
    }
    auto [it, inserted] = execution_json_.try_emplace(ExecutionFingerprint(job));
    if (inserted) it->second = DumpJson(job.ToJson().at("execution"));
    out.spec_json.reserve(identity.size() + it->second.size() + 16);
    out.spec_json.append(prefix).append("\"execution\":").append(it->second).append(",");
    out.spec_json.append(identity, prefix.size(), std::string::npos);
    return out;
  }

 private:
  // Every field that JobSpec::ToJson() writes under "execution"; keep the two in step
  // (StoreTest.SpecJsonIsJobSpecToJson checks the result against ToJson()).
  static std::string ExecutionFingerprint(const JobSpec& job) {
    std::string fingerprint = std::to_string(job.ranks) + "|" + std::to_string(job.retry.max_attempts) + "|" +
                              std::to_string(job.retry.max_lost) + "|";
    char numbers[64];
    std::snprintf(numbers, sizeof(numbers), "%a|%a|", job.hang_timeout_s, job.expected_seconds);
    fingerprint += numbers;
    for (int i = 0; i < kFailureClassCount; ++i) {
      const RetryRule& rule = job.retry.rule(static_cast<FailureClass>(i));
      fingerprint += rule.retry ? 'r' : '-';
      fingerprint += rule.counts_attempt ? 'c' : '-';
    }
    return fingerprint;
  }

  std::unordered_map<std::string, std::string> execution_json_;
};

// Appends one row to the event log. `job_state` is the job's state after the event, or
// null for events that change no job state (checkpoints, run start and end).
int AppendEvent(StatementCache& statements, double time, int64_t epoch, std::optional<int64_t> job_id,
                std::optional<int64_t> attempt_id, const char* kind, const char* job_state, const Json& detail) {
  Statement* insert = nullptr;
  int rc = statements.Get(
      "INSERT INTO events (time, epoch, job_id, attempt_id, kind, job_state, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
      &insert);
  if (rc != SQLITE_OK) return rc;
  insert->Bind(1, time).BindOptional(2, OptionalId(epoch)).BindOptional(3, job_id).BindOptional(4, attempt_id);
  insert->Bind(5, kind);
  if (job_state != nullptr) {
    insert->Bind(6, job_state);
  } else {
    insert->Bind(6, nullptr);
  }
  return insert->Bind(7, DumpJson(detail)).Run();
}

// A job's stored state and key, or NotFound.
struct StoredJob {
  std::string state;
  std::string key;
};

Result<StoredJob> LoadStoredJob(sqlite3* db, StatementCache& statements, int64_t job_id) {
  Statement* select = nullptr;
  ATP_SQLITE_CHECK(db, statements.Get("SELECT state, job_key FROM jobs WHERE id = ?1", &select));
  const int rc = select->Bind(1, job_id).Step();
  ATP_SQLITE_CHECK(db, rc);
  if (rc != SQLITE_ROW) return NotFound("job " + std::to_string(job_id) + " is not in the results database");
  StoredJob job{select->Text(0), select->Text(1)};
  select->Reset();
  return job;
}

// Explains why a transition found job `job_id` in the wrong state: NotFound when it does
// not exist, FailedPrecondition naming its actual state otherwise.
Status JobNotInState(sqlite3* db, StatementCache& statements, int64_t job_id, const char* expected,
                     const char* transition) {
  ATP_ASSIGN_OR_RETURN(StoredJob job, LoadStoredJob(db, statements, job_id));
  return FailedPrecondition("cannot " + std::string(transition) + " job " + std::to_string(job_id) + " (" +
                            job.key.substr(0, 12) + "): it is " + job.state + ", not " + expected);
}

// The same for an attempt that a transition expected to be running for `job_id`.
Status AttemptNotRunning(sqlite3* db, StatementCache& statements, int64_t attempt_id, int64_t job_id,
                         const char* transition) {
  Statement* select = nullptr;
  ATP_SQLITE_CHECK(db, statements.Get("SELECT state, job_id FROM attempts WHERE id = ?1", &select));
  select->Bind(1, attempt_id);
  const int rc = select->Step();
  ATP_SQLITE_CHECK(db, rc);
  const std::string attempt = "attempt " + std::to_string(attempt_id);
  if (rc != SQLITE_ROW) return NotFound(attempt + " is not in the results database");
  const std::string state = select->Text(0);
  const int64_t owner = select->Int64(1);
  select->Reset();  // a statement left on a row would keep its read open
  if (owner != job_id) {
    return InvalidArgument(attempt + " belongs to job " + std::to_string(owner) + ", not job " +
                           std::to_string(job_id));
  }
  // Typically a result that arrives after the attempt was declared lost or hung.
  return FailedPrecondition("cannot " + std::string(transition) + " " + attempt + " of job " +
                            std::to_string(job_id) + ": it is already " + state);
}

// Holds the writer lock file descriptor until ownership passes to the Store.
class LockFile {
 public:
  explicit LockFile(int fd) : fd_(fd) {}
  ~LockFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  LockFile(const LockFile&) = delete;
  LockFile& operator=(const LockFile&) = delete;
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// Who holds the lock, as its holder wrote it ("pid 123 on node01"); best effort.
std::string LockHolder(int fd) {
  char buffer[256] = {};
  const ssize_t n = ::pread(fd, buffer, sizeof(buffer) - 1, 0);
  std::string holder = n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string();
  while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
  return holder.empty() ? "unknown process" : holder;
}

// The lock file of a database: beside its real file, so that every path reaching the same
// file (a symlink, "a/../b", a relative path) takes the same lock.
std::string WriterLockPath(const std::string& db_path) {
  std::error_code ec;
  std::filesystem::path real = std::filesystem::weakly_canonical(db_path, ec);
  if (ec) return db_path + ".lock";
  return real.string() + ".lock";
}

// Takes the database's lock file exclusively without waiting. flock locks belong to the open
// file, so the lock disappears with the process however it dies: no stale lock to clean up.
Result<int> AcquireWriterLock(const std::string& db_path) {
  const std::string lock_path = WriterLockPath(db_path);
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return IoError("cannot open the writer lock file " + lock_path + ": " + std::strerror(errno) +
                   " (the database's directory must exist and be writable)");
  }
  LockFile lock(fd);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    if (error == EWOULDBLOCK) {
      return FailedPrecondition(lock_path + " is locked by another coordinator (" + LockHolder(fd) +
                                ") that uses the results database " + db_path +
                                ". Only one coordinator may write a database: wait for it to finish or stop "
                                "it, or use a different database path.");
    }
    return IoError("cannot lock " + lock_path + ": " + std::strerror(error));
  }
  const std::string holder = "pid " + std::to_string(::getpid()) + " on " + HostName() + "\n";
  if (::ftruncate(fd, 0) == 0) {
    // Only feeds the message above; a failed write leaves "unknown process".
    [[maybe_unused]] ssize_t written = ::pwrite(fd, holder.data(), holder.size(), 0);
  }
  return lock.release();
}

// Runs one SQL statement that returns a single text value (a PRAGMA, a scalar SELECT).
Result<std::string> QueryText(sqlite3* db, const char* sql) {
  Statement statement;
  ATP_SQLITE_CHECK(db, statement.Prepare(db, sql));
  const int rc = statement.Step();
  ATP_SQLITE_CHECK(db, rc);
  return rc == SQLITE_ROW ? statement.Text(0) : std::string();
}

// Refuses to write into an SQLite file that some other program created.
Status CheckIsAtpOrEmpty(sqlite3* db, const std::string& path) {
  Statement probe;
  const int prepare_rc = probe.Prepare(
      db,
      "SELECT (SELECT application_id FROM pragma_application_id()),"
      "       (SELECT count(*) FROM sqlite_master),"
      "       (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta')");
  if (prepare_rc == SQLITE_NOTADB) {
    return InvalidArgument(path + " is not an SQLite database; give the path of an atp results database or of a "
                                  "file that does not exist yet");
  }
  ATP_SQLITE_CHECK(db, prepare_rc);
  ATP_SQLITE_CHECK(db, probe.Step());
  const int64_t application_id = probe.Int64(0);
  const bool has_objects = probe.Int64(1) > 0;
  const bool has_meta = probe.Int64(2) > 0;
  if (application_id == kStoreApplicationId || (application_id == 0 && (!has_objects || has_meta))) {
    return Status::Ok();
  }
  return InvalidArgument(path + " is an SQLite database that atp did not create; refusing to write into it. "
                                "Give the path of an atp results database or of a file that does not exist yet.");
}

Status ConfigureConnection(sqlite3* db, const std::string& path) {
  ATP_SQLITE_CHECK(db, sqlite3_busy_timeout(db, kBusyTimeoutMs));
  // WAL lets `atp status` and the status server read while the coordinator writes.
  ATP_ASSIGN_OR_RETURN(std::string journal_mode, QueryText(db, "PRAGMA journal_mode = WAL"));
  if (journal_mode != "wal") {
    return FailedPrecondition("cannot switch " + path + " to WAL mode (SQLite kept '" + journal_mode +
                              "'); WAL needs shared memory beside the database, which network filesystems often "
                              "lack: keep the live database on a local disk");
  }
  // NORMAL in WAL mode: a killed process loses nothing that was committed; a power cut may
  // lose the last transactions but never leaves a half-written one.
  ATP_SQLITE_CHECK(db, sqlite3_exec(db, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON", nullptr,
                                    nullptr, nullptr));
  // A submission of 100,000 jobs touches ~100 MB of pages in one transaction; a 64 MiB page
  // cache keeps it from spilling to the WAL before the commit. After each checkpoint the
  // WAL is cut back to 64 MiB so one large submission does not leave a huge file behind.
  ATP_SQLITE_CHECK(db, sqlite3_exec(db, "PRAGMA cache_size = -65536; PRAGMA journal_size_limit = 67108864",
                                    nullptr, nullptr, nullptr));
  return Status::Ok();
}

Status MigrateSchema(sqlite3* db, const std::string& path) {
  Savepoint transaction(db);
  ATP_SQLITE_CHECK(db, transaction.Begin());
  ATP_ASSIGN_OR_RETURN(std::string has_meta,
                       QueryText(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'"));
  int version = 0;
  if (has_meta != "0") {
    ATP_ASSIGN_OR_RETURN(std::string stored, QueryText(db, "SELECT value FROM meta WHERE key = 'schema_version'"));
    version = std::atoi(stored.c_str());
  }
  if (version > kStoreSchemaVersion) {
    return FailedPrecondition(path + " has schema version " + std::to_string(version) +
                              ", newer than this atp understands (" + std::to_string(kStoreSchemaVersion) +
                              "): use the atp build that wrote it, or a newer one");
  }
  if (version == kStoreSchemaVersion) {
    ATP_SQLITE_CHECK(db, transaction.Release());
    return Status::Ok();
  }

  for (int step = version; step < kStoreSchemaVersion; ++step) {
    ATP_SQLITE_CHECK(db, sqlite3_exec(db, kMigrations[step], nullptr, nullptr, nullptr));
  }
  Statement upsert;
  ATP_SQLITE_CHECK(db, upsert.Prepare(db, "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)"));
  ATP_SQLITE_CHECK(db, upsert.Reset().Bind(1, "schema_version").Bind(2, std::to_string(kStoreSchemaVersion)).Run());
  ATP_SQLITE_CHECK(db, upsert.Reset().Bind(1, "application").Bind(2, "atp results database").Run());
  if (version == 0) {
    ATP_SQLITE_CHECK(db, upsert.Reset().Bind(1, "created_at").Bind(2, Json(WallTimeSeconds()).dump()).Run());
  }
  ATP_SQLITE_CHECK(db, sqlite3_exec(db, ("PRAGMA application_id = " + std::to_string(kStoreApplicationId)).c_str(),
                                    nullptr, nullptr, nullptr));
  ATP_SQLITE_CHECK(db, transaction.Release());
  return Status::Ok();
}

}  // namespace

Store::Store(sqlite3* db, int lock_fd, std::string path)
    : db_(db), lock_fd_(lock_fd), path_(std::move(path)), statements_(std::make_unique<StatementCache>(db)) {}

Store::~Store() {
  // An open batch was never committed: like a crash, none of it happened.
  if (batch_depth_ > 0 && !sqlite3_get_autocommit(db_)) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  statements_.reset();  // statements must be finalized before their connection closes
  sqlite3_close_v2(db_);
  // Released last, so the next writer cannot open the database before this one closed it.
  ::close(lock_fd_);
}

Result<std::unique_ptr<Store>> Store::OpenWriter(const std::string& path) {
  ATP_ASSIGN_OR_RETURN(int lock_fd, AcquireWriterLock(path));
  LockFile lock(lock_fd);
  ATP_ASSIGN_OR_RETURN(SqliteDb db, SqliteDb::Open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
  ATP_RETURN_IF_ERROR(CheckIsAtpOrEmpty(db.get(), path));
  ATP_RETURN_IF_ERROR(ConfigureConnection(db.get(), path).WithContext("opening " + path));
  ATP_RETURN_IF_ERROR(MigrateSchema(db.get(), path).WithContext("creating the schema of " + path));
  return std::unique_ptr<Store>(new Store(db.release(), lock.release(), path));
}

Result<int64_t> Store::BeginRun(const Provenance& provenance) {
  const double now = WallTimeSeconds();
  Savepoint transaction(db_);
  ATP_SQLITE_CHECK(db_, transaction.Begin());

  // This process holds the writer lock, so every earlier run that never ended has died.
  Statement* mark_lost = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "INSERT INTO events (time, epoch, kind, detail) "
                            "SELECT ?1, id, 'run_lost', json_object('last_heartbeat_at', heartbeat_at) "
                            "FROM runs WHERE ended_at IS NULL",
                            &mark_lost));
  ATP_SQLITE_CHECK(db_, mark_lost->Bind(1, now).Run());
  ATP_SQLITE_CHECK(db_, statements_->Get("UPDATE runs SET ended_at = heartbeat_at, status = 'lost' "
                                         "WHERE ended_at IS NULL",
                                         &mark_lost));
  ATP_SQLITE_CHECK(db_, mark_lost->Run());

  Statement* insert = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "INSERT INTO runs (started_at, heartbeat_at, status, atp_version, git_commit, "
                            "libtorch_version, cuda_version, nccl_version, mpi_version, command_line, hosts_json, "
                            "world_size, pid, hostname, compute_json) "
                            "VALUES (?1, ?1, 'running', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                            &insert));
  insert->Bind(1, now).Bind(2, provenance.atp_version).Bind(3, provenance.git_commit);
  insert->Bind(4, provenance.libtorch_version).Bind(5, provenance.cuda_version).Bind(6, provenance.nccl_version);
  insert->Bind(7, provenance.mpi_version).Bind(8, provenance.command_line).Bind(9, DumpJson(Json(provenance.hosts)));
  insert->Bind(10, provenance.world_size).Bind(11, static_cast<int64_t>(::getpid())).Bind(12, HostName());
  insert->Bind(13, DumpJson(provenance.compute.is_null() ? Json::object() : provenance.compute));
  ATP_SQLITE_CHECK(db_, insert->Run());
  const int64_t epoch = sqlite3_last_insert_rowid(db_);

  ATP_SQLITE_CHECK(db_, AppendEvent(*statements_, now, epoch, std::nullopt, std::nullopt, "run_started", nullptr,
                                    Json{{"world_size", provenance.world_size}, {"hosts", provenance.hosts}}));
  ATP_SQLITE_CHECK(db_, transaction.Release());
  epoch_ = epoch;
  return epoch;
}

Status Store::EndRun(int64_t epoch, const std::string& status) {
  const double now = WallTimeSeconds();
  Savepoint transaction(db_);
  ATP_SQLITE_CHECK(db_, transaction.Begin());
  Statement* update = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "UPDATE runs SET ended_at = ?2, heartbeat_at = ?2, status = ?3 WHERE id = ?1", &update));
  ATP_SQLITE_CHECK(db_, update->Bind(1, epoch).Bind(2, now).Bind(3, status).Run());
  if (sqlite3_changes(db_) == 0) return NotFound("run " + std::to_string(epoch) + " is not in the results database");
  ATP_SQLITE_CHECK(db_, AppendEvent(*statements_, now, epoch, std::nullopt, std::nullopt, "run_ended", nullptr,
                                    Json{{"status", status}}));
  ATP_SQLITE_CHECK(db_, transaction.Release());
  return Status::Ok();
}

Status Store::Heartbeat(int64_t epoch) {
  Statement* update = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get("UPDATE runs SET heartbeat_at = ?2 WHERE id = ?1", &update));
  ATP_SQLITE_CHECK(db_, update->Bind(1, epoch).Bind(2, WallTimeSeconds()).Run());
  if (sqlite3_changes(db_) == 0) return NotFound("run " + std::to_string(epoch) + " is not in the results database");
  return Status::Ok();
}

Result<RecoverySummary> Store::RecoverInterruptedAttempts(int64_t epoch) {
  const double now = WallTimeSeconds();
  Savepoint transaction(db_);
  ATP_SQLITE_CHECK(db_, transaction.Begin());

  struct LostAttempt {
    int64_t attempt_id;
    int64_t job_id;
    int64_t attempt_epoch;
    int lost_attempts;  // after this loss
    int max_lost;
  };
  std::vector<LostAttempt> lost;
  Statement* select = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "SELECT a.id, a.job_id, a.epoch, j.lost_attempts, j.spec_json "
                            "FROM attempts a JOIN jobs j ON j.id = a.job_id "
                            "WHERE a.state = 'running' AND a.epoch < ?1 ORDER BY a.id",
                            &select));
  select->Bind(1, epoch);
  int rc;
  while ((rc = select->Step()) == SQLITE_ROW) {
    int max_lost = RetryPolicy().max_lost;
    Json spec_json = select->JsonValue(4);
    if (auto spec = JobSpec::FromJson(spec_json); spec.ok()) max_lost = spec->retry.max_lost;
    lost.push_back({select->Int64(0), select->Int64(1), select->Int64(2), static_cast<int>(select->Int64(3)) + 1,
                    max_lost});
  }
  ATP_SQLITE_CHECK(db_, rc);
  select->Reset();  // ends the read before the same tables are written

  RecoverySummary summary;
  for (const LostAttempt& attempt : lost) {
    const std::string attempt_error = "lost when the coordinator of run " + std::to_string(attempt.attempt_epoch) +
                                      " stopped while the attempt ran";
    Statement* update_attempt = nullptr;
    ATP_SQLITE_CHECK(db_, statements_->Get(
                              "UPDATE attempts SET state = 'lost', ended_at = ?2, failure_class = ?4, "
                              "error = ?3 WHERE id = ?1",
                              &update_attempt));
    ATP_SQLITE_CHECK(db_, update_attempt->Bind(1, attempt.attempt_id)
                              .Bind(2, now)
                              .Bind(3, attempt_error)
                              .Bind(4, FailureClassName(FailureClass::kNodeLost))
                              .Run());

    const bool poisoned = attempt.lost_attempts >= attempt.max_lost;
    const char* next_state = poisoned ? JobStateName(JobState::kFailed) : JobStateName(JobState::kPending);
    const std::string job_error =
        poisoned ? "lost " + std::to_string(attempt.lost_attempts) +
                       " times with a coordinator that stopped while it ran (max_lost " +
                       std::to_string(attempt.max_lost) +
                       "): the job itself may be what brings the run down; check its log, then retry it with "
                       "--retry-failed"
                 : attempt_error;
    Statement* update_job = nullptr;
    ATP_SQLITE_CHECK(db_, statements_->Get(
                              "UPDATE jobs SET state = ?2, lost_attempts = ?3, failure_class = ?6, "
                              "error = ?4, ended_at = ?5 WHERE id = ?1",
                              &update_job));
    ATP_SQLITE_CHECK(db_, update_job->Bind(1, attempt.job_id)
                              .Bind(2, next_state)
                              .Bind(3, attempt.lost_attempts)
                              .Bind(4, job_error)
                              .Bind(5, now)
                              .Bind(6, FailureClassName(FailureClass::kNodeLost))
                              .Run());
    ATP_SQLITE_CHECK(db_, AppendEvent(*statements_, now, epoch, attempt.job_id, attempt.attempt_id, "lost",
                                      next_state,
                                      Json{{"attempt_epoch", attempt.attempt_epoch},
                                           {"lost_attempts", attempt.lost_attempts},
                                           {"max_lost", attempt.max_lost}}));
    ++(poisoned ? summary.poisoned : summary.requeued);
  }
  ATP_SQLITE_CHECK(db_, transaction.Release());
  return summary;
}

Result<SubmitSummary> Store::SubmitSweep(const Sweep& sweep) {
  if (sweep.name.empty()) return InvalidArgument("cannot submit a sweep without a name");
  const double now = WallTimeSeconds();

  // Keys and specs are serialised before the transaction so that it stays short.
  std::vector<SpecSerializer::Serialized> serialized;
  serialized.reserve(sweep.jobs.size());
  SpecSerializer serializer;
  std::string all_keys;
  all_keys.reserve(sweep.jobs.size() * 65);
  for (const JobSpec& job : sweep.jobs) {
    serialized.push_back(serializer.Serialize(job));
    all_keys += serialized.back().key;
    all_keys += '\n';
  }
  const std::string source_hash = Sha256Hex(sweep.source_text);
  // Two submissions are the same sweep when they have the same name, text and expansion.
  // The expansion is part of it because sweeps built in code have no text, and because a
  // newer atp may expand the same text into different jobs.
  const std::string jobs_hash = Sha256Hex(all_keys);

  Savepoint transaction(db_);
  ATP_SQLITE_CHECK(db_, transaction.Begin());

  SubmitSummary summary;
  Statement* find_sweep = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "SELECT id FROM sweeps WHERE name = ?1 AND source_hash = ?2 AND jobs_hash = ?3",
                            &find_sweep));
  find_sweep->Bind(1, sweep.name).Bind(2, source_hash).Bind(3, jobs_hash);
  int rc = find_sweep->Step();
  ATP_SQLITE_CHECK(db_, rc);
  if (rc == SQLITE_ROW) {
    summary.sweep_id = find_sweep->Int64(0);
    find_sweep->Reset();
    Statement* touch = nullptr;
    ATP_SQLITE_CHECK(db_, statements_->Get("UPDATE sweeps SET submitted_at = ?2 WHERE id = ?1", &touch));
    ATP_SQLITE_CHECK(db_, touch->Bind(1, summary.sweep_id).Bind(2, now).Run());
  } else {
    find_sweep->Reset();
    Statement* insert_sweep = nullptr;
    ATP_SQLITE_CHECK(db_, statements_->Get(
                              "INSERT INTO sweeps (name, source_path, source_text, source_hash, jobs_hash, "
                              "code_version, job_count, created_at, submitted_at) "
                              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                              &insert_sweep));
    insert_sweep->Bind(1, sweep.name).Bind(2, sweep.source_path).Bind(3, sweep.source_text);
    insert_sweep->Bind(4, source_hash).Bind(5, jobs_hash).Bind(6, sweep.code_version);
    insert_sweep->Bind(7, static_cast<int64_t>(sweep.jobs.size())).Bind(8, now);
    ATP_SQLITE_CHECK(db_, insert_sweep->Run());
    summary.sweep_id = sqlite3_last_insert_rowid(db_);
  }

  // The same statements serve all jobs; looking them up once keeps the loop tight.
  Statement* insert_job = nullptr;
  Statement* find_job = nullptr;
  Statement* respecify_job = nullptr;
  Statement* insert_dep = nullptr;
  Statement* link_job = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "INSERT OR IGNORE INTO jobs (job_key, stage, method, dataset, seed, ranks, spec_json, "
                            "state, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8)",
                            &insert_job));
  ATP_SQLITE_CHECK(db_, statements_->Get("SELECT id, state, spec_json FROM jobs WHERE job_key = ?1", &find_job));
  // How a job runs is not part of its identity: a job that has not finished follows the
  // latest sweep file's ranks, retries and timeouts.
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "UPDATE jobs SET spec_json = ?2, ranks = ?3 "
                            "WHERE id = ?1 AND state IN ('pending', 'failed', 'blocked')",
                            &respecify_job));
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "INSERT OR IGNORE INTO job_deps (job_id, upstream_job_id) VALUES (?1, ?2)", &insert_dep));
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "INSERT OR IGNORE INTO sweep_jobs (sweep_id, job_id, position) VALUES (?1, ?2, ?3)",
                            &link_job));

  std::unordered_map<std::string, int64_t> id_by_key;
  id_by_key.reserve(sweep.jobs.size());
  for (size_t i = 0; i < sweep.jobs.size(); ++i) {
    const JobSpec& job = sweep.jobs[i];
    const std::string& key = serialized[i].key;
    const std::string& spec_json = serialized[i].spec_json;
    const long long seed = job.seed();
    insert_job->Reset().Bind(1, key).Bind(2, job.stage).Bind(3, job.method).Bind(4, job.dataset());
    insert_job->BindOptional(5, seed >= 0 ? std::optional<int64_t>(seed) : std::nullopt);
    insert_job->Bind(6, job.ranks).Bind(7, spec_json).Bind(8, now);
    ATP_SQLITE_CHECK(db_, insert_job->Run());

    int64_t job_id = 0;
    if (sqlite3_changes(db_) == 1) {
      job_id = sqlite3_last_insert_rowid(db_);
      ++summary.new_jobs;
      for (const std::string& upstream_key : job.upstream) {
        int64_t upstream_id = 0;
        if (auto it = id_by_key.find(upstream_key); it != id_by_key.end()) {
          upstream_id = it->second;
        } else {
          // An upstream job may come from an earlier sweep.
          find_job->Reset().Bind(1, upstream_key);
          rc = find_job->Step();
          ATP_SQLITE_CHECK(db_, rc);
          if (rc != SQLITE_ROW) {
            return InvalidArgument("sweep '" + sweep.name + "': job " + key.substr(0, 12) + " (stage " + job.stage +
                                   ") depends on job " + upstream_key.substr(0, 12) +
                                   ", which is neither earlier in the sweep nor in the results database");
          }
          upstream_id = find_job->Int64(0);
          find_job->Reset();
        }
        ATP_SQLITE_CHECK(db_, insert_dep->Reset().Bind(1, job_id).Bind(2, upstream_id).Run());
      }
      ATP_SQLITE_CHECK(db_, AppendEvent(*statements_, now, epoch_, job_id, std::nullopt, "submitted",
                                        JobStateName(JobState::kPending), Json{{"sweep_id", summary.sweep_id}}));
    } else {
      find_job->Reset().Bind(1, key);
      rc = find_job->Step();
      ATP_SQLITE_CHECK(db_, rc);
      if (rc != SQLITE_ROW) return Internal("job " + key + " was neither inserted nor found");
      job_id = find_job->Int64(0);
      const bool done = find_job->Text(1) == JobStateName(JobState::kDone);
      const bool same_spec = find_job->Text(2) == spec_json;
      find_job->Reset();
      ++summary.known_jobs;
      if (done) ++summary.done_jobs;
      if (!same_spec) {
        ATP_SQLITE_CHECK(db_, respecify_job->Reset().Bind(1, job_id).Bind(2, spec_json).Bind(3, job.ranks).Run());
      }
    }
    ATP_SQLITE_CHECK(db_, link_job->Reset()
                              .Bind(1, summary.sweep_id)
                              .Bind(2, job_id)
                              .Bind(3, static_cast<int64_t>(i))
                              .Run());
    id_by_key.emplace(key, job_id);
  }

  ATP_SQLITE_CHECK(db_, AppendEvent(*statements_, now, epoch_, std::nullopt, std::nullopt, "sweep_submitted",
                                    nullptr,
                                    Json{{"sweep_id", summary.sweep_id},
                                         {"name", sweep.name},
                                         {"new_jobs", summary.new_jobs},
                                         {"known_jobs", summary.known_jobs}}));
  ATP_SQLITE_CHECK(db_, transaction.Release());
  return summary;
}

Status Store::RequireSweep(int64_t sweep_id) {
  Statement* find_sweep = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get("SELECT 1 FROM sweeps WHERE id = ?1", &find_sweep));
  const int rc = find_sweep->Bind(1, sweep_id).Step();
  ATP_SQLITE_CHECK(db_, rc);
  find_sweep->Reset();
  if (rc != SQLITE_ROW) return NotFound("sweep " + std::to_string(sweep_id) + " is not in the results database");
  return Status::Ok();
}

Result<int64_t> Store::ResetFailedJobs(int64_t sweep_id) {
  const double now = WallTimeSeconds();
  Savepoint transaction(db_);
  ATP_SQLITE_CHECK(db_, transaction.Begin());
  ATP_RETURN_IF_ERROR(RequireSweep(sweep_id));

  // The events are written first, while the rows still show what is being reset.
  Statement* log_resets = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "INSERT INTO events (time, epoch, job_id, kind, job_state, detail) "
                            "SELECT ?1, ?2, j.id, 'reset', 'pending', "
                            "       json_object('from', j.state, 'attempts', j.attempts, "
                            "                   'lost_attempts', j.lost_attempts) "
                            "FROM sweep_jobs sj JOIN jobs j ON j.id = sj.job_id "
                            "WHERE sj.sweep_id = ?3 AND j.state IN ('failed', 'blocked')",
                            &log_resets));
  ATP_SQLITE_CHECK(db_, log_resets->Bind(1, now).BindOptional(2, OptionalId(epoch_)).Bind(3, sweep_id).Run());
  Statement* reset = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "UPDATE jobs SET state = 'pending', attempts = 0, lost_attempts = 0, ended_at = NULL, "
                            "duration_s = NULL "
                            "WHERE state IN ('failed', 'blocked') "
                            "  AND id IN (SELECT job_id FROM sweep_jobs WHERE sweep_id = ?1)",
                            &reset));
  ATP_SQLITE_CHECK(db_, reset->Bind(1, sweep_id).Run());
  const int64_t reset_jobs = sqlite3_changes(db_);
  ATP_SQLITE_CHECK(db_, transaction.Release());
  return reset_jobs;
}

Result<std::vector<JobRecord>> Store::LoadSweepJobs(int64_t sweep_id) {
  ATP_RETURN_IF_ERROR(RequireSweep(sweep_id));
  int rc = SQLITE_OK;

  Statement* select = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "SELECT j.id, j.job_key, j.spec_json, j.state, j.attempts, j.lost_attempts, "
                            "       (SELECT count(*) FROM attempts a WHERE a.job_id = j.id), "
                            "       j.failure_class, j.error, j.checkpoint_path, j.outputs_json "
                            "FROM sweep_jobs sj JOIN jobs j ON j.id = sj.job_id "
                            "WHERE sj.sweep_id = ?1 ORDER BY sj.position",
                            &select));
  select->Bind(1, sweep_id);
  std::vector<JobRecord> jobs;
  std::unordered_map<int64_t, size_t> index_by_id;
  while ((rc = select->Step()) == SQLITE_ROW) {
    JobRecord record;
    record.id = select->Int64(0);
    record.key = select->Text(1);
    auto spec = JobSpec::FromJson(select->JsonValue(2));
    if (!spec.ok()) {
      return Internal("job " + record.key.substr(0, 12) + " in " + path_ +
                      " has a malformed spec_json: " + spec.status().message());
    }
    record.spec = std::move(spec).value();
    auto state = ParseJobState(select->Text(3));
    if (!state) return Internal("job " + record.key.substr(0, 12) + " has an unknown state '" + select->Text(3) + "'");
    record.state = *state;
    record.attempts = static_cast<int>(select->Int64(4));
    record.lost_attempts = static_cast<int>(select->Int64(5));
    record.total_attempts = static_cast<int>(select->Int64(6));
    if (!select->IsNull(7)) record.failure = ParseFailureClass(select->Text(7));
    record.error = select->Text(8);
    record.checkpoint = select->Text(9);
    record.outputs = select->JsonValue(10, Json::object());
    index_by_id.emplace(record.id, jobs.size());
    jobs.push_back(std::move(record));
  }
  ATP_SQLITE_CHECK(db_, rc);
  select->Reset();

  Statement* deps = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "SELECT d.job_id, d.upstream_job_id "
                            "FROM sweep_jobs sj JOIN job_deps d ON d.job_id = sj.job_id "
                            "WHERE sj.sweep_id = ?1 ORDER BY d.job_id, d.upstream_job_id",
                            &deps));
  deps->Bind(1, sweep_id);
  while ((rc = deps->Step()) == SQLITE_ROW) {
    auto it = index_by_id.find(deps->Int64(0));
    if (it != index_by_id.end()) jobs[it->second].upstream_ids.push_back(deps->Int64(1));
  }
  ATP_SQLITE_CHECK(db_, rc);
  deps->Reset();
  return jobs;
}

Result<std::map<std::string, double>> Store::MeanDurations() {
  Statement* select = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "SELECT j.stage, j.method, j.dataset, avg(a.ended_at - a.started_at) "
                            "FROM attempts a JOIN jobs j ON j.id = a.job_id "
                            "WHERE a.state = 'done' GROUP BY j.stage, j.method, j.dataset",
                            &select));
  std::map<std::string, double> means;
  int rc;
  while ((rc = select->Step()) == SQLITE_ROW) {
    means[select->Text(0) + "|" + select->Text(1) + "|" + select->Text(2)] = select->Double(3);
  }
  ATP_SQLITE_CHECK(db_, rc);
  select->Reset();
  return means;
}

Status Store::BeginBatch() {
  if (batch_depth_ == 0) {
    // IMMEDIATE takes the write lock now, so no statement inside the batch can meet a lock.
    ATP_SQLITE_CHECK(db_, sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr));
  }
  ++batch_depth_;
  return Status::Ok();
}

Status Store::CommitBatch() {
  if (batch_depth_ == 0) return FailedPrecondition("CommitBatch without a matching BeginBatch");
  if (--batch_depth_ > 0) return Status::Ok();
  if (sqlite3_get_autocommit(db_)) {
    return Internal("the batch was rolled back by SQLite after an earlier error in it (see that error); none of "
                    "its transitions were recorded");
  }
  const int rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    Status status = SqliteStatus(db_, rc, "COMMIT", __FILE__, __LINE__);
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return status.WithContext("committing a batch of transitions (none of them were recorded)");
  }
  return Status::Ok();
}

Result<int64_t> Store::StartAttempt(int64_t job_id, int64_t epoch, const std::string& host,
                                    const std::vector<int>& ranks) {
  const double now = WallTimeSeconds();
  const std::string ranks_json = RanksJson(ranks);
  Savepoint transaction(db_);
  ATP_SQLITE_CHECK(db_, transaction.Begin());

  Statement* update_job = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "UPDATE jobs SET state = 'running', started_at = ?2, ended_at = NULL, duration_s = NULL, "
                            "host = ?3, ranks_used = ?4 WHERE id = ?1 AND state = 'pending'",
                            &update_job));
  ATP_SQLITE_CHECK(db_, update_job->Bind(1, job_id).Bind(2, now).Bind(3, host).Bind(4, ranks_json).Run());
  if (sqlite3_changes(db_) == 0) return JobNotInState(db_, *statements_, job_id, "pending", "start an attempt of");

  Statement* insert_attempt = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "INSERT INTO attempts (job_id, number, epoch, state, host, ranks, started_at) "
                            "VALUES (?1, (SELECT coalesce(max(number), 0) + 1 FROM attempts WHERE job_id = ?1), "
                            "        ?2, 'running', ?3, ?4, ?5)",
                            &insert_attempt));
  ATP_SQLITE_CHECK(db_,
                   insert_attempt->Bind(1, job_id).Bind(2, epoch).Bind(3, host).Bind(4, ranks_json).Bind(5, now).Run());
  const int64_t attempt_id = sqlite3_last_insert_rowid(db_);

  ATP_SQLITE_CHECK(db_, AppendEvent(*statements_, now, epoch, job_id, attempt_id, "started",
                                    JobStateName(JobState::kRunning), Json{{"host", host}, {"ranks", ranks}}));
  ATP_SQLITE_CHECK(db_, transaction.Release());
  return attempt_id;
}

Status Store::UpdateProgress(int64_t attempt_id, int64_t step, int64_t total) {
  Statement* update = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "UPDATE attempts SET progress_step = ?2, progress_total = ?3, progress_at = ?4 "
                            "WHERE id = ?1 AND state = 'running'",
                            &update));
  ATP_SQLITE_CHECK(db_, update->Bind(1, attempt_id).Bind(2, step).Bind(3, total).Bind(4, WallTimeSeconds()).Run());
  if (sqlite3_changes(db_) > 0) return Status::Ok();
  // Progress that arrives after the attempt ended is stale, not an error; an unknown
  // attempt is a caller bug.
  Statement* find = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get("SELECT 1 FROM attempts WHERE id = ?1", &find));
  const int rc = find->Bind(1, attempt_id).Step();
  ATP_SQLITE_CHECK(db_, rc);
  find->Reset();
  if (rc != SQLITE_ROW) return NotFound("attempt " + std::to_string(attempt_id) + " is not in the results database");
  return Status::Ok();
}

Status Store::RecordCheckpoint(int64_t job_id, int64_t attempt_id, const std::string& path) {
  const double now = WallTimeSeconds();
  Savepoint transaction(db_);
  ATP_SQLITE_CHECK(db_, transaction.Begin());
  Statement* update = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get("UPDATE jobs SET checkpoint_path = ?2 WHERE id = ?1", &update));
  ATP_SQLITE_CHECK(db_, update->Bind(1, job_id).Bind(2, path).Run());
  if (sqlite3_changes(db_) == 0) return NotFound("job " + std::to_string(job_id) + " is not in the results database");
  Statement* insert = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "INSERT INTO artifacts (job_id, attempt_id, kind, path, created_at) "
                            "VALUES (?1, ?2, 'checkpoint', ?3, ?4)",
                            &insert));
  ATP_SQLITE_CHECK(db_, insert->Bind(1, job_id).BindOptional(2, OptionalId(attempt_id)).Bind(3, path).Bind(4, now).Run());
  ATP_SQLITE_CHECK(db_, AppendEvent(*statements_, now, epoch_, job_id, OptionalId(attempt_id), "checkpoint", nullptr,
                                    Json{{"path", path}}));
  ATP_SQLITE_CHECK(db_, transaction.Release());
  return Status::Ok();
}

Status Store::DiscardCheckpoint(int64_t job_id, int64_t attempt_id, const std::string& reason) {
  const double now = WallTimeSeconds();
  Savepoint transaction(db_);
  ATP_SQLITE_CHECK(db_, transaction.Begin());
  Statement* update = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get("UPDATE jobs SET checkpoint_path = NULL WHERE id = ?1", &update));
  ATP_SQLITE_CHECK(db_, update->Bind(1, job_id).Run());
  if (sqlite3_changes(db_) == 0) return NotFound("job " + std::to_string(job_id) + " is not in the results database");
  ATP_SQLITE_CHECK(db_, AppendEvent(*statements_, now, epoch_, job_id, OptionalId(attempt_id), "checkpoint_discarded",
                                    nullptr, Json{{"reason", reason}}));
  ATP_SQLITE_CHECK(db_, transaction.Release());
  return Status::Ok();
}

Status Store::CompleteAttempt(int64_t attempt_id, int64_t job_id, const JobOutcome& outcome) {
  const double now = WallTimeSeconds();
  Savepoint transaction(db_);
  ATP_SQLITE_CHECK(db_, transaction.Begin());

  Statement* update_attempt = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "UPDATE attempts SET state = 'done', ended_at = ?3 "
                            "WHERE id = ?1 AND job_id = ?2 AND state = 'running'",
                            &update_attempt));
  ATP_SQLITE_CHECK(db_, update_attempt->Bind(1, attempt_id).Bind(2, job_id).Bind(3, now).Run());
  if (sqlite3_changes(db_) == 0) return AttemptNotRunning(db_, *statements_, attempt_id, job_id, "complete");

  Statement* update_job = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "UPDATE jobs SET state = 'done', ended_at = ?2, outputs_json = ?3, "
                            "       duration_s = ?2 - (SELECT started_at FROM attempts WHERE id = ?4) "
                            "WHERE id = ?1 AND state = 'running'",
                            &update_job));
  ATP_SQLITE_CHECK(db_,
                   update_job->Bind(1, job_id).Bind(2, now).Bind(3, DumpJson(outcome.outputs)).Bind(4, attempt_id).Run());
  if (sqlite3_changes(db_) == 0) return JobNotInState(db_, *statements_, job_id, "running", "complete");

  Statement* insert_metric = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "INSERT OR REPLACE INTO metrics (job_id, name, value) VALUES (?1, ?2, ?3)",
                            &insert_metric));
  for (const auto& [name, value] : outcome.metrics) {
    ATP_SQLITE_CHECK(db_, insert_metric->Reset().Bind(1, job_id).Bind(2, name).Bind(3, value).Run());
  }
  Statement* insert_artifact = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "INSERT INTO artifacts (job_id, attempt_id, kind, path, created_at) "
                            "VALUES (?1, ?2, ?3, ?4, ?5)",
                            &insert_artifact));
  for (const auto& [kind, path] : outcome.artifacts) {
    ATP_SQLITE_CHECK(db_, insert_artifact->Reset()
                              .Bind(1, job_id)
                              .Bind(2, attempt_id)
                              .Bind(3, kind)
                              .Bind(4, path)
                              .Bind(5, now)
                              .Run());
  }
  ATP_SQLITE_CHECK(db_, AppendEvent(*statements_, now, epoch_, job_id, attempt_id, "done",
                                    JobStateName(JobState::kDone),
                                    Json{{"metrics", outcome.metrics.size()}, {"artifacts", outcome.artifacts.size()}}));
  ATP_SQLITE_CHECK(db_, transaction.Release());
  return Status::Ok();
}

Status Store::FailAttempt(int64_t attempt_id, int64_t job_id, FailureClass failure, const std::string& message,
                          JobState next, bool counts_attempt) {
  if (next != JobState::kPending && next != JobState::kFailed) {
    return InvalidArgument(std::string("a failed attempt leaves its job pending (retry) or failed, not ") +
                           JobStateName(next));
  }
  const double now = WallTimeSeconds();
  const std::string error = Truncated(message);
  const char* failure_class = FailureClassName(failure);
  Savepoint transaction(db_);
  ATP_SQLITE_CHECK(db_, transaction.Begin());

  Statement* update_attempt = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "UPDATE attempts SET state = 'failed', ended_at = ?3, failure_class = ?4, error = ?5 "
                            "WHERE id = ?1 AND job_id = ?2 AND state = 'running'",
                            &update_attempt));
  ATP_SQLITE_CHECK(db_, update_attempt->Bind(1, attempt_id)
                            .Bind(2, job_id)
                            .Bind(3, now)
                            .Bind(4, failure_class)
                            .Bind(5, error)
                            .Run());
  if (sqlite3_changes(db_) == 0) return AttemptNotRunning(db_, *statements_, attempt_id, job_id, "fail");

  Statement* update_job = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "UPDATE jobs SET state = ?2, attempts = attempts + ?3, failure_class = ?4, error = ?5, "
                            "       ended_at = ?6 "
                            "WHERE id = ?1 AND state = 'running'",
                            &update_job));
  ATP_SQLITE_CHECK(db_, update_job->Bind(1, job_id)
                            .Bind(2, JobStateName(next))
                            .Bind(3, counts_attempt ? 1 : 0)
                            .Bind(4, failure_class)
                            .Bind(5, error)
                            .Bind(6, now)
                            .Run());
  if (sqlite3_changes(db_) == 0) return JobNotInState(db_, *statements_, job_id, "running", "fail");

  ATP_SQLITE_CHECK(db_, AppendEvent(*statements_, now, epoch_, job_id, attempt_id, "failed", JobStateName(next),
                                    Json{{"class", failure_class},
                                         {"counts_attempt", counts_attempt},
                                         {"message", Truncated(error, 200)}}));
  ATP_SQLITE_CHECK(db_, transaction.Release());
  return Status::Ok();
}

Status Store::BlockJob(int64_t job_id, const std::string& reason) {
  const double now = WallTimeSeconds();
  Savepoint transaction(db_);
  ATP_SQLITE_CHECK(db_, transaction.Begin());
  Statement* update = nullptr;
  ATP_SQLITE_CHECK(db_, statements_->Get(
                            "UPDATE jobs SET state = 'blocked', error = ?2, ended_at = ?3 "
                            "WHERE id = ?1 AND state = 'pending'",
                            &update));
  ATP_SQLITE_CHECK(db_, update->Bind(1, job_id).Bind(2, Truncated(reason)).Bind(3, now).Run());
  if (sqlite3_changes(db_) == 0) {
    ATP_ASSIGN_OR_RETURN(StoredJob job, LoadStoredJob(db_, *statements_, job_id));
    // Blocking is idempotent: a job below two failed upstream jobs is blocked once.
    if (job.state == JobStateName(JobState::kBlocked)) return Status::Ok();
    return JobNotInState(db_, *statements_, job_id, "pending", "block");
  }
  ATP_SQLITE_CHECK(db_, AppendEvent(*statements_, now, epoch_, job_id, std::nullopt, "blocked",
                                    JobStateName(JobState::kBlocked), Json{{"reason", Truncated(reason, 200)}}));
  ATP_SQLITE_CHECK(db_, transaction.Release());
  return Status::Ok();
}

}  // namespace atp
