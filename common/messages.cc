#include "common/messages.h"

namespace atp {

const char* MessageTypeName(MessageType t) {
  switch (t) {
    case MessageType::kHello: return "hello";
    case MessageType::kAssign: return "assign";
    case MessageType::kProgress: return "progress";
    case MessageType::kCheckpoint: return "checkpoint";
    case MessageType::kHeartbeat: return "heartbeat";
    case MessageType::kFinished: return "finished";
    case MessageType::kPreempt: return "preempt";
    case MessageType::kShutdown: return "shutdown";
    case MessageType::kCancel: return "cancel";
  }
  return "?";
}

std::string EncodeMessage(const Message& message) {
  Json envelope = message.body;
  envelope["type"] = static_cast<int>(message.type);
  std::vector<std::uint8_t> bytes = Json::to_msgpack(envelope);
  return std::string(bytes.begin(), bytes.end());
}

Result<Message> DecodeMessage(const std::string& bytes) {
  Json envelope = Json::from_msgpack(bytes.begin(), bytes.end(), /*strict=*/true, /*allow_exceptions=*/false);
  if (envelope.is_discarded() || !envelope.is_object() || !envelope.contains("type") ||
      !envelope["type"].is_number_integer()) {
    return InvalidArgument("malformed protocol message (" + std::to_string(bytes.size()) + " bytes)");
  }
  int type = envelope["type"].get<int>();
  if (type < 0 || type > static_cast<int>(MessageType::kCancel)) {
    return InvalidArgument("unknown protocol message type " + std::to_string(type));
  }
  envelope.erase("type");
  return Message{static_cast<MessageType>(type), std::move(envelope)};
}

}  // namespace atp
