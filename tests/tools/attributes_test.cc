// `atp attributes`, the attribute-bases file and the chat client, against a stand-in
// OpenAI-compatible server that runs on 127.0.0.1 inside the test (plain HTTP, and HTTPS
// with a certificate made here) and answers from a script while recording each request.
#include "tools/attributes_command.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include "common/attribute_bases.h"
#include "common/json.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"
#include "tools/chat_client.h"

namespace atp {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

constexpr const char* kKey = "sk-test-0123456789abcdef";

std::string ChatBody(const std::string& content) {
  Json body = {{"id", "chatcmpl-1"},
               {"object", "chat.completion"},
               {"model", "test-model"},
               {"choices", Json::array({{{"index", 0},
                                         {"message", {{"role", "assistant"}, {"content", content}}},
                                         {"finish_reason", "stop"}}})}};
  return body.dump();
}

// A self-signed certificate for IP 127.0.0.1, PEM-encoded, made with OpenSSL at test time.
struct TestCertificate {
  std::string certificate_pem;
  std::string key_pem;
};

TestCertificate MakeCertificate() {
  EVP_PKEY* key = EVP_RSA_gen(2048);
  X509* cert = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("atp test"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_subject_alt_name, "IP:127.0.0.1"}, {NID_basic_constraints, "critical,CA:TRUE"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(cert, key, EVP_sha256());
  auto to_pem = [](auto write) {
    BIO* bio = BIO_new(BIO_s_mem());
    write(bio);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<size_t>(n));
    BIO_free(bio);
    return pem;
  };
  TestCertificate out;
  out.certificate_pem = to_pem([&](BIO* bio) { PEM_write_bio_X509(bio, cert); });
  out.key_pem = to_pem([&](BIO* bio) { PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr); });
  X509_free(cert);
  EVP_PKEY_free(key);
  return out;
}

// The stand-in server: one connection at a time, one scripted reply per request (500 when
// the script is used up), every request recorded.
class FakeChatServer {
 public:
  struct ScriptedReply {
    unsigned status = 200;
    std::string body;
    bool hang = false;  // read the request, then answer nothing until the server stops
  };
  struct Request {
    std::string target;
    std::string authorization;
    std::string content_type;
    Json body;
  };

  explicit FakeChatServer(const TestCertificate* tls = nullptr)
      : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    if (tls != nullptr) {
      tls_.emplace(ssl::context::tls_server);
      tls_->use_certificate_chain(asio::buffer(tls->certificate_pem));
      tls_->use_private_key(asio::buffer(tls->key_pem), ssl::context::pem);
    }
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeChatServer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    boost::system::error_code ec;
    asio::io_context io;
    tcp::socket wake(io);
    wake.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);
    thread_.join();
  }

  void Reply(unsigned status, std::string body) {
    std::lock_guard<std::mutex> lock(mu_);
    script_.push_back({status, std::move(body), false});
  }
  void Answer(const std::string& content) { Reply(200, ChatBody(content)); }
  void Hang() {
    std::lock_guard<std::mutex> lock(mu_);
    script_.push_back({0, "", true});
  }
  std::vector<Request> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  std::string url() const {
    return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_) + "/v1";
  }

 private:
  void Serve() {
    for (;;) {
      tcp::socket socket(io_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return;
      }
      if (ec) continue;
      if (tls_) {
        ssl::stream<tcp::socket> stream(std::move(socket), *tls_);
        stream.handshake(ssl::stream_base::server, ec);
        if (!ec && !Handle(stream)) return;
      } else if (!Handle(socket)) {
        return;
      }
    }
  }

  // Answers one request; false when the server is stopping.
  template <typename Stream>
  bool Handle(Stream& stream) {
    boost::system::error_code ec;
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
    http::read(stream, buffer, request, ec);
    if (ec) return true;
    ScriptedReply reply;
    {
      std::lock_guard<std::mutex> lock(mu_);
      Request r;
      r.target = std::string(request.target());
      r.authorization = std::string(request[http::field::authorization]);
      r.content_type = std::string(request[http::field::content_type]);
      r.body = Json::parse(request.body(), nullptr, false);
      requests_.push_back(std::move(r));
      if (script_.empty()) {
        reply = {500, R"({"error": {"message": "the test script has no answer left"}})", false};
      } else {
        reply = script_.front();
        script_.pop_front();
      }
    }
    if (reply.hang) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_; });
      return false;
    }
    http::response<http::string_body> response{static_cast<http::status>(reply.status), 11};
    response.set(http::field::content_type, "application/json");
    response.keep_alive(false);
    response.body() = reply.body;
    response.prepare_payload();
    http::write(stream, response, ec);
    return true;
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::optional<ssl::context> tls_;
  uint16_t port_ = 0;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::deque<ScriptedReply> script_;
  std::vector<Request> requests_;
  std::thread thread_;
};

using ::atp::testing::TempDir;

void WriteText(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A free port with nothing listening on it: bound, then closed.
uint16_t UnusedPort() {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return acceptor.local_endpoint().port();
}

const std::vector<std::string> kFashionWords = {"shape", "length", "sleeve", "texture", "fit"};
constexpr const char* kGoodAnswer = R"({"COMMON_ATTRIBUTES": ["Shape", "length", "sleeve", "texture", "fit"]})";
constexpr const char* kDescriptions = "A t shirt is a short-sleeved top; an ankle boot covers the ankle.";

class AttributesCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"OPENAI_BASE_URL", "OPENAI_API_KEY", "ATP_LLM_TIMEOUT_S"}) unsetenv(name);
    setenv("ATP_LLM_BASE_URL", server_.url().c_str(), 1);
    setenv("ATP_LLM_API_KEY", kKey, 1);
    setenv("ATP_LLM_MODEL", "test-model", 1);
    WriteText(classes_, "t_shirt\ntrouser\n\n# a comment\nankle_boot\n");
  }
  void TearDown() override {
    for (const char* name : {"ATP_LLM_BASE_URL", "ATP_LLM_API_KEY", "ATP_LLM_MODEL", "ATP_LLM_TIMEOUT_S"}) {
      unsetenv(name);
    }
  }
  int Run(std::vector<std::string> args) {
    args.insert(args.begin(), "attributes");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    const int rc = RunAttributesCommand(static_cast<int>(argv.size()), argv.data());
    out_ = ::testing::internal::GetCapturedStdout();
    err_ = ::testing::internal::GetCapturedStderr();
    return rc;
  }
  int Suggest(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"suggest", "--dataset", "fashion_mnist", "--classes", classes_, "--out", out_file_};
    args.insert(args.end(), extra.begin(), extra.end());
    return Run(args);
  }
  static std::string Content(const FakeChatServer::Request& r, size_t message) {
    return r.body["messages"][message]["content"].get<std::string>();
  }

  FakeChatServer server_;
  TempDir dir_;
  std::string classes_ = dir_ / "classes.txt";
  std::string out_file_ = dir_ / "bases.toml";
  std::string out_, err_;
};

TEST_F(AttributesCommandTest, SuggestAsksTwiceAndWritesTheBases) {
  server_.Answer(kDescriptions);
  server_.Answer(kGoodAnswer);
  ASSERT_EQ(Suggest(), 0) << err_;

  const auto requests = server_.requests();
  ASSERT_EQ(requests.size(), 2u);
  for (const auto& r : requests) {
    EXPECT_EQ(r.target, "/v1/chat/completions");
    EXPECT_EQ(r.authorization, std::string("Bearer ") + kKey);
    EXPECT_EQ(r.content_type, "application/json");
    EXPECT_EQ(r.body["model"], "test-model");
    EXPECT_DOUBLE_EQ(r.body["temperature"].get<double>(), 0.7);
    ASSERT_EQ(r.body["messages"].size(), 1u);
    EXPECT_EQ(r.body["messages"][0]["role"], "user");
  }
  // Call 1: the official prompt with the names as a Python list, '_' -> ' '.
  EXPECT_EQ(Content(requests[0], 0),
            "Let's think step by step. Please give me a detailed description of the following categories in "
            "one sentence (including shape, color, characteristics, habits, functions, etc.): "
            "['t shirt', 'trouser', 'ankle boot']");
  // Call 2 carries call 1's answer and asks for the JSON field.
  EXPECT_EQ(Content(requests[1], 0).rfind(std::string("Given these visual descriptions: ") + kDescriptions +
                                              ". Please summarize five general and independent attributes in one noun,",
                                          0),
            0u);
  EXPECT_NE(Content(requests[1], 0).find("COMMON_ATTRIBUTES"), std::string::npos);

  auto entry = ReadAttributeBasesEntry(out_file_, "fashion_mnist");
  ASSERT_OK(entry);
  EXPECT_EQ(entry->bases, kFashionWords);  // "Shape" lowercased
  EXPECT_EQ(entry->provenance.source, "llm");
  EXPECT_EQ(entry->provenance.model, "test-model");
  EXPECT_EQ(entry->provenance.created.size(), 20u) << entry->provenance.created;  // 2026-11-29T04:50:00Z
  EXPECT_NE(out_.find("fashion_mnist: shape, length, sleeve, texture, fit"), std::string::npos) << out_;
  EXPECT_NE(out_.find("bases_file = \"" + out_file_ + "\""), std::string::npos) << out_;
  EXPECT_EQ(err_.find(kKey), std::string::npos);
}

TEST_F(AttributesCommandTest, SuggestRetriesWithWhatWasWrong) {
  server_.Answer(kDescriptions);
  server_.Answer(R"({"COMMON_ATTRIBUTES": ["shape", "sleeve length", "texture", "fit", "color"]})");
  server_.Answer(kGoodAnswer);
  ASSERT_EQ(Suggest(), 0) << err_;
  const auto requests = server_.requests();
  ASSERT_EQ(requests.size(), 3u);
  const Json& retry = requests[2].body["messages"];
  ASSERT_EQ(retry.size(), 3u);
  EXPECT_EQ(retry[0], requests[1].body["messages"][0]);
  EXPECT_EQ(retry[1]["role"], "assistant");
  EXPECT_NE(retry[1]["content"].get<std::string>().find("sleeve length"), std::string::npos);
  EXPECT_EQ(retry[2]["role"], "user");
  const std::string correction = retry[2]["content"];
  EXPECT_NE(correction.find("cannot be used"), std::string::npos) << correction;
  EXPECT_NE(correction.find("attribute 2 ('sleeve length') is more than one word"), std::string::npos) << correction;
  EXPECT_EQ(*ReadAttributeBases(out_file_, "fashion_mnist"), kFashionWords);
}

TEST_F(AttributesCommandTest, SuggestGivesUpAfterTheRetriesAndWritesNothing) {
  server_.Answer(kDescriptions);
  for (int i = 0; i < 3; ++i) server_.Answer("shape, colour and size are what they share");
  EXPECT_EQ(Suggest({"--retries", "2"}), 1);
  EXPECT_EQ(server_.requests().size(), 4u);
  EXPECT_FALSE(std::filesystem::exists(out_file_));
  EXPECT_NE(err_.find("unusable after 2 retries: it contains no JSON object"), std::string::npos) << err_;
  EXPECT_NE(err_.find("last answer was \"shape, colour and size are what they share\""), std::string::npos) << err_;
  EXPECT_NE(err_.find("Nothing was written"), std::string::npos) << err_;
}

TEST_F(AttributesCommandTest, SuggestAcceptsJsonInsideFences) {
  server_.Answer(kDescriptions);
  server_.Answer(std::string("Here are the attributes:\n```json\n") + kGoodAnswer + "\n```\nHope this helps {:");
  ASSERT_EQ(Suggest(), 0) << err_;
  EXPECT_EQ(*ReadAttributeBases(out_file_, "fashion_mnist"), kFashionWords);
}

TEST_F(AttributesCommandTest, SuggestReportsConnectionRefused) {
  const std::string url = "http://127.0.0.1:" + std::to_string(UnusedPort()) + "/v1";
  setenv("ATP_LLM_BASE_URL", url.c_str(), 1);
  EXPECT_EQ(Suggest(), 1);
  EXPECT_NE(err_.find("call 1 (class descriptions): connection refused by 127.0.0.1:"), std::string::npos) << err_;
  EXPECT_NE(err_.find(url + "/chat/completions"), std::string::npos) << err_;
  EXPECT_FALSE(std::filesystem::exists(out_file_));
}

TEST_F(AttributesCommandTest, SuggestReportsTheServersErrorWithoutTheKey) {
  server_.Reply(401, std::string(R"({"error": {"message": "Incorrect API key provided: )") + kKey +
                         R"(.", "type": "invalid_request_error", "code": "invalid_api_key"}})");
  EXPECT_EQ(Suggest(), 1);
  EXPECT_NE(err_.find("HTTP 401 Unauthorized from " + server_.url() + "/chat/completions: Incorrect API key provided: "
                      "<api key>."),
            std::string::npos)
      << err_;
  EXPECT_NE(err_.find("check ATP_LLM_API_KEY"), std::string::npos) << err_;
  EXPECT_EQ(err_.find(kKey), std::string::npos) << err_;
}

TEST_F(AttributesCommandTest, SuggestReadsClassNamesFromTheDataRoot) {
  // DTD's split file, labels out of order; ReadDataset gives the names by label.
  Json split = {{"train", Json::array({Json::array({"banded/a.jpg", 0, "banded"}),
                                       Json::array({"crystalline/b.jpg", 2, "crystalline"}),
                                       Json::array({"bubbly/c.jpg", 1, "bubbly"})})},
                {"val", Json::array()},
                {"test", Json::array()}};
  WriteText(dir_ / "data/dtd/split_zhou_DescribableTextures.json", split.dump());
  server_.Answer(kDescriptions);
  server_.Answer(R"({"COMMON_ATTRIBUTES": ["pattern", "texture", "color", "design", "structure"]})");
  ASSERT_EQ(Run({"suggest", "--dataset", "dtd", "--data-root", dir_ / "data", "--out", out_file_, "--max-classes", "2"}),
            0)
      << err_;
  // Two of three names, spread evenly by label: labels 0 and 1.
  EXPECT_NE(Content(server_.requests()[0], 0).find(": ['banded', 'bubbly']"), std::string::npos);
  EXPECT_NE(err_.find("naming 2 of its 3 classes"), std::string::npos) << err_;
}

TEST_F(AttributesCommandTest, UsageErrorsExitWithTwo) {
  EXPECT_EQ(Run({}), 2);
  EXPECT_EQ(Run({"frobnicate"}), 2);
  EXPECT_EQ(Run({"suggest"}), 2);
  EXPECT_EQ(Run({"suggest", "--dataset", "fashion_mnist"}), 2);  // no class source
  EXPECT_EQ(Run({"suggest", "--dataset", "nope", "--classes", classes_}), 2);
  EXPECT_EQ(Run({"suggest", "--dataset", "dtd", "--classes", classes_, "--data-root", "/x"}), 2);
  EXPECT_EQ(Run({"suggest", "--dataset", "dtd", "--classes", classes_, "--max-classes", "0"}), 2);
  EXPECT_EQ(Run({"suggest", "--dataset", "dtd", "--classes", classes_, "--retries", "-1"}), 2);
  EXPECT_EQ(Run({"list", "--dataset", "nope"}), 2);
  EXPECT_EQ(Run({"--help"}), 0);
  EXPECT_TRUE(server_.requests().empty());
}

TEST_F(AttributesCommandTest, ListPrintsThePapersBases) {
  ASSERT_EQ(Run({"list"}), 0);
  EXPECT_NE(out_.find("caltech101"), std::string::npos);
  EXPECT_NE(out_.find("shape, color, material, function, size"), std::string::npos) << out_;
  EXPECT_NE(out_.find("(atp's defaults; not in the paper)"), std::string::npos) << out_;
  ASSERT_EQ(Run({"list", "--dataset", "imagenet_sketch"}), 0);
  EXPECT_NE(out_.find("imagenet_sketch  color, size, shape, habitat, behavior"), std::string::npos) << out_;
  EXPECT_EQ(out_.find("caltech101"), std::string::npos) << out_;
}

// ---- the chat client on its own ---------------------------------------------------------

class ChatClientTest : public ::testing::Test {
 protected:
  ChatEndpoint Endpoint(const std::string& url) {
    ChatEndpoint e;
    e.base_url = url;
    e.model = "test-model";
    e.api_key = kKey;
    return e;
  }
  std::vector<ChatMessage> Hello() { return {{"user", "hello"}}; }
};

TEST_F(ChatClientTest, ReturnsTheFirstChoicesContent) {
  FakeChatServer server;
  server.Answer("hi there");
  auto answer = ChatComplete(Endpoint(server.url() + "/"), Hello(), 0.0);
  ASSERT_OK(answer);
  EXPECT_EQ(*answer, "hi there");
  EXPECT_EQ(server.requests()[0].target, "/v1/chat/completions");  // trailing '/' of the base URL dropped
}

TEST_F(ChatClientTest, MalformedAnswersAreInternalErrors) {
  FakeChatServer server;
  server.Reply(200, "{not json");
  server.Reply(200, R"({"choices": []})");
  auto bad_json = ChatComplete(Endpoint(server.url()), Hello(), 0.0);
  EXPECT_EQ(bad_json.status().code(), StatusCode::kInternal);
  EXPECT_NE(bad_json.status().message().find("is not valid JSON: {not json"), std::string::npos)
      << bad_json.status().message();
  auto no_choice = ChatComplete(Endpoint(server.url()), Hello(), 0.0);
  EXPECT_NE(no_choice.status().message().find("has no choices[0].message.content"), std::string::npos)
      << no_choice.status().message();
}

TEST_F(ChatClientTest, GivesUpAtTheTotalTimeout) {
  FakeChatServer server;
  server.Hang();
  ChatEndpoint endpoint = Endpoint(server.url());
  endpoint.total_timeout_s = 0.5;
  const auto start = std::chrono::steady_clock::now();
  auto answer = ChatComplete(endpoint, Hello(), 0.0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(answer.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(answer.status().message().find("no complete answer from " + server.url() + "/chat/completions within 0.5 s"),
            std::string::npos)
      << answer.status().message();
}

TEST_F(ChatClientTest, HttpsVerifiesTheCertificate) {
  const TestCertificate certificate = MakeCertificate();
  FakeChatServer server(&certificate);
  server.Answer("over tls");
  server.Answer("over tls");
  ASSERT_EQ(server.url().rfind("https://", 0), 0u);

  // Not in the system store: refused.
  auto untrusted = ChatComplete(Endpoint(server.url()), Hello(), 0.0);
  EXPECT_EQ(untrusted.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(untrusted.status().message().find("TLS handshake with 127.0.0.1:"), std::string::npos)
      << untrusted.status().message();
  EXPECT_NE(untrusted.status().message().find("self-signed certificate"), std::string::npos)
      << untrusted.status().message();

  // Trusted through SSL_CERT_FILE (which the system store honours): accepted, and the
  // certificate's IP address matches.
  TempDir dir;
  WriteText(dir / "ca.pem", certificate.certificate_pem);
  const char* previous = getenv("SSL_CERT_FILE");
  const std::string saved = previous ? previous : "";
  setenv("SSL_CERT_FILE", (dir / "ca.pem").c_str(), 1);
  auto trusted = ChatComplete(Endpoint(server.url()), Hello(), 0.0);
  if (previous) setenv("SSL_CERT_FILE", saved.c_str(), 1); else unsetenv("SSL_CERT_FILE");
  ASSERT_OK(trusted);
  EXPECT_EQ(*trusted, "over tls");
  EXPECT_EQ(server.requests().back().authorization, std::string("Bearer ") + kKey);
}

TEST_F(ChatClientTest, EndpointFromTheEnvironment) {
  for (const char* name : {"ATP_LLM_BASE_URL", "OPENAI_BASE_URL", "ATP_LLM_MODEL", "ATP_LLM_API_KEY",
                           "OPENAI_API_KEY", "ATP_LLM_TIMEOUT_S"}) {
    unsetenv(name);
  }
  auto no_key = ChatEndpoint::FromEnvironment();
  EXPECT_EQ(no_key.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(no_key.status().message().find("set ATP_LLM_API_KEY (or OPENAI_API_KEY)"), std::string::npos);

  setenv("OPENAI_API_KEY", kKey, 1);
  auto defaults = ChatEndpoint::FromEnvironment();
  ASSERT_OK(defaults);
  EXPECT_EQ(defaults->base_url, "https://api.openai.com/v1");
  EXPECT_EQ(defaults->model, "gpt-4o");
  EXPECT_EQ(defaults->api_key, kKey);
  EXPECT_EQ(defaults->Describe(), "gpt-4o at https://api.openai.com/v1");
  unsetenv("OPENAI_API_KEY");

  setenv("OPENAI_BASE_URL", "http://localhost:8000/v1", 1);
  setenv("ATP_LLM_MODEL", "qwen2.5", 1);
  setenv("ATP_LLM_TIMEOUT_S", "300", 1);
  auto local = ChatEndpoint::FromEnvironment();  // a local server needs no key
  ASSERT_OK(local);
  EXPECT_EQ(local->base_url, "http://localhost:8000/v1");
  EXPECT_EQ(local->model, "qwen2.5");
  EXPECT_DOUBLE_EQ(local->total_timeout_s, 300);

  setenv("ATP_LLM_BASE_URL", "ftp://example.com", 1);
  EXPECT_NE(ChatEndpoint::FromEnvironment().status().message().find("must start with http:// or https://"),
            std::string::npos);
  setenv("ATP_LLM_BASE_URL", "http://127.0.0.1:8000/v1", 1);
  setenv("ATP_LLM_TIMEOUT_S", "soon", 1);
  EXPECT_NE(ChatEndpoint::FromEnvironment().status().message().find("ATP_LLM_TIMEOUT_S='soon'"), std::string::npos);
  for (const char* name : {"ATP_LLM_BASE_URL", "OPENAI_BASE_URL", "ATP_LLM_MODEL", "ATP_LLM_TIMEOUT_S"}) unsetenv(name);
}

// ---- the attribute-bases file and the word rules -----------------------------------------

TEST(AttributeWordsTest, FiveDistinctLowercaseWords) {
  EXPECT_OK(ValidateAttributeWords(kFashionWords));
  auto message = [](const std::vector<std::string>& words) { return ValidateAttributeWords(words).message(); };
  EXPECT_EQ(message({"shape", "color"}), "expected exactly five attributes, got 2: shape, color");
  EXPECT_EQ(message({}), "expected exactly five attributes, got 0");
  EXPECT_EQ(message({"shape", "Color", "a", "b", "c"}),
            "attribute 2 ('Color') has an uppercase letter; each attribute must be one lowercase word of letters a-z");
  EXPECT_EQ(message({"shape", "color", "sleeve length", "b", "c"}),
            "attribute 3 ('sleeve length') is more than one word; each attribute must be one lowercase word of "
            "letters a-z");
  EXPECT_NE(message({"shape", "color", "a", "well-being", "c"}).find("attribute 4 ('well-being') has the character '-'"),
            std::string::npos);
  EXPECT_NE(message({"shape", "color", "a", "b", "size2"}).find("has the character '2'"), std::string::npos);
  EXPECT_NE(message({"shape", "", "a", "b", "c"}).find("attribute 2 ('') is empty"), std::string::npos);
  EXPECT_NE(message({"shape", "color", "a", "color", "c"}).find("attribute 4 ('color') repeats attribute 2"),
            std::string::npos);
}

TEST(PaperAttributesTest, BasesAndSearchedPerDataset) {
  EXPECT_EQ(*PaperAttributeBases("caltech101"),
            (std::vector<std::string>{"shape", "color", "material", "function", "size"}));
  EXPECT_EQ(*PaperSearchedAttributeWords("caltech101"), (std::vector<std::string>{"shape", "size"}));
  // ImageNet's for the variants, as the official train.py.
  EXPECT_EQ(*PaperAttributeBases("imagenet_sketch"),
            (std::vector<std::string>{"color", "size", "shape", "habitat", "behavior"}));
  EXPECT_EQ(*PaperSearchedAttributeWords("imagenetv2"), (std::vector<std::string>{"color", "shape"}));
  EXPECT_EQ(*PaperAttributeBases("fashion_mnist"), kFashionWords);
  EXPECT_EQ(*PaperSearchedAttributeWords("fashion_mnist"), (std::vector<std::string>{"shape", "length"}));
  EXPECT_EQ(PaperAttributeBases("mnist").status().code(), StatusCode::kNotFound);
  // Every table row is a valid set of bases.
  for (const char* d : {"imagenet", "oxford_pets", "stanford_cars", "oxford_flowers", "food101", "fgvc_aircraft",
                        "sun397", "dtd", "eurosat", "ucf101", "imagenet_a", "imagenet_r"}) {
    auto bases = PaperAttributeBases(d);
    ASSERT_OK(bases) << d;
    EXPECT_OK(ValidateAttributeWords(*bases)) << d;
  }
}

TEST(AttributeBasesFileTest, RoundTripKeepsOtherDatasets) {
  TempDir dir;
  const std::string path = dir / "bases.toml";
  ASSERT_OK(WriteAttributeBases(path, "fashion_mnist", kFashionWords, {"llm", "gpt-4o", "2026-11-29T04:50:00Z"}));
  const std::vector<std::string> dtd = {"pattern", "texture", "color", "design", "structure"};
  ASSERT_OK(WriteAttributeBases(path, "dtd", dtd, {"manual", "", ""}));
  EXPECT_EQ(*ReadAttributeBases(path, "dtd"), dtd);
  auto fashion = ReadAttributeBasesEntry(path, "fashion_mnist");
  ASSERT_OK(fashion);
  EXPECT_EQ(fashion->bases, kFashionWords);
  EXPECT_EQ(fashion->provenance.model, "gpt-4o");
  EXPECT_EQ(fashion->provenance.created, "2026-11-29T04:50:00Z");

  // Replacing one entry keeps the other; nothing temporary is left beside the file.
  const std::vector<std::string> replaced = {"shape", "length", "collar", "texture", "fit"};
  ASSERT_OK(WriteAttributeBases(path, "fashion_mnist", replaced, {"manual", "", ""}));
  EXPECT_EQ(*ReadAttributeBases(path, "fashion_mnist"), replaced);
  EXPECT_EQ(*ReadAttributeBases(path, "dtd"), dtd);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir / ""), std::filesystem::directory_iterator()), 1);
  EXPECT_NE(ReadText(path).find("[fashion_mnist]\nbases = [\"shape\", \"length\", \"collar\", \"texture\", \"fit\"]\n"
                                "source = \"manual\"\n"),
            std::string::npos)
      << ReadText(path);

  // The paper's unless a file is named.
  EXPECT_EQ(*ResolveAttributeBases("", "dtd"), *PaperAttributeBases("dtd"));
  EXPECT_EQ(*ResolveAttributeBases(path, "fashion_mnist"), replaced);
}

TEST(AttributeBasesFileTest, ErrorsNameTheFileLineAndKey) {
  TempDir dir;
  const std::string path = dir / "bases.toml";
  WriteText(path, "# mine\n[dtd]\nbases = [\"pattern\", \"texture\", \"color\", \"design\", \"structure\"]\n\n"
                  "[eurosat]\nbases = [\"habitat\", \"Foliage\", \"a\", \"b\", \"c\"]\n");
  auto missing = ReadAttributeBases(path, "caltech101");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("has no entry [caltech101] (it has dtd, eurosat)"), std::string::npos)
      << missing.status().message();
  EXPECT_EQ(ReadAttributeBases(path, "eurosat").status().message(),
            path + ":6: key 'eurosat.bases': attribute 2 ('Foliage') has an uppercase letter; each attribute must be "
                   "one lowercase word of letters a-z");
  EXPECT_OK(ReadAttributeBases(path, "dtd"));

  WriteText(path, "[dtd]\nbases = [\"pattern\"]\nbasis = 3\n");
  EXPECT_NE(ReadAttributeBases(path, "dtd").status().message().find(path + ":3: key 'dtd.basis': unknown key"),
            std::string::npos);
  WriteText(path, "[dtd]\nbases = \"pattern\"\n");
  EXPECT_NE(ReadAttributeBases(path, "dtd").status().message().find(path + ":2: key 'dtd.bases': expected a list"),
            std::string::npos);
  WriteText(path, "[dtd]\nbases = [\"pattern\", 3]\n");
  EXPECT_NE(ReadAttributeBases(path, "dtd").status().message().find("entry 2 is an integer"), std::string::npos);
  WriteText(path, "[dtd]\nsource = \"oracle\"\nbases = []\n");
  EXPECT_NE(ReadAttributeBases(path, "dtd").status().message().find(path + ":2: key 'dtd.source': 'oracle' is not a source"),
            std::string::npos);
  WriteText(path, "[dtd]\nsource = \"paper\"\n");
  EXPECT_NE(ReadAttributeBases(path, "dtd").status().message().find(path + ":1: table 'dtd' has no key 'bases'"),
            std::string::npos);
  WriteText(path, "dtd = 1\n");
  EXPECT_NE(ReadAttributeBases(path, "dtd").status().message().find(path + ":1: key 'dtd' is an integer"),
            std::string::npos);
  WriteText(path, "[dtd\nbases = []\n");
  const std::string syntax = ReadAttributeBases(path, "dtd").status().message();
  EXPECT_EQ(syntax.rfind(path + ":1:", 0), 0u) << syntax;
  EXPECT_NE(syntax.find("TOML syntax error"), std::string::npos) << syntax;

  // A file that does not parse is never overwritten.
  EXPECT_FALSE(WriteAttributeBases(path, "fashion_mnist", kFashionWords, {}).ok());
  EXPECT_EQ(ReadText(path), "[dtd\nbases = []\n");
  // Invalid words are refused before the file is touched.
  EXPECT_FALSE(WriteAttributeBases(dir / "new.toml", "dtd", {"a", "b"}, {}).ok());
  EXPECT_FALSE(std::filesystem::exists(dir / "new.toml"));
  EXPECT_EQ(ReadAttributeBases(dir / "absent.toml", "dtd").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace atp
