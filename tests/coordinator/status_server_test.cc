#include "coordinator/status_server.h"
#include "tests/support/status_matchers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace atp {
namespace {

using Query = std::map<std::string, std::string>;
using Clock = std::chrono::steady_clock;

// Every client operation gives up after this long, so a server bug fails a test instead of
// hanging the suite.
constexpr auto kClientTimeout = std::chrono::seconds(10);

// A plain blocking-socket HTTP client for loopback, with deadlines.
class Client {
 public:
  // `source`: the client's own address (any of 127.0.0.0/8 is this machine).
  explicit Client(uint16_t port, const char* source = nullptr) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error("socket() failed");
    if (source != nullptr) {
      sockaddr_in local{};
      local.sin_family = AF_INET;
      ::inet_pton(AF_INET, source, &local.sin_addr);
      if (::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
        ::close(fd_);
        throw std::runtime_error(std::string("bind() to ") + source + " failed");
      }
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(fd_);
      throw std::runtime_error("connect() to 127.0.0.1 failed");
    }
  }
  ~Client() { Close(); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // False when the server has closed or reset the connection.
  bool Send(const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
      if (!Wait(POLLOUT)) return false;
      const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  // Reads until the server closes the connection (or the deadline passes).
  std::string ReadAll() {
    std::string out;
    char buf[65536];
    while (Wait(POLLIN)) {
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) break;  // closed, or reset after the answer
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

  // Reads until one whole response (header and Content-Length bytes of body) has arrived,
  // for connections the server keeps open.
  std::string ReadResponse() {
    std::string out;
    char buf[4096];
    for (;;) {
      const size_t end = out.find("\r\n\r\n");
      if (end != std::string::npos) {
        const size_t cl = out.find("Content-Length: ");
        if (cl != std::string::npos && cl < end &&
            out.size() >= end + 4 + std::stoul(out.substr(cl + 16))) {
          return out;
        }
      }
      if (!Wait(POLLIN)) return out;
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return out;
      out.append(buf, static_cast<size_t>(n));
    }
  }

 private:
  bool Wait(short events) {
    const auto deadline = Clock::now() + kClientTimeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, events, 0};
      const int r = ::poll(&p, 1, static_cast<int>(left.count()));
      if (r > 0) return true;
      if (r < 0 && errno != EINTR) return false;
    }
  }

  int fd_ = -1;
};

struct HttpResponse {
  int status = 0;  // 0: no answer at all
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;

  std::string Header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// Parses one response from the front of `raw` and removes it.
HttpResponse ParseOne(std::string& raw) {
  HttpResponse r;
  const size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos || raw.compare(0, 9, "HTTP/1.1 ") != 0) return r;
  r.status = std::atoi(raw.c_str() + 9);
  size_t line = raw.find("\r\n") + 2;
  while (line < end) {
    const size_t eol = raw.find("\r\n", line);
    const std::string header = raw.substr(line, eol - line);
    const size_t colon = header.find(':');
    std::string name = header.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers[name] = header.substr(header.find_first_not_of(' ', colon + 1));
    line = eol + 2;
  }
  size_t length = 0;
  if (r.headers.count("content-length")) length = std::stoul(r.Header("content-length"));
  r.body = raw.substr(end + 4, length);
  raw.erase(0, std::min(raw.size(), end + 4 + length));
  return r;
}

HttpResponse ParseOnly(std::string raw) { return ParseOne(raw); }

class StatusServerTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (server_) server_->Stop();
  }

  // The default handler answers every path with {"path": ..., "query": {...}}.
  void StartServer(StatusHandler handler = nullptr, StatusServerOptions options = {}) {
    if (!handler) {
      handler = [this](const std::string& path, const Query& query) -> Result<Json> {
        ++calls_;
        return Json{{"path", path}, {"query", query}};
      };
    }
    server_ = std::make_unique<StatusServer>(options, std::move(handler));
    const Status started = server_->Start();
    ASSERT_OK(started);
    ASSERT_NE(server_->port(), 0);
  }

  // Sends `raw` as is on a new connection and returns everything the server sent back.
  std::string Exchange(const std::string& raw) {
    Client client(server_->port());
    client.Send(raw);
    return client.ReadAll();
  }

  HttpResponse Request(const std::string& method, const std::string& target) {
    return ParseOnly(Exchange(method + " " + target +
                              " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"));
  }
  HttpResponse Get(const std::string& target) { return Request("GET", target); }

  // The server is still healthy: an ordinary request gets an ordinary answer.
  void ExpectServing() {
    const HttpResponse r = Get("/api/summary");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(Json::parse(r.body)["path"], "/summary");
  }

  std::unique_ptr<StatusServer> server_;
  std::atomic<int> calls_{0};
};

TEST_F(StatusServerTest, ServesHandlerJsonWithStatusAndContentType) {
  const Json summary = {{"sweep", {{"id", 1}, {"name", "fewshot"}}},
                        {"counts", {{"done", 3}, {"running", 1}, {"failed", 0}}},
                        {"eta_s", nullptr}};
  std::string seen_path;
  StartServer([&](const std::string& path, const Query&) -> Result<Json> {
    seen_path = path;
    return summary;
  });
  const HttpResponse r = Get("/api/summary");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("content-type"), "application/json");
  EXPECT_EQ(r.Header("cache-control"), "no-store");
  EXPECT_EQ(r.Header("content-length"), std::to_string(r.body.size()));
  EXPECT_EQ(Json::parse(r.body), summary);
  EXPECT_EQ(seen_path, "/summary");
}

TEST_F(StatusServerTest, DecodesQueryParametersAndPath) {
  StartServer();
  const HttpResponse r =
      Get("/api/j%6Fbs?state=failed&stage=eval%20few%2Dshot&name=a+b%2Bc&empty=&flag&&pct=100%25");
  ASSERT_EQ(r.status, 200) << r.body;
  const Json body = Json::parse(r.body);
  EXPECT_EQ(body["path"], "/jobs");
  const Query expected = {{"state", "failed"}, {"stage", "eval few-shot"}, {"name", "a b+c"},
                          {"empty", ""}, {"flag", ""}, {"pct", "100%"}};
  EXPECT_EQ(body["query"].get<Query>(), expected);
}

TEST_F(StatusServerTest, BadPercentEncodingIs400AndNeverReachesHandler) {
  StartServer();
  for (const char* target : {"/api/jobs?state=%zz", "/api/jobs?state=%4", "/api/jobs?x%=1",
                             "/api/jo%gbs", "/api/jobs?state=a&state=b"}) {
    const HttpResponse r = Get(target);
    EXPECT_EQ(r.status, 400) << target;
    EXPECT_EQ(r.Header("content-type"), "application/json") << target;
    EXPECT_EQ(Json::parse(r.body)["error"]["code"], "InvalidArgument") << target;
  }
  EXPECT_EQ(calls_, 0);
  ExpectServing();
}

TEST_F(StatusServerTest, UnknownRoutesAre404Json) {
  StartServer();
  for (const char* target : {"/nope", "/api", "/api/", "/apix/summary", "/favicon.ico"}) {
    const HttpResponse r = Get(target);
    EXPECT_EQ(r.status, 404) << target;
    EXPECT_EQ(r.Header("content-type"), "application/json") << target;
    EXPECT_EQ(Json::parse(r.body)["error"]["status"], 404) << target;
  }
  EXPECT_EQ(calls_, 0);
}

TEST_F(StatusServerTest, MapsHandlerStatusesToHttpCodes) {
  StartServer([](const std::string& path, const Query&) -> Result<Json> {
    if (path == "/missing") return NotFound("no sweep 7");
    if (path == "/bad") return InvalidArgument("limit must be positive");
    if (path == "/broken") return Internal("database is malformed");
    if (path == "/unavailable") return Unavailable("coordinator gone");
    return Json::object();
  });
  const struct { const char* target; int status; const char* code; const char* message; } cases[] = {
      {"/api/missing", 404, "NotFound", "no sweep 7"},
      {"/api/bad", 400, "InvalidArgument", "limit must be positive"},
      {"/api/broken", 500, "Internal", "database is malformed"},
      {"/api/unavailable", 500, "Unavailable", "coordinator gone"},
  };
  for (const auto& c : cases) {
    const HttpResponse r = Get(c.target);
    EXPECT_EQ(r.status, c.status) << c.target;
    const Json error = Json::parse(r.body)["error"];
    EXPECT_EQ(error["code"], c.code) << c.target;
    EXPECT_EQ(error["message"], c.message) << c.target;
  }
}

TEST_F(StatusServerTest, ThrowingHandlerIs500AndServerKeepsServing) {
  StartServer([](const std::string& path, const Query&) -> Result<Json> {
    if (path == "/throw") throw std::runtime_error("boom");
    if (path == "/throw-int") throw 42;
    return Json{{"path", path}};
  });
  HttpResponse r = Get("/api/throw");
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(Json::parse(r.body)["error"]["message"].get<std::string>().find("boom"), std::string::npos);
  EXPECT_EQ(Get("/api/throw-int").status, 500);
  ExpectServing();
}

TEST_F(StatusServerTest, InvalidUtf8FromHandlerIsReplacedNotFatal) {
  // Job error texts in the database are whatever a process printed, bytes included.
  StartServer([](const std::string&, const Query&) -> Result<Json> {
    return Json{{"error", std::string("bad \xff\xfe bytes")}};
  });
  const HttpResponse r = Get("/api/jobs");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Json::parse(r.body)["error"], "bad \xEF\xBF\xBD\xEF\xBF\xBD bytes");
}

TEST_F(StatusServerTest, ServesSelfContainedHtmlPage) {
  StartServer();
  for (const char* target : {"/", "/index.html", "/?sweep=2"}) {
    const HttpResponse r = Get(target);
    EXPECT_EQ(r.status, 200) << target;
    EXPECT_EQ(r.Header("content-type"), "text/html; charset=utf-8");
    EXPECT_EQ(r.Header("cache-control"), "no-store");
    EXPECT_NE(r.Header("content-security-policy").find("default-src 'none'"), std::string::npos);
    EXPECT_NE(r.body.find("<title>atp</title>"), std::string::npos);
    EXPECT_NE(r.body.find("apiUrl('summary')"), std::string::npos);
    // Self-contained: nothing is loaded from anywhere else.
    EXPECT_EQ(r.body.find("http://"), std::string::npos);
    EXPECT_EQ(r.body.find("https://"), std::string::npos);
    EXPECT_EQ(r.body.find("<script src"), std::string::npos);
    EXPECT_EQ(r.body.find("innerHTML"), std::string::npos);
  }
  EXPECT_EQ(calls_, 0);
}

TEST_F(StatusServerTest, HeadAnswersHeadersWithoutBody) {
  StartServer();
  const HttpResponse get = Get("/api/summary");
  std::string raw = Exchange("HEAD /api/summary HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const size_t header_end = raw.find("\r\n\r\n");
  ASSERT_NE(header_end, std::string::npos);
  EXPECT_EQ(raw.size(), header_end + 4) << "a HEAD answer has no body";
  const HttpResponse head = ParseOne(raw);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.Header("content-length"), std::to_string(get.body.size()));
}

TEST_F(StatusServerTest, KeepAliveServesPipelinedRequestsOnOneConnection) {
  StartServer();
  std::string raw = Exchange(
      "GET /api/one HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /api/two?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /api/three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const HttpResponse one = ParseOne(raw);
  const HttpResponse two = ParseOne(raw);
  const HttpResponse three = ParseOne(raw);
  EXPECT_EQ(one.Header("connection"), "keep-alive");
  EXPECT_EQ(Json::parse(one.body)["path"], "/one");
  EXPECT_EQ(Json::parse(two.body)["query"]["x"], "1");
  EXPECT_EQ(Json::parse(three.body)["path"], "/three");
  EXPECT_EQ(three.Header("connection"), "close");
  EXPECT_TRUE(raw.empty());
  EXPECT_EQ(calls_, 3);
}

TEST_F(StatusServerTest, OtherMethodsAre405WithAllow) {
  StartServer();
  HttpResponse r = ParseOnly(Exchange(
      "POST /api/summary HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"));
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.Header("allow"), "GET, HEAD");
  EXPECT_EQ(r.Header("connection"), "close");
  for (const char* method : {"PUT", "DELETE", "OPTIONS", "BREW"}) {
    EXPECT_EQ(Request(method, "/").status, 405) << method;
  }
  EXPECT_EQ(calls_, 0);
  ExpectServing();
}

TEST_F(StatusServerTest, GarbageBytesAre400) {
  StartServer();
  const HttpResponse r = ParseOnly(Exchange(std::string("\x01\x02\xff garbage\0 \r\n\r\n", 17)));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Header("connection"), "close");
  ExpectServing();
}

TEST_F(StatusServerTest, RequestLineWithoutVersionIs400) {
  StartServer();
  EXPECT_EQ(ParseOnly(Exchange("GET /api/summary\r\n\r\n")).status, 400);
  EXPECT_EQ(ParseOnly(Exchange("GET /api/summary HTTP/9\r\nHost: x\r\n\r\n")).status, 400);
  EXPECT_EQ(Request("GET", "http://example.invalid/").status, 400);
  EXPECT_EQ(calls_, 0);
  ExpectServing();
}

TEST_F(StatusServerTest, OversizedHeaderIs431) {
  StartServer();
  const std::string huge = "GET /api/summary HTTP/1.1\r\nHost: x\r\nX-Big: " +
                           std::string(1 << 20, 'a') + "\r\n\r\n";
  const HttpResponse r = ParseOnly(Exchange(huge));
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(calls_, 0);
  ExpectServing();
}

TEST_F(StatusServerTest, ClientThatSendsNothingAndClosesIsHarmless) {
  StartServer();
  for (int i = 0; i < 20; ++i) {
    Client client(server_->port());
    client.Close();
  }
  ExpectServing();
}

TEST_F(StatusServerTest, SilentAndSlowClientsAreDroppedAfterReadTimeout) {
  StatusServerOptions options;
  options.read_timeout_s = 0.3;
  StartServer(nullptr, options);
  Client silent(server_->port());
  Client slow(server_->port());
  ASSERT_TRUE(slow.Send("GET /api/sum"));  // and never the rest
  const auto start = Clock::now();
  EXPECT_EQ(silent.ReadAll(), "");
  EXPECT_EQ(slow.ReadAll(), "");
  // Dropped by the server's deadline, well before the client's own.
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
  ExpectServing();
}

TEST_F(StatusServerTest, ConnectionsBeyondTheLimitAre503) {
  StatusServerOptions options;
  options.max_connections = 2;
  StartServer(nullptr, options);
  Client idle1(server_->port());
  Client idle2(server_->port());
  // Once the server has answered on them, it holds both (kept alive, idle).
  ASSERT_TRUE(idle1.Send("GET /api/a HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(idle2.Send("GET /api/b HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_EQ(ParseOnly(idle1.ReadResponse()).status, 200);
  ASSERT_EQ(ParseOnly(idle2.ReadResponse()).status, 200);
  const HttpResponse refused = Get("/api/c");
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(Json::parse(refused.body)["error"]["code"], "Unavailable");
  idle1.Close();
  idle2.Close();
  // The server notices the closes asynchronously; it serves again soon after.
  int status = 0;
  for (int i = 0; i < 100 && status != 200; ++i) {
    status = Get("/api/d").status;
    if (status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(status, 200);
}

// Regression: the only cap was on all connections together, so one client that kept
// reconnecting (or held connections open) made the server answer 503 to everyone.
TEST_F(StatusServerTest, OneClientBeyondItsShareIs503WhileOthersAreServed) {
  StatusServerOptions options;
  options.max_connections = 10;
  options.max_connections_per_client = 2;
  StartServer(nullptr, options);
  Client idle1(server_->port(), "127.0.0.1");
  Client idle2(server_->port(), "127.0.0.1");
  ASSERT_TRUE(idle1.Send("GET /api/a HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(idle2.Send("GET /api/b HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_EQ(ParseOnly(idle1.ReadResponse()).status, 200);
  ASSERT_EQ(ParseOnly(idle2.ReadResponse()).status, 200);
  Client greedy(server_->port(), "127.0.0.1");
  ASSERT_TRUE(greedy.Send("GET /api/c HTTP/1.1\r\nHost: x\r\n\r\n"));
  const HttpResponse refused = ParseOnly(greedy.ReadResponse());
  EXPECT_EQ(refused.status, 503);
  EXPECT_NE(refused.body.find("this client"), std::string::npos) << refused.body;
  Client other(server_->port(), "127.0.0.2");
  ASSERT_TRUE(other.Send("GET /api/d HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(ParseOnly(other.ReadResponse()).status, 200);
}

TEST_F(StatusServerTest, ManyConcurrentClientsAllSucceed) {
  StartServer();
  constexpr int kThreads = 50;
  constexpr int kRequestsPerThread = 20;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRequestsPerThread; ++i) {
        const std::string id = std::to_string(t) + "-" + std::to_string(i);
        try {
          const HttpResponse r = Get("/api/jobs?id=" + id);
          if (r.status == 200 && Json::parse(r.body)["query"]["id"] == id) ++ok;
        } catch (const std::exception&) {
          // counted as a failure below
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ok, kThreads * kRequestsPerThread);
  EXPECT_EQ(calls_, kThreads * kRequestsPerThread);
}

TEST_F(StatusServerTest, StopIsIdempotentAndANewServerCanTakeThePort) {
  StartServer();
  const uint16_t port = server_->port();
  EXPECT_EQ(server_->url(), "http://127.0.0.1:" + std::to_string(port) + "/");
  ExpectServing();
  server_->Stop();
  server_->Stop();
  EXPECT_THROW(Client{port}, std::runtime_error) << "nothing listens after Stop()";

  StatusServerOptions options;
  options.port = port;
  StartServer(nullptr, options);
  EXPECT_EQ(server_->port(), port);
  ExpectServing();
}

TEST_F(StatusServerTest, StartAfterStopOnTheSameObjectServesAgain) {
  StartServer();
  server_->Stop();
  ASSERT_OK(server_->Start());
  ExpectServing();
  EXPECT_EQ(server_->Start().code(), StatusCode::kFailedPrecondition);
}

TEST_F(StatusServerTest, StopClosesOpenConnections) {
  StartServer();
  Client idle(server_->port());
  ASSERT_TRUE(idle.Send("GET /api/a HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_EQ(ParseOnly(idle.ReadResponse()).status, 200);
  const auto start = Clock::now();
  server_->Stop();
  EXPECT_EQ(idle.ReadAll(), "");  // the server closed it: end of stream, not the deadline
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
}

TEST_F(StatusServerTest, BindErrorNamesHostAndPort) {
  StartServer();
  StatusServerOptions options;
  options.port = server_->port();
  StatusServer second(options, [](const std::string&, const Query&) -> Result<Json> {
    return Json::object();
  });
  const Status status = second.Start();
  EXPECT_EQ(status.code(), StatusCode::kIoError);
  EXPECT_NE(status.message().find("127.0.0.1:" + std::to_string(server_->port())),
            std::string::npos)
      << status.ToString();
  second.Stop();  // harmless on a server that never started
  ExpectServing();
}

TEST_F(StatusServerTest, RejectsNonsensicalOptions) {
  StatusServerOptions options;
  options.read_timeout_s = 0;
  StatusServer server(options, [](const std::string&, const Query&) -> Result<Json> {
    return Json::object();
  });
  EXPECT_EQ(server.Start().code(), StatusCode::kInvalidArgument);
  StatusServer no_handler(StatusServerOptions{}, nullptr);
  EXPECT_EQ(no_handler.Start().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace atp
