#include "worker/frame_channel.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace atp {

Status FrameChannel::Send(const Json& frame) {
  std::vector<std::uint8_t> body = Json::to_msgpack(frame);
  uint32_t length = static_cast<uint32_t>(body.size());
  std::string bytes(reinterpret_cast<const char*>(&length), sizeof(length));
  bytes.append(body.begin(), body.end());
  std::lock_guard<std::mutex> lock(send_mutex_);
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Unavailable(std::string("job channel closed: ") + std::strerror(errno));
    sent += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Result<bool> FrameChannel::FillBuffer(double timeout_s) {
  pollfd p{fd_, POLLIN, 0};
  int timeout_ms = timeout_s < 0 ? -1 : static_cast<int>(timeout_s * 1000);
  int ready = ::poll(&p, 1, timeout_ms);
  if (ready < 0 && errno == EINTR) return false;
  if (ready < 0) return IoError(std::string("poll: ") + std::strerror(errno));
  if (ready == 0) return false;
  char chunk[65536];
  ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return false;
  if (n <= 0) return Unavailable("job channel closed by the peer");
  buffer_.append(chunk, static_cast<size_t>(n));
  return true;
}

Result<std::optional<Json>> FrameChannel::Receive(double timeout_s) {
  bool waited = false;
  while (true) {
    if (buffer_.size() >= sizeof(uint32_t)) {
      uint32_t length = 0;
      std::memcpy(&length, buffer_.data(), sizeof(length));
      if (buffer_.size() >= sizeof(length) + length) {
        Json frame = Json::from_msgpack(buffer_.begin() + sizeof(length), buffer_.begin() + sizeof(length) + length,
                                        true, false);
        buffer_.erase(0, sizeof(length) + length);
        if (frame.is_discarded()) return Internal("malformed frame on the job channel");
        return std::optional<Json>(std::move(frame));
      }
    }
    // Wait once for the timeout; after data arrived, keep reading without waiting long so a
    // frame split across reads is assembled.
    auto filled = FillBuffer(waited ? 0.5 : timeout_s);
    if (!filled.ok()) return filled.status();
    if (!*filled) {
      if (!waited || buffer_.empty()) return std::optional<Json>();
    }
    waited = true;
  }
}

}  // namespace atp
