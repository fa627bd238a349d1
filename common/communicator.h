// Communicator: the small message-passing interface the coordinator/worker protocol is
// written against, with an MPI implementation (mpi_communicator.h) and an in-process one
// for threads (in_process_communicator.h). Messages are framed byte strings with a tag.
// A Communicator object is used by one thread at a time; implementations say more.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace atp {

struct Envelope {
  int source = -1;
  int tag = 0;
  std::string payload;
};

// Collective operations among the ranks of one multi-rank job (data-parallel gradient
// averaging goes through this). Created by Communicator::CreateGroup on each member.
class GroupCommunicator {
 public:
  virtual ~GroupCommunicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In-place elementwise sum over all members; every member passes the same count.
  virtual Status AllreduceSum(float* data, size_t count) = 0;
  virtual Status AllreduceSum(double* data, size_t count) = 0;
  // `bytes` of member `root` replaces `bytes` on every member.
  virtual Status Broadcast(std::string* bytes, int root) = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // The node this rank runs on (MPI processor name, or ATP_NODE_NAME when set, so tests
  // can model several nodes on one machine).
  virtual std::string node_name() const = 0;

  virtual Status Send(int dest, int tag, std::string_view payload) = 0;
  // Waits up to `timeout_s` (0: just looks) for a message from any source with any tag.
  virtual Result<std::optional<Envelope>> Receive(double timeout_s) = 0;

  // Collective over exactly the ranks in `ranks` (sorted, including this one); only those
  // ranks call it, with the same `ranks` and `group_tag` (unique among groups being created
  // at the same time).
  virtual Result<std::unique_ptr<GroupCommunicator>> CreateGroup(const std::vector<int>& ranks, int group_tag) = 0;
};

}  // namespace atp
