// StatusServer: a small read-only HTTP server (Boost.Asio) on the coordinator that serves
// the sweep's progress as JSON endpoints and one HTML page. It runs its own thread; the
// data comes from a handler that the owner provides (in atp, backed by a StoreReader on the
// same database), so the server never touches coordinator state. Malformed or oversized
// requests get a 4xx answer and never stop the server. Start/Stop are called from one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/json.h"
#include "common/status.h"

namespace atp {

// Answers an API request: `path` without the "/api" prefix (e.g. "/summary", "/jobs",
// "/metrics", "/sweeps"), with the decoded query parameters. NotFound becomes 404,
// InvalidArgument 400, anything else 500. Called on the server thread only.
using StatusHandler = std::function<Result<Json>(const std::string& path,
                                                 const std::map<std::string, std::string>& query)>;

struct StatusServerOptions {
  std::string host = "127.0.0.1";   // read-only data, but still: loopback unless asked
  uint16_t port = 0;                // 0: the OS picks a free port (see port())
  size_t max_request_bytes = 16 * 1024;
  double read_timeout_s = 10;       // a client that sends nothing is dropped
};

class StatusServer {
 public:
  StatusServer(StatusServerOptions options, StatusHandler handler);
  ~StatusServer();  // stops the server
  StatusServer(const StatusServer&) = delete;
  StatusServer& operator=(const StatusServer&) = delete;

  Status Start();       // binds and starts the thread; error names host:port on failure
  void Stop();          // idempotent
  uint16_t port() const;  // the bound port, valid after Start()
  std::string url() const;  // "http://127.0.0.1:PORT/"

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace atp
