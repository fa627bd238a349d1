#include "coordinator/status_server.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <exception>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>

#include "coordinator/status_page.h"

namespace atp {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// After an answer that ends the connection, the client may still be sending (the rest of an
// oversized header, a POST body). Closing a socket with unread input makes the kernel send
// a reset, which can destroy our answer before the client reads it, so we stop sending,
// read and discard for at most this long, then close.
constexpr std::chrono::milliseconds kLingerLimit{2000};
// A failing accept (out of file descriptors, most likely) is retried after this pause
// rather than at once, which would spin the server thread.
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};

struct Response {
  unsigned status = 200;
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool close = false;  // end the connection after this answer
};

const char* ReasonPhrase(unsigned status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
  }
  return "Error";
}

unsigned HttpStatusFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return 200;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kInvalidArgument: return 400;
    default: return 500;
  }
}

// Handler data comes from the results database, where error texts are whatever a job
// printed; invalid UTF-8 would make dump() throw, so it is replaced instead.
std::string DumpJson(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Response JsonError(unsigned status, const char* code, const std::string& message) {
  Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = DumpJson(Json{{"error", {{"code", code}, {"message", message}, {"status", status}}}});
  return r;
}

Response JsonError(unsigned status, const Status& error) {
  return JsonError(status, StatusCodeName(error.code()), error.message());
}

std::string Serialize(const Response& r, bool head_only, bool keep_alive) {
  std::string out;
  out.reserve(256 + (head_only ? 0 : r.body.size()));
  out += "HTTP/1.1 " + std::to_string(r.status) + " " + ReasonPhrase(r.status) + "\r\n";
  out += "Server: atp\r\n";
  out += "Content-Type: " + r.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  // Progress changes every second; a cached answer would show a stale sweep.
  out += "Cache-Control: no-store\r\n";
  out += "X-Content-Type-Options: nosniff\r\n";
  for (const auto& [name, value] : r.headers) out += name + ": " + value + "\r\n";
  out += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  out += "\r\n";
  if (!head_only) out += r.body;
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes %XX escapes (and '+' as a space in query strings); nullopt when a '%' is not
// followed by two hex digits.
std::optional<std::string> PercentDecode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      const int hi = HexValue(in[i + 1]);
      const int lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

Result<std::map<std::string, std::string>> ParseQuery(std::string_view query) {
  std::map<std::string, std::string> params;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;  // "a=1&&b=2" and a trailing '&' are harmless
    const size_t eq = pair.find('=');
    const std::string_view raw_key = pair.substr(0, eq);
    const std::string_view raw_value =
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    std::optional<std::string> key = PercentDecode(raw_key, /*plus_is_space=*/true);
    std::optional<std::string> value = PercentDecode(raw_value, /*plus_is_space=*/true);
    if (!key || !value) {
      return InvalidArgument("query parameter '" + std::string(pair) +
                             "' has a '%' not followed by two hex digits; encode '%' as %25");
    }
    if (!params.emplace(std::move(*key), std::move(*value)).second) {
      return InvalidArgument("query parameter '" + std::string(raw_key) +
                             "' is given more than once; give it once");
    }
  }
  return params;
}

Response PageResponse() {
  Response r;
  r.content_type = "text/html; charset=utf-8";
  r.body = kStatusPageHtml;
  // The page is self-contained; forbidding everything else means that even a bug in its
  // escaping could not load or send anything anywhere but this server.
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'none'; script-src 'unsafe-inline'; "
                         "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; "
                         "base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
  return r;
}

Response CallHandler(const StatusHandler& handler, const std::string& api_path,
                     std::string_view raw_query) {
  Result<std::map<std::string, std::string>> query = ParseQuery(raw_query);
  if (!query.ok()) return JsonError(400, query.status());
  try {
    Result<Json> result = handler(api_path, *query);
    if (!result.ok()) {
      // An ok Status here would be a handler bug; it must not look like success.
      const unsigned status = result.status().ok() ? 500 : HttpStatusFor(result.status().code());
      return JsonError(status, result.status());
    }
    Response r;
    r.content_type = "application/json";
    r.body = DumpJson(*result);
    return r;
  } catch (const std::exception& e) {
    return JsonError(500, "Internal", "the status handler for " + api_path + " failed: " + e.what());
  } catch (...) {
    return JsonError(500, "Internal", "the status handler for " + api_path + " failed");
  }
}

Response Route(http::verb method, std::string_view target, const StatusHandler& handler) {
  if (method != http::verb::get && method != http::verb::head) {
    Response r = JsonError(405, "MethodNotAllowed", "the status server is read-only: use GET or HEAD");
    r.headers.emplace_back("Allow", "GET, HEAD");
    r.close = true;  // whatever the client meant to do next, it is not talking to us
    return r;
  }
  if (target.empty() || target.front() != '/') {
    return JsonError(400, "InvalidArgument", "the request target must be a path starting with '/'");
  }
  const size_t question = target.find('?');
  const std::string_view raw_path = target.substr(0, question);
  const std::string_view raw_query =
      question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
  std::optional<std::string> path = PercentDecode(raw_path, /*plus_is_space=*/false);
  if (!path) {
    return JsonError(400, "InvalidArgument",
                     "the path has a '%' not followed by two hex digits; encode '%' as %25");
  }
  if (*path == "/" || *path == "/index.html") return PageResponse();
  constexpr std::string_view kApi = "/api/";
  if (path->compare(0, kApi.size(), kApi) == 0 && path->size() > kApi.size()) {
    return CallHandler(handler, path->substr(kApi.size() - 1), raw_query);
  }
  return JsonError(404, "NotFound",
                   "no such page: " + *path + "; the page is at / and the data under /api/ "
                   "(e.g. /api/summary, /api/jobs?state=failed)");
}

const boost::system::error_category& HttpErrorCategory() {
  return beast::error_code(http::error::end_of_stream).category();
}

std::chrono::steady_clock::duration ToDuration(double seconds) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(seconds));
}

// What every connection shares. Owned by the server; outlives the io_context that runs the
// connections, so a connection can always reach it, even while being destroyed.
struct ServerContext {
  StatusServerOptions options;
  StatusHandler handler;
  std::chrono::steady_clock::duration read_timeout;
  size_t open_connections = 0;  // server thread only
  std::map<asio::ip::address, size_t> open_by_client;  // server thread only
};

// One client connection: read a request header, answer, repeat while the client keeps
// the connection alive. Lives as long as one of its asynchronous operations is pending.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, asio::ip::address client, ServerContext* context)
      : stream_(std::move(socket)), context_(context), client_(client),
        buffer_(context->options.max_request_bytes) {
    ++context_->open_connections;
    ++context_->open_by_client[client_];
  }
  ~Connection() {
    --context_->open_connections;
    auto it = context_->open_by_client.find(client_);
    if (it != context_->open_by_client.end() && --it->second == 0) context_->open_by_client.erase(it);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void Start() { ReadRequest(); }

 private:
  void ReadRequest() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(std::min<size_t>(
        context_->options.max_request_bytes, std::numeric_limits<std::uint32_t>::max())));
    // The deadline covers the whole header, so a client that trickles bytes is dropped too.
    stream_.expires_after(context_->read_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              self->OnHeader(ec);
                            });
  }

  void OnHeader(beast::error_code ec) {
    // After a framing error the rest of the input cannot be trusted, so those answers end
    // the connection.
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      Send(JsonError(431, "InvalidArgument",
                     "the request header exceeds " +
                         std::to_string(context_->options.max_request_bytes) + " bytes"),
           /*head_only=*/false, /*keep_alive=*/false);
      return;
    }
    // The client left before a request began, the read deadline passed (the stream is
    // closed already) or the socket failed: there is nobody to answer.
    if (ec && (ec == http::error::end_of_stream || ec.category() != HttpErrorCategory())) return;
    if (ec) {
      Send(JsonError(400, "InvalidArgument", "malformed HTTP request: " + ec.message()),
           /*head_only=*/false, /*keep_alive=*/false);
      return;
    }
    const auto& request = parser_->get();
    Response response;
    try {
      const auto target = request.target();
      response = Route(request.method(), std::string_view(target.data(), target.size()),
                       context_->handler);
    } catch (const std::exception& e) {  // bad_alloc and the like; the handler's are caught inside
      response = JsonError(500, "Internal", std::string("status server: ") + e.what());
    }
    // A body we never read would be taken for the next request, so such a request is the
    // connection's last.
    const bool keep_alive = request.keep_alive() && parser_->is_done() && !response.close;
    Send(response, request.method() == http::verb::head, keep_alive);
  }

  void Send(const Response& response, bool head_only, bool keep_alive) {
    out_ = Serialize(response, head_only, keep_alive);
    stream_.expires_after(context_->read_timeout);  // a client that never reads is dropped
    asio::async_write(stream_, asio::buffer(out_),
                      [self = shared_from_this(), keep_alive](beast::error_code ec, size_t) {
                        if (ec) return;
                        if (keep_alive) {
                          self->ReadRequest();
                        } else {
                          self->LingeringClose();
                        }
                      });
  }

  void LingeringClose() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::min<std::chrono::steady_clock::duration>(context_->read_timeout,
                                                                        kLingerLimit));
    Drain();
  }

  void Drain() {
    stream_.async_read_some(asio::buffer(drain_),
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              if (!ec) self->Drain();  // until end of stream or the deadline
                            });
  }

  beast::tcp_stream stream_;
  ServerContext* context_;
  asio::ip::address client_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  std::string out_;
  std::array<char, 4096> drain_;
};

// Accepts connections for as long as the io_context runs.
class Listener {
 public:
  Listener(asio::io_context& io, tcp::acceptor acceptor, ServerContext* context)
      : acceptor_(std::move(acceptor)), retry_timer_(io), context_(context) {}

  void Accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;  // stopping
      if (ec) {
        retry_timer_.expires_after(kAcceptRetryDelay);
        retry_timer_.async_wait([this](beast::error_code wait_ec) {
          if (!wait_ec) Accept();
        });
        return;
      }
      try {
        beast::error_code peer_ec;
        const asio::ip::address client = socket.remote_endpoint(peer_ec).address();
        auto held = context_->open_by_client.find(client);
        const size_t held_by_client = held == context_->open_by_client.end() ? 0 : held->second;
        if (peer_ec) {
          Refuse(socket);  // already gone
        } else if (held_by_client >= context_->options.max_connections_per_client) {
          Refuse(socket, "this client holds too many open connections; close some, then retry");
        } else if (context_->open_connections >= context_->options.max_connections) {
          Refuse(socket, "the status server has too many open connections; retry");
        } else {
          std::make_shared<Connection>(std::move(socket), client, context_)->Start();
        }
      } catch (const std::exception& e) {
        std::cerr << "atp status server: dropped a connection: " << e.what() << "\n";
      }
      Accept();
    });
  }

 private:
  // Answers without waiting and without holding the socket: the point is to spend nothing
  // on a client while the server is full. The answer is small enough for any send buffer.
  static void Refuse(tcp::socket& socket, const char* why = "connection refused") {
    const std::string answer = Serialize(JsonError(503, "Unavailable", why), /*head_only=*/false, /*keep_alive=*/false);
    beast::error_code ignored;
    socket.non_blocking(true, ignored);
    socket.write_some(asio::buffer(answer), ignored);
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }

  tcp::acceptor acceptor_;
  asio::steady_timer retry_timer_;
  ServerContext* context_;
};

std::string HostPort(const std::string& host, uint16_t port) {
  const bool ipv6 = host.find(':') != std::string::npos;
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

struct StatusServer::Impl {
  StatusServerOptions options;
  StatusHandler handler;
  // Destroyed in reverse: the listener before the io_context whose services it uses, the
  // io_context (and with it every connection) before the context the connections use.
  std::unique_ptr<ServerContext> context;
  std::unique_ptr<asio::io_context> io;
  std::unique_ptr<Listener> listener;
  std::thread thread;
  uint16_t port = 0;
  std::string url_host;

  void Run() {
    // Nothing escapes a connection's handlers by design; should something still throw, the
    // server logs it and goes on rather than take the coordinator down with it.
    for (;;) {
      try {
        io->run();
        return;  // stopped
      } catch (const std::exception& e) {
        std::cerr << "atp status server: unexpected error, continuing: " << e.what() << "\n";
      } catch (...) {
        std::cerr << "atp status server: unexpected error, continuing\n";
      }
    }
  }
};

StatusServer::StatusServer(StatusServerOptions options, StatusHandler handler)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->handler = std::move(handler);
}

StatusServer::~StatusServer() { Stop(); }

Status StatusServer::Start() {
  Impl& s = *impl_;
  if (s.thread.joinable()) return FailedPrecondition("status server: already started; Stop() it first");
  const std::string where = HostPort(s.options.host, s.options.port);
  if (!s.handler) return InvalidArgument("status server on " + where + ": no handler was given");
  if (s.options.max_request_bytes < 256) {
    return InvalidArgument("status server on " + where + ": max_request_bytes is " +
                           std::to_string(s.options.max_request_bytes) +
                           "; a browser's request header needs at least 256 (default 16384)");
  }
  if (!(s.options.read_timeout_s > 0) || s.options.read_timeout_s > 86400) {
    return InvalidArgument("status server on " + where + ": read_timeout_s is " +
                           std::to_string(s.options.read_timeout_s) +
                           "; give a number of seconds in (0, 86400] (default 10)");
  }
  if (s.options.max_connections == 0 || s.options.max_connections_per_client == 0) {
    return InvalidArgument("status server on " + where +
                           ": max_connections and max_connections_per_client must be at least 1");
  }

  auto io = std::make_unique<asio::io_context>(1);
  beast::error_code ec;
  tcp::endpoint endpoint;
  const asio::ip::address address = asio::ip::make_address(s.options.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, s.options.port);
  } else {
    tcp::resolver resolver(*io);
    auto results = resolver.resolve(s.options.host, std::to_string(s.options.port),
                                    tcp::resolver::passive, ec);
    if (ec || results.empty()) {
      return InvalidArgument("status server: cannot resolve the host of " + where + ": " +
                             (ec ? ec.message() : "no address") +
                             "; give an IP address such as 127.0.0.1 or 0.0.0.0");
    }
    endpoint = results.begin()->endpoint();
  }

  tcp::acceptor acceptor(*io);
  const auto fail = [&](const char* step) {
    return IoError("status server: cannot " + std::string(step) + " " + where + ": " +
                   ec.message() + "; choose another port, or port 0 to let the system pick one");
  };
  if (acceptor.open(endpoint.protocol(), ec)) return fail("open a socket for");
  // Lets a restarted coordinator bind its port while old connections sit in TIME_WAIT.
  if (acceptor.set_option(tcp::acceptor::reuse_address(true), ec)) return fail("configure");
  if (acceptor.bind(endpoint, ec)) return fail("bind to");
  if (acceptor.listen(asio::socket_base::max_listen_connections, ec)) return fail("listen on");
  const tcp::endpoint bound = acceptor.local_endpoint(ec);
  if (ec) return fail("read the bound address of");

  s.port = bound.port();
  if (bound.address().is_unspecified()) {
    s.url_host = bound.address().is_v6() ? "[::1]" : "127.0.0.1";
  } else if (bound.address().is_v6()) {
    s.url_host = "[" + bound.address().to_string() + "]";
  } else {
    s.url_host = bound.address().to_string();
  }

  auto context = std::make_unique<ServerContext>();
  context->options = s.options;
  context->handler = s.handler;
  context->read_timeout = ToDuration(s.options.read_timeout_s);
  auto listener = std::make_unique<Listener>(*io, std::move(acceptor), context.get());
  listener->Accept();

  s.context = std::move(context);
  s.io = std::move(io);
  s.listener = std::move(listener);
  try {
    s.thread = std::thread([&s] { s.Run(); });
  } catch (const std::system_error& e) {
    s.listener.reset();
    s.io.reset();
    s.context.reset();
    return Internal("status server on " + where + ": cannot start its thread: " + e.what());
  }
  return Status::Ok();
}

void StatusServer::Stop() {
  Impl& s = *impl_;
  if (!s.io) return;
  s.io->stop();
  if (s.thread.joinable()) s.thread.join();
  s.listener.reset();
  s.io.reset();  // destroys the pending handlers, and with them every connection
  s.context.reset();
}

uint16_t StatusServer::port() const { return impl_->port; }

std::string StatusServer::url() const {
  return "http://" + impl_->url_host + ":" + std::to_string(impl_->port) + "/";
}

}  // namespace atp
