#include "common/messages.h"

#include <cmath>
#include <limits>

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

FinishedMessage FinishedMessage::Failure(FailureClass failure_class, std::string message) {
  FinishedMessage m;
  m.ok = false;
  m.failure_class = failure_class;
  m.message = std::move(message);
  return m;
}

namespace {

// Reads the fields of one body; every error names the message and the field.
class BodyReader {
 public:
  BodyReader(const Json& body, MessageType type) : body_(body), type_(type) {}

  Status Check() const {
    if (!body_.is_object()) return Error("", "the body is not an object");
    return Status::Ok();
  }

  template <typename Int>
  Status Integer(const char* field, Int* out, bool required = true) const {
    const Json* value = Find(field);
    if (!value) return required ? Missing(field) : Status::Ok();
    if (!value->is_number_integer()) return Error(field, "must be an integer, got " + value->dump());
    const bool in_range =
        value->is_number_unsigned()
            ? value->get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<Int>::max())
            : value->get<int64_t>() >= static_cast<int64_t>(std::numeric_limits<Int>::min()) &&
                  value->get<int64_t>() <= static_cast<int64_t>(std::numeric_limits<Int>::max());
    if (!in_range) return Error(field, "is out of range: " + value->dump());
    *out = value->get<Int>();
    return Status::Ok();
  }

  Status String(const char* field, std::string* out, bool required = true) const {
    const Json* value = Find(field);
    if (!value) return required ? Missing(field) : Status::Ok();
    if (!value->is_string()) return Error(field, "must be a string, got " + value->dump());
    *out = value->get<std::string>();
    return Status::Ok();
  }

  Status Bool(const char* field, bool* out, bool required = true) const {
    const Json* value = Find(field);
    if (!value) return required ? Missing(field) : Status::Ok();
    if (!value->is_boolean()) return Error(field, "must be true or false, got " + value->dump());
    *out = value->get<bool>();
    return Status::Ok();
  }

  Status Object(const char* field, Json* out, bool required = true) const {
    const Json* value = Find(field);
    if (!value) return required ? Missing(field) : Status::Ok();
    if (!value->is_object()) return Error(field, "must be an object, got " + value->dump());
    *out = *value;
    return Status::Ok();
  }

  Status Array(const char* field, const Json** out) const {
    const Json* value = Find(field);
    if (!value) return Missing(field);
    if (!value->is_array()) return Error(field, "must be an array, got " + value->dump());
    *out = value;
    return Status::Ok();
  }

  const Json* Find(const char* field) const {
    auto it = body_.find(field);
    return it == body_.end() ? nullptr : &*it;
  }

  Status Error(const std::string& field, const std::string& what) const {
    return InvalidArgument(std::string(MessageTypeName(type_)) + " message: " +
                           (field.empty() ? "" : "'" + field + "' ") + what);
  }
  Status Missing(const char* field) const { return Error(field, "is missing"); }

 private:
  const Json& body_;
  MessageType type_;
};

}  // namespace

// ---- hello ---------------------------------------------------------------------------------

Json EncodeBody(const HelloMessage& m) { return Json{{"node", m.node}, {"pid", m.pid}}; }

template <>
Result<HelloMessage> DecodeBody<HelloMessage>(const Json& body) {
  BodyReader read(body, HelloMessage::kType);
  HelloMessage m;
  ATP_RETURN_IF_ERROR(read.Check());
  ATP_RETURN_IF_ERROR(read.String("node", &m.node));
  ATP_RETURN_IF_ERROR(read.Integer("pid", &m.pid));
  return m;
}

// ---- assign --------------------------------------------------------------------------------

Json EncodeBody(const AssignMessage& m) {
  Json upstream = Json::array();
  for (const UpstreamJob& up : m.upstream) {
    upstream.push_back(Json{{"key", up.key}, {"stage", up.stage}, {"method", up.method}, {"outputs", up.outputs}});
  }
  return Json{{"job_id", m.job_id},
              {"attempt_id", m.attempt_id},
              {"attempt", m.attempt},
              {"attempt_number", m.attempt_number},
              {"spec", m.spec.ToJson()},
              {"upstream", upstream},
              {"ranks", m.ranks},
              {"group_tag", m.group_tag},
              {"resume", m.resume},
              {"workdir", m.workdir}};
}

template <>
Result<AssignMessage> DecodeBody<AssignMessage>(const Json& body) {
  BodyReader read(body, AssignMessage::kType);
  AssignMessage m;
  ATP_RETURN_IF_ERROR(read.Check());
  ATP_RETURN_IF_ERROR(read.Integer("job_id", &m.job_id));
  ATP_RETURN_IF_ERROR(read.Integer("attempt_id", &m.attempt_id));
  ATP_RETURN_IF_ERROR(read.Integer("attempt", &m.attempt));
  ATP_RETURN_IF_ERROR(read.Integer("attempt_number", &m.attempt_number));
  Json spec;
  ATP_RETURN_IF_ERROR(read.Object("spec", &spec));
  auto decoded_spec = JobSpec::FromJson(spec);
  if (!decoded_spec.ok()) return read.Error("spec", decoded_spec.status().message());
  m.spec = std::move(decoded_spec).value();
  const Json* upstream = nullptr;
  ATP_RETURN_IF_ERROR(read.Array("upstream", &upstream));
  for (size_t i = 0; i < upstream->size(); ++i) {
    const std::string field = "upstream[" + std::to_string(i) + "]";
    const Json& entry = (*upstream)[i];
    BodyReader up(entry, AssignMessage::kType);
    UpstreamJob job;
    Status read_up = up.Check();
    if (read_up.ok()) read_up = up.String("key", &job.key);
    if (read_up.ok()) read_up = up.String("stage", &job.stage);
    if (read_up.ok()) read_up = up.String("method", &job.method);
    if (read_up.ok()) {
      const Json* outputs = up.Find("outputs");
      if (!outputs) read_up = up.Missing("outputs");
      else job.outputs = *outputs;  // what the upstream method returned: any JSON
    }
    if (!read_up.ok()) return read.Error(field, "is malformed: " + read_up.message());
    m.upstream.push_back(std::move(job));
  }
  const Json* ranks = nullptr;
  ATP_RETURN_IF_ERROR(read.Array("ranks", &ranks));
  for (const Json& rank : *ranks) {
    if (!rank.is_number_integer() || rank.get<int64_t>() < 0 || rank.get<int64_t>() > std::numeric_limits<int>::max()) {
      return read.Error("ranks", "must hold ranks (integers >= 0), got " + ranks->dump());
    }
    m.ranks.push_back(rank.get<int>());
  }
  if (m.ranks.empty()) return read.Error("ranks", "is empty");
  ATP_RETURN_IF_ERROR(read.Integer("group_tag", &m.group_tag));
  ATP_RETURN_IF_ERROR(read.String("resume", &m.resume));
  ATP_RETURN_IF_ERROR(read.String("workdir", &m.workdir));
  return m;
}

// ---- progress, checkpoint, heartbeat -----------------------------------------------------

Json EncodeBody(const ProgressMessage& m) {
  return Json{{"job_id", m.job_id}, {"attempt_id", m.attempt_id}, {"step", m.step}, {"total", m.total}};
}

template <>
Result<ProgressMessage> DecodeBody<ProgressMessage>(const Json& body) {
  BodyReader read(body, ProgressMessage::kType);
  ProgressMessage m;
  ATP_RETURN_IF_ERROR(read.Check());
  ATP_RETURN_IF_ERROR(read.Integer("job_id", &m.job_id));
  ATP_RETURN_IF_ERROR(read.Integer("attempt_id", &m.attempt_id));
  ATP_RETURN_IF_ERROR(read.Integer("step", &m.step));
  ATP_RETURN_IF_ERROR(read.Integer("total", &m.total));
  return m;
}

Json EncodeBody(const CheckpointMessage& m) {
  return Json{{"job_id", m.job_id}, {"attempt_id", m.attempt_id}, {"path", m.path}};
}

template <>
Result<CheckpointMessage> DecodeBody<CheckpointMessage>(const Json& body) {
  BodyReader read(body, CheckpointMessage::kType);
  CheckpointMessage m;
  ATP_RETURN_IF_ERROR(read.Check());
  ATP_RETURN_IF_ERROR(read.Integer("job_id", &m.job_id));
  ATP_RETURN_IF_ERROR(read.Integer("attempt_id", &m.attempt_id));
  ATP_RETURN_IF_ERROR(read.String("path", &m.path));
  if (m.path.empty()) return read.Error("path", "is empty");
  return m;
}

Json EncodeBody(const HeartbeatMessage& m) { return Json{{"busy", m.busy}, {"job_id", m.job_id}}; }

template <>
Result<HeartbeatMessage> DecodeBody<HeartbeatMessage>(const Json& body) {
  BodyReader read(body, HeartbeatMessage::kType);
  HeartbeatMessage m;
  ATP_RETURN_IF_ERROR(read.Check());
  ATP_RETURN_IF_ERROR(read.Bool("busy", &m.busy));
  ATP_RETURN_IF_ERROR(read.Integer("job_id", &m.job_id));
  return m;
}

// ---- finished ------------------------------------------------------------------------------

Json EncodeBody(const FinishedMessage& m) {
  Json body = {{"job_id", m.job_id}, {"attempt_id", m.attempt_id}, {"ok", m.ok}};
  Json artifacts = Json::array();
  for (const auto& [kind, path] : m.artifacts) artifacts.push_back(Json::array({kind, path}));
  body["artifacts"] = artifacts;
  if (m.ok) {
    body["metrics"] = m.metrics;
    body["outputs"] = m.outputs;
  } else {
    body["failure_class"] = FailureClassName(m.failure_class);
    body["message"] = m.message;
  }
  if (m.discard_checkpoint) body["discard_checkpoint"] = true;
  if (m.no_space_left) body["no_space_left"] = true;
  return body;
}

template <>
Result<FinishedMessage> DecodeBody<FinishedMessage>(const Json& body) {
  BodyReader read(body, FinishedMessage::kType);
  FinishedMessage m;
  ATP_RETURN_IF_ERROR(read.Check());
  ATP_RETURN_IF_ERROR(read.Integer("job_id", &m.job_id));
  ATP_RETURN_IF_ERROR(read.Integer("attempt_id", &m.attempt_id));
  ATP_RETURN_IF_ERROR(read.Bool("ok", &m.ok));
  if (const Json* artifacts = read.Find("artifacts")) {
    bool well_formed = artifacts->is_array();
    for (size_t i = 0; well_formed && i < artifacts->size(); ++i) {
      const Json& a = (*artifacts)[i];
      well_formed = a.is_array() && a.size() == 2 && a[0].is_string() && a[1].is_string();
      if (well_formed) m.artifacts.emplace_back(a[0].get<std::string>(), a[1].get<std::string>());
    }
    if (!well_formed) return read.Error("artifacts", "must be a list of [kind, path], got " + artifacts->dump());
  }
  if (m.ok) {
    if (const Json* metrics = read.Find("metrics")) {
      if (!metrics->is_object()) return read.Error("metrics", "must be an object, got " + metrics->dump());
      for (const auto& [name, value] : metrics->items()) {
        // MessagePack carries NaN and infinities; JSON null stands for a value that is not a number.
        if (value.is_null()) m.metrics[name] = std::numeric_limits<double>::quiet_NaN();
        else if (value.is_number()) m.metrics[name] = value.get<double>();
        else return read.Error("metrics", "'" + name + "' must be a number, got " + value.dump());
      }
    }
    if (const Json* outputs = read.Find("outputs")) m.outputs = *outputs;
  } else {
    std::string failure_class = FailureClassName(FailureClass::kError);
    ATP_RETURN_IF_ERROR(read.String("failure_class", &failure_class, /*required=*/false));
    auto parsed = ParseFailureClass(failure_class);
    if (!parsed) return read.Error("failure_class", "names no failure class: '" + failure_class + "'");
    m.failure_class = *parsed;
    m.message = "no message";
    ATP_RETURN_IF_ERROR(read.String("message", &m.message, /*required=*/false));
  }
  ATP_RETURN_IF_ERROR(read.Bool("discard_checkpoint", &m.discard_checkpoint, /*required=*/false));
  ATP_RETURN_IF_ERROR(read.Bool("no_space_left", &m.no_space_left, /*required=*/false));
  return m;
}

// ---- preempt, shutdown, cancel -------------------------------------------------------------

Json EncodeBody(const PreemptMessage&) { return Json::object(); }

template <>
Result<PreemptMessage> DecodeBody<PreemptMessage>(const Json& body) {
  BodyReader read(body, PreemptMessage::kType);
  ATP_RETURN_IF_ERROR(read.Check());
  return PreemptMessage{};
}

Json EncodeBody(const ShutdownMessage&) { return Json::object(); }

template <>
Result<ShutdownMessage> DecodeBody<ShutdownMessage>(const Json& body) {
  BodyReader read(body, ShutdownMessage::kType);
  ATP_RETURN_IF_ERROR(read.Check());
  return ShutdownMessage{};
}

Json EncodeBody(const CancelMessage& m) { return Json{{"job_id", m.job_id}, {"attempt_id", m.attempt_id}}; }

template <>
Result<CancelMessage> DecodeBody<CancelMessage>(const Json& body) {
  BodyReader read(body, CancelMessage::kType);
  CancelMessage m;
  ATP_RETURN_IF_ERROR(read.Check());
  ATP_RETURN_IF_ERROR(read.Integer("job_id", &m.job_id));
  ATP_RETURN_IF_ERROR(read.Integer("attempt_id", &m.attempt_id));
  return m;
}

}  // namespace atp
