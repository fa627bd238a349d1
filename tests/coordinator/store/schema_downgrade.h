// Test helper: turns a results database written by this atp back into the version-1 layout
// (runs without compute_json), to test how newer code treats databases of older atp builds.
#pragma once

#include <sqlite3.h>

#include <string>

namespace atp {

// Returns "" on success, else SQLite's message.
inline std::string DowngradeToSchemaVersionOne(const std::string& db_path) {
  sqlite3* raw = nullptr;
  if (sqlite3_open(db_path.c_str(), &raw) != SQLITE_OK) {
    std::string error = raw ? sqlite3_errmsg(raw) : "cannot open " + db_path;
    sqlite3_close(raw);
    return error;
  }
  std::string error;
  if (sqlite3_exec(raw,
                   "ALTER TABLE runs DROP COLUMN compute_json; "
                   "UPDATE meta SET value = '1' WHERE key = 'schema_version'",
                   nullptr, nullptr, nullptr) != SQLITE_OK) {
    error = sqlite3_errmsg(raw);
  }
  sqlite3_close(raw);
  return error;
}

}  // namespace atp
