// Messages of the coordinator/worker protocol, sent over a Communicator with tag kProtocolTag
// and encoded as MessagePack of a JSON object {"type": ..., fields...}. Plain values.
//
// The protocol (coordinator = rank 0, workers = every other rank):
//  1. Each worker sends kHello {node, pid} when it is ready to take jobs.
//  2. The coordinator sends kAssign {job_id, attempt_id, spec, upstream, ranks, group_tag,
//     resume, workdir} to every member rank of a job (one rank, or k ranks of one node).
//  3. Members of a k-rank job build the job's group communicator from (ranks, group_tag)
//     before starting the job process, which reaches the group through its worker.
//  4. While the job runs, its leader (first member) sends kProgress {job_id, attempt_id, step,
//     total} and kCheckpoint {job_id, attempt_id, path}; every worker sends kHeartbeat every
//     heartbeat interval, busy or idle, from its own loop (not the job's).
//  5. Each member sends kFinished {job_id, attempt_id, ok, metrics, outputs, artifacts,
//     failure_class, message}. The coordinator records the attempt once all members have
//     finished: the leader's outcome when all succeeded, else the first failure.
//  6. On SIGTERM/SIGINT the coordinator sends kPreempt to every worker: running jobs
//     checkpoint and finish with class "preempted".
//  7. When a member rank of a multi-rank job is lost, the coordinator sends kCancel {job_id,
//     attempt_id} to the other members, which kill the job's process and answer kFinished.
//  8. When nothing is left to run the coordinator sends kShutdown; a worker ends its job
//     process and returns.
#pragma once

#include <string>

#include "common/json.h"
#include "common/status.h"

namespace atp {

constexpr int kProtocolTag = 7;

enum class MessageType { kHello, kAssign, kProgress, kCheckpoint, kHeartbeat, kFinished, kPreempt, kShutdown, kCancel };
const char* MessageTypeName(MessageType t);

struct Message {
  MessageType type;
  Json body = Json::object();
};

std::string EncodeMessage(const Message& message);
Result<Message> DecodeMessage(const std::string& bytes);

}  // namespace atp
