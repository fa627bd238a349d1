// Bounded fuzzing of the status server's request handling: well-formed requests mutated by a
// seeded random mutator and sent over real sockets. Property: the server answers each with a
// well-formed HTTP response or closes the connection, never with a server error, and keeps
// serving ordinary requests throughout.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "coordinator/status_server.h"
#include "tests/fuzz/mutator.h"
#include "tests/support/status_matchers.h"

namespace atp {
namespace {

// Sends `request`, half-closes, and returns everything the server sends before it closes
// (at most `deadline`).
std::string Exchange(uint16_t port, const std::string& request, std::chrono::milliseconds deadline) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "<socket failed>";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    size_t sent = 0;
    while (sent < request.size()) {
      const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    ::shutdown(fd, SHUT_WR);
    const auto until = std::chrono::steady_clock::now() + deadline;
    char buffer[65536];
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      pollfd p{fd, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        out += "<timeout>";
        break;
      }
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      out.append(buffer, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return out;
}

const std::vector<std::string> kHttpTokens = {
    "\r\n", "\r\n\r\n", " ", "GET ", "HEAD ", "POST ", "/api/summary", "/api/jobs?state=failed&limit=5", "/",
    "?", "&", "=", "%", "%zz", "%00", "%C3%A9", "+", "HTTP/1.1", "HTTP/1.0", "HTTP/9.9", "Host: x\r\n",
    "Content-Length: 5\r\n", "Content-Length: 99999999999999999999\r\n", "Transfer-Encoding: chunked\r\n",
    "Connection: keep-alive\r\n", "Connection: close\r\n", "Expect: 100-continue\r\n", ":", "\t",
    std::string("\0", 1), "\xff\xfe", std::string(300, 'a'), "sweep=-1", "limit=abc", "offset=1e99"};

TEST(HttpFuzzTest, MutatedRequestsGetAnAnswerOrAClosedConnection) {
  StatusServerOptions options;
  options.read_timeout_s = 1;
  StatusServer server(options, [](const std::string& path, const std::map<std::string, std::string>& query) -> Result<Json> {
    if (path == "/missing") return NotFound("no such thing");
    Json q = Json::object();
    for (const auto& [k, v] : query) q[k] = v;
    return Json{{"path", path}, {"query", q}};
  });
  ASSERT_OK(server.Start());
  const std::vector<std::string> seeds = {
      "GET /api/summary HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /api/jobs?state=failed&limit=5&offset=10 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /api/missing HTTP/1.0\r\n\r\n",
      "POST /api/summary HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
      "GET /api/a HTTP/1.1\r\nHost: x\r\n\r\nGET /api/b HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /api/q?name=%41%42+c&x= HTTP/1.1\r\nHost: x\r\nUser-Agent: fuzz\r\nAccept: */*\r\n\r\n"};
  const int iterations = fuzz::FuzzIterations(20000);
  fuzz::Mutator mutator(/*seed=*/18, kHttpTokens);
  int answered = 0;
  for (int i = 0; i < iterations; ++i) {
    const std::string request = mutator.Mutate(seeds[mutator.Below(seeds.size())], 6, 32 * 1024);
    const std::string response = Exchange(server.port(), request, std::chrono::milliseconds(5000));
    ASSERT_EQ(response.find("<timeout>"), std::string::npos)
        << "iteration " << i << ": no answer and no close within 5 s\n--- request ---\n" << request;
    if (response.empty()) continue;  // closed without an answer: allowed for garbage
    ASSERT_EQ(response.rfind("HTTP/1.1 ", 0), 0u) << "iteration " << i << ": " << response.substr(0, 200);
    const int status = std::atoi(response.substr(9, 3).c_str());
    ASSERT_TRUE(status >= 200 && status < 600) << "iteration " << i << ": " << response.substr(0, 200);
    ASSERT_TRUE(status < 500 || status == 503) << "iteration " << i << ": server error\n--- request ---\n"
                                                << request << "\n--- response ---\n" << response;
    ++answered;
    if (i % 200 == 0) {
      const std::string ordinary = Exchange(server.port(), seeds[0], std::chrono::milliseconds(5000));
      ASSERT_EQ(ordinary.rfind("HTTP/1.1 200", 0), 0u) << "iteration " << i << ": the server stopped serving";
    }
  }
  std::printf("http fuzz: %d iterations, %d answered\n", iterations, answered);
  server.Stop();
}

}  // namespace
}  // namespace atp
