// ChatComplete: one request to an OpenAI-compatible chat-completions endpoint over HTTP or
// HTTPS (certificates verified against the system store), with connect and total timeouts.
// Each call opens its own connection and owns nothing between calls; thread-safe. The API key
// never appears in a returned message, a log line or an error.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace atp {

struct ChatMessage {
  std::string role;     // "system", "user" or "assistant"
  std::string content;
};

struct ChatEndpoint {
  std::string base_url = "https://api.openai.com/v1";  // requests go to <base_url>/chat/completions
  std::string model = "gpt-4o";
  std::string api_key;                                 // sent as "Authorization: Bearer <key>"; may be empty
  double connect_timeout_s = 30;                       // name lookup, TCP connect and TLS handshake
  double total_timeout_s = 120;                        // the whole request, answer included

  // From the environment: ATP_LLM_BASE_URL or OPENAI_BASE_URL, ATP_LLM_MODEL, ATP_LLM_API_KEY or
  // OPENAI_API_KEY, ATP_LLM_TIMEOUT_S (total). A key is required unless the URL is a local
  // server (http://127.0.0.1, http://localhost, http://[::1]). InvalidArgument says which
  // variable to set or fix.
  static Result<ChatEndpoint> FromEnvironment();

  // "gpt-4o at https://api.openai.com/v1" (for messages; never the key).
  std::string Describe() const;
};

// POSTs {model, messages, temperature} and returns choices[0].message.content. Errors say what
// failed and where: a bad URL (InvalidArgument); no answer, connection refused, timeouts,
// TLS failures and HTTP error statuses with the server's own error message (Unavailable); an
// answer that is not the expected JSON (Internal).
Result<std::string> ChatComplete(const ChatEndpoint& endpoint, const std::vector<ChatMessage>& messages,
                                 double temperature);

}  // namespace atp
