#include "coordinator/store/sqlite_util.h"

#include <cstring>
#include <utility>

namespace atp {

Status SqliteStatus(sqlite3* db, int rc, const char* what, const char* file, int line) {
  const char* base = std::strrchr(file, '/');
  std::string message = std::string("sqlite: ") + what + " at " + (base ? base + 1 : file) + ":" +
                        std::to_string(line) + ": ";
  // sqlite3_errmsg describes the connection's most recent failure, which is this one unless
  // the code came from a remembered bind error or a closed handle; then the code's own text
  // is the accurate one.
  const char* detail = (db != nullptr && (sqlite3_extended_errcode(db) & 0xff) == (rc & 0xff)) ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  message += detail;
  message += " (code " + std::to_string(rc) + ")";
  // Name the database: "database disk image is malformed" alone does not say which file.
  const char* filename = db != nullptr ? sqlite3_db_filename(db, "main") : nullptr;
  if (filename != nullptr && *filename != '\0') message += " in " + std::string(filename);
  switch (rc & 0xff) {
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return IoError(std::move(message));
    case SQLITE_NOTADB:
      return InvalidArgument(std::move(message));
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Unavailable(std::move(message));
    default:
      return Internal(std::move(message));
  }
}

SqliteDb::~SqliteDb() {
  if (db_ != nullptr) sqlite3_close_v2(db_);
}

SqliteDb& SqliteDb::operator=(SqliteDb&& other) noexcept {
  if (this != &other) {
    if (db_ != nullptr) sqlite3_close_v2(db_);
    db_ = other.release();
  }
  return *this;
}

Result<SqliteDb> SqliteDb::Open(const std::string& path, int flags) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  SqliteDb db(raw);  // sqlite3_open_v2 may return a handle even on failure; it must be closed
  if (rc != SQLITE_OK) {
    return SqliteStatus(raw, rc, "sqlite3_open_v2", __FILE__, __LINE__).WithContext("opening " + path);
  }
  sqlite3_extended_result_codes(db.get(), 1);
  return db;
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement::Statement(Statement&& other) noexcept
    : stmt_(std::exchange(other.stmt_, nullptr)), bind_rc_(other.bind_rc_) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    stmt_ = std::exchange(other.stmt_, nullptr);
    bind_rc_ = other.bind_rc_;
  }
  return *this;
}

int Statement::Prepare(sqlite3* db, std::string_view sql) {
  sqlite3_finalize(stmt_);
  stmt_ = nullptr;
  bind_rc_ = SQLITE_OK;
  return sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &stmt_,
                            nullptr);
}

Statement& Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_rc_ = SQLITE_OK;
  return *this;
}

namespace {
// Keeps the first failure: later binds cannot make an execution valid again.
void RememberBindResult(int rc, int* bind_rc) {
  if (*bind_rc == SQLITE_OK && rc != SQLITE_OK) *bind_rc = rc;
}
}  // namespace

Statement& Statement::Bind(int index, int64_t value) {
  RememberBindResult(sqlite3_bind_int64(stmt_, index, value), &bind_rc_);
  return *this;
}

Statement& Statement::Bind(int index, double value) {
  RememberBindResult(sqlite3_bind_double(stmt_, index, value), &bind_rc_);
  return *this;
}

Statement& Statement::Bind(int index, std::string_view value) {
  RememberBindResult(
      sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8), &bind_rc_);
  return *this;
}

Statement& Statement::Bind(int index, std::nullptr_t) {
  RememberBindResult(sqlite3_bind_null(stmt_, index), &bind_rc_);
  return *this;
}

Statement& Statement::BindOptional(int index, const std::optional<int64_t>& value) {
  return value ? Bind(index, *value) : Bind(index, nullptr);
}

Statement& Statement::BindNonEmpty(int index, std::string_view value) {
  return value.empty() ? Bind(index, nullptr) : Bind(index, value);
}

int Statement::Step() {
  if (bind_rc_ != SQLITE_OK) return bind_rc_;
  return sqlite3_step(stmt_);
}

int Statement::Run() {
  int rc = Step();
  while (rc == SQLITE_ROW) rc = sqlite3_step(stmt_);
  // Reset releases the statement's read snapshot; its own code repeats a step error, which
  // `rc` already carries.
  sqlite3_reset(stmt_);
  return rc;
}

bool Statement::IsNull(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }

int64_t Statement::Int64(int column) const { return sqlite3_column_int64(stmt_, column); }

double Statement::Double(int column) const { return sqlite3_column_double(stmt_, column); }

std::string Statement::Text(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(text), static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

std::optional<int64_t> Statement::OptionalInt64(int column) const {
  if (IsNull(column)) return std::nullopt;
  return Int64(column);
}

std::optional<double> Statement::OptionalDouble(int column) const {
  if (IsNull(column)) return std::nullopt;
  return Double(column);
}

Json Statement::JsonValue(int column, const Json& fallback) const {
  if (IsNull(column)) return fallback;
  Json parsed = Json::parse(Text(column), nullptr, /*allow_exceptions=*/false);
  return parsed.is_discarded() ? fallback : parsed;
}

int StatementCache::Get(const char* sql, Statement** statement) {
  auto it = statements_.find(sql);
  if (it == statements_.end()) {
    auto prepared = std::make_unique<Statement>();
    const int rc = prepared->Prepare(db_, sql);
    if (rc != SQLITE_OK) return rc;
    it = statements_.emplace(sql, std::move(prepared)).first;
  }
  *statement = &it->second->Reset();
  return SQLITE_OK;
}

Savepoint::~Savepoint() {
  if (!active_) return;
  // If SQLite already rolled the whole transaction back (it does so itself after some I/O
  // errors), there is no savepoint left to roll back to.
  if (sqlite3_get_autocommit(db_)) return;
  sqlite3_exec(db_, "ROLLBACK TO atp_transition; RELEASE atp_transition", nullptr, nullptr, nullptr);
}

int Savepoint::Begin() {
  const int rc = sqlite3_exec(db_, "SAVEPOINT atp_transition", nullptr, nullptr, nullptr);
  active_ = rc == SQLITE_OK;
  return rc;
}

int Savepoint::Release() {
  const int rc = sqlite3_exec(db_, "RELEASE atp_transition", nullptr, nullptr, nullptr);
  if (rc == SQLITE_OK) active_ = false;
  return rc;
}

}  // namespace atp
