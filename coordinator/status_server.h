// StatusServer: a small read-only HTTP server (Boost.Asio) on the coordinator that serves
// the sweep's progress as JSON endpoints and one HTML page. It runs its own thread; the
// data comes from a handler that the owner provides (in atp, backed by a StoreReader on the
// same database), so the server never touches coordinator state. Malformed or oversized
// requests get a 4xx answer and never stop the server. Start/Stop are called from one thread.
//
// Routes: GET|HEAD /  (or /index.html) -> the HTML page (status_page.h);
//         GET|HEAD /api/<path>?<query>  -> the handler's JSON, or {"error":{code,message,status}};
//         anything else -> a JSON error (404; 405 for other methods; 400 malformed; 431 too big).
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
// Query parameters are percent-decoded ('+' is a space); a repeated key is a 400, since the
// map cannot hold both values. A handler that throws is answered 500 and the server goes on.
using StatusHandler = std::function<Result<Json>(const std::string& path,
                                                 const std::map<std::string, std::string>& query)>;

struct StatusServerOptions {
  std::string host = "127.0.0.1";   // read-only data, but still: loopback unless asked
  uint16_t port = 0;                // 0: the OS picks a free port (see port())
  size_t max_request_bytes = 16 * 1024;
  double read_timeout_s = 10;       // a client that sends nothing is dropped
  // Connections held at once, idle keep-alive ones included; more are answered 503 and
  // closed, so misbehaving clients cannot use up the coordinator's file descriptors.
  size_t max_connections = 256;
  // Connections one client address may hold at once: a client that keeps reconnecting (or
  // holds connections open) is answered 503 itself and cannot make the server unavailable
  // to everyone else.
  size_t max_connections_per_client = 64;
};

class StatusServer {
 public:
  StatusServer(StatusServerOptions options, StatusHandler handler);
  ~StatusServer();  // stops the server
  StatusServer(const StatusServer&) = delete;
  StatusServer& operator=(const StatusServer&) = delete;

  // Binds and starts the thread; the error names host:port on failure. InvalidArgument for
  // nonsensical options; FailedPrecondition when already started. Start after Stop works.
  Status Start();
  // Idempotent; closes every connection and joins the thread. A handler call in progress is
  // finished first, so Stop waits for it.
  void Stop();
  uint16_t port() const;  // the bound port, valid after Start()
  // "http://127.0.0.1:PORT/"; an unspecified bind address (0.0.0.0, ::) shows as loopback.
  std::string url() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace atp
