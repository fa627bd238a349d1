// Messages of the coordinator/worker protocol, sent over a Communicator with tag kProtocolTag
// and encoded as MessagePack of a JSON object {"type": ..., fields...}. One struct per message,
// each with one encode (EncodeBody) and one decode (DecodeBody<T>, which names the message
// and the field that is missing or of the wrong type). Plain values; thread-safe.
//
// The protocol (coordinator = rank 0, workers = every other rank):
//  1. Each worker sends HelloMessage {node, pid} when it is ready to take jobs.
//  2. The coordinator sends AssignMessage {job_id, attempt_id, spec, upstream, ranks,
//     group_tag, resume, workdir} to every member rank of a job (one rank, or k ranks of one
//     node). The job's hang timeout travels in its spec.
//  3. Members of a k-rank job build the job's group communicator from (ranks, group_tag)
//     before starting the job process, which reaches the group through its worker.
//  4. While the job runs, its leader (first member) sends ProgressMessage {job_id, attempt_id,
//     step, total} and CheckpointMessage {job_id, attempt_id, path}; every worker sends
//     HeartbeatMessage every heartbeat interval, busy or idle, from its own loop (not the job's).
//  5. Each member sends FinishedMessage {job_id, attempt_id, ok, metrics, outputs, artifacts,
//     failure_class, message}. The coordinator records the attempt once all members have
//     finished: the leader's outcome when all succeeded, else the first failure.
//  6. On SIGTERM/SIGINT the coordinator sends kPreempt to every worker: running jobs
//     checkpoint and finish with class "preempted".
//  7. When a member rank of a multi-rank job is lost, the coordinator sends CancelMessage
//     {job_id, attempt_id} to the other members, which kill the job's process and answer
//     FinishedMessage.
//  8. When nothing is left to run the coordinator sends kShutdown; a worker ends its job
//     process and returns.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/failure.h"
#include "common/job_spec.h"
#include "common/json.h"
#include "common/status.h"

namespace atp {

constexpr int kProtocolTag = 7;

enum class MessageType { kHello, kAssign, kProgress, kCheckpoint, kHeartbeat, kFinished, kPreempt, kShutdown, kCancel };
const char* MessageTypeName(MessageType t);

// The envelope: a type and its body, as it travels.
struct Message {
  MessageType type;
  Json body = Json::object();
};

std::string EncodeMessage(const Message& message);
Result<Message> DecodeMessage(const std::string& bytes);

// ---- the messages ------------------------------------------------------------------------

struct HelloMessage {
  static constexpr MessageType kType = MessageType::kHello;
  std::string node;
  int64_t pid = 0;
};

// What a job is told of each of its upstream jobs.
struct UpstreamJob {
  std::string key;
  std::string stage;
  std::string method;
  Json outputs = Json::object();
};

struct AssignMessage {
  static constexpr MessageType kType = MessageType::kAssign;
  int64_t job_id = 0;
  int64_t attempt_id = 0;
  int attempt = 1;          // counted attempt (1-based): what the method sees
  int attempt_number = 0;   // the attempt row's number in the database: names its log
  JobSpec spec;
  std::vector<UpstreamJob> upstream;
  std::vector<int> ranks;   // the job's member ranks; the first is its leader
  int group_tag = 0;        // with ranks: builds a k-rank job's group communicator
  std::string resume;       // checkpoint to resume from, "" for a fresh start
  std::string workdir;
};

struct ProgressMessage {
  static constexpr MessageType kType = MessageType::kProgress;
  int64_t job_id = 0;
  int64_t attempt_id = 0;
  int64_t step = 0;
  int64_t total = 0;
};

struct CheckpointMessage {
  static constexpr MessageType kType = MessageType::kCheckpoint;
  int64_t job_id = 0;
  int64_t attempt_id = 0;
  std::string path;
};

struct HeartbeatMessage {
  static constexpr MessageType kType = MessageType::kHeartbeat;
  bool busy = false;
  int64_t job_id = 0;  // the running job, 0 when idle
};

// The outcome of one member's part of an attempt. The executor reports the same fields for
// the job it ran (without the ids, which its worker adds).
struct FinishedMessage {
  static constexpr MessageType kType = MessageType::kFinished;
  int64_t job_id = 0;
  int64_t attempt_id = 0;
  bool ok = false;
  std::map<std::string, double> metrics;                       // when ok
  Json outputs = Json::object();                               // when ok
  std::vector<std::pair<std::string, std::string>> artifacts;  // (kind, path), e.g. ("log", ".../attempt-1.log")
  FailureClass failure_class = FailureClass::kError;           // when not ok
  std::string message;                                         // when not ok
  bool discard_checkpoint = false;  // the checkpoint it was given is unusable: start afresh next time
  bool no_space_left = false;       // the disk is full: the run stops, the attempt is not counted

  static FinishedMessage Failure(FailureClass failure_class, std::string message);
};

struct PreemptMessage {
  static constexpr MessageType kType = MessageType::kPreempt;
};

struct ShutdownMessage {
  static constexpr MessageType kType = MessageType::kShutdown;
};

struct CancelMessage {
  static constexpr MessageType kType = MessageType::kCancel;
  int64_t job_id = 0;
  int64_t attempt_id = 0;
};

// ---- encode and decode -------------------------------------------------------------------

// The body of each message (without "type").
Json EncodeBody(const HelloMessage& m);
Json EncodeBody(const AssignMessage& m);
Json EncodeBody(const ProgressMessage& m);
Json EncodeBody(const CheckpointMessage& m);
Json EncodeBody(const HeartbeatMessage& m);
Json EncodeBody(const FinishedMessage& m);
Json EncodeBody(const PreemptMessage& m);
Json EncodeBody(const ShutdownMessage& m);
Json EncodeBody(const CancelMessage& m);

// Reads a body; an error names the message and the field ("assign message: 'job_id' ...").
template <typename T>
Result<T> DecodeBody(const Json& body);
template <> Result<HelloMessage> DecodeBody<HelloMessage>(const Json& body);
template <> Result<AssignMessage> DecodeBody<AssignMessage>(const Json& body);
template <> Result<ProgressMessage> DecodeBody<ProgressMessage>(const Json& body);
template <> Result<CheckpointMessage> DecodeBody<CheckpointMessage>(const Json& body);
template <> Result<HeartbeatMessage> DecodeBody<HeartbeatMessage>(const Json& body);
template <> Result<FinishedMessage> DecodeBody<FinishedMessage>(const Json& body);
template <> Result<PreemptMessage> DecodeBody<PreemptMessage>(const Json& body);
template <> Result<ShutdownMessage> DecodeBody<ShutdownMessage>(const Json& body);
template <> Result<CancelMessage> DecodeBody<CancelMessage>(const Json& body);

template <typename T>
std::string EncodeMessage(const T& message) {
  return EncodeMessage(Message{T::kType, EncodeBody(message)});
}

// The typed message of an envelope; an envelope of another type is an error.
template <typename T>
Result<T> DecodeAs(const Message& message) {
  if (message.type != T::kType) {
    return InvalidArgument(std::string("expected a ") + MessageTypeName(T::kType) + " message, got " +
                           MessageTypeName(message.type));
  }
  return DecodeBody<T>(message.body);
}

}  // namespace atp
