// SQLite helpers for the results database: ATP_SQLITE_CHECK, which turns an SQLite result
// code into a Status carrying file:line and sqlite3_errmsg, and RAII owners for a connection
// (SqliteDb), a prepared statement (Statement), a cache of prepared statements and a
// savepoint. Copying is deleted everywhere. Not thread-safe: a connection, its statements
// and its savepoints belong to the one thread that uses the connection.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/json.h"
#include "common/status.h"

namespace atp {

// The Status for SQLite result code `rc` from the call `what` at file:line, with the
// connection's own message ("sqlite: <what> at store.cc:42: UNIQUE constraint failed: ...").
// The code says what the caller can do: kIoError (disk full, I/O error, cannot open),
// kInvalidArgument (the file is not a database), kUnavailable (locked or busy past the
// busy timeout), kInternal for everything else (a bug or a corrupt database).
Status SqliteStatus(sqlite3* db, int rc, const char* what, const char* file, int line);

// True for the codes that mean "the call did what was asked".
inline bool SqliteSucceeded(int rc) { return rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE; }

}  // namespace atp

// Evaluates `expr` (an SQLite call or a helper returning an SQLite result code) and returns
// the matching Status from the enclosing function, which returns Status or Result<T>, unless
// the code is SQLITE_OK, SQLITE_ROW or SQLITE_DONE. `db` is the connection whose
// sqlite3_errmsg explains the failure (may be null).
#define ATP_SQLITE_CHECK(db, expr)                                                          \
  do {                                                                                      \
    const int atp_sqlite_rc_ = (expr);                                                      \
    if (!::atp::SqliteSucceeded(atp_sqlite_rc_))                                            \
      return ::atp::SqliteStatus((db), atp_sqlite_rc_, #expr, __FILE__, __LINE__);          \
  } while (0)

namespace atp {

// Owns one sqlite3 connection; closes it on destruction.
class SqliteDb {
 public:
  SqliteDb() = default;
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  ~SqliteDb();
  SqliteDb(SqliteDb&& other) noexcept : db_(other.release()) {}
  SqliteDb& operator=(SqliteDb&& other) noexcept;
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  // sqlite3_open_v2 with `flags`; the error names `path`.
  static Result<SqliteDb> Open(const std::string& path, int flags);

  sqlite3* get() const { return db_; }
  sqlite3* release() {
    sqlite3* db = db_;
    db_ = nullptr;
    return db;
  }

 private:
  sqlite3* db_ = nullptr;
};

// Owns one prepared statement; finalizes it on destruction. Binding errors are remembered
// and returned by the next Step()/Run(), so call sites check one result code per execution:
//   ATP_SQLITE_CHECK(db, stmt.Reset().Bind(1, id).Bind(2, name).Run());
class Statement {
 public:
  Statement() = default;
  ~Statement();
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Prepares `sql` on `db`, replacing any previous statement. Returns the SQLite code.
  int Prepare(sqlite3* db, std::string_view sql);

  // Makes the statement ready to bind and run again; bindings are cleared.
  Statement& Reset();

  // Parameters are 1-based, as in SQLite. Doubles that are not finite are stored as NULL by
  // SQLite itself (NaN) or as +-Inf.
  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, int value) { return Bind(index, static_cast<int64_t>(value)); }
  Statement& Bind(int index, double value);
  Statement& Bind(int index, std::string_view value);
  Statement& Bind(int index, const char* value) { return Bind(index, std::string_view(value)); }
  Statement& Bind(int index, const std::string& value) { return Bind(index, std::string_view(value)); }
  Statement& Bind(int index, std::nullptr_t);
  // NULL when the value is absent or, for text, empty.
  Statement& BindOptional(int index, const std::optional<int64_t>& value);
  Statement& BindNonEmpty(int index, std::string_view value);

  // One sqlite3_step: SQLITE_ROW, SQLITE_DONE, or an error (including a remembered bind error).
  int Step();
  // Steps until SQLITE_DONE (an INSERT/UPDATE/DELETE), then resets: SQLITE_DONE or an error.
  int Run();

  bool IsNull(int column) const;
  int64_t Int64(int column) const;
  double Double(int column) const;
  std::string Text(int column) const;
  std::optional<int64_t> OptionalInt64(int column) const;
  std::optional<double> OptionalDouble(int column) const;
  // The column parsed as JSON; `fallback` when NULL or not valid JSON.
  Json JsonValue(int column, const Json& fallback = nullptr) const;

  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int bind_rc_ = SQLITE_OK;
};

// Prepared statements kept for the life of a connection, so hot transitions do not parse
// their SQL again. Must be destroyed before its connection is closed.
class StatementCache {
 public:
  explicit StatementCache(sqlite3* db) : db_(db) {}
  StatementCache(const StatementCache&) = delete;
  StatementCache& operator=(const StatementCache&) = delete;

  // Sets *statement to the prepared, reset statement for `sql`. Returns the SQLite code.
  // `sql` must be a string literal: the cache is keyed by its address, which is cheaper than
  // hashing the text on every one of a submission's 100,000 inserts.
  int Get(const char* sql, Statement** statement);

 private:
  sqlite3* db_;
  std::unordered_map<const char*, std::unique_ptr<Statement>> statements_;
};

// A savepoint: everything between Begin() and Release() happens entirely or not at all.
// Outside a transaction it starts one (committed by Release()); inside one (a batch) it
// nests. Destroyed without Release(), it rolls its changes back, so an early `return` on an
// error leaves the database as it was before Begin().
class Savepoint {
 public:
  explicit Savepoint(sqlite3* db) : db_(db) {}
  ~Savepoint();
  Savepoint(const Savepoint&) = delete;
  Savepoint& operator=(const Savepoint&) = delete;

  int Begin();
  int Release();

 private:
  sqlite3* db_;
  bool active_ = false;
};

}  // namespace atp
