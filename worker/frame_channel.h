// FrameChannel: length-prefixed MessagePack frames of JSON objects over a stream socket:
// the link between a worker rank and its job process. Send is thread-safe (a mutex);
// Receive is called by one thread.
#pragma once

#include <mutex>
#include <optional>
#include <string>

#include "common/json.h"
#include "common/status.h"

namespace atp {

class FrameChannel {
 public:
  explicit FrameChannel(int fd) : fd_(fd) {}
  int fd() const { return fd_; }

  Status Send(const Json& frame);
  // Waits up to `timeout_s` (negative: forever) for one frame. nullopt on timeout;
  // Unavailable when the peer closed the socket or died.
  Result<std::optional<Json>> Receive(double timeout_s);

 private:
  Result<bool> FillBuffer(double timeout_s);  // false on timeout
  int fd_;
  std::mutex send_mutex_;
  std::string buffer_;
};

}  // namespace atp
