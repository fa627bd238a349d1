#include "tools/chat_client.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <optional>

#include "common/json.h"

namespace atp {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxAnswerBytes = 32u << 20;  // far above any chat answer; bounds a runaway server

struct Url {
  bool tls = false;
  std::string host;         // without brackets
  std::string port;
  std::string path;         // base path without a trailing '/', e.g. "/v1"
  std::string host_header;  // host[:port] as the Host header wants it
};

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

Result<Url> ParseUrl(const std::string& text) {
  const std::string lower = Lower(text);
  Url url;
  size_t pos;
  if (lower.rfind("https://", 0) == 0) {
    url.tls = true;
    pos = 8;
  } else if (lower.rfind("http://", 0) == 0) {
    pos = 7;
  } else {
    return InvalidArgument("base URL '" + text + "' must start with http:// or https:// (e.g. https://api.openai.com/v1)");
  }
  const size_t end = text.find_first_of("/?#", pos);
  const std::string authority = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
  url.path = end == std::string::npos ? "" : text.substr(end);
  if (url.path.find_first_of("?#") != std::string::npos) {
    return InvalidArgument("base URL '" + text + "' must not have a query or fragment");
  }
  while (!url.path.empty() && url.path.back() == '/') url.path.pop_back();
  if (authority.find('@') != std::string::npos) {
    return InvalidArgument("base URL '" + text.substr(0, pos) + "...' carries credentials; put the key in ATP_LLM_API_KEY instead");
  }
  std::string port_text;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos) return InvalidArgument("base URL '" + text + "' has an unclosed '[' in its host");
    url.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return InvalidArgument("base URL '" + text + "' has junk after its host");
      port_text = authority.substr(close + 2);
    }
  } else {
    const size_t colon = authority.rfind(':');
    url.host = authority.substr(0, colon);
    if (colon != std::string::npos) port_text = authority.substr(colon + 1);
  }
  if (url.host.empty()) return InvalidArgument("base URL '" + text + "' has no host");
  if (!port_text.empty()) {
    const bool digits = std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits || port_text.size() > 5 || std::stoi(port_text) < 1 || std::stoi(port_text) > 65535) {
      return InvalidArgument("base URL '" + text + "' has an invalid port '" + port_text + "'");
    }
  }
  url.port = port_text.empty() ? (url.tls ? "443" : "80") : port_text;
  const bool ipv6 = url.host.find(':') != std::string::npos;
  url.host_header = ipv6 ? "[" + url.host + "]" : url.host;
  if (!port_text.empty()) url.host_header += ":" + port_text;
  return url;
}

bool IsLocalHost(const std::string& host) {
  const std::string h = Lower(host);
  return h == "127.0.0.1" || h == "localhost" || h == "::1";
}

// Replaces the key wherever it appears (a server may echo it back in an error).
std::string Redact(std::string text, const std::string& key) {
  if (key.size() < 4) return text;
  for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at)) {
    text.replace(at, key.size(), "<api key>");
  }
  return text;
}

std::string Shorten(const std::string& text, size_t limit) {
  std::string out = text.substr(0, limit);
  for (char& c : out) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return text.size() > limit ? out + "..." : out;
}

std::string Seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g s", s);
  return buf;
}

Clock::time_point After(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

// Starts one asynchronous operation and runs the context until it completes. Every operation
// here runs on a beast::tcp_stream with an expiry set, so each one ends by its deadline
// (beast::error::timeout) and a plain run() cannot hang.
template <typename Start>
beast::error_code Await(asio::io_context& io, Start&& start) {
  beast::error_code result;
  start([&result](beast::error_code ec, auto&&...) { result = ec; });
  io.restart();
  io.run();
  return result;
}

// The server's own explanation in an error answer: OpenAI's {"error": {"message": ...}}, other
// servers' {"error": "..."} or {"message": ...}, else the start of the body.
std::string ServerErrorMessage(const std::string& body) {
  const Json json = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_object()) {
    const auto error = json.find("error");
    if (error != json.end()) {
      if (error->is_string()) return error->get<std::string>();
      if (error->is_object() && error->contains("message") && (*error)["message"].is_string()) {
        return (*error)["message"].get<std::string>();
      }
    }
    if (json.contains("message") && json["message"].is_string()) return json["message"].get<std::string>();
    if (json.contains("detail") && json["detail"].is_string()) return json["detail"].get<std::string>();
  }
  if (body.empty()) return "(empty body)";
  return Shorten(body, 300);
}

std::string StatusHint(unsigned status) {
  if (status == 401 || status == 403) return " (check ATP_LLM_API_KEY or OPENAI_API_KEY)";
  if (status == 404) return " (check ATP_LLM_BASE_URL, e.g. https://api.openai.com/v1, and ATP_LLM_MODEL)";
  if (status == 429) return " (rate limit or quota: wait, or check the account)";
  if (status >= 500) return " (the server failed; try again later)";
  return "";
}

std::string TlsFailure(const beast::error_code& ec, SSL* ssl) {
  std::string why = ec.message();
  if (ssl != nullptr) {
    const long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
      why += std::string(" (") + X509_verify_cert_error_string(verify) +
             "; the system's certificate store is used, SSL_CERT_FILE or SSL_CERT_DIR point elsewhere)";
    }
  }
  return why;
}

class Request {
 public:
  Request(const ChatEndpoint& endpoint, Url url) : endpoint_(endpoint), url_(std::move(url)) {
    where_ = endpoint_.base_url;
    while (!where_.empty() && where_.back() == '/') where_.pop_back();
    where_ += "/chat/completions";
  }

  Result<http::response<http::string_body>> Run(const std::string& body) {
    total_deadline_ = After(endpoint_.total_timeout_s);
    connect_deadline_ = std::min(total_deadline_, After(endpoint_.connect_timeout_s));
    tcp::resolver resolver(io_);
    beast::error_code ec;
    // The system resolver has its own timeouts; asio cannot abort a lookup in progress.
    const auto endpoints = resolver.resolve(url_.host, url_.port, ec);
    if (ec) {
      return Unavailable("cannot resolve host '" + url_.host + "' of " + where_ + ": " + ec.message());
    }
    http::request<http::string_body> request{http::verb::post, url_.path + "/chat/completions", 11};
    request.set(http::field::host, url_.host_header);
    request.set(http::field::user_agent, "atp");
    request.set(http::field::content_type, "application/json");
    request.set(http::field::accept, "application/json");
    if (!endpoint_.api_key.empty()) request.set(http::field::authorization, "Bearer " + endpoint_.api_key);
    request.keep_alive(false);
    request.body() = body;
    request.prepare_payload();

    if (!url_.tls) {
      beast::tcp_stream stream(io_);
      ATP_RETURN_IF_ERROR(Connect(stream, endpoints));
      return Exchange(stream, request);
    }
    ssl::context context(ssl::context::tls_client);
    context.set_default_verify_paths(ec);
    if (ec) return Unavailable("cannot load the system's CA certificates: " + ec.message());
    context.set_verify_mode(ssl::verify_peer);
    beast::ssl_stream<beast::tcp_stream> stream(io_, context);
    SSL* native = stream.native_handle();
    boost::system::error_code address_ec;
    asio::ip::make_address(url_.host, address_ec);
    const bool is_address = !address_ec;
    // The certificate must name the host we asked for (or its IP address); SNI lets a server
    // that hosts several names pick the right certificate.
    if (is_address) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(native), url_.host.c_str());
    } else {
      SSL_set_tlsext_host_name(native, url_.host.c_str());
      SSL_set1_host(native, url_.host.c_str());
    }
    ATP_RETURN_IF_ERROR(Connect(beast::get_lowest_layer(stream), endpoints));
    beast::get_lowest_layer(stream).expires_at(connect_deadline_);
    ec = Await(io_, [&](auto handler) { stream.async_handshake(ssl::stream_base::client, handler); });
    if (ec == beast::error::timeout) {
      return Unavailable("TLS handshake with " + url_.host_header + " did not finish within " +
                         Seconds(endpoint_.connect_timeout_s));
    }
    if (ec) return Unavailable("TLS handshake with " + url_.host_header + " failed: " + TlsFailure(ec, native));
    return Exchange(stream, request);
  }

 private:
  Status Connect(beast::tcp_stream& stream, const tcp::resolver::results_type& endpoints) {
    stream.expires_at(connect_deadline_);
    const beast::error_code ec = Await(io_, [&](auto handler) { stream.async_connect(endpoints, handler); });
    if (!ec) return Status::Ok();
    const std::string target = url_.host_header + (url_.host_header.find(':') == std::string::npos ? ":" + url_.port : "");
    if (ec == asio::error::connection_refused) {
      return Unavailable("connection refused by " + target + " (" + where_ +
                         "): is the server running, and is ATP_LLM_BASE_URL right?");
    }
    if (ec == beast::error::timeout) {
      return Unavailable("no connection to " + target + " within " + Seconds(endpoint_.connect_timeout_s) +
                         " (" + where_ + ")");
    }
    return Unavailable("cannot connect to " + target + " (" + where_ + "): " + ec.message());
  }

  template <typename Stream>
  Result<http::response<http::string_body>> Exchange(Stream& stream, http::request<http::string_body>& request) {
    beast::get_lowest_layer(stream).expires_at(total_deadline_);
    beast::error_code ec = Await(io_, [&](auto handler) { http::async_write(stream, request, handler); });
    if (ec == beast::error::timeout) return TimedOut();
    if (ec) return Unavailable("sending the request to " + where_ + " failed: " + ec.message());
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxAnswerBytes);
    ec = Await(io_, [&](auto handler) { http::async_read(stream, buffer, parser, handler); });
    if (ec == beast::error::timeout) return TimedOut();
    if (ec) return Unavailable("reading the answer from " + where_ + " failed: " + ec.message());
    // Connection: close was asked for; the socket closes with the stream, no TLS goodbye
    // is needed for a complete, length-delimited answer.
    return parser.release();
  }

  Status TimedOut() const {
    return Unavailable("no complete answer from " + where_ + " within " + Seconds(endpoint_.total_timeout_s) +
                       " (ATP_LLM_TIMEOUT_S sets a longer limit)");
  }

  const ChatEndpoint& endpoint_;
  const Url url_;
  std::string where_;
  asio::io_context io_;
  Clock::time_point total_deadline_;
  Clock::time_point connect_deadline_;
};

const char* Env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

}  // namespace

Result<ChatEndpoint> ChatEndpoint::FromEnvironment() {
  ChatEndpoint endpoint;
  if (const char* url = Env("ATP_LLM_BASE_URL")) {
    endpoint.base_url = url;
  } else if (const char* openai_url = Env("OPENAI_BASE_URL")) {
    endpoint.base_url = openai_url;
  }
  if (const char* model = Env("ATP_LLM_MODEL")) endpoint.model = model;
  if (const char* key = Env("ATP_LLM_API_KEY")) {
    endpoint.api_key = key;
  } else if (const char* openai_key = Env("OPENAI_API_KEY")) {
    endpoint.api_key = openai_key;
  }
  if (const char* timeout = Env("ATP_LLM_TIMEOUT_S")) {
    char* end = nullptr;
    const double seconds = std::strtod(timeout, &end);
    if (end == timeout || *end != '\0' || !(seconds > 0) || !std::isfinite(seconds)) {
      return InvalidArgument(std::string("ATP_LLM_TIMEOUT_S='") + timeout + "' is not a positive number of seconds");
    }
    endpoint.total_timeout_s = seconds;
    endpoint.connect_timeout_s = std::min(endpoint.connect_timeout_s, seconds);
  }
  ATP_ASSIGN_OR_RETURN(const Url url, ParseUrl(endpoint.base_url));
  if (endpoint.api_key.empty() && !IsLocalHost(url.host)) {
    return InvalidArgument("no API key for " + endpoint.base_url +
                           ": set ATP_LLM_API_KEY (or OPENAI_API_KEY); only a server on this machine "
                           "(127.0.0.1, localhost) may be used without one");
  }
  return endpoint;
}

std::string ChatEndpoint::Describe() const { return model + " at " + base_url; }

Result<std::string> ChatComplete(const ChatEndpoint& endpoint, const std::vector<ChatMessage>& messages,
                                 double temperature) {
  ATP_ASSIGN_OR_RETURN(Url url, ParseUrl(endpoint.base_url));
  Json body = {{"model", endpoint.model}, {"temperature", temperature}, {"messages", Json::array()}};
  for (const auto& m : messages) body["messages"].push_back({{"role", m.role}, {"content", m.content}});

  Request request(endpoint, url);
  // Class names read from files may not be valid UTF-8; replacing bad bytes beats failing.
  auto answer = request.Run(body.dump(-1, ' ', false, Json::error_handler_t::replace));
  if (!answer.ok()) return Status(answer.status().code(), Redact(answer.status().message(), endpoint.api_key));
  const auto& response = *answer;
  std::string where = endpoint.base_url;
  while (!where.empty() && where.back() == '/') where.pop_back();
  where += "/chat/completions";

  const unsigned status = response.result_int();
  if (status < 200 || status >= 300) {
    return Unavailable(Redact("HTTP " + std::to_string(status) + " " + std::string(response.reason()) + " from " +
                                  where + ": " + ServerErrorMessage(response.body()) + StatusHint(status),
                              endpoint.api_key));
  }
  const Json json = Json::parse(response.body(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return Internal("the answer from " + where + " is not valid JSON: " + Shorten(response.body(), 200));
  }
  const Json* content = nullptr;
  if (json.is_object() && json.contains("choices") && json["choices"].is_array() && !json["choices"].empty()) {
    const Json& choice = json["choices"][0];
    if (choice.is_object() && choice.contains("message") && choice["message"].is_object()) {
      const Json& message = choice["message"];
      if (message.contains("content") && message["content"].is_string()) content = &message["content"];
      if (content == nullptr && message.contains("refusal") && message["refusal"].is_string()) {
        return Unavailable("the model " + endpoint.model + " refused: " + message["refusal"].get<std::string>());
      }
    }
  }
  if (content == nullptr) {
    return Internal("the answer from " + where + " has no choices[0].message.content: " +
                    Shorten(response.body(), 200));
  }
  return content->get<std::string>();
}

}  // namespace atp
